"""ECN (RFC 9000 §13.4) through the real-time drivers, on loopback sockets.

The tick-driven and asyncio real-time servers and clients read each datagram's
ECN codepoint and send ECT(0) as their connections decide, as the QUIC drivers
do: loopback keeps the TOS byte, so both sides count the other's marks and
validate the path (ECN capable). Before, they sent Not-ECT and read no marks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

import quicnet
from quicnet.io.udp import ECN_PLATFORM
from quicnet.quic import QuicConnection
from quicnet.quic.ecn import ECT0, EcnValidation
from quicnet.realtime import ServerCore

IDENTITY = quicnet.dev_identity()

pytestmark = pytest.mark.skipif(
    not ECN_PLATFORM, reason="reading ECN marks needs Linux's IP_RECVTOS/IPV6_RECVTCLASS"
)


def _server_connection(core: ServerCore) -> QuicConnection:
    (conn,) = set(core.endpoint.connections.values())
    return conn


def _validated(server: QuicConnection, client: QuicConnection) -> bool:
    return server.ecn.state == EcnValidation.CAPABLE and client.ecn.state == EcnValidation.CAPABLE


def _until(condition: Callable[[], bool], tick: Callable[[], None]) -> None:
    end = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < end, "not reached"
        tick()


def test_tick_driven_server_and_client_mark_and_count_ect0() -> None:
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY)
    client = quicnet.Client(server.address, pin=IDENTITY.fingerprint)
    try:
        assert server.ecn and client.ecn

        def tick() -> None:
            for event in server.poll(0.0):
                if isinstance(event, quicnet.MessageReceived):
                    server.send(event.peer, event.channel, event.data)
            if client.connected:
                client.send(0, b"input")
            client.poll(0.005)

        _until(lambda: client.connected, tick)
        conn = _server_connection(server.core)
        _until(lambda: _validated(conn, client.core.connection), tick)
        assert conn.ecn.received_counts(2)[ECT0] > 0
        assert client.core.connection.ecn.received_counts(2)[ECT0] > 0
    finally:
        client.close()
        server.close()


def test_asyncio_server_and_client_mark_and_count_ect0() -> None:
    async def scenario() -> tuple[int, int, str, str]:
        server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY)
        client = await quicnet.connect(server.address, pin=IDENTITY.fingerprint)
        try:
            assert server.ecn and client.ecn
            conn = _server_connection(server.core)
            end = time.monotonic() + 30
            while not _validated(conn, client.core.connection) and time.monotonic() < end:
                client.send(0, b"input")
                await asyncio.sleep(0.005)
            return (
                conn.ecn.received_counts(2)[ECT0],
                client.core.connection.ecn.received_counts(2)[ECT0],
                conn.ecn.state,
                client.core.connection.ecn.state,
            )
        finally:
            client.close()
            server.close()

    server_ect0, client_ect0, server_state, client_state = asyncio.run(scenario())
    assert server_ect0 > 0 and client_ect0 > 0
    assert server_state == client_state == EcnValidation.CAPABLE
