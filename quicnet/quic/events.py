"""What a QUIC connection tells its caller, as small frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass

from quicnet.tls import SessionTicket

__all__ = [
    "ConnectionTerminated",
    "DatagramAcknowledged",
    "DatagramLost",
    "DatagramReceived",
    "HandshakeCompleted",
    "QuicEvent",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
]


@dataclass(frozen=True, slots=True)
class HandshakeCompleted:
    alpn_protocol: str | None
    session_resumed: bool
    early_data_accepted: bool


@dataclass(frozen=True, slots=True)
class StreamDataReceived:
    stream_id: int
    data: bytes
    end_stream: bool


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
    data: bytes


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
    ticket: SessionTicket


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
    | ConnectionTerminated
)
