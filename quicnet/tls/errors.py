"""TLS errors, by who broke the protocol.

- :class:`ProtocolViolation`: the peer sent something RFC 8446 forbids; the
  engine answers with ``alert`` and the connection ends.
- :class:`AlertReceived`: the peer ended the connection with an alert.
- :class:`UsageError`: the local caller misused the API (no alert is sent);
  :class:`ConfigurationError` when the configuration itself is unsafe or incomplete.
"""

from __future__ import annotations

from quicnet.errors import QuicnetError
from quicnet.tls.alerts import AlertDescription

__all__ = [
    "AlertReceived",
    "ConfigurationError",
    "DecodeError",
    "ProtocolViolation",
    "TLSError",
    "UsageError",
]


class TLSError(QuicnetError):
    """Base class of TLS errors; ``alert`` is the alert that reports it."""

    def __init__(self, message: str, alert: AlertDescription = AlertDescription.internal_error):
        super().__init__(message)
        self.alert = alert


class ProtocolViolation(TLSError):
    """The peer broke RFC 8446; ``alert`` is what we send it."""


class DecodeError(ProtocolViolation):
    """A message or extension does not parse (alert decode_error)."""

    def __init__(self, message: str, alert: AlertDescription = AlertDescription.decode_error):
        super().__init__(message, alert)


class AlertReceived(TLSError):
    """The peer sent a fatal alert; ``description`` is its code."""

    description: int = AlertDescription.internal_error


class UsageError(TLSError):
    """The caller used the engine wrongly; nothing was sent to the peer."""


class ConfigurationError(UsageError):
    """A configuration that cannot be used safely (e.g. no server name to verify)."""
