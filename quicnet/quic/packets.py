"""QUIC packet headers (RFC 9000 §17, RFC 8999 invariants, RFC 9369 for v2).

Parsing here never removes protection: it finds where each packet in a
datagram starts and ends and where its packet number begins, so the
connection can unprotect it with the right key. Malformed input raises
:class:`~quicnet.quic.errors.TransportError`; callers drop such datagrams.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple

from quicnet.quic.buffer import Reader, encode_varint, varint_at
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.protection import retry_integrity_tag
from quicnet.quic.versions import VERSION_PARAMS

__all__ = [
    "MAX_CID_LENGTH",
    "MIN_INITIAL_DATAGRAM",
    "LongHeader",
    "PacketType",
    "ShortHeader",
    "build_retry",
    "build_version_negotiation",
    "decode_packet_number",
    "encode_packet_number",
    "parse_invariant_header",
    "parse_long_header",
    "parse_short_header",
    "parse_version_negotiation",
    "retry_is_valid",
]

MAX_CID_LENGTH = 20  # RFC 9000 §17.2 (v1); invariants allow 255
MIN_INITIAL_DATAGRAM = 1200  # RFC 9000 §14.1
_RETRY_TAG = 16


class PacketType(enum.IntEnum):
    """Version-independent names; the wire bits differ per version."""

    INITIAL = 0
    ZERO_RTT = 1
    HANDSHAKE = 2
    RETRY = 3
    ONE_RTT = 4
    VERSION_NEGOTIATION = 5


#: Enum members read per packet or per handshake, as module constants: through its class a
#: member costs ~115 ns on Python 3.11 (EnumType defines __getattr__), a global ~10 ns.
_INITIAL, _ZERO_RTT = PacketType.INITIAL, PacketType.ZERO_RTT
_HANDSHAKE, _RETRY = PacketType.HANDSHAKE, PacketType.RETRY


def _bad(reason: str) -> TransportError:
    return TransportError(TransportErrorCode.PROTOCOL_VIOLATION, reason)


#: The headers below are named tuples, built here by ``tuple.__new__`` with every field:
#: no Python call per packet (a frozen dataclass's ``__init__`` is one, with an
#: ``object.__setattr__`` per field).
_new_tuple = tuple.__new__


class InvariantHeader(NamedTuple):
    """RFC 8999: what every QUIC version shares; enough to route a datagram."""

    is_long: bool
    version: int | None  # None for short headers
    destination_cid: bytes
    source_cid: bytes | None


def parse_invariant_header(datagram: bytes, short_cid_length: int) -> InvariantHeader:
    """Read the invariant fields of the first packet in ``datagram``."""
    if not datagram:
        raise _bad("empty datagram")
    if datagram[0] & 0x80:
        # Indexing with bounds checks, as parse_long_header (no Reader call per field).
        end = len(datagram)
        if end < 6:  # the first byte, the version, the DCID length
            raise _truncated()
        version = int.from_bytes(datagram[1:5], "big")
        pos = 6 + datagram[5]
        if pos >= end:  # the DCID, then the SCID length
            raise _truncated()
        dcid = datagram[6:pos]
        stop = pos + 1 + datagram[pos]
        if stop > end:
            raise _truncated()
        return _new_tuple(InvariantHeader, (True, version, dcid, datagram[pos + 1 : stop]))
    if len(datagram) < 1 + short_cid_length:
        raise _bad("short header shorter than its connection ID")
    return _new_tuple(InvariantHeader, (False, None, datagram[1 : 1 + short_cid_length], None))


class LongHeader(NamedTuple):
    """A long-header packet located in a datagram (protection still on)."""

    packet_type: PacketType
    version: int
    destination_cid: bytes
    source_cid: bytes
    token: bytes
    pn_offset: int  # where the protected packet number starts (Initial/0-RTT/Handshake)
    end: int  # offset just past this packet in the datagram
    retry_integrity_tag: bytes = b""


def _long_type(version: int, bits: int) -> PacketType:
    p = VERSION_PARAMS[version]
    if bits == p.initial_type:
        return _INITIAL
    if bits == p.zero_rtt_type:
        return _ZERO_RTT
    if bits == p.handshake_type:
        return _HANDSHAKE
    return _RETRY


#: ``_long_type`` of each supported version and type bits, computed once.
_LONG_TYPES = {(v, bits): _long_type(v, bits) for v in VERSION_PARAMS for bits in range(4)}


def _truncated() -> TransportError:
    return TransportError(TransportErrorCode.FRAME_ENCODING_ERROR, "truncated long header")


def _varint_in(datagram: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` of a long header (RFC 9000 §16), read in place (no Reader),
    and the position after it."""
    try:
        return varint_at(datagram, pos)
    except IndexError:
        raise _truncated() from None


