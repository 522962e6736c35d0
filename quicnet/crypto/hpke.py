"""HPKE (RFC 9180), base mode, with RFC 9180 codepoints and typed errors.

quicnet runs HPKE's key schedule (§5.1) itself, over pyca/cryptography's
X25519, ECDH, ML-KEM, HMAC/HKDF and AEADs (no primitive is written by hand),
for every suite whose KEM is DHKEM(X25519), DHKEM(P-256/384/521) or
ML-KEM-768/1024 and whose KDF is HKDF-SHA256/384/512 (:attr:`Suite.has_contexts`):

* encryption contexts (§5.2): :func:`setup_base_sender` returns ``enc`` and a
  :class:`SenderContext` before anything is sealed, :func:`setup_base_receiver`
  a :class:`ReceiverContext`; both seal or open at any sequence number and
  :meth:`export <SenderContext.export>` (§5.3). ECH seals its inner hello with
  the outer one as AAD, and reuses the context after a HelloRetryRequest.
* single-shot :func:`seal_base` and :func:`open_base` (§6.1) on top of them,
  with ``info`` and ``aad``.

The other suites pyca implements, the hybrid ML-KEM KEMs and the SHAKE KDFs,
go through pyca's single-shot ``hpke.Suite``, whose public API takes no AAD:
for them :func:`seal_base`/:func:`open_base` work with an empty ``aad``, and a
non-empty one or the context API raises :class:`HPKEUnsupportedError`.
PSK, Auth and AuthPSK modes (:class:`Mode` names them), DHKEM(X448) and the
export-only AEAD are not offered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hpke as pyca_hpke
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from quicnet.crypto.aead import Aead, AeadAlgorithm
from quicnet.crypto.errors import CryptoError, DecodeError, DecryptError, UnsupportedAlgorithmError
from quicnet.crypto.hashes import digest_size
from quicnet.crypto.kdf import hkdf_expand, hkdf_extract

__all__ = [
    "DEFAULT_SUITE",
    "SUPPORTED_AEADS",
    "SUPPORTED_KDFS",
    "SUPPORTED_KEMS",
    "AeadId",
    "HPKEDecryptError",
    "HPKEError",
    "HPKEKeyError",
    "HPKEUnsupportedError",
    "HPKEUnsupportedSuite",
    "HpkePrivateKey",
    "HpkePublicKey",
    "KdfId",
    "KemId",
    "Mode",
    "ReceiverContext",
    "SenderContext",
    "Suite",
    "open_base",
    "seal_base",
    "setup_base_receiver",
    "setup_base_sender",
]


# -- errors -------------------------------------------------------------------


class HPKEError(CryptoError):
    """Base class of HPKE failures."""


class HPKEDecryptError(HPKEError, DecryptError):
    """Open failed: wrong key, ``info``, ``aad``, ``enc`` or ciphertext.

    RFC 9180 §5.2 OpenError (and §4 DecapError). Carries ``decrypt_error``,
    the alert ECH sends when the inner ClientHello after a HelloRetryRequest
    does not decrypt (RFC 9849 §7.1).
    """

    alert: ClassVar[int] = 51  # decrypt_error


class HPKEUnsupportedError(HPKEError, UnsupportedAlgorithmError):
    """A mode, or an operation on a suite, that quicnet does not offer."""


class HPKEUnsupportedSuite(HPKEUnsupportedError):
    """A KEM, KDF or AEAD codepoint that is unknown or that pyca lacks."""


class HPKEKeyError(HPKEError, DecodeError):
    """A key does not fit the suite's KEM, or its encoding is malformed."""


# -- suites (RFC 9180 §7, IANA HPKE registry) ---------------------------------


class Mode(enum.IntEnum):
    """HPKE modes (RFC 9180 §5, Table 1). pyca offers only BASE."""

    BASE = 0x00
    PSK = 0x01
    AUTH = 0x02
    AUTH_PSK = 0x03


class KemId(enum.IntEnum):
    """KEM identifiers (RFC 9180 §7.1; ML-KEM ones from draft-ietf-hpke-pq)."""

    DHKEM_P256_HKDF_SHA256 = 0x0010
    DHKEM_P384_HKDF_SHA384 = 0x0011
    DHKEM_P521_HKDF_SHA512 = 0x0012
    DHKEM_X25519_HKDF_SHA256 = 0x0020
    DHKEM_X448_HKDF_SHA512 = 0x0021
    ML_KEM_768 = 0x0041
    ML_KEM_1024 = 0x0042
    MLKEM1024_P384 = 0x0051
    MLKEM768_X25519 = 0x647A


