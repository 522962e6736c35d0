"""Handshake messages (RFC 8446 §4): frozen dataclasses (each ``Extension`` a named tuple)
and their codec.

Extensions stay as ``(type, data)`` pairs in wire order, so a message decodes
and re-encodes byte for byte; :mod:`quicnet.tls.extensions` reads and writes
their bodies.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from quicnet.memo import BoundedMemo
from quicnet.slots import slot_setters
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import DecodeError, ProtocolViolation
from quicnet.tls.wire import Reader, Writer

__all__ = [
    "HELLO_RETRY_REQUEST_RANDOM",
    "MAX_HANDSHAKE_MESSAGE",
    "Certificate",
    "CertificateEntry",
    "CertificateRequest",
    "CertificateVerify",
    "ClientHello",
    "EncryptedExtensions",
    "EndOfEarlyData",
    "Extension",
    "Finished",
    "HandshakeMessage",
    "HandshakeReassembler",
    "HandshakeType",
    "KeyUpdate",
    "NewSessionTicket",
    "ServerHello",
    "decode_message",
    "encode_extensions",
    "encode_message",
    "new_session_ticket_message",
]

#: SHA-256("HelloRetryRequest"): the ServerHello.random of an HRR (§4.1.3).
HELLO_RETRY_REQUEST_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
#: Largest handshake message accepted (a long certificate chain fits easily).
MAX_HANDSHAKE_MESSAGE = 1 << 18
LEGACY_VERSION = 0x0303


class HandshakeType(enum.IntEnum):
    """The type byte that opens each handshake message (RFC 8446 §4)."""

    client_hello = 1
    server_hello = 2
    new_session_ticket = 4
    end_of_early_data = 5
    encrypted_extensions = 8
    certificate = 11
    certificate_request = 13
    certificate_verify = 15
    finished = 20
    key_update = 24
    message_hash = 254


class Extension(NamedTuple):
    """One extension as it is on the wire: its type and its undecoded body (RFC 8446 §4.2).

    A named tuple, not a dataclass: a handshake reads some twenty of them, and the
    decoder builds each from its ``(type, data)`` pair with no Python call."""

    type: int
    data: bytes


Extensions = tuple[Extension, ...]

#: ``Extension`` from a ``(type, data)`` pair, in C (a NamedTuple's ``__new__`` is Python).
_extension_from_pair = partial(tuple.__new__, Extension)


def _read_extensions(r: Reader, *, min_length: int = 0) -> Extensions:
    items = r.extension_block(min_length)
    extensions: Extensions = tuple(map(_extension_from_pair, items))
    if len(dict(items)) != len(items):  # a dict of the pairs, in C: one entry per type
        # §4.2: at most one extension of each type
        seen: set[int] = set()
        for ext_type, _ in items:
            if ext_type in seen:
                raise ProtocolViolation(
                    f"duplicate extension {ext_type}", AlertDescription.illegal_parameter
                )
            seen.add(ext_type)
    return extensions


#: An extension's type and length (RFC 8446 §4.2), packed in one call.
_pack_extension_header = struct.Struct(">HH").pack


def _write_extensions(w: Writer, extensions: Extensions) -> None:
    w.write(encode_extensions(extensions))


def encode_extensions(extensions: Extensions) -> bytes:
    """``Extension extensions<0..2^16-1>`` (RFC 8446 §4.2): the block, its length first.

    Raises ValueError (OverflowError for a type) if something does not fit 16 bits.
    """
    parts = []
    for ext_type, data in extensions:
        n = len(data)
        if n > 0xFFFF:
            raise ValueError(f"{n} bytes do not fit a 2-byte length")
        try:
            parts.append(_pack_extension_header(ext_type, n))
        except struct.error:
            raise OverflowError(f"extension type {ext_type} does not fit 16 bits") from None
        parts.append(data)
    block = b"".join(parts)
    if len(block) > 0xFFFF:
        raise ValueError(f"{len(block)} bytes of extensions do not fit a 2-byte length")
    return len(block).to_bytes(2, "big") + block


def find_extension(extensions: Extensions, ext_type: int) -> bytes | None:
    """The body of the first extension of type ``ext_type``, or None if absent."""
    for ext in extensions:
        if ext.type == ext_type:
            return ext.data
    return None


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The client's first flight: offered suites, key shares, extensions (RFC 8446 §4.1.2)."""

    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    extensions: Extensions
    legacy_version: int = LEGACY_VERSION
    legacy_compression_methods: bytes = b"\x00"

    msg_type = HandshakeType.client_hello

    def __init__(
        self,
        random: bytes,
        legacy_session_id: bytes,
        cipher_suites: tuple[int, ...],
        extensions: Extensions,
        legacy_version: int = LEGACY_VERSION,
        legacy_compression_methods: bytes = b"\x00",
    ) -> None:
        # Each slot through its descriptor (quicnet.slots): two of these a handshake.
        set0, set1, set2, set3, set4, set5 = _CLIENT_HELLO_SET
        set0(self, random)
        set1(self, legacy_session_id)
        set2(self, cipher_suites)
        set3(self, extensions)
        set4(self, legacy_version)
        set5(self, legacy_compression_methods)

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the extension of type ``ext_type``, or None if it was not sent."""
        return find_extension(self.extensions, ext_type)

    def _encode(self, w: Writer) -> None:
        w.uint16(self.legacy_version)
        w.write(self.random)
        w.vector(self.legacy_session_id, 1)
        w.uint16_list(self.cipher_suites, 2)
        w.vector(self.legacy_compression_methods, 1)
        _write_extensions(w, self.extensions)

    @classmethod
    def _decode(cls, r: Reader) -> ClientHello:
        legacy_version = r.uint16()
        random = r.read(32)
        session_id = r.vector(1)
        if len(session_id) > 32:
            raise DecodeError("legacy_session_id longer than 32 bytes")
        suites = r.uint16_list(2, min_length=2)
        compression = r.vector(1, min_length=1)
        extensions = _read_extensions(r, min_length=8) if not r.at_end() else ()
        return cls(random, session_id, tuple(suites), extensions, legacy_version, compression)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """The server's choice of suite and key share, or an HRR (RFC 8446 §4.1.3)."""

    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    extensions: Extensions
    legacy_version: int = LEGACY_VERSION
    legacy_compression_method: int = 0

    msg_type = HandshakeType.server_hello

    def __init__(
        self,
        random: bytes,
        legacy_session_id_echo: bytes,
        cipher_suite: int,
        extensions: Extensions,
        legacy_version: int = LEGACY_VERSION,
        legacy_compression_method: int = 0,
    ) -> None:
        # Each slot through its descriptor (quicnet.slots): two of these a handshake.
        set0, set1, set2, set3, set4, set5 = _SERVER_HELLO_SET
        set0(self, random)
        set1(self, legacy_session_id_echo)
        set2(self, cipher_suite)
        set3(self, extensions)
        set4(self, legacy_version)
        set5(self, legacy_compression_method)

    @property
    def is_hello_retry_request(self) -> bool:
        """Whether this is a HelloRetryRequest, told by its special random (RFC 8446 §4.1.3)."""
        return self.random == HELLO_RETRY_REQUEST_RANDOM

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the extension of type ``ext_type``, or None if it was not sent."""
        return find_extension(self.extensions, ext_type)

    def _encode(self, w: Writer) -> None:
        w.uint16(self.legacy_version)
        w.write(self.random)
        w.vector(self.legacy_session_id_echo, 1)
        w.uint16(self.cipher_suite)
        w.uint8(self.legacy_compression_method)
        _write_extensions(w, self.extensions)

    @classmethod
    def _decode(cls, r: Reader) -> ServerHello:
        legacy_version = r.uint16()
        random = r.read(32)
        session_id = r.vector(1)
        if len(session_id) > 32:
            raise DecodeError("legacy_session_id_echo longer than 32 bytes")
        suite = r.uint16()
        compression = r.uint8()
        extensions = _read_extensions(r, min_length=6)
        return cls(random, session_id, suite, extensions, legacy_version, compression)


_CLIENT_HELLO_SET = slot_setters(
    ClientHello,
    "random legacy_session_id cipher_suites extensions legacy_version legacy_compression_methods",
)
_SERVER_HELLO_SET = slot_setters(
    ServerHello,
    "random legacy_session_id_echo cipher_suite extensions legacy_version"
    " legacy_compression_method",
)


@dataclass(frozen=True, slots=True)
class EncryptedExtensions:
    """The server's extensions sent under handshake keys (RFC 8446 §4.3.1)."""

    extensions: Extensions

    msg_type = HandshakeType.encrypted_extensions

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the extension of type ``ext_type``, or None if it was not sent."""
        return find_extension(self.extensions, ext_type)

    def _encode(self, w: Writer) -> None:
        _write_extensions(w, self.extensions)

    @classmethod
    def _decode(cls, r: Reader) -> EncryptedExtensions:
        return cls(_read_extensions(r))


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """The server's request for a client certificate (RFC 8446 §4.3.2)."""

    certificate_request_context: bytes
    extensions: Extensions

    msg_type = HandshakeType.certificate_request

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the extension of type ``ext_type``, or None if it was not sent."""
        return find_extension(self.extensions, ext_type)

    def _encode(self, w: Writer) -> None:
        w.vector(self.certificate_request_context, 1)
        _write_extensions(w, self.extensions)

    @classmethod
    def _decode(cls, r: Reader) -> CertificateRequest:
        context = r.vector(1)
        return cls(context, _read_extensions(r, min_length=2))


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    """One certificate of a chain, DER, with its per-entry extensions (RFC 8446 §4.4.2)."""

    cert_data: bytes
    extensions: Extensions = ()


@dataclass(frozen=True, slots=True)
class Certificate:
    """The sender's certificate chain, end-entity first (RFC 8446 §4.4.2)."""

    certificate_request_context: bytes
    certificate_list: tuple[CertificateEntry, ...]

    msg_type = HandshakeType.certificate

    def _encode(self, w: Writer) -> None:
        w.vector(self.certificate_request_context, 1)
        inner = Writer()
        for entry in self.certificate_list:
            inner.vector(entry.cert_data, 3)
            _write_extensions(inner, entry.extensions)
        w.vector(inner.getvalue(), 3)

    @classmethod
    def _decode(cls, r: Reader) -> Certificate:
        context = r.vector(1)
        block = r.sub(3)
        entries = []
        while not block.at_end():
            data = block.vector(3, min_length=1)
            entries.append(CertificateEntry(data, _read_extensions(block)))
        return cls(context, tuple(entries))


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    """A signature over the transcript with the certificate's key (RFC 8446 §4.4.3)."""

    algorithm: int
    signature: bytes

    msg_type = HandshakeType.certificate_verify

    def _encode(self, w: Writer) -> None:
        w.uint16(self.algorithm)
        w.vector(self.signature, 2)

    @classmethod
    def _decode(cls, r: Reader) -> CertificateVerify:
        return cls(r.uint16(), r.vector(2))


