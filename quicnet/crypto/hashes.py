"""Hash functions by OpenSSL-style name, and HMAC.

Names are the lower-case ones ``openssl dgst`` accepts (``sha256``,
``sha3-256``, ``blake2b512``, ...).
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes as _hashes
from cryptography.hazmat.primitives import hmac as _hmac

from quicnet.crypto.errors import UnsupportedAlgorithmError

__all__ = ["HASH_NAMES", "Hasher", "HmacKey", "digest", "digest_size", "hmac_digest"]

_FACTORIES: dict[str, type[_hashes.HashAlgorithm] | _hashes.HashAlgorithm] = {
    "sha1": _hashes.SHA1,
    "sha224": _hashes.SHA224,
    "sha256": _hashes.SHA256,
    "sha384": _hashes.SHA384,
    "sha512": _hashes.SHA512,
    "sha512-256": _hashes.SHA512_256,
    "sha3-224": _hashes.SHA3_224,
    "sha3-256": _hashes.SHA3_256,
    "sha3-384": _hashes.SHA3_384,
    "sha3-512": _hashes.SHA3_512,
    "blake2b512": _hashes.BLAKE2b(64),
    "blake2s256": _hashes.BLAKE2s(32),
    "md5": _hashes.MD5,
}

#: Every hash name :func:`digest` accepts.
HASH_NAMES: tuple[str, ...] = tuple(_FACTORIES)


#: One (stateless) algorithm object per name, made on first use.
_INSTANCES: dict[str, _hashes.HashAlgorithm] = {}


def hash_algorithm(name: str) -> _hashes.HashAlgorithm:
    """The pyca hash object for ``name`` (internal to :mod:`quicnet.crypto`)."""
    algorithm = _INSTANCES.get(name)
    if algorithm is not None:
        return algorithm
    try:
        factory = _FACTORIES[name.lower()]
    except KeyError:
        raise UnsupportedAlgorithmError(
            f"unknown hash {name!r}; known: {', '.join(HASH_NAMES)}"
        ) from None
    algorithm = factory if isinstance(factory, _hashes.HashAlgorithm) else factory()
    _INSTANCES[name] = algorithm
    return algorithm


def digest_size(name: str) -> int:
    """Output length in bytes of the hash ``name``."""
    return hash_algorithm(name).digest_size


def digest(name: str, data: bytes) -> bytes:
    """One-shot hash of ``data``."""
    h = _hashes.Hash(hash_algorithm(name))
    h.update(data)
    return h.finalize()


def hmac_digest(name: str, key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) of ``data`` under ``key``."""
    h = _hmac.HMAC(key, hash_algorithm(name))
    h.update(data)
    return h.finalize()


class HmacKey:
    """One HMAC key for many messages: keyed once, the keyed state copied for each
    ``digest`` (the hash is not looked up nor the key set up again). For a key that
    signs many short values: stateless reset tokens, a version's Initial salt."""

    __slots__ = ("_keyed",)

    def __init__(self, name: str, key: bytes) -> None:
        self._keyed = _hmac.HMAC(key, hash_algorithm(name))

    def digest(self, data: bytes) -> bytes:
        """HMAC (RFC 2104) of ``data`` under this key; the same as ``hmac_digest``."""
        h = self._keyed.copy()
        h.update(data)
        return h.finalize()


class Hasher:
    """Incremental hash, for files and TLS transcripts.

    ``copy()`` forks the running state, which a transcript hash needs to
    read intermediate values without finishing.
    """

    __slots__ = ("_h", "name")

    def __init__(self, name: str, _state: _hashes.Hash | None = None) -> None:
        self.name = name
        self._h = _state if _state is not None else _hashes.Hash(hash_algorithm(name))

    @property
    def digest_size(self) -> int:
        """The digest length in bytes."""
        return self._h.algorithm.digest_size

    def update(self, data: bytes) -> None:
        """Feed ``data`` into the hash."""
        self._h.update(data)

    def copy(self) -> Hasher:
        """An independent hasher that continues from the current state."""
        return Hasher(self.name, self._h.copy())

    def digest(self) -> bytes:
        """The digest so far; the hasher stays usable."""
        return self._h.copy().finalize()
