"""TLS alert codes (RFC 8446 §6)."""

from __future__ import annotations

import enum

__all__ = ["AlertDescription", "AlertLevel"]


class AlertLevel(enum.IntEnum):
    """An alert's legacy level byte; in TLS 1.3 the alert's type implies it (RFC 8446 §6)."""

    warning = 1
    fatal = 2


class AlertDescription(enum.IntEnum):
    """The TLS alert descriptions (RFC 8446 §6, §B.2), and ECH's ech_required."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120
    ech_required = 121  # draft-ietf-tls-esni §11.2