@dataclass(frozen=True, slots=True)
class Finished:
    """The HMAC over the transcript that authenticates the handshake (RFC 8446 §4.4.4)."""

    verify_data: bytes

    msg_type = HandshakeType.finished

    def _encode(self, w: Writer) -> None:
        w.write(self.verify_data)

    @classmethod
    def _decode(cls, r: Reader) -> Finished:
        return cls(r.read(r.remaining))


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    """A ticket the server issues for later resumption (RFC 8446 §4.6.1)."""

    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: Extensions = ()

    msg_type = HandshakeType.new_session_ticket

    def __init__(
        self,
        ticket_lifetime: int,
        ticket_age_add: int,
        ticket_nonce: bytes,
        ticket: bytes,
        extensions: Extensions = (),
    ) -> None:
        # Each slot through its descriptor (quicnet.slots).
        set0, set1, set2, set3, set4 = _NEW_SESSION_TICKET_SET
        set0(self, ticket_lifetime)
        set1(self, ticket_age_add)
        set2(self, ticket_nonce)
        set3(self, ticket)
        set4(self, extensions)

    def extension(self, ext_type: int) -> bytes | None:
        """The body of the extension of type ``ext_type``, or None if it was not sent."""
        return find_extension(self.extensions, ext_type)

    def _encode(self, w: Writer) -> None:
        message = new_session_ticket_message(
            self.ticket_lifetime,
            self.ticket_age_add,
            self.ticket_nonce,
            self.ticket,
            encode_extensions(self.extensions),
        )
        w.write(message[4:])  # the body: encode_message writes the header

    @classmethod
    def _decode(cls, r: Reader) -> NewSessionTicket:
        lifetime = r.uint32()
        age_add = r.uint32()
        nonce = r.vector(1)
        ticket = r.vector(2, min_length=1)
        return cls(lifetime, age_add, nonce, ticket, _read_extensions(r))


