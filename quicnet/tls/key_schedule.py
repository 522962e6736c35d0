"""The TLS 1.3 key schedule (RFC 8446 §7) and the transcript hash (§4.4.1)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from quicnet.crypto import (
    Aead,
    AeadAlgorithm,
    ExpandKey,
    Hasher,
    HmacKey,
    constant_time_eq,
    digest,
    hkdf_expand_label,
    hkdf_extract,
    hmac_digest,
)
from quicnet.tls.messages import HandshakeType

__all__ = ["CIPHER_SUITES", "CipherSuite", "KeySchedule", "SuiteInfo", "Transcript"]


class CipherSuite(enum.IntEnum):
    """The TLS 1.3 cipher suites quicnet implements (RFC 8446 §B.4)."""

    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303


@dataclass(frozen=True, slots=True)
class SuiteInfo:
    """A cipher suite's hash (name, output length in bytes) and AEAD (RFC 8446 §B.4)."""

    hash_name: str
    hash_length: int
    aead: AeadAlgorithm

    @property
    def key_length(self) -> int:
        """The AEAD key length in bytes."""
        return self.aead.key_length


CIPHER_SUITES: dict[CipherSuite, SuiteInfo] = {
    CipherSuite.TLS_AES_128_GCM_SHA256: SuiteInfo("sha256", 32, AeadAlgorithm.AES_128_GCM),
    CipherSuite.TLS_AES_256_GCM_SHA384: SuiteInfo("sha384", 48, AeadAlgorithm.AES_256_GCM),
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256: SuiteInfo(
        "sha256", 32, AeadAlgorithm.CHACHA20_POLY1305
    ),
}


#: Hash("") by hash name: a constant each "derived" secret needs (RFC 8446 §7.1).
_EMPTY_HASHES: dict[str, bytes] = {}


class Transcript:
    """Running hash of the handshake messages (§4.4.1).

    The client sends its ClientHello before it knows the hash, so the raw
    messages are kept (a handshake is a few kilobytes) and hashed once
    :meth:`set_hash` names the suite's hash. After a HelloRetryRequest the
    first ClientHello is replaced by a synthetic ``message_hash``.
    """

    __slots__ = ("_digest", "_hasher", "_messages")

    def __init__(self) -> None:
        self._messages: list[bytes] = []
        self._hasher: Hasher | None = None
        #: The digest of the messages so far, once asked (a handshake asks twice at the
        #: server Finished: for the application secrets and for a Finished).
        self._digest = b""

    @property
    def hash_name(self) -> str | None:
        """The transcript's hash function, or None until the cipher suite is known."""
        return self._hasher.name if self._hasher is not None else None

    def set_hash(self, hash_name: str) -> None:
        """Hash the transcript with ``hash_name`` from now on, rehashing the messages so far."""
        if self._hasher is not None and self._hasher.name == hash_name:
            return
        self._hasher = Hasher(hash_name)
        self._digest = b""
        for message in self._messages:
            self._hasher.update(message)

    def add(self, message: bytes) -> None:
        """Append a whole handshake message, header included (RFC 8446 §4.4.1)."""
        self._messages.append(message)
        self._digest = b""
        if self._hasher is not None:
            self._hasher.update(message)

    def digest(self) -> bytes:
        """The transcript hash of the messages so far (RFC 8446 §4.4.1).

        Raises RuntimeError before :meth:`set_hash`.
        """
        if self._digest:
            return self._digest
        if self._hasher is None:
            raise RuntimeError("transcript hash read before the cipher suite is known")
        self._digest = self._hasher.digest()
        return self._digest

    def digest_as(self, hash_name: str) -> bytes:
        """The transcript hashed with ``hash_name``, whatever the current hash."""
        h = Hasher(hash_name)
        for message in self._messages:
            h.update(message)
        return h.digest()

    def digest_with(self, extra: bytes) -> bytes:
        """Hash of the transcript followed by ``extra``, without adding it."""
        if self._hasher is None:
            raise RuntimeError("transcript hash read before the cipher suite is known")
        h = self._hasher.copy()
        h.update(extra)
        return h.digest()

    def restart_for_hello_retry(self, hash_name: str) -> None:
        """Replace ClientHello1 by message_hash(Hash(ClientHello1)) (§4.4.1)."""
        self.set_hash(hash_name)
        ch1_hash = self.digest()
        synthetic = bytes((HandshakeType.message_hash, 0, 0, len(ch1_hash))) + ch1_hash
        self._messages = [synthetic]
        self._hasher = Hasher(hash_name)
        self._hasher.update(synthetic)
        self._digest = b""


