"""Extension bodies (RFC 8446 §4.2, RFC 6066, RFC 7301, RFC 8449, RFC 9001 §8.2).

One ``encode_*``/``decode_*`` pair per extension and per message it appears
in where the shapes differ. Decoders raise
:class:`~quicnet.tls.errors.DecodeError` on malformed bodies.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from quicnet.memo import BoundedMemo
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import DecodeError, ProtocolViolation
from quicnet.tls.wire import Reader, Writer

__all__ = [
    "ExtensionType",
    "KeyShareEntry",
    "OfferedPsks",
    "PskIdentity",
    "PskKeyExchangeMode",
    "StatusRequest",
]

TLS13 = 0x0304


class ExtensionType(enum.IntEnum):
    """Extension code points from the IANA TLS ExtensionType registry (RFC 8446 §4.2)."""

    server_name = 0
    max_fragment_length = 1
    status_request = 5
    supported_groups = 10
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    signed_certificate_timestamp = 18
    client_certificate_type = 19
    server_certificate_type = 20
    padding = 21
    record_size_limit = 28
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    quic_transport_parameters = 57
    ech_outer_extensions = 0xFD00  # draft-ietf-tls-esni §5.1
    encrypted_client_hello = 0xFE0D
    renegotiation_info = 0xFF01


class PskKeyExchangeMode(enum.IntEnum):
    """How a PSK is used: alone or with an (EC)DHE exchange (RFC 8446 §4.2.9)."""

    psk_ke = 0
    psk_dhe_ke = 1


def _done(r: Reader, what: str) -> None:
    r.expect_end(f"the {what} extension")


def _only_vector(data: bytes, length_size: int, min_length: int, what: str) -> bytes:
    """The body of the one ``opaque x<min_length..>`` vector that ``data`` holds
    whole: a handshake reads a dozen such extension bodies, each without a Reader."""
    size = len(data)
    if size < length_size:
        raise DecodeError(f"truncated: wanted {length_size} bytes, {size} left")
    n = int.from_bytes(data[:length_size], "big")
    if n < min_length:
        raise DecodeError(f"vector shorter than its minimum of {min_length} bytes")
    stop = length_size + n
    if stop != size:
        if stop > size:
            raise DecodeError(f"truncated: vector of {n} bytes, {size - length_size} left")
        raise DecodeError(f"{size - stop} trailing bytes after the {what} extension")
    return data[length_size:]


def _u16_values(body: bytes) -> list[int]:
    if len(body) % 2:
        raise DecodeError("odd length for a list of 16-bit values")
    return list(struct.unpack(f">{len(body) // 2}H", body))


# server_name (RFC 6066 §3) ---------------------------------------------------


def encode_server_name(host: str) -> bytes:
    """server_name (RFC 6066 §3) naming one ``host`` (an ASCII host_name)."""
    name = Writer()
    name.uint8(0)  # host_name
    name.vector(host.encode("ascii"), 2)
    w = Writer()
    w.vector(name.getvalue(), 2)
    return w.getvalue()


#: server_name bodies already parsed, by their exact bytes (a client names the same
#: server on every handshake). Bounded.
_SERVER_NAMES: BoundedMemo[bytes, str | None] = BoundedMemo(64)


def decode_server_name(data: bytes) -> str | None:
    """The host_name of a server_name body (RFC 6066 §3), or None when it lists none;
    DecodeError (decode_error) when malformed, non-ASCII or with two host_names."""
    if type(data) is bytes and data in _SERVER_NAMES:
        return _SERVER_NAMES[data]
    host = _decode_server_name(data)
    if type(data) is bytes and len(data) <= 300:
        _SERVER_NAMES.remember(data, host)
    return host


def _decode_server_name(data: bytes) -> str | None:
    names = Reader(_only_vector(data, 2, 1, "server_name"))
    host: str | None = None
    while not names.at_end():
        kind = names.uint8()
        value = names.vector(2, min_length=1)
        if kind == 0:
            if host is not None:  # RFC 6066: one name per type
                raise DecodeError("two host_name entries in server_name")
            try:
                host = value.decode("ascii")
            except UnicodeDecodeError:
                raise DecodeError("server_name is not ASCII") from None
    return host


# status_request (RFC 6066 §8; in TLS 1.3, RFC 8446 §4.4.2.1) ----------------------------

#: CertificateStatusType ocsp (RFC 6066 §8), the only one defined for TLS 1.3.
STATUS_TYPE_OCSP = 1


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """A ClientHello's CertificateStatusRequest.

    For ``ocsp``: the OCSPStatusRequest's responder IDs and DER request
    extensions. Another type's body is kept whole in ``other`` (RFC 6066 §8
    says only what ``ocsp`` holds, so a server skips the rest).
    """

    status_type: int = STATUS_TYPE_OCSP
    responder_ids: tuple[bytes, ...] = ()
    request_extensions: bytes = b""
    other: bytes = b""


def encode_status_request(request: StatusRequest | None = None) -> bytes:
    """The body of a ClientHello's status_request (RFC 6066 §8); an OCSP request by default."""
    request = request or StatusRequest()
    w = Writer()
    w.uint8(request.status_type)
    if request.status_type != STATUS_TYPE_OCSP:
        w.write(request.other)
        return w.getvalue()
    ids = Writer()
    for responder_id in request.responder_ids:
        ids.vector(responder_id, 2)
    w.vector(ids.getvalue(), 2)
    w.vector(request.request_extensions, 2)
    return w.getvalue()


