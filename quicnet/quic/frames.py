"""QUIC frames (RFC 9000 §19, RFC 9221 §4): types, parsing and encoding.

:func:`parse_frame` returns one frozen dataclass per frame; the connection's
receive path has inline fast paths for the hot frames (ACK, STREAM,
DATAGRAM, PADDING) and uses these for the rest. Malformed frames raise
TransportError with FRAME_ENCODING_ERROR (or the code §19 names).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from quicnet.quic.buffer import MAX_VARINT, Reader, encode_varint, padding_end, varint_at
from quicnet.quic.errors import TransportError, TransportErrorCode

__all__ = [
    "AckFrame",
    "AckFrequencyFrame",
    "ConnectionCloseFrame",
    "CryptoFrame",
    "DatagramFrame",
    "Frame",
    "FrameType",
    "ImmediateAckFrame",
    "NewConnectionIdFrame",
    "StreamFrame",
    "encode_ack",
    "encode_connection_close",
    "encode_crypto",
    "encode_datagram",
    "encode_stream",
    "parse_frame",
    "read_ack",
]


class FrameType(enum.IntEnum):
    """Frame types (RFC 9000 §12.4, Table 3; RFC 9221 §4 for DATAGRAM)."""

    PADDING = 0x00
    PING = 0x01
    ACK = 0x02
    ACK_ECN = 0x03
    RESET_STREAM = 0x04
    STOP_SENDING = 0x05
    CRYPTO = 0x06
    NEW_TOKEN = 0x07
    STREAM_BASE = 0x08  # 0x08-0x0f: OFF=0x04, LEN=0x02, FIN=0x01
    MAX_DATA = 0x10
    MAX_STREAM_DATA = 0x11
    MAX_STREAMS_BIDI = 0x12
    MAX_STREAMS_UNI = 0x13
    DATA_BLOCKED = 0x14
    STREAM_DATA_BLOCKED = 0x15
    STREAMS_BLOCKED_BIDI = 0x16
    STREAMS_BLOCKED_UNI = 0x17
    NEW_CONNECTION_ID = 0x18
    RETIRE_CONNECTION_ID = 0x19
    PATH_CHALLENGE = 0x1A
    PATH_RESPONSE = 0x1B
    CONNECTION_CLOSE = 0x1C
    CONNECTION_CLOSE_APP = 0x1D
    HANDSHAKE_DONE = 0x1E
    IMMEDIATE_ACK = 0x1F  # draft-ietf-quic-ack-frequency §5
    DATAGRAM = 0x30
    DATAGRAM_LEN = 0x31
    ACK_FREQUENCY = 0xAF  # draft-ietf-quic-ack-frequency §4


def _error(
    frame_type: int, reason: str, code: int = TransportErrorCode.FRAME_ENCODING_ERROR
) -> TransportError:
    return TransportError(code, reason, frame_type)


@dataclass(frozen=True, slots=True)
class PaddingFrame:
    """PADDING (RFC 9000 §19.1): a run of ``length`` zero bytes."""

    length: int


@dataclass(frozen=True, slots=True)
class PingFrame:
    """PING (RFC 9000 §19.2): no content; makes its packet ack-eliciting."""

    pass


@dataclass(frozen=True, slots=True)
class AckFrame:
    """ACK frame (RFC 9000 §19.3): inclusive ranges, largest first; ECN counts in ACK_ECN."""

    #: Acknowledged ranges, inclusive, largest first: ((largest, smallest), ...).
    ranges: tuple[tuple[int, int], ...]
    ack_delay: int  # raw; scale by 2^ack_delay_exponent microseconds
    ecn_counts: tuple[int, int, int] | None = None

    @property
    def largest_acknowledged(self) -> int:
        """The Largest Acknowledged field: the first range's top."""
        return self.ranges[0][0]


@dataclass(frozen=True, slots=True)
class ResetStreamFrame:
    """RESET_STREAM (RFC 9000 §19.4): the sender abandons a stream at ``final_size``."""

    stream_id: int
    error_code: int
    final_size: int


