"""Post-quantum TLS: ML-DSA certificates and the X25519MLKEM768 hybrid group, end to end."""

from __future__ import annotations

import time

import pytest

from quicnet.crypto import (
    NamedGroup,
    SignatureScheme,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.tls import ClientConfig, HandshakeComplete, ServerConfig, TLSConnection


def _handshake(client: TLSConnection, server: TLSConnection) -> HandshakeComplete:
    now = time.time()
    client.start(now)
    for _ in range(10):
        server.receive_data(client.data_to_send(), now)
        client.receive_data(server.data_to_send(), now)
        if client.handshake_complete and server.handshake_complete:
            break
    event = client.next_event()
    assert isinstance(event, HandshakeComplete)
    return event


@pytest.mark.parametrize(
    ("algorithm", "scheme"),
    [
        ("ML-DSA-44", SignatureScheme.mldsa44),
        ("ML-DSA-65", SignatureScheme.mldsa65),
        ("ML-DSA-87", SignatureScheme.mldsa87),
    ],
)
def test_ml_dsa_certificate_with_hybrid_key_exchange(algorithm: str, scheme: int) -> None:
    ca_key = generate_private_key(algorithm)
    ca = make_ca(ca_key, "/CN=pq CA")
    key = generate_private_key(algorithm)
    leaf = issue_certificate(make_csr(key, "/CN=localhost", names=["localhost"]), ca, ca_key)
    client = TLSConnection.client(
        ClientConfig(
            server_name="localhost",
            trust_roots=[ca],
            key_share_groups=(NamedGroup.X25519MLKEM768,),
        )
    )
    server = TLSConnection.server(ServerConfig([leaf], key))
    done = _handshake(client, server)
    assert done.signature_scheme == scheme
    assert done.group == NamedGroup.X25519MLKEM768
    client.send(b"quantum-safe hello")
    server.receive_data(client.data_to_send(), time.time())
    assert any(
        getattr(e, "data", None) == b"quantum-safe hello" for e in iter(server.next_event, None)
    )


def test_client_without_ml_dsa_refuses_an_ml_dsa_server() -> None:
    ca_key = generate_private_key("ML-DSA-65")
    ca = make_ca(ca_key, "/CN=pq CA")
    key = generate_private_key("ML-DSA-65")
    leaf = issue_certificate(make_csr(key, "/CN=localhost", names=["localhost"]), ca, ca_key)
    client = TLSConnection.client(
        ClientConfig(
            server_name="localhost",
            trust_roots=[ca],
            signature_algorithms=(SignatureScheme.ecdsa_secp256r1_sha256,),
        )
    )
    server = TLSConnection.server(ServerConfig([leaf], key))
    client.start(time.time())
    from quicnet.tls import ProtocolViolation

    with pytest.raises(ProtocolViolation) as info:
        server.receive_data(client.data_to_send(), time.time())
    assert info.value.alert == 40  # handshake_failure: no scheme in common
