"""PKCS#12 files (RFC 7292): a key, its certificate and chain in one ``.p12``.

:func:`export_pkcs12` writes what ``openssl pkcs12 -export`` writes (key and
certificates encrypted with PBES2 AES-256-CBC and PBKDF2, RFC 8018; an
HMAC-SHA256 integrity MAC); :func:`load_pkcs12` reads that or OpenSSL's
output, and :meth:`Pkcs12Bundle.identity` turns it into a server identity
(``quicnet.Server(identity=...)``, ``s_server -cert f.p12``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm as _PycaUnsupported
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.serialization import pkcs12

from quicnet.crypto.certs import Certificate, check_chain_order
from quicnet.crypto.errors import (
    CryptoError,
    DecodeError,
    PassphraseError,
    UnsupportedAlgorithmError,
)
from quicnet.crypto.keys import PrivateKey

__all__ = ["Pkcs12Bundle", "Pkcs12Identity", "export_pkcs12", "is_pkcs12", "load_pkcs12"]

#: PBKDF2 iterations for export (OpenSSL 3's default is 2048; more costs little here).
_KDF_ROUNDS = 100_000


@dataclass(frozen=True, slots=True)
class Pkcs12Identity:
    """A certificate chain (leaf first) and its private key, read from a PKCS#12 file."""

    certificate_chain: tuple[Certificate, ...]
    private_key: PrivateKey

    @property
    def certificate(self) -> Certificate:
        """The leaf certificate (the first of ``certificate_chain``)."""
        return self.certificate_chain[0]


@dataclass(frozen=True, slots=True)
class Pkcs12Bundle:
    """What a PKCS#12 file holds: any of a key, its certificate, other certificates."""

    private_key: PrivateKey | None
    certificate: Certificate | None
    additional_certificates: tuple[Certificate, ...]
    friendly_name: str | None

    def identity(self) -> Pkcs12Identity:
        """The key and the chain a server presents: the certificate, then its issuers in order.

        Raises :class:`CryptoError` when the key or the certificate is missing or
        they do not belong together.
        """
        if self.private_key is None or self.certificate is None:
            raise CryptoError("the PKCS#12 file needs both a private key and its certificate")
        if self.certificate.public_key() != self.private_key.public_key():
            raise CryptoError("the PKCS#12 file's private key does not match its certificate")
        chain = [self.certificate]
        pool = [c for c in self.additional_certificates if c != self.certificate]
        while pool:  # follow issuers; self-signed roots are left out of what is sent
            issuer = next((c for c in pool if c.issued(chain[-1])), None)
            if issuer is None or issuer.is_self_issued:
                break
            chain.append(issuer)
            pool.remove(issuer)
        check_chain_order(chain)
        return Pkcs12Identity(tuple(chain), self.private_key)


def is_pkcs12(data: bytes) -> bool:
    """True when ``data`` starts like a DER PFX: SEQUENCE { INTEGER 3, ... } (RFC 7292 §4)."""
    if len(data) < 5 or data[0] != 0x30:
        return False
    n = data[1]
    offset = 2 if n < 0x80 else 2 + (n & 0x7F)
    return data[offset : offset + 3] == b"\x02\x01\x03"


def load_pkcs12(data: bytes, password: bytes | None = None) -> Pkcs12Bundle:
    """Read a PKCS#12 file. A wrong or missing passphrase raises :class:`PassphraseError`,
    anything that is not PKCS#12 :class:`DecodeError`."""
    if not is_pkcs12(data):
        raise DecodeError("not a PKCS#12 file (no DER PFX structure, RFC 7292 §4)")
    try:
        loaded = pkcs12.load_pkcs12(data, password or None)
    except _PycaUnsupported as exc:
        raise UnsupportedAlgorithmError(f"PKCS#12 file uses an unsupported scheme: {exc}") from None
    except (ValueError, TypeError) as exc:
        if password is None or not password:
            raise PassphraseError(
                "cannot read the PKCS#12 file without a passphrase (or it is corrupt)"
            ) from None
        raise PassphraseError(
            f"wrong passphrase for the PKCS#12 file, or the file is corrupt: {exc}"
        ) from None
    try:
        key = PrivateKey(loaded.key) if loaded.key is not None else None  # type: ignore[arg-type]
        cert = Certificate(loaded.cert.certificate) if loaded.cert is not None else None
        others = tuple(Certificate(c.certificate) for c in loaded.additional_certs)
        name = loaded.cert.friendly_name if loaded.cert is not None else None
        friendly = name.decode("utf-8") if name else None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise DecodeError(f"malformed content in the PKCS#12 file: {exc}") from None
    return Pkcs12Bundle(key, cert, others, friendly)


def export_pkcs12(
    private_key: PrivateKey | None,
    certificate: Certificate | None,
    chain: Sequence[Certificate] = (),
    *,
    name: str | None = None,
    password: bytes | None = None,
) -> bytes:
    """A PKCS#12 file of the key, its certificate and ``chain`` (the CA certificates).

    With ``password`` everything is encrypted (PBES2: PBKDF2-HMAC-SHA256,
    AES-256-CBC) and MACed with HMAC-SHA256 (RFC 7292 §5, RFC 8018); without one
    the file is neither encrypted nor MACed, so only for keys that need no secrecy.
    """
    if private_key is None and certificate is None and not chain:
        raise CryptoError("nothing to put in the PKCS#12 file")
    if (
        private_key is not None
        and certificate is not None
        and certificate.public_key() != private_key.public_key()
    ):
        raise CryptoError("the private key does not match the certificate")
    encryption: ser.KeySerializationEncryption = ser.NoEncryption()
    if password:
        encryption = (
            ser.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(_KDF_ROUNDS)
            .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password)
        )
    try:
        return pkcs12.serialize_key_and_certificates(
            name.encode("utf-8") if name else None,
            private_key.to_cryptography() if private_key is not None else None,  # type: ignore[arg-type]
            certificate.to_cryptography() if certificate is not None else None,
            [c.to_cryptography() for c in chain] or None,
            encryption,
        )
    except (ValueError, TypeError, _PycaUnsupported) as exc:
        raise UnsupportedAlgorithmError(f"cannot write this key to PKCS#12: {exc}") from None
