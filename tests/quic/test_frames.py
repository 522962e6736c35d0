"""Frames (RFC 9000 §19, RFC 9221 §4): every type parses from its wire form, round trips
through quicnet's encoders, and malformed bodies raise TransportError with the code §19 names.

The wire forms here are written out from the RFC's frame layouts with a small
varint helper (:func:`v`), independently of quicnet's encoders.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic import frames as fr
from quicnet.quic.buffer import MAX_VARINT, Reader, encode_varint, padding_end, varint_size
from quicnet.quic.errors import TransportError, TransportErrorCode


def v(value: int) -> bytes:
    """RFC 9000 §16 varint, written out independently of quicnet."""
    if value < 1 << 6:
        return value.to_bytes(1, "big")
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x8000_0000).to_bytes(4, "big")
    return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")


def parse(wire: bytes) -> fr.Frame:
    """Parse one frame that must fill ``wire`` exactly."""
    r = Reader(wire)
    frame = fr.parse_frame(r, r.varint())
    assert r.at_end(), "the frame did not consume its whole encoding"
    return frame


def parse_error(wire: bytes) -> TransportError:
    r = Reader(wire)
    with pytest.raises(TransportError) as info:
        fr.parse_frame(r, r.varint())
    return info.value


# Varints (§16) ----------------------------------------------------------------------------


def test_varint_rfc_examples() -> None:
    """RFC 9000 Appendix A.1's sample encodings."""
    for wire, value in [
        ("c2197c5eff14e88c", 151_288_809_941_952_652),
        ("9d7f3e7d", 494_878_333),
        ("7bbd", 15_293),
        ("25", 37),
        ("4025", 37),  # a non-minimal encoding decodes too
    ]:
        assert Reader(bytes.fromhex(wire)).varint() == value
    assert encode_varint(151_288_809_941_952_652) == bytes.fromhex("c2197c5eff14e88c")
    assert encode_varint(15_293) == bytes.fromhex("7bbd")


@settings(max_examples=300, deadline=None)
@given(st.integers(0, MAX_VARINT))
def test_varint_round_trip(value: int) -> None:
    wire = encode_varint(value)
    assert wire == v(value)
    assert len(wire) == varint_size(value)
    r = Reader(wire + b"tail")
    assert r.varint() == value and r.read(4) == b"tail"


def test_varint_limits() -> None:
    with pytest.raises(ValueError):
        encode_varint(MAX_VARINT + 1)
    with pytest.raises(ValueError):
        varint_size(1 << 62)
    for wire in (b"", b"\x40", b"\x80\x00\x00", b"\xc0" + bytes(6)):
        with pytest.raises(TransportError) as info:
            Reader(wire).varint()
        assert info.value.error_code == TransportErrorCode.FRAME_ENCODING_ERROR


# Every frame type from its RFC layout ------------------------------------------------------------

TOKEN16 = bytes(range(16))


def test_padding_and_ping() -> None:
    assert parse(b"\x00" * 7) == fr.PaddingFrame(7)
    assert parse(b"\x01") == fr.PingFrame()
    assert parse(b"\x1e") == fr.HandshakeDoneFrame()


