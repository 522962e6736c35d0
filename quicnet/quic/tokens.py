"""Address-validation tokens (RFC 9000 §8.1.2-8.1.4): Retry's and NEW_TOKEN's.

A Retry token seals (client address, original destination CID, Retry source
CID, expiry) under a server secret with AES-256-GCM: only this server (or one
sharing the secret) can make or read one, and it is useless from another
address or after it expires (seconds, on the endpoint's ``now``).

A NEW_TOKEN token (§8.1.3) is for a later connection: it seals the date it was
issued (wall-clock seconds, so it outlives a restart of the server that shares
the secret) and is bound to the client's IP address, not its port (a NAT gives
the next connection another one). The first byte tells the two kinds apart
(§8.1.3: a server must be able to). Each is accepted once (§8.1.4: a replayed
token would let an attacker borrow a client's address): the nonces of used
tokens are remembered until they expire.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import OrderedDict
from dataclasses import dataclass

from quicnet.crypto import Aead, AeadAlgorithm, DecryptError, random_bytes
from quicnet.quic.buffer import Reader
from quicnet.quic.errors import TransportError

__all__ = [
    "NEW_TOKEN_KIND",
    "RETRY_KIND",
    "AddressTokenManager",
    "RetryTokenManager",
    "ValidatedToken",
]

_NONCE = 12
#: The first byte of a Retry token and of a NEW_TOKEN token.
RETRY_KIND = 0x01
NEW_TOKEN_KIND = 0x02
_NEW_TOKEN_AAD = b"quicnet new_token"


def _host_bytes(address: tuple[object, ...]) -> bytes:
    """The address's host as a token binds it: an IP address packed (4 or 16 bytes),
    any other name as its UTF-8 bytes."""
    host = str(address[0])
    if ":" not in host:
        # Dotted-quad IPv4 (one token a handshake: NEW_TOKEN). inet_pton(AF_INET) takes
        # exactly what ipaddress.IPv4Address does (four decimal octets, no leading
        # zeros), at a tenth of the cost; anything else is no IP address at all, so
        # no exception from ipaddress either.
        try:
            return socket.inet_pton(socket.AF_INET, host)
        except (OSError, ValueError):  # not an address; ValueError: a NUL in it
            return host.encode()
    try:  # IPv6 (a scope ID is not packed: ipaddress decides, as before)
        return ipaddress.ip_address(host).packed
    except ValueError:
        return host.encode()


def _address_bytes(address: tuple[object, ...]) -> bytes:
    return _host_bytes(address) + int(str(address[1])).to_bytes(2, "big")


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
        return bytes((RETRY_KIND,)) + nonce + sealed  # not a NEW_TOKEN token (§8.1.3)

    def validate(
        self, token: bytes, address: tuple[object, ...], now: float
    ) -> ValidatedToken | None:
        """The CIDs in ``token``, or None if it is forged, expired or from another address."""
        if len(token) < 1 + _NONCE + 16 or token[0] != RETRY_KIND:
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


class AddressTokenManager:
    """Makes and checks NEW_TOKEN tokens (RFC 9000 §8.1.3) under one secret.

    A token is valid for ``lifetime`` seconds of wall-clock time from the IP address
    it was issued to, once. At most ``max_remembered`` used tokens are remembered;
    while that many unexpired ones are, every token is refused (the client then
    proves its address with a Retry, as one without a token would).
    """

    def __init__(
        self,
        secret: bytes | None = None,
        lifetime: float = 86400.0,
        max_remembered: int = 100_000,
    ) -> None:
        self._aead = Aead(AeadAlgorithm.AES_256_GCM, secret or random_bytes(32), bytes(_NONCE))
        self.lifetime = lifetime
        self.max_remembered = max_remembered
        self._used: OrderedDict[bytes, float] = OrderedDict()  # nonce -> when it expires

    def create(self, address: tuple[object, ...], wall_now: float, version: int) -> bytes:
        """A token for the client at ``address`` (its IP address only), issued now on a
        connection of QUIC ``version`` (RFC 9369 §5: valid only for that version)."""
        nonce = random_bytes(_NONCE)
        body = int(wall_now * 1000).to_bytes(8, "big")
        aad = _NEW_TOKEN_AAD + version.to_bytes(4, "big") + _host_bytes(address)
        sealed = self._aead.seal(int.from_bytes(nonce, "big"), body, aad)
        return bytes((NEW_TOKEN_KIND,)) + nonce + sealed

    def validate(
        self, token: bytes, address: tuple[object, ...], wall_now: float, version: int
    ) -> bool:
        """True once for a token this server issued to ``address``'s IP, on a ``version``
        connection, within its lifetime; False for anything else (forged, expired,
        another IP or version, used before)."""
        if len(token) != 1 + _NONCE + 8 + 16 or token[0] != NEW_TOKEN_KIND:
            return False
        nonce = token[1 : 1 + _NONCE]
        try:
            body = self._aead.open(
                int.from_bytes(nonce, "big"),
                token[1 + _NONCE :],
                _NEW_TOKEN_AAD + version.to_bytes(4, "big") + _host_bytes(address),
            )
        except DecryptError:
            return False
        issued = int.from_bytes(body, "big") / 1000
        expires = issued + self.lifetime
        if not issued - 60 <= wall_now <= expires:  # a minute of clock skew between servers
            return False
        used = self._used
        while used and next(iter(used.values())) < wall_now:
            used.popitem(last=False)  # expired tokens fail on their date alone
        if nonce in used or len(used) >= self.max_remembered:
            return False
        used[nonce] = expires
        return True