_NEW_SESSION_TICKET_SET = slot_setters(
    NewSessionTicket, "ticket_lifetime ticket_age_add ticket_nonce ticket extensions"
)

#: A NewSessionTicket's header and fixed fields, in one call (RFC 8446 §4, §4.6.1): the
#: message type in the top byte of a uint32 whose low 24 bits are the body's length;
#: ticket_lifetime; ticket_age_add; the nonce's uint8 length.
_NEW_SESSION_TICKET_HEAD = struct.Struct(">IIIB")
_NEW_SESSION_TICKET_TYPE = 4 << 24  # HandshakeType.new_session_ticket, in the top byte


def new_session_ticket_message(
    ticket_lifetime: int, ticket_age_add: int, ticket_nonce: bytes, ticket: bytes, extensions: bytes
) -> bytes:
    """A whole NewSessionTicket message, header included (RFC 8446 §4.6.1): what
    ``encode_message(NewSessionTicket(...))`` gives, without the object. ``extensions``
    is the encoded block (:func:`encode_extensions`, its length first).

    Raises ValueError if the nonce is over 255 bytes or the ticket over 65,535 (an empty
    one, which a decoder refuses, is written as given: a test may send one).
    """
    n_nonce, n_ticket = len(ticket_nonce), len(ticket)
    if n_nonce > 0xFF or n_ticket > 0xFFFF:
        raise ValueError("ticket_nonce<0..255> or ticket<1..2^16-1> too long")
    try:
        head = _NEW_SESSION_TICKET_HEAD.pack(
            _NEW_SESSION_TICKET_TYPE | (11 + n_nonce + n_ticket + len(extensions)),
            ticket_lifetime,
            ticket_age_add,
            n_nonce,
        )
    except struct.error:
        raise ValueError("ticket_lifetime or ticket_age_add does not fit 32 bits") from None
    return b"".join((head, ticket_nonce, n_ticket.to_bytes(2, "big"), ticket, extensions))


