"""The asyncio client holds a fast sender at one flow-control window while its
application does not read (RFC 9000 §4), over real UDP sockets on loopback.

Before, the driver moved every event into an unbounded asyncio.Queue as it
arrived, which counted as consumed: MAX_DATA kept rising and the whole
download sat in memory whether or not anyone read it.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from quicnet.crypto import dev_identity
from quicnet.io.aio import connect, serve
from quicnet.quic import (
    ConnectionTerminated,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
)

DEADLINE = 30.0
BODY = hashlib.shake_256(b"backpressure").digest(6 << 20)  # 6 MiB, more than the 4 MiB window


def test_a_client_that_does_not_read_stops_the_server_at_its_window() -> None:
    ident = dev_identity()
    server_config = QuicConfiguration(
        is_client=False, certificate_chain=ident.certificate_chain, private_key=ident.private_key
    )
    # No server_name: connect() verifies the host it connects to (an IP address here)
    # without writing it into the caller's configuration.
    client_config = QuicConfiguration(trust_roots=[ident.trust_root])
    window = client_config.initial_max_stream_data

    def handler(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.end_stream:
            conn.send_stream_data(event.stream_id, BODY, end_stream=True)

    async def scenario() -> tuple[int, int, bytes]:
        server = await serve("127.0.0.1", 0, server_config, handler)
        client = await asyncio.wait_for(
            connect("127.0.0.1", server.local_address[1], client_config), DEADLINE
        )
        try:
            stream_id = client.connection.create_stream()
            client.send_stream_data(stream_id, b"GET", end_stream=True)
            streams = client.connection.streams

            async def window_full() -> None:
                while streams.data_received < window:
                    await asyncio.sleep(0.005)

            # The server sends one stream window; the client's application reads nothing.
            await asyncio.wait_for(window_full(), DEADLINE)
            await asyncio.sleep(0.3)  # many round trips on loopback: nothing more may arrive
            held = streams.data_received
            credit = streams.max_data_local
            got = bytearray()
            async for event in client.events():
                assert not isinstance(event, ConnectionTerminated), event
                if isinstance(event, StreamDataReceived):
                    got += event.data
                    if event.end_stream:
                        break
            return held, credit, bytes(got)
        finally:
            await client.close()
            await server.close()

    held, credit, got = asyncio.run(asyncio.wait_for(scenario(), 2 * DEADLINE))
    assert held == window  # exactly one stream window arrived while nobody read
    assert credit == client_config.initial_max_data  # and no MAX_DATA was given for it
    assert got == BODY  # once read, everything arrives, in order
    assert client_config.server_name is None


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_bulk_upload_wakes_the_timer_rarely_on_either_loop(loop: str) -> None:
    """uvloop's clock moves in whole milliseconds: with it as the core's clock, pacing
    deadlines microseconds ahead woke the driver at the same "now" again and again."""
    if loop == "uvloop":
        uvloop = pytest.importorskip(
            "uvloop", reason="uvloop is not installed (pip install uvloop)"
        )
    ident = dev_identity()
    server_config = QuicConfiguration(
        is_client=False, certificate_chain=ident.certificate_chain, private_key=ident.private_key
    )
    done: asyncio.Future[int] | None = None
    received = 0

    def handler(conn: QuicConnection, event: QuicEvent) -> None:
        nonlocal received
        if isinstance(event, StreamDataReceived):
            received += len(event.data)
            if event.end_stream and done is not None and not done.done():
                done.set_result(received)

    async def scenario() -> tuple[int, int]:
        nonlocal done
        done = asyncio.get_running_loop().create_future()
        server = await serve("127.0.0.1", 0, server_config, handler)
        config = QuicConfiguration(server_name="localhost", trust_roots=[ident.trust_root])
        client = await asyncio.wait_for(connect("127.0.0.1", server.local_address[1], config), 10)
        try:
            stream_id = client.connection.create_stream()
            chunk = bytes(1 << 16)
            for _ in range(64):  # 4 MiB
                client.send_stream_data(stream_id, chunk)
                await asyncio.sleep(0)
            client.send_stream_data(stream_id, b"", end_stream=True)
            total = await asyncio.wait_for(done, DEADLINE)
            return total, client.timer_wakeups
        finally:
            await client.close()
            await server.close()

    main = asyncio.wait_for(scenario(), 2 * DEADLINE)
    total, wakeups = asyncio.run(main) if loop == "asyncio" else uvloop.run(main)
    assert total == 64 << 16
    # A few per round trip at most (the loss timer, pacing); the bug made it tens of thousands.
    assert wakeups < 2000
