"""A server's preferred address (RFC 9000 §9.6) over real loopback sockets.

quicnet's server listens on 127.0.0.1 port A and offers 127.0.0.1 port B (a
second socket the drivers bind); quicnet's client moves there after the
handshake. A counting wrapper around the server's socket B shows that the
client's packets really arrived there, and the download is checked byte for
byte. The tick-driven ``UdpServer`` and the asyncio ``QuicServer`` both.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
from counting_socket import CountingSocket

from quicnet.crypto import dev_identity
from quicnet.io.aio import QuicServer, connect, serve
from quicnet.io.udp import (
    UdpClient,
    UdpServer,
    loopback_configuration,
    open_preferred_sockets,
    open_udp_socket,
)
from quicnet.quic import QuicConfiguration, QuicConnection, QuicEvent, StreamDataReceived
from quicnet.quic.ecn import EcnValidation
from quicnet.quic.endpoint import QuicEndpoint

IDENT = dev_identity()
BODY = hashlib.sha256(b"preferred").digest() * 20_000  # 640 KB


def _server_config(host: str = "127.0.0.1") -> QuicConfiguration:
    # Port 0: the driver binds a port and offers that one.
    if ":" in host:
        return QuicConfiguration(
            is_client=False,
            certificate_chain=IDENT.certificate_chain,
            private_key=IDENT.private_key,
            preferred_address_v6=(host, 0),
        )
    return QuicConfiguration(
        is_client=False,
        certificate_chain=IDENT.certificate_chain,
        private_key=IDENT.private_key,
        preferred_address_v4=(host, 0),
    )


def _client_config() -> QuicConfiguration:
    return QuicConfiguration(trust_roots=[IDENT.trust_root], server_name="localhost")


def _answer(conn: QuicConnection, event: QuicEvent) -> None:
    if isinstance(event, StreamDataReceived) and event.end_stream:
        conn.send_stream_data(event.stream_id, BODY, end_stream=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_udp_client_moves_to_the_udp_servers_preferred_address(host: str) -> None:
    server = UdpServer(_server_config(host), host)
    (sock_b, address_b, sender_b) = server.preferred[0]
    counter = CountingSocket(sock_b)
    server.preferred = ((counter, address_b, sender_b),)  # type: ignore[assignment]
    address_a = server.local_address
    assert address_b[1] != address_a[1]
    client = UdpClient(_client_config(), address_a)
    try:
        conn = client.connection
        deadline = time.monotonic() + 20
        while conn.peer_address != address_b:
            assert time.monotonic() < deadline, "the client did not move"
            server.poll(0.005)
            client.poll(0.005)
        stream_id = conn.create_stream()
        conn.send_stream_data(stream_id, b"GET /", end_stream=True)
        client.flush()
        got = bytearray()
        ended = False
        while not ended:
            assert time.monotonic() < deadline, f"{len(got)} bytes of {len(BODY)}"
            for server_conn, event in server.poll(0.002):
                _answer(server_conn, event)
            for event in client.poll(0.002):
                if isinstance(event, StreamDataReceived):
                    got += event.data
                    ended = event.end_stream
        assert bytes(got) == BODY
        (server_conn,) = set(server.endpoint.connections.values())
        current = server_conn.paths.current
        assert current is not None and current.local == address_b  # sends from B
        assert counter.received > 10  # the request and the ACKs of the download
        assert conn.path_migrations == 1
        if sender_b.ecn:  # Linux: ECN read and marked on socket B too (RFC 9000 §13.4)
            assert server_conn.ecn.state == conn.ecn.state == EcnValidation.CAPABLE
    finally:
        client.close_socket()
        server.close_socket()


def test_aio_client_moves_to_the_aio_servers_preferred_address() -> None:
    async def main() -> None:
        seen: list[QuicConnection] = []

        def handler(conn: QuicConnection, event: QuicEvent) -> None:
            seen.append(conn)
            _answer(conn, event)

        # What serve() does, with socket B wrapped to count what reaches it.
        config, ((sock_b, address_b),) = open_preferred_sockets(_server_config())
        counter = CountingSocket(sock_b)
        server = QuicServer(QuicEndpoint(loopback_configuration(config, "127.0.0.1")), handler)
        server.attach(open_udp_socket("127.0.0.1", 0))
        server.attach_preferred(counter, address_b)  # type: ignore[arg-type]
        assert server.preferred_addresses == [address_b]
        assert address_b[1] != server.local_address[1]
        try:
            client = await connect("127.0.0.1", server.local_address[1], _client_config())
            conn = client.connection
            deadline = time.monotonic() + 20
            while conn.peer_address != address_b:
                assert time.monotonic() < deadline, "the client did not move"
                await asyncio.sleep(0.01)
            stream_id = conn.create_stream()
            client.send_stream_data(stream_id, b"GET /", end_stream=True)
            got = bytearray()
            async for event in client.events():
                if isinstance(event, StreamDataReceived) and event.stream_id == stream_id:
                    got += event.data
                    if event.end_stream:
                        break
            assert bytes(got) == BODY
            current = seen[0].paths.current
            # The server sends from B; the client's request and ACKs reached socket B.
            assert current is not None and current.local == address_b
            assert counter.received > 3 and conn.path_migrations == 1
            await client.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_serve_binds_the_preferred_address_and_offers_the_port_it_got() -> None:
    """``serve`` with ``preferred_address_v4=("127.0.0.1", 0)``: a socket on a port of
    its own, and that port in the transport parameter the client receives."""

    async def main() -> None:
        server = await serve("127.0.0.1", 0, _server_config(), _answer)
        try:
            (address_b,) = server.preferred_addresses
            assert address_b[1] not in (0, server.local_address[1])
            client = await connect("127.0.0.1", server.local_address[1], _client_config())
            params = client.connection.remote_params
            assert params is not None and params.preferred_address is not None
            assert params.preferred_address.ipv4_port == address_b[1]
            assert params.preferred_address.ipv4_address == bytes((127, 0, 0, 1))
            await client.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 30))
