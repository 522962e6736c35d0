"""A failing handler in the asyncio driver is confined to its connection.

Real UDP sockets on loopback, the server and two clients on one event loop.
Before the fix the handler's exception escaped into the loop's reader
callback: the loop's exception handler saw it, ``transmit()`` was skipped and
the connection stayed open as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from quicnet.crypto import dev_identity
from quicnet.io.aio import QuicClient, connect, serve
from quicnet.quic import (
    ConnectionTerminated,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
    TransportErrorCode,
)

#: Upper bound for any one wait; the waits end on events, this only stops a hang.
DEADLINE = 20.0


async def _echo(client: QuicClient, data: bytes) -> bytes:
    """Send ``data`` on a new bidirectional stream and collect the echo up to its end."""
    stream_id = client.connection.create_stream()
    client.send_stream_data(stream_id, data, end_stream=True)
    got = bytearray()
    async for event in client.events():
        if isinstance(event, StreamDataReceived) and event.stream_id == stream_id:
            got += event.data
            if event.end_stream:
                return bytes(got)
        assert not isinstance(event, ConnectionTerminated), event
    raise AssertionError("the connection ended before the echo")


async def _terminated(client: QuicClient) -> ConnectionTerminated:
    async for event in client.events():
        if isinstance(event, ConnectionTerminated):
            return event
    raise AssertionError("unreachable: events() ends with ConnectionTerminated")


def _run_scenario(make_handler: Callable[[], Any]) -> tuple[ConnectionTerminated, bytes, list[Any]]:
    """Two clients; the first sends b"boom", which the handler fails on."""
    ident = dev_identity()
    server_config = QuicConfiguration(
        is_client=False,
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
    )

    def client_config() -> QuicConfiguration:
        return QuicConfiguration(server_name="localhost", trust_roots=[ident.trust_root])

    async def scenario() -> tuple[ConnectionTerminated, bytes, list[Any]]:
        loop = asyncio.get_running_loop()
        escaped: list[Any] = []
        loop.set_exception_handler(lambda _loop, context: escaped.append(context))
        server = await serve("127.0.0.1", 0, server_config, make_handler())
        port = server.local_address[1]
        try:
            good = await asyncio.wait_for(connect("127.0.0.1", port, client_config()), DEADLINE)
            bad = await asyncio.wait_for(connect("127.0.0.1", port, client_config()), DEADLINE)
            assert await asyncio.wait_for(_echo(good, b"before"), DEADLINE) == b"before"
            stream_id = bad.connection.create_stream()
            bad.send_stream_data(stream_id, b"boom", end_stream=True)
            closed = await asyncio.wait_for(_terminated(bad), DEADLINE)
            after = await asyncio.wait_for(_echo(good, b"after"), DEADLINE)
            await good.close()
            bad.detach()
        finally:
            await server.close()
        return closed, after, escaped

    return asyncio.run(scenario())


def _sync_handler() -> Callable[[QuicConnection, QuicEvent], None]:
    def handle(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if event.data == b"boom":
                raise RuntimeError("handler bug")
            conn.send_stream_data(event.stream_id, event.data, event.end_stream)

    return handle


def _async_handler() -> Callable[[QuicConnection, QuicEvent], Awaitable[None] | None]:
    def handle(conn: QuicConnection, event: QuicEvent) -> Awaitable[None] | None:
        if isinstance(event, StreamDataReceived):
            if event.data == b"boom":

                async def fail() -> None:
                    await asyncio.sleep(0)  # fail later, in a task of its own
                    raise RuntimeError("handler bug")

                return fail()
            conn.send_stream_data(event.stream_id, event.data, event.end_stream)
        return None

    return handle


@pytest.mark.parametrize("make_handler", [_sync_handler, _async_handler], ids=["sync", "async"])
def test_a_failing_handler_closes_only_its_connection(
    make_handler: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="quicnet")
    closed, after, escaped = _run_scenario(make_handler)
    # The failing connection was closed by the server with INTERNAL_ERROR (RFC 9000 §20.1).
    assert closed.by_peer and not closed.is_application
    assert closed.error_code == TransportErrorCode.INTERNAL_ERROR
    # The other connection on the same server kept working.
    assert after == b"after"
    # Nothing reached the event loop's exception handler; the failure was logged instead.
    assert escaped == []
    assert "handler bug" in caplog.text