@dataclass(frozen=True, slots=True)
class StopSendingFrame:
    """STOP_SENDING (RFC 9000 §19.5): a stream's receiver asks its sender to stop (and reset)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class CryptoFrame:
    """CRYPTO (RFC 9000 §19.6): TLS handshake bytes at ``offset`` in the epoch's stream."""

    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class NewTokenFrame:
    """NEW_TOKEN (RFC 9000 §19.7): a server's token for a later connection (§8.1.3)."""

    token: bytes


@dataclass(frozen=True, slots=True)
class StreamFrame:
    """STREAM (RFC 9000 §19.8): ``data`` at ``offset`` of a stream; ``fin`` ends it."""

    stream_id: int
    offset: int
    data: bytes
    fin: bool


@dataclass(frozen=True, slots=True)
class MaxDataFrame:
    """MAX_DATA (RFC 9000 §19.9): the connection's flow-control limit."""

    maximum_data: int


@dataclass(frozen=True, slots=True)
class MaxStreamDataFrame:
    """MAX_STREAM_DATA (RFC 9000 §19.10): one stream's flow-control limit."""

    stream_id: int
    maximum_stream_data: int


@dataclass(frozen=True, slots=True)
class MaxStreamsFrame:
    """MAX_STREAMS (RFC 9000 §19.11): how many streams of one type the peer may open in all."""

    bidirectional: bool
    maximum_streams: int


@dataclass(frozen=True, slots=True)
class DataBlockedFrame:
    """DATA_BLOCKED (RFC 9000 §19.12): the sender is held by the connection's limit."""

    maximum_data: int


@dataclass(frozen=True, slots=True)
class StreamDataBlockedFrame:
    """STREAM_DATA_BLOCKED (RFC 9000 §19.13): the sender is held by a stream's limit."""

    stream_id: int
    maximum_stream_data: int


@dataclass(frozen=True, slots=True)
class StreamsBlockedFrame:
    """STREAMS_BLOCKED (RFC 9000 §19.14): the sender may open no more streams of a type."""

    bidirectional: bool
    maximum_streams: int


@dataclass(frozen=True, slots=True)
class NewConnectionIdFrame:
    """NEW_CONNECTION_ID (RFC 9000 §19.15): a CID, its sequence number and reset token;
    the receiver retires those numbered below ``retire_prior_to``."""

    sequence_number: int
    retire_prior_to: int
    connection_id: bytes
    stateless_reset_token: bytes


@dataclass(frozen=True, slots=True)
class RetireConnectionIdFrame:
    """RETIRE_CONNECTION_ID (RFC 9000 §19.16): the sender stops using a CID the receiver issued."""

    sequence_number: int


@dataclass(frozen=True, slots=True)
class PathChallengeFrame:
    """PATH_CHALLENGE (RFC 9000 §19.17): 8 bytes the peer echoes in PATH_RESPONSE."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PathResponseFrame:
    """PATH_RESPONSE (RFC 9000 §19.18): the data of a PATH_CHALLENGE, echoed."""

    data: bytes


@dataclass(frozen=True, slots=True)
class ConnectionCloseFrame:
    """CONNECTION_CLOSE (RFC 9000 §19.19): 0x1c for a transport error (with the frame
    type that caused it), 0x1d for the application's."""

    error_code: int
    frame_type: int | None  # None for the application variant (0x1d)
    reason: bytes

    @property
    def is_application(self) -> bool:
        """The application variant (0x1d), which names no frame type."""
        return self.frame_type is None


@dataclass(frozen=True, slots=True)
class HandshakeDoneFrame:
    """HANDSHAKE_DONE (RFC 9000 §19.20): the server confirms the handshake to the client."""

    pass


@dataclass(frozen=True, slots=True)
class AckFrequencyFrame:
    """ACK_FREQUENCY (draft-ietf-quic-ack-frequency §4): how often the sender wants ACKs."""

    sequence_number: int
    ack_eliciting_threshold: int
    requested_max_ack_delay: int  # microseconds
    reordering_threshold: int


@dataclass(frozen=True, slots=True)
class ImmediateAckFrame:
    """IMMEDIATE_ACK (draft-ietf-quic-ack-frequency §5): acknowledge this packet now."""

    pass


@dataclass(frozen=True, slots=True)
class DatagramFrame:
    """DATAGRAM (RFC 9221 §4): an unreliable payload, never retransmitted."""

    data: bytes


