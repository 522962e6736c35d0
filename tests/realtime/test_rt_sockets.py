"""quicnet.Server / quicnet.Client on real loopback sockets: the README snippet as written,
200 clients on one server on every channel, and the client's verification defaults.

Everything is driven by ``poll()`` from this one thread, until a condition holds
or a generous deadline passes (the deadline only stops a broken run; no test
asserts how long anything took).
"""

from __future__ import annotations

import gc
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

import quicnet
from quicnet.realtime import client_configuration

IDENTITY = quicnet.dev_identity()
DEADLINE = 30.0


def _until(condition: Callable[[], bool], tick: Callable[[], None], what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: not reached")
        tick()


@contextmanager
def _server(**kwargs: object) -> Iterator[quicnet.Server]:
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.close()


def test_the_readme_snippet_works_as_written() -> None:
    """Issue 9's snippet, each statement as it is written, run tick by tick until each thing
    it shows has happened (a second client sees the broadcast the first is excluded from)."""
    identity = quicnet.dev_identity()  # self-signed, .fingerprint
    server = quicnet.Server(("127.0.0.1", 0), identity=identity)
    client = quicnet.Client(server.address, pin=identity.fingerprint)
    watcher = quicnet.Client(server.address, pin=identity.fingerprint_text)  # hex text pins too
    seen: dict[str, list[object]] = {"server": [], "client": [], "watcher": []}
    peers: list[int] = []
    try:
        assert server.address[0] == "127.0.0.1" and server.address[1] > 0

        def tick() -> None:
            for event in server.poll(timeout=0.0):
                seen["server"].append(event)
                match event:
                    case quicnet.PeerConnected(peer=peer):
                        peers.append(peer)
                    case quicnet.MessageReceived(peer=peer, channel=ch, data=data):
                        server.send(peer, ch, data)
                    case quicnet.PeerMigrated(peer=peer, old_address=a, new_address=b):
                        raise AssertionError(f"no migration on loopback: {a} -> {b}")
                    case quicnet.PeerDisconnected(peer=peer, reason=reason):
                        assert reason == quicnet.DisconnectReason.KICKED
            client.send(1, b"state")  # unreliable: sent each tick until the echo comes
            for event in client.poll(timeout=0.01):
                seen["client"].append(event)
            seen["watcher"].extend(watcher.poll(timeout=0.0))

        def echoed() -> bool:
            return quicnet.MessageReceived(0, 1, b"state") in seen["client"]

        _until(lambda: echoed() and watcher.connected, tick, "the echo")
        assert isinstance(seen["client"][0], quicnet.Connected)
        assert seen["client"][0].peer == 0 and seen["client"][0].client_id == client.client_id
        peer = client.client_id
        assert peer in peers and watcher.client_id in peers

        stats = server.stats(peer)  # rtt, min_rtt, jitter, loss, bytes/packets in and out, cwnd
        assert stats.rtt > 0 and stats.min_rtt > 0 and stats.jitter >= 0 and 0 <= stats.loss <= 1
        assert stats.bytes_in > 0 and stats.bytes_out > 0 and stats.cwnd > 0
        assert stats.packets_in > 0 and stats.packets_out > 0 and stats.messages_in > 0

        server.broadcast(0, b"chat", exclude=peer)
        _until(lambda: quicnet.MessageReceived(0, 0, b"chat") in seen["watcher"], tick, "broadcast")
        server.disconnect(peer, reason="kicked")
        _until(
            lambda: any(isinstance(e, quicnet.Disconnected) for e in seen["client"]),
            tick,
            "kicked",
        )
        assert quicnet.MessageReceived(0, 0, b"chat") not in seen["client"]  # excluded
        assert seen["client"][-1] == quicnet.Disconnected(
            0, quicnet.DisconnectReason.KICKED, "kicked"
        )
        assert (
            quicnet.PeerDisconnected(peer, quicnet.DisconnectReason.KICKED, "kicked")
            in seen["server"]
        )
        final = server.stats(peer)  # as the snippet: a departed peer's last figures
        assert final.bytes_in >= stats.bytes_in and final.messages_in >= stats.messages_in
        assert server.stats(peer) == final  # frozen when the session ended
        with pytest.raises(quicnet.UnknownPeerError):
            server.send(peer, 0, b"gone")
    finally:
        for c in (client, watcher):
            c.close()
        server.close()


def test_two_hundred_clients_on_one_server_on_every_channel() -> None:
    """200 clients ticked from this thread; each sends on every channel and gets its echo
    (unreliable messages are sent again each tick until their echo arrives)."""
    channels = (0, 1, 2, 3)
    with ExitStack() as stack, _server() as server:
        clients = [
            stack.enter_context(
                quicnet.Client(server.address, pin=IDENTITY.fingerprint, local_host="127.0.0.1")
            )
            for _ in range(200)
        ]
        got: list[set[int]] = [set() for _ in clients]
        wrong: list[object] = []
        sent_reliable = [False] * len(clients)

        def tick() -> None:
            for event in server.poll(timeout=0.0):
                if isinstance(event, quicnet.MessageReceived):
                    server.send(event.peer, event.channel, event.data)
            for i, client in enumerate(clients):
                for event in client.poll(timeout=0.0):
                    if isinstance(event, quicnet.MessageReceived):
                        if event.data != b"%d/%d" % (i, event.channel):
                            wrong.append(event)  # an echo for someone else, or corrupted
                        elif event.channel in (0, 2) and event.channel in got[i]:
                            wrong.append(event)  # a reliable message twice
                        got[i].add(event.channel)
                    elif isinstance(event, quicnet.Disconnected):
                        wrong.append(event)
                if not client.connected:
                    continue
                with client.batch():
                    if not sent_reliable[i]:
                        sent_reliable[i] = True
                        client.send(0, b"%d/0" % i)
                        client.send(2, b"%d/2" % i)
                    for channel in (1, 3):
                        if channel not in got[i]:
                            client.send(channel, b"%d/%d" % (i, channel))

        _until(lambda: all(len(g) == len(channels) for g in got), tick, "every echo")
        assert wrong == []
        assert len(server.peers) == 200
        assert sorted(c.client_id for c in clients) == sorted(server.peers)  # type: ignore[type-var]


def test_a_client_must_say_how_to_verify_the_server() -> None:
    with _server() as server:
        with pytest.raises(quicnet.RealtimeUsageError, match="cannot be verified"):
            quicnet.Client(server.address)
        with pytest.raises(quicnet.RealtimeUsageError, match="32-byte"):
            quicnet.Client(server.address, pin=b"short")
        with pytest.raises(quicnet.RealtimeUsageError, match="not hexadecimal"):
            quicnet.Client(server.address, pin="zz:yy")
        with pytest.raises(quicnet.RealtimeUsageError):
            client_configuration("localhost", quicnet.Settings())
        # Skipping verification is possible, but only when asked for by name.
        with quicnet.Client(
            server.address, insecure_skip_verify=True, local_host="127.0.0.1"
        ) as client:
            _until(lambda: client.connected, lambda: (server.poll(), client.poll(0.005)), "up")
            assert client.client_id in server.peers


def test_a_wrong_pin_is_certificate_rejected_on_sockets() -> None:
    with (
        _server() as server,
        quicnet.Client(server.address, pin=bytes(32), local_host="127.0.0.1") as client,
    ):
        events: list[object] = []
        _until(
            lambda: bool(events),
            lambda: (server.poll(), events.extend(client.poll(0.005))),
            "the client's verdict",
        )
        (event,) = events
        assert isinstance(event, quicnet.Disconnected)
        assert event.reason == quicnet.DisconnectReason.CERTIFICATE_REJECTED
        assert "pinned fingerprint" in event.message
        assert server.peers == [] and not client.connected


def test_the_server_and_client_report_a_closed_session_on_sockets() -> None:
    with _server() as server:
        client = quicnet.Client(server.address, pin=IDENTITY.fingerprint, local_host="127.0.0.1")
        server_events: list[object] = []
        _until(
            lambda: client.connected,
            lambda: (server_events.extend(server.poll()), client.poll(0.005)),
            "up",
        )
        peer = client.client_id
        assert peer is not None
        client.close("bye")
        assert client.poll() == [quicnet.Disconnected(0, quicnet.DisconnectReason.CLOSED, "bye")]
        _until(
            lambda: any(isinstance(e, quicnet.PeerDisconnected) for e in server_events),
            lambda: server_events.extend(server.poll(0.005)),
            "the server told",
        )
        assert server_events[-1] == quicnet.PeerDisconnected(
            peer, quicnet.DisconnectReason.CLOSED_BY_PEER, "bye"
        )


def test_server_close_tells_every_client_server_shutdown_on_sockets() -> None:
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY)
    clients = [
        quicnet.Client(server.address, pin=IDENTITY.fingerprint, local_host="127.0.0.1")
        for _ in range(3)
    ]
    try:
        _until(
            lambda: all(c.connected for c in clients),
            lambda: (server.poll(), [c.poll(0.002) for c in clients]),
            "clients up",
        )
        peers = server.peers
        server.close("maintenance")
        reason = quicnet.DisconnectReason.SERVER_SHUTDOWN
        assert server.poll() == [quicnet.PeerDisconnected(p, reason, "maintenance") for p in peers]
        assert server.poll() == []
        seen: list[list[object]] = [[] for _ in clients]

        def tick() -> None:
            for c, events in zip(clients, seen, strict=True):
                events.extend(c.poll(0.002))

        _until(lambda: all(seen), tick, "every client told")
        expected = quicnet.Disconnected(0, quicnet.DisconnectReason.SERVER_SHUTDOWN, "maintenance")
        assert seen == [[expected]] * 3
    finally:
        for c in clients:
            c.close()
        server.close()


