"""Address-validation tokens for Retry (RFC 9000 §8.1.2-8.1.4).

A token seals (client address, original destination CID, Retry source CID,
expiry) under a server secret with AES-256-GCM: only this server (or one
sharing the secret) can make or read one, and it is useless from another
address or after it expires.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from quicnet.crypto import Aead, AeadAlgorithm, DecryptError, random_bytes
from quicnet.quic.buffer import Reader
from quicnet.quic.errors import TransportError

__all__ = ["RetryTokenManager", "ValidatedToken"]

_NONCE = 12


def _address_bytes(address: tuple[object, ...]) -> bytes:
    host, port = str(address[0]), int(str(address[1]))
    try:
        packed = ipaddress.ip_address(host).packed
    except ValueError:
        packed = host.encode()
    return packed + port.to_bytes(2, "big")


@dataclass(frozen=True, slots=True)
class ValidatedToken:
    """What a valid Retry token vouches for: the client's original destination CID and
    the Retry's source CID, for the transport parameters (RFC 9000 §7.3)."""

    original_destination_cid: bytes
    retry_source_cid: bytes


class RetryTokenManager:
    """Makes and checks Retry tokens (RFC 9000 §8.1.2) under one secret; a token is
    valid for ``lifetime`` seconds."""

    def __init__(self, secret: bytes | None = None, lifetime: float = 10.0) -> None:
        self._aead = Aead(AeadAlgorithm.AES_256_GCM, secret or random_bytes(32), bytes(_NONCE))
        self.lifetime = lifetime

    def create(
        self, address: tuple[object, ...], original_dcid: bytes, retry_scid: bytes, now: float
    ) -> bytes:
        """A token sealing ``address``, the client's original DCID and our Retry SCID, valid
        until ``now`` + lifetime."""
        expiry = int((now + self.lifetime) * 1000)
        body = (
            bytes((len(original_dcid),))
            + original_dcid
            + bytes((len(retry_scid),))
            + retry_scid
            + expiry.to_bytes(8, "big")
        )
        nonce = random_bytes(_NONCE)
        sealed = self._aead.seal(int.from_bytes(nonce, "big"), body, _address_bytes(address))
        return b"\x01" + nonce + sealed  # leading byte: a Retry token (not NEW_TOKEN)

    def validate(
        self, token: bytes, address: tuple[object, ...], now: float
    ) -> ValidatedToken | None:
        """The CIDs in ``token``, or None if it is forged, expired or from another address."""
        if len(token) < 1 + _NONCE + 16 or token[0] != 1:
            return None
        nonce = token[1 : 1 + _NONCE]
        try:
            body = self._aead.open(
                int.from_bytes(nonce, "big"), token[1 + _NONCE :], _address_bytes(address)
            )
            r = Reader(body)
            odcid = r.read(r.uint8())
            rscid = r.read(r.uint8())
            expiry = r.uint(8) / 1000
        except (DecryptError, TransportError):
            return None
        if now > expiry:
            return None
        return ValidatedToken(odcid, rscid)