class KdfId(enum.IntEnum):
    """KDF identifiers (RFC 9180 §7.2; SHAKE from draft-ietf-hpke-hpke)."""

    HKDF_SHA256 = 0x0001
    HKDF_SHA384 = 0x0002
    HKDF_SHA512 = 0x0003
    SHAKE128 = 0x0010
    SHAKE256 = 0x0011


class AeadId(enum.IntEnum):
    """AEAD identifiers (RFC 9180 §7.3)."""

    AES_128_GCM = 0x0001
    AES_256_GCM = 0x0002
    CHACHA20_POLY1305 = 0x0003
    EXPORT_ONLY = 0xFFFF


_PYCA_KEM = {
    KemId.DHKEM_P256_HKDF_SHA256: pyca_hpke.KEM.P256,
    KemId.DHKEM_P384_HKDF_SHA384: pyca_hpke.KEM.P384,
    KemId.DHKEM_P521_HKDF_SHA512: pyca_hpke.KEM.P521,
    KemId.DHKEM_X25519_HKDF_SHA256: pyca_hpke.KEM.X25519,
    KemId.ML_KEM_768: pyca_hpke.KEM.MLKEM768,
    KemId.ML_KEM_1024: pyca_hpke.KEM.MLKEM1024,
    KemId.MLKEM1024_P384: pyca_hpke.KEM.MLKEM1024_P384,
    KemId.MLKEM768_X25519: pyca_hpke.KEM.MLKEM768_X25519,
}
_PYCA_KDF = {
    KdfId.HKDF_SHA256: pyca_hpke.KDF.HKDF_SHA256,
    KdfId.HKDF_SHA384: pyca_hpke.KDF.HKDF_SHA384,
    KdfId.HKDF_SHA512: pyca_hpke.KDF.HKDF_SHA512,
    KdfId.SHAKE128: pyca_hpke.KDF.SHAKE128,
    KdfId.SHAKE256: pyca_hpke.KDF.SHAKE256,
}
_PYCA_AEAD = {
    AeadId.AES_128_GCM: pyca_hpke.AEAD.AES_128_GCM,
    AeadId.AES_256_GCM: pyca_hpke.AEAD.AES_256_GCM,
    AeadId.CHACHA20_POLY1305: pyca_hpke.AEAD.CHACHA20_POLY1305,
}

#: The KEMs, KDFs and AEADs pyca implements.
SUPPORTED_KEMS: frozenset[KemId] = frozenset(_PYCA_KEM)
SUPPORTED_KDFS: frozenset[KdfId] = frozenset(_PYCA_KDF)
SUPPORTED_AEADS: frozenset[AeadId] = frozenset(_PYCA_AEAD)

_EC_CURVES: dict[KemId, ec.EllipticCurve] = {
    KemId.DHKEM_P256_HKDF_SHA256: ec.SECP256R1(),
    KemId.DHKEM_P384_HKDF_SHA384: ec.SECP384R1(),
    KemId.DHKEM_P521_HKDF_SHA512: ec.SECP521R1(),
}
# Nsk of the NIST DHKEMs (RFC 9180 §7.1, Table 2).
_EC_NSK = {
    KemId.DHKEM_P256_HKDF_SHA256: 32,
    KemId.DHKEM_P384_HKDF_SHA384: 48,
    KemId.DHKEM_P521_HKDF_SHA512: 66,
}
# What quicnet's own key schedule runs: each DHKEM's KDF hash (RFC 9180 §7.1;
# Nsecret is its output length), ML-KEM (draft-ietf-hpke-pq: the ML-KEM shared
# secret and ciphertext are HPKE's), the HKDF KDFs (§7.2) and the AEADs (§7.3).
_KEM_HASH: dict[KemId, str | None] = {
    KemId.DHKEM_P256_HKDF_SHA256: "sha256",
    KemId.DHKEM_P384_HKDF_SHA384: "sha384",
    KemId.DHKEM_P521_HKDF_SHA512: "sha512",
    KemId.DHKEM_X25519_HKDF_SHA256: "sha256",
    KemId.ML_KEM_768: None,
    KemId.ML_KEM_1024: None,
}
_KDF_HASH = {KdfId.HKDF_SHA256: "sha256", KdfId.HKDF_SHA384: "sha384", KdfId.HKDF_SHA512: "sha512"}
_AEAD_ALGORITHM = {
    AeadId.AES_128_GCM: AeadAlgorithm.AES_128_GCM,
    AeadId.AES_256_GCM: AeadAlgorithm.AES_256_GCM,
    AeadId.CHACHA20_POLY1305: AeadAlgorithm.CHACHA20_POLY1305,
}


