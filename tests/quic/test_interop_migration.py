"""Connection migration on loopback, under the interop runner's test names.

- connectionmigration: quicnet's client moves to a new local port mid-download
  (``UdpClient.migrate``); the server must validate the new path and follow;
- rebind-port: a relay changes the client's source port mid-download (NAT
  rebinding); the server must follow a client that did nothing;
- rebind-addr: the relay's new source is another address (127.0.0.1 ->
  127.0.0.2, both loopback on Linux), which the server must validate and for
  which it must start its congestion state afresh (RFC 9000 §9.4); peer clients
  download from quicnet's server through the relay too;
- keyupdate under migration: the client updates its keys as it moves.

The servers are aioquic, qh3 and quicnet's own endpoint. Each move closes the
old socket at once (``linger=0``), so a server that did not follow would
strand the download: completing it with the right hash is the proof, and
where the server can be asked, its idea of the client's address is checked
too.
"""

# The shared fixtures (stack, ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from interop_peers import (  # noqa: F401  (fixtures are used by name)
    STACKS,
    PeerApp,
    QuicnetClient,
    QuicnetServer,
    closing,
    hard_timeout,
    ident,
    load_stack,
    payload,
    peer_config,
    peer_loop,
    peer_server,
    pump,
    quicnet_client_config,
    quicnet_server_config,
    relay,
    run_peer_client,
    sha256,
    wait_future,
)

SERVERS = ("aioquic", "qh3", "quicnet")
BODY = payload(5_000_000, seed=40)
FILES = {"/big.bin": BODY}


@dataclass
class Server:
    """A server under test: where it listens, what to poll, where it sends to now."""

    address: tuple[str, int]
    drivers: tuple[Any, ...]
    #: The client address the server sends to now (None: the stack does not say).
    peer_address: Callable[[], tuple[str, int] | None]


@contextlib.contextmanager
def _server(name: str, ident: Any, loop: Any) -> Iterator[Server]:
    if name == "quicnet":
        server = QuicnetServer(quicnet_server_config(ident), FILES)

        def quicnet_peer() -> tuple[str, int] | None:
            (rec,) = server.connections
            address = rec.conn.peer_address
            return None if address is None else (str(address[0]), int(address[1]))

        with closing(server):
            yield Server(server.address, (server,), quicnet_peer)
        return
    stack = load_stack(name)
    app = PeerApp(files=dict(FILES))
    with peer_server(loop, stack, peer_config(stack, ident, is_client=False), app) as ps:

        def peer() -> tuple[str, int] | None:
            quic = app.protocols[0]._quic
            paths = getattr(quic, "_network_paths", None)  # aioquic's; qh3 2.x keeps it native
            if not paths:
                return None
            return loop.call(lambda: tuple(paths[0].addr[:2]))  # type: ignore[no-any-return]

        yield Server(ps.address, (), peer)


def _download(
    client: QuicnetClient, server: Server, actions: dict[int, Callable[[], None]]
) -> bytes:
    """GET /big.bin; run each action once that many body bytes have arrived."""
    slot = client.request(b"GET /big.bin\r\n")
    drivers = (client, *server.drivers)
    for threshold, action in sorted(actions.items()):
        pump(*drivers, until=lambda t=threshold: client.rec.stream_bytes >= t)  # type: ignore[misc]
        assert client.response(slot) is None, "the download outran the action"
        action()
    pump(*drivers, until=lambda: client.response(slot) is not None)
    body = client.response(slot)
    assert body is not None
    return body


@pytest.mark.parametrize("server_name", SERVERS)
def test_connectionmigration(server_name: str, ident: Any, peer_loop: Any) -> None:
    """The client moves twice mid-download; each move closes the old socket at once."""
    with _server(server_name, ident, peer_loop) as server:
        client = QuicnetClient(quicnet_client_config(ident), server.address)
        with closing(client):
            pump(client, *server.drivers, until=lambda: client.connected)
            ports = [client.driver.local_address[1]]
            cids = [client.conn.cids.current_peer_cid]

            def move() -> None:
                ports.append(client.driver.migrate(linger=0)[1])
                cids.append(client.conn.cids.current_peer_cid)

            body = _download(client, server, {1_000_000: move, 3_000_000: move})
            assert sha256(body) == sha256(BODY)
            pump(*(client, *server.drivers), until=lambda: not client.conn.paths.active)
            peer = server.peer_address()
            assert client.conn.path_migrations == 2
            assert client.rec.terminated is None
    assert len(set(ports)) == 3 and len(set(cids)) == 3  # a new port and CID each time
    if peer is not None:
        assert peer == ("127.0.0.1", ports[-1])


