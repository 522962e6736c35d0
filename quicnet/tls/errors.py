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
    "ECHRejected",
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


class ECHRejected(ProtocolViolation):
    """The server did not accept Encrypted Client Hello (draft-ietf-tls-esni §6.1.6).

    The handshake authenticated the server for the config's public name and then
    ended with alert ech_required. ``retry_configs`` is the ECHConfigList the server
    sent (or None): a new connection may retry with it as ``ClientConfig.ech_configs``.
    """

    def __init__(self, retry_configs: bytes | None) -> None:
        what = "with retry configs" if retry_configs else "without retry configs"
        super().__init__(f"the server rejected ECH ({what})", AlertDescription.ech_required)
        self.retry_configs = retry_configs


class AlertReceived(TLSError):
    """The peer sent a fatal alert; ``description`` is its code."""

    description: int = AlertDescription.internal_error


class UsageError(TLSError):
    """The caller used the engine wrongly; nothing was sent to the peer."""


class ConfigurationError(UsageError):
    """A configuration that cannot be used safely (e.g. no server name to verify)."""