#: Without a PSK, the early secret and the "derived" secret after it are constants of the
#: hash (HKDF-Extract of zeros, RFC 8446 §7.1): by hash name, the early secret and the
#: HKDF-Extract keyed with that "derived" secret (the salt of the handshake secret),
#: keyed once and copied per handshake (as each QUIC version's Initial salt is).
_NO_PSK: dict[str, tuple[bytes, HmacKey]] = {}


class KeySchedule:
    """Secrets of one connection, derived step by step as the handshake goes."""

    __slots__ = (
        "_handshake_extract",
        "_master_key",
        "_master_salt",
        "early_secret",
        "handshake_secret",
        "hash_length",
        "hash_name",
        "master_secret",
    )

    def __init__(self, suite: SuiteInfo, psk: bytes | None = None) -> None:
        self.hash_name = suite.hash_name
        self.hash_length = suite.hash_length
        zeros = bytes(self.hash_length)
        #: HKDF-Extract salted with Derive-Secret(early_secret, "derived", ""), when that
        #: is a constant (no PSK).
        self._handshake_extract: HmacKey | None = None
        if psk:
            self.early_secret = hkdf_extract(self.hash_name, zeros, psk)
        else:
            constants = _NO_PSK.get(self.hash_name)
            if constants is None:
                early = hkdf_extract(self.hash_name, zeros, zeros)
                derived = self.derive(early, b"derived", self._empty_hash())
                constants = (early, HmacKey(self.hash_name, derived))
                _NO_PSK[self.hash_name] = constants
            self.early_secret, self._handshake_extract = constants
        self.handshake_secret = b""
        self.master_secret = b""
        #: Derive-Secret(handshake_secret, "derived", ""), made with the handshake traffic
        #: secrets from the same keyed HMAC.
        self._master_salt = b""
        #: The master secret keyed once: the application secrets, then the resumption
        #: master secret (its last use).
        self._master_key: ExpandKey | None = None

    def derive(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret with the transcript hash already computed."""
        return hkdf_expand_label(self.hash_name, secret, label, transcript_hash, self.hash_length)

    def _empty_hash(self) -> bytes:
        empty = _EMPTY_HASHES.get(self.hash_name)
        if empty is None:
            empty = _EMPTY_HASHES[self.hash_name] = digest(self.hash_name, b"")
        return empty

    # Early secrets (PSK) -------------------------------------------------------
    def binder_key(self, *, external: bool = False) -> bytes:
        """The PSK binder key: ``ext binder`` if ``external``, else ``res binder`` (§7.1)."""
        label = b"ext binder" if external else b"res binder"
        return self.derive(self.early_secret, label, self._empty_hash())

    def client_early_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """client_early_traffic_secret; hash of the ClientHello (RFC 8446 §7.1)."""
        return self.derive(self.early_secret, b"c e traffic", transcript_hash)

    def early_exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """early_exporter_master_secret; hash of the ClientHello (RFC 8446 §7.1)."""
        return self.derive(self.early_secret, b"e exp master", transcript_hash)

    # Handshake --------------------------------------------------------------------
    def enter_handshake(self, shared_secret: bytes) -> None:
        """Derive the handshake secret from the (EC)DHE shared secret (RFC 8446 §7.1)."""
        extract = self._handshake_extract
        if extract is not None:  # HKDF-Extract(salt=derived, IKM) = HMAC(derived, IKM)
            self.handshake_secret = extract.digest(shared_secret)
            return
        derived = self.derive(self.early_secret, b"derived", self._empty_hash())
        self.handshake_secret = hkdf_extract(self.hash_name, derived, shared_secret)

    def handshake_traffic_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes]:
        """``(client, server)`` handshake traffic secrets; hash of ClientHello..ServerHello."""
        n = self.hash_length
        # One keyed HMAC for both traffic secrets and the "derived" salt of the master
        # secret, which enter_master would otherwise key again (RFC 8446 §7.1).
        handshake = ExpandKey(self.hash_name, self.handshake_secret)
        client, server = handshake.expand_labels(
            ((b"c hs traffic", n), (b"s hs traffic", n)), transcript_hash
        )
        self._master_salt = handshake.expand_label(b"derived", self._empty_hash(), n, last=True)
        return client, server

    # Application ------------------------------------------------------------------
    def enter_master(self) -> None:
        """Derive the master secret from the handshake secret (RFC 8446 §7.1)."""
        derived = self._master_salt or self.derive(
            self.handshake_secret, b"derived", self._empty_hash()
        )
        self.master_secret = hkdf_extract(self.hash_name, derived, bytes(self.hash_length))
        self._master_key = ExpandKey(self.hash_name, self.master_secret)

    def application_traffic_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes]:
        """``(client, server)`` application secrets; hash of ClientHello..server Finished.
        The exporter master secret is left to :meth:`exporter_master_secret` (the same
        keyed HMAC, kept for the resumption master secret)."""
        n = self.hash_length
        master = self._master_key or ExpandKey(self.hash_name, self.master_secret)
        self._master_key = master  # kept for the resumption master secret
        client, server = master.expand_labels(
            ((b"c ap traffic", n), (b"s ap traffic", n)), transcript_hash
        )
        return client, server

    def application_secrets(self, transcript_hash: bytes) -> tuple[bytes, bytes, bytes]:
        """``(client, server, exporter master)``: the three secrets of the master secret
        and the hash of ClientHello..server Finished, from one keyed HMAC."""
        n = self.hash_length
        labels = ((b"c ap traffic", n), (b"s ap traffic", n), (b"exp master", n))
        master = self._master_key or ExpandKey(self.hash_name, self.master_secret)
        self._master_key = master  # kept for the resumption master secret
        client, server, exporter = master.expand_labels(labels, transcript_hash)
        return client, server, exporter

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """exporter_master_secret; hash of ClientHello..server Finished (RFC 8446 §7.1)."""
        master = self._master_key
        if master is not None:  # before the resumption master secret: keyed already
            return master.expand_label(b"exp master", transcript_hash, self.hash_length)
        return self.derive(self.master_secret, b"exp master", transcript_hash)

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        """Hash of ClientHello..client Finished: the last use of the master secret."""
        master = self._master_key or ExpandKey(self.hash_name, self.master_secret)
        self._master_key = None
        return master.expand_label(b"res master", transcript_hash, self.hash_length, last=True)

    # Finished (§4.4.4) -------------------------------------------------------------
    def finished_verify_data(self, base_key: bytes | ExpandKey, transcript_hash: bytes) -> bytes:
        """The Finished verify_data for ``base_key`` over ``transcript_hash`` (RFC 8446 §4.4.4);
        ``base_key`` a traffic secret, or that secret keyed once (an :class:`ExpandKey`)."""
        if isinstance(base_key, ExpandKey):
            finished_key = base_key.expand_label(b"finished", b"", self.hash_length)
        else:
            finished_key = hkdf_expand_label(
                self.hash_name, base_key, b"finished", b"", self.hash_length
            )
        return hmac_digest(self.hash_name, finished_key, transcript_hash)

    def check_finished(
        self, base_key: bytes | ExpandKey, transcript_hash: bytes, verify_data: bytes
    ) -> bool:
        """Whether ``verify_data`` is the expected Finished value, compared in constant time."""
        return constant_time_eq(self.finished_verify_data(base_key, transcript_hash), verify_data)


def traffic_aead(suite: SuiteInfo, secret: bytes) -> Aead:
    """The record-protection AEAD for a traffic secret (§7.3)."""
    key = hkdf_expand_label(suite.hash_name, secret, b"key", b"", suite.key_length)
    iv = hkdf_expand_label(suite.hash_name, secret, b"iv", b"", 12)
    return Aead(suite.aead, key, iv)


def next_traffic_secret(suite: SuiteInfo, secret: bytes) -> bytes:
    """application_traffic_secret_N+1 (§7.2)."""
    return hkdf_expand_label(suite.hash_name, secret, b"traffic upd", b"", suite.hash_length)


def resumption_psk(suite: SuiteInfo, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
    """The PSK a NewSessionTicket stands for (§4.6.1)."""
    return hkdf_expand_label(
        suite.hash_name, resumption_master_secret, b"resumption", ticket_nonce, suite.hash_length
    )


def export_keying_material(
    suite: SuiteInfo, exporter_master_secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """TLS-Exporter(label, context_value, key_length) (§7.5)."""
    secret = hkdf_expand_label(
        suite.hash_name,
        exporter_master_secret,
        label,
        digest(suite.hash_name, b""),
        suite.hash_length,
    )
    return hkdf_expand_label(
        suite.hash_name, secret, b"exporter", digest(suite.hash_name, context), length
    )
