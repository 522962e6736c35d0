"""What the real-time layer tells the application, as small frozen dataclasses.

On a server every event names the ``peer`` (the small integer the server gave
the client); on a client ``peer`` is always 0, the server.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quicnet.quic import Address

__all__ = [
    "Connected",
    "DisconnectReason",
    "Disconnected",
    "MessageReceived",
    "PeerConnected",
    "PeerDisconnected",
    "PeerMigrated",
    "RealtimeEvent",
]


class DisconnectReason(enum.Enum):
    """Why a session ended; the event's ``message`` has the details in words."""

    #: This side's application closed it.
    CLOSED = "closed"
    #: The other side's application closed it.
    CLOSED_BY_PEER = "closed by peer"
    #: The server removed the client (``Server.disconnect``).
    KICKED = "kicked"
    #: The server did not admit the client (its admission hook, or a channel table mismatch).
    REFUSED = "refused"
    #: Nothing arrived for the idle timeout (keepalives included).
    IDLE_TIMEOUT = "idle timeout"
    #: A side broke QUIC or quicnet-rt/1 (garbage, an unknown channel, a message too large).
    PROTOCOL_ERROR = "protocol error"
    #: The server is shutting down.
    SERVER_SHUTDOWN = "server shutdown"
    #: The client rejected the server's certificate, or the server the client's.
    CERTIFICATE_REJECTED = "certificate rejected"
    #: No session came about, or it was lost: no answer, the handshake failed, a reset.
    CONNECTION_FAILED = "connection failed"


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """Server: a client was admitted as ``peer``."""

    peer: int
    address: Address


@dataclass(frozen=True, slots=True)
class Connected:
    """Client: the server admitted us (``peer`` is 0, the server; ``client_id`` our id there)."""

    peer: int
    client_id: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message from ``peer`` on ``channel``."""

    peer: int
    channel: int
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerMigrated:
    """Server: ``peer``'s packets now come from ``new_address`` (a NAT rebinding, a new
    network); the session goes on."""

    peer: int
    old_address: Address
    new_address: Address


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """Server: ``peer``'s session ended; its id is never given to anyone else."""

    peer: int
    reason: DisconnectReason
    message: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Client: the session ended (``peer`` is 0, the server)."""

    peer: int
    reason: DisconnectReason
    message: str


RealtimeEvent = (
    PeerConnected | Connected | MessageReceived | PeerMigrated | PeerDisconnected | Disconnected
)
