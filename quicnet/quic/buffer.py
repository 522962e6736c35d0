"""Variable-length integers (RFC 9000 §16) and a reader/writer for QUIC wire data.

:class:`Reader` raises :class:`~quicnet.quic.errors.TransportError`
(FRAME_ENCODING_ERROR) on any short read, so no parser leaks an IndexError.
"""

from __future__ import annotations

import re

from quicnet.quic.errors import TransportError, TransportErrorCode

__all__ = [
    "MAX_VARINT",
    "Reader",
    "append_varint",
    "encode_varint",
    "padding_end",
    "varint_at",
    "varint_size",
]

MAX_VARINT = (1 << 62) - 1

#: A run of zero bytes (PADDING frames), matched in C at a few instructions a byte.
_ZERO_RUN = re.compile(b"\x00*").match


def padding_end(data: bytes | bytearray, pos: int) -> int:
    """Where the run of zero bytes (PADDING frames, RFC 9000 §19.1) at ``pos`` ends.

    Padding usually fills a packet to its end: one comparison with as many zeros
    (``bytes.lstrip`` looks each byte up in its argument, some 25 instructions a byte).
    """
    end = len(data)
    if data.endswith(bytes(end - pos)):
        return end
    match = _ZERO_RUN(data, pos)
    assert match is not None  # ``\x00*`` matches the empty run too
    return match.end()


def varint_at(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """The variable-length integer at ``pos`` and the position after it (RFC 9000 §16).

    Raises IndexError past the end (a frame or header reader turns it into FRAME_ENCODING_ERROR).
    """
    first = buf[pos]
    kind = first >> 6
    if kind == 0:
        return first, pos + 1
    if kind == 1:
        return ((first & 0x3F) << 8) | buf[pos + 1], pos + 2
    size = 4 if kind == 2 else 8
    if pos + size > len(buf):
        raise IndexError(pos)
    return int.from_bytes(buf[pos : pos + size], "big") & ((1 << (8 * size - 2)) - 1), pos + size


def varint_size(value: int) -> int:
    """How many bytes ``value`` takes as a varint: 1, 2, 4 or 8 (RFC 9000 §16)."""
    if value < 0x40:
        return 1
    if value < 0x4000:
        return 2
    if value < 0x40000000:
        return 4
    if value <= MAX_VARINT:
        return 8
    raise ValueError(f"{value} does not fit a QUIC varint")


def encode_varint(value: int) -> bytes:
    """``value`` as a varint in its shortest encoding (RFC 9000 §16)."""
    if value < 0x40:
        return bytes((value,))
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    if value <= MAX_VARINT:
        return (value | 0xC000000000000000).to_bytes(8, "big")
    raise ValueError(f"{value} does not fit a QUIC varint")


def append_varint(buf: bytearray, value: int) -> None:
    """Append ``value`` to ``buf`` as a varint (§16), the shortest that holds it."""
    if value < 0x40:
        buf.append(value)
    elif value < 0x4000:
        buf += (value | 0x4000).to_bytes(2, "big")
    elif value < 0x40000000:
        buf += (value | 0x80000000).to_bytes(4, "big")
    else:
        buf += (value | 0xC000000000000000).to_bytes(8, "big")


def _short(what: str) -> TransportError:
    return TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, f"truncated {what}")


class Reader:
    """A cursor over a packet payload or a transport-parameter block."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        """Nothing is left before ``end``."""
        return self.pos >= self.end

    @property
    def remaining(self) -> int:
        """Bytes left before ``end``."""
        return self.end - self.pos

    def varint(self) -> int:
        """A varint (§16): the two high bits of its first byte give its length."""
        pos = self.pos
        if pos >= self.end:
            raise _short("varint")
        first = self.data[pos]
        length = 1 << (first >> 6)
        if pos + length > self.end:
            raise _short("varint")
        self.pos = pos + length
        if length == 1:
            return first
        return int.from_bytes(self.data[pos : pos + length], "big") & ((1 << (8 * length - 2)) - 1)

    def uint8(self) -> int:
        """The next byte."""
        if self.pos >= self.end:
            raise _short("byte")
        self.pos += 1
        return self.data[self.pos - 1]

    def uint(self, size: int) -> int:
        """A ``size``-byte unsigned integer, network byte order."""
        return int.from_bytes(self.read(size), "big")

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        if n < 0 or self.pos + n > self.end:
            raise _short("field")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def read_varint_bytes(self) -> bytes:
        """A varint length followed by that many bytes."""
        return self.read(self.varint())
