"""Packet and header protection (RFC 9001 §5), built once per key.

:class:`PacketKey` holds one direction's AEAD and header-protection
contexts; :func:`initial_keys` derives the Initial ones from the client's
first Destination Connection ID.
"""

from __future__ import annotations

from quicnet.crypto import (
    Aead,
    AeadAlgorithm,
    DecryptError,
    ExpandKey,
    HeaderProtection,
    HmacKey,
    hkdf_expand_label,
    hkdf_expand_labels,
)
from quicnet.quic.versions import VERSION_PARAMS, VersionParams

__all__ = ["PacketKey", "initial_keys", "next_key_secret", "recv_key", "retry_integrity_tag"]

_SAMPLE_LENGTH = 16
_AES_128_GCM = AeadAlgorithm.AES_128_GCM


#: ((key label, key length), (IV label, 12), (hp label, key length)) by (version, key
#: length): RFC 9001 §5.1, RFC 9369 §3.3.2.
_LABELS: dict[tuple[int, int], tuple[tuple[bytes, int], ...]] = {}


def _labels(version: int, key_length: int) -> tuple[tuple[bytes, int], ...]:
    params = VERSION_PARAMS[version]
    labels = _LABELS[(version, key_length)] = (
        (params.key_label, key_length),
        (params.iv_label, 12),
        (params.hp_label, key_length),
    )
    return labels


class PacketKey:
    """AEAD + header protection for one direction at one epoch (and key phase)."""

    __slots__ = ("aead", "algorithm", "hash_name", "hp", "hp_key", "secret", "version")

    def __init__(
        self,
        algorithm: AeadAlgorithm,
        hash_name: str,
        secret: bytes,
        version: int,
        hp: HeaderProtection | None = None,
        keyed: ExpandKey | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.hash_name = hash_name
        self.secret = secret
        self.version = version
        key_len = 16 if algorithm is _AES_128_GCM else 32  # .key_length, without its call
        labels = _LABELS.get((version, key_len)) or _labels(version, key_len)
        if keyed is not None:  # ``secret`` keyed once already (TLS expands it too)
            key, iv, self.hp_key = keyed.expand_labels(labels)
            self.hp = HeaderProtection(algorithm, self.hp_key)
        elif hp is None:
            key, iv, self.hp_key = hkdf_expand_labels(hash_name, secret, labels)
            self.hp = HeaderProtection(algorithm, self.hp_key)
        else:
            # RFC 9001 §6.1: the header-protection key does not change at key update.
            key, iv = hkdf_expand_labels(hash_name, secret, labels[:2])
            self.hp_key = hp.key
            self.hp = hp
        self.aead = Aead(algorithm, key, iv)

    def next_generation(self, secret: bytes | None = None) -> PacketKey:
        """The key after a key update: a new AEAD, the same header protection (§6.1);
        ``secret`` the next secret when it is derived already (:func:`next_key_secret`)."""
        if secret is None:
            secret = next_key_secret(self.hash_name, self.secret, VERSION_PARAMS[self.version])
        return PacketKey(self.algorithm, self.hash_name, secret, self.version, self.hp)

    def protect(self, header: bytes, payload: bytes | bytearray, packet_number: int) -> bytes:
        """Seal ``payload`` and mask ``header`` (which ends with the packet number)."""
        pn_length = (header[0] & 0x03) + 1
        ciphertext = self.aead.seal(packet_number, payload, header)
        # The sample starts 4 bytes after the start of the packet number (§5.4.2).
        offset = 4 - pn_length
        mask = self.hp.mask(ciphertext[offset : offset + _SAMPLE_LENGTH])
        out = bytearray(header)
        out[0] ^= mask[0] & (0x0F if header[0] & 0x80 else 0x1F)
        pn_start = len(header) - pn_length
        for i in range(pn_length):
            out[pn_start + i] ^= mask[1 + i]
        out += ciphertext
        return bytes(out)

    def unprotect_header(self, packet: bytes, pn_offset: int) -> tuple[int, int, int]:
        """Remove header protection: ``(first_byte, truncated_pn, pn_length)``.

        Raises DecryptError if the packet is too short to sample.
        """
        sample_start = pn_offset + 4
        if len(packet) < sample_start + _SAMPLE_LENGTH:
            raise DecryptError("packet too short for a header-protection sample")
        mask = self.hp.mask(packet[sample_start : sample_start + _SAMPLE_LENGTH])
        first = packet[0] ^ (mask[0] & (0x0F if packet[0] & 0x80 else 0x1F))
        pn_length = (first & 0x03) + 1
        truncated = 0
        for i in range(pn_length):
            truncated = (truncated << 8) | (packet[pn_offset + i] ^ mask[1 + i])
        return first, truncated, pn_length

    def open(self, header: bytes, ciphertext: bytes | memoryview, packet_number: int) -> bytes:
        """Authenticate and decrypt; ``header`` is the unprotected header (AAD)."""
        return self.aead.open(packet_number, ciphertext, header)


#: HKDF-Extract keyed with each version's Initial salt (a constant of the version), by
#: version: HMAC-SHA256(initial_salt, client DCID) is the initial secret (RFC 9001 §5.2).
_INITIAL_EXTRACT: dict[int, HmacKey] = {}


def initial_secrets(version: int, destination_cid: bytes) -> tuple[bytes, bytes]:
    """``(client_initial_secret, server_initial_secret)`` (RFC 9001 §5.2)."""
    extract = _INITIAL_EXTRACT.get(version)
    if extract is None:
        extract = HmacKey("sha256", VERSION_PARAMS[version].initial_salt)
        _INITIAL_EXTRACT[version] = extract
    initial = extract.digest(destination_cid)
    client, server = hkdf_expand_labels("sha256", initial, ((b"client in", 32), (b"server in", 32)))
    return client, server


def initial_keys(
    version: int, destination_cid: bytes, *, is_client: bool
) -> tuple[PacketKey, PacketKey]:
    """``(send, receive)`` Initial keys for one side."""
    client, server = initial_secrets(version, destination_cid)
    c = PacketKey(_AES_128_GCM, "sha256", client, version)
    s = PacketKey(_AES_128_GCM, "sha256", server, version)
    return (c, s) if is_client else (s, c)


def recv_key(
    algorithm: AeadAlgorithm, hash_name: str, secret: bytes, version: int
) -> tuple[PacketKey, bytes]:
    """A first 1-RTT receiving key and the next key phase's secret (RFC 9001 §6.1), which
    is derived ahead (§6.3): both from one keyed HMAC, the secret its last use."""
    keyed = ExpandKey(hash_name, secret)
    key = PacketKey(algorithm, hash_name, secret, version, keyed=keyed)
    length = 48 if hash_name == "sha384" else 32
    return key, keyed.expand_label(VERSION_PARAMS[version].ku_label, b"", length, last=True)


def next_key_secret(hash_name: str, secret: bytes, params: VersionParams) -> bytes:
    """RFC 9001 §6.1: the next 1-RTT secret."""
    length = 48 if hash_name == "sha384" else 32
    return hkdf_expand_label(hash_name, secret, params.ku_label, b"", length)


def retry_integrity_tag(version: int, pseudo_packet: bytes) -> bytes:
    """RFC 9001 §5.8 / RFC 9369 §3.3.3: the 16-byte Retry integrity tag."""
    params = VERSION_PARAMS[version]
    aead = Aead(AeadAlgorithm.AES_128_GCM, params.retry_key, params.retry_nonce)
    return aead.seal(0, b"", pseudo_packet)