def _enum_member(cls: type[enum.IntEnum], value: int, what: str) -> enum.IntEnum:
    try:
        return cls(value)
    except ValueError:
        raise HPKEUnsupportedSuite(f"unknown HPKE {what} id 0x{value:04x}") from None


@dataclass(frozen=True)
class Suite:
    """An HPKE ciphersuite: (KEM, KDF, AEAD) by their RFC 9180 §7 codepoints."""

    kem: KemId
    kdf: KdfId
    aead: AeadId

    @classmethod
    def from_ids(cls, kem: int, kdf: int, aead: int) -> Suite:
        """The suite of three wire codepoints; unknown ones raise :class:`HPKEUnsupportedSuite`."""
        return cls(
            KemId(_enum_member(KemId, kem, "KEM")),
            KdfId(_enum_member(KdfId, kdf, "KDF")),
            AeadId(_enum_member(AeadId, aead, "AEAD")),
        )

    @property
    def supported(self) -> bool:
        """Whether pyca implements all three parts."""
        return self.kem in _PYCA_KEM and self.kdf in _PYCA_KDF and self.aead in _PYCA_AEAD

    @property
    def enc_length(self) -> int:
        """Nenc, the length of the encapsulated key (RFC 9180 §7.1)."""
        return int(self._kem().enc_length())

    def _kem(self) -> pyca_hpke.KEM:
        try:
            return _PYCA_KEM[self.kem]
        except KeyError:
            raise HPKEUnsupportedSuite(
                f"pyca/cryptography has no HPKE KEM {self.kem.name}"
            ) from None

    @property
    def has_contexts(self) -> bool:
        """Whether quicnet runs this suite's key schedule: contexts, export and AAD work."""
        return self.kem in _KEM_HASH and self.kdf in _KDF_HASH and self.aead in _AEAD_ALGORITHM

    def check(self) -> None:
        """Raise :class:`HPKEUnsupportedSuite` unless the suite can be used at all."""
        self._kem()
        if self.kdf not in _PYCA_KDF:
            raise HPKEUnsupportedSuite(f"pyca/cryptography has no HPKE KDF {self.kdf.name}")
        if self.aead not in _PYCA_AEAD:
            raise HPKEUnsupportedSuite(f"pyca/cryptography has no HPKE AEAD {self.aead.name}")

    def __str__(self) -> str:
        return f"{self.kem.name}/{self.kdf.name}/{self.aead.name}"


#: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM: the suite ECH
#: implementations must support (RFC 9849 §9).
DEFAULT_SUITE = Suite(KemId.DHKEM_X25519_HKDF_SHA256, KdfId.HKDF_SHA256, AeadId.AES_128_GCM)


# -- keys (RFC 9180 §7.1.1-7.1.2 serialization) -------------------------------

_PycaPrivate: TypeAlias = (
    x25519.X25519PrivateKey
    | ec.EllipticCurvePrivateKey
    | mlkem.MLKEM768PrivateKey
    | mlkem.MLKEM1024PrivateKey
    | pyca_hpke.MLKEM768X25519PrivateKey
    | pyca_hpke.MLKEM1024P384PrivateKey
)
_PycaPublic: TypeAlias = (
    x25519.X25519PublicKey
    | ec.EllipticCurvePublicKey
    | mlkem.MLKEM768PublicKey
    | mlkem.MLKEM1024PublicKey
    | pyca_hpke.MLKEM768X25519PublicKey
    | pyca_hpke.MLKEM1024P384PublicKey
)

