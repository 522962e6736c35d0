"""Private and public keys: generate, load, save, sign and verify.

Keys are addressed by OpenSSL's algorithm names (``Ed25519``, ``EC``,
``RSA``, ``ML-DSA-65``, ...); signatures by TLS SignatureScheme, so the TLS
engine and certificate code never deal with padding or hash objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypeAlias, cast

from cryptography.exceptions import InternalError as _PycaInternalError
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _PycaUnsupported
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import (
    ec,
    ed448,
    ed25519,
    mldsa,
    mlkem,
    padding,
    rsa,
    x448,
    x25519,
)

from quicnet.crypto.errors import (
    DecodeError,
    InvalidSignatureError,
    PassphraseError,
    UnsupportedAlgorithmError,
)
from quicnet.crypto.hashes import digest, hash_algorithm
from quicnet.crypto.pem import is_pem, pem_blocks
from quicnet.crypto.signing import SCHEME_INFO, SignatureScheme

__all__ = [
    "KEY_ALGORITHMS",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "load_private_key",
    "load_public_key",
]

PycaPrivateKey: TypeAlias = (
    ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | ec.EllipticCurvePrivateKey
    | rsa.RSAPrivateKey
    | x25519.X25519PrivateKey
    | x448.X448PrivateKey
    | mlkem.MLKEM768PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
)
PycaPublicKey: TypeAlias = (
    ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | ec.EllipticCurvePublicKey
    | rsa.RSAPublicKey
    | x25519.X25519PublicKey
    | x448.X448PublicKey
    | mlkem.MLKEM768PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
)
_RawSigner: TypeAlias = (
    ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | mldsa.MLDSA44PrivateKey
    | mldsa.MLDSA65PrivateKey
    | mldsa.MLDSA87PrivateKey
)
_RawVerifier: TypeAlias = (
    ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
    | mldsa.MLDSA44PublicKey
    | mldsa.MLDSA65PublicKey
    | mldsa.MLDSA87PublicKey
)
Encoding = Literal["PEM", "DER"]

#: Algorithm names :func:`generate_private_key` accepts (OpenSSL's spelling).
KEY_ALGORITHMS = (
    "Ed25519",
    "Ed448",
    "X25519",
    "X448",
    "EC",
    "RSA",
    "ML-KEM-768",
    "ML-DSA-44",
    "ML-DSA-65",
    "ML-DSA-87",
)
_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}
_CURVE_ALIASES = {
    "p-256": "P-256", "p256": "P-256", "prime256v1": "P-256", "secp256r1": "P-256",
    "p-384": "P-384", "p384": "P-384", "secp384r1": "P-384",
    "p-521": "P-521", "p521": "P-521", "secp521r1": "P-521",
}  # fmt: skip
_CURVE_BY_PYCA = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192


def normalize_curve(name: str) -> str:
    """``prime256v1``/``secp256r1``/``P-256`` -> ``P-256``."""
    try:
        return _CURVE_ALIASES[name.lower()]
    except KeyError:
        raise UnsupportedAlgorithmError(
            f"unsupported curve {name!r}; use P-256, P-384 or P-521"
        ) from None


#: ``_algorithm_of`` by concrete pyca class: the match below walks abstract classes
#: (an ABC instance check each), a dictionary look-up does not.
_ALGORITHM_BY_TYPE: dict[type, str] = {}


def _algorithm_of(key: PycaPrivateKey | PycaPublicKey) -> str:
    algorithm = _ALGORITHM_BY_TYPE.get(type(key))
    if algorithm is None:
        algorithm = _match_algorithm(key)
        _ALGORITHM_BY_TYPE[type(key)] = algorithm
    return algorithm


def _match_algorithm(key: PycaPrivateKey | PycaPublicKey) -> str:
    match key:
        case ed25519.Ed25519PrivateKey() | ed25519.Ed25519PublicKey():
            return "Ed25519"
        case ed448.Ed448PrivateKey() | ed448.Ed448PublicKey():
            return "Ed448"
        case x25519.X25519PrivateKey() | x25519.X25519PublicKey():
            return "X25519"
        case x448.X448PrivateKey() | x448.X448PublicKey():
            return "X448"
        case ec.EllipticCurvePrivateKey() | ec.EllipticCurvePublicKey():
            return "EC"
        case rsa.RSAPrivateKey() | rsa.RSAPublicKey():
            return "RSA"
        case mlkem.MLKEM768PrivateKey() | mlkem.MLKEM768PublicKey():
            return "ML-KEM-768"
        case mldsa.MLDSA44PrivateKey() | mldsa.MLDSA44PublicKey():
            return "ML-DSA-44"
        case mldsa.MLDSA65PrivateKey() | mldsa.MLDSA65PublicKey():
            return "ML-DSA-65"
        case mldsa.MLDSA87PrivateKey() | mldsa.MLDSA87PublicKey():
            return "ML-DSA-87"
    raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")


_KEY_FAMILY = {
    "Ed25519": "ed25519", "Ed448": "ed448", "EC": "ec", "RSA": "rsa",
    "ML-DSA-44": "ml-dsa-44", "ML-DSA-65": "ml-dsa-65", "ML-DSA-87": "ml-dsa-87",
}  # fmt: skip
#: Algorithms whose keys sign the message itself (no hash or padding to choose).
#: ECDSA with each hash, by hash name: pyca's signature-algorithm object is a constant of
#: the hash, made once (its ``__init__`` runs Python code on every call).
_ECDSA: dict[str, ec.ECDSA] = {}


def _ecdsa(hash_name: str) -> ec.ECDSA:
    algorithm = _ECDSA.get(hash_name)
    if algorithm is None:
        algorithm = _ECDSA[hash_name] = ec.ECDSA(hash_algorithm(hash_name))
    return algorithm


_SIGNS_RAW = frozenset({"Ed25519", "Ed448", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"})
_RSA_SCHEMES = (
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)


#: ``signature_schemes`` by (algorithm, curve): a few entries, computed on first use.
_SCHEMES: dict[tuple[str, str | None], tuple[SignatureScheme, ...]] = {}
#: Every scheme by value (a dict look-up; ``SignatureScheme(value)`` is two Python calls).
_SCHEMES_BY_VALUE: dict[int, SignatureScheme] = {int(s): s for s in SignatureScheme}


class _KeyBase:
    """What private and public keys share: the algorithm description."""

    __slots__ = ("algorithm", "curve", "key_size")

    algorithm: str
    curve: str | None
    key_size: int

    def _describe(self, key: PycaPrivateKey | PycaPublicKey) -> None:
        self.algorithm = algorithm = _algorithm_of(key)
        self.curve = None
        self.key_size = 0
        if algorithm == "EC":
            curve = cast("ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey", key).curve
            if curve.name not in _CURVE_BY_PYCA:
                raise UnsupportedAlgorithmError(f"unsupported curve {curve.name}")
            self.curve = _CURVE_BY_PYCA[curve.name]
            self.key_size = curve.key_size
        elif algorithm == "RSA":
            self.key_size = cast("rsa.RSAPrivateKey | rsa.RSAPublicKey", key).key_size

    @property
    def description(self) -> str:
        """``EC P-256``, ``RSA 3072``, ``Ed25519``: for humans."""
        if self.curve:
            return f"{self.algorithm} {self.curve}"
        if self.algorithm == "RSA":
            return f"RSA {self.key_size}"
        return self.algorithm

    @property
    def can_sign(self) -> bool:
        return self.algorithm in _KEY_FAMILY

    @property
    def signature_schemes(self) -> tuple[SignatureScheme, ...]:
        """Schemes this key can make or check, best first (empty for KEM/ECDH keys)."""
        schemes = _SCHEMES.get((self.algorithm, self.curve))
        if schemes is None:
            family = _KEY_FAMILY.get(self.algorithm)
            if family == "rsa":
                schemes = _RSA_SCHEMES
            else:
                schemes = tuple(
                    s
                    for s, info in SCHEME_INFO.items()
                    if info.key_family == family
                    and (info.curve is None or info.curve == self.curve)
                )
            _SCHEMES[(self.algorithm, self.curve)] = schemes
        return schemes

    def _check_scheme(self, scheme: int) -> SignatureScheme:
        s = _SCHEMES_BY_VALUE.get(scheme)  # not SignatureScheme(scheme): two Python calls
        if s is None:
            raise UnsupportedAlgorithmError(f"unknown signature scheme 0x{scheme:04x}")
        if s not in self.signature_schemes:
            raise UnsupportedAlgorithmError(f"a {self.description} key cannot use {s.name}")
        return s


def _rsa_padding(scheme: SignatureScheme) -> padding.AsymmetricPadding:
    info = SCHEME_INFO[scheme]
    if info.padding == "pkcs1":
        return padding.PKCS1v15()
    assert info.hash_name is not None
    # RFC 8446 §4.2.3: salt length equals the digest length.
    return padding.PSS(padding.MGF1(hash_algorithm(info.hash_name)), padding.PSS.DIGEST_LENGTH)


class PublicKey(_KeyBase):
    """A public key of any supported algorithm."""

    __slots__ = ("_der", "_key")

    def __init__(self, key: PycaPublicKey) -> None:
        self._describe(key)
        self._key = key
        self._der: bytes | None = None  # made on first use (keys are immutable)

    def to_cryptography(self) -> PycaPublicKey:
        """The pyca/cryptography key underneath.

        For :mod:`quicnet.crypto`'s own modules, which hand keys to pyca's
        X.509, OCSP and PKCS#12 builders; code above the toolkit has no need of it.
        """
        return self._key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.to_der() == other.to_der()

    def __hash__(self) -> int:
        return hash(self.to_der())

    def __repr__(self) -> str:
        return f"<PublicKey {self.description} {self.fingerprint().hex()[:16]}>"

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo, DER."""
        der = self._der
        if der is None:
            der = self._der = self._key.public_bytes(
                ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo
            )
        return der

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo, PEM (``BEGIN PUBLIC KEY``)."""
        return self._key.public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo)

    def raw_bytes(self) -> bytes:
        """The bare key: the point for EC (uncompressed), the raw bytes for the rest."""
        k = self._key
        if isinstance(k, ec.EllipticCurvePublicKey):
            return k.public_bytes(ser.Encoding.X962, ser.PublicFormat.UncompressedPoint)
        if isinstance(k, rsa.RSAPublicKey):
            return self.to_der()
        return k.public_bytes_raw()

    def fingerprint(self, hash_name: str = "sha256") -> bytes:
        """Hash of the SubjectPublicKeyInfo DER (what a public-key pin names)."""
        return digest(hash_name, self.to_der())

    def verify(self, scheme: int, signature: bytes, data: bytes) -> None:
        """Raise :class:`InvalidSignatureError` unless ``signature`` is valid for ``data``."""
        s = self._check_scheme(scheme)
        info = SCHEME_INFO[s]
        k = self._key
        algorithm = self.algorithm  # a string compare; isinstance on pyca's ABCs is slow
        try:
            if algorithm == "RSA":
                assert info.hash_name is not None
                cast("rsa.RSAPublicKey", k).verify(
                    signature, data, _rsa_padding(s), hash_algorithm(info.hash_name)
                )
            elif algorithm == "EC":
                assert info.hash_name is not None
                cast("ec.EllipticCurvePublicKey", k).verify(signature, data, _ecdsa(info.hash_name))
            elif algorithm in _SIGNS_RAW:
                cast("_RawVerifier", k).verify(signature, data)
            else:  # pragma: no cover - _check_scheme rejects non-signing keys
                raise UnsupportedAlgorithmError(f"{self.description} keys do not sign")
        except InvalidSignature:
            raise InvalidSignatureError(f"{s.name} signature does not verify") from None

    def to_text(self) -> str:
        """A human-readable dump, as ``openssl pkey -pubin -text`` prints."""
        from quicnet.crypto.text import public_key_text

        return public_key_text(self)


class PrivateKey(_KeyBase):
    """A private key of any supported algorithm."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: PycaPrivateKey) -> None:
        self._describe(key)
        self._key = key
        self._public: PublicKey | None = None  # made on first use (keys are immutable)

    def to_cryptography(self) -> PycaPrivateKey:
        """The pyca/cryptography key underneath (see :meth:`PublicKey.to_cryptography`)."""
        return self._key

    def __repr__(self) -> str:
        return f"<PrivateKey {self.description}>"

    def public_key(self) -> PublicKey:
        """The matching public key."""
        public = self._public
        if public is None:
            public = self._public = PublicKey(self._key.public_key())
        return public

    def sign(self, scheme: int, data: bytes) -> bytes:
        """Sign ``data`` with the TLS signature scheme ``scheme``."""
        s = self._check_scheme(scheme)
        info = SCHEME_INFO[s]
        k = self._key
        algorithm = self.algorithm
        if algorithm == "RSA":
            assert info.hash_name is not None
            return cast("rsa.RSAPrivateKey", k).sign(
                data, _rsa_padding(s), hash_algorithm(info.hash_name)
            )
        if algorithm == "EC":
            assert info.hash_name is not None
            return cast("ec.EllipticCurvePrivateKey", k).sign(data, _ecdsa(info.hash_name))
        if algorithm in _SIGNS_RAW:
            return cast("_RawSigner", k).sign(data)
        raise UnsupportedAlgorithmError(f"{self.description} keys do not sign")  # pragma: no cover

    def default_signature_scheme(self) -> SignatureScheme:
        """The scheme to sign certificates with: the first this key supports."""
        schemes = self.signature_schemes
        if not schemes:
            raise UnsupportedAlgorithmError(f"{self.description} keys do not sign")
        return schemes[0]

    def to_der(self, password: bytes | None = None) -> bytes:
        """PKCS#8 DER, encrypted (PBES2, AES-256-CBC) when ``password`` is given."""
        return self._private_bytes(ser.Encoding.DER, password)

    def to_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM (``BEGIN PRIVATE KEY`` or ``BEGIN ENCRYPTED PRIVATE KEY``)."""
        return self._private_bytes(ser.Encoding.PEM, password)

    def _private_bytes(self, encoding: ser.Encoding, password: bytes | None) -> bytes:
        enc: ser.KeySerializationEncryption = (
            ser.BestAvailableEncryption(password) if password else ser.NoEncryption()
        )
        return self._key.private_bytes(encoding, ser.PrivateFormat.PKCS8, enc)

    def to_text(self) -> str:
        """A human-readable dump, as ``openssl pkey -text`` prints.

        It includes the private value: treat the text as a secret.
        """
        from quicnet.crypto.text import private_key_text

        return private_key_text(self)


def generate_private_key(
    algorithm: str, *, curve: str = "P-256", rsa_bits: int = 2048
) -> PrivateKey:
    """A new private key. ``algorithm`` is one of :data:`KEY_ALGORITHMS` (any case).

    ``curve`` applies to ``EC``; ``rsa_bits`` (2048-8192) to ``RSA``.
    """
    name = algorithm.upper().replace("_", "-")
    key: PycaPrivateKey
    if name == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif name == "ED448":
        key = ed448.Ed448PrivateKey.generate()
    elif name == "X25519":
        key = x25519.X25519PrivateKey.generate()
    elif name == "X448":
        key = x448.X448PrivateKey.generate()
    elif name in ("EC", "ECDSA"):
        key = ec.generate_private_key(_CURVES[normalize_curve(curve)]())
    elif name == "RSA":
        if not RSA_MIN_BITS <= rsa_bits <= RSA_MAX_BITS:
            raise UnsupportedAlgorithmError(
                f"RSA keys must have {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, not {rsa_bits}"
            )
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif name in ("ML-KEM-768", "MLKEM768"):
        key = mlkem.MLKEM768PrivateKey.generate()
    elif name in ("ML-DSA-44", "MLDSA44"):
        key = mldsa.MLDSA44PrivateKey.generate()
    elif name in ("ML-DSA-65", "MLDSA65"):
        key = mldsa.MLDSA65PrivateKey.generate()
    elif name in ("ML-DSA-87", "MLDSA87"):
        key = mldsa.MLDSA87PrivateKey.generate()
    else:
        raise UnsupportedAlgorithmError(
            f"unknown key algorithm {algorithm!r}; known: {', '.join(KEY_ALGORITHMS)}"
        )
    return PrivateKey(key)


def _pem_block(data: bytes, suffixes: Iterable[str], what: str) -> bytes:
    """The first PEM block whose label ends with one of ``suffixes``."""
    suffixes = tuple(suffixes)
    for label, block in pem_blocks(data):
        if label.endswith(suffixes):
            return block
    raise DecodeError(f"no {what} PEM block found")


def _is_encrypted(data: bytes, loader: object) -> bool:
    """True if ``data`` is an encrypted private key (it asks for a passphrase)."""
    if b"ENCRYPTED" in data[:64] or b"Proc-Type: 4,ENCRYPTED" in data:
        return True
    try:
        loader(data, None)  # type: ignore[operator]
    except TypeError:
        return True  # "Password was not given but private key is encrypted"
    except Exception:
        return False
    return False


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """Read a private key: PEM or DER; PKCS#8 (plain or encrypted), PKCS#1 or SEC1."""
    if is_pem(data):
        data = _pem_block(data, ("PRIVATE KEY",), "private key")
        loader = ser.load_pem_private_key
    else:
        loader = ser.load_der_private_key
    try:
        try:
            key = loader(data, password)
        except TypeError as exc:
            if password is not None and "not encrypted" in str(exc):
                key = loader(data, None)  # like OpenSSL: a passphrase for a plain key is ignored
            else:
                raise PassphraseError("the key is encrypted: a passphrase is needed") from None
    except (ValueError, _PycaInternalError):
        # Decryption garbage and corrupt keys look alike; an encrypted key that fails
        # with a passphrase given is a wrong passphrase.
        if password is not None and _is_encrypted(data, loader):
            raise PassphraseError("wrong passphrase for the encrypted key") from None
        raise DecodeError("not a valid private key (PEM or DER)") from None
    except _PycaUnsupported as exc:
        raise UnsupportedAlgorithmError(f"unsupported private key: {exc}") from None
    if not isinstance(key, PycaPrivateKey):
        raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")
    return PrivateKey(key)


def load_public_key(data: bytes) -> PublicKey:
    """Read a SubjectPublicKeyInfo public key, PEM or DER."""
    try:
        if is_pem(data):
            key = ser.load_pem_public_key(_pem_block(data, ("PUBLIC KEY",), "public key"))
        else:
            key = ser.load_der_public_key(data)
    except (ValueError, _PycaInternalError):
        raise DecodeError("not a valid public key (PEM or DER SubjectPublicKeyInfo)") from None
    except _PycaUnsupported as exc:
        raise UnsupportedAlgorithmError(f"unsupported public key: {exc}") from None
    if not isinstance(key, PycaPublicKey):
        raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")
    return PublicKey(key)
