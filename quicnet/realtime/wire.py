"""The quicnet-rt/1 wire format (``docs/protocol.md``): bytes in, typed values out.

Nothing here keeps state across calls except :class:`ControlReader` and
:class:`OrderedReader`, which buffer a stream's bytes until a whole control
message or message is in. Malformed input raises :class:`RealtimeProtocolError`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quicnet.errors import QuicnetError
from quicnet.quic.buffer import encode_varint, varint_at

__all__ = [
    "ALPN",
    "FLAG_FRAGMENT",
    "MAX_CONTROL_MESSAGE",
    "MAX_TOKEN",
    "PROTOCOL_VERSION",
    "STREAM_ORDERED",
    "STREAM_UNORDERED",
    "CloseCode",
    "ControlReader",
    "DatagramHeader",
    "Delivery",
    "Hello",
    "OrderedReader",
    "RealtimeProtocolError",
    "Welcome",
    "encode_control",
    "encode_datagram_header",
    "encode_varint",
    "parse_datagram_header",
    "read_varint",
]

ALPN = "quicnet-rt/1"
PROTOCOL_VERSION = 1
MAX_CONTROL_MESSAGE = 4096
MAX_TOKEN = 1024

STREAM_ORDERED = 0x00
STREAM_UNORDERED = 0x01
FLAG_FRAGMENT = 0x01

_HELLO = 0x01
_WELCOME = 0x02


class Delivery(enum.IntEnum):
    """How a channel delivers its messages (its code on the wire is the value)."""

    RELIABLE_ORDERED = 0
    UNRELIABLE = 1
    RELIABLE_UNORDERED = 2
    SEQUENCED = 3


class CloseCode(enum.IntEnum):
    """The application error codes of CONNECTION_CLOSE (docs/protocol.md, Closing)."""

    CLOSED = 0
    KICKED = 1
    SERVER_SHUTDOWN = 2
    REFUSED = 3
    PROTOCOL_ERROR = 4


class RealtimeProtocolError(QuicnetError):
    """The peer broke quicnet-rt/1; the session closes with PROTOCOL_ERROR and this text."""

    code = CloseCode.PROTOCOL_ERROR


# Variable-length integers: QUIC's (RFC 9000 §16), quicnet.quic.buffer's ----------------------
def read_varint(data: bytes, pos: int, what: str = "a varint") -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; RealtimeProtocolError ("``what``
    truncated") if ``data`` ends inside it."""
    try:
        return varint_at(data, pos)
    except IndexError:
        raise RealtimeProtocolError(f"{what} truncated") from None


# Control messages -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Hello:
    """The client's first control message: its version, token and channel table."""

    version: int
    token: bytes
    channels: tuple[tuple[int, Delivery], ...]


@dataclass(frozen=True, slots=True)
class Welcome:
    """The server admitted the client, as peer ``peer``."""

    peer: int


ControlMessage = Hello | Welcome


def encode_control(message: ControlMessage) -> bytes:
    """A control message with its type and length."""
    if isinstance(message, Hello):
        if len(message.token) > MAX_TOKEN:
            raise ValueError(f"a connect token is at most {MAX_TOKEN} bytes")
        body = bytearray(encode_varint(message.version))
        body += encode_varint(len(message.token)) + message.token
        body += encode_varint(len(message.channels))
        for channel, mode in message.channels:
            body += bytes((channel, int(mode)))
        kind = _HELLO
    else:
        body = bytearray(encode_varint(message.peer))
        kind = _WELCOME
    return encode_varint(kind) + encode_varint(len(body)) + bytes(body)


def _decode_hello(body: bytes) -> Hello:
    version, pos = varint_at(body, 0)
    length, pos = varint_at(body, pos)
    if length > MAX_TOKEN or pos + length > len(body):
        raise RealtimeProtocolError("HELLO: token too long or truncated")
    token = body[pos : pos + length]
    pos += length
    count, pos = varint_at(body, pos)
    if not 1 <= count <= 256 or pos + 2 * count != len(body):
        raise RealtimeProtocolError("HELLO: channel table of the wrong size")
    channels = []
    previous = -1
    for i in range(pos, len(body), 2):
        channel, code = body[i], body[i + 1]
        if channel <= previous:
            raise RealtimeProtocolError("HELLO: channels not in ascending order")
        if code > 3:
            raise RealtimeProtocolError(f"HELLO: unknown delivery mode {code}")
        previous = channel
        channels.append((channel, Delivery(code)))
    return Hello(version, token, tuple(channels))


