"""TLS SignatureScheme code points (RFC 8446 §4.2.3) and what each means."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SCHEME_INFO", "SchemeInfo", "SignatureScheme"]


class SignatureScheme(enum.IntEnum):
    """TLS SignatureScheme code points."""

    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B
    # draft-ietf-tls-mldsa
    mldsa44 = 0x0904
    mldsa65 = 0x0905
    mldsa87 = 0x0906


@dataclass(frozen=True, slots=True)
class SchemeInfo:
    """What a scheme needs: the key algorithm family, its hash, its padding."""

    key_family: str  # "rsa", "ec", "ed25519", "ed448", "ml-dsa-44", ...
    hash_name: str | None  # None for the schemes that hash internally
    curve: str | None = None  # the curve a TLS 1.3 ECDSA scheme is bound to
    padding: str | None = None  # "pss" or "pkcs1" for RSA
    #: RFC 8446 §4.2.3: PKCS#1 v1.5 may appear in certificates, never in CertificateVerify.
    handshake_allowed: bool = True


SCHEME_INFO: dict[SignatureScheme, SchemeInfo] = {
    SignatureScheme.rsa_pkcs1_sha256: SchemeInfo(
        "rsa", "sha256", padding="pkcs1", handshake_allowed=False
    ),
    SignatureScheme.rsa_pkcs1_sha384: SchemeInfo(
        "rsa", "sha384", padding="pkcs1", handshake_allowed=False
    ),
    SignatureScheme.rsa_pkcs1_sha512: SchemeInfo(
        "rsa", "sha512", padding="pkcs1", handshake_allowed=False
    ),
    SignatureScheme.ecdsa_secp256r1_sha256: SchemeInfo("ec", "sha256", curve="P-256"),
    SignatureScheme.ecdsa_secp384r1_sha384: SchemeInfo("ec", "sha384", curve="P-384"),
    SignatureScheme.ecdsa_secp521r1_sha512: SchemeInfo("ec", "sha512", curve="P-521"),
    SignatureScheme.rsa_pss_rsae_sha256: SchemeInfo("rsa", "sha256", padding="pss"),
    SignatureScheme.rsa_pss_rsae_sha384: SchemeInfo("rsa", "sha384", padding="pss"),
    SignatureScheme.rsa_pss_rsae_sha512: SchemeInfo("rsa", "sha512", padding="pss"),
    SignatureScheme.ed25519: SchemeInfo("ed25519", None),
    SignatureScheme.ed448: SchemeInfo("ed448", None),
    SignatureScheme.mldsa44: SchemeInfo("ml-dsa-44", None),
    SignatureScheme.mldsa65: SchemeInfo("ml-dsa-65", None),
    SignatureScheme.mldsa87: SchemeInfo("ml-dsa-87", None),
}
