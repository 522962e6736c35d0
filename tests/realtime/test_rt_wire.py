"""Property tests for the quicnet-rt/1 parsers (wire.py, fragments.py, a session's input).

Arbitrary bytes give a RealtimeProtocolError or are dropped, never another
exception; what the encoders write, the parsers read back the same, however
the bytes are split on the way.
"""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rtsim import identity

from quicnet.quic import DatagramReceived, QuicConnection, StreamDataReceived, StreamReset
from quicnet.realtime import (
    Connected,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    RealtimeEvent,
    Settings,
    client_configuration,
)
from quicnet.realtime.fragments import MIN_FRAGMENT, Reassembler, fragment, max_fragments
from quicnet.realtime.session import Session
from quicnet.realtime.wire import (
    ControlReader,
    Delivery,
    Hello,
    OrderedReader,
    RealtimeProtocolError,
    Welcome,
    encode_control,
    encode_datagram_header,
    encode_varint,
    parse_datagram_header,
)

varints = st.integers(0, (1 << 62) - 1)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(data)]:
        out.append(data[last:p])
        last = p
    return out


# Varints and datagram headers -------------------------------------------------------------
@given(varints)
def test_varint_is_shortest_and_reads_back(value: int) -> None:
    encoded = encode_varint(value)
    assert len(encoded) == next(n for n in (1, 2, 4, 8) if value < 1 << (8 * n - 2))
    header = parse_datagram_header(b"\x05\x00" + encoded, True)
    assert header.sequence == value and header.payload_offset == 2 + len(encoded)


@given(
    st.integers(0, 255),
    st.one_of(st.none(), varints),
    st.one_of(
        st.none(),
        st.tuples(varints, st.integers(2, 1 << 20)).flatmap(
            lambda t: st.tuples(st.just(t[0]), st.integers(0, t[1] - 1), st.just(t[1]))
        ),
    ),
    st.binary(max_size=64),
)
def test_datagram_header_round_trip(
    channel: int,
    sequence: int | None,
    frag: tuple[int, int, int] | None,
    payload: bytes,
) -> None:
    data = encode_datagram_header(channel, sequence, frag) + payload
    header = parse_datagram_header(data, sequence is not None)
    assert (header.channel, header.sequence, header.fragment) == (channel, sequence, frag)
    assert data[header.payload_offset :] == payload


@given(st.binary(max_size=40), st.booleans())
def test_datagram_header_parser_raises_only_protocol_errors(data: bytes, sequenced: bool) -> None:
    try:
        header = parse_datagram_header(data, sequenced)
    except RealtimeProtocolError:
        return
    assert 2 <= header.payload_offset <= len(data)
    assert header.channel == data[0]
    if header.fragment is not None:
        _, index, count = header.fragment
        assert 0 <= index < count and count >= 2


# Control stream -----------------------------------------------------------------------------
channel_tables = st.dictionaries(
    st.integers(0, 255), st.sampled_from(list(Delivery)), min_size=1, max_size=20
).map(lambda d: tuple(sorted(d.items())))
controls = st.one_of(
    st.builds(Hello, st.integers(0, 1 << 30), st.binary(max_size=1024), channel_tables),
    st.builds(Welcome, varints),
)


