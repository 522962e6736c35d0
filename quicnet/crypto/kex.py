"""Key exchange for the TLS 1.3 groups (RFC 8446 §4.2.7, §4.2.8).

The client makes a :class:`KeyShare` per offered group and sends its
``key_exchange`` bytes; the server answers with :func:`respond_key_share`,
which returns its own ``key_exchange`` bytes and the shared secret; the
client finishes with :meth:`KeyShare.shared_secret`.

X25519MLKEM768 (0x11EC) is the hybrid of ML-KEM-768 and X25519: the client
sends ek (1184) || x25519 (32), the server ct (1088) || x25519 (32), and the
secret is the ML-KEM secret (32) || the X25519 secret (32).
"""

from __future__ import annotations

import enum
from typing import cast

from cryptography.hazmat.primitives import serialization as _serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x448, x25519

from quicnet.crypto.errors import KeyExchangeError, UnsupportedAlgorithmError

__all__ = ["KeyShare", "NamedGroup", "respond_key_share"]


class NamedGroup(enum.IntEnum):
    """TLS NamedGroup code points for key exchange."""

    secp256r1 = 0x0017
    secp384r1 = 0x0018
    secp521r1 = 0x0019
    x25519 = 0x001D
    x448 = 0x001E
    X25519MLKEM768 = 0x11EC


_EC_CURVES: dict[NamedGroup, type[ec.EllipticCurve]] = {
    NamedGroup.secp256r1: ec.SECP256R1,
    NamedGroup.secp384r1: ec.SECP384R1,
    NamedGroup.secp521r1: ec.SECP521R1,
}
# Uncompressed point lengths: 0x04 || X || Y (RFC 8446 §4.2.8.2).
_EC_SHARE_LENGTH = {NamedGroup.secp256r1: 65, NamedGroup.secp384r1: 97, NamedGroup.secp521r1: 133}
_MLKEM768_EK = 1184
_MLKEM768_CT = 1088
_X25519_LEN = 32
_X448_LEN = 56

_Private = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey


#: The groups by value: a dict look-up, where ``NamedGroup(value)`` is two Python calls.
_GROUPS: dict[int, NamedGroup] = {int(g): g for g in NamedGroup}
#: Members read on every handshake, as module constants (through the class, ~70 ns each on
#: Python 3.11).
_X25519, _X448, _X25519MLKEM768 = NamedGroup.x25519, NamedGroup.x448, NamedGroup.X25519MLKEM768


def _group(group: int) -> NamedGroup:
    named = _GROUPS.get(group)
    if named is None:
        raise UnsupportedAlgorithmError(f"unsupported key exchange group 0x{group:04x}")
    return named


