"""Connection migration on loopback, under the interop runner's test names.

- connectionmigration: quicnet's client moves to a new local port mid-download
  (``UdpClient.migrate``); the server must validate the new path and follow;
- rebind-port: a relay changes the client's source port mid-download (NAT
  rebinding); the server must follow a client that did nothing;
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from interop_peers import (  # noqa: F401  (fixtures are used by name)
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
    sha256,
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