class ControlReader:
    """Splits the control stream's bytes into control messages (unknown types skipped)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ControlMessage]:
        """Take the next bytes of the stream; return the control messages now complete."""
        buffer = self._buffer
        buffer += data
        out: list[ControlMessage] = []
        while buffer:
            try:
                kind, pos = varint_at(buffer, 0)
                length, pos = varint_at(buffer, pos)
            except IndexError:
                break  # the type or length is still on its way
            if length > MAX_CONTROL_MESSAGE:
                raise RealtimeProtocolError(f"a control message of {length} bytes")
            if len(buffer) < pos + length:
                break
            body = bytes(buffer[pos : pos + length])
            del buffer[: pos + length]
            try:
                if kind == _HELLO:
                    out.append(_decode_hello(body))
                elif kind == _WELCOME:
                    peer, end = varint_at(body, 0)
                    if end != len(body):
                        raise RealtimeProtocolError("WELCOME: trailing bytes")
                    out.append(Welcome(peer))
            except IndexError:
                raise RealtimeProtocolError(f"control message 0x{kind:x} truncated") from None
        if len(buffer) > MAX_CONTROL_MESSAGE + 16:
            raise RealtimeProtocolError("control stream: a message that never ends")
        return out


# Ordered streams ------------------------------------------------------------------------------
class OrderedReader:
    """Splits an ordered channel stream (after its header) into messages."""

    __slots__ = ("_buffer", "_limit", "_wanted")

    def __init__(self, limit: int) -> None:
        self._buffer = bytearray()
        self._limit = limit
        #: Bytes the buffered message needs in all (0: its length is not read yet), so a
        #: large message arriving in pieces is not re-scanned with every piece.
        self._wanted = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Take the next bytes of the stream; return the messages now complete."""
        buffer = self._buffer
        if not buffer:
            try:  # the common case: exactly one whole message
                length, start = varint_at(data, 0)
                if start + length == len(data) and length <= self._limit:
                    return [data[start:]]
            except IndexError:
                pass
            out, rest = self._split(data)  # whole messages, and the start of the next
            buffer += rest
            return out
        buffer += data
        if len(buffer) < self._wanted:
            return []
        out, rest = self._split(bytes(buffer))
        buffer.clear()
        buffer += rest
        return out

    def _split(self, data: bytes) -> tuple[list[bytes], bytes]:
        out = []
        pos = 0
        end = len(data)
        limit = self._limit
        self._wanted = 0
        while pos < end:
            try:
                length, start = varint_at(data, pos)
            except IndexError:
                break
            if length > limit:
                raise RealtimeProtocolError(
                    f"a reliable message of {length} bytes; the limit is {limit}"
                )
            stop = start + length
            if stop > end:
                self._wanted = stop - pos
                break
            out.append(data[start:stop])
            pos = stop
        return out, data[pos:]

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete message held."""
        return len(self._buffer)


# Datagrams ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DatagramHeader:
    """What precedes a datagram's payload; ``fragment`` is (message_id, index, count)."""

    channel: int
    sequence: int | None
    fragment: tuple[int, int, int] | None
    payload_offset: int


def encode_datagram_header(
    channel: int, sequence: int | None = None, fragment: tuple[int, int, int] | None = None
) -> bytes:
    """The header of a datagram on ``channel`` (with a sequence number, a fragment)."""
    header = bytearray((channel, FLAG_FRAGMENT if fragment is not None else 0))
    if sequence is not None:
        header += encode_varint(sequence)
    if fragment is not None:
        message_id, index, count = fragment
        header += encode_varint(message_id) + encode_varint(index) + encode_varint(count)
    return bytes(header)


def parse_datagram_header(data: bytes, sequenced: bool) -> DatagramHeader:
    """Read a datagram's header; ``sequenced`` says whether its channel numbers messages."""
    try:
        channel, flags = data[0], data[1]
        if flags & ~FLAG_FRAGMENT:
            raise RealtimeProtocolError(f"datagram flags 0x{flags:02x}: reserved bits set")
        pos = 2
        sequence = None
        if sequenced:
            sequence, pos = varint_at(data, pos)
        fragment = None
        if flags:
            message_id, pos = varint_at(data, pos)
            index, pos = varint_at(data, pos)
            count, pos = varint_at(data, pos)
            if count < 2 or index >= count:
                raise RealtimeProtocolError(f"fragment {index} of {count}")
            fragment = (message_id, index, count)
    except IndexError:
        raise RealtimeProtocolError("datagram header truncated") from None
    return DatagramHeader(channel, sequence, fragment, pos)