def parse_long_header(datagram: bytes, start: int = 0) -> LongHeader:
    """Parse the long header of the packet at ``start`` (a version we support)."""
    # Indexing with explicit bounds checks rather than a Reader: this runs for every
    # long-header packet, and each Reader call costs more than the field it reads.
    end = len(datagram)
    if start + 5 > end:  # the first byte and the version
        raise _truncated()
    first = datagram[start]
    version = int.from_bytes(datagram[start + 1 : start + 5], "big")
    if version == 0:
        raise _bad("Version Negotiation is not a long-header packet to parse here")
    if version not in VERSION_PARAMS:
        raise _bad(f"unsupported version 0x{version:08x}")
    if not first & 0x40:  # the fixed bit (§17.2)
        raise _bad("fixed bit is zero")
    if start + 5 >= end:
        raise _truncated()
    dcid_len = datagram[start + 5]
    if dcid_len > MAX_CID_LENGTH:
        raise _bad("destination connection ID longer than 20 bytes")
    pos = start + 6 + dcid_len
    if pos >= end:  # the DCID, then the SCID length
        raise _truncated()
    dcid = datagram[start + 6 : pos]
    scid_len = datagram[pos]
    if scid_len > MAX_CID_LENGTH:
        raise _bad("source connection ID longer than 20 bytes")
    pos += 1
    if pos + scid_len > end:
        raise _truncated()
    scid = datagram[pos : pos + scid_len]
    pos += scid_len
    bits = (first >> 4) & 0x03
    packet_type = _LONG_TYPES.get((version, bits))
    if packet_type is None:  # a version registered since this module was loaded
        packet_type = _long_type(version, bits)
    if packet_type == _RETRY:
        if end - pos < _RETRY_TAG:
            raise _bad("Retry packet too short")
        token = datagram[pos : end - _RETRY_TAG]
        tag = datagram[end - _RETRY_TAG : end]
        return _new_tuple(LongHeader, (packet_type, version, dcid, scid, token, end, end, tag))
    token = b""
    if packet_type == _INITIAL:  # the token, after its varint length (§17.2.2)
        n, pos = _varint_in(datagram, pos)
        if pos + n > end:
            raise _truncated()
        token = datagram[pos : pos + n]
        pos += n
    length, pn_offset = _varint_in(datagram, pos)  # the Length (§17.2)
    if length > end - pn_offset:
        raise _bad("long-header packet length exceeds the datagram")
    if length < 20:  # 1-byte pn + 16-byte tag + enough to sample: below this it cannot be valid
        raise _bad("long-header packet too short")
    return _new_tuple(
        LongHeader, (packet_type, version, dcid, scid, token, pn_offset, pn_offset + length, b"")
    )


@dataclass(frozen=True, slots=True)
class ShortHeader:
    """A 1-RTT packet's short header located in a datagram (§17.3.1): its destination
    CID and where the protected packet number starts."""

    destination_cid: bytes
    pn_offset: int


def parse_short_header(datagram: bytes, start: int, cid_length: int) -> ShortHeader:
    """Locate the short header at ``start``; the header carries no CID length, so the
    caller gives the length of its own CIDs."""
    if len(datagram) < start + 1 + cid_length:
        raise _bad("short-header packet truncated")
    if not datagram[start] & 0x40:
        raise _bad("fixed bit is zero")
    return ShortHeader(datagram[start + 1 : start + 1 + cid_length], start + 1 + cid_length)


# Packet numbers (RFC 9000 §17.1, Appendix A) ----------------------------------------


