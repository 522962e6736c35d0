"""Negative tests over real sockets: ``quicnet.tls.start_server`` on 127.0.0.1.

A raw TCP client sends a malformed first flight and reads back exactly the
unprotected alert record (15 03 03 00 02 02 XX) before the server closes;
a genuine quicnet client is then served normally by the same server. The
last tests put a hand-driven server behind a socket to check that a record
truncated by TCP EOF surfaces as EOF at ``open_connection``'s reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket

import pytest
from test_negative_helpers import (
    ALERT,
    APPLICATION_DATA,
    Puppet,
    alert_bytes,
    client_config,
    client_hello,
    hello_record,
    server_config,
    with_extension,
    without_extension,
)

from quicnet.tls import (
    AlertDescription,
    Epoch,
    ProtocolViolation,
    open_connection,
    start_server,
)
from quicnet.tls import extensions as ext
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import Extension

A = AlertDescription
TIMEOUT = 20  # a bound on a hung test, not a timing assertion


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT))


async def echo_upper(reader, writer):
    data = await reader.read(1000)
    writer.write(data.upper())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def raw_exchange(port: int, data: bytes, *, eof: bool = False) -> bytes:
    """Send ``data`` over plain TCP (then EOF if asked); read all until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if eof:
        writer.write_eof()
    reply = await reader.read()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return reply


async def good_client(port: int, **kwargs) -> bytes:
    reader, writer = await open_connection("127.0.0.1", port, client_config(**kwargs))
    writer.write(b"still serving?")
    await writer.drain()
    reply = await reader.read(100)
    writer.close()
    await writer.wait_closed()
    return reply


def hello_without(ext_type: int) -> bytes:
    return hello_record(without_extension(client_hello(), ext_type))


def duplicate_groups() -> bytes:
    hello = client_hello()
    groups = next(e for e in hello.extensions if e.type == ET.supported_groups)
    return hello_record(with_extension(hello, groups, replace=False))


CASES = {
    "tls12-only": (hello_without(ET.supported_versions), A.protocol_version),
    "compression": (hello_record(client_hello(compression=b"\x01\x00")), A.illegal_parameter),
    "duplicate-extension": (duplicate_groups(), A.illegal_parameter),
    "key_share-without-groups": (hello_without(ET.supported_groups), A.missing_extension),
    "unknown-handshake-type": (hello_record(b"\x63\x00\x00\x01\x00"), A.unexpected_message),
    "record-overflow": (b"\x16\x03\x01\x40\x01", A.record_overflow),
    "http-request": (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", A.unexpected_message),
    "alpn-mismatch": (
        hello_record(
            with_extension(
                client_hello(),
                Extension(ET.application_layer_protocol_negotiation, ext.encode_alpn(["http/1.1"])),
            )
        ),
        A.no_application_protocol,
    ),
    "no-common-suite": (hello_record(client_hello(suites=(0xC02F,))), A.handshake_failure),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_first_flight_gets_the_plaintext_alert_and_the_server_keeps_serving(case):
    data, alert = CASES[case]

    async def scenario():
        server = await start_server(
            echo_upper, "127.0.0.1", 0, server_config(alpn_protocols=["h2"])
        )
        port = server.sockets[0].getsockname()[1]
        try:
            reply = await raw_exchange(port, data)
            assert reply == alert_bytes(alert)
            assert reply == bytes((0x15, 0x03, 0x03, 0x00, 0x02, 0x02, alert))
            assert await good_client(port, alpn_protocols=["h2"]) == b"STILL SERVING?"
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())


def test_eof_in_the_middle_of_the_client_hello_sends_nothing_and_the_server_keeps_serving():
    async def scenario():
        server = await start_server(echo_upper, "127.0.0.1", 0, server_config())
        port = server.sockets[0].getsockname()[1]
        try:
            assert await raw_exchange(port, hello_record(client_hello())[:40], eof=True) == b""
            assert await good_client(port) == b"STILL SERVING?"
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())


# A server that cuts its last record short ----------------------------------------------------------
async def read_until(reader: asyncio.StreamReader, puppet: Puppet, done) -> None:
    buf = b""
    while not done():
        chunk = await reader.read(65536)
        assert chunk, "the client closed early"
        buf += chunk
        whole = 0
        while len(buf) - whole >= 5:
            size = 5 + int.from_bytes(buf[whole + 3 : whole + 5], "big")
            if len(buf) - whole < size:
                break
            whole += size
        puppet.receive(buf[:whole])
        buf = buf[whole:]


