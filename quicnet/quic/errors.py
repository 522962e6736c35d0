"""QUIC errors (RFC 9000 §20), by who broke the protocol.

- :class:`TransportError`: the peer violated the protocol; the connection is
  closed with ``error_code`` (and ``frame_type``) in CONNECTION_CLOSE.
- :class:`QuicUsageError`: the local caller misused the API.
"""

from __future__ import annotations

import enum

from quicnet.errors import QuicnetError

__all__ = ["QuicUsageError", "TransportError", "TransportErrorCode"]


class TransportErrorCode(enum.IntEnum):
    """Transport error codes (RFC 9000 §20.1); a TLS alert is CRYPTO_ERROR + alert
    (RFC 9001 §4.8)."""

    NO_ERROR = 0x00
    INTERNAL_ERROR = 0x01
    CONNECTION_REFUSED = 0x02
    FLOW_CONTROL_ERROR = 0x03
    STREAM_LIMIT_ERROR = 0x04
    STREAM_STATE_ERROR = 0x05
    FINAL_SIZE_ERROR = 0x06
    FRAME_ENCODING_ERROR = 0x07
    TRANSPORT_PARAMETER_ERROR = 0x08
    CONNECTION_ID_LIMIT_ERROR = 0x09
    PROTOCOL_VIOLATION = 0x0A
    INVALID_TOKEN = 0x0B
    APPLICATION_ERROR = 0x0C
    CRYPTO_BUFFER_EXCEEDED = 0x0D
    KEY_UPDATE_ERROR = 0x0E
    AEAD_LIMIT_REACHED = 0x0F
    NO_VIABLE_PATH = 0x10
    VERSION_NEGOTIATION_ERROR = 0x11  # RFC 9368 §4: a version downgrade
    CRYPTO_ERROR = 0x100  # + TLS alert (0x100-0x1ff)


class TransportError(QuicnetError):
    """A transport-level protocol violation by the peer."""

    def __init__(self, error_code: int, reason: str, frame_type: int | None = None) -> None:
        super().__init__(reason)
        self.error_code = error_code
        self.frame_type = frame_type
        self.reason = reason


class QuicUsageError(QuicnetError):
    """The caller used the QUIC API wrongly."""
