"""Certificate revocation lists (RFC 5280 §5): read, make, and check a path (§6.3).

:class:`CertificateRevocationList` wraps pyca/cryptography's CRL;
:func:`make_crl` signs one for an issuer; :func:`check_revocation` is the CRL
step of path validation, called by :func:`quicnet.crypto.verify.verify_chain`.
Only complete CRLs issued directly by the certificate's issuer are used: a
CRL with a critical extension quicnet does not process (issuing distribution
point, delta CRL indicator, an entry's certificate issuer) is not usable
(§5.2, §5.3), so a required check then fails closed.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization as ser
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from quicnet.crypto.certs import Certificate, x509_signature_hash
from quicnet.crypto.errors import CryptoError, DecodeError
from quicnet.crypto.keys import PrivateKey
from quicnet.crypto.pem import is_pem, pem_blocks, pem_body
from quicnet.crypto.revocation import (
    PYCA_REASON,
    REASON_FROM_PYCA,
    CertificateRevoked,
    Revocation,
    RevocationCheck,
    RevocationReason,
    RevocationUnknown,
)

__all__ = [
    "BadCRLSignature",
    "CRLExpired",
    "CRLNotYetValid",
    "CertificateRevocationList",
    "check_revocation",
    "load_crl",
    "load_crls",
    "make_crl",
]

# Extensions whose criticality quicnet honours by processing them (RFC 5280 §5.2, §5.3).
_CRL_EXTENSIONS = {
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.CRL_NUMBER,
    ExtensionOID.ISSUER_ALTERNATIVE_NAME,
}
_ENTRY_EXTENSIONS = {CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE}


class CRLExpired(RevocationUnknown):
    """The issuer's CRL is past its nextUpdate: it no longer says anything (§6.3.3 (a))."""


class CRLNotYetValid(RevocationUnknown):
    """The issuer's CRL has a thisUpdate in the future."""


class BadCRLSignature(RevocationUnknown):
    """A CRL names the issuer but its signature does not verify with the issuer's key."""


def _entry(revoked: x509.RevokedCertificate) -> Revocation:
    try:
        flag = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        reason: RevocationReason | None = REASON_FROM_PYCA[flag]
    except x509.ExtensionNotFound:
        reason = None
    return Revocation(revoked.serial_number, revoked.revocation_date_utc, reason)


