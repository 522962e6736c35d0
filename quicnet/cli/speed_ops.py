"""What ``quicnet speed`` times: one operation of each algorithm, built once.

Every benchmark is a :class:`Bench` whose ``setup`` makes keys, contexts or
connections (untimed) and returns the operation to repeat. Everything goes
through quicnet's own API (the toolkit, the TLS engine, the QUIC core), so
the figures are what an application using quicnet gets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from quicnet.crypto import (
    Aead,
    AeadAlgorithm,
    DevIdentity,
    KeyShare,
    NamedGroup,
    SignatureScheme,
    dev_identity,
    generate_private_key,
    random_bytes,
    respond_key_share,
)
from quicnet.errors import QuicnetError

__all__ = [
    "AEAD_SIZES",
    "BENCHES",
    "Bench",
    "BenchUnavailable",
    "Op",
]

#: Block sizes of the AEAD rows: a small record, a game snapshot, a full QUIC packet, a large record.
AEAD_SIZES = (16, 256, 1350, 8192)

Op = Callable[[], object]


class BenchUnavailable(QuicnetError):
    """This build of pyca/OpenSSL lacks the algorithm (e.g. ML-DSA)."""


@dataclass(frozen=True)
class Bench:
    """One row of the table."""

    name: str
    kind: str  # "aead", "sig", "kex", "tls", "quic"
    title: str


def aead_op(name: str, size: int) -> Op:
    """Seal ``size`` bytes under one key, nonce counting up (as TLS and QUIC do)."""
    algorithm = {
        "aes-128-gcm": AeadAlgorithm.AES_128_GCM,
        "aes-256-gcm": AeadAlgorithm.AES_256_GCM,
        "chacha20-poly1305": AeadAlgorithm.CHACHA20_POLY1305,
    }[name]
    aead = Aead(algorithm, random_bytes(algorithm.key_length), random_bytes(12))
    block, header = bytes(size), bytes(16)
    counter = iter(range(1 << 62))
    seal = aead.seal

    def op() -> object:
        return seal(next(counter), block, header)

    return op


# name: (key algorithm, EC curve, signature scheme)
_SIGNERS: dict[str, tuple[str, str, SignatureScheme]] = {
    "ed25519": ("Ed25519", "P-256", SignatureScheme.ed25519),
    "ecdsap256": ("EC", "P-256", SignatureScheme.ecdsa_secp256r1_sha256),
    "ecdsap384": ("EC", "P-384", SignatureScheme.ecdsa_secp384r1_sha384),
    "rsa2048": ("RSA", "P-256", SignatureScheme.rsa_pss_rsae_sha256),
    "ml-dsa-65": ("ML-DSA-65", "P-256", SignatureScheme.mldsa65),
}


def signature_ops(name: str) -> tuple[Op, Op]:
    """(sign, verify) of a 64-byte message, the way TLS signs CertificateVerify."""
    algorithm, curve, scheme = _SIGNERS[name]
    try:
        key = generate_private_key(algorithm, curve=curve, rsa_bits=2048)
    except QuicnetError as exc:
        raise BenchUnavailable(f"{name}: {exc}") from None
    public = key.public_key()
    message = random_bytes(64)
    signature = key.sign(scheme, message)

    def sign() -> object:
        return key.sign(scheme, message)

    def verify() -> object:
        public.verify(scheme, signature, message)
        return None

    return sign, verify


_GROUPS = {
    "x25519": NamedGroup.x25519,
    "ecdhp256": NamedGroup.secp256r1,
    "x25519mlkem768": NamedGroup.X25519MLKEM768,
}


def kex_op(name: str) -> Op:
    """One whole TLS 1.3 key exchange: client share, server response, both secrets."""
    group = _GROUPS[name]

    def op() -> object:
        share = KeyShare(group)
        server_share, secret = respond_key_share(group, share.key_exchange)
        if share.shared_secret(server_share) != secret:
            raise AssertionError("key exchange mismatch")
        return secret

    return op


def tls_handshake_op(identity: DevIdentity) -> Op:
    """A full TLS 1.3 handshake in memory (client and server, certificate validated)."""
    from quicnet.tls import ClientConfig, ServerConfig, TLSConnection

    client_config = ClientConfig(server_name="localhost", trust_roots=[identity.trust_root])
    server_config = ServerConfig(
        certificate_chain=identity.certificate_chain, private_key=identity.private_key
    )

    def op() -> object:
        now = time.time()
        client = TLSConnection.client(client_config)
        server = TLSConnection.server(server_config)
        client.start(now)
        for _ in range(20):
            c2s = client.data_to_send()
            if c2s:
                server.receive_data(c2s, now)
            s2c = server.data_to_send()
            if s2c:
                client.receive_data(s2c, now)
            if not c2s and not s2c:
                break
        if not (client.handshake_complete and server.handshake_complete):
            raise QuicnetError("speed: the in-memory TLS handshake did not complete")
        return None

    return op


class QuicEcho:
    """A client and an endpoint in memory, echoing DATAGRAM frames (RFC 9221).

    Each operation is one 1-RTT packet from the client and its echo back:
    every packet is sealed, header-protected, then unprotected and opened by
    the connections' own packet path. ``packets`` counts the datagrams moved
    (ACK-only ones included).
    """

    SERVER = ("192.0.2.1", 4433)
    CLIENT = ("192.0.2.2", 50000)

    def __init__(self, identity: DevIdentity, size: int = 256) -> None:
        from quicnet.quic import QuicConfiguration, QuicConnection
        from quicnet.quic.endpoint import QuicEndpoint

        self.endpoint = QuicEndpoint(
            QuicConfiguration(
                is_client=False,
                alpn_protocols=["speed"],
                certificate_chain=list(identity.certificate_chain),
                private_key=identity.private_key,
            )
        )
        self.client = QuicConnection(
            QuicConfiguration(
                is_client=True,
                alpn_protocols=["speed"],
                server_name="localhost",
                trust_roots=[identity.trust_root],
            )
        )
        self.payload = bytes(size)
        self.packets = 0
        self.client.connect(self.SERVER, time.monotonic())
        for _ in range(50):
            self._move(time.monotonic())
            if self.client.handshake_confirmed:
                break
        if not self.client.handshake_confirmed:
            raise QuicnetError("speed: the in-memory QUIC handshake did not complete")
        self.packets = 0

    def _move(self, now: float) -> int:
        from quicnet.quic import DatagramReceived

        client, endpoint, moved = self.client, self.endpoint, 0
        if (t := client.next_timer()) is not None and t <= now:
            client.handle_timer(now)
        if (t := endpoint.next_timer()) is not None and t <= now:
            endpoint.handle_timer(now)
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, self.CLIENT, now)
            moved += 1
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            if type(event) is DatagramReceived:
                conn.send_datagram(event.data)
        for data, _ in endpoint.datagrams_to_send(now):
            client.receive_datagram(data, self.SERVER, now)
            moved += 1
        echoed = 0
        while (received := client.next_event()) is not None:
            if type(received) is DatagramReceived:
                echoed += 1
        self.packets += moved
        return echoed

    def echo(self) -> object:
        """One DATAGRAM out and its echo back."""
        self.client.send_datagram(self.payload)
        if not self._move(time.monotonic()):
            raise QuicnetError("speed: a QUIC datagram was not echoed")
        return None


#: Every row ``quicnet speed`` knows, in the order of the table.
BENCHES: tuple[Bench, ...] = (
    Bench("aes-128-gcm", "aead", "AES-128-GCM seal"),
    Bench("aes-256-gcm", "aead", "AES-256-GCM seal"),
    Bench("chacha20-poly1305", "aead", "ChaCha20-Poly1305 seal"),
    Bench("ed25519", "sig", "Ed25519"),
    Bench("ecdsap256", "sig", "ECDSA P-256 SHA-256"),
    Bench("ecdsap384", "sig", "ECDSA P-384 SHA-384"),
    Bench("rsa2048", "sig", "RSA-2048 PSS SHA-256"),
    Bench("ml-dsa-65", "sig", "ML-DSA-65"),
    Bench("x25519", "kex", "X25519"),
    Bench("ecdhp256", "kex", "ECDH P-256"),
    Bench("x25519mlkem768", "kex", "X25519MLKEM768"),
    Bench("tls13", "tls", "TLS 1.3 handshake, in memory (P-256 certificate)"),
    Bench("quic", "quic", "QUIC 1-RTT DATAGRAM echo, in memory (256-byte payload)"),
)


def shared_identity() -> DevIdentity:
    """A P-256 server identity for the handshake and QUIC rows."""
    return dev_identity(("localhost",))