@pytest.mark.parametrize("server_name", SERVERS)
def test_rebind_port(server_name: str, ident: Any, peer_loop: Any) -> None:
    """A NAT between client and server picks a new source port mid-download."""
    with _server(server_name, ident, peer_loop) as server, relay(server.address) as wire:
        client = QuicnetClient(quicnet_client_config(ident), wire.address)
        with closing(client):
            pump(client, *server.drivers, until=lambda: client.connected)
            ports = [wire.back.getsockname()[1]]
            body = _download(client, server, {1_000_000: lambda: ports.append(wire.rebind()[1])})
            assert sha256(body) == sha256(BODY)
            assert wire.rebound_s2c > 0  # the server sent to the new port
            peer = server.peer_address()
            assert client.conn.path_migrations == 0  # the client never knew
    if peer is not None:
        assert peer == ("127.0.0.1", ports[-1]) and ports[0] != ports[-1]


@pytest.mark.parametrize("server_name", SERVERS)
def test_keyupdate_under_migration(server_name: str, ident: Any, peer_loop: Any) -> None:
    """The client starts a key update and moves at once, twice: both complete."""
    with _server(server_name, ident, peer_loop) as server:
        client = QuicnetClient(quicnet_client_config(ident), server.address)
        with closing(client):
            pump(client, *server.drivers, until=lambda: client.connected)
            conn = client.conn

            def update_and_move() -> None:
                pump(*(client, *server.drivers), until=lambda: conn.keys.update_confirmed)
                conn.request_key_update()
                client.driver.migrate(linger=0)

            body = _download(
                client, server, {1_000_000: update_and_move, 3_000_000: update_and_move}
            )
            assert sha256(body) == sha256(BODY)
            assert conn.key_updates == 2 and conn.path_migrations == 2
            assert conn.recv_key_phase == conn.key_phase == 0  # the server followed both
            assert client.rec.terminated is None


#: The address a rebind-addr relay moves the client to.
OTHER_LOOPBACK = "127.0.0.2"


def _other_loopback_bindable() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((OTHER_LOOPBACK, 0))
        except OSError:
            return False
    return True


needs_other_loopback = pytest.mark.skipif(
    not _other_loopback_bindable(),
    reason=f"{OTHER_LOOPBACK} not bindable on this host (only Linux routes all of 127/8 to "
    "loopback); lifts on a host where it is, or with that address added to lo",
)


@needs_other_loopback
@pytest.mark.parametrize("server_name", SERVERS)
def test_rebind_addr(server_name: str, ident: Any, peer_loop: Any) -> None:
    """Mid-download, the client's datagrams start coming from 127.0.0.2 instead of 127.0.0.1."""
    with _server(server_name, ident, peer_loop) as server, relay(server.address) as wire:
        client = QuicnetClient(quicnet_client_config(ident), wire.address)
        with closing(client):
            pump(client, *server.drivers, until=lambda: client.connected)
            old = wire.back.getsockname()
            moved: list[tuple[str, int]] = []
            body = _download(
                client, server, {1_000_000: lambda: moved.append(wire.rebind(OTHER_LOOPBACK))}
            )
            assert sha256(body) == sha256(BODY)
            assert wire.rebound_s2c > 0  # the server sent to the new address
            peer = server.peer_address()
            assert client.conn.path_migrations == 0  # the client never knew
            if server_name == "quicnet":
                (rec,) = server.drivers[0].connections
                assert (old, moved[0]) in rec.address_changes
                assert moved[0] in rec.validated  # the server challenged the new address
    assert old[0] == "127.0.0.1" and moved[0][0] == OTHER_LOOPBACK
    if peer is not None:
        assert peer == moved[0]


@needs_other_loopback
@pytest.mark.parametrize("stack_name", STACKS)
def test_rebind_addr_peer_client(stack_name: str, ident: Any, peer_loop: Any) -> None:
    """A peer client downloads from quicnet's server and its address changes mid-way."""
    stack = load_stack(stack_name)
    server = QuicnetServer(quicnet_server_config(ident), FILES)
    with closing(server), relay(server.address) as wire:

        async def scenario(p: Any) -> bytes:
            return bytes(await p.get("/big.bin"))

        config = peer_config(stack, ident, is_client=True)
        future = peer_loop.submit(run_peer_client(stack, config, wire.address, scenario))
        pump(server, until=lambda: future.done() or wire.bytes["s2c"] >= 1_000_000)
        assert not future.done(), "the download outran the rebinding"
        old = wire.back.getsockname()
        new = wire.rebind(OTHER_LOOPBACK)
        body = wait_future(future, server)
        assert wire.rebound_s2c > 0
        (rec,) = server.connections
        assert rec.conn.peer_address == new
        assert (old, new) in rec.address_changes
        assert new in rec.validated
    assert sha256(body) == sha256(BODY)
    assert old[0] == "127.0.0.1" and new[0] == OTHER_LOOPBACK
