"""quicnet's TLS 1.3 against the ``openssl`` binary (``s_server`` / ``s_client``).

quicnet takes part through its asyncio API (``open_connection`` /
``start_server``, in this process) and through its own CLI verbs
(``python -m quicnet s_client`` / ``s_server``). OpenSSL reports what it
negotiated on its output (``-www`` status pages, ``-msg`` message traces,
session summaries), so each feature is checked from both ends.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_helpers import (
    BULK_SIZE,
    CLIENT_SUBJECT,
    HRR_RANDOM,
    KEY_TYPES,
    SERVER_NAME,
    Accepted,
    InteropPki,
    Proc,
    Processes,
    Relay,
    hash_stream,
    needs_openssl,
    next_secret,
    payload,
    quicnet_server,
    read_exactly,
    read_to_eof,
    run_async,
    sha256,
    traffic_secrets,
    within,
)

from quicnet.crypto import NamedGroup, SignatureScheme
from quicnet.tls import (
    AlertReceived,
    CipherSuite,
    ClientAuth,
    ClientConfig,
    HandshakeComplete,
    SessionTicket,
    TLSStreamWriter,
    open_connection,
)

pytestmark = needs_openssl

#: quicnet group -> (OpenSSL's -groups name, its name on the -www page, s_client's "Server Temp Key").
OPENSSL_GROUPS = {
    NamedGroup.x25519: ("X25519", "x25519", "X25519, 253 bits"),
    NamedGroup.secp256r1: ("P-256", "secp256r1", "ECDH, prime256v1, 256 bits"),
    NamedGroup.secp384r1: ("P-384", "secp384r1", "ECDH, secp384r1, 384 bits"),
    NamedGroup.secp521r1: ("P-521", "secp521r1", "ECDH, secp521r1, 521 bits"),
    NamedGroup.x448: ("X448", "x448", "X448, 448 bits"),
}
#: Server key type -> what s_client prints as "Peer signature type" / "Peer signing digest".
OPENSSL_SIGNATURES = {
    "ec-p256": ("ECDSA", "SHA256"),
    "ec-p384": ("ECDSA", "SHA384"),
    "ec-p521": ("ECDSA", "SHA512"),
    "ed25519": ("ed25519", None),
    "ed448": ("ed448", None),
    "rsa2048": ("RSA-PSS", "SHA256"),
}
KEYLOG_LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
}
GET = b"GET / HTTP/1.0\r\n\r\n"
SENT_SERVER_HELLO = rb">>> TLS 1\.3, Handshake \[length [0-9a-f]+\], ServerHello"
RECEIVED_SERVER_HELLO = rb"<<< TLS 1\.3, Handshake \[length [0-9a-f]+\], ServerHello"
SENT_KEY_UPDATE = rb">>> TLS 1\.3, Handshake \[length 0005\], KeyUpdate"
RECEIVED_KEY_UPDATE = rb"<<< TLS 1\.3, Handshake \[length 0005\], KeyUpdate"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> InteropPki:
    return InteropPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    group = Processes(tmp_path)
    yield group
    group.stop_all()


def s_server(
    procs: Processes, pki: InteropPki, *args: object, kind: str = "ec-p256"
) -> tuple[Proc, int]:
    return procs.openssl_server(pki.server(kind), *args)


def s_client(procs: Processes, pki: InteropPki, port: int, *args: object, **kwargs: object) -> Proc:
    """``openssl s_client -tls1_3`` verifying quicnet's certificate (SNI localhost)."""
    return procs.openssl(
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-tls1_3",
        "-servername",
        SERVER_NAME,
        "-CAfile",
        pki.server_ca.ca_file,
        "-verify_return_error",
        *args,
        **kwargs,
    )


async def www_get(
    port: int, config: ClientConfig, request: bytes = GET
) -> tuple[HandshakeComplete, bytes, TLSStreamWriter]:
    """quicnet asks an ``s_server -www`` for a page: (handshake, page, writer)."""
    reader, writer = await open_connection("127.0.0.1", port, config)
    writer.write(request)
    page = await read_to_eof(reader)
    writer.close()
    assert writer.handshake is not None
    return writer.handshake, page, writer


async def greet(
    proc: Proc, accepted: Accepted[TLSStreamWriter], tag: str = ""
) -> tuple[asyncio.StreamReader, TLSStreamWriter]:
    """The next connection to the quicnet server: greet the s_client and see it arrive."""
    reader, writer = await accepted.next()
    line = f"greetings from quicnet {tag}\n".encode()
    writer.write(line)
    await writer.drain()
    await proc.expect(re.escape(line.strip()), stream="out")
    return reader, writer


async def s_client_closes(
    proc: Proc, reader: asyncio.StreamReader, writer: TLSStreamWriter
) -> bytes:
    """End of stdin: s_client sends close_notify and exits; what quicnet read until then."""
    proc.close_stdin()
    rest = await read_to_eof(reader)
    assert writer.connection.peer_closed
    writer.close()
    assert await proc.exited() == 0, proc.describe()
    return rest


# quicnet client (API) -> openssl s_server -----------------------------------------------------------
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_quicnet_client_cipher_suite(procs: Processes, pki: InteropPki, suite: CipherSuite) -> None:
    _, port = s_server(procs, pki, "-www", "-ciphersuites", suite.name)
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert f"New, TLSv1.3, Cipher is {suite.name}\n".encode() in page
    assert handshake.cipher_suite == suite


@pytest.mark.parametrize("group", list(OPENSSL_GROUPS), ids=lambda g: g.name)
def test_quicnet_client_group(procs: Processes, pki: InteropPki, group: NamedGroup) -> None:
    flag, page_name, _ = OPENSSL_GROUPS[group]
    _, port = s_server(procs, pki, "-www", "-groups", flag)
    config = pki.client_config(groups=(group,), key_share_groups=(group,))
    handshake, page, _ = run_async(www_get(port, config))
    assert f"Supported groups: {page_name}\n".encode() in page
    assert f"Shared groups: {page_name}\n".encode() in page
    assert handshake.group == group