@dataclass(frozen=True, slots=True)
class EndOfEarlyData:
    """The client's marker that its 0-RTT data has ended (RFC 8446 §4.5)."""

    msg_type = HandshakeType.end_of_early_data

    def _encode(self, w: Writer) -> None:
        pass

    @classmethod
    def _decode(cls, r: Reader) -> EndOfEarlyData:
        return cls()


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    """A switch to the next traffic secret, maybe asking the peer to follow (RFC 8446 §4.6.3)."""

    request_update: bool

    msg_type = HandshakeType.key_update

    def _encode(self, w: Writer) -> None:
        w.uint8(1 if self.request_update else 0)

    @classmethod
    def _decode(cls, r: Reader) -> KeyUpdate:
        value = r.uint8()
        if value > 1:  # §4.6.3
            raise ProtocolViolation(
                f"KeyUpdate request_update {value}", AlertDescription.illegal_parameter
            )
        return cls(value == 1)


HandshakeMessage = (
    ClientHello
    | ServerHello
    | EncryptedExtensions
    | CertificateRequest
    | Certificate
    | CertificateVerify
    | Finished
    | NewSessionTicket
    | EndOfEarlyData
    | KeyUpdate
)

_CERTIFICATE_TYPE = int(HandshakeType.certificate)
_DECODERS: dict[int, type[HandshakeMessage]] = {
    cls.msg_type: cls
    for cls in (
        ClientHello,
        ServerHello,
        EncryptedExtensions,
        CertificateRequest,
        Certificate,
        CertificateVerify,
        Finished,
        NewSessionTicket,
        EndOfEarlyData,
        KeyUpdate,
    )
}


