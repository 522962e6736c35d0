"""What a QUIC connection tells its caller, as small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from quicnet.slots import slot_setters
from quicnet.tls import SessionTicket

__all__ = [
    "Address",
    "ConnectionTerminated",
    "DatagramAcknowledged",
    "DatagramLost",
    "DatagramReceived",
    "HandshakeCompleted",
    "NewTokenReceived",
    "PathValidated",
    "PeerAddressChanged",
    "QuicEvent",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
]


#: A UDP peer address as the socket module gives it: (host, port), or for IPv6
#: (host, port, flowinfo, scope_id).
Address = tuple[str, int] | tuple[str, int, int, int]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    """The handshake completed (RFC 9001 §4.1.1): the ALPN protocol chosen, whether a
    session ticket resumed the session, whether 0-RTT data was accepted."""

    alpn_protocol: str | None
    session_resumed: bool
    early_data_accepted: bool

    def __init__(
        self, alpn_protocol: str | None, session_resumed: bool, early_data_accepted: bool
    ) -> None:
        # Each slot through its descriptor (quicnet.slots): two of these a handshake.
        set_alpn, set_resumed, set_early = _HANDSHAKE_COMPLETED_SET
        set_alpn(self, alpn_protocol)
        set_resumed(self, session_resumed)
        set_early(self, early_data_accepted)


_HANDSHAKE_COMPLETED_SET = slot_setters(
    HandshakeCompleted, "alpn_protocol session_resumed early_data_accepted"
)


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    """Stream data in order; ``end_stream`` at the final size (the data may be empty).
    Taking the event from ``next_event()`` consumes the data: only then does the
    peer get flow-control credit for it (RFC 9000 §4)."""

    stream_id: int
    data: bytes
    end_stream: bool

    def __init__(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        # The slots through their descriptors (quicnet.slots): one of these per STREAM
        # frame delivered, where the generated __init__ calls object.__setattr__ thrice.
        _set_stream_id(self, stream_id)
        _set_stream_data(self, data)
        _set_end_stream(self, end_stream)


_set_stream_id, _set_stream_data, _set_end_stream = slot_setters(
    StreamDataReceived, "stream_id data end_stream"
)


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The peer abandoned sending on a stream (RESET_STREAM)."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StopSendingReceived:
    """The peer asked us to stop sending on a stream; it was reset with ``error_code``."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class DatagramReceived:
    """A DATAGRAM frame's payload (RFC 9221); beyond ``max_received_datagrams`` waiting,
    new ones are dropped (§5)."""

    data: bytes

    def __init__(self, data: bytes) -> None:
        # The slot through its descriptor (quicnet.slots): one of these per DATAGRAM
        # received, where the generated __init__ calls object.__setattr__.
        _set_datagram_data(self, data)


(_set_datagram_data,) = slot_setters(DatagramReceived, "data")


@dataclass(frozen=True, slots=True)
class DatagramAcknowledged:
    """A datagram we sent (by the id ``send_datagram`` returned) was acknowledged."""

    datagram_id: int


@dataclass(frozen=True, slots=True)
class DatagramLost:
    """A datagram we sent was declared lost; it is not retransmitted (RFC 9221 §5.2)."""

    datagram_id: int


@dataclass(frozen=True, slots=True)
class SessionTicketReceived:
    """A session ticket from the server, to resume with (``QuicConfiguration.session_ticket``);
    at most four per connection."""

    ticket: SessionTicket


@dataclass(frozen=True, slots=True)
class NewTokenReceived:
    """An address-validation token from the server's NEW_TOKEN frame (RFC 9000 §8.1.3):
    keep it with the session ticket and give it to the next connection to the same
    server (``QuicConfiguration.address_token``) to skip a Retry. At most four per
    connection."""

    token: bytes


@dataclass(frozen=True, slots=True)
class PeerAddressChanged:
    """Packets now go to another peer address (RFC 9000 §9.3): the peer migrated or its
    NAT rebound (the new address is being validated, §8.2), or a failed validation
    sent the connection back to the address before (§9.3.2)."""

    old_address: Address
    new_address: Address


@dataclass(frozen=True, slots=True)
class PathValidated:
    """The peer answered our PATH_CHALLENGE from ``address`` (RFC 9000 §8.2.3): it owns
    that address. After a :class:`PeerAddressChanged`, this confirms the move."""

    address: Address


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection ended. ``by_peer`` tells who closed; ``stateless_reset`` if it was one."""

    error_code: int
    frame_type: int | None
    reason: str
    by_peer: bool
    is_application: bool = False
    stateless_reset: bool = False


QuicEvent = (
    HandshakeCompleted
    | StreamDataReceived
    | StreamReset
    | StopSendingReceived
    | DatagramReceived
    | DatagramAcknowledged
    | DatagramLost
    | SessionTicketReceived
    | NewTokenReceived
    | PeerAddressChanged
    | PathValidated
    | ConnectionTerminated
)
