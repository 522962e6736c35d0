"""Typed errors of the crypto toolkit.

Each names its cause. Where TLS 1.3 has an alert for the cause (RFC 8446
§6.2), the class carries it as ``alert`` so the TLS engine can send it as is.
"""

from __future__ import annotations

from typing import ClassVar

from quicnet.errors import QuicnetError

__all__ = [
    "BadCertificateSignature",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "ChainOrderError",
    "CryptoError",
    "DecodeError",
    "DecryptError",
    "InvalidSignatureError",
    "KeyExchangeError",
    "NameMismatch",
    "NotACA",
    "PassphraseError",
    "PathTooLong",
    "UnknownIssuer",
    "UnsupportedAlgorithmError",
    "UnsupportedCriticalExtension",
    "UnsuitableCertificate",
]


class CryptoError(QuicnetError):
    """Base class of the toolkit's errors."""

    #: TLS alert description (RFC 8446 §6.2) that reports this cause.
    alert: ClassVar[int] = 80  # internal_error


class DecodeError(CryptoError, ValueError):
    """Input is not a well-formed key, certificate, CSR or encoding."""

    alert = 50  # decode_error


class PassphraseError(CryptoError):
    """An encrypted key needs a passphrase, or the one given is wrong."""


class UnsupportedAlgorithmError(CryptoError, ValueError):
    """An algorithm, curve, group, scheme or key size quicnet does not offer."""

    alert = 40  # handshake_failure


class InvalidSignatureError(CryptoError):
    """A signature does not verify."""

    alert = 51  # decrypt_error


class DecryptError(CryptoError):
    """AEAD authentication failed: the ciphertext, tag, nonce or AAD is wrong."""

    alert = 20  # bad_record_mac


class KeyExchangeError(CryptoError):
    """A peer's key share is malformed or yields an invalid shared secret."""

    alert = 47  # illegal_parameter


class CertificateError(CryptoError):
    """A certificate or chain failed validation."""

    alert = 42  # bad_certificate


class CertificateExpired(CertificateError):
    """A certificate's notAfter is in the past."""

    alert = 45  # certificate_expired


class CertificateNotYetValid(CertificateError):
    """A certificate's notBefore is in the future."""

    alert = 45  # certificate_expired: RFC 8446 has no "not yet valid"


class NameMismatch(CertificateError):
    """The leaf certificate is not valid for the requested DNS name or IP."""


class UnknownIssuer(CertificateError):
    """No trusted root (or supplied intermediate) issued the certificate."""

    alert = 48  # unknown_ca


class BadCertificateSignature(CertificateError):
    """An issuer with the right name was found but its signature does not verify."""


class NotACA(CertificateError):
    """A certificate that issued another is not marked as a CA (basicConstraints)."""


class PathTooLong(CertificateError):
    """The chain exceeds an issuer's pathLenConstraint or quicnet's depth limit."""


class UnsupportedCriticalExtension(CertificateError):
    """A certificate carries a critical extension quicnet does not process."""

    alert = 43  # unsupported_certificate


class UnsuitableCertificate(CertificateError):
    """The key usage or extended key usage forbids this use of the certificate."""

    alert = 43  # unsupported_certificate


class ChainOrderError(CertificateError):
    """A chain is not ordered leaf first, each certificate issued by the next."""
