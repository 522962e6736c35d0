"""HPKE base mode (RFC 9180 §5.1) for Encrypted Client Hello.

pyca/cryptography's ``hpke.Suite`` is single-shot and takes no associated data
in its public API, while ECH seals the inner ClientHello with the outer one as
AAD (draft-ietf-tls-esni §6.1) and reuses the context after a
HelloRetryRequest. So this module composes HPKE's key schedule from pyca's
X25519, HMAC and AEAD primitives: DHKEM(X25519, HKDF-SHA256) with
HKDF-SHA256/384/512 and AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305.
Tests check it against pyca's own HPKE. (To be folded into ``hpke.py`` once that
module lands.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from quicnet.crypto.aead import Aead, AeadAlgorithm
from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hashes import digest_size, hmac_digest
from quicnet.crypto.kdf import hkdf_expand

__all__ = [
    "HpkeAead",
    "HpkeContext",
    "HpkeKdf",
    "HpkeKem",
    "HpkePrivateKey",
    "X25519_ENC_LENGTH",
    "setup_base_receiver",
    "setup_base_sender",
]

_VERSION = b"HPKE-v1"
_MODE_BASE = 0


class HpkeKem(enum.IntEnum):
    """KEM identifiers (RFC 9180 §7.1); only X25519 is offered here."""

    DHKEM_X25519_HKDF_SHA256 = 0x0020


class HpkeKdf(enum.IntEnum):
    HKDF_SHA256 = 0x0001
    HKDF_SHA384 = 0x0002
    HKDF_SHA512 = 0x0003

    @property
    def hash_name(self) -> str:
        return {1: "sha256", 2: "sha384", 3: "sha512"}[int(self)]


class HpkeAead(enum.IntEnum):
    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003

    @property
    def algorithm(self) -> AeadAlgorithm:
        return {
            1: AeadAlgorithm.AES_128_GCM,
            2: AeadAlgorithm.AES_256_GCM,
            3: AeadAlgorithm.CHACHA20_POLY1305,
        }[int(self)]


#: The KEM's encapsulated key and public key size (RFC 9180 §7.1: Nenc = Npk = 32).
X25519_ENC_LENGTH = 32


def _labeled_extract(
    hash_name: str, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes
) -> bytes:
    # §4: an empty salt is HashLen zeros, which HMAC pads to the same key.
    key = salt or bytes(digest_size(hash_name))
    return hmac_digest(hash_name, key, _VERSION + suite_id + label + ikm)


def _labeled_expand(
    hash_name: str, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
) -> bytes:
    labeled = length.to_bytes(2, "big") + _VERSION + suite_id + label + info
    return hkdf_expand(hash_name, prk, labeled, length)


class HpkePrivateKey:
    """An X25519 HPKE key pair (the ECH server's half of an ECHConfig)."""

    __slots__ = ("_key",)

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> HpkePrivateKey:
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> HpkePrivateKey:
        try:
            return cls(x25519.X25519PrivateKey.from_private_bytes(raw))
        except ValueError as exc:
            raise CryptoError(f"not an X25519 private key: {exc}") from None

    @classmethod
    def from_pem(cls, pem: bytes) -> HpkePrivateKey:
        """A PKCS#8 ``PRIVATE KEY`` PEM block holding an X25519 key."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise CryptoError(f"cannot read the ECH private key: {exc}") from None
        if not isinstance(key, x25519.X25519PrivateKey):
            raise CryptoError("the ECH private key is not an X25519 key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def exchange(self, peer_public: bytes) -> bytes:
        try:
            peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
            return self._key.exchange(peer)
        except ValueError as exc:  # wrong length, or an all-zero shared secret (§7.1.4)
            raise CryptoError(f"HPKE key exchange failed: {exc}") from None


def _kem_shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    """ExtractAndExpand of DHKEM (RFC 9180 §4.1) with HKDF-SHA256."""
    suite_id = b"KEM" + HpkeKem.DHKEM_X25519_HKDF_SHA256.to_bytes(2, "big")
    prk = _labeled_extract("sha256", suite_id, b"", b"eae_prk", dh)
    return _labeled_expand("sha256", suite_id, prk, b"shared_secret", enc + pk_r, 32)


@dataclass
class HpkeContext:
    """An HPKE encryption context (RFC 9180 §5.2): seal or open in sequence order."""

    aead: Aead
    exporter_secret: bytes
    seq: int = field(default=0)

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        out = self.aead.seal(self.seq, plaintext, aad)
        self.seq += 1
        return out

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """Raises :class:`~quicnet.crypto.errors.DecryptError` (a CryptoError) when the ciphertext does not
        authenticate (the sequence number then stays put)."""
        out = self.aead.open(self.seq, ciphertext, aad)
        self.seq += 1
        return out


def _key_schedule(shared_secret: bytes, info: bytes, kdf: HpkeKdf, aead: HpkeAead) -> HpkeContext:
    """KeySchedule for mode_base (RFC 9180 §5.1): no PSK, empty psk_id."""
    suite_id = (
        b"HPKE"
        + HpkeKem.DHKEM_X25519_HKDF_SHA256.to_bytes(2, "big")
        + kdf.to_bytes(2, "big")
        + aead.to_bytes(2, "big")
    )
    h = kdf.hash_name
    psk_id_hash = _labeled_extract(h, suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(h, suite_id, b"", b"info_hash", info)
    context = bytes((_MODE_BASE,)) + psk_id_hash + info_hash
    secret = _labeled_extract(h, suite_id, shared_secret, b"secret", b"")
    algorithm = aead.algorithm
    key = _labeled_expand(h, suite_id, secret, b"key", context, algorithm.key_length)
    nonce = _labeled_expand(h, suite_id, secret, b"base_nonce", context, algorithm.iv_length)
    exporter = _labeled_expand(h, suite_id, secret, b"exp", context, digest_size(h))
    return HpkeContext(Aead(algorithm, key, nonce), exporter)


def setup_base_sender(
    public_key: bytes, info: bytes, kdf: HpkeKdf, aead: HpkeAead
) -> tuple[bytes, HpkeContext]:
    """SetupBaseS (RFC 9180 §5.1.1): the encapsulated key ``enc`` and the sender context."""
    ephemeral = HpkePrivateKey.generate()
    enc = ephemeral.public_bytes()
    dh = ephemeral.exchange(public_key)
    return enc, _key_schedule(_kem_shared_secret(dh, enc, public_key), info, kdf, aead)


def setup_base_receiver(
    enc: bytes, private_key: HpkePrivateKey, info: bytes, kdf: HpkeKdf, aead: HpkeAead
) -> HpkeContext:
    """SetupBaseR (RFC 9180 §5.1.1); :class:`CryptoError` when ``enc`` is not a key."""
    dh = private_key.exchange(enc)
    shared = _kem_shared_secret(dh, enc, private_key.public_bytes())
    return _key_schedule(shared, info, kdf, aead)
