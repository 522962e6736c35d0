"""The drivers' ``migrate()``: a client moves its connection to a new UDP socket.

Over real loopback sockets: the tick-driven ``UdpClient`` (with the old socket
read for a while after the move, or closed at once) and the asyncio
``QuicClient``, both against quicnet's own server, which must follow, and the
real-time ``quicnet.Client``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

import quicnet
from quicnet.crypto import dev_identity
from quicnet.io.aio import connect, serve
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import (
    PathValidated,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    QuicUsageError,
    StreamDataReceived,
)

IDENT = dev_identity()
BODY = bytes(range(256)) * 400  # 100 KB


def _server_config() -> QuicConfiguration:
    return QuicConfiguration(
        is_client=False,
        certificate_chain=IDENT.certificate_chain,
        private_key=IDENT.private_key,
    )


def _client_config() -> QuicConfiguration:
    return QuicConfiguration(trust_roots=[IDENT.trust_root])


def _answer(conn: QuicConnection, event: QuicEvent) -> None:
    """The server: a stream that ends gets BODY back."""
    if isinstance(event, StreamDataReceived) and event.end_stream:
        conn.send_stream_data(event.stream_id, BODY, end_stream=True)


@pytest.fixture
def pair() -> Iterator[tuple[UdpClient, UdpServer]]:
    server = UdpServer(_server_config())
    client = UdpClient(_client_config(), server.local_address)
    try:
        deadline = time.monotonic() + 20
        conn = client.connection
        # Confirmed, and the server's spare connection IDs have arrived.
        while not (conn.handshake_confirmed and len(conn.cids.peer) > 1):
            assert time.monotonic() < deadline, "no handshake"
            server.poll(0.005)
            client.poll(0.005)
        yield client, server
    finally:
        client.close_socket()
        server.close_socket()


def _stream_bytes(events: list[QuicEvent], into: bytearray) -> None:
    for event in events:
        if isinstance(event, StreamDataReceived):
            into += event.data


@pytest.mark.parametrize("linger", [1.0, 0.0])
def test_udp_client_reads_the_old_socket_while_it_lingers(
    pair: tuple[UdpClient, UdpServer], linger: float
) -> None:
    """What the server sent before the move sits in the old socket: read while the old
    socket lingers, lost when it is closed at once (and then sent again)."""
    client, server = pair
    conn = client.connection
    stream_id = conn.create_stream()
    conn.send_stream_data(stream_id, b"GET", end_stream=True)
    client.flush()
    got = bytearray()
    deadline = time.monotonic() + 10
    answered = False
    while not answered:  # the server answers: a congestion window's worth leaves
        assert time.monotonic() < deadline
        for server_conn, event in server.poll(0.01):
            _answer(server_conn, event)
            answered = answered or isinstance(event, StreamDataReceived)
    server.flush()  # those datagrams are now queued on the client's old socket
    old_port = client.local_address[1]
    old_sock = client.sock
    new_port = client.migrate(linger=linger)[1]
    assert new_port != old_port and conn.path_migrations == 1
    assert len(client.lingering) == (1 if linger else 0)
    for _ in range(5):  # the server is not polled: only what was already sent can arrive
        _stream_bytes(client.poll(0.02), got)
    if linger:
        assert got and BODY.startswith(bytes(got))
    else:
        assert not got
    while len(got) < len(BODY):
        assert time.monotonic() < deadline
        server.poll(0.005)
        _stream_bytes(client.poll(0.005), got)
    assert bytes(got) == BODY
    (server_conn,) = {c for c in server.endpoint.connections.values()}
    assert server_conn.peer_address is not None
    assert server_conn.peer_address[1] == new_port  # the server followed (§9.3)
    while client.lingering:  # its time up, the old socket is closed
        assert time.monotonic() < deadline
        client.poll(0.05)
    assert old_sock.fileno() == -1


def test_udp_client_answers_the_revalidation_of_its_old_address_from_there(
    pair: tuple[UdpClient, UdpServer],
) -> None:
    """RFC 9000 §9.3.3, §8.2.2: the server re-validates the address the client left; its
    challenge reaches the old socket, still read, and the response leaves from that
    socket (whose sender counts it), which validates the old path at the server. The
    server CID used there is retired once the socket closes (§9.5), not before."""
    client, server = pair
    conn = client.connection
    old_port = client.local_address[1]
    old_sender = client.sender
    before = old_sender.datagrams_sent
    old_seq, old_cid = conn.cids.current_peer_sequence, conn.cids.current_peer_cid
    new_port = client.migrate()[1]  # the old socket is read MIGRATION_LINGER seconds
    (server_conn,) = set(server.endpoint.connections.values())
    validated: list[int] = []
    deadline = time.monotonic() + 10
    while not (old_sender.datagrams_sent > before and old_port in validated):
        assert time.monotonic() < deadline
        assert client.lingering, "the old socket closed before the re-validation ended"
        for _, event in server.poll(0.005):
            if isinstance(event, PathValidated):
                validated.append(event.address[1])
        client.poll(0.005)
    assert server_conn.peer_address is not None and server_conn.peer_address[1] == new_port
    assert old_seq in conn.cids.peer and old_cid in server.endpoint.connections  # kept
    while client.lingering or old_cid in server.endpoint.connections:
        assert time.monotonic() < deadline
        server.poll(0.005)
        client.poll(0.005)
    assert old_seq not in conn.cids.peer  # retired (RETIRE_CONNECTION_ID, §5.1.2)
    assert conn.cids.current_peer_cid in server.endpoint.connections


def test_asyncio_client_answers_the_revalidation_of_its_old_address_from_there() -> None:
    """As above, with the asyncio client: the response to the server's challenge to the
    old address leaves from the old socket, and the CID used there is retired when that
    socket closes."""

    async def main() -> None:
        validated: list[int] = []

        def handler(conn: QuicConnection, event: QuicEvent) -> None:
            if isinstance(event, PathValidated):
                validated.append(event.address[1])

        server = await serve("127.0.0.1", 0, _server_config(), handler)
        client = await connect("127.0.0.1", server.local_address[1], _client_config())
        try:
            conn = client.connection
            deadline = time.monotonic() + 10
            while not (conn.handshake_confirmed and len(conn.cids.peer) > 1):
                assert time.monotonic() < deadline, "no spare CID"
                await asyncio.sleep(0.005)
            old_port = client.local_address[1]
            old_sender = client.sender
            before = old_sender.datagrams_sent
            old_seq, old_cid = conn.cids.current_peer_sequence, conn.cids.current_peer_cid
            client.migrate(linger=1.0)
            while not (old_sender.datagrams_sent > before and old_port in validated):
                assert time.monotonic() < deadline
                assert old_seq in conn.cids.peer, "the old socket closed first"
                await asyncio.sleep(0.005)
            while old_cid in server.endpoint.connections:  # retired once the linger ends
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert old_seq not in conn.cids.peer
        finally:
            await client.close()
            await server.close()

    asyncio.run(main())


def test_udp_client_refused_keeps_its_socket() -> None:
    """A move the connection refuses (not confirmed yet) leaves the driver as it was."""
    server = UdpServer(_server_config())
    client = UdpClient(_client_config(), server.local_address)
    try:
        sock = client.sock
        with pytest.raises(QuicUsageError, match="confirmed"):
            client.migrate()
        assert client.sock is sock and client.lingering == ()
    finally:
        client.close_socket()
        server.close_socket()


def test_asyncio_client_migrates() -> None:
    """An exchange, a move with the old socket closed at once, another exchange."""

    async def main() -> tuple[int, int, list[bytes]]:
        server = await serve("127.0.0.1", 0, _server_config(), _answer)
        client = await connect("127.0.0.1", server.local_address[1], _client_config())
        bodies: list[bytes] = []
        new_port = 0
        try:
            conn = client.connection
            for _ in range(2):
                stream_id = conn.create_stream()
                client.send_stream_data(stream_id, b"GET", end_stream=True)
                got = bytearray()
                while len(got) < len(BODY):
                    event = await asyncio.wait_for(client.next_event(), 10)
                    if isinstance(event, StreamDataReceived):
                        got += event.data
                bodies.append(bytes(got))
                if not new_port:  # confirmed, with spare CIDs, by the end of an exchange
                    new_port = client.migrate(linger=0)[1]
            (server_conn,) = {c for c in server.endpoint.connections.values()}
            assert server_conn.peer_address is not None
            return new_port, server_conn.peer_address[1], bodies
        finally:
            await client.close()
            await server.close()

    new_port, server_sees, bodies = asyncio.run(main())
    assert bodies == [BODY, BODY] and server_sees == new_port


def test_realtime_client_migrates() -> None:
    """``quicnet.Client.migrate``: the server reports PeerMigrated to the new port and
    the reliable channel goes on, in order, across the move."""
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENT)
    client = quicnet.Client(server.address, pin=IDENT.fingerprint)
    events: list[object] = []

    def run_until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not condition():
            assert time.monotonic() < deadline, "not reached within 15 s"
            events.extend(server.poll(0.002))
            client.poll(0.0)

    try:
        run_until(lambda: client.connected and len(client.core.connection.cids.peer) > 1)
        for i in range(5):
            client.send(0, b"before %d" % i)
        new_port = client.migrate(linger=0)[1]
        for i in range(5):
            client.send(0, b"after %d" % i)
        run_until(
            lambda: (
                sum(isinstance(e, quicnet.MessageReceived) for e in events) == 10
                and any(isinstance(e, quicnet.PeerMigrated) for e in events)
            )
        )
    finally:
        client.close()
        server.close()
    messages = [e.data for e in events if isinstance(e, quicnet.MessageReceived)]
    assert messages == [b"before %d" % i for i in range(5)] + [b"after %d" % i for i in range(5)]
    (moved,) = [e for e in events if isinstance(e, quicnet.PeerMigrated)]
    assert moved.new_address[1] == new_port


def test_realtime_client_answers_from_its_old_socket() -> None:
    """``quicnet.Client.migrate`` (the same socket driver, a real-time core in between):
    the response to the server's challenge to the old address leaves from the old
    socket (RFC 9000 §8.2.2), and the CID used there is retired once it closes."""
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENT)
    client = quicnet.Client(server.address, pin=IDENT.fingerprint)

    def run_until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 15
        while not condition():
            assert time.monotonic() < deadline, "not reached within 15 s"
            server.poll(0.002)
            client.poll(0.0)

    try:
        conn = client.core.connection
        run_until(lambda: client.connected and len(conn.cids.peer) > 1)
        old_sender, old_seq = client.sender, conn.cids.current_peer_sequence
        before = old_sender.datagrams_sent
        client.migrate(linger=1.0)
        run_until(lambda: old_sender.datagrams_sent > before or not client.lingering)
        assert old_sender.datagrams_sent > before and old_seq in conn.cids.peer
        run_until(lambda: old_seq not in conn.cids.peer)
        assert not client.lingering
    finally:
        client.close()
        server.close()
