"""The asyncio client's next_event: callers wait for the connection's events over real
UDP sockets on loopback; one that gives up (cancelled, a timeout) leaves the others
waiting, and the next event reaches whoever still waits."""

from __future__ import annotations

import asyncio
import contextlib

from quicnet.crypto import dev_identity
from quicnet.io.aio import connect, serve
from quicnet.quic import DatagramReceived, QuicConfiguration, QuicConnection, QuicEvent

DEADLINE = 30.0


def test_a_cancelled_wait_leaves_the_other_waiters_and_the_next_event() -> None:
    ident = dev_identity()
    server_config = QuicConfiguration(
        is_client=False,
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
        max_datagram_frame_size=65536,
    )
    client_config = QuicConfiguration(trust_roots=[ident.trust_root], max_datagram_frame_size=65536)

    def handler(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, DatagramReceived):
            conn.send_datagram(b"echo " + event.data)

    async def next_datagram(client: object) -> bytes:
        while True:
            event = await client.next_event()  # type: ignore[attr-defined]
            if isinstance(event, DatagramReceived):
                return event.data

    async def scenario() -> tuple[bool, bytes, bytes]:
        server = await serve("127.0.0.1", 0, server_config, handler)
        client = await asyncio.wait_for(
            connect("127.0.0.1", server.local_address[1], client_config), DEADLINE
        )
        try:
            # Two callers wait; nothing comes; one gives up.
            quitter = asyncio.ensure_future(next_datagram(client))
            stayer = asyncio.ensure_future(next_datagram(client))
            await asyncio.sleep(0)
            quitter.cancel()
            await asyncio.gather(quitter, return_exceptions=True)
            client.send_datagram(b"one")
            first = await asyncio.wait_for(stayer, DEADLINE)
            # A wait that timed out before the answer came does not hold the next one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(next_datagram(client), 0)
            client.send_datagram(b"two")
            second = await asyncio.wait_for(next_datagram(client), DEADLINE)
            return quitter.cancelled(), first, second
        finally:
            await client.close()
            await server.close()

    cancelled, first, second = asyncio.run(scenario())
    assert cancelled
    assert (first, second) == (b"echo one", b"echo two")