Frame = (
    PaddingFrame
    | PingFrame
    | AckFrame
    | ResetStreamFrame
    | StopSendingFrame
    | CryptoFrame
    | NewTokenFrame
    | StreamFrame
    | MaxDataFrame
    | MaxStreamDataFrame
    | MaxStreamsFrame
    | DataBlockedFrame
    | StreamDataBlockedFrame
    | StreamsBlockedFrame
    | NewConnectionIdFrame
    | RetireConnectionIdFrame
    | PathChallengeFrame
    | PathResponseFrame
    | ConnectionCloseFrame
    | HandshakeDoneFrame
    | DatagramFrame
    | AckFrequencyFrame
    | ImmediateAckFrame
)


def _parse_ack(r: Reader, frame_type: int) -> AckFrame:
    data = r.data if r.end == len(r.data) else r.data[: r.end]
    try:
        ranges, delay, ecn, r.pos = read_ack(data, r.pos, frame_type)
    except IndexError:
        raise _error(frame_type, "ACK truncated") from None
    return AckFrame(tuple(ranges), delay, ecn)


def read_ack(
    payload: bytes, pos: int, t: int
) -> tuple[list[tuple[int, int]], int, tuple[int, int, int] | None, int]:
    """An ACK frame (§19.3) at ``pos``, after its type ``t``: ``(ranges, ACK delay, ECN
    counts or None, the position after it)``. IndexError when it runs past the payload."""
    # Largest Acknowledged and ACK Delay: one or two bytes while the connection is
    # young or the peer prompt, read inline (no call, no loop); longer ones by varint_at.
    largest = payload[pos]
    if largest < 0x40:
        pos += 1
    elif largest < 0x80:
        largest = ((largest & 0x3F) << 8) | payload[pos + 1]
        pos += 2
    else:
        largest, pos = varint_at(payload, pos)
    delay = payload[pos]
    if delay < 0x40:
        pos += 1
    elif delay < 0x80:
        delay = ((delay & 0x3F) << 8) | payload[pos + 1]
        pos += 2
    else:
        delay, pos = varint_at(payload, pos)
    count = payload[pos]  # one byte in all but pathological ACKs
    if count < 0x40:
        pos += 1
    else:
        count, pos = varint_at(payload, pos)
    first = payload[pos]
    if first < 0x40:
        pos += 1
    elif first < 0x80:
        first = ((first & 0x3F) << 8) | payload[pos + 1]
        pos += 2
    else:
        first, pos = varint_at(payload, pos)
    if first > largest:
        raise _error(t, "ACK first range below zero")
    smallest = largest - first
    ranges = [(largest, smallest)]
    if count:  # (most ACK frames hold one range: no loop to set up)
        if count > len(payload) - pos:  # every range takes at least 2 bytes
            raise _error(t, "ACK range count exceeds the frame")
        for _ in range(count):
            gap, pos = varint_at(payload, pos)
            length, pos = varint_at(payload, pos)
            top = smallest - gap - 2
            if top < 0 or length > top:
                raise _error(t, "ACK range below zero")
            smallest = top - length
            ranges.append((top, smallest))
    if t != 0x03:
        return ranges, delay, None, pos
    # ECN counts (§19.3.2): ECT(0), then ECT(1) and CE, which stay 0 on most paths: a
    # byte each, read inline.
    ect0 = payload[pos]  # a count of packets: one or two bytes until 16,384 of them
    if ect0 < 0x40:
        pos += 1
    elif ect0 < 0x80:
        ect0 = ((ect0 & 0x3F) << 8) | payload[pos + 1]
        pos += 2
    else:
        ect0, pos = varint_at(payload, pos)
    ect1 = payload[pos]
    ce = payload[pos + 1]
    if ect1 < 0x40 and ce < 0x40:
        return ranges, delay, (ect0, ect1, ce), pos + 2
    ect1, pos = varint_at(payload, pos)
    ce, pos = varint_at(payload, pos)
    return ranges, delay, (ect0, ect1, ce), pos


