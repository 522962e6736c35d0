"""Session tickets on the client side (RFC 8446 §4.6.1), and what a QUIC client's
TLS keeps once its handshake is confirmed.

Over QUIC the only TLS message a client can still receive after the handshake
is NewSessionTicket (RFC 9001 §4.1.3, §6: no KeyUpdate, no post-handshake
authentication). :class:`TicketReceiver` is what remains of the client engine
then: the resumption secret and the handshake's outcome, a few hundred bytes,
instead of the engine with its transcript, key schedule and parsed
certificates.
"""

from __future__ import annotations

from quicnet.crypto import Certificate
from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import ProtocolViolation
from quicnet.tls.events import Epoch, EventQueue, SessionTicketReceived
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.key_schedule import CIPHER_SUITES, CipherSuite, resumption_psk
from quicnet.tls.messages import HandshakeReassembler, NewSessionTicket, decode_message
from quicnet.tls.session import SessionTicket

__all__ = ["TicketReceiver", "session_ticket"]

#: The last few distinct peer chains (DER) kept by receivers: many connections to one
#: server (bots, a load generator, a reconnecting client) share one copy of its chain.
_RECENT_CHAINS: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}
_RECENT_CHAINS_MAX = 8


def _shared_chain(chain: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """``chain``, or an equal one a receiver already holds (bytes are immutable)."""
    shared = _RECENT_CHAINS.get(chain)
    if shared is not None:
        return shared
    if len(_RECENT_CHAINS) >= _RECENT_CHAINS_MAX:
        del _RECENT_CHAINS[next(iter(_RECENT_CHAINS))]  # the oldest
    _RECENT_CHAINS[chain] = chain
    return chain


MAX_TICKET_LIFETIME = 7 * 86400  # §4.6.1: seconds


def session_ticket(
    message: NewSessionTicket,
    cipher_suite: CipherSuite,
    resumption_master_secret: bytes,
    now: float,
    *,
    server_name: str | None,
    alpn_protocol: str | None,
    transport_parameters: bytes | None,
    quic_version: int | None = None,
) -> SessionTicket:
    """The :class:`SessionTicket` a NewSessionTicket message stands for (§4.6.1), of a
    connection in QUIC ``quic_version`` (None outside QUIC).

    Raises :class:`ProtocolViolation` (illegal_parameter) for a lifetime over
    seven days, and (decode_error) for a malformed early_data extension.
    """
    if message.ticket_lifetime > MAX_TICKET_LIFETIME:
        raise ProtocolViolation(
            "ticket lifetime over seven days", AlertDescription.illegal_parameter
        )
    max_early = 0
    early = message.extension(ET.early_data)
    if early is not None:
        max_early = ext.decode_early_data_ticket(early)
    return SessionTicket(
        ticket=message.ticket,
        resumption_psk=resumption_psk(
            CIPHER_SUITES[cipher_suite], resumption_master_secret, message.ticket_nonce
        ),
        cipher_suite=cipher_suite,
        ticket_lifetime=message.ticket_lifetime,
        ticket_age_add=message.ticket_age_add,
        received_at=now,
        max_early_data_size=max_early,
        server_name=server_name,
        alpn_protocol=alpn_protocol,
        transport_parameters=transport_parameters,
        quic_version=quic_version,
    )


class TicketReceiver(EventQueue[SessionTicketReceived]):
    """A QUIC client's TLS after the handshake: turns NewSessionTickets into events.

    It answers the calls the QUIC connection makes of a TLS engine
    (:meth:`receive`, :meth:`next_event`, :meth:`data_to_send`) and keeps the
    handshake's outcome readable (``cipher_suite``, ``group``,
    ``alpn_protocol``, ``resumed``, ``early_data_accepted``,
    ``peer_certificates``, parsed from DER only when asked for) and the QUIC
    version its tickets are for (``quic_version``, RFC 9369 §5). Any message
    but NewSessionTicket, or one at another epoch than 1-RTT, is
    unexpected_message. ``buffered``: the start of a ticket the engine it
    replaces had already read (a message may be cut across CRYPTO frames).
    """

    __slots__ = (
        "_peer_certificate_ders",
        "_reassembler",
        "_resumption_master_secret",
        "alpn_protocol",
        "cipher_suite",
        "early_data_accepted",
        "group",
        "peer_transport_parameters",
        "quic_version",
        "resumed",
        "server_name",
    )

    #: The engine's state name, as the full engine reports it once connected.
    state = "CONNECTED"

    def __init__(
        self,
        *,
        cipher_suite: CipherSuite,
        resumption_master_secret: bytes,
        group: int | None,
        alpn_protocol: str | None,
        resumed: bool,
        early_data_accepted: bool,
        server_name: str | None,
        peer_transport_parameters: bytes | None,
        peer_certificates: tuple[Certificate, ...],
        buffered: bytes = b"",
        quic_version: int | None = None,
    ) -> None:
        self.cipher_suite = cipher_suite
        self._resumption_master_secret = resumption_master_secret
        self.group = group
        self.alpn_protocol = alpn_protocol
        self.resumed = resumed
        self.early_data_accepted = early_data_accepted
        self.server_name = server_name
        self.peer_transport_parameters = peer_transport_parameters
        self.quic_version = quic_version
        self._peer_certificate_ders = _shared_chain(tuple(c.to_der() for c in peer_certificates))
        self._reassembler: HandshakeReassembler | None = None  # made by the first ticket
        if buffered:  # the engine it replaces had the start of a ticket already
            self._reassembler = HandshakeReassembler()
            self._reassembler.feed(buffered)
        self._events: list[SessionTicketReceived] = []

    @property
    def peer_certificates(self) -> tuple[Certificate, ...]:
        """The server's chain as it was verified (leaf first), parsed anew on each call."""
        return tuple(Certificate.from_der(der) for der in self._peer_certificate_ders)

    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        """Handshake bytes from the server: NewSessionTicket messages, at 1-RTT only."""
        if epoch != Epoch.ONE_RTT:
            raise ProtocolViolation(
                f"handshake data at {epoch.name} after the handshake",
                AlertDescription.unexpected_message,
            )
        if self._reassembler is None:
            self._reassembler = HandshakeReassembler()
        for raw in self._reassembler.feed(data):
            message = decode_message(raw)
            if not isinstance(message, NewSessionTicket):
                raise ProtocolViolation(
                    f"unexpected {type(message).__name__} after the handshake",
                    AlertDescription.unexpected_message,
                )
            ticket = session_ticket(
                message,
                self.cipher_suite,
                self._resumption_master_secret,
                now,
                server_name=self.server_name,
                alpn_protocol=self.alpn_protocol,
                transport_parameters=self.peer_transport_parameters,
                quic_version=self.quic_version,
            )
            self._events.append(SessionTicketReceived(ticket))

    def data_to_send(self) -> list[tuple[Epoch, bytes]]:
        """Nothing: a client sends no TLS message after its Finished over QUIC."""
        return []
