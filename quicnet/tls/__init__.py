"""Sans-I/O TLS 1.3 (RFC 8446), its record layer for TCP, and asyncio streams.

- :class:`TLSClient` / :class:`TLSServer`: the handshake state machines,
  bytes in and out per :class:`Epoch`, traffic secrets as events (for QUIC).
- :class:`TLSConnection`: the record layer over a byte stream (for TCP).
- :func:`open_connection` / :func:`start_server`: asyncio streams.
"""

from quicnet.tls.alerts import AlertDescription
from quicnet.tls.client import TLSClient
from quicnet.tls.config import ClientAuth, ClientConfig, ServerConfig
from quicnet.tls.errors import (
    AlertReceived,
    ConfigurationError,
    DecodeError,
    ProtocolViolation,
    TLSError,
    UsageError,
)
from quicnet.tls.events import (
    Epoch,
    HandshakeComplete,
    SessionTicketReceived,
    TLSEvent,
    TrafficSecretReady,
)
from quicnet.tls.key_schedule import CipherSuite
from quicnet.tls.record import ApplicationData, ConnectionClosed, TLSConnection
from quicnet.tls.server import TLSServer
from quicnet.tls.session import SessionTicket, StrikeRegister, TicketKeys
from quicnet.tls.streams import TLSStreamWriter, open_connection, start_server

__all__ = [
    "AlertDescription",
    "AlertReceived",
    "ApplicationData",
    "CipherSuite",
    "ClientAuth",
    "ClientConfig",
    "ConfigurationError",
    "ConnectionClosed",
    "DecodeError",
    "Epoch",
    "HandshakeComplete",
    "ProtocolViolation",
    "ServerConfig",
    "SessionTicket",
    "SessionTicketReceived",
    "StrikeRegister",
    "TLSClient",
    "TLSConnection",
    "TLSError",
    "TLSEvent",
    "TLSServer",
    "TLSStreamWriter",
    "TicketKeys",
    "TrafficSecretReady",
    "UsageError",
    "open_connection",
    "start_server",
]