def _parse_stream(r: Reader, frame_type: int) -> StreamFrame:
    stream_id = r.varint()
    offset = r.varint() if frame_type & 0x04 else 0
    length = r.varint() if frame_type & 0x02 else r.remaining
    data = r.read(length)
    if offset + length > MAX_VARINT:  # §19.8
        raise _error(
            frame_type, "stream data beyond 2^62-1", TransportErrorCode.FRAME_ENCODING_ERROR
        )
    return StreamFrame(stream_id, offset, data, bool(frame_type & 0x01))


def _parse_padding(r: Reader, t: int) -> PaddingFrame:
    start = r.pos
    data = r.data if r.end == len(r.data) else r.data[: r.end]
    r.pos = padding_end(data, start)
    return PaddingFrame(1 + r.pos - start)


def _parse_crypto(r: Reader, t: int) -> CryptoFrame:
    offset = r.varint()
    data = r.read_varint_bytes()
    if offset + len(data) > MAX_VARINT:
        raise _error(t, "crypto data beyond 2^62-1")
    return CryptoFrame(offset, data)


def _parse_new_token(r: Reader, t: int) -> NewTokenFrame:
    token = r.read_varint_bytes()
    if not token:
        raise _error(t, "empty NEW_TOKEN")
    return NewTokenFrame(token)


def _parse_max_streams(r: Reader, t: int) -> MaxStreamsFrame:
    n = r.varint()
    if n > 1 << 60:
        raise _error(t, "MAX_STREAMS above 2^60")
    return MaxStreamsFrame(t == FrameType.MAX_STREAMS_BIDI, n)


def _parse_streams_blocked(r: Reader, t: int) -> StreamsBlockedFrame:
    n = r.varint()
    if n > 1 << 60:
        raise _error(t, "STREAMS_BLOCKED above 2^60")
    return StreamsBlockedFrame(t == FrameType.STREAMS_BLOCKED_BIDI, n)


def _parse_new_connection_id(r: Reader, t: int) -> NewConnectionIdFrame:
    seq = r.varint()
    retire = r.varint()
    length = r.uint8()
    if not 1 <= length <= 20:
        raise _error(t, "NEW_CONNECTION_ID length outside 1..20")
    cid = r.read(length)
    token = r.read(16)
    if retire > seq:
        raise _error(t, "retire_prior_to above sequence number")
    return NewConnectionIdFrame(seq, retire, cid, token)


def _parse_connection_close(r: Reader, t: int) -> ConnectionCloseFrame:
    code = r.varint()
    offending = r.varint() if t == FrameType.CONNECTION_CLOSE else None
    reason = r.read_varint_bytes()
    return ConnectionCloseFrame(code, offending, reason)


_Parser = Callable[[Reader, int], Frame]

#: The parser of each frame type's body: one look-up instead of a chain of comparisons
#: (a handshake reads NEW_CONNECTION_ID and HANDSHAKE_DONE, far down the table).
_PARSERS: dict[int, _Parser] = {
    FrameType.PADDING: _parse_padding,
    FrameType.PING: lambda r, t: PingFrame(),
    FrameType.ACK: _parse_ack,
    FrameType.ACK_ECN: _parse_ack,
    FrameType.RESET_STREAM: lambda r, t: ResetStreamFrame(r.varint(), r.varint(), r.varint()),
    FrameType.STOP_SENDING: lambda r, t: StopSendingFrame(r.varint(), r.varint()),
    FrameType.CRYPTO: _parse_crypto,
    FrameType.NEW_TOKEN: _parse_new_token,
    **dict.fromkeys(range(0x08, 0x10), _parse_stream),
    FrameType.MAX_DATA: lambda r, t: MaxDataFrame(r.varint()),
    FrameType.MAX_STREAM_DATA: lambda r, t: MaxStreamDataFrame(r.varint(), r.varint()),
    FrameType.MAX_STREAMS_BIDI: _parse_max_streams,
    FrameType.MAX_STREAMS_UNI: _parse_max_streams,
    FrameType.DATA_BLOCKED: lambda r, t: DataBlockedFrame(r.varint()),
    FrameType.STREAM_DATA_BLOCKED: lambda r, t: StreamDataBlockedFrame(r.varint(), r.varint()),
    FrameType.STREAMS_BLOCKED_BIDI: _parse_streams_blocked,
    FrameType.STREAMS_BLOCKED_UNI: _parse_streams_blocked,
    FrameType.NEW_CONNECTION_ID: _parse_new_connection_id,
    FrameType.RETIRE_CONNECTION_ID: lambda r, t: RetireConnectionIdFrame(r.varint()),
    FrameType.PATH_CHALLENGE: lambda r, t: PathChallengeFrame(r.read(8)),
    FrameType.PATH_RESPONSE: lambda r, t: PathResponseFrame(r.read(8)),
    FrameType.CONNECTION_CLOSE: _parse_connection_close,
    FrameType.CONNECTION_CLOSE_APP: _parse_connection_close,
    FrameType.HANDSHAKE_DONE: lambda r, t: HandshakeDoneFrame(),
    FrameType.DATAGRAM: lambda r, t: DatagramFrame(r.read(r.remaining)),
    FrameType.DATAGRAM_LEN: lambda r, t: DatagramFrame(r.read_varint_bytes()),
    FrameType.IMMEDIATE_ACK: lambda r, t: ImmediateAckFrame(),
    FrameType.ACK_FREQUENCY: lambda r, t: AckFrequencyFrame(
        r.varint(), r.varint(), r.varint(), r.varint()
    ),
}


