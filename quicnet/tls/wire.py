"""Reading and writing TLS's presentation language (RFC 8446 §3).

:class:`Reader` raises :class:`~quicnet.tls.errors.DecodeError` on any
short read, so no parser can leak an IndexError or struct.error.
"""

from __future__ import annotations

import struct

from quicnet.tls.errors import DecodeError

__all__ = ["Reader", "Writer"]

#: An extension's uint16 type and uint16 length, read in one call.
_unpack_type_length = struct.Struct(">HH").unpack_from


class Reader:
    """A cursor over a message body."""

    __slots__ = ("_data", "_end", "_pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self._data = data
        self._pos = start
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        """How many bytes are left to read."""
        return self._end - self._pos

    def at_end(self) -> bool:
        """Whether every byte has been read."""
        return self._pos >= self._end

    def expect_end(self, what: str) -> None:
        """Raise :class:`~quicnet.tls.errors.DecodeError` naming ``what`` if bytes are left."""
        if self._pos != self._end:
            raise DecodeError(f"{self._end - self._pos} trailing bytes after {what}")

    # The accessors below repeat the bounds check instead of calling each other: they
    # run for every field of every handshake message.
    def read(self, n: int) -> bytes:
        """The next ``n`` bytes; :class:`~quicnet.tls.errors.DecodeError` if fewer are left."""
        start = self._pos
        stop = start + n
        if stop > self._end:
            raise DecodeError(f"truncated: wanted {n} bytes, {self._end - start} left")
        self._pos = stop
        return self._data[start:stop]

    def uint(self, size: int) -> int:
        """The next ``size``-byte big-endian unsigned integer (RFC 8446 §3.3)."""
        start = self._pos
        stop = start + size
        if stop > self._end:
            raise DecodeError(f"truncated: wanted {size} bytes, {self._end - start} left")
        self._pos = stop
        return int.from_bytes(self._data[start:stop], "big")

    def uint8(self) -> int:
        """The next ``uint8`` (RFC 8446 §3.3)."""
        pos = self._pos
        if pos >= self._end:
            raise DecodeError(f"truncated: wanted 1 bytes, {self._end - pos} left")
        self._pos = pos + 1
        return self._data[pos]

    def uint16(self) -> int:
        """A big-endian uint16; DecodeError when fewer than two bytes are left."""
        start = self._pos
        stop = start + 2
        if stop > self._end:
            raise DecodeError(f"truncated: wanted 2 bytes, {self._end - start} left")
        self._pos = stop
        return int.from_bytes(self._data[start:stop], "big")

    def uint24(self) -> int:
        """The next big-endian ``uint24`` (RFC 8446 §3.3)."""
        return self.uint(3)

    def uint32(self) -> int:
        """The next big-endian ``uint32`` (RFC 8446 §3.3)."""
        start = self._pos
        stop = start + 4
        if stop > self._end:
            raise DecodeError(f"truncated: wanted 4 bytes, {self._end - start} left")
        self._pos = stop
        return int.from_bytes(self._data[start:stop], "big")

    def _span(self, length_size: int, min_length: int) -> tuple[int, int]:
        """Step over a length-prefixed vector: its ``(start, stop)`` in the data."""
        pos = self._pos
        start = pos + length_size
        end = self._end
        if start > end:
            raise DecodeError(f"truncated: wanted {length_size} bytes, {end - pos} left")
        n = int.from_bytes(self._data[pos:start], "big")
        if n < min_length:
            raise DecodeError(f"vector shorter than its minimum of {min_length} bytes")
        stop = start + n
        if stop > end:
            raise DecodeError(f"truncated: vector of {n} bytes, {end - start} left")
        self._pos = stop
        return start, stop

    def vector(self, length_size: int, *, min_length: int = 0) -> bytes:
        """``opaque x<min..2^(8*length_size)-1>``."""
        start, stop = self._span(length_size, min_length)
        return self._data[start:stop]

    def extension_block(self, min_length: int = 0) -> list[tuple[int, bytes]]:
        """``Extension extensions<min_length..2^16-1>`` (RFC 8446 §4.2) as ``(uint16
        type, opaque data<0..2^16-1>)`` pairs, read in place (no reader over the block)."""
        pos, end = self._span(2, min_length)
        data = self._data
        items = []
        while pos < end:
            start = pos + 4
            if start > end:
                raise DecodeError(f"truncated: wanted {start - pos} bytes, {end - pos} left")
            ext_type, n = _unpack_type_length(data, pos)
            stop = start + n
            if stop > end:
                raise DecodeError(f"truncated: wanted {n} bytes, {end - start} left")
            items.append((ext_type, data[start:stop]))
            pos = stop
        return items

    def sub(self, length_size: int, *, min_length: int = 0) -> Reader:
        """A reader over the next length-prefixed vector."""
        start, stop = self._span(length_size, min_length)
        return Reader(self._data, start, stop)

    def uint16_list(self, length_size: int, *, min_length: int = 0) -> list[int]:
        """The ``uint16`` values of the next length-prefixed vector (RFC 8446 §3.4).

        Raises :class:`~quicnet.tls.errors.DecodeError` if the vector is shorter
        than ``min_length`` bytes or its length is odd.
        """
        body = self.vector(length_size, min_length=min_length)
        if len(body) % 2:
            raise DecodeError("odd length for a list of 16-bit values")
        return list(struct.unpack(f">{len(body) // 2}H", body))


class Writer:
    """Builds a message body."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return bytes(self._buf)

    def write(self, data: bytes) -> None:
        """Append ``data`` as it is."""
        self._buf += data

    def uint(self, value: int, size: int) -> None:
        """Append ``value`` as a ``size``-byte big-endian unsigned integer (RFC 8446 §3.3)."""
        self._buf += value.to_bytes(size, "big")

    def uint8(self, value: int) -> None:
        """Append a ``uint8`` (RFC 8446 §3.3)."""
        self._buf.append(value)

    def uint16(self, value: int) -> None:
        """Append a big-endian ``uint16`` (RFC 8446 §3.3)."""
        self._buf += value.to_bytes(2, "big")

    def uint24(self, value: int) -> None:
        """Append a big-endian ``uint24`` (RFC 8446 §3.3)."""
        self._buf += value.to_bytes(3, "big")

    def uint32(self, value: int) -> None:
        """Append a big-endian ``uint32`` (RFC 8446 §3.3)."""
        self._buf += value.to_bytes(4, "big")

    def vector(self, data: bytes, length_size: int) -> None:
        """Append ``data`` behind a ``length_size``-byte length (RFC 8446 §3.4).

        Raises ValueError if the length does not fit ``length_size`` bytes.
        """
        n = len(data)
        if n >> (8 * length_size):
            raise ValueError(f"{n} bytes do not fit a {length_size}-byte length")
        self._buf += n.to_bytes(length_size, "big")
        self._buf += data

    def uint16_list(self, values: list[int] | tuple[int, ...], length_size: int) -> None:
        """Append ``values`` as a vector of ``uint16`` (RFC 8446 §3.4).

        Raises OverflowError if a value does not fit 16 bits.
        """
        try:
            packed = struct.pack(f">{len(values)}H", *values)
        except struct.error:
            raise OverflowError("a value does not fit 16 bits") from None
        self.vector(packed, length_size)
