"""Development identities: a throwaway CA and a server certificate, in memory."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from quicnet.crypto.certs import (
    Certificate,
    format_fingerprint,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.crypto.keys import PrivateKey, generate_private_key

__all__ = ["DevIdentity", "dev_identity"]


@dataclass(frozen=True, slots=True)
class DevIdentity:
    """A server identity for local play and tests.

    ``certificate_chain`` is what the server sends (the leaf); clients either
    trust ``trust_root`` (the throwaway CA that issued it) or pin
    ``fingerprint`` (SHA-256 of the leaf) or ``spki_fingerprint``.
    """

    certificate_chain: tuple[Certificate, ...]
    private_key: PrivateKey
    trust_root: Certificate
    fingerprint: bytes
    spki_fingerprint: bytes

    @property
    def certificate(self) -> Certificate:
        """The leaf certificate (the first of ``certificate_chain``)."""
        return self.certificate_chain[0]

    @property
    def fingerprint_text(self) -> str:
        """``fingerprint`` as colon-separated hex, as ``openssl x509 -fingerprint`` prints it."""
        return format_fingerprint(self.fingerprint)


def dev_identity(
    names: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
    *,
    days: int = 30,
    not_before: datetime.datetime | None = None,
) -> DevIdentity:
    """A fresh ECDSA P-256 server certificate for ``names``, issued by a fresh CA.

    The CA's key is discarded, so the root can issue nothing else. Takes a
    few milliseconds.
    """
    # One start for both, so the leaf gets its full validity (it is clipped to the CA's).
    not_before = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = generate_private_key("EC", curve="P-256")
    # A unique name per CA, so trusting another run's root reads as "unknown CA".
    ca_name = f"/CN=quicnet dev CA {ca_key.public_key().fingerprint().hex()[:12]}"
    ca = make_ca(ca_key, ca_name, days=days, path_length=0, not_before=not_before)
    key = generate_private_key("EC", curve="P-256")
    subject = "/CN=" + (names[0] if names else "quicnet dev server")
    leaf = issue_certificate(
        make_csr(key, subject, names=names), ca, ca_key, days=days, not_before=not_before
    )
    return DevIdentity(
        certificate_chain=(leaf,),
        private_key=key,
        trust_root=ca,
        fingerprint=leaf.fingerprint(),
        spki_fingerprint=leaf.spki_fingerprint(),
    )
