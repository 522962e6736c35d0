"""Session tickets (RFC 8446 §4.6.1), the server's ticket keys, and 0-RTT anti-replay.

The client keeps a :class:`SessionTicket` per ticket received and offers it
to resume. The server's tickets are self-encrypted: all state lives inside
the ticket, sealed with AES-256-GCM under a :class:`TicketKeys` key that can
be rotated (old keys still open tickets until dropped).

0-RTT anti-replay (§8) is a bounded strike register (:class:`StrikeRegister`):
early data is accepted at most once per ticket, only while the ticket's
claimed age agrees with the server's clock to within a window, and not at
all when the register is full.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass, field

from quicnet.crypto import Aead, AeadAlgorithm, DecryptError, digest, random_bytes
from quicnet.crypto.errors import DecodeError as CryptoDecodeError
from quicnet.crypto.pem import pem_decode, pem_encode
from quicnet.slots import slot_setters
from quicnet.tls.errors import DecodeError, UsageError
from quicnet.tls.wire import Reader, Writer

__all__ = ["SessionTicket", "StrikeRegister", "TicketKeys", "TicketState", "encode_ticket_state"]

_SESSION_MAGIC = b"QNS2"  # QNS2 adds the QUIC version; QNS1 (without it) still loads
_SESSION_MAGIC_V1 = b"QNS1"
_PEM_LABEL = "QUICNET TLS SESSION"
_TICKET_VERSION = 4  # 3 added the early-data context, 4 the resumption context; 2, 3 open


#: A ticket state's fixed-size fields, each run packed in one call: version, cipher suite
#: and the PSK's length; issue time (ms), lifetime, age_add, max_early_data_size and the
#: ALPN's length (uint64, 3 x uint32, uint16).
_STATE_HEAD = struct.Struct(">BHB")
_STATE_NUMBERS = struct.Struct(">QIIIH")
_UINT16 = struct.Struct(">H")


def _opt_str(w: Writer, value: str | None) -> None:
    w.vector((value or "").encode(), 2)


def _read_opt_str(r: Reader) -> str | None:
    raw = r.vector(2)
    try:
        return raw.decode() or None
    except UnicodeDecodeError:
        raise DecodeError("session field is not UTF-8") from None


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """What a client needs to resume: the ticket and the PSK it stands for.

    ``received_at`` is wall-clock seconds (the ``now`` the engine was given).
    ``quic_version`` is the QUIC version of the connection that received it (RFC 9369
    §5: a ticket is used only to start a connection in that version); None outside
    QUIC, or in a session saved before quicnet kept it.
    """

    ticket: bytes
    resumption_psk: bytes = field(repr=False)  # a secret: never in a repr
    cipher_suite: int
    ticket_lifetime: int
    ticket_age_add: int = field(repr=False)  # hides the ticket's age (§4.2.11.1)
    received_at: float
    max_early_data_size: int
    server_name: str | None
    alpn_protocol: str | None
    transport_parameters: bytes | None = None
    quic_version: int | None = None

    def __init__(
        self,
        ticket: bytes,
        resumption_psk: bytes,
        cipher_suite: int,
        ticket_lifetime: int,
        ticket_age_add: int,
        received_at: float,
        max_early_data_size: int,
        server_name: str | None,
        alpn_protocol: str | None,
        transport_parameters: bytes | None = None,
        quic_version: int | None = None,
    ) -> None:
        # Each slot through its descriptor (quicnet.slots): one per ticket received.
        s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10 = _SESSION_TICKET_SET
        s0(self, ticket)
        s1(self, resumption_psk)
        s2(self, cipher_suite)
        s3(self, ticket_lifetime)
        s4(self, ticket_age_add)
        s5(self, received_at)
        s6(self, max_early_data_size)
        s7(self, server_name)
        s8(self, alpn_protocol)
        s9(self, transport_parameters)
        s10(self, quic_version)

    def is_valid_at(self, now: float) -> bool:
        """Whether the ticket may still be offered at ``now`` (wall-clock seconds).

        Its lifetime, capped at seven days, must not have passed (RFC 8446 §4.6.1).
        """
        return 0 <= now - self.received_at <= min(self.ticket_lifetime, 7 * 86400)

    def obfuscated_age(self, now: float) -> int:
        """§4.2.11.1: milliseconds since receipt plus ticket_age_add, mod 2^32."""
        age_ms = max(0, int((now - self.received_at) * 1000))
        return (age_ms + self.ticket_age_add) & 0xFFFFFFFF

    def to_bytes(self) -> bytes:
        """The session in quicnet's binary format, for :meth:`from_bytes`.

        It holds the resumption PSK: store it as a secret.
        """
        w = Writer()
        w.write(_SESSION_MAGIC)
        w.vector(self.ticket, 2)
        w.vector(self.resumption_psk, 1)
        w.uint16(self.cipher_suite)
        w.uint32(self.ticket_lifetime)
        w.uint32(self.ticket_age_add)
        # Milliseconds, never rounded up: a restored ticket must not look received
        # after the moment it was (is_valid_at refuses a negative age). Exact for a
        # value from_bytes made.
        received_ms = round(self.received_at * 1000)
        if received_ms / 1000 > self.received_at:
            received_ms -= 1
        w.uint(received_ms, 8)
        w.uint32(self.max_early_data_size)
        _opt_str(w, self.server_name)
        _opt_str(w, self.alpn_protocol)
        w.uint8(self.transport_parameters is not None)
        w.vector(self.transport_parameters or b"", 2)
        w.uint32(self.quic_version or 0)  # 0: not QUIC, or not known (never a version)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionTicket:
        """A session saved by :meth:`to_bytes`.

        Raises :class:`~quicnet.tls.errors.DecodeError` if ``data`` is not one.
        """
        r = Reader(data)
        magic = r.read(4)
        if magic not in (_SESSION_MAGIC, _SESSION_MAGIC_V1):
            raise DecodeError("not a quicnet session")
        ticket = r.vector(2, min_length=1)
        psk = r.vector(1, min_length=32)
        suite = r.uint16()
        lifetime = r.uint32()
        age_add = r.uint32()
        received = r.uint(8) / 1000
        max_early = r.uint32()
        sni = _read_opt_str(r)
        alpn = _read_opt_str(r)
        has_tp = r.uint8()
        tp = r.vector(2)
        quic_version = r.uint32() if magic == _SESSION_MAGIC else 0
        r.expect_end("the session")
        return cls(
            ticket,
            psk,
            suite,
            lifetime,
            age_add,
            received,
            max_early,
            sni,
            alpn,
            tp if has_tp else None,
            quic_version or None,
        )

    def for_quic_version(self, version: int) -> SessionTicket:
        """This ticket with ``quic_version`` set (RFC 9369 §5: the version of the
        connection that received it). Every field by position: a QUIC client makes
        one per ticket, and ``dataclasses.replace`` walks the field metadata."""
        return SessionTicket(
            self.ticket,
            self.resumption_psk,
            self.cipher_suite,
            self.ticket_lifetime,
            self.ticket_age_add,
            self.received_at,
            self.max_early_data_size,
            self.server_name,
            self.alpn_protocol,
            self.transport_parameters,
            version,
        )

    def to_pem(self) -> bytes:
        """The session as PEM (``QUICNET TLS SESSION``), for :meth:`from_pem`.

        It holds the resumption PSK: store it as a secret.
        """
        return pem_encode(_PEM_LABEL, self.to_bytes())

    @classmethod
    def from_pem(cls, data: bytes) -> SessionTicket:
        """A session saved by :meth:`to_pem`.

        Raises :class:`~quicnet.tls.errors.DecodeError` if ``data`` is not one.
        """
        try:
            raw = pem_decode(_PEM_LABEL, data)
        except CryptoDecodeError as exc:
            raise DecodeError(str(exc)) from None
        return cls.from_bytes(raw)


_SESSION_TICKET_SET = slot_setters(
    SessionTicket,
    "ticket resumption_psk cipher_suite ticket_lifetime ticket_age_add received_at"
    " max_early_data_size server_name alpn_protocol transport_parameters quic_version",
)


@dataclass(frozen=True, slots=True)
class TicketState:
    """What the server seals into a ticket."""

    cipher_suite: int
    resumption_psk: bytes = field(repr=False)  # a secret: never in a repr
    issued_at: float
    ticket_lifetime: int
    ticket_age_add: int = field(repr=False)
    max_early_data_size: int
    alpn_protocol: str | None
    server_name: str | None
    #: The client's certificate chain (DER, leaf first) from the full handshake.
    peer_certificates: tuple[bytes, ...] = ()
    #: What the server's configuration was when it issued the ticket, as far as early
    #: data depends on it (QUIC: its transport limits, RFC 9001 §4.6.3); 0-RTT is
    #: accepted only while the configuration still says the same.
    early_data_context: bytes = b""
    #: What the ticket may resume at all (QUIC: the version it was issued for, RFC 9369
    #: §5); a server accepts the ticket only while its own context is the same.
    resumption_context: bytes = b""

    def encode(self) -> bytes:
        """The state in the binary form :meth:`TicketKeys.seal` encrypts."""
        return encode_ticket_state(
            self.cipher_suite,
            self.resumption_psk,
            self.issued_at,
            self.ticket_lifetime,
            self.ticket_age_add,
            self.max_early_data_size,
            self.alpn_protocol,
            self.server_name,
            self.peer_certificates,
            self.early_data_context,
            self.resumption_context,
        )

    @classmethod
    def decode(cls, data: bytes) -> TicketState:
        """A state encoded by :meth:`encode` (or an older ticket version still accepted)."""
        r = Reader(data)
        version = r.uint8()
        if version not in (2, 3, _TICKET_VERSION):
            raise DecodeError("unknown ticket version")
        fields = (
            r.uint16(),
            r.vector(1, min_length=32),
            r.uint(8) / 1000,
            r.uint32(),
            r.uint32(),
            r.uint32(),
            _read_opt_str(r),
            _read_opt_str(r),
        )
        chain = r.sub(3)
        certificates = []
        while not chain.at_end():
            certificates.append(chain.vector(3, min_length=1))
        context = r.vector(2) if version >= 3 else b""
        resumption = r.vector(1) if version >= 4 else b""
        r.expect_end("the ticket")
        return cls(
            *fields,
            peer_certificates=tuple(certificates),
            early_data_context=context,
            resumption_context=resumption,
        )


def encode_ticket_state(
    cipher_suite: int,
    resumption_psk: bytes,
    issued_at: float,
    ticket_lifetime: int,
    ticket_age_add: int,
    max_early_data_size: int,
    alpn_protocol: str | None,
    server_name: str | None,
    peer_certificates: tuple[bytes, ...],
    early_data_context: bytes,
    resumption_context: bytes,
) -> bytes:
    """:meth:`TicketState.encode` of a state with these fields, without the object: a
    server seals one per ticket it issues. Each vector behind its length (RFC 8446 §3.4
    notation): ``psk<32..255>``, ``alpn<0..2^16-1>`` and ``server_name<0..2^16-1>``
    (UTF-8, empty for None), ``certificates<0..2^24-1>`` (each ``<1..2^24-1>``),
    ``early_data_context<0..2^16-1>``, ``resumption_context<0..255>``.

    Raises ValueError if a field does not fit its length.
    """
    alpn = alpn_protocol.encode() if alpn_protocol else b""
    sni = server_name.encode() if server_name else b""
    chain = b"".join([len(der).to_bytes(3, "big") + der for der in peer_certificates])
    try:
        return b"".join(
            (
                _STATE_HEAD.pack(_TICKET_VERSION, cipher_suite, len(resumption_psk)),
                resumption_psk,
                _STATE_NUMBERS.pack(
                    round(issued_at * 1000),
                    ticket_lifetime,
                    ticket_age_add,
                    max_early_data_size,
                    len(alpn),
                ),
                alpn,
                _UINT16.pack(len(sni)),
                sni,
                len(chain).to_bytes(3, "big"),
                chain,
                _UINT16.pack(len(early_data_context)),
                early_data_context,
                bytes((len(resumption_context),)),
                resumption_context,
            )
        )
    except (struct.error, OverflowError, ValueError):
        raise ValueError("a ticket state field does not fit its length") from None


_KEY_ID_LENGTH = 16


class TicketKeys:
    """The server's ticket-encryption keys: one current, a few previous.

    Share one instance between servers that should resume each other's
    sessions; call :meth:`rotate` periodically (e.g. daily) so a stolen key
    exposes a bounded window of sessions.
    """

    def __init__(self, keep_previous: int = 2, key: bytes | None = None) -> None:
        self.keep_previous = keep_previous
        self._keys: OrderedDict[bytes, Aead] = OrderedDict()
        self._current_id = b""
        self.rotate(key)

    def rotate(self, key: bytes | None = None) -> None:
        """Start sealing with a new key (random unless given); keep the last few for opening."""
        key = key or random_bytes(32)
        if len(key) != 32:
            raise UsageError("ticket keys are 32 bytes")
        key_id = digest("sha256", b"quicnet ticket key id" + key)[:_KEY_ID_LENGTH]
        self._keys[key_id] = Aead(AeadAlgorithm.AES_256_GCM, key, bytes(12))
        self._current_id = key_id
        while len(self._keys) > self.keep_previous + 1:
            self._keys.popitem(last=False)

    def seal(self, state: TicketState) -> bytes:
        """A ticket holding ``state``, AES-256-GCM-sealed under the current key.

        The ticket is the key id, a random 12-byte nonce and the ciphertext.
        """
        return self.seal_encoded(state.encode(), random_bytes(12))

    def seal_encoded(self, encoded_state: bytes, nonce: bytes) -> bytes:
        """:meth:`seal` of a state already encoded (:func:`encode_ticket_state`), with
        ``nonce``: 12 bytes, fresh and random for each ticket (a server draws them with
        the ticket's age_add)."""
        if len(nonce) != 12:
            raise UsageError("a ticket nonce is 12 bytes")
        key_id = self._current_id
        counter = int.from_bytes(nonce, "big")  # IV is zero, so the nonce is the counter
        return key_id + nonce + self._keys[key_id].seal(counter, encoded_state, key_id)

    def open(self, ticket: bytes) -> TicketState | None:
        """The state in ``ticket``, or None if it is not ours, was tampered with, or too old."""
        if len(ticket) < _KEY_ID_LENGTH + 12 + 16:
            return None
        key_id = ticket[:_KEY_ID_LENGTH]
        aead = self._keys.get(key_id)
        if aead is None:
            return None
        counter = int.from_bytes(ticket[_KEY_ID_LENGTH : _KEY_ID_LENGTH + 12], "big")
        try:
            plain = aead.open(counter, ticket[_KEY_ID_LENGTH + 12 :], key_id)
            return TicketState.decode(plain)
        except (DecryptError, DecodeError):
            return None


class StrikeRegister:
    """Remembers which tickets already carried early data (RFC 8446 §8.1-8.2)."""

    def __init__(self, capacity: int = 100_000, window: float = 10.0) -> None:
        self.capacity = capacity
        #: How far the client's claimed ticket age may differ from the real one (seconds).
        self.window = window
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # ticket hash -> expiry

    def __len__(self) -> int:
        return len(self._seen)

    def accept(
        self, ticket: bytes, expires_at: float, claimed_age: float, real_age: float, now: float
    ) -> bool:
        """True exactly once per fresh ticket; False for replays, stale ages, or when full."""
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[key]
        if abs(claimed_age - real_age) > self.window:
            return False
        key = digest("sha256", ticket)
        if key in self._seen or len(self._seen) >= self.capacity:
            return False
        self._seen[key] = expires_at
        return True