#: Certificate messages by their exact bytes (header included), and their encodings by
#: message: a server sends the same chain on every handshake, and parsing identical bytes
#: (or encoding an equal, immutable message) gives the same result each time. Only the
#: parsing is kept; every check of the chain runs on each handshake. Bounded: a few
#: chains, each at most ``_CERTIFICATE_CACHE_BYTES``.
_CERTIFICATES_DECODED: BoundedMemo[bytes, Certificate] = BoundedMemo(16)
_CERTIFICATES_ENCODED: BoundedMemo[Certificate, bytes] = BoundedMemo(16)
_CERTIFICATE_CACHE_BYTES = 1 << 14


def encode_message(message: HandshakeMessage) -> bytes:
    """The message with its 4-byte handshake header."""
    if type(message) is Certificate:
        return _encode_certificate(message)
    w = Writer()
    message._encode(w)
    body = w.getvalue()
    return bytes((message.msg_type,)) + len(body).to_bytes(3, "big") + body


def decode_message(data: bytes) -> HandshakeMessage:
    """Parse one whole message (header included); anything malformed raises DecodeError."""
    if len(data) < 4:
        raise DecodeError(f"truncated: a handshake header needs 4 bytes, {len(data)} left")
    msg_type = data[0]
    length = int.from_bytes(data[1:4], "big")
    if length != len(data) - 4:
        raise DecodeError(f"handshake length {length} but {len(data) - 4} bytes follow")
    r = Reader(data, 4)
    cls = _DECODERS.get(msg_type)
    if cls is None:
        raise ProtocolViolation(
            f"unknown handshake message type {msg_type}", AlertDescription.unexpected_message
        )
    if msg_type == _CERTIFICATE_TYPE and type(data) is bytes:
        cached = _CERTIFICATES_DECODED.get(data)
        if cached is not None:
            return cached
        certificate = Certificate._decode(r)
        r.expect_end("Certificate")
        if len(data) <= _CERTIFICATE_CACHE_BYTES:
            _CERTIFICATES_DECODED.remember(data, certificate)
        return certificate
    message = cls._decode(r)
    r.expect_end(cls.__name__)
    return message


def _encode_certificate(message: Certificate) -> bytes:
    try:
        cached = _CERTIFICATES_ENCODED.get(message)
    except TypeError:  # a field of another type than declared (a list): not kept
        cached = None
        message_key = None
    else:
        message_key = message
    if cached is not None:
        return cached
    w = Writer()
    message._encode(w)
    body = w.getvalue()
    encoded = bytes((message.msg_type,)) + len(body).to_bytes(3, "big") + body
    if message_key is not None and len(encoded) <= _CERTIFICATE_CACHE_BYTES:
        _CERTIFICATES_ENCODED.remember(message_key, encoded)
    return encoded


class HandshakeReassembler:
    """Splits a stream of handshake bytes (records or CRYPTO frames) into messages."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def buffered(self) -> bytes:
        """The start of a message still waiting for the rest of its bytes."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Append ``data``; return every complete message (header included)."""
        buf = self._buf
        if buf:  # the start of a message is waiting: the new bytes go after it
            buf += data
            data = bytes(buf)
            buf.clear()
        elif type(data) is not bytes:
            data = bytes(data)
        # Messages are cut from ``data`` where they lie; only a trailing part is kept.
        out = []
        pos, end = 0, len(data)
        while end - pos >= 4:
            length = int.from_bytes(data[pos + 1 : pos + 4], "big")
            if length > MAX_HANDSHAKE_MESSAGE:
                buf += data[pos:]
                raise ProtocolViolation(
                    f"handshake message of {length} bytes exceeds {MAX_HANDSHAKE_MESSAGE}",
                    AlertDescription.decode_error,
                )
            stop = pos + 4 + length
            if stop > end:
                break
            out.append(data[pos:stop])
            pos = stop
        if pos < end:
            buf += data[pos:]
        return out
