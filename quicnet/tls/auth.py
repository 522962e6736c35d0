"""Authentication: CertificateVerify content (§4.4.3) and checking the peer's chain."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence

from quicnet.crypto import (
    Certificate,
    CertificateError,
    CertificateRevocationList,
    CryptoError,
    PrivateKey,
    RevocationCheck,
    SignatureScheme,
    constant_time_eq,
    load_certificate,
    verify_chain,
)
from quicnet.crypto.names import ip_address_or_none
from quicnet.crypto.signing import SCHEME_INFO
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import ProtocolViolation
from quicnet.tls.messages import CertificateEntry

__all__ = [
    "certificate_verify_content",
    "choose_signature_scheme",
    "decode_certificate_chain",
    "is_ip_address",
    "validity_time",
    "verify_peer_certificates",
]

_SERVER_CONTEXT = b"TLS 1.3, server CertificateVerify"
_CLIENT_CONTEXT = b"TLS 1.3, client CertificateVerify"


def certificate_verify_content(transcript_hash: bytes, *, server: bool) -> bytes:
    """64 spaces, the context string, a zero byte, the transcript hash (§4.4.3)."""
    return b" " * 64 + (_SERVER_CONTEXT if server else _CLIENT_CONTEXT) + b"\x00" + transcript_hash


def choose_signature_scheme(key: PrivateKey, peer_schemes: Sequence[int]) -> SignatureScheme:
    """Our key's best scheme that the peer accepts in CertificateVerify."""
    for scheme in key.signature_schemes:
        if SCHEME_INFO[scheme].handshake_allowed and scheme in peer_schemes:
            return scheme
    raise ProtocolViolation(
        f"no signature scheme in common for a {key.description} key",
        AlertDescription.handshake_failure,
    )


def is_ip_address(name: str) -> bool:
    """Whether ``name`` is an IPv4 or IPv6 literal, brackets allowed (never sent as SNI)."""
    return ip_address_or_none(name.removeprefix("[").removesuffix("]")) is not None


def decode_certificate_chain(entries: Sequence[CertificateEntry]) -> list[Certificate]:
    """Parse the DER certificates of a Certificate message, leaf first (RFC 8446 §4.4.2).

    Raises :class:`~quicnet.tls.errors.ProtocolViolation` (bad_certificate) if
    a certificate or its public key does not parse.
    """
    chain = []
    for entry in entries:
        try:
            cert = load_certificate(entry.cert_data)
            cert.public_key()  # a malformed key is a bad certificate, found now
            chain.append(cert)
        except CryptoError as exc:
            raise ProtocolViolation(
                f"peer certificate does not parse: {exc}", AlertDescription.bad_certificate
            ) from None
    return chain


def validity_time(clock: Callable[[], float] | None) -> datetime.datetime | None:
    """The instant certificates are checked at: ``clock()`` as a UTC datetime, or None
    (the system clock, read by the validator)."""
    if clock is None:
        return None
    return datetime.datetime.fromtimestamp(clock(), datetime.UTC)


def verify_peer_certificates(
    chain: Sequence[Certificate],
    *,
    roots: Sequence[Certificate],
    pins: Sequence[bytes],
    name: str | None,
    purpose: str,
    skip: bool = False,
    require_name: bool = False,
    crls: Sequence[CertificateRevocationList] = (),
    revocation_check: RevocationCheck | None = None,
    at: datetime.datetime | None = None,
) -> None:
    """Accept the chain if a pin matches its leaf, or it validates to a root for ``name``.

    With ``require_name`` the roots vouch only for a leaf checked against ``name``.
    ``crls`` and ``revocation_check`` go to :func:`verify_chain` (a pin is trusted as is).
    """
    if skip:
        return
    leaf = chain[0]
    if pins:
        cert_fp, spki_fp = leaf.fingerprint(), leaf.spki_fingerprint()
        if any(constant_time_eq(p, cert_fp) or constant_time_eq(p, spki_fp) for p in pins):
            return
        if not roots or (require_name and not name):
            raise ProtocolViolation(
                "peer certificate matches no pinned fingerprint", AlertDescription.bad_certificate
            )
    try:
        verify_chain(
            chain,
            roots,
            name=name,
            purpose="server" if purpose == "server" else "client",
            crls=crls,
            revocation_check=revocation_check,
            at=at,
        )
    except CertificateError as exc:
        raise ProtocolViolation(
            f"peer certificate rejected: {exc}", AlertDescription(exc.alert)
        ) from None
    except CryptoError as exc:  # malformed extensions found during validation
        raise ProtocolViolation(
            f"peer certificate rejected: {exc}", AlertDescription.bad_certificate
        ) from None
