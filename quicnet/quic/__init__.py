"""Sans-I/O QUIC (RFC 9000/9001/9002/9221/9369).

:class:`QuicConnection` is one connection, client or server: datagrams in
and out, time passed in, events out. Work in progress (issue 4): the server
endpoint, drivers and interop suite come next.
"""

from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import ConnectionState, QuicConnection
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import (
    ConnectionTerminated,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    QuicEvent,
    SessionTicketReceived,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)
from quicnet.quic.versions import QuicVersion

__all__ = [
    "ConnectionState",
    "ConnectionTerminated",
    "DatagramAcknowledged",
    "DatagramLost",
    "DatagramReceived",
    "HandshakeCompleted",
    "QuicConfiguration",
    "QuicConnection",
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