@pytest.mark.parametrize("group", [NamedGroup.secp521r1, NamedGroup.x448], ids=lambda g: g.name)
def test_quicnet_client_default_groups_reach_a_server_of_one_group(
    procs: Processes, pki: InteropPki, group: NamedGroup
) -> None:
    """P-521 and X448 are offered by default (reached through a HelloRetryRequest)."""
    flag, page_name, _ = OPENSSL_GROUPS[group]
    _, port = s_server(procs, pki, "-www", "-groups", flag)
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert f"Shared groups: {page_name}\n".encode() in page
    assert handshake.group == group


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_quicnet_client_hello_retry_request(
    procs: Processes, pki: InteropPki, suite: CipherSuite
) -> None:
    """quicnet's x25519 share does not suit a P-256-only s_server: it asks again (HRR);
    the transcript restarts with the suite's hash (SHA-384 included)."""
    server, port = s_server(
        procs, pki, "-www", "-groups", "P-256", "-ciphersuites", suite.name, "-msg"
    )
    config = pki.client_config(
        groups=(NamedGroup.x25519, NamedGroup.secp256r1), key_share_groups=(NamedGroup.x25519,)
    )
    handshake, page, _ = run_async(www_get(port, config))
    assert b"Shared groups: secp256r1\n" in page
    assert f"New, TLSv1.3, Cipher is {suite.name}\n".encode() in page
    assert handshake.group == NamedGroup.secp256r1
    assert handshake.cipher_suite == suite
    server.wait_for(rb">>> TLS 1\.3, Handshake \[length [0-9a-f]+\], Finished")
    assert server.count(SENT_SERVER_HELLO) == 2  # the HelloRetryRequest, then the real one


def test_quicnet_client_hello_retry_request_with_cookie(procs: Processes, pki: InteropPki) -> None:
    """``-stateless``: the first ClientHello gets an HRR with a cookie quicnet must echo."""
    server, port = s_server(procs, pki, "-stateless")

    async def main() -> None:
        async with Relay(port) as relay:
            reader, writer = await open_connection("127.0.0.1", relay.port, pki.client_config())
            writer.write(b"cookie echoed\n")
            await server.expect("cookie echoed", stream="out")
            server.send(b"welcome\n")
            assert await read_exactly(reader, 8) == b"welcome\n"
            writer.close()
        hello_retry, server_hello = relay.server_hello_messages()
        assert hello_retry[6:38] == HRR_RANDOM
        assert server_hello[6:38] != HRR_RANDOM
        cookie = Relay.extensions(hello_retry)[44]
        assert len(cookie) > 2
        # The second ClientHello echoes the cookie extension verbatim.
        assert b"\x00\x2c" + len(cookie).to_bytes(2, "big") + cookie in relay.to_server

    run_async(main())


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_quicnet_client_verifies_openssl_server_key(
    procs: Processes, pki: InteropPki, kind: str
) -> None:
    _, port = s_server(procs, pki, "-www", kind=kind)
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert handshake.signature_scheme == KEY_TYPES[kind][2]
    assert handshake.peer_certificates[0] == pki.server(kind).leaf


@pytest.mark.parametrize("kind", ["ec-p256", "rsa2048", "ed25519"])
def test_quicnet_client_certificate(procs: Processes, pki: InteropPki, kind: str) -> None:
    identity = pki.client(kind)
    _, port = s_server(
        procs, pki, "-www", "-Verify", "1", "-CAfile", pki.client_ca.ca_file, "-verify_return_error"
    )
    config = pki.client_config(certificate_chain=identity.chain, private_key=identity.key)
    _, page, _ = run_async(www_get(port, config))
    assert b"Client certificate\n" in page
    assert f"Subject: CN={CLIENT_SUBJECT}\n".encode() in page
    assert identity.leaf.to_pem().strip() in page.replace(b"\r\n", b"\n"), page[-2000:]


def test_quicnet_client_without_certificate_is_refused(procs: Processes, pki: InteropPki) -> None:
    server, port = s_server(procs, pki, "-www", "-Verify", "1", "-CAfile", pki.client_ca.ca_file)
    with pytest.raises(AlertReceived, match="certificate_required"):
        run_async(www_get(port, pki.client_config()))
    server.wait_for("(?i)peer did not return a certificate")


def test_quicnet_client_optional_certificate(procs: Processes, pki: InteropPki) -> None:
    """``-verify`` asks without insisting: quicnet answers with an empty Certificate."""
    _, port = s_server(procs, pki, "-www", "-verify", "1", "-CAfile", pki.client_ca.ca_file)
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert b"no client certificate available" in page
    assert handshake.peer_certificates[0] == pki.server().leaf


def test_quicnet_client_alpn(procs: Processes, pki: InteropPki) -> None:
    server, port = s_server(procs, pki, "-alpn", "h2,http/1.1")

    async def main() -> None:
        config = pki.client_config(alpn_protocols=("http/1.1", "h2"))
        reader, writer = await open_connection("127.0.0.1", port, config)
        writer.write(b"ping\n")
        await server.expect("ping", stream="out")
        await server.expect("ALPN protocols advertised by the client: http/1.1, h2")
        assert writer.handshake is not None
        assert writer.handshake.alpn_protocol == "h2"  # the server's preference
        server.send(b"pong\n")
        assert await read_exactly(reader, 5) == b"pong\n"
        writer.close()

    run_async(main())