_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class HpkePublicKey:
    """A recipient's public key ``pkR`` for one KEM."""

    __slots__ = ("_key", "kem")

    def __init__(self, kem: KemId, key: _PycaPublic) -> None:
        self.kem = kem
        self._key = key

    def to_cryptography(self) -> _PycaPublic:
        """The pyca/cryptography key underneath."""
        return self._key

    @classmethod
    def from_bytes(cls, kem: KemId, data: bytes) -> HpkePublicKey:
        """DeserializePublicKey (RFC 9180 §7.1.1); malformed input raises :class:`HPKEKeyError`."""
        data = bytes(data)
        try:
            if kem is KemId.DHKEM_X25519_HKDF_SHA256:
                if len(data) != 32:
                    raise ValueError("X25519 public keys are 32 bytes")
                return cls(kem, x25519.X25519PublicKey.from_public_bytes(data))
            if kem in _EC_CURVES:
                if data[:1] != b"\x04":
                    raise ValueError("DHKEM public keys are uncompressed points")
                return cls(kem, ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[kem], data))
            if kem is KemId.ML_KEM_768:
                return cls(kem, mlkem.MLKEM768PublicKey.from_public_bytes(data))
            if kem is KemId.ML_KEM_1024:
                return cls(kem, mlkem.MLKEM1024PublicKey.from_public_bytes(data))
        except ValueError as exc:
            raise HPKEKeyError(f"malformed {kem.name} public key: {exc}") from None
        raise HPKEUnsupportedSuite(f"pyca/cryptography cannot decode {kem.name} public keys")

    def to_bytes(self) -> bytes:
        """SerializePublicKey (RFC 9180 §7.1.1)."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePublicKey):
            return key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        if isinstance(
            key, (x25519.X25519PublicKey, mlkem.MLKEM768PublicKey, mlkem.MLKEM1024PublicKey)
        ):
            return key.public_bytes(*_RAW)
        raise HPKEUnsupportedSuite(f"pyca/cryptography cannot encode {self.kem.name} public keys")


class HpkePrivateKey:
    """A recipient's private key ``skR`` for one KEM."""

    __slots__ = ("_key", "kem")

    def __init__(self, kem: KemId, key: _PycaPrivate) -> None:
        self.kem = kem
        self._key = key

    def to_cryptography(self) -> _PycaPrivate:
        """The pyca/cryptography key underneath."""
        return self._key

    @classmethod
    def from_pem(cls, pem: bytes) -> HpkePrivateKey:
        """A PKCS#8 ``PRIVATE KEY`` of an X25519 or NIST-curve DHKEM (an ECH key file's form)."""
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise HPKEKeyError(f"cannot read the HPKE private key: {exc}") from None
        if isinstance(key, x25519.X25519PrivateKey):
            return cls(KemId.DHKEM_X25519_HKDF_SHA256, key)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            for kem, curve in _EC_CURVES.items():
                if key.curve.name == curve.name:
                    return cls(kem, key)
        raise HPKEKeyError(f"a {type(key).__name__} is not a DHKEM private key")

    def to_pem(self) -> bytes:
        """PKCS#8 ``PRIVATE KEY``, unencrypted (what :meth:`from_pem` reads)."""
        key = self._key
        if not isinstance(key, x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise HPKEUnsupportedSuite(f"{self.kem.name} keys have no PEM form here")
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def generate(cls, kem: KemId = KemId.DHKEM_X25519_HKDF_SHA256) -> HpkePrivateKey:
        """A fresh key pair for ``kem`` (RFC 9180 §4 GenerateKeyPair)."""
        key: _PycaPrivate
        if kem is KemId.DHKEM_X25519_HKDF_SHA256:
            key = x25519.X25519PrivateKey.generate()
        elif kem in _EC_CURVES:
            key = ec.generate_private_key(_EC_CURVES[kem])
        elif kem is KemId.ML_KEM_768:
            key = mlkem.MLKEM768PrivateKey.generate()
        elif kem is KemId.ML_KEM_1024:
            key = mlkem.MLKEM1024PrivateKey.generate()
        elif kem is KemId.MLKEM768_X25519:
            key = pyca_hpke.MLKEM768X25519PrivateKey(
                mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
            )
        elif kem is KemId.MLKEM1024_P384:
            key = pyca_hpke.MLKEM1024P384PrivateKey(
                mlkem.MLKEM1024PrivateKey.generate(), ec.generate_private_key(ec.SECP384R1())
            )
        else:
            raise HPKEUnsupportedSuite(f"pyca/cryptography has no HPKE KEM {kem.name}")
        return cls(kem, key)

    @classmethod
    def from_bytes(cls, kem: KemId, data: bytes) -> HpkePrivateKey:
        """DeserializePrivateKey (RFC 9180 §7.1.2); ML-KEM keys are the 64-byte seed."""
        data = bytes(data)
        try:
            if kem is KemId.DHKEM_X25519_HKDF_SHA256:
                if len(data) != 32:
                    raise ValueError("X25519 private keys are 32 bytes")
                return cls(kem, x25519.X25519PrivateKey.from_private_bytes(data))
            if kem in _EC_CURVES:
                if len(data) != _EC_NSK[kem]:
                    raise ValueError(f"{kem.name} private keys are {_EC_NSK[kem]} bytes")
                scalar = int.from_bytes(data, "big")
                return cls(kem, ec.derive_private_key(scalar, _EC_CURVES[kem]))
            if kem is KemId.ML_KEM_768:
                return cls(kem, mlkem.MLKEM768PrivateKey.from_seed_bytes(data))
            if kem is KemId.ML_KEM_1024:
                return cls(kem, mlkem.MLKEM1024PrivateKey.from_seed_bytes(data))
        except ValueError as exc:
            raise HPKEKeyError(f"malformed {kem.name} private key: {exc}") from None
        raise HPKEUnsupportedSuite(f"pyca/cryptography cannot decode {kem.name} private keys")

    def to_bytes(self) -> bytes:
        """SerializePrivateKey (RFC 9180 §7.1.2)."""
        key = self._key
        if isinstance(key, x25519.X25519PrivateKey):
            return key.private_bytes_raw()
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.private_numbers().private_value.to_bytes(_EC_NSK[self.kem], "big")
        if isinstance(key, (mlkem.MLKEM768PrivateKey, mlkem.MLKEM1024PrivateKey)):
            return key.private_bytes_raw()
        raise HPKEUnsupportedSuite(f"pyca/cryptography cannot encode {self.kem.name} private keys")

    def public_key(self) -> HpkePublicKey:
        """The matching ``pkR``."""
        return HpkePublicKey(self.kem, self._key.public_key())


def _check_kem(suite: Suite, kem: KemId, what: str) -> None:
    if kem is not suite.kem:
        raise HPKEKeyError(f"{what} is a {kem.name} key, the suite needs {suite.kem.name}")


# -- the KEMs (RFC 9180 §4.1; ML-KEM as draft-ietf-hpke-pq uses it) -------------

_VERSION = b"HPKE-v1"


def _labeled_extract(h: str, suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    # RFC 9180 §4: an empty salt is HashLen zeros, as HKDF-Extract has it.
    return hkdf_extract(h, salt, _VERSION + suite_id + label + ikm)


def _labeled_expand(
    h: str, suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int
) -> bytes:
    labeled = length.to_bytes(2, "big") + _VERSION + suite_id + label + info
    return hkdf_expand(h, prk, labeled, length)


def _dh(private: _PycaPrivate, public: _PycaPublic) -> bytes:
    """DH(sk, pk) (§4.1): X25519, or the ECDH x-coordinate; ValueError when it fails."""
    if isinstance(private, x25519.X25519PrivateKey) and isinstance(public, x25519.X25519PublicKey):
        return private.exchange(public)  # ValueError on an all-zero output (§7.1.4)
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
        public, ec.EllipticCurvePublicKey
    ):
        return private.exchange(ec.ECDH(), public)
    raise ValueError("the two keys are not of one DHKEM")


def _extract_and_expand(kem: KemId, dh: bytes, kem_context: bytes) -> bytes:
    """DHKEM's ExtractAndExpand (§4.1), over the KEM's own HKDF; Nsecret = its hash length."""
    h = _KEM_HASH[kem]
    assert h is not None
    suite_id = b"KEM" + kem.to_bytes(2, "big")
    prk = _labeled_extract(h, suite_id, b"", b"eae_prk", dh)
    return _labeled_expand(h, suite_id, prk, b"shared_secret", kem_context, digest_size(h))


def _encap(pk_r: HpkePublicKey) -> tuple[bytes, bytes]:
    """Encap(pkR): ``(shared_secret, enc)`` with a fresh ephemeral key."""
    key = pk_r.to_cryptography()
    if isinstance(key, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey):
        return key.encapsulate()  # enc is the ML-KEM ciphertext
    ephemeral = HpkePrivateKey.generate(pk_r.kem)
    enc = ephemeral.public_key().to_bytes()
    try:
        dh = _dh(ephemeral.to_cryptography(), key)
    except ValueError as exc:  # EncapError
        raise HPKEError(f"HPKE Encap failed ({pk_r.kem.name}): {exc}") from None
    return _extract_and_expand(pk_r.kem, dh, enc + pk_r.to_bytes()), enc


def _decap(enc: bytes, sk_r: HpkePrivateKey) -> bytes:
    """Decap(enc, skR); a malformed ``enc`` or a failed DH is :class:`HPKEDecryptError`."""
    key = sk_r.to_cryptography()
    try:
        if isinstance(key, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
            return key.decapsulate(enc)
        dh = _dh(key, HpkePublicKey.from_bytes(sk_r.kem, enc).to_cryptography())
    except (ValueError, HPKEKeyError):  # DecapError
        raise HPKEDecryptError(f"HPKE Decap failed: enc is not a {sk_r.kem.name} key") from None
    return _extract_and_expand(sk_r.kem, dh, enc + sk_r.public_key().to_bytes())


# -- the key schedule and contexts (RFC 9180 §5.1-5.3) ---------------------------


def _suite_id(suite: Suite) -> bytes:
    return b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (suite.kem, suite.kdf, suite.aead))


def _key_schedule(suite: Suite, shared_secret: bytes, info: bytes) -> tuple[Aead, bytes]:
    """KeySchedule for mode_base (§5.1): no PSK, an empty psk_id. (AEAD, exporter_secret)."""
    h, suite_id = _KDF_HASH[suite.kdf], _suite_id(suite)
    psk_id_hash = _labeled_extract(h, suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(h, suite_id, b"", b"info_hash", info)
    context = bytes((Mode.BASE,)) + psk_id_hash + info_hash
    secret = _labeled_extract(h, suite_id, shared_secret, b"secret", b"")
    algorithm = _AEAD_ALGORITHM[suite.aead]
    key = _labeled_expand(h, suite_id, secret, b"key", context, algorithm.key_length)
    base_nonce = _labeled_expand(h, suite_id, secret, b"base_nonce", context, algorithm.iv_length)
    exporter_secret = _labeled_expand(h, suite_id, secret, b"exp", context, digest_size(h))
    return Aead(algorithm, key, base_nonce), exporter_secret


class _Context:
    """What both ends of an HPKE context share: the AEAD, the sequence number, Export."""

    __slots__ = ("_aead", "_exporter_secret", "_seq", "suite")

    def __init__(self, suite: Suite, aead: Aead, exporter_secret: bytes) -> None:
        self.suite = suite
        self._aead = aead
        self._exporter_secret = exporter_secret
        self._seq = 0

    @property
    def sequence_number(self) -> int:
        """The sequence number the next seal or open uses (§5.2)."""
        return self._seq

    def _check_limit(self) -> None:
        # §5.2: the nonce is Nn bytes; the last sequence number is never used.
        if self._seq >= (1 << (8 * self._aead.algorithm.iv_length)) - 1:
            raise HPKEError("HPKE message limit reached")

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """Context.Export (§5.3): ``length`` secret bytes bound to ``exporter_context``."""
        h = _KDF_HASH[self.suite.kdf]
        if not 0 <= length <= 255 * digest_size(h):
            raise HPKEError(f"an HPKE export is 0 to {255 * digest_size(h)} bytes, not {length}")
        return _labeled_expand(
            h, _suite_id(self.suite), self._exporter_secret, b"sec", bytes(exporter_context), length
        )


class SenderContext(_Context):
    """The sender's context (§5.2), from :func:`setup_base_sender`."""

    __slots__ = ()

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Context.Seal: encrypt at the current sequence number, then advance it."""
        self._check_limit()
        ciphertext = self._aead.seal(self._seq, bytes(plaintext), bytes(aad))
        self._seq += 1
        return ciphertext


class ReceiverContext(_Context):
    """The recipient's context (§5.2), from :func:`setup_base_receiver`."""

    __slots__ = ()

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """Context.Open; :class:`HPKEDecryptError` leaves the sequence number where it was."""
        self._check_limit()
        try:
            plaintext = self._aead.open(self._seq, bytes(ciphertext), bytes(aad))
        except DecryptError:
            raise HPKEDecryptError(f"HPKE open failed ({self.suite})") from None
        self._seq += 1
        return plaintext


def _needs_contexts(suite: Suite, what: str) -> None:
    suite.check()
    if not suite.has_contexts:
        raise HPKEUnsupportedError(
            f"{what}: {suite} runs on pyca/cryptography's single-shot HPKE, "
            "which has no encryption context"
        )


def setup_base_sender(
    pk_r: HpkePublicKey, info: bytes, suite: Suite = DEFAULT_SUITE
) -> tuple[bytes, SenderContext]:
    """SetupBaseS (RFC 9180 §5.1.1): ``(enc, context)``, before anything is sealed."""
    _check_kem(suite, pk_r.kem, "pk_r")
    _needs_contexts(suite, "SetupBaseS")
    shared_secret, enc = _encap(pk_r)
    return enc, SenderContext(suite, *_key_schedule(suite, shared_secret, bytes(info)))


def setup_base_receiver(
    enc: bytes, sk_r: HpkePrivateKey, info: bytes, suite: Suite = DEFAULT_SUITE
) -> ReceiverContext:
    """SetupBaseR (RFC 9180 §5.1.1); an ``enc`` that is no key is :class:`HPKEDecryptError`."""
    _check_kem(suite, sk_r.kem, "sk_r")
    _needs_contexts(suite, "SetupBaseR")
    enc = _checked_enc(suite, enc)
    shared_secret = _decap(enc, sk_r)
    return ReceiverContext(suite, *_key_schedule(suite, shared_secret, bytes(info)))


def _checked_enc(suite: Suite, enc: bytes) -> bytes:
    enc = bytes(enc)
    if len(enc) != suite.enc_length:
        raise HPKEDecryptError(
            f"enc is {len(enc)} bytes, {suite.kem.name} needs {suite.enc_length}"
        )
    return enc


# -- single-shot API (RFC 9180 §6.1) -------------------------------------------


def _pyca_suite(suite: Suite, aad: bytes) -> pyca_hpke.Suite:
    """pyca's single-shot suite, for the suites quicnet has no key schedule for."""
    if aad:
        raise HPKEUnsupportedError(
            f"{suite} runs on pyca/cryptography's single-shot HPKE, whose API takes no AAD"
        )
    return pyca_hpke.Suite(_PYCA_KEM[suite.kem], _PYCA_KDF[suite.kdf], _PYCA_AEAD[suite.aead])


def seal_base(
    pk_r: HpkePublicKey,
    plaintext: bytes,
    *,
    info: bytes = b"",
    aad: bytes = b"",
    suite: Suite = DEFAULT_SUITE,
) -> tuple[bytes, bytes]:
    """SealBase: encrypt ``plaintext`` to ``pk_r``; returns ``(enc, ct)``."""
    _check_kem(suite, pk_r.kem, "pk_r")
    suite.check()
    if suite.has_contexts:
        enc, context = setup_base_sender(pk_r, info, suite)
        return enc, context.seal(aad, plaintext)
    pyca_suite = _pyca_suite(suite, bytes(aad))
    try:
        out = pyca_suite.encrypt(bytes(plaintext), pk_r.to_cryptography(), info=bytes(info))
    except ValueError as exc:
        raise HPKEError(f"HPKE seal failed ({suite}): {exc}") from None
    return out[: suite.enc_length], out[suite.enc_length :]


def open_base(
    enc: bytes,
    sk_r: HpkePrivateKey,
    ciphertext: bytes,
    *,
    info: bytes = b"",
    aad: bytes = b"",
    suite: Suite = DEFAULT_SUITE,
) -> bytes:
    """OpenBase: decrypt; any mismatch raises :class:`HPKEDecryptError`."""
    _check_kem(suite, sk_r.kem, "sk_r")
    suite.check()
    if suite.has_contexts:
        return setup_base_receiver(enc, sk_r, info, suite).open(aad, ciphertext)
    pyca_suite = _pyca_suite(suite, bytes(aad))
    data = _checked_enc(suite, enc) + bytes(ciphertext)
    try:
        return pyca_suite.decrypt(data, sk_r.to_cryptography(), info=bytes(info))
    except (InvalidTag, ValueError) as exc:
        raise HPKEDecryptError(f"HPKE open failed ({suite})") from exc