def decode_status_request(data: bytes) -> StatusRequest:
    """Read a ClientHello's status_request body (RFC 6066 §8).

    A status type other than ``ocsp`` is kept whole in ``other``.
    """
    r = Reader(data)
    status_type = r.uint8()
    if status_type != STATUS_TYPE_OCSP:
        return StatusRequest(status_type, other=r.read(r.remaining))
    block = r.sub(2)
    ids = []
    while not block.at_end():
        ids.append(block.vector(2, min_length=1))  # ResponderID<1..2^16-1>
    extensions = r.vector(2)
    _done(r, "status_request")
    return StatusRequest(status_type, tuple(ids), extensions)


def encode_certificate_status(ocsp_response: bytes) -> bytes:
    """A CertificateEntry's status_request: CertificateStatus carrying a DER OCSPResponse."""
    w = Writer()
    w.uint8(STATUS_TYPE_OCSP)
    w.vector(ocsp_response, 3)
    return w.getvalue()


def decode_certificate_status(data: bytes) -> bytes:
    """The DER OCSPResponse of a CertificateStatus (not checked here)."""
    r = Reader(data)
    status_type = r.uint8()
    if status_type != STATUS_TYPE_OCSP:  # a response to no request: we only ask for ocsp
        raise ProtocolViolation(
            f"CertificateStatus of type {status_type}, not ocsp", AlertDescription.illegal_parameter
        )
    response = r.vector(3, min_length=1)  # OCSPResponse<1..2^24-1>
    _done(r, "status_request")
    return response


# supported_versions (§4.2.1) ---------------------------------------------------


def encode_supported_versions_client(versions: tuple[int, ...] = (TLS13,)) -> bytes:
    """A ClientHello's supported_versions (§4.2.1)."""
    w = Writer()
    w.uint16_list(versions, 1)
    return w.getvalue()


def decode_supported_versions_client(data: bytes) -> list[int]:
    """A ClientHello's supported_versions (§4.2.1): ``ProtocolVersion versions<2..254>``;
    DecodeError when malformed."""
    return _u16_list(data, 1, "supported_versions")


def encode_supported_versions_server(version: int = TLS13) -> bytes:
    """A ServerHello's supported_versions (§4.2.1): the selected version."""
    return version.to_bytes(2, "big")


def decode_supported_versions_server(data: bytes) -> int:
    """A ServerHello's supported_versions (§4.2.1): exactly two bytes; DecodeError else."""
    if len(data) != 2:
        raise DecodeError(f"supported_versions of {len(data)} bytes in a ServerHello, not 2")
    return int.from_bytes(data, "big")


# supported_groups, signature_algorithms(_cert) -------------------------------------


