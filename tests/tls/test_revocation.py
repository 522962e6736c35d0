"""A quicnet TLS client with CRLs refuses a revoked server with alert certificate_revoked (44),
in memory and against Python's ``ssl`` (OpenSSL) server, which reports the alert it got."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_negative_helpers import NOW, assert_dead

from quicnet.crypto import (
    Certificate,
    PrivateKey,
    Revocation,
    RevocationReason,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_crl,
    make_csr,
)
from quicnet.tls import (
    AlertDescription,
    AlertReceived,
    ClientConfig,
    ServerConfig,
    TLSConnection,
    open_connection,
)

UTC = datetime.UTC
TIMEOUT = 30.0


@dataclass
class Pki:
    root: Certificate
    root_key: PrivateKey
    leaf: Certificate
    leaf_key: PrivateKey


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key, leaf_key = generate_private_key("EC"), generate_private_key("EC")
    root = make_ca(root_key, "/CN=revocation tests CA", days=30)
    leaf = issue_certificate(
        make_csr(leaf_key, "/CN=localhost", names=["localhost", "127.0.0.1"]),
        root,
        root_key,
        days=30,
    )
    return Pki(root, root_key, leaf, leaf_key)


def crl(pki: Pki, *serials: int, days: int = 7, start: datetime.datetime | None = None):
    when = datetime.datetime.now(UTC) - datetime.timedelta(hours=1)
    return make_crl(
        pki.root,
        pki.root_key,
        [Revocation(s, when, RevocationReason.keyCompromise) for s in serials],
        crl_number=1,
        days=days,
        this_update=start,
    )


def client_config(pki: Pki, **kwargs) -> ClientConfig:
    return ClientConfig(server_name="localhost", trust_roots=[pki.root], **kwargs)


def server_config(pki: Pki) -> ServerConfig:
    return ServerConfig(certificate_chain=[pki.leaf], private_key=pki.leaf_key)


def handshake_refused(cc: ClientConfig, sc: ServerConfig, alert: AlertDescription) -> str:
    """Run the handshake in memory: the client must refuse with ``alert``, and the server
    must receive that alert. Returns the client's error message."""
    client, server = TLSConnection.client(cc), TLSConnection.server(sc)
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    with pytest.raises(Exception) as info:
        client.receive_data(server.data_to_send(), NOW)
    assert getattr(info.value, "alert", None) == alert, repr(info.value)
    out = client.data_to_send()
    assert client.closed and not client.handshake_complete
    assert_dead(client)
    with pytest.raises(AlertReceived, match=alert.name):
        server.receive_data(out, NOW)
    return str(info.value)


def test_revoked_server_is_certificate_revoked(pki: Pki) -> None:
    message = handshake_refused(
        client_config(pki, crls=[crl(pki, pki.leaf.serial_number)]),
        server_config(pki),
        AlertDescription.certificate_revoked,
    )
    assert f"{pki.leaf.serial_number:X}" in message and "keyCompromise" in message


def test_clean_crl_lets_the_handshake_finish(pki: Pki) -> None:
    client = TLSConnection.client(client_config(pki, crls=[crl(pki, 12345)]))
    server = TLSConnection.server(server_config(pki))
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert client.handshake_complete and server.handshake_complete


def test_expired_crl_fails_closed_with_certificate_unknown(pki: Pki) -> None:
    stale = crl(pki, days=1, start=datetime.datetime.now(UTC) - datetime.timedelta(days=3))
    message = handshake_refused(
        client_config(pki, crls=[stale]), server_config(pki), AlertDescription.certificate_unknown
    )
    assert "expired" in message


def test_required_check_without_crl_fails_closed(pki: Pki) -> None:
    handshake_refused(
        client_config(pki, revocation_check="leaf"),
        server_config(pki),
        AlertDescription.certificate_unknown,
    )


def test_crl_signed_by_another_key_fails_closed(pki: Pki) -> None:
    impostor_key = generate_private_key("EC")
    impostor = make_ca(impostor_key, "/CN=revocation tests CA", days=30)
    forged = make_crl(impostor, impostor_key, [], crl_number=9)
    message = handshake_refused(
        client_config(pki, crls=[forged]), server_config(pki), AlertDescription.certificate_unknown
    )
    assert "does not verify" in message


def test_python_ssl_server_receives_certificate_revoked(pki: Pki, tmp_path: Path) -> None:
    """OpenSSL (via ``ssl``) serves the revoked certificate and reports the alert it received."""
    (tmp_path / "leaf.pem").write_bytes(pki.leaf.to_pem())
    (tmp_path / "leaf.key").write_bytes(pki.leaf_key.to_pem())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    server_error: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.settimeout(TIMEOUT)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # TLS 1.3: the client's verdict arrives after the server's flight
        except (ssl.SSLError, OSError) as exc:
            server_error.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()

    async def connect() -> None:
        config = client_config(pki, crls=[crl(pki, pki.leaf.serial_number)])
        await asyncio.wait_for(open_connection("127.0.0.1", port, config), TIMEOUT)

    with pytest.raises(Exception, match="revoked") as info:
        asyncio.run(connect())
    assert getattr(info.value, "alert", None) == AlertDescription.certificate_revoked
    thread.join(TIMEOUT)
    listener.close()
    assert server_error, "the ssl server saw no error"
    assert isinstance(server_error[0], ssl.SSLError)
    assert "CERTIFICATE_REVOKED" in (server_error[0].reason or ""), server_error[0]
