"""Revocation status shared by CRLs (RFC 5280 §5) and OCSP (RFC 6960).

:class:`RevocationReason` is the CRLReason enumeration (RFC 5280 §5.3.1),
with OpenSSL's spelling of each name; :class:`Revocation` says when and why one
certificate was revoked; :class:`CertificateRevoked` is what path validation
raises for a revoked certificate, and :class:`RevocationUnknown` what it
raises when the caller required a revocation check and none could be made
(a missing, expired or badly signed CRL): the check fails closed.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from typing import Literal

from cryptography import x509

from quicnet.crypto.errors import CertificateError

__all__ = [
    "PYCA_REASON",
    "REASON_FROM_PYCA",
    "CertificateRevoked",
    "Revocation",
    "RevocationCheck",
    "RevocationReason",
    "RevocationUnknown",
]

#: Which certificates of a path must have a known revocation status: "none" (status
#: found is still honoured), "leaf" (OpenSSL's -crl_check) or "chain" (-crl_check_all,
#: every certificate but the trust anchor).
RevocationCheck = Literal["none", "leaf", "chain"]


class RevocationReason(enum.IntEnum):
    """CRLReason codes (RFC 5280 §5.3.1); 7 is unused."""

    unspecified = 0
    keyCompromise = 1
    CACompromise = 2
    affiliationChanged = 3
    superseded = 4
    cessationOfOperation = 5
    certificateHold = 6
    removeFromCRL = 8
    privilegeWithdrawn = 9
    AACompromise = 10

    @classmethod
    def from_name(cls, name: str) -> RevocationReason:
        """The reason called ``name`` (OpenSSL's names, any case: ``keyCompromise``)."""
        for reason in cls:
            if reason.name.lower() == name.strip().lower():
                return reason
        known = ", ".join(r.name for r in cls)
        raise ValueError(f"unknown revocation reason {name!r}; known: {known}")


#: Each reason as pyca names it, and back (CRL entries and OCSP responses).
PYCA_REASON: dict[RevocationReason, x509.ReasonFlags] = {
    RevocationReason.unspecified: x509.ReasonFlags.unspecified,
    RevocationReason.keyCompromise: x509.ReasonFlags.key_compromise,
    RevocationReason.CACompromise: x509.ReasonFlags.ca_compromise,
    RevocationReason.affiliationChanged: x509.ReasonFlags.affiliation_changed,
    RevocationReason.superseded: x509.ReasonFlags.superseded,
    RevocationReason.cessationOfOperation: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.certificateHold: x509.ReasonFlags.certificate_hold,
    RevocationReason.removeFromCRL: x509.ReasonFlags.remove_from_crl,
    RevocationReason.privilegeWithdrawn: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AACompromise: x509.ReasonFlags.aa_compromise,
}
REASON_FROM_PYCA: dict[x509.ReasonFlags, RevocationReason] = {
    flag: reason for reason, flag in PYCA_REASON.items()
}


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revoked certificate: its serial, when it was revoked and why (None: not given)."""

    serial_number: int
    revoked_at: datetime.datetime
    reason: RevocationReason | None = None


class CertificateRevoked(CertificateError):
    """A certificate on the path was revoked by its issuer (CRL or OCSP)."""

    alert = 44  # certificate_revoked

    def __init__(self, message: str, revocation: Revocation | None = None) -> None:
        super().__init__(message)
        self.revocation = revocation

    @property
    def serial_number(self) -> int | None:
        """The revoked certificate's serial number, None if not known."""
        return self.revocation.serial_number if self.revocation else None

    @property
    def reason(self) -> RevocationReason | None:
        """The revocation reason (RFC 5280 §5.3.1), None if not given."""
        return self.revocation.reason if self.revocation else None


class RevocationUnknown(CertificateError):
    """A required revocation check could not be made: no usable status (fail closed)."""

    alert = 46  # certificate_unknown
