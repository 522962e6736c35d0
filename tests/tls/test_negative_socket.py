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
