"""AEAD packet protection and QUIC header protection, built once per key.

Constructing a cipher context costs far more than sealing one small packet,
so :class:`Aead` and :class:`HeaderProtection` take the key at construction
and are reused for every packet under that key (DESIGN.md, Performance).
"""

from __future__ import annotations

import enum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from quicnet.crypto.errors import CryptoError, DecryptError

__all__ = ["Aead", "AeadAlgorithm", "HeaderProtection"]

_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_SAMPLE_LENGTH = 16
_ZEROS5 = bytes(5)
_ECB = modes.ECB()  # stateless: one mode object serves every key
#: AES with the key size a class attribute (``AES.key_size`` is a property, read twice
#: per context), taken from pyca's module once: ``algorithms`` is a module object with
#: deprecation hooks, each attribute read ~1,000 instructions.
_AES128 = algorithms.AES128
_AES256 = algorithms.AES256


class AeadAlgorithm(enum.Enum):
    """The AEADs of TLS 1.3 and QUIC; the value is the key length in bytes."""

    AES_128_GCM = 16
    AES_256_GCM = 32
    CHACHA20_POLY1305 = 33  # key is 32 bytes; the value only has to be distinct

    @property
    def key_length(self) -> int:
        """The key length in bytes: 16 for AES-128-GCM, 32 for the others."""
        # Identity tests: a plain Enum hashes in Python, so no dictionary keyed by it here.
        return 16 if self is _AES_128_GCM else 32

    @property
    def iv_length(self) -> int:
        """The nonce (IV) length in bytes: 12 for every TLS 1.3 AEAD (RFC 8446 §5.3)."""
        return _NONCE_LENGTH

    @property
    def tag_length(self) -> int:
        """The authentication tag length in bytes: 16."""
        return _TAG_LENGTH


#: Enum members read per packet or per handshake, as module constants: through its class a
#: member costs ~115 ns on Python 3.11 (EnumType defines __getattr__), a global ~10 ns.
_AES_128_GCM = AeadAlgorithm.AES_128_GCM
_CHACHA20_POLY1305 = AeadAlgorithm.CHACHA20_POLY1305


class Aead:
    """An AEAD key with its static IV (RFC 8446 §5.3, RFC 9001 §5.3).

    The per-record nonce is the IV XOR the left-padded sequence or packet
    number, computed on integers so no bytes are allocated for it.
    """

    __slots__ = ("_ctx", "_iv", "algorithm")

    def __init__(self, algorithm: AeadAlgorithm, key: bytes, iv: bytes) -> None:
        if len(key) != (16 if algorithm is _AES_128_GCM else 32):
            raise CryptoError(f"{algorithm.name} needs a {algorithm.key_length}-byte key")
        if len(iv) != _NONCE_LENGTH:
            raise CryptoError(f"AEAD IV must be {_NONCE_LENGTH} bytes")
        self.algorithm = algorithm
        self._ctx: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(key) if algorithm is _CHACHA20_POLY1305 else AESGCM(key)
        )
        self._iv = int.from_bytes(iv, "big")

    def nonce(self, counter: int) -> bytes:
        """The nonce for sequence/packet number ``counter``."""
        return (self._iv ^ counter).to_bytes(_NONCE_LENGTH, "big")

    def seal(self, counter: int, plaintext: bytes | bytearray, associated_data: bytes) -> bytes:
        """Encrypt and authenticate; returns ciphertext followed by the 16-byte tag."""
        return self._ctx.encrypt(
            (self._iv ^ counter).to_bytes(_NONCE_LENGTH, "big"), plaintext, associated_data
        )

    def seal_in_place(self, counter: int, buffer: bytearray, header_length: int) -> None:
        """Seal ``buffer`` in place: ``buffer[:header_length]`` is the associated data,
        the rest the plaintext, which becomes ciphertext followed by the tag."""
        # Slices of the bytearray in, the sealed bytes back in its place: cheaper than
        # encrypt_into through memoryviews at every packet size (fewer objects, and
        # pyca takes bytes-like input directly), measured at 100 and 1,200 bytes.
        buffer[header_length:] = self._ctx.encrypt(
            (self._iv ^ counter).to_bytes(_NONCE_LENGTH, "big"),
            buffer[header_length:],
            buffer[:header_length],
        )

    def open(self, counter: int, ciphertext: bytes | memoryview, associated_data: bytes) -> bytes:
        """Authenticate and decrypt; raises :class:`DecryptError` on any mismatch."""
        try:
            return self._ctx.decrypt(
                (self._iv ^ counter).to_bytes(_NONCE_LENGTH, "big"), ciphertext, associated_data
            )
        except InvalidTag:
            raise DecryptError("AEAD authentication failed") from None


class HeaderProtection:
    """QUIC header-protection mask generator (RFC 9001 §5.4).

    ``mask(sample)`` returns the 5-byte mask for a 16-byte ciphertext sample:
    AES-ECB of the sample for the AES suites (§5.4.3), ChaCha20 keystream with
    counter and nonce taken from the sample for ChaCha20 (§5.4.4).
    """

    __slots__ = ("_chacha", "algorithm", "ecb", "key")

    def __init__(self, algorithm: AeadAlgorithm, key: bytes) -> None:
        if len(key) != (16 if algorithm is _AES_128_GCM else 32):
            raise CryptoError(
                f"{algorithm.name} header protection needs a {algorithm.key_length}-byte key"
            )
        self.algorithm = algorithm
        #: The header-protection key (kept by a key update, RFC 9001 §6.1).
        self.key = key
        #: The AES suites' AES-ECB encryptor (None for ChaCha20): ``ecb.update(sample)``
        #: is 16 bytes whose first 5 are the mask, which a packet layer may take directly
        #: on its per-packet path instead of a :meth:`mask` call. ECB keeps no state
        #: between blocks, so one encryptor serves every packet.
        self.ecb: CipherContext | None = None
        self._chacha = None
        if algorithm is _CHACHA20_POLY1305:
            # One ChaCha20 context whose nonce is reset from each sample.
            self._chacha = Cipher(algorithms.ChaCha20(key, bytes(16)), None).encryptor()
        else:
            aes = _AES128(key) if algorithm is _AES_128_GCM else _AES256(key)
            self.ecb = Cipher(aes, _ECB).encryptor()

    def mask(self, sample: bytes | bytearray | memoryview) -> bytes:
        """The 5-byte mask for a 16-byte ciphertext ``sample`` (RFC 9001 §5.4).

        Raises :class:`CryptoError` if the sample is not 16 bytes.
        """
        if len(sample) != _SAMPLE_LENGTH:
            raise CryptoError(f"header protection sample must be {_SAMPLE_LENGTH} bytes")
        if self.ecb is not None:
            return self.ecb.update(sample)[:5]
        # pyca's ChaCha20 nonce is counter (4 bytes, little-endian) || nonce (12),
        # exactly the layout of the sample.
        chacha = self._chacha
        assert chacha is not None
        chacha.reset_nonce(bytes(sample))
        return chacha.update(_ZEROS5)