def test_record_truncated_by_tcp_eof_surfaces_as_eof_without_its_data():
    async def truncating_server(reader, writer):
        puppet = await handshake_as_puppet(reader, writer)
        whole = puppet.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"complete record")
        cut = puppet.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"never delivered")
        writer.write(whole + cut[: len(cut) // 2])
        await writer.drain()
        writer.close()

    async def scenario():
        server = await asyncio.start_server(truncating_server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await open_connection("127.0.0.1", port, client_config())
            assert writer.handshake is not None
            data = await reader.read()  # up to EOF
            assert data == b"complete record"
            assert writer.connection.peer_closed is False  # no close_notify came
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())


async def forging_scenario(forging_server, client_side) -> None:
    server = await asyncio.start_server(forging_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await open_connection("127.0.0.1", port, client_config())
        try:
            await client_side(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def handshake_as_puppet(reader, writer) -> Puppet:
    puppet = Puppet.server()
    await read_until(reader, puppet, lambda: puppet.engine.state != "START")
    writer.write(puppet.records(puppet.flight(), one_per_message=False))
    await read_until(reader, puppet, lambda: puppet.engine.handshake_complete)
    return puppet


def forged(puppet: Puppet, data: bytes) -> bytes:
    bad = bytearray(puppet.protect(Epoch.ONE_RTT, APPLICATION_DATA, data))
    bad[-1] ^= 1
    return bytes(bad)


def test_forged_record_from_the_server_raises_at_the_reader_and_sends_bad_record_mac():
    answers: list[list[tuple[int, bytes]]] = []

    async def forging_server(reader, writer):
        puppet = await handshake_as_puppet(reader, writer)
        writer.write(puppet.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"genuine"))
        n = len(puppet.received)
        await read_until(reader, puppet, lambda: len(puppet.received) > n)  # the client's ack
        writer.write(forged(puppet, b"forged"))
        await writer.drain()
        rest = await reader.read()  # what the client sends before it closes
        answers.append(puppet.receive(rest, feed=False) + puppet.received[n:])

    async def client_side(reader, writer):
        assert await reader.readexactly(7) == b"genuine"
        writer.write(b"ack")
        await writer.drain()
        with pytest.raises(ProtocolViolation) as info:
            await reader.read()
        assert info.value.alert == A.bad_record_mac
        with pytest.raises(ProtocolViolation):
            writer.write(b"more")  # the stream stays broken

    run(forging_scenario(forging_server, client_side))
    (answer,) = answers
    assert (APPLICATION_DATA, b"ack") in answer
    assert answer[-1] == (ALERT, bytes((2, A.bad_record_mac)))


def test_data_before_a_forged_record_in_the_same_segment_reaches_the_reader():
    async def forging_server(reader, writer):
        puppet = await handshake_as_puppet(reader, writer)
        good = puppet.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"genuine")
        writer.write(good + forged(puppet, b"forged"))
        await writer.drain()
        await reader.read()

    async def client_side(reader, writer):
        assert await reader.readexactly(7) == b"genuine"
        with pytest.raises(ProtocolViolation):
            await reader.read()

    run(forging_scenario(forging_server, client_side))


# Receive backpressure -------------------------------------------------------------------------------
BACKPRESSURE_TOTAL = 40 << 20
BACKPRESSURE_CHUNK = 16 << 10
#: What may be in flight before the stalled reader stops the sender: the reader's 2 x limit,
#: the raw socket reader's buffer, both shrunken kernel buffers, the writer's buffer.
BACKPRESSURE_BOUND = 4 << 20


def test_a_reader_that_does_not_read_stops_the_peer_writing():
    """The stream reader pauses reading from TCP above its limit (asyncio's rule), so a
    peer writing 40 MiB to an application that reads nothing sees its drain() hold it
    back; once the application reads, everything arrives intact."""
    data = bytes(range(256)) * (BACKPRESSURE_CHUNK // 256)

    async def main():
        released = asyncio.Event()
        paused = asyncio.Event()
        consumed = asyncio.Event()
        server_side: dict = {}
        received = hashlib.sha256()

        async def consumer(reader, writer):
            server_side["writer"] = writer
            await released.wait()
            left = BACKPRESSURE_TOTAL
            while left:
                piece = await reader.read(1 << 20)
                assert piece, "EOF before all the data arrived"
                received.update(piece)
                left -= len(piece)
            consumed.set()
            writer.close()

        listener = socket.create_server(("127.0.0.1", 0))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        server = await start_server(consumer, None, None, server_config(), sock=listener)
        port = listener.getsockname()[1]
        _, writer = await open_connection("127.0.0.1", port, client_config())
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 16)
        sent_hash = hashlib.sha256()

        async def producer():
            sent = 0
            while sent < BACKPRESSURE_TOTAL:
                writer.write(data)
                sent_hash.update(data)
                await writer.drain()
                sent += len(data)
                if not released.is_set():
                    assert sent <= BACKPRESSURE_BOUND, (
                        f"{sent} bytes went out to an application that read nothing"
                    )
                    peer = server_side.get("writer")
                    # Backpressure reached TCP: TLS stopped reading, so did the socket.
                    if peer is not None and peer.reading_paused and not peer.transport.is_reading():
                        paused.set()
            return sent

        task = asyncio.ensure_future(producer())
        waiter = asyncio.ensure_future(paused.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            waiter.cancel()
            task.result()  # the bound assertion, if it failed
            raise AssertionError("all the data went through with nothing read")
        assert not task.done()  # the producer is held back
        released.set()
        assert await task == BACKPRESSURE_TOTAL
        await consumed.wait()
        assert received.digest() == sent_hash.digest()
        assert not server_side["writer"].reading_paused
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), 120))