def encode_u16_list(values: tuple[int, ...] | list[int]) -> bytes:
    """A list of uint16 values behind a two-byte length (supported_groups, §4.2.7;
    signature_algorithms, §4.2.3)."""
    w = Writer()
    w.uint16_list(values, 2)
    return w.getvalue()


def decode_u16_list(data: bytes, what: str) -> list[int]:
    """The uint16 values of a non-empty two-byte-length list (supported_groups,
    signature_algorithms); DecodeError naming ``what`` when malformed."""
    return _u16_list(data, 2, what)


#: uint16 lists already parsed (supported_versions, supported_groups,
#: signature_algorithms), by their exact bytes and length-prefix size: a client offers
#: the same ones on every handshake, and the parse of identical bytes is the same.
#: Bounded; malformed bodies are never kept (each raises again).
_U16_DECODED: BoundedMemo[tuple[bytes, int], tuple[int, ...]] = BoundedMemo(64)


def _u16_list(data: bytes, length_size: int, what: str) -> list[int]:
    """``uint16 values<2..>`` behind a ``length_size``-byte length; a new list each call."""
    key = (data, length_size)
    known = _U16_DECODED.get(key) if type(data) is bytes else None
    if known is not None:
        return list(known)
    values = _u16_values(_only_vector(data, length_size, 2, what))
    if type(data) is bytes and len(data) <= 512:
        _U16_DECODED.remember(key, tuple(values))
    return values


# key_share (§4.2.8) ------------------------------------------------------------


class KeyShareEntry(NamedTuple):
    """A KeyShareEntry (§4.2.8): a named group and its key_exchange bytes."""

    group: int
    key_exchange: bytes


def _read_entry(r: Reader) -> KeyShareEntry:
    return KeyShareEntry(r.uint16(), r.vector(2, min_length=1))


def _key_exchange_field(entry: KeyShareEntry) -> bytes:
    """``group`` and ``opaque key_exchange<1..2^16-1>``, the entry as on the wire."""
    group, key_exchange = entry
    n = len(key_exchange)
    if n >> 16:
        raise ValueError(f"{n} bytes do not fit a 2-byte length")
    return group.to_bytes(2, "big") + n.to_bytes(2, "big") + key_exchange


def encode_key_share_client(entries: list[KeyShareEntry] | tuple[KeyShareEntry, ...]) -> bytes:
    """A ClientHello's key_share (§4.2.8): ``KeyShareEntry client_shares<0..2^16-1>``."""
    inner = b"".join([_key_exchange_field(entry) for entry in entries])
    if len(inner) >> 16:
        raise ValueError(f"{len(inner)} bytes do not fit a 2-byte length")
    return len(inner).to_bytes(2, "big") + inner


def decode_key_share_client(data: bytes) -> list[KeyShareEntry]:
    """A ClientHello's key_share (§4.2.8); DecodeError when malformed, illegal_parameter
    for two shares of one group."""
    body = _only_vector(data, 2, 0, "key_share")
    n = len(body) - 4
    if n > 0 and int.from_bytes(body[2:4], "big") == n:
        # One entry filling the list (the usual hello): read at once, no Reader; any
        # other shape (several, truncated, empty) goes the general way below.
        return [KeyShareEntry(int.from_bytes(body[:2], "big"), body[4:])]
    block = Reader(body)
    entries = []
    groups: set[int] = set()
    while not block.at_end():
        entry = _read_entry(block)
        if entry.group in groups:  # §4.2.8: no two shares for one group
            raise ProtocolViolation(
                f"two key shares for group 0x{entry.group:04x}", AlertDescription.illegal_parameter
            )
        groups.add(entry.group)
        entries.append(entry)
    return entries


def encode_key_share_server(entry: KeyShareEntry) -> bytes:
    """A ServerHello's key_share (§4.2.8): one KeyShareEntry."""
    return _key_exchange_field(entry)


def decode_key_share_server(data: bytes) -> KeyShareEntry:
    """A ServerHello's key_share (§4.2.8): one KeyShareEntry, nothing after it;
    DecodeError when malformed."""
    if len(data) < 2:
        raise DecodeError(f"truncated: wanted 2 bytes, {len(data)} left")
    return KeyShareEntry(int.from_bytes(data[:2], "big"), _only_vector(data[2:], 2, 1, "key_share"))