def parse_frame(r: Reader, frame_type: int) -> Frame:
    """Parse the body of a frame whose type varint was already read."""
    parser = _PARSERS.get(frame_type)
    if parser is None:
        raise _error(frame_type, f"unknown frame type 0x{frame_type:x}")
    return parser(r, frame_type)


# Encoding --------------------------------------------------------------------------


def encode_ack(
    ranges: list[tuple[int, int]],
    ack_delay: int,
    ecn_counts: tuple[int, int, int] | None = None,
) -> bytes:
    """ACK for inclusive ranges ``(largest, smallest)``, largest first; with
    ``ecn_counts`` (ECT(0), ECT(1), CE) an ACK_ECN frame (§19.3.2)."""
    largest, smallest = ranges[0]
    out = bytearray((FrameType.ACK if ecn_counts is None else FrameType.ACK_ECN,))
    out += encode_varint(largest) + encode_varint(ack_delay) + encode_varint(len(ranges) - 1)
    out += encode_varint(largest - smallest)
    for hi, lo in ranges[1:]:
        out += encode_varint(smallest - hi - 2) + encode_varint(hi - lo)
        smallest = lo
    if ecn_counts is not None:
        for count in ecn_counts:
            out += encode_varint(count)
    return bytes(out)


def encode_crypto(offset: int, data: bytes) -> bytes:
    """A CRYPTO frame (§19.6) with ``data`` at ``offset``."""
    return b"\x06" + encode_varint(offset) + encode_varint(len(data)) + data


def stream_header(stream_id: int, offset: int, length: int | None, fin: bool) -> bytes:
    """The STREAM frame header; ``length`` None omits the Length field (frame to packet end)."""
    t = 0x08 | (0x04 if offset else 0) | (0x02 if length is not None else 0) | (0x01 if fin else 0)
    out = bytes((t,)) + encode_varint(stream_id)
    if offset:
        out += encode_varint(offset)
    if length is not None:
        out += encode_varint(length)
    return out


def encode_stream(stream_id: int, offset: int, data: bytes, fin: bool) -> bytes:
    """A STREAM frame (§19.8) with a Length field; an Offset field unless ``offset`` is 0."""
    return stream_header(stream_id, offset, len(data), fin) + data


def encode_datagram(data: bytes, *, with_length: bool = True) -> bytes:
    """A DATAGRAM frame (RFC 9221 §4): 0x31 with a Length field, or 0x30 running to the
    end of the packet."""
    if with_length:
        return b"\x31" + encode_varint(len(data)) + data
    return b"\x30" + data


def encode_connection_close(error_code: int, frame_type: int | None, reason: bytes) -> bytes:
    """A CONNECTION_CLOSE frame (§19.19): 0x1d (application) when ``frame_type`` is None,
    else 0x1c naming that frame type."""
    if frame_type is None:
        return b"\x1d" + encode_varint(error_code) + encode_varint(len(reason)) + reason
    return (
        b"\x1c"
        + encode_varint(error_code)
        + encode_varint(frame_type)
        + encode_varint(len(reason))
        + reason
    )
