"""Sans-I/O QUIC (RFC 9000/9001/9002/9221/9369): connections and the server endpoint.

- :class:`QuicConnection`: one connection, client or server, configured by a
  :class:`QuicConfiguration`: datagrams and the time in, datagrams, the next
  deadline and events (:data:`QuicEvent`) out.
- :class:`QuicEndpoint`: a server's connections behind one socket's worth of
  datagrams, routed by connection ID (RFC 8999), with Version Negotiation, Retry
  and stateless resets; :class:`EndpointStats` counts what it did.

Neither touches a socket or reads a clock: :mod:`quicnet.io` has the drivers
that do (tick-driven UDP and asyncio).
"""

from quicnet.quic.ack_frequency import AckFrequencyRequest, AdaptiveAckFrequency
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import ConnectionState, QuicConnection
from quicnet.quic.endpoint import EndpointStats, QuicEndpoint
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import (
    Address,
    ConnectionTerminated,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    NewTokenReceived,
    PathValidated,
    PeerAddressChanged,
    QuicEvent,
    SessionTicketReceived,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from quicnet.quic.stats import ConnectionStats
from quicnet.quic.versions import QuicVersion

__all__ = [
    "AckFrequencyRequest",
    "AdaptiveAckFrequency",
    "Address",
    "ConnectionState",
    "ConnectionStats",
    "ConnectionTerminated",
    "DatagramAcknowledged",
    "DatagramLost",
    "DatagramReceived",
    "EndpointStats",
    "HandshakeCompleted",
    "NewTokenReceived",
    "PathValidated",
    "PeerAddressChanged",
    "QuicConfiguration",
    "QuicConnection",
    "QuicEndpoint",
    "QuicEvent",
    "QuicUsageError",
    "QuicVersion",
    "SessionTicketReceived",
    "StopSendingReceived",
    "StreamDataReceived",
    "StreamReset",
    "TransportError",
    "TransportErrorCode",
]