def encode_key_share_hrr(group: int) -> bytes:
    """A HelloRetryRequest's key_share (§4.2.8): the selected group."""
    return group.to_bytes(2, "big")


def decode_key_share_hrr(data: bytes) -> int:
    """A HelloRetryRequest's key_share (§4.2.8): the selected group; DecodeError else."""
    r = Reader(data)
    group = r.uint16()
    _done(r, "key_share")
    return group


# ALPN (RFC 7301) ----------------------------------------------------------------


def encode_alpn(protocols: Sequence[str]) -> bytes:
    """application_layer_protocol_negotiation (RFC 7301 §3.1): the protocol names."""
    inner = Writer()
    for proto in protocols:
        inner.vector(proto.encode("latin-1"), 1)
    w = Writer()
    w.vector(inner.getvalue(), 2)
    return w.getvalue()


#: ALPN bodies already parsed, by their exact bytes (a client offers the same list on
#: every handshake; the parse of identical bytes is the same). Bounded.
_ALPN_DECODED: BoundedMemo[bytes, tuple[str, ...]] = BoundedMemo(32)


def decode_alpn(data: bytes) -> list[str]:
    """The protocol names of an ALPN body (RFC 7301 §3.1; bytes read as latin-1), none
    empty; DecodeError when malformed."""
    known = _ALPN_DECODED.get(data) if type(data) is bytes else None
    if known is not None:
        return list(known)
    block = Reader(_only_vector(data, 2, 2, "ALPN"))
    protocols = []
    while not block.at_end():
        name = block.vector(1, min_length=1)
        protocols.append(name.decode("latin-1"))
    if type(data) is bytes and len(data) <= 256:
        _ALPN_DECODED.remember(data, tuple(protocols))
    return protocols


# psk_key_exchange_modes (§4.2.9) -----------------------------------------------------


def encode_psk_modes(modes: tuple[int, ...] = (PskKeyExchangeMode.psk_dhe_ke,)) -> bytes:
    """psk_key_exchange_modes (§4.2.9): ``PskKeyExchangeMode ke_modes<1..255>``."""
    w = Writer()
    w.vector(bytes(modes), 1)
    return w.getvalue()


def decode_psk_modes(data: bytes) -> list[int]:
    """psk_key_exchange_modes (§4.2.9), unknown modes included; DecodeError when malformed."""
    return list(_only_vector(data, 1, 1, "psk_key_exchange_modes"))


# pre_shared_key (§4.2.11) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PskIdentity:
    """A PSK identity (a ticket) and its obfuscated age in ms (RFC 8446 §4.2.11)."""

    identity: bytes
    obfuscated_ticket_age: int


@dataclass(frozen=True, slots=True)
class OfferedPsks:
    """A ClientHello's pre_shared_key: identities and their binders (RFC 8446 §4.2.11)."""

    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]


def encode_identities(identities: tuple[PskIdentity, ...]) -> bytes:
    """The length-prefixed ``identities`` list of a pre_shared_key (RFC 8446 §4.2.11)."""
    inner = Writer()
    for ident in identities:
        inner.vector(ident.identity, 2)
        inner.uint32(ident.obfuscated_ticket_age)
    w = Writer()
    w.vector(inner.getvalue(), 2)
    return w.getvalue()


def encode_binders(binders: tuple[bytes, ...]) -> bytes:
    """The length-prefixed ``binders`` list of a pre_shared_key (RFC 8446 §4.2.11)."""
    inner = Writer()
    for binder in binders:
        inner.vector(binder, 1)
    w = Writer()
    w.vector(inner.getvalue(), 2)
    return w.getvalue()


def encode_pre_shared_key_client(offer: OfferedPsks) -> bytes:
    """The body of a ClientHello's pre_shared_key (RFC 8446 §4.2.11)."""
    return encode_identities(offer.identities) + encode_binders(offer.binders)


