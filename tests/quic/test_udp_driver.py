"""The tick-driven UDP driver (quicnet.io.udp) over real loopback sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest
from simnet import handshake as sim_handshake
from simnet import make_pair

from quicnet.crypto import dev_identity
from quicnet.io import udp
from quicnet.io.udp import UdpClient, UdpServer, local_host_for
from quicnet.quic import (
    ConnectionTerminated,
    DatagramReceived,
    HandshakeCompleted,
    QuicConfiguration,
)
from quicnet.quic.connection import QuicConnection
from quicnet.quic.errors import TransportErrorCode
from quicnet.tls import AlertDescription, ConfigurationError


def handshake(client: UdpClient, server: UdpServer) -> HandshakeCompleted | ConnectionTerminated:
    """Poll both until the client completes its handshake or its connection ends."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        server.poll(0.005)
        for event in client.poll(0.005):
            if isinstance(event, HandshakeCompleted | ConnectionTerminated):
                return event
    raise AssertionError("the handshake neither completed nor failed")


@pytest.mark.parametrize(
    "names", [("localhost", "127.0.0.1"), ("localhost",)], ids=["ip-san", "dns-only"]
)
def test_udp_client_verifies_the_address_it_connects_to(names: tuple[str, ...]) -> None:
    """Like the asyncio driver, the client checks the host it connects to (here an IP
    literal, so against the certificate's IP addresses) when no server_name is given."""
    ident = dev_identity(names=names)
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
        )
    )
    config = QuicConfiguration(trust_roots=[ident.trust_root])
    client = UdpClient(config, server.local_address)
    try:
        event = handshake(client, server)
        if "127.0.0.1" in names:
            assert isinstance(event, HandshakeCompleted)
        else:
            assert isinstance(event, ConnectionTerminated)
            assert (
                event.error_code
                == TransportErrorCode.CRYPTO_ERROR + AlertDescription.bad_certificate
            )
        assert config.server_name is None  # the caller's configuration is left alone
    finally:
        client.close_socket()
        server.close_socket()


def test_quic_client_without_any_name_to_verify_is_a_configuration_error() -> None:
    """Only the driver knows the host: a bare connection must be told the name."""
    with pytest.raises(ConfigurationError, match="server_name"):
        QuicConnection(QuicConfiguration(trust_roots=[dev_identity().trust_root]))


def test_quic_client_may_opt_out_of_name_checks_explicitly() -> None:
    """verify_server_name=False reaches TLS: any name a trusted root vouches for passes."""
    sim = make_pair(seed=3, client={"server_name": None, "verify_server_name": False})
    sim_handshake(sim)
    conn = sim.client.impl
    assert isinstance(conn, QuicConnection) and conn.handshake_confirmed


@pytest.mark.parametrize(
    ("remote", "bound"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.9.9.9", "127.0.0.1"),
        ("::1", "::1"),
        ("192.0.2.7", "0.0.0.0"),
        ("2001:db8::1", "::"),
        ("fe80::1%eth0", "::"),
        ("game.example", "0.0.0.0"),
    ],
)
def test_a_client_socket_for_a_loopback_peer_binds_loopback(remote: str, bound: str) -> None:
    """A client talking to a loopback server is not reachable from beyond the machine."""
    assert local_host_for(remote) == bound


def test_udp_client_to_a_loopback_server_is_bound_to_loopback() -> None:
    ident = dev_identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
        )
    )
    client = UdpClient(QuicConfiguration(trust_roots=[ident.trust_root]), server.local_address)
    try:
        assert client.sock.getsockname()[0] == "127.0.0.1"
    finally:
        client.close_socket()
        server.close_socket()


def test_what_the_application_queued_leaves_before_a_poll_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll asks the connection before it waits only when the application gave it
    something since it was last asked (its wake callback) or the last answer was full;
    a datagram queued without flush() still leaves before the wait, not after it."""
    ident = dev_identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
            max_datagram_frame_size=65536,
        )
    )
    client = UdpClient(
        QuicConfiguration(trust_roots=[ident.trust_root], max_datagram_frame_size=65536),
        server.local_address,
    )
    try:
        assert isinstance(handshake(client, server), HandshakeCompleted)
        for _ in range(20):  # the rest of the handshake's traffic settles
            server.poll(0.001)
            client.poll(0.001)
        sent_at_wait: list[int] = []
        real_select = udp.select.select

        def spy(r: Any, w: Any, x: Any, timeout: float) -> Any:
            if r and r[0] is client.sock:
                sent_at_wait.append(client.sender.datagrams_sent)
            return real_select(r, w, x, 0)  # (no waiting in a test)

        monkeypatch.setattr(udp.select, "select", spy)
        before = client.sender.datagrams_sent
        client.connection.send_datagram(b"queued, not flushed")
        client.poll(1.0)
        assert sent_at_wait == [before + 1]
        # Nothing new since: the next poll sends nothing before its wait.
        client.poll(1.0)
        assert sent_at_wait[1] == client.sender.datagrams_sent
        monkeypatch.undo()
        deadline = time.monotonic() + 10
        got: list[bytes] = []
        while not got and time.monotonic() < deadline:
            for _conn, event in server.poll(0.005):
                if isinstance(event, DatagramReceived):
                    got.append(event.data)
            client.poll(0.0)
        assert got == [b"queued, not flushed"]
    finally:
        client.close_socket()
        server.close_socket()