def test_quicnet_client_alpn_mismatch(procs: Processes, pki: InteropPki) -> None:
    server, port = s_server(procs, pki, "-www", "-alpn", "h2")
    config = pki.client_config(alpn_protocols=("http/1.1",))
    with pytest.raises(AlertReceived, match="no_application_protocol"):
        run_async(www_get(port, config))
    server.wait_for("no application protocol")


@pytest.mark.parametrize("hrr", [False, True], ids=["direct", "after-hrr"])
def test_quicnet_client_resumption(procs: Processes, pki: InteropPki, hrr: bool) -> None:
    _, port = s_server(procs, pki, "-www", *(["-groups", "P-256"] if hrr else []))
    groups = {"groups": (NamedGroup.x25519, NamedGroup.secp256r1)} if hrr else {}

    async def main() -> None:
        first, page, writer = await www_get(port, pki.client_config(**groups))
        assert not first.resumed
        assert b"New, TLSv1.3, Cipher is " in page
        assert writer.session_tickets, "s_server sends its tickets before the page"
        second, page, _ = await www_get(
            port, pki.client_config(session=writer.session_tickets[0], **groups)
        )
        assert b"Reused, TLSv1.3, Cipher is " in page
        assert second.resumed
        assert second.peer_certificates == ()
        assert second.group == (NamedGroup.secp256r1 if hrr else NamedGroup.x25519)

    run_async(main())


@pytest.mark.parametrize("request_peer", [True, False], ids=["requested", "not-requested"])
def test_quicnet_client_key_update(procs: Processes, pki: InteropPki, request_peer: bool) -> None:
    """KeyUpdate from quicnet (s_server answers a request), then from s_server ("K")."""
    server, port = s_server(procs, pki, "-msg")

    async def main() -> None:
        reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
        read0, write0 = traffic_secrets(writer)
        writer.write(b"before the update\n")
        await server.expect("before the update", stream="out")

        writer.key_update(request_peer=request_peer)
        writer.write(b"after our update\n")
        await server.expect("after our update", stream="out")
        await server.expect(RECEIVED_KEY_UPDATE)
        server.send(b"openssl writes after it\n")
        assert await read_exactly(reader, 24) == b"openssl writes after it\n"
        peer_updates = 1 if request_peer else 0
        if request_peer:  # s_server's answer, sent before those bytes
            await server.expect(SENT_KEY_UPDATE)
        assert traffic_secrets(writer) == (
            next_secret(writer, read0, peer_updates),
            next_secret(writer, write0),
        )

        server.send(b"K\n")  # s_server: KeyUpdate, asking quicnet to update too
        await server.expect(rb"(?s)(" + SENT_KEY_UPDATE + rb".*){%d}" % (peer_updates + 1))
        server.send(b"openssl updated\n")
        assert await read_exactly(reader, 16) == b"openssl updated\n"
        writer.write(b"quicnet answered\n")
        await server.expect("quicnet answered", stream="out")
        await server.expect(rb"(?s)(" + RECEIVED_KEY_UPDATE + rb".*){2}")
        assert traffic_secrets(writer) == (
            next_secret(writer, read0, peer_updates + 1),
            next_secret(writer, write0, 2),
        )
        writer.close()

    run_async(main())


def test_quicnet_client_exporter(procs: Processes, pki: InteropPki) -> None:
    label = "EXPERIMENTAL-quicnet-interop"
    server, port = s_server(procs, pki, "-keymatexport", label, "-keymatexportlen", "48")

    async def main() -> None:
        _, writer = await open_connection("127.0.0.1", port, pki.client_config())
        writer.write(b"ping\n")
        await server.expect("ping", stream="out")
        match = await server.expect(rb"Keying material: ([0-9A-F]+)")
        ours = writer.export_keying_material(label.encode(), b"", 48)
        assert bytes.fromhex(match.group(1).decode()) == ours
        writer.close()

    run_async(main())


