"""A session's fast paths (one QUIC call plus a header per message) keep the protocol.

Datagrams: a client ``Session`` (through ``ClientCore``) talks to a plain
``QuicConnection`` acting as the server, in memory: what the session sends on
the UNRELIABLE and SEQUENCED channels is read as raw DATAGRAM payloads and
checked against docs/protocol.md, and hand-built datagrams go the other way.
Ordered channels: a message sent straight to its channel's open stream must
still queue behind earlier ones of that channel waiting for stream credit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicnet.crypto import dev_identity
from quicnet.quic import DatagramReceived, QuicConnection
from quicnet.quic.packets import parse_long_header
from quicnet.realtime import (
    ClientCore,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    ServerCore,
    Settings,
    client_configuration,
    server_configuration,
)
from quicnet.realtime.wire import (
    RealtimeProtocolError,
    Welcome,
    encode_control,
    encode_varint,
    read_varint,
)

SERVER = ("10.9.0.1", 7777)
CLIENT = ("10.9.0.2", 50000)


@given(st.integers(0, (1 << 62) - 1), st.binary(max_size=8))
def test_read_varint_reads_what_encode_varint_wrote(value: int, tail: bytes) -> None:
    encoded = encode_varint(value)
    assert read_varint(b"\x03\x00" + encoded + tail, 2) == (value, 2 + len(encoded))


@given(st.integers(64, (1 << 62) - 1), st.data())
def test_read_varint_raises_a_protocol_error_when_truncated(
    value: int, data: st.DataObject
) -> None:
    encoded = encode_varint(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(RealtimeProtocolError):
        read_varint(encoded[:cut], 0)


class BarePeer:
    """A ClientCore and a bare QUIC server connection, datagrams moved by hand."""

    def __init__(self) -> None:
        ident = dev_identity()
        settings = Settings()
        self.client = ClientCore(
            client_configuration("localhost", settings, pin=ident.fingerprint),
            SERVER,
            settings,
            1.0,
        )
        self.server_config = server_configuration(
            ident.certificate_chain, ident.private_key, settings
        )
        self.server: QuicConnection | None = None
        self.now = 1.0
        self.datagrams: list[bytes] = []  # DATAGRAM payloads the server received
        while not self.client.session.ready:
            self.pump()
        welcome = encode_control(Welcome(7))
        assert self.server is not None
        self.server.send_stream_data(0, welcome)
        self.pump()
        assert self.client.connected
        list(self.events())

    def pump(self) -> None:
        for _ in range(4):
            self.now += 0.001
            for data, _ in self.client.datagrams_to_send(self.now):
                if self.server is None:
                    dcid = parse_long_header(data).destination_cid
                    self.server = QuicConnection(self.server_config, original_destination_cid=dcid)
                self.server.receive_datagram(data, CLIENT, self.now)
            assert self.server is not None
            while (event := self.server.next_event()) is not None:
                if type(event) is DatagramReceived:
                    self.datagrams.append(event.data)
            for data, _ in self.server.datagrams_to_send(self.now):
                self.client.receive_datagram(data, SERVER, self.now)

    def events(self) -> Iterator[object]:
        while (event := self.client.next_event()) is not None:
            yield event

    def received(self) -> list[tuple[int, bytes]]:
        return [(e.channel, e.data) for e in self.events() if isinstance(e, MessageReceived)]


def test_unreliable_and_sequenced_messages_are_one_datagram_with_their_header() -> None:
    peer = BarePeer()
    peer.client.send(1, b"state")
    for text in (b"a", b"b", b"c"):
        peer.client.send(3, text)
    peer.pump()
    # docs/protocol.md: channel, flags (0: a whole message), [sequence], payload.
    assert peer.datagrams == [
        b"\x01\x00state",
        b"\x03\x00\x00a",
        b"\x03\x00\x01b",
        b"\x03\x00\x02c",
    ]
    assert peer.client.stats().messages_out == 4


def test_sequenced_datagrams_older_than_one_delivered_are_dropped() -> None:
    peer = BarePeer()
    server = peer.server
    assert server is not None
    for number, text in ((5, b"five"), (3, b"three"), (5, b"five again"), (70, b"seventy")):
        server.send_datagram(b"\x03\x00" + encode_varint(number) + text)
    server.send_datagram(b"\x01\x00whole")
    peer.pump()
    assert peer.received() == [(3, b"five"), (3, b"seventy"), (1, b"whole")]


def test_a_truncated_sequence_number_ends_the_session_as_a_protocol_error() -> None:
    peer = BarePeer()
    server = peer.server
    assert server is not None
    server.send_datagram(b"\x03\x00\x40")  # a two-byte varint cut after its first byte
    peer.pump()
    ended = [e for e in peer.events() if isinstance(e, Disconnected)]
    assert [e.reason for e in ended] == [DisconnectReason.PROTOCOL_ERROR]
    assert peer.client.ended


def test_an_ordered_message_never_overtakes_one_waiting_for_stream_credit() -> None:
    # Two streams of credit. A big and a small unordered message take both; channel 0's
    # first message then waits for credit, and all of channel 0 after it. The small one's
    # stream frees one slot: channel 0 opens its stream with "a", but "u2" (no slot yet)
    # still holds "b" behind it. A new channel-0 message must queue behind "b".
    ident = dev_identity()
    settings = Settings(max_streams=2)
    server = ServerCore(
        server_configuration(ident.certificate_chain, ident.private_key, settings), settings
    )
    client = ClientCore(
        client_configuration("localhost", settings, pin=ident.fingerprint), SERVER, settings, 1.0
    )
    now = 1.0
    got: list[tuple[int, bytes]] = []

    def pump() -> None:
        nonlocal now
        now += 0.001
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, CLIENT, now)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, SERVER, now)
        for core in (server, client):
            deadline = core.next_timer()
            if deadline is not None and deadline <= now:
                core.handle_timer(now)
        while (event := server.next_event()) is not None:
            if isinstance(event, MessageReceived):
                got.append((event.channel, event.data))
        while client.next_event() is not None:
            pass

    while not client.connected:
        pump()
    big = bytes(1 << 20)
    client.send(2, big)  # many round trips before its stream is done
    client.send(2, b"u1")
    client.send(0, b"a")  # no slot: waits, and so does all of channel 0 after it
    client.send(2, b"u2")
    client.send(0, b"b")
    for _ in range(200):
        pump()
        if (0, b"a") in got:
            break
    assert (2, big) not in got, "the big message must still hold its slot"
    client.send(0, b"c")
    for _ in range(5000):
        pump()
        if len(got) == 6:
            break
    assert [data for channel, data in got if channel == 0] == [b"a", b"b", b"c"]
    assert sorted(len(data) for channel, data in got if channel == 2) == [2, 2, 1 << 20]