@given(st.binary(max_size=40), st.integers(0, 1500), st.binary(max_size=40))
def test_padding_end_is_the_end_of_the_zero_run(before: bytes, zeros: int, after: bytes) -> None:
    # Padding to the end of the packet (one comparison) or before other bytes (a scan).
    data = before + bytes(zeros) + after
    for pos in {0, len(before), len(before) + zeros // 2, len(data)}:
        expected = len(data) - len(data[pos:].lstrip(b"\x00"))
        assert padding_end(data, pos) == expected
        assert padding_end(bytearray(data), pos) == expected


def test_padding_runs_to_the_next_frame_or_the_end() -> None:
    r = Reader(b"\x00\x00\x00\x01\x00\x00")
    r.pos = 1
    assert fr.parse_frame(r, 0x00) == fr.PaddingFrame(3)
    assert r.pos == 3
    r = Reader(b"\x00" * 9 + b"\x01", 1, 5)  # a reader that ends before its data does
    assert fr.parse_frame(r, 0x00) == fr.PaddingFrame(5)
    assert r.pos == 5


def test_ack_frames() -> None:
    # Largest 100, delay 7, two more ranges: acked 100-95, 90-88, 10-0.
    wire = b"\x02" + v(100) + v(7) + v(2) + v(5) + v(95 - 90 - 2) + v(2) + v(88 - 10 - 2) + v(10)
    frame = parse(wire)
    assert isinstance(frame, fr.AckFrame)
    assert frame.ranges == ((100, 95), (90, 88), (10, 0))
    assert frame.ack_delay == 7 and frame.ecn_counts is None
    assert frame.largest_acknowledged == 100
    ecn = parse(b"\x03" + v(5) + v(0) + v(0) + v(5) + v(1) + v(2) + v(3))
    assert ecn == fr.AckFrame(((5, 0),), 0, (1, 2, 3))
    assert fr.encode_ack([(100, 95), (90, 88), (10, 0)], 7) == wire


def test_stream_and_control_frames() -> None:
    cases: list[tuple[bytes, object]] = [
        (b"\x04" + v(4) + v(0x1234) + v(99), fr.ResetStreamFrame(4, 0x1234, 99)),
        (b"\x05" + v(8) + v(7), fr.StopSendingFrame(8, 7)),
        (b"\x06" + v(1000) + v(3) + b"abc", fr.CryptoFrame(1000, b"abc")),
        (b"\x07" + v(4) + b"tokn", fr.NewTokenFrame(b"tokn")),
        (b"\x10" + v(1 << 40), fr.MaxDataFrame(1 << 40)),
        (b"\x11" + v(3) + v(5000), fr.MaxStreamDataFrame(3, 5000)),
        (b"\x12" + v(100), fr.MaxStreamsFrame(True, 100)),
        (b"\x13" + v(1 << 60), fr.MaxStreamsFrame(False, 1 << 60)),
        (b"\x14" + v(77), fr.DataBlockedFrame(77)),
        (b"\x15" + v(9) + v(78), fr.StreamDataBlockedFrame(9, 78)),
        (b"\x16" + v(5), fr.StreamsBlockedFrame(True, 5)),
        (b"\x17" + v(6), fr.StreamsBlockedFrame(False, 6)),
        (
            b"\x18" + v(3) + v(1) + b"\x08" + b"cid-8byt" + TOKEN16,
            fr.NewConnectionIdFrame(3, 1, b"cid-8byt", TOKEN16),
        ),
        (b"\x19" + v(2), fr.RetireConnectionIdFrame(2)),
        (b"\x1a" + b"8 bytes!", fr.PathChallengeFrame(b"8 bytes!")),
        (b"\x1b" + b"8 bytes!", fr.PathResponseFrame(b"8 bytes!")),
        (b"\x1c" + v(0x0A) + v(0x08) + v(3) + b"why", fr.ConnectionCloseFrame(0x0A, 0x08, b"why")),
        (b"\x1d" + v(42) + v(0), fr.ConnectionCloseFrame(42, None, b"")),
        (b"\x30" + b"rest of packet", fr.DatagramFrame(b"rest of packet")),
        (b"\x31" + v(4) + b"dgrm", fr.DatagramFrame(b"dgrm")),
    ]
    for wire, expected in cases:
        assert parse(wire) == expected, wire.hex()
    assert fr.ConnectionCloseFrame(42, None, b"").is_application
    assert not fr.ConnectionCloseFrame(42, 0, b"").is_application


@pytest.mark.parametrize("frame_type", range(0x08, 0x10))
def test_stream_frame_type_bits(frame_type: int) -> None:
    """OFF (0x04), LEN (0x02) and FIN (0x01) in all combinations (§19.8)."""
    off, length, fin = frame_type & 0x04, frame_type & 0x02, frame_type & 0x01
    wire = bytes((frame_type,)) + v(4)
    if off:
        wire += v(70_000)
    if length:
        wire += v(5)
    wire += b"hello"
    frame = parse(wire)
    assert frame == fr.StreamFrame(4, 70_000 if off else 0, b"hello", bool(fin))


def test_a_frame_without_length_runs_to_the_end_but_one_with_length_does_not() -> None:
    r = Reader(b"\x0a" + v(0) + v(2) + b"hi" + b"\x01")  # STREAM with LEN, then a PING
    first = fr.parse_frame(r, r.varint())
    assert first == fr.StreamFrame(0, 0, b"hi", False)
    assert fr.parse_frame(r, r.varint()) == fr.PingFrame() and r.at_end()


# Round trips through quicnet's encoders ----------------------------------------------------------

_ranges = (
    st.lists(st.tuples(st.integers(0, 1000), st.integers(1, 1000)), min_size=1, max_size=40)
    .map(lambda pairs: _build_ranges(pairs))
    .filter(bool)
)


def _build_ranges(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Descending inclusive ranges separated by at least one missing number."""
    out: list[tuple[int, int]] = []
    position = 0
    for gap, length in pairs:
        low = position + gap + (1 if out else 0)
        out.append((low + length - 1, low))
        position = low + length
    return list(reversed(out))


@settings(max_examples=300, deadline=None)
@given(_ranges, st.integers(0, MAX_VARINT))
def test_ack_round_trip(ranges: list[tuple[int, int]], delay: int) -> None:
    frame = parse(fr.encode_ack(ranges, delay))
    assert isinstance(frame, fr.AckFrame)
    assert list(frame.ranges) == ranges and frame.ack_delay == delay


@settings(max_examples=300, deadline=None)
@given(
    stream_id=st.integers(0, MAX_VARINT),
    offset=st.integers(0, 1 << 50),
    data=st.binary(max_size=300),
    fin=st.booleans(),
)
def test_stream_round_trip(stream_id: int, offset: int, data: bytes, fin: bool) -> None:
    assert parse(fr.encode_stream(stream_id, offset, data, fin)) == fr.StreamFrame(
        stream_id, offset, data, fin
    )
    # Without the Length field the frame runs to the end of the packet.
    wire = fr.stream_header(stream_id, offset, None, fin) + data
    assert parse(wire) == fr.StreamFrame(stream_id, offset, data, fin)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(0, 1 << 50), data=st.binary(max_size=300))
def test_crypto_round_trip(offset: int, data: bytes) -> None:
    assert parse(fr.encode_crypto(offset, data)) == fr.CryptoFrame(offset, data)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1200), with_length=st.booleans())
def test_datagram_round_trip(data: bytes, with_length: bool) -> None:
    assert parse(fr.encode_datagram(data, with_length=with_length)) == fr.DatagramFrame(data)


@settings(max_examples=200, deadline=None)
@given(
    code=st.integers(0, MAX_VARINT),
    frame_type=st.one_of(st.none(), st.integers(0, MAX_VARINT)),
    reason=st.binary(max_size=100),
)
def test_connection_close_round_trip(code: int, frame_type: int | None, reason: bytes) -> None:
    assert parse(fr.encode_connection_close(code, frame_type, reason)) == fr.ConnectionCloseFrame(
        code, frame_type, reason
    )


# Malformed frames ------------------------------------------------------------------------------

FEE = TransportErrorCode.FRAME_ENCODING_ERROR


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x02" + v(5) + v(0) + v(0) + v(6), FEE),  # first range below packet 0
        (b"\x02" + v(5) + v(0) + v(1) + v(0) + v(4) + v(0), FEE),  # gap below 0
        (b"\x02" + v(5) + v(0) + v(1) + v(0) + v(0) + v(4), FEE),  # range below 0
        (b"\x02" + v(5) + v(0) + v(1000) + v(0), FEE),  # more ranges than bytes
        (b"\x03" + v(5) + v(0) + v(0) + v(0) + v(1) + v(2), FEE),  # ECN counts cut short
        (b"\x06" + v(MAX_VARINT) + v(1) + b"x", FEE),  # CRYPTO beyond 2^62-1
        (b"\x0e" + v(0) + v(MAX_VARINT) + v(1) + b"x", FEE),  # STREAM beyond 2^62-1
        (b"\x0a" + v(0) + v(10) + b"short", FEE),  # Length beyond the packet
        (b"\x07" + v(0), FEE),  # empty NEW_TOKEN
        (b"\x12" + v((1 << 60) + 1), FEE),  # MAX_STREAMS above 2^60
        (b"\x17" + v((1 << 60) + 1), FEE),  # STREAMS_BLOCKED above 2^60
        (b"\x18" + v(1) + v(0) + b"\x00" + TOKEN16, FEE),  # zero-length CID
        (b"\x18" + v(1) + v(0) + b"\x15" + bytes(21) + TOKEN16, FEE),  # 21-byte CID
        (b"\x18" + v(1) + v(2) + b"\x08" + bytes(8) + TOKEN16, FEE),  # retire_prior_to > seq
        (b"\x18" + v(1) + v(0) + b"\x08" + bytes(8) + bytes(15), FEE),  # short token
        (b"\x1a" + b"7 bytes", FEE),  # PATH_CHALLENGE needs 8
        (b"\x1c" + v(1) + v(0) + v(10) + b"short", FEE),  # reason beyond the packet
        (b"\x31" + v(5) + b"four", FEE),
        (v(0xAF) + v(0) + v(1) + v(25000), FEE),  # ACK_FREQUENCY cut short
        (b"\x21", FEE),  # unknown frame types
        (b"\x20", FEE),
        (v(0x4000), FEE),
    ],
)
def test_malformed_frames(wire: bytes, code: int) -> None:
    error = parse_error(wire)
    assert error.error_code == code


def test_unknown_frame_type_names_itself() -> None:
    error = parse_error(v(0x21))
    assert error.frame_type == 0x21


# Garbage --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(frame_type=st.integers(0, 0x40), body=st.binary(max_size=64))
def test_parse_frame_raises_only_transport_errors(frame_type: int, body: bytes) -> None:
    r = Reader(body)
    try:
        frame = fr.parse_frame(r, frame_type)
    except TransportError as exc:
        assert exc.error_code in (
            TransportErrorCode.FRAME_ENCODING_ERROR,
            TransportErrorCode.PROTOCOL_VIOLATION,
        )
        return
    assert r.pos <= len(body)
    assert type(frame).__name__.endswith("Frame")


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=200))
def test_a_packet_payload_of_garbage_parses_or_fails_cleanly(payload: bytes) -> None:
    """Frame after frame, as the connection reads a packet: no exception but TransportError."""
    r = Reader(payload)
    try:
        while not r.at_end():
            before = r.pos
            fr.parse_frame(r, r.varint())
            assert r.pos > before
    except TransportError:
        pass