def test_bulk_20mb_quicnet_client_downloads_from_openssl(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    body = payload(BULK_SIZE, 21)
    (tmp_path / "big.bin").write_bytes(body)
    _, port = s_server(procs, pki, "-WWW", "-http_server_binmode")

    async def main() -> None:
        reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
        writer.write(b"GET /big.bin HTTP/1.0\r\n\r\n")
        head = await within(reader.readuntil(b"\r\n\r\n"))
        assert head.startswith(b"HTTP/1.0 200 ok\r\n")
        assert await within(hash_stream(reader)) == (sha256(body), BULK_SIZE)
        writer.close()

    run_async(main())


# quicnet's CLI client -> openssl s_server ---------------------------------------------------------------
def quicnet_s_client(
    procs: Processes, pki: InteropPki, port: int, *args: object, stdin: bytes = b""
) -> Proc:
    proc = procs.quicnet(
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-servername",
        SERVER_NAME,
        "-CAfile",
        pki.server_ca.ca_file,
        *args,
    )
    proc.send(stdin)
    proc.close_stdin()
    assert proc.wait() == 0, proc.describe()
    return proc


def test_quicnet_s_client_flags(procs: Processes, pki: InteropPki, tmp_path: Path) -> None:
    """-ciphersuites -groups -alpn -cert/-key, checked on s_server's status page."""
    identity = pki.client("ec-p384")
    _, port = s_server(
        procs, pki, "-www", "-alpn", "h2", "-Verify", "1", "-CAfile", pki.client_ca.ca_file
    )
    proc = quicnet_s_client(
        procs,
        pki,
        port,
        "-ciphersuites",
        "TLS_CHACHA20_POLY1305_SHA256",
        "-groups",
        "P-384:X25519",
        "-alpn",
        "h2",
        "-cert",
        identity.cert_file,
        "-key",
        identity.key_file,
        stdin=GET,
    )
    page = proc.out
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert b"New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256\n" in page
    assert b"Supported groups: secp384r1:x25519\n" in page
    assert CLIENT_SUBJECT.encode() in page
    err = proc.err.decode()
    assert "Cipher: TLS_CHACHA20_POLY1305_SHA256" in err
    assert "Group: secp384r1" in err
    assert "ALPN: h2" in err


def test_quicnet_s_client_keylog_matches_openssl(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    """-keylogfile writes the five TLS 1.3 secrets, the very lines OpenSSL logs."""
    ours, theirs = tmp_path / "quicnet.keys", tmp_path / "openssl.keys"
    _, port = s_server(procs, pki, "-www", "-keylogfile", theirs)
    proc = quicnet_s_client(procs, pki, port, "-keylogfile", ours, stdin=GET)
    assert proc.out.startswith(b"HTTP/1.0 200 ok\r\n")
    lines = ours.read_text().splitlines()
    assert {line.split()[0] for line in lines} == KEYLOG_LABELS
    assert len(lines) == 5
    assert len({line.split()[1] for line in lines}) == 1  # one client random
    # s_server logged the same secrets during the handshake that served the page.
    assert set(lines) <= set(theirs.read_text().splitlines())


def test_quicnet_s_client_resumption(procs: Processes, pki: InteropPki, tmp_path: Path) -> None:
    session = tmp_path / "session.pem"
    _, port = s_server(procs, pki, "-www")
    first = quicnet_s_client(procs, pki, port, "-sess_out", session, stdin=GET)
    assert "Resumed: no" in first.err.decode()
    assert b"New, TLSv1.3, Cipher is " in first.out
    assert session.read_bytes().startswith(b"-----BEGIN QUICNET TLS SESSION-----")
    second = quicnet_s_client(procs, pki, port, "-sess_in", session, stdin=GET)
    assert "Resumed: yes" in second.err.decode()
    assert b"Reused, TLSv1.3, Cipher is " in second.out


def test_quicnet_s_client_early_data(procs: Processes, pki: InteropPki, tmp_path: Path) -> None:
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT from quicnet s_client\n")
    server, port = s_server(procs, pki, "-early_data")
    quicnet_s_client(procs, pki, port, "-sess_out", session)
    proc = quicnet_s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
    err = proc.err.decode()
    assert "Resumed: yes" in err
    assert "Early data: accepted" in err
    server.wait_for("Early data received:")
    server.wait_for("0-RTT from quicnet s_client")
    server.wait_for("Reused session-id")
    assert server.count("No early data received") == 1  # only the first connection


def test_quicnet_s_client_early_data_rejected(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    """Another s_server cannot open the ticket: full handshake, 0-RTT data resent in 1-RTT."""
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT that must be resent\n")
    _, issuer_port = s_server(procs, pki, "-early_data")
    quicnet_s_client(procs, pki, issuer_port, "-sess_out", session)
    other, port = s_server(procs, pki, "-early_data")
    proc = quicnet_s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
    err = proc.err.decode()
    assert "Resumed: no" in err
    assert "Early data: not accepted" in err
    other.wait_for("0-RTT that must be resent")
    other.wait_for("Early data was rejected")
    assert other.count("0-RTT that must be resent") == 1


# openssl s_client -> quicnet server (API) --------------------------------------------------------------
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_openssl_client_cipher_suite(procs: Processes, pki: InteropPki, suite: CipherSuite) -> None:
    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-ciphersuites", suite.name)
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None and writer.handshake.cipher_suite == suite
            await s_client_closes(proc, reader, writer)
        assert f"New, TLSv1.3, Cipher is {suite.name}" in proc.text
        assert "Verify return code: 0 (ok)" in proc.text

    run_async(main())


@pytest.mark.parametrize("group", list(OPENSSL_GROUPS), ids=lambda g: g.name)
def test_openssl_client_group(procs: Processes, pki: InteropPki, group: NamedGroup) -> None:
    flag, _, temp_key = OPENSSL_GROUPS[group]

    async def main() -> None:
        config = pki.server().server_config(groups=list(OPENSSL_GROUPS))
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port, "-groups", flag, "-msg")
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None and writer.handshake.group == group
            await s_client_closes(proc, reader, writer)
        assert f"Server Temp Key: {temp_key}" in proc.text
        assert proc.count(RECEIVED_SERVER_HELLO) == 1

    run_async(main())


@pytest.mark.parametrize("group", [NamedGroup.secp521r1, NamedGroup.x448], ids=lambda g: g.name)
def test_openssl_client_group_against_default_server_groups(
    procs: Processes, pki: InteropPki, group: NamedGroup
) -> None:
    flag, _, temp_key = OPENSSL_GROUPS[group]

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-groups", flag)
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None and writer.handshake.group == group
            await s_client_closes(proc, reader, writer)
        assert f"Server Temp Key: {temp_key}" in proc.text

    run_async(main())


@pytest.mark.parametrize(
    ("server_groups", "suite", "hrr"),
    [
        *(((NamedGroup.secp256r1,), suite, True) for suite in CipherSuite),
        # The client's x25519 share is usable: no round trip even if P-256 comes first.
        ((NamedGroup.secp256r1, NamedGroup.x25519), CipherSuite.TLS_AES_128_GCM_SHA256, False),
    ],
    ids=[*(f"p256-only-{suite.name}" for suite in CipherSuite), "p256-then-x25519"],
)
def test_openssl_client_hello_retry_request(
    procs: Processes,
    pki: InteropPki,
    server_groups: tuple[NamedGroup, ...],
    suite: CipherSuite,
    hrr: bool,
) -> None:
    """s_client -groups X25519:P-256 sends only an X25519 share."""

    async def main() -> None:
        config = pki.server().server_config(groups=server_groups)
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(
                procs, pki, port, "-groups", "X25519:P-256", "-ciphersuites", suite.name, "-msg"
            )
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            expected = NamedGroup.secp256r1 if hrr else NamedGroup.x25519
            assert writer.handshake.group == expected
            assert writer.handshake.cipher_suite == suite
            await s_client_closes(proc, reader, writer)
        assert proc.count(RECEIVED_SERVER_HELLO) == (2 if hrr else 1)
        assert f"Server Temp Key: {OPENSSL_GROUPS[expected][2]}" in proc.text
        assert f"New, TLSv1.3, Cipher is {suite.name}" in proc.text

    run_async(main())


@pytest.mark.parametrize("kind", list(KEY_TYPES))
def test_openssl_client_verifies_quicnet_server_key(
    procs: Processes, pki: InteropPki, kind: str
) -> None:
    signature_type, digest = OPENSSL_SIGNATURES[kind]

    async def main() -> None:
        async with quicnet_server(pki.server(kind).server_config()) as (port, accepted):
            proc = s_client(procs, pki, port)
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            assert writer.handshake.signature_scheme == KEY_TYPES[kind][2]
            await s_client_closes(proc, reader, writer)
        assert f"Peer signature type: {signature_type}\n" in proc.text
        if digest is not None:
            assert f"Peer signing digest: {digest}\n" in proc.text
        assert "Verify return code: 0 (ok)" in proc.text

    run_async(main())


@pytest.mark.parametrize("kind", ["ec-p256", "rsa2048", "ed25519"])
def test_openssl_client_certificate(procs: Processes, pki: InteropPki, kind: str) -> None:
    identity = pki.client(kind)

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(
                procs, pki, port, "-cert", identity.cert_file, "-key", identity.key_file
            )
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            assert writer.handshake.peer_certificates[0] == identity.leaf
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_openssl_client_without_certificate_is_refused(procs: Processes, pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port)
            await proc.expect("(?i)alert certificate required")
            assert await proc.exited() != 0
            assert accepted.empty()

    run_async(main())


def test_openssl_client_optional_certificate(procs: Processes, pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.OPTIONAL, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port)
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None and writer.handshake.peer_certificates == ()
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_openssl_client_alpn(procs: Processes, pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(alpn_protocols=("h2", "http/1.1"))
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port, "-alpn", "http/1.1,h2")
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None and writer.handshake.alpn_protocol == "h2"
            await s_client_closes(proc, reader, writer)
        assert "ALPN protocol: h2\n" in proc.text

    run_async(main())


def test_openssl_client_alpn_mismatch(procs: Processes, pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(alpn_protocols=("h2",))
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port, "-alpn", "http/1.1")
            await proc.expect("(?i)alert no application protocol")
            assert await proc.exited() != 0
            assert accepted.empty()

    run_async(main())


@pytest.mark.parametrize("hrr", [False, True], ids=["direct", "after-hrr"])
def test_openssl_client_resumption(
    procs: Processes, pki: InteropPki, tmp_path: Path, hrr: bool
) -> None:
    session = tmp_path / "session.pem"
    groups = (NamedGroup.secp384r1,) if hrr else (NamedGroup.x25519,)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config(groups=groups)) as (port, accepted):
            first = s_client(procs, pki, port, "-sess_out", session, "-msg")
            # The tickets precede the greeting, so s_client has saved the session after it.
            reader, writer = await greet(first, accepted)
            assert writer.handshake is not None and not writer.handshake.resumed
            await s_client_closes(first, reader, writer)
            assert "New, TLSv1.3" in first.text

            second = s_client(procs, pki, port, "-sess_in", session, "-msg")
            reader, writer = await greet(second, accepted, "again")
            assert writer.handshake is not None and writer.handshake.resumed
            await s_client_closes(second, reader, writer)
        assert "Reused, TLSv1.3" in second.text
        assert second.count(RECEIVED_SERVER_HELLO) == (2 if hrr else 1)

    run_async(main())


def test_openssl_client_resumed_mutual_tls_keeps_its_certificate(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    """The resumed session knows the client's chain, as the full handshake did."""
    session = tmp_path / "session.pem"
    identity = pki.client()
    cert = ("-cert", identity.cert_file, "-key", identity.key_file)

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            first = s_client(procs, pki, port, *cert, "-sess_out", session)
            reader, writer = await greet(first, accepted)
            assert writer.handshake is not None and not writer.handshake.resumed
            await s_client_closes(first, reader, writer)

            second = s_client(procs, pki, port, *cert, "-sess_in", session)
            reader, writer = await greet(second, accepted, "again")
            assert writer.handshake is not None and writer.handshake.resumed
            assert writer.handshake.peer_certificates == (identity.leaf,)
            assert writer.get_extra_info("peercert") == identity.leaf
            await s_client_closes(second, reader, writer)
        assert "Reused, TLSv1.3" in second.text

    run_async(main())


def test_openssl_client_early_data(procs: Processes, pki: InteropPki, tmp_path: Path) -> None:
    """0-RTT accepted once; the replay of the same ticket is refused (but still resumes)."""
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT from openssl s_client\n")

    async def main() -> None:
        config = pki.server().server_config(max_early_data_size=16384)
        async with quicnet_server(config) as (port, accepted):
            first = s_client(procs, pki, port, "-sess_out", session)
            await s_client_closes(first, *await greet(first, accepted))
            assert "Max Early Data: 16384" in first.text

            second = s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
            reader, writer = await greet(second, accepted, "again")
            assert writer.handshake is not None
            assert writer.handshake.resumed and writer.handshake.early_data_accepted
            assert await read_exactly(reader, early.stat().st_size) == early.read_bytes()
            assert await s_client_closes(second, reader, writer) == b""
            assert "Early data was accepted" in second.text
            assert "Reused, TLSv1.3" in second.text

            replay = s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
            reader, writer = await greet(replay, accepted, "third")
            assert writer.handshake is not None
            assert writer.handshake.resumed and not writer.handshake.early_data_accepted
            # The refused 0-RTT records are skipped, never delivered.
            assert await s_client_closes(replay, reader, writer) == b""
            assert "Early data was rejected" in replay.text

    run_async(main())


def test_openssl_client_key_update(procs: Processes, pki: InteropPki) -> None:
    """s_client's "k" (update) and "K" (update, and ask quicnet to), then quicnet's own."""

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-msg")
            reader, writer = await greet(proc, accepted)
            read0, write0 = traffic_secrets(writer)

            proc.send(b"k\n")
            await proc.expect(SENT_KEY_UPDATE)
            proc.send(b"after k\n")
            assert await read_exactly(reader, 8) == b"after k\n"
            assert traffic_secrets(writer) == (next_secret(writer, read0), write0)

            proc.send(b"K\n")
            await proc.expect(rb"(?s)(" + SENT_KEY_UPDATE + rb".*){2}")
            proc.send(b"after K\n")
            assert await read_exactly(reader, 8) == b"after K\n"
            writer.write(b"quicnet answers K\n")
            await proc.expect("quicnet answers K", stream="out")
            await proc.expect(RECEIVED_KEY_UPDATE)
            assert traffic_secrets(writer) == (
                next_secret(writer, read0, 2),
                next_secret(writer, write0),
            )

            writer.key_update(request_peer=True)
            writer.write(b"quicnet updated\n")
            await proc.expect("quicnet updated", stream="out")
            proc.send(b"after quicnet's update\n")  # s_client answers before these bytes
            assert await read_exactly(reader, 23) == b"after quicnet's update\n"
            await proc.expect(rb"(?s)(" + SENT_KEY_UPDATE + rb".*){3}")
            assert traffic_secrets(writer) == (
                next_secret(writer, read0, 3),
                next_secret(writer, write0, 2),
            )
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_openssl_client_exporter(procs: Processes, pki: InteropPki) -> None:
    label = "EXPERIMENTAL-quicnet-interop"

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-keymatexport", label, "-keymatexportlen", "32")
            reader, writer = await greet(proc, accepted)
            match = await proc.expect(rb"Keying material: ([0-9A-F]+)")
            ours = writer.export_keying_material(label.encode(), b"", 32)
            assert bytes.fromhex(match.group(1).decode()) == ours
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_bulk_20mb_openssl_client_upload(procs: Processes, pki: InteropPki, tmp_path: Path) -> None:
    body = payload(BULK_SIZE, 31)
    (tmp_path / "up.bin").write_bytes(body)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            with open(tmp_path / "up.bin", "rb") as stdin:
                # -nocommands: a chunk starting with "Q", "k"... is data, not a command.
                proc = s_client(procs, pki, port, "-nocommands", stdin=stdin)
            reader, writer = await accepted.next()
            assert await within(hash_stream(reader)) == (sha256(body), BULK_SIZE)
            assert writer.connection.peer_closed  # s_client ended with close_notify
            writer.close()
            assert await proc.exited() == 0, proc.describe()

    run_async(main())


def test_bulk_20mb_openssl_client_download(procs: Processes, pki: InteropPki) -> None:
    body = payload(BULK_SIZE, 32)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-quiet")  # stdout: only what quicnet sends
            _, writer = await accepted.next()
            writer.write(body)
            await writer.drain()
            writer.write_eof()
            await proc.exited()
        assert sha256(proc.out) == sha256(body), f"{len(proc.out)} bytes\n{proc.err[-2000:]!r}"

    run_async(main())


# quicnet's CLI server <- openssl s_client --------------------------------------------------------------
def quicnet_s_server(procs: Processes, pki: InteropPki, *args: object) -> tuple[Proc, int]:
    identity = pki.server()
    proc = procs.quicnet(
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        identity.cert_file,
        "-key",
        identity.key_file,
        *args,
    )
    return proc, int(proc.wait_for(rb"ACCEPT 127\.0\.0\.1:(\d+)", stream="out").group(1))


def test_openssl_client_gets_quicnet_s_server_www_page(procs: Processes, pki: InteropPki) -> None:
    _, port = quicnet_s_server(procs, pki, "-www", "-alpn", "http/1.1")
    proc = s_client(procs, pki, port, "-quiet", "-alpn", "http/1.1")
    proc.send(GET)  # -quiet keeps stdin open (-ign_eof): the server's close ends it
    assert proc.wait() == 0, proc.describe()
    page = proc.out.decode()
    assert page.startswith("HTTP/1.0 200")
    assert "Protocol  : TLSv1.3" in page
    assert "ALPN      : http/1.1" in page
    assert f"SNI       : {SERVER_NAME}" in page


def test_openssl_client_resumes_and_sends_early_data_to_quicnet_s_server(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT for quicnet s_server\n")
    server, port = quicnet_s_server(procs, pki, "-early_data")

    first = s_client(procs, pki, port, "-sess_out", session)
    first.send(b"first connection\n")
    server.wait_for("first connection", stream="out")
    server.send(b"hello from quicnet s_server\n")  # after the tickets
    first.wait_for("hello from quicnet s_server", stream="out")
    first.close_stdin()
    assert first.wait() == 0, first.describe()

    second = s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
    server.wait_for("0-RTT for quicnet s_server", stream="out")
    second.close_stdin()
    assert second.wait() == 0, second.describe()
    assert "Reused, TLSv1.3" in second.text
    assert "Early data was accepted" in second.text


# Record-layer and handshake variants -------------------------------------------------------------------
def test_quicnet_client_reads_padded_records(procs: Processes, pki: InteropPki) -> None:
    """s_server pads every record to a multiple of 512 bytes; quicnet strips the zeros."""
    _, port = s_server(procs, pki, "-www", "-record_padding", "512")
    _, page, writer = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert page.rstrip().endswith(b"</BODY></HTML>")
    assert writer.connection.peer_closed


def test_openssl_client_sends_padded_records(procs: Processes, pki: InteropPki) -> None:
    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-record_padding", "512")
            reader, writer = await greet(proc, accepted)
            proc.send(b"padded line\n")
            assert await read_exactly(reader, 12) == b"padded line\n"
            await s_client_closes(proc, reader, writer)

    run_async(main())


@pytest.mark.parametrize("side", ["openssl-server", "quicnet-client"])
def test_quicnet_client_without_middlebox_compatibility(
    procs: Processes, pki: InteropPki, side: str
) -> None:
    """No session id echo / dummy ChangeCipherSpec on one side: the other copes."""
    _, port = s_server(procs, pki, "-www", *(["-no_middlebox"] if side == "openssl-server" else []))
    config = pki.client_config(middlebox_compatibility=side != "quicnet-client")
    _, page, _ = run_async(www_get(port, config))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")


@pytest.mark.parametrize("compat", [True, False], ids=["quicnet-compat", "quicnet-no-compat"])
def test_openssl_client_without_middlebox_compatibility(
    procs: Processes, pki: InteropPki, compat: bool
) -> None:
    async def main() -> None:
        config = pki.server().server_config(middlebox_compatibility=compat)
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(procs, pki, port, "-no_middlebox")
            await s_client_closes(proc, *await greet(proc, accepted))

    run_async(main())


@pytest.mark.parametrize(
    ("sigalg", "digest"),
    [
        ("rsa_pss_rsae_sha256", "SHA256"),
        ("rsa_pss_rsae_sha384", "SHA384"),
        ("rsa_pss_rsae_sha512", "SHA512"),
    ],
)
def test_openssl_client_sigalgs_pick_quicnet_rsa_scheme(
    procs: Processes, pki: InteropPki, sigalg: str, digest: str
) -> None:
    async def main() -> None:
        async with quicnet_server(pki.server("rsa2048").server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-sigalgs", sigalg)
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            assert writer.handshake.signature_scheme == getattr(SignatureScheme, sigalg)
            await s_client_closes(proc, reader, writer)
        assert f"Peer signing digest: {digest}\n" in proc.text
        assert "Peer signature type: RSA-PSS\n" in proc.text

    run_async(main())


@pytest.mark.parametrize(
    ("kind", "sigalg"),
    [("rsa2048", "rsa_pkcs1_sha256"), ("ec-p256", "ecdsa_secp384r1_sha384")],
    ids=["pkcs1-not-in-tls13", "p256-key-needs-p256-scheme"],
)
def test_openssl_client_sigalgs_quicnet_cannot_use(
    procs: Processes, pki: InteropPki, kind: str, sigalg: str
) -> None:
    async def main() -> None:
        async with quicnet_server(pki.server(kind).server_config()) as (port, accepted):
            proc = s_client(procs, pki, port, "-sigalgs", sigalg)
            await proc.expect("(?i)alert handshake failure")
            assert await proc.exited() != 0
            assert accepted.empty()

    run_async(main())


def test_quicnet_client_certificate_follows_server_sigalgs(
    procs: Processes, pki: InteropPki
) -> None:
    """s_server asks for RSA-PSS with SHA-384 only: quicnet's RSA client key signs with it."""
    identity = pki.client("rsa2048")
    server, port = s_server(
        procs,
        pki,
        "-Verify",
        "1",
        "-CAfile",
        pki.client_ca.ca_file,
        "-client_sigalgs",
        "rsa_pss_rsae_sha384",
        "-sigalgs",
        "rsa_pss_rsae_sha384:ecdsa_secp256r1_sha256",
    )

    async def main() -> None:
        config = pki.client_config(certificate_chain=identity.chain, private_key=identity.key)
        reader, writer = await open_connection("127.0.0.1", port, config)
        writer.write(b"signed with sha384\n")
        await server.expect("signed with sha384", stream="out")
        server.send(b"accepted\n")
        assert await read_exactly(reader, 9) == b"accepted\n"
        writer.close()

    run_async(main())
    assert "Peer signing digest: SHA384" in server.text
    assert "Peer signature type: RSA-PSS" in server.text


def test_quicnet_client_verifies_openssl_chain(procs: Processes, pki: InteropPki) -> None:
    identity = pki.chained_server()
    assert identity.intermediate_file is not None
    _, port = procs.openssl_server(identity, "-www", "-cert_chain", identity.intermediate_file)
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert handshake.peer_certificates == identity.chain


def test_openssl_client_verifies_quicnet_chain(procs: Processes, pki: InteropPki) -> None:
    identity = pki.chained_server()

    async def main() -> None:
        async with quicnet_server(identity.server_config()) as (port, accepted):
            proc = s_client(procs, pki, port)
            await s_client_closes(proc, *await greet(proc, accepted))
        assert " 1 s:CN = server-chained intermediate CA" in proc.text
        assert "Verify return code: 0 (ok)" in proc.text

    run_async(main())


def test_openssl_client_certificate_chain(procs: Processes, pki: InteropPki) -> None:
    identity = pki.chained_client()
    assert identity.intermediate_file is not None

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(
                procs,
                pki,
                port,
                "-cert",
                identity.cert_file,
                "-key",
                identity.key_file,
                "-cert_chain",
                identity.intermediate_file,
            )
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            assert writer.handshake.peer_certificates == identity.chain
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_quicnet_client_certificate_chain(procs: Processes, pki: InteropPki) -> None:
    identity = pki.chained_client()
    _, port = s_server(
        procs, pki, "-www", "-Verify", "2", "-CAfile", pki.client_ca.ca_file, "-verify_return_error"
    )
    config = pki.client_config(certificate_chain=identity.chain, private_key=identity.key)
    _, page, _ = run_async(www_get(port, config))
    assert identity.leaf.to_pem().strip() in page.replace(b"\r\n", b"\n")


# 0-RTT meets HelloRetryRequest -------------------------------------------------------------------------
def test_quicnet_s_client_early_data_after_hello_retry(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    """s_server (P-256 only) answers the x25519 share with an HRR: 0-RTT is off, the PSK
    still resumes (no anti-replay, which would burn the ticket at the first ClientHello),
    and quicnet sends the early data again in 1-RTT."""
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT before an HRR\n")
    server, port = s_server(procs, pki, "-early_data", "-groups", "P-256", "-no_anti_replay")
    quicnet_s_client(procs, pki, port, "-sess_out", session)
    proc = quicnet_s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
    err = proc.err.decode()
    assert "Resumed: yes" in err
    assert "Early data: not accepted" in err
    assert "Group: secp256r1" in err
    server.wait_for("0-RTT before an HRR")
    server.wait_for("Early data was rejected")
    server.wait_for("Reused session-id")
    assert server.count("0-RTT before an HRR") == 1


def test_openssl_client_early_data_after_hello_retry(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"0-RTT that meets an HRR\n")

    async def main() -> None:
        config = pki.server().server_config(
            max_early_data_size=16384, groups=(NamedGroup.secp256r1,)
        )
        async with quicnet_server(config) as (port, accepted):
            first = s_client(procs, pki, port, "-sess_out", session)
            await s_client_closes(first, *await greet(first, accepted))

            # s_client's ClientHello carries an X25519 share and 0-RTT records follow it.
            second = s_client(procs, pki, port, "-sess_in", session, "-early_data", early, "-msg")
            # s_client's summary: "Reused, TLSv1.3" once resumed, "New, (NONE)" if it failed.
            await second.expect(rb"(New|Reused), (TLSv1\.3|\(NONE\))")
            assert "Reused, TLSv1.3" in second.text, second.describe()
            reader, writer = await greet(second, accepted, "again")
            assert writer.handshake is not None
            assert writer.handshake.resumed and not writer.handshake.early_data_accepted
            assert await s_client_closes(second, reader, writer) == b""
            assert "Early data was rejected" in second.text
            assert second.count(RECEIVED_SERVER_HELLO) == 2

    run_async(main())


def test_quicnet_s_client_early_data_larger_than_ticket_allows(
    procs: Processes, pki: InteropPki, tmp_path: Path
) -> None:
    """OpenSSL's tickets allow 16384 bytes of 0-RTT; the rest must wait for 1-RTT."""
    session, early = tmp_path / "session.pem", tmp_path / "early.txt"
    early.write_bytes(b"x" * 20000 + b"\nend of the early data\n")
    server, port = s_server(procs, pki, "-early_data")
    quicnet_s_client(procs, pki, port, "-sess_out", session)
    assert SessionTicket.from_pem(session.read_bytes()).max_early_data_size == 16384
    quicnet_s_client(procs, pki, port, "-sess_in", session, "-early_data", early)
    server.wait_for("end of the early data")
    assert "too much early data" not in server.text


def test_quicnet_client_early_data_api(procs: Processes, pki: InteropPki) -> None:
    """open_connection(early_data=...) with a ticket that carries ALPN h2."""
    server, port = s_server(procs, pki, "-early_data", "-alpn", "h2")

    async def main() -> None:
        config = pki.client_config(alpn_protocols=("h2",))
        _, writer = await open_connection("127.0.0.1", port, config)
        ticket = await within(writer.wait_session_ticket())
        assert ticket.max_early_data_size > 0 and ticket.alpn_protocol == "h2"
        writer.close()
        await writer.wait_closed()

        config = pki.client_config(alpn_protocols=("h2",), session=ticket, enable_early_data=True)
        _, writer = await open_connection(
            "127.0.0.1", port, config, early_data=b"0-RTT through the API\n"
        )
        assert writer.handshake is not None
        assert writer.handshake.resumed and writer.handshake.early_data_accepted
        assert writer.handshake.alpn_protocol == "h2"
        await server.expect("Early data received:")
        await server.expect("0-RTT through the API")
        writer.write(b"then 1-RTT\n")
        await server.expect("then 1-RTT", stream="out")
        writer.close()

    run_async(main())


def test_quicnet_client_reassembles_fragmented_handshake(procs: Processes, pki: InteropPki) -> None:
    """s_server -max_send_frag 512: the RSA Certificate message spans several records."""
    _, port = s_server(procs, pki, "-www", "-max_send_frag", "512", kind="rsa2048")
    handshake, page, _ = run_async(www_get(port, pki.client_config()))
    assert page.startswith(b"HTTP/1.0 200 ok\r\n")
    assert handshake.peer_certificates[0] == pki.server("rsa2048").leaf


def test_quicnet_server_reassembles_fragmented_client_certificate(
    procs: Processes, pki: InteropPki
) -> None:
    identity = pki.client("rsa2048")

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            proc = s_client(
                procs,
                pki,
                port,
                "-max_send_frag",
                "512",
                "-cert",
                identity.cert_file,
                "-key",
                identity.key_file,
            )
            reader, writer = await greet(proc, accepted)
            assert writer.handshake is not None
            assert writer.handshake.peer_certificates[0] == identity.leaf
            await s_client_closes(proc, reader, writer)

    run_async(main())


def test_openssl_client_certificate_to_quicnet_s_server(procs: Processes, pki: InteropPki) -> None:
    identity = pki.client("ec-p256")
    _, port = quicnet_s_server(procs, pki, "-www", "-Verify", "1", "-CAfile", pki.client_ca.ca_file)
    proc = s_client(
        procs, pki, port, "-quiet", "-cert", identity.cert_file, "-key", identity.key_file
    )
    proc.send(GET)
    assert proc.wait() == 0, proc.describe()
    page = proc.out.decode()
    assert page.startswith("HTTP/1.0 200")
    assert f"Client    : CN={CLIENT_SUBJECT}" in page
