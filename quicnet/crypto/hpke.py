"""HPKE (RFC 9180) as a typed API over pyca/cryptography's ``hpke`` module.

What pyca offers, and so what this module offers:

* **Base mode only** (RFC 9180 §5.1.1). pyca has no PSK, Auth or AuthPSK
  mode, so neither has quicnet; :class:`Mode` names them so a peer's choice
  can be reported as unsupported.
* **Single-shot** seal and open (RFC 9180 §6.1): :func:`seal_base` and
  :func:`open_base`. pyca draws the ephemeral key inside each encryption and
  keeps no context, so there is no multi-message context, no ``Export``
  (§5.3), and the sender cannot learn ``enc`` before sealing.
  :func:`setup_base_receiver` returns a context whose first :meth:`open
  <ReceiverContext.open>` (sequence number 0) works; a second open, an export
  and :func:`setup_base_sender` raise :class:`HPKEUnsupportedError`.
* The suites of :data:`SUPPORTED_KEMS`, :data:`SUPPORTED_KDFS` and
  :data:`SUPPORTED_AEADS`. DHKEM(X448) and the export-only AEAD are
  registered codepoints pyca lacks.

AAD: pyca's public ``Suite.encrypt``/``decrypt`` take ``info`` but no AAD
(pyca issue 15292). pyca's Rust module carries typed ``_encrypt_with_aad`` /
``_decrypt_with_aad``; a non-empty ``aad`` goes through them, isolated in
:func:`_aad_function`, and gives :class:`HPKEUnsupportedError`
if a pyca release drops them. An empty ``aad`` uses only the public API.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeAlias, cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke as pyca_hpke
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519

from quicnet.crypto.errors import CryptoError, DecodeError, DecryptError, UnsupportedAlgorithmError

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
    """A mode or operation pyca/cryptography does not offer."""


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

    def _pyca(self) -> pyca_hpke.Suite:
        kem = self._kem()
        if self.kdf not in _PYCA_KDF:
            raise HPKEUnsupportedSuite(f"pyca/cryptography has no HPKE KDF {self.kdf.name}")
        if self.aead not in _PYCA_AEAD:
            raise HPKEUnsupportedSuite(f"pyca/cryptography has no HPKE AEAD {self.aead.name}")
        return pyca_hpke.Suite(kem, _PYCA_KDF[self.kdf], _PYCA_AEAD[self.aead])

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


# -- pyca calls ---------------------------------------------------------------


def _aad_function(name: str) -> Callable[..., bytes]:
    """pyca's typed-but-private AAD entry point (see the module docstring)."""
    function = getattr(rust_openssl.hpke, name, None)
    if function is None:
        raise HPKEUnsupportedError("this pyca/cryptography has no HPKE AAD")
    return cast("Callable[..., bytes]", function)


def _pyca_seal(suite: Suite, pk: HpkePublicKey, info: bytes, aad: bytes, pt: bytes) -> bytes:
    pyca_suite = suite._pyca()
    seal = _aad_function("_encrypt_with_aad") if aad else None
    try:
        if seal is None:
            return pyca_suite.encrypt(pt, pk._key, info=info)
        return seal(pyca_suite, pt, pk._key, info=info, aad=aad)
    except ValueError as exc:
        raise HPKEError(f"HPKE seal failed ({suite}): {exc}") from None


def _pyca_open(suite: Suite, sk: HpkePrivateKey, info: bytes, aad: bytes, data: bytes) -> bytes:
    pyca_suite = suite._pyca()
    open_ = _aad_function("_decrypt_with_aad") if aad else None
    try:
        if open_ is None:
            return pyca_suite.decrypt(data, sk._key, info=info)
        return open_(pyca_suite, data, sk._key, info=info, aad=aad)
    except (InvalidTag, ValueError) as exc:
        raise HPKEDecryptError(f"HPKE open failed ({suite})") from exc


# -- single-shot API (RFC 9180 §6.1) -------------------------------------------


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
    out = _pyca_seal(suite, pk_r, bytes(info), bytes(aad), bytes(plaintext))
    n = suite.enc_length
    return out[:n], out[n:]


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
    enc = bytes(enc)
    if len(enc) != suite.enc_length:
        raise HPKEDecryptError(
            f"enc is {len(enc)} bytes, {suite.kem.name} needs {suite.enc_length}"
        )
    return _pyca_open(suite, sk_r, bytes(info), bytes(aad), enc + bytes(ciphertext))


# -- context API (RFC 9180 §5.1-5.3), as far as pyca allows -------------------

_NO_CONTEXT = "pyca/cryptography offers single-shot HPKE only (no encryption context): {what}"


class SenderContext:
    """RFC 9180 §5.2 sender context. pyca cannot provide one (see module doc)."""

    def seal(self, aad: bytes, plaintext: bytes) -> bytes:
        """Context.Seal; unavailable over pyca."""
        raise HPKEUnsupportedError(_NO_CONTEXT.format(what="Seal"))

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """Context.Export; unavailable over pyca."""
        raise HPKEUnsupportedError(_NO_CONTEXT.format(what="Export"))


def setup_base_sender(
    pk_r: HpkePublicKey, info: bytes, suite: Suite = DEFAULT_SUITE
) -> tuple[bytes, SenderContext]:
    """SetupBaseS (RFC 9180 §5.1.1): returns ``(enc, context)``.

    Always raises :class:`HPKEUnsupportedError` over pyca/cryptography, whose
    HPKE draws ``enc`` inside each encryption: use :func:`seal_base`.
    """
    _check_kem(suite, pk_r.kem, "pk_r")
    suite._pyca()
    raise HPKEUnsupportedError(_NO_CONTEXT.format(what="SetupBaseS before Seal"))


class ReceiverContext:
    """RFC 9180 §5.2 receiver context over pyca's single-shot open.

    The first :meth:`open` (sequence number 0) is OpenBase; pyca keeps no
    context, so later ones and :meth:`export` raise :class:`HPKEUnsupportedError`.
    """

    __slots__ = ("_enc", "_info", "_sk", "_used", "suite")

    def __init__(self, suite: Suite, enc: bytes, sk_r: HpkePrivateKey, info: bytes) -> None:
        self.suite = suite
        self._enc = enc
        self._sk = sk_r
        self._info = info
        self._used = False

    def open(self, aad: bytes, ciphertext: bytes) -> bytes:
        """Context.Open at sequence number 0; :class:`HPKEDecryptError` on failure."""
        if self._used:
            raise HPKEUnsupportedError(_NO_CONTEXT.format(what="Open at sequence number > 0"))
        plaintext = open_base(
            self._enc, self._sk, ciphertext, info=self._info, aad=aad, suite=self.suite
        )
        self._used = True
        return plaintext

    def export(self, exporter_context: bytes, length: int) -> bytes:
        """Context.Export; unavailable over pyca."""
        raise HPKEUnsupportedError(_NO_CONTEXT.format(what="Export"))


def setup_base_receiver(
    enc: bytes, sk_r: HpkePrivateKey, info: bytes, suite: Suite = DEFAULT_SUITE
) -> ReceiverContext:
    """SetupBaseR (RFC 9180 §5.1.1) as far as pyca allows (see :class:`ReceiverContext`)."""
    _check_kem(suite, sk_r.kem, "sk_r")
    enc = bytes(enc)
    if len(enc) != suite.enc_length:
        raise HPKEDecryptError(
            f"enc is {len(enc)} bytes, {suite.kem.name} needs {suite.enc_length}"
        )
    return ReceiverContext(suite, enc, sk_r, bytes(info))
