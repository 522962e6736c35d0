"""What the TLS engine tells its caller, as small frozen dataclasses."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from quicnet.crypto import Certificate, ExpandKey
from quicnet.slots import slot_setters
from quicnet.tls.key_schedule import CipherSuite
from quicnet.tls.session import SessionTicket

__all__ = [
    "HANDSHAKE_EPOCH",
    "INITIAL_EPOCH",
    "ONE_RTT_EPOCH",
    "ZERO_RTT_EPOCH",
    "Epoch",
    "EventQueue",
    "HandshakeComplete",
    "SessionTicketReceived",
    "TLSEvent",
    "TrafficSecretReady",
]


class Epoch(enum.IntEnum):
    """Encryption levels, named as QUIC names them (RFC 9001 §4)."""

    INITIAL = 0  # cleartext: ClientHello, ServerHello
    ZERO_RTT = 1
    HANDSHAKE = 2
    ONE_RTT = 3


# The members as module constants, for the per-packet paths: on Python 3.11 every
# ``Epoch.X`` read through the class runs ``EnumType.__getattr__`` (~75-115 ns against
# ~10 for a global; 3.12 dropped that hook).
INITIAL_EPOCH, ZERO_RTT_EPOCH = Epoch.INITIAL, Epoch.ZERO_RTT
HANDSHAKE_EPOCH, ONE_RTT_EPOCH = Epoch.HANDSHAKE, Epoch.ONE_RTT


@dataclass(frozen=True, slots=True)
class TrafficSecretReady:
    """A traffic secret to install: ``is_write`` for sending, else for receiving."""

    epoch: Epoch
    is_write: bool
    cipher_suite: CipherSuite
    secret: bytes = field(repr=False)  # never in a repr or a log
    #: The same secret keyed once for HKDF-Expand-Label, when TLS expands it too (a
    #: handshake secret: its Finished key): the packet keys copy its keyed HMAC.
    keyed: ExpandKey | None = field(default=None, repr=False, compare=False)

    def __init__(
        self,
        epoch: Epoch,
        is_write: bool,
        cipher_suite: CipherSuite,
        secret: bytes,
        keyed: ExpandKey | None = None,
    ) -> None:
        # Each slot through its descriptor (quicnet.slots): 8 of these a handshake.
        _set_epoch(self, epoch)
        _set_is_write(self, is_write)
        _set_cipher_suite(self, cipher_suite)
        _set_secret(self, secret)
        _set_keyed(self, keyed)


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """The handshake finished; what was negotiated."""

    cipher_suite: CipherSuite
    group: int | None  # None for a PSK-only handshake
    alpn_protocol: str | None
    resumed: bool
    early_data_accepted: bool
    peer_certificates: tuple[Certificate, ...]
    server_name: str | None
    signature_scheme: int | None
    #: The DER OCSP response the server stapled to its leaf (client side; RFC 6066 §8).
    ocsp_staple: bytes | None = None
    #: Encrypted Client Hello was offered and accepted (draft-ietf-tls-esni §6.1.4).
    ech_accepted: bool = False

    def __init__(
        self,
        cipher_suite: CipherSuite,
        group: int | None,
        alpn_protocol: str | None,
        resumed: bool,
        early_data_accepted: bool,
        peer_certificates: tuple[Certificate, ...],
        server_name: str | None,
        signature_scheme: int | None,
        ocsp_staple: bytes | None = None,
        ech_accepted: bool = False,
    ) -> None:
        # Each slot through its descriptor (quicnet.slots).
        _set_complete_suite(self, cipher_suite)
        _set_complete_group(self, group)
        _set_complete_alpn(self, alpn_protocol)
        _set_complete_resumed(self, resumed)
        _set_complete_early(self, early_data_accepted)
        _set_complete_certificates(self, peer_certificates)
        _set_complete_server_name(self, server_name)
        _set_complete_scheme(self, signature_scheme)
        _set_complete_staple(self, ocsp_staple)
        _set_complete_ech(self, ech_accepted)


_set_epoch, _set_is_write, _set_cipher_suite, _set_secret, _set_keyed = slot_setters(
    TrafficSecretReady, "epoch is_write cipher_suite secret keyed"
)
(
    _set_complete_suite,
    _set_complete_group,
    _set_complete_alpn,
    _set_complete_resumed,
    _set_complete_early,
    _set_complete_certificates,
    _set_complete_server_name,
    _set_complete_scheme,
    _set_complete_staple,
    _set_complete_ech,
) = slot_setters(
    HandshakeComplete,
    "cipher_suite group alpn_protocol resumed early_data_accepted peer_certificates"
    " server_name signature_scheme ocsp_staple ech_accepted",
)


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """The server sent a ticket; keep it to resume (``ClientConfig.session``)."""

    ticket: SessionTicket


TLSEvent = TrafficSecretReady | HandshakeComplete | SessionTicketReceived


_E = TypeVar("_E")


class EventQueue(Generic[_E]):
    """The events a TLS object made for its caller, oldest first: taken one at a time
    (:meth:`next_event`) or all at once (:meth:`take_events`). A subclass sets
    ``self._events`` to a list (a few events per handshake: lighter than a deque)."""

    __slots__ = ("_events",)
    _events: list[_E]

    def next_event(self) -> _E | None:
        """The oldest event not yet taken, or None."""
        return self._events.pop(0) if self._events else None

    def take_events(self) -> Sequence[_E]:
        """Every event not taken yet, oldest first: ``next_event`` until None, in one call."""
        events = self._events
        if not events:
            return ()
        self._events = []
        return events