def _verdict(server: quicnet.Server, cafile: Path, name: str | None) -> object:
    """The outcome of a client verifying by ``cafile`` and ``name``: "connected", or its
    Disconnected."""
    with quicnet.Client(
        server.address, cafile=cafile, server_name=name, local_host="127.0.0.1"
    ) as client:
        events: list[object] = []
        _until(
            lambda: client.connected or bool(events),
            lambda: (server.poll(), events.extend(client.poll(0.005))),
            "a verdict",
        )
        return "connected" if client.connected else events[-1]


def test_a_ca_file_and_the_servers_name_verify_it(tmp_path: Path) -> None:
    """cafile= with the name checked: the host connected to (127.0.0.1 is in the
    certificate), or server_name=; a name the certificate does not carry is rejected."""
    cafile = tmp_path / "ca.pem"
    cafile.write_bytes(IDENTITY.trust_root.to_pem())
    with _server() as server:
        outcomes = [_verdict(server, cafile, name) for name in (None, "localhost", "game.example")]
    assert outcomes[:2] == ["connected", "connected"]
    rejected = outcomes[2]
    assert isinstance(rejected, quicnet.Disconnected)
    assert rejected.reason == quicnet.DisconnectReason.CERTIFICATE_REJECTED
    assert "game.example" in rejected.message


