"""The client offers an unknown version first and falls back through Version Negotiation."""

from __future__ import annotations

import time

import pytest

from quicnet.crypto import dev_identity
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import HandshakeCompleted, QuicConfiguration, QuicUsageError, QuicVersion
from quicnet.quic.connection import QuicConnection

UNKNOWN = 0x1A2A3A4A


def test_client_offering_an_unknown_version_negotiates_v1() -> None:
    ident = dev_identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
            supported_versions=(QuicVersion.V1,),
        )
    )
    client = UdpClient(
        QuicConfiguration(server_name="localhost", trust_roots=[ident.trust_root], version=UNKNOWN),
        server.local_address,
    )
    deadline = time.monotonic() + 20
    done = False
    while not done and time.monotonic() < deadline:
        server.poll(0.005)
        done = any(isinstance(e, HandshakeCompleted) for e in client.poll(0.005))
    assert done
    assert client.connection.version == QuicVersion.V1
    assert client.connection.offered_version == UNKNOWN
    assert server.endpoint.stats.version_negotiations_sent >= 1
    client.close_socket()
    server.close_socket()


def test_a_server_cannot_be_configured_with_an_unknown_version() -> None:
    ident = dev_identity()
    config = QuicConfiguration(
        is_client=False,
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
        version=UNKNOWN,
    )
    with pytest.raises(QuicUsageError):
        QuicConnection(config)