class CertificateRevocationList:
    """An X.509 v2 CRL (RFC 5280 §5.1)."""

    __slots__ = ("_crl", "_der", "_entries")

    def __init__(self, crl: x509.CertificateRevocationList) -> None:
        self._crl = crl
        # pyca parses lazily: read everything now, so garbage fails here with our error.
        try:
            self._der = crl.public_bytes(ser.Encoding.DER)
            crl.issuer.rfc4514_string()
            crl.last_update_utc, crl.next_update_utc  # noqa: B018
            crl.extensions  # noqa: B018
            self._entries = {r.serial_number: _entry(r) for r in crl}
            for r in crl:
                r.extensions  # noqa: B018
        except (ValueError, TypeError, KeyError, x509.DuplicateExtension) as exc:
            raise DecodeError(f"malformed CRL: {exc}") from None

    @classmethod
    def from_der(cls, der: bytes) -> CertificateRevocationList:
        """The CRL in ``der``; :class:`DecodeError` if it does not parse (RFC 5280 §5.1)."""
        try:
            return cls(x509.load_der_x509_crl(der))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, CryptoError):
                raise
            raise DecodeError(f"not a valid DER CRL: {exc}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CertificateRevocationList) and self._der == other._der

    def __hash__(self) -> int:
        return hash(self._der)

    def __repr__(self) -> str:
        return f"<CertificateRevocationList {self.issuer!r} entries={len(self._entries)}>"

    def to_der(self) -> bytes:
        """The CRL's DER encoding (RFC 5280 §5.1)."""
        return self._der

    def to_pem(self) -> bytes:
        """The CRL as a PEM ``X509 CRL`` block (RFC 7468 §6)."""
        return self._crl.public_bytes(ser.Encoding.PEM)

    @property
    def issuer(self) -> str:
        """The issuer as an RFC 4514 string."""
        return self._crl.issuer.rfc4514_string()

    @property
    def issuer_name(self) -> x509.Name:
        """The issuer as a pyca ``Name``: what matches a certificate's issuer (§6.3.3)."""
        return self._crl.issuer

    @property
    def this_update(self) -> datetime.datetime:
        """When the CRL was issued, an aware UTC datetime (RFC 5280 §5.1.2.4)."""
        return self._crl.last_update_utc

    @property
    def next_update(self) -> datetime.datetime | None:
        """When the next CRL is due, UTC; None if absent (RFC 5280 §5.1.2.5)."""
        return self._crl.next_update_utc

    @property
    def crl_number(self) -> int | None:
        """The cRLNumber extension (§5.2.3), None when absent."""
        try:
            return self._crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            return None

    @property
    def revocations(self) -> list[Revocation]:
        """Every entry, in the CRL's order."""
        return list(self._entries.values())

    def revocation_for(self, serial_number: int) -> Revocation | None:
        """The entry for ``serial_number``, or None when the CRL does not list it."""
        return self._entries.get(serial_number)

    def unprocessed_critical_extension(self) -> str | None:
        """The dotted OID of a critical CRL or entry extension quicnet ignores, if any."""
        for ext in self._crl.extensions:
            if ext.critical and ext.oid not in _CRL_EXTENSIONS:
                return str(ext.oid.dotted_string)
        for revoked in self._crl:
            for ext in revoked.extensions:
                if ext.critical and ext.oid not in _ENTRY_EXTENSIONS:
                    return str(ext.oid.dotted_string)
        return None

    def is_signed_by(self, issuer: Certificate) -> bool:
        """True when ``issuer``'s name and key made this CRL."""
        if self._crl.issuer != issuer.subject_name:
            return False
        try:
            return self._crl.is_signature_valid(issuer.to_cryptography().public_key())  # type: ignore[arg-type]
        except Exception:  # an unsupported or mismatched key type: not signed by it
            return False


def load_crls(data: bytes) -> list[CertificateRevocationList]:
    """Every CRL in ``data``: ``X509 CRL`` PEM blocks in file order, or one DER CRL."""
    if is_pem(data):
        crls = [
            CertificateRevocationList.from_der(pem_body(block))
            for label, block in pem_blocks(data)
            if label == "X509 CRL"
        ]
        if not crls:
            raise DecodeError("no X509 CRL PEM block found")
        return crls
    return [CertificateRevocationList.from_der(data)]


def load_crl(data: bytes) -> CertificateRevocationList:
    """The first CRL in ``data`` (PEM or DER)."""
    return load_crls(data)[0]


def make_crl(
    issuer: Certificate,
    issuer_key: PrivateKey,
    revoked: Iterable[Revocation],
    *,
    crl_number: int,
    days: int = 30,
    this_update: datetime.datetime | None = None,
    next_update: datetime.datetime | None = None,
) -> CertificateRevocationList:
    """A complete v2 CRL by ``issuer`` listing ``revoked``, valid ``days`` from ``this_update``.

    Entries carry a reasonCode unless the reason is None or unspecified (§5.3.1
    asks for no extension then); the CRL carries cRLNumber and the issuer's
    authorityKeyIdentifier (§5.2.1, §5.2.3).
    """
    if issuer_key.public_key() != issuer.public_key():
        raise CryptoError("the issuer key does not match the issuer certificate")
    if not issuer.is_ca:
        raise CryptoError(f"{issuer.subject!r} is not a CA: it cannot issue CRLs")
    if crl_number < 0 or crl_number.bit_length() > 159:
        raise CryptoError("the CRL number must be a non-negative integer of at most 20 bytes")
    start = this_update or datetime.datetime.now(datetime.UTC)
    end = next_update or start + datetime.timedelta(days=days)
    if end <= start:
        raise CryptoError("the CRL's nextUpdate must come after its thisUpdate")
    issuer_public = issuer.public_key().to_cryptography()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject_name)
        .last_update(start)
        .next_update(end)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),  # type: ignore[arg-type]
            critical=False,
        )
    )
    for item in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(item.serial_number)
            .revocation_date(item.revoked_at)
        )
        if item.reason not in (None, RevocationReason.unspecified):
            entry = entry.add_extension(x509.CRLReason(PYCA_REASON[item.reason]), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    algorithm = x509_signature_hash(issuer_key)
    try:
        return CertificateRevocationList(builder.sign(issuer_key.to_cryptography(), algorithm))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot sign the CRL: {exc}") from None


def _may_sign_crls(issuer: Certificate) -> bool:
    """False when the issuer's keyUsage is present without cRLSign (§4.2.1.3)."""
    usage = issuer.extension(x509.KeyUsage)
    return usage is None or usage.crl_sign


def _usable_crl(
    cert: Certificate,
    issuer: Certificate,
    crls: Sequence[CertificateRevocationList],
    at: datetime.datetime,
) -> tuple[CertificateRevocationList | None, RevocationUnknown | None]:
    """The newest current CRL ``issuer`` made for ``cert``, or why there is none (§6.3.3)."""
    current: list[CertificateRevocationList] = []
    problem: RevocationUnknown | None = None
    for crl in crls:
        if crl.issuer_name != cert.issuer_name:
            continue
        if not crl.is_signed_by(issuer):
            problem = problem or BadCRLSignature(
                f"a CRL naming {crl.issuer!r} does not verify with the key of the "
                f"certificate's issuer {issuer.subject!r}"
            )
            continue
        if not _may_sign_crls(issuer):
            problem = problem or RevocationUnknown(
                f"CA {issuer.subject!r} lacks keyUsage cRLSign, so its CRL is void (§6.3.3 (f))"
            )
            continue
        oid = crl.unprocessed_critical_extension()
        if oid is not None:
            problem = problem or RevocationUnknown(
                f"the CRL of {crl.issuer!r} has a critical extension quicnet does not process: {oid}"
            )
            continue
        if crl.this_update > at:
            problem = problem or CRLNotYetValid(
                f"the CRL of {crl.issuer!r} is not valid before {crl.this_update:%Y-%m-%d %H:%M:%S} UTC"
            )
            continue
        if crl.next_update is None:
            problem = problem or RevocationUnknown(
                f"the CRL of {crl.issuer!r} has no nextUpdate, so it never expires (§5.1.2.5)"
            )
            continue
        if crl.next_update < at:
            problem = problem or CRLExpired(
                f"the CRL of {crl.issuer!r} expired at {crl.next_update:%Y-%m-%d %H:%M:%S} UTC "
                "(its nextUpdate)"
            )
            continue
        current.append(crl)
    if not current:
        return None, problem
    return max(current, key=lambda c: (c.crl_number or -1, c.this_update)), None


def check_revocation(
    path: Sequence[Certificate],
    crls: Sequence[CertificateRevocationList],
    *,
    at: datetime.datetime,
    required: RevocationCheck,
) -> None:
    """RFC 5280 §6.3 over a validated ``path`` (leaf first, trust anchor last).

    Each certificate but the anchor is looked up on its issuer's newest current
    CRL; a listed one raises :class:`CertificateRevoked`. Where ``required``
    demands a status (the leaf, or the whole chain) and no usable CRL exists,
    raises :class:`RevocationUnknown` (or its subclass naming why): fail closed.
    """
    if not crls and required == "none":
        return  # nothing to look up, and no status demanded (the loop would find so)
    for depth, (cert, issuer) in enumerate(itertools.pairwise(path)):
        must = required == "chain" or (required == "leaf" and depth == 0)
        crl, problem = _usable_crl(cert, issuer, crls, at)
        if crl is None:
            if must:
                raise problem or RevocationUnknown(
                    f"no CRL from {cert.issuer!r} to check {cert.subject!r} "
                    f"(serial {cert.serial_number:X}) against"
                )
            continue
        entry = crl.revocation_for(cert.serial_number)
        if entry is None or entry.reason is RevocationReason.removeFromCRL:
            continue
        reason = entry.reason.name if entry.reason is not None else "no reason given"
        raise CertificateRevoked(
            f"certificate {cert.subject!r} (serial {cert.serial_number:X}) was revoked at "
            f"{entry.revoked_at:%Y-%m-%d %H:%M:%S} UTC: {reason}",
            entry,
        )