def decode_pre_shared_key_client(data: bytes) -> OfferedPsks:
    """Read a ClientHello's pre_shared_key body (RFC 8446 §4.2.11).

    Raises :class:`~quicnet.tls.errors.ProtocolViolation` (illegal_parameter)
    if the numbers of identities and binders differ.
    """
    r = Reader(data)
    block = r.sub(2, min_length=7)
    identities = []
    while not block.at_end():
        identities.append(PskIdentity(block.vector(2, min_length=1), block.uint32()))
    binder_block = r.sub(2, min_length=33)
    binders = []
    while not binder_block.at_end():
        binders.append(binder_block.vector(1, min_length=32))
    _done(r, "pre_shared_key")
    if len(binders) != len(identities):  # §4.2.11
        raise ProtocolViolation(
            "pre_shared_key has a different number of binders and identities",
            AlertDescription.illegal_parameter,
        )
    return OfferedPsks(tuple(identities), tuple(binders))


def binders_length(offer: OfferedPsks) -> int:
    """Bytes the binders list takes at the end of the ClientHello (what §4.2.11.2 truncates)."""
    return 2 + sum(1 + len(b) for b in offer.binders)


def encode_pre_shared_key_server(selected_identity: int) -> bytes:
    """The body of a ServerHello's pre_shared_key: the chosen identity's index."""
    return selected_identity.to_bytes(2, "big")


def decode_pre_shared_key_server(data: bytes) -> int:
    """The identity index a ServerHello's pre_shared_key selects (RFC 8446 §4.2.11)."""
    r = Reader(data)
    selected = r.uint16()
    _done(r, "pre_shared_key")
    return selected


# early_data (§4.2.10), cookie (§4.2.2), record_size_limit (RFC 8449) ---------------------


def encode_early_data_ticket(max_early_data_size: int) -> bytes:
    """The body of a NewSessionTicket's early_data: max_early_data_size (RFC 8446 §4.2.10)."""
    return max_early_data_size.to_bytes(4, "big")


#: A NewSessionTicket's extension block with early_data alone (§4.2, §4.2.10): the block's
#: length (8), the type (42), the body's length (4) and max_early_data_size.
_TICKET_EARLY_DATA = struct.Struct(">HHHI")


def encode_ticket_extensions(max_early_data_size: int) -> bytes:
    """A NewSessionTicket's extension block, its length first (RFC 8446 §4.6.1): early_data
    with ``max_early_data_size`` when it is not 0 (0-RTT allowed, §4.2.10), else empty."""
    if not max_early_data_size:
        return b"\x00\x00"
    return _TICKET_EARLY_DATA.pack(8, 42, 4, max_early_data_size)


def decode_early_data_ticket(data: bytes) -> int:
    """The max_early_data_size a NewSessionTicket's early_data carries (RFC 8446 §4.2.10)."""
    r = Reader(data)
    size = r.uint32()
    _done(r, "early_data")
    return size


def decode_empty(data: bytes, what: str) -> None:
    """Raise :class:`~quicnet.tls.errors.DecodeError` unless the ``what`` extension is empty."""
    if data:
        raise DecodeError(f"the {what} extension must be empty here")


def encode_cookie(cookie: bytes) -> bytes:
    """The body of a cookie extension (RFC 8446 §4.2.2)."""
    w = Writer()
    w.vector(cookie, 2)
    return w.getvalue()


def decode_cookie(data: bytes) -> bytes:
    """The cookie a cookie extension carries, at least one byte (RFC 8446 §4.2.2)."""
    r = Reader(data)
    cookie = r.vector(2, min_length=1)
    _done(r, "cookie")
    return cookie


def encode_record_size_limit(limit: int) -> bytes:
    """The body of a record_size_limit extension (RFC 8449 §4)."""
    return limit.to_bytes(2, "big")


def decode_record_size_limit(data: bytes) -> int:
    """The limit a record_size_limit extension carries (RFC 8449 §4).

    Raises :class:`~quicnet.tls.errors.ProtocolViolation` (illegal_parameter)
    below 64.
    """
    r = Reader(data)
    limit = r.uint16()
    _done(r, "record_size_limit")
    if limit < 64:  # RFC 8449 §4
        raise ProtocolViolation(
            f"record_size_limit {limit} below 64", AlertDescription.illegal_parameter
        )
    return limit