def _ec_public(group: NamedGroup, data: bytes) -> ec.EllipticCurvePublicKey:
    if len(data) != _EC_SHARE_LENGTH[group] or data[0] != 4:
        raise KeyExchangeError(f"{group.name} key share is not an uncompressed point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[group](), data)
    except ValueError:
        raise KeyExchangeError(f"{group.name} key share is not a point on the curve") from None


def _x25519_secret(private: x25519.X25519PrivateKey, peer: bytes) -> bytes:
    if len(peer) != _X25519_LEN:
        raise KeyExchangeError("x25519 key share must be 32 bytes")
    try:
        secret = private.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
    except ValueError:  # all-zero result: a small-order point (RFC 8446 §7.4.2)
        raise KeyExchangeError("x25519 shared secret is all zeros") from None
    if not any(secret):
        raise KeyExchangeError("x25519 shared secret is all zeros")
    return secret


def _x448_secret(private: x448.X448PrivateKey, peer: bytes) -> bytes:
    if len(peer) != _X448_LEN:
        raise KeyExchangeError("x448 key share must be 56 bytes")
    try:
        secret = private.exchange(x448.X448PublicKey.from_public_bytes(peer))
    except ValueError:
        raise KeyExchangeError("x448 shared secret is all zeros") from None
    if not any(secret):
        raise KeyExchangeError("x448 shared secret is all zeros")
    return secret


class KeyShare:
    """One ephemeral key share the initiator (TLS client) offers for ``group``."""

    __slots__ = ("_kem", "_private", "group", "key_exchange")

    def __init__(self, group: int) -> None:
        self.group = _group(group)
        self._kem: mlkem.MLKEM768PrivateKey | None = None
        private: _Private
        if self.group is _X25519:
            private = x25519.X25519PrivateKey.generate()
            public = private.public_key().public_bytes_raw()
        elif self.group is _X448:
            private = x448.X448PrivateKey.generate()
            public = private.public_key().public_bytes_raw()
        elif self.group is _X25519MLKEM768:
            self._kem = mlkem.MLKEM768PrivateKey.generate()
            private = x25519.X25519PrivateKey.generate()
            public = (
                self._kem.public_key().public_bytes_raw() + private.public_key().public_bytes_raw()
            )
        else:
            private = ec.generate_private_key(_EC_CURVES[self.group]())
            public = private.public_key().public_bytes(
                _serialization.Encoding.X962, _serialization.PublicFormat.UncompressedPoint
            )
        self._private = private
        #: The ``key_exchange`` field of this KeyShareEntry.
        self.key_exchange: bytes = public

    @classmethod
    def from_private_bytes(cls, group: int, private: bytes) -> KeyShare:
        """A share with a fixed private key (x25519/x448/ECDHE): for test vectors."""
        share = cls.__new__(cls)
        share.group = _group(group)
        share._kem = None
        key: _Private
        if share.group is NamedGroup.x25519:
            key = x25519.X25519PrivateKey.from_private_bytes(private)
            share.key_exchange = key.public_key().public_bytes_raw()
        elif share.group is NamedGroup.x448:
            key = x448.X448PrivateKey.from_private_bytes(private)
            share.key_exchange = key.public_key().public_bytes_raw()
        elif share.group in _EC_CURVES:
            key = ec.derive_private_key(int.from_bytes(private, "big"), _EC_CURVES[share.group]())
            share.key_exchange = key.public_key().public_bytes(
                _serialization.Encoding.X962, _serialization.PublicFormat.UncompressedPoint
            )
        else:
            raise UnsupportedAlgorithmError(f"{share.group.name} has no fixed-key form")
        share._private = key
        return share

    def shared_secret(self, peer_key_exchange: bytes) -> bytes:
        """The shared secret from the responder's ``key_exchange`` bytes."""
        private = self._private
        if self._kem is not None:
            if len(peer_key_exchange) != _MLKEM768_CT + _X25519_LEN:
                raise KeyExchangeError("X25519MLKEM768 server share must be 1120 bytes")
            assert isinstance(private, x25519.X25519PrivateKey)
            try:
                kem_secret = self._kem.decapsulate(peer_key_exchange[:_MLKEM768_CT])
            except ValueError:
                raise KeyExchangeError("ML-KEM-768 ciphertext is malformed") from None
            return kem_secret + _x25519_secret(private, peer_key_exchange[_MLKEM768_CT:])
        # The group names the key's type (an isinstance on pyca's ABCs runs Python code).
        group = self.group
        if group is _X25519:
            return _x25519_secret(cast(x25519.X25519PrivateKey, private), peer_key_exchange)
        if group is _X448:
            return _x448_secret(cast(x448.X448PrivateKey, private), peer_key_exchange)
        return cast(ec.EllipticCurvePrivateKey, private).exchange(
            ec.ECDH(), _ec_public(group, peer_key_exchange)
        )


def respond_key_share(group: int, peer_key_exchange: bytes) -> tuple[bytes, bytes]:
    """Responder (TLS server) side: returns ``(key_exchange, shared_secret)``."""
    g = _group(group)
    if g is _X25519MLKEM768:
        if len(peer_key_exchange) != _MLKEM768_EK + _X25519_LEN:
            raise KeyExchangeError("X25519MLKEM768 client share must be 1216 bytes")
        try:
            ek = mlkem.MLKEM768PublicKey.from_public_bytes(peer_key_exchange[:_MLKEM768_EK])
            kem_secret, ciphertext = ek.encapsulate()
        except ValueError:
            raise KeyExchangeError("ML-KEM-768 encapsulation key is malformed") from None
        ours = KeyShare(NamedGroup.x25519)
        x_secret = ours.shared_secret(peer_key_exchange[_MLKEM768_EK:])
        return ciphertext + ours.key_exchange, kem_secret + x_secret
    ours = KeyShare(g)
    return ours.key_exchange, ours.shared_secret(peer_key_exchange)