def encode_packet_number(packet_number: int, largest_acked: int | None) -> tuple[int, int]:
    """``(truncated_value, length_in_bytes)`` for sending ``packet_number``."""
    num_unacked = packet_number + 1 if largest_acked is None else packet_number - largest_acked
    # Twice the range the receiver could need, as Appendix A.2 recommends.
    bits = max((2 * num_unacked).bit_length(), 8)
    length = min((bits + 7) // 8, 4)
    return packet_number & ((1 << (8 * length)) - 1), length


def decode_packet_number(truncated: int, length: int, largest_received: int) -> int:
    """Appendix A.3: the full packet number nearest to the expected one."""
    expected = largest_received + 1
    window = 1 << (8 * length)
    half = window // 2
    mask = window - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


# Version Negotiation (§17.2.1) -------------------------------------------------------


def build_version_negotiation(
    destination_cid: bytes, source_cid: bytes, versions: list[int], unused_bits: int = 0
) -> bytes:
    """A Version Negotiation packet answering a client (CIDs swapped by the caller)."""
    out = bytearray((0x80 | (unused_bits & 0x7F),))
    out += b"\x00\x00\x00\x00"
    out += bytes((len(destination_cid),)) + destination_cid
    out += bytes((len(source_cid),)) + source_cid
    for v in versions:
        out += v.to_bytes(4, "big")
    return bytes(out)


def parse_version_negotiation(datagram: bytes) -> tuple[bytes, bytes, list[int]]:
    """``(destination_cid, source_cid, supported_versions)``."""
    r = Reader(datagram, 1)
    if r.uint(4) != 0:
        raise _bad("not a Version Negotiation packet")
    dcid = r.read(r.uint8())
    scid = r.read(r.uint8())
    if r.remaining % 4 or not r.remaining:
        raise _bad("Version Negotiation list is not whole versions")
    versions = [r.uint(4) for _ in range(r.remaining // 4)]
    return dcid, scid, versions


# Retry (§17.2.5, RFC 9001 §5.8) -----------------------------------------------------------


def build_retry(
    version: int,
    destination_cid: bytes,
    source_cid: bytes,
    original_destination_cid: bytes,
    token: bytes,
    unused_bits: int = 0,
) -> bytes:
    """A Retry packet (§17.2.5) with its integrity tag over the client's original
    destination CID (RFC 9001 §5.8)."""
    params = VERSION_PARAMS[version]
    header = bytearray((0xC0 | (params.retry_type << 4) | (unused_bits & 0x0F),))
    header += version.to_bytes(4, "big")
    header += bytes((len(destination_cid),)) + destination_cid
    header += bytes((len(source_cid),)) + source_cid
    header += token
    pseudo = bytes((len(original_destination_cid),)) + original_destination_cid + header
    return bytes(header) + retry_integrity_tag(version, pseudo)


def retry_is_valid(datagram: bytes, original_destination_cid: bytes, version: int) -> bool:
    """Check a Retry's integrity tag against the client's first destination CID."""
    if len(datagram) < _RETRY_TAG:
        return False
    pseudo = (
        bytes((len(original_destination_cid),)) + original_destination_cid + datagram[:-_RETRY_TAG]
    )
    return retry_integrity_tag(version, pseudo) == datagram[-_RETRY_TAG:]


def long_header_prefix(
    packet_type: PacketType,
    version: int,
    destination_cid: bytes,
    source_cid: bytes,
    token: bytes,
    pn_length: int,
) -> bytes:
    """First byte through the token (Initial) — the Length field is appended by the packer."""
    params = VERSION_PARAMS[version]
    # PacketType's INITIAL, ZERO_RTT and HANDSHAKE are 0, 1 and 2.
    bits = (params.initial_type, params.zero_rtt_type, params.handshake_type)[packet_type]
    out = bytearray((0xC0 | (bits << 4) | (pn_length - 1),))
    out += version.to_bytes(4, "big")
    out += bytes((len(destination_cid),)) + destination_cid
    out += bytes((len(source_cid),)) + source_cid
    if packet_type == _INITIAL:
        out += encode_varint(len(token)) + token
    return bytes(out)