@given(st.lists(controls, max_size=6), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_control_messages_round_trip_however_split(
    messages: list[Hello | Welcome], cuts: list[int]
) -> None:
    wire = b"".join(encode_control(m) for m in messages)
    reader = ControlReader()
    got = [m for piece in _split(wire, cuts) for m in reader.feed(piece)]
    assert got == messages


@given(st.lists(st.binary(max_size=300), max_size=6))
def test_control_reader_raises_only_protocol_errors(pieces: list[bytes]) -> None:
    reader = ControlReader()
    try:
        for piece in pieces:
            for message in reader.feed(piece):
                assert type(message) in (Hello, Welcome)
    except RealtimeProtocolError as exc:
        assert str(exc)


def test_control_reader_rejects_a_message_that_never_ends() -> None:
    reader = ControlReader()
    with pytest.raises(RealtimeProtocolError, match="control message of"):
        reader.feed(encode_varint(0x01) + encode_varint(1 << 20))


def test_control_reader_skips_unknown_types() -> None:
    reader = ControlReader()
    unknown = encode_varint(0x3F) + encode_varint(3) + b"abc"
    assert reader.feed(unknown + encode_control(Welcome(7))) == [Welcome(7)]


# Ordered streams ----------------------------------------------------------------------------
@given(
    st.lists(st.binary(max_size=3000), max_size=8), st.lists(st.integers(0, 1 << 16), max_size=12)
)
def test_ordered_reader_round_trip_however_split(messages: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(encode_varint(len(m)) + m for m in messages)
    reader = OrderedReader(3000)
    got = [m for piece in _split(wire, cuts) for m in reader.feed(piece)]
    assert got == messages
    assert reader.buffered == 0


@given(st.lists(st.binary(max_size=200), max_size=6))
def test_ordered_reader_raises_only_protocol_errors(pieces: list[bytes]) -> None:
    reader = OrderedReader(100)
    try:
        for piece in pieces:
            for message in reader.feed(piece):
                assert len(message) <= 100
    except RealtimeProtocolError as exc:
        assert "limit is 100" in str(exc)


def test_ordered_reader_refuses_a_length_over_the_limit_before_the_body() -> None:
    reader = OrderedReader(1000)
    with pytest.raises(RealtimeProtocolError, match="1001 bytes; the limit is 1000"):
        reader.feed(encode_varint(1001))


# Fragments ----------------------------------------------------------------------------------
@given(
    st.integers(0, 255),
    st.one_of(st.none(), st.integers(0, 1 << 40)),
    st.integers(0, 1 << 30),
    st.integers(1200, 20_000),
    st.integers(600, 1400),
    st.randoms(use_true_random=False),
)
def test_fragments_reassemble_in_any_order(
    channel: int, sequence: int | None, message_id: int, size: int, room: int, rng: object
) -> None:
    data = bytes(i % 251 for i in range(size))
    if size <= room:
        size = room + 1
        data = bytes(size)
    pieces = fragment(channel, sequence, message_id, data, room)
    assert len(pieces) >= 2 and all(len(p) <= room for p in pieces)
    order = list(range(len(pieces)))
    rng.shuffle(order)  # type: ignore[attr-defined]
    reassembler = Reassembler(20_000 + room)
    results = []
    for i in order:
        header = parse_datagram_header(pieces[i], sequence is not None)
        assert header.channel == channel and header.sequence == sequence
        assert header.fragment is not None
        payload = pieces[i][header.payload_offset :]
        results.append(reassembler.add(channel, sequence, header.fragment, payload, 0.0))
    assert results[-1] == data
    assert results[:-1] == [None] * (len(pieces) - 1)
    assert len(reassembler) == 0 and reassembler.buffered == 0


fragment_inputs = st.lists(
    st.tuples(
        st.integers(0, 3),  # channel
        st.integers(0, 6),  # message id
        st.integers(0, 12),  # index
        st.integers(0, 12),  # count
        st.integers(0, 1500),  # payload size
        st.floats(0, 0.5),  # time step
    ),
    max_size=60,
)


@given(fragment_inputs)
def test_reassembler_stays_within_its_bounds_or_raises_protocol_errors(
    adds: list[tuple[int, int, int, int, int, float]],
) -> None:
    max_message = 4000
    r = Reassembler(max_message, max_partial=3, max_buffered=5000, timeout=1.0)
    now = 0.0
    for channel, message_id, index, count, size, dt in adds:
        now += dt
        if not (count >= 2 and index < count):
            continue  # parse_datagram_header refuses these before the reassembler
        try:
            whole = r.add(channel, None, (message_id, index, count), bytes(size), now)
        except RealtimeProtocolError:
            return  # the session closes: nothing more is fed
        assert len(r) <= 3 and r.buffered <= 5000
        if whole is not None:
            assert len(whole) <= max_message
            assert count <= max_fragments(max_message)


def test_reassembler_refuses_too_many_fragments_and_runt_fragments() -> None:
    r = Reassembler(4096)
    with pytest.raises(RealtimeProtocolError, match="fragments; at most"):
        r.add(1, None, (0, 0, max_fragments(4096) + 1), bytes(MIN_FRAGMENT), 0.0)
    with pytest.raises(RealtimeProtocolError, match="carries 10 bytes"):
        r.add(1, None, (1, 0, 3), bytes(10), 0.0)
    with pytest.raises(RealtimeProtocolError, match="disagree"):
        r.add(1, None, (2, 0, 3), bytes(MIN_FRAGMENT), 0.0)
        r.add(1, None, (2, 1, 4), bytes(MIN_FRAGMENT), 0.0)


def test_reassembler_drops_a_message_whose_fragments_come_too_late() -> None:
    r = Reassembler(4096, timeout=2.0)
    first, rest = bytes(MIN_FRAGMENT), b"end"
    assert r.add(1, None, (0, 0, 2), first, 10.0) is None
    assert r.add(1, None, (0, 1, 2), rest, 11.9) == first + rest  # in time
    assert r.add(1, None, (1, 0, 2), first, 20.0) is None
    assert r.add(1, None, (1, 1, 2), rest, 22.0) is None  # 2 s later: the first part is gone
    assert r.dropped == 1 and len(r) == 1  # what remains is the late part, alone


# A session's input, whatever the peer sends -------------------------------------------------
def _admitted_session() -> tuple[Session, deque[RealtimeEvent]]:
    """A client's session, welcomed; its QUIC connection only has to take the close."""
    settings = Settings(max_message_size=5000, max_unreliable_message_size=40)
    conn = QuicConnection(client_configuration("localhost", settings, pin=identity().fingerprint))
    events: deque[RealtimeEvent] = deque()
    session = Session(conn, 0, settings, events, is_client=True)
    session.on_event(StreamDataReceived(0, encode_control(Welcome(1)), False), 0.0)
    assert session.admitted and events.popleft() == Connected(0, 1)
    return session, events


quic_inputs = st.lists(
    st.one_of(
        st.builds(  # whole messages on the unreliable channels, around the 40-byte limit
            DatagramReceived,
            st.tuples(
                st.sampled_from([b"\x01\x00", b"\x03\x00\x05"]), st.binary(min_size=30, max_size=50)
            ).map(b"".join),
        ),
        st.builds(DatagramReceived, st.binary(max_size=80)),
        st.builds(
            DatagramReceived,
            st.tuples(st.integers(0, 5), st.integers(0, 2), st.binary(max_size=80)).map(
                lambda t: bytes(t[:2]) + t[2]
            ),
        ),
        st.builds(
            StreamDataReceived,
            st.sampled_from([0, 1, 3, 5, 7, 11]),  # control, server-bidi, server-uni
            st.binary(max_size=80),
            st.booleans(),
        ),
        st.builds(
            StreamDataReceived,
            st.sampled_from([3, 7, 11]),
            st.tuples(st.integers(0, 2), st.integers(0, 4), st.binary(max_size=40)).map(
                lambda t: bytes(t[:2]) + t[2]
            ),
            st.booleans(),
        ),
        st.builds(StreamReset, st.sampled_from([0, 3, 7]), st.integers(0, 10)),
    ),
    max_size=12,
)


@given(quic_inputs)
def test_a_session_survives_any_input_or_ends_with_protocol_error(inputs: list[object]) -> None:
    session, events = _admitted_session()
    for event in inputs:
        session.on_event(event, 1.0)  # type: ignore[arg-type]
    for e in events:
        if isinstance(e, MessageReceived):
            assert e.channel in session.settings.channels
            mode = session.settings.channels[e.channel]
            unreliable = mode in (Delivery.UNRELIABLE, Delivery.SEQUENCED)
            limit = session.settings.max_unreliable_message_size
            assert len(e.data) <= (limit if unreliable else session.settings.max_message_size)
        else:
            assert isinstance(e, Disconnected)
            assert e.reason == DisconnectReason.PROTOCOL_ERROR and e.message
            assert session.ended
