"""Certificate path validation (RFC 5280 §6, reduced to what TLS needs).

:func:`verify_chain` builds a path from the leaf through the supplied
intermediates to one of the trust roots and checks, for each certificate:
validity at the given time, the issuer's signature, that every issuer is a CA
allowed to sign certificates (basicConstraints, keyUsage, pathLenConstraint),
name constraints on DNS names and IP addresses, and that no critical
extension goes unprocessed; revocation against the CRLs given (RFC 5280 §6.3,
in :mod:`quicnet.crypto.crl`); then the leaf's name (RFC 6125) and extended
key usage. Each failure raises the :class:`CertificateError` subclass naming it.

Every check runs on every call; the signature checks go through
:meth:`Certificate.issued`, which remembers pairs that verified by their exact DER bytes
(bounded), so a chain met on every handshake has its signatures computed once.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from quicnet.crypto.certs import Certificate
from quicnet.crypto.crl import CertificateRevocationList, check_revocation
from quicnet.crypto.errors import (
    BadCertificateSignature,
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    NameMismatch,
    NotACA,
    PathTooLong,
    UnknownIssuer,
    UnsuitableCertificate,
    UnsupportedCriticalExtension,
)
from quicnet.crypto.names import dns_name_matches, ip_address_or_none
from quicnet.crypto.revocation import RevocationCheck

__all__ = ["MAX_PATH_LENGTH", "Purpose", "verify_chain"]

MAX_PATH_LENGTH = 10
Purpose = Literal["server", "client", "any"]

_PROCESSED_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.NAME_CONSTRAINTS,
    # Policies are not enforced; accepting them matches anyPolicy (RFC 5280 §6.1.1).
    ExtensionOID.CERTIFICATE_POLICIES,
    ExtensionOID.POLICY_CONSTRAINTS,
    ExtensionOID.INHIBIT_ANY_POLICY,
}
_EKU = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def _check_time(cert: Certificate, at: datetime.datetime) -> None:
    if at < cert.not_before:
        raise CertificateNotYetValid(
            f"certificate {cert.subject!r} is not valid before {cert.not_before:%Y-%m-%d %H:%M:%S} UTC"
        )
    if at > cert.not_after:
        raise CertificateExpired(
            f"certificate {cert.subject!r} expired at {cert.not_after:%Y-%m-%d %H:%M:%S} UTC"
        )


def _check_critical(cert: Certificate) -> None:
    for oid in cert.critical_extension_oids():
        if oid not in _PROCESSED_CRITICAL:
            raise UnsupportedCriticalExtension(
                f"certificate {cert.subject!r} has an unsupported critical extension "
                f"{oid.dotted_string}"
            )


def _check_issuer(issuer: Certificate, below: int) -> None:
    """``issuer`` signed a certificate with ``below`` non-self-issued CAs under it."""
    if not issuer.is_ca:
        raise NotACA(f"{issuer.subject!r} issued a certificate but is not a CA (basicConstraints)")
    ku = issuer.extension(x509.KeyUsage)
    if ku is not None and not ku.key_cert_sign:
        raise UnsuitableCertificate(f"CA {issuer.subject!r} lacks keyUsage keyCertSign")
    limit = issuer.path_length
    if limit is not None and below > limit:
        raise PathTooLong(
            f"CA {issuer.subject!r} allows {limit} intermediate CA(s) below it, the path has {below}"
        )


def _check_leaf_usage(leaf: Certificate, purpose: Purpose) -> None:
    ku = leaf.extension(x509.KeyUsage)
    if ku is not None and not ku.digital_signature:
        raise UnsuitableCertificate(f"leaf {leaf.subject!r} lacks keyUsage digitalSignature")
    if purpose == "any":
        return
    eku = leaf.extension(x509.ExtendedKeyUsage)
    if eku is not None:
        usages = list(eku)
        if _EKU[purpose] not in usages and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages:
            raise UnsuitableCertificate(
                f"leaf {leaf.subject!r} is not for TLS {purpose} use (extendedKeyUsage)"
            )


def _check_name(leaf: Certificate, name: str) -> None:
    dns, ips = leaf.dns_names, leaf.ip_addresses
    ip = ip_address_or_none(name.strip("[]"))
    if ip is None:
        if any(dns_name_matches(pattern, name) for pattern in dns):
            return
        raise NameMismatch(
            f"certificate {leaf.subject!r} is not valid for {name!r} (DNS names: {', '.join(dns) or 'none'})"
        ) from None
    if any(ipaddress.ip_address(a) == ip for a in ips):
        return
    raise NameMismatch(
        f"certificate {leaf.subject!r} is not valid for {name} (IP addresses: {', '.join(ips) or 'none'})"
    )


def _within(name: str, subtree: str) -> bool:
    subtree = subtree.lower().lstrip(".")
    name = name.lower().rstrip(".")
    return name == subtree or name.endswith("." + subtree)


def _check_name_constraints(ca: Certificate, certs: Sequence[Certificate]) -> None:
    nc = ca.extension(x509.NameConstraints)
    if nc is None:
        return
    for cert in certs:
        if cert.is_self_issued:
            continue
        for kind, values in (("DNS", cert.dns_names), ("IP", cert.ip_addresses)):
            for value in values:
                if not _name_allowed(nc, kind, value):
                    raise CertificateError(
                        f"{kind} name {value!r} of {cert.subject!r} violates the name "
                        f"constraints of CA {ca.subject!r}"
                    )


def _name_allowed(nc: x509.NameConstraints, kind: str, value: str) -> bool:
    """RFC 5280 §4.2.1.10 for one DNS name or IP address."""

    def hits(trees: list[x509.GeneralName] | None) -> tuple[bool, bool]:
        """(any subtree of this kind, ``value`` inside one of them)."""
        if kind == "DNS":
            dns = [t.value for t in trees or () if isinstance(t, x509.DNSName)]
            return bool(dns), any(_within(value, d) for d in dns)
        nets = [t.value for t in trees or () if isinstance(t, x509.IPAddress)]
        addr = ipaddress.ip_address(value)
        return bool(nets), any(
            isinstance(n, ipaddress.IPv4Network | ipaddress.IPv6Network) and addr in n for n in nets
        )

    has_permitted, permitted_hit = hits(nc.permitted_subtrees)
    _, excluded_hit = hits(nc.excluded_subtrees)
    return not excluded_hit and (permitted_hit or not has_permitted)


def _key_ids_compatible(child: Certificate, issuer: Certificate) -> bool:
    """False when both key identifiers are present and differ (RFC 5280 §4.2.1.1)."""
    aki = child.extension(x509.AuthorityKeyIdentifier)
    ski = issuer.extension(x509.SubjectKeyIdentifier)
    if aki is None or aki.key_identifier is None:
        return True
    if ski is None:
        return True
    return aki.key_identifier == ski.digest


def _build_path(
    path: list[Certificate],
    roots: Sequence[Certificate],
    root_set: set[Certificate],
    pool: list[Certificate],
    at: datetime.datetime,
) -> list[Certificate]:
    """Depth-first search from ``path[-1]`` to a root, backtracking over issuers that fail."""
    current = path[-1]
    if current in root_set:
        return path
    if len(path) > MAX_PATH_LENGTH:
        raise PathTooLong(f"no trusted root within {MAX_PATH_LENGTH} certificates")
    candidates = [c for c in roots if c.subject_name == current.issuer_name]
    candidates += [c for c in pool if c.subject_name == current.issuer_name and c not in path]
    # A same-named CA with another key (per AKI/SKI) is a different CA, not a forger.
    candidates = [c for c in candidates if _key_ids_compatible(current, c)]
    if not candidates:
        what = "self-signed certificate" if current.is_self_issued else "certificate"
        raise UnknownIssuer(
            f"{what} {current.subject!r} was issued by {current.issuer!r}, "
            "which is not a trusted root or a supplied intermediate"
        )
    failures: list[CertificateError] = []
    for issuer in candidates:
        if not issuer.issued(current):
            failures.append(
                BadCertificateSignature(
                    f"the signature on {current.subject!r} does not verify with the key of {current.issuer!r}"
                )
            )
            continue
        try:
            below = sum(1 for c in path[1:] if not c.is_self_issued)
            _check_issuer(issuer, below)
            _check_critical(issuer)
            _check_time(issuer, at)
            _check_name_constraints(issuer, path)
            return _build_path([*path, issuer], roots, root_set, pool, at)
        except CertificateError as exc:
            failures.append(exc)
    # Report the failure of the most promising candidate: one that at least signed.
    signed = [f for f in failures if not isinstance(f, BadCertificateSignature)]
    raise (signed or failures)[0]


def verify_chain(
    chain: Sequence[Certificate],
    roots: Sequence[Certificate],
    *,
    name: str | None = None,
    at: datetime.datetime | None = None,
    purpose: Purpose = "server",
    crls: Sequence[CertificateRevocationList] = (),
    revocation_check: RevocationCheck | None = None,
) -> list[Certificate]:
    """Validate ``chain`` (leaf first, then intermediates in any order) against ``roots``.

    ``name`` is the DNS name or IP address the leaf must be valid for (None
    skips the check); ``at`` the time of validation (default now). A root may
    also be the leaf itself (a pinned self-signed certificate). Returns the
    validated path from leaf to root.

    ``crls`` are consulted for every certificate of the path but the root: one
    its issuer revoked raises :class:`~quicnet.crypto.revocation.CertificateRevoked`.
    ``revocation_check`` says whose status must be known: ``"leaf"`` (the
    default when ``crls`` are given; OpenSSL's ``-crl_check``), ``"chain"``
    (``-crl_check_all``) or ``"none"`` (the default without CRLs). A required
    status with no current CRL signed by the issuer fails closed with
    :class:`~quicnet.crypto.revocation.RevocationUnknown`.
    """
    if not chain:
        raise CertificateError("the certificate chain is empty")
    at = at or datetime.datetime.now(datetime.UTC)
    leaf = chain[0]
    root_set = set(roots)
    pool = [c for c in chain[1:] if c != leaf]

    _check_critical(leaf)
    _check_time(leaf, at)
    path = _build_path([leaf], roots, root_set, pool, at)
    required = revocation_check or ("leaf" if crls else "none")
    check_revocation(path, crls, at=at, required=required)
    _check_leaf_usage(leaf, purpose)
    if name is not None:
        _check_name(leaf, name)
    return path