def test_the_readme_quick_start_code_runs() -> None:
    """The first Python block of README.md, run as a user would paste it (its own process;
    the timeout only stops a broken run: the block loops until its echo arrives)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    assert "quicnet.Server(" in code and "quicnet.Client(" in code
    code += "\nprint('echoed')\n"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "echoed"


@pytest.mark.parametrize("interval", [None, 1e-3])
def test_a_server_freezes_the_collector_only_when_asked(interval: float | None) -> None:
    """Server(gc_freeze_interval=...) calls gc.freeze() from poll() (docs/quic.md, "Garbage
    collection in a server"): the live sessions leave the collector's generations. Off by
    default: then nothing is frozen."""
    with pytest.raises(ValueError):
        quicnet.Server(("127.0.0.1", 0), identity=IDENTITY, gc_freeze_interval=0)
    gc.unfreeze()
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY, gc_freeze_interval=interval)
    client = quicnet.Client(server.address, pin=IDENTITY.fingerprint)
    try:

        def tick() -> None:
            server.poll(0.0)
            client.poll(0.005)

        _until(lambda: client.connected, tick, "the session")
        deadline = time.monotonic() + 0.01
        _until(lambda: time.monotonic() > deadline, tick, "a few more polls")
        assert (gc.get_freeze_count() > 0) == (interval is not None)
    finally:
        gc.unfreeze()
        client.close()
        server.close()
