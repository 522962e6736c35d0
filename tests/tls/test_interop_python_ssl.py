"""quicnet's TLS 1.3 against Python's ``ssl`` module (OpenSSL), in both roles.

The quicnet side forces what ``ssl`` cannot choose for TLS 1.3 (cipher suites,
groups); the ``ssl`` side reports what it negotiated where it can. Everything
runs on 127.0.0.1 with free ports; blocking ``ssl`` sockets run in threads so
they can see close_notify precisely (``suppress_ragged_eofs=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import pytest
from interop_helpers import (
    BULK_SIZE,
    CLIENT_SUBJECT,
    KEY_TYPES,
    SERVER_NAME,
    TIMEOUT,
    Accepted,
    InteropPki,
    Relay,
    hash_stream,
    next_secret,
    payload,
    ping_pong,
    python_client_context,
    python_server,
    python_server_context,
    quicnet_server,
    read_exactly,
    read_to_eof,
    run_async,
    sha256,
    traffic_secrets,
    within,
)

from quicnet.crypto import NamedGroup
from quicnet.tls import (
    AlertReceived,
    CipherSuite,
    ClientAuth,
    SessionTicket,
    TLSStreamWriter,
    open_connection,
)

PYTHON_KEY_TYPES = ["ec-p256", "ec-p384", "ed25519", "rsa2048"]
GROUPS = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> InteropPki:
    return InteropPki(tmp_path_factory.mktemp("pki"))


def ssl_object(writer: asyncio.StreamWriter) -> ssl.SSLObject:
    obj: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
    assert obj is not None
    return obj


def cipher_name(writer: asyncio.StreamWriter) -> str:
    """The TLS 1.3 suite the ``ssl`` side negotiated (OpenSSL uses the IANA names)."""
    cipher = ssl_object(writer).cipher()
    assert cipher is not None
    return cipher[0]


async def python_connect(
    port: int, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await within(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=SERVER_NAME)
    )


async def close_python(
    writer: asyncio.StreamWriter, server: tuple[asyncio.StreamReader, TLSStreamWriter]
) -> None:
    """Close an ``ssl`` client: its close_notify ends the quicnet server's stream, whose
    close_notify in turn completes the ``ssl`` shutdown (which waits for it)."""
    writer.close()
    reader, server_writer = server
    assert await read_to_eof(reader) == b""
    assert server_writer.connection.peer_closed
    server_writer.close()
    await within(writer.wait_closed())


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    try:
        yield sock
    finally:
        sock.close()


# Cipher suites --------------------------------------------------------------------------
@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_quicnet_client_cipher_suite(pki: InteropPki, suite: CipherSuite) -> None:
    async def main() -> None:
        async with python_server(python_server_context(pki.server())) as (port, accepted):
            client = await open_connection(
                "127.0.0.1", port, pki.client_config(cipher_suites=(suite,))
            )
            server = await accepted.next()
            await ping_pong(client, server)
            assert client[1].handshake is not None
            assert client[1].handshake.cipher_suite == suite
            assert cipher_name(server[1]) == suite.name
            assert ssl_object(server[1]).version() == "TLSv1.3"
            client[1].close()

    run_async(main())


@pytest.mark.parametrize("suite", list(CipherSuite), ids=lambda s: s.name)
def test_python_client_cipher_suite(pki: InteropPki, suite: CipherSuite) -> None:
    async def main() -> None:
        config = pki.server().server_config(cipher_suites=(suite,))
        async with quicnet_server(config) as (port, accepted):
            client = await python_connect(port, python_client_context(pki.server_ca.ca_file))
            server = await accepted.next()
            await ping_pong(client, server)
            assert cipher_name(client[1]) == suite.name
            assert server[1].handshake is not None
            assert server[1].handshake.cipher_suite == suite
            await close_python(client[1], server)

    run_async(main())


# Key exchange groups --------------------------------------------------------------------------
@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_quicnet_client_group(pki: InteropPki, group: NamedGroup) -> None:
    async def main() -> None:
        async with python_server(python_server_context(pki.server())) as (port, accepted):
            config = pki.client_config(groups=(group,), key_share_groups=(group,))
            async with Relay(port) as relay:
                client = await open_connection("127.0.0.1", relay.port, config)
                server = await accepted.next()
                await ping_pong(client, server)
            assert client[1].handshake is not None
            assert client[1].handshake.group == group
            assert not relay.saw_hello_retry()
            client[1].close()

    run_async(main())


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
def test_python_client_group(pki: InteropPki, group: NamedGroup) -> None:
    """The quicnet server accepts only ``group``: OpenSSL's x25519 share or an HRR gets there."""

    async def main() -> None:
        config = pki.server().server_config(groups=(group,))
        async with quicnet_server(config) as (port, accepted), Relay(port) as relay:
            client = await python_connect(relay.port, python_client_context(pki.server_ca.ca_file))
            server = await accepted.next()
            await ping_pong(client, server)
            await close_python(client[1], server)
        assert server[1].handshake is not None
        assert server[1].handshake.group == group
        # OpenSSL's default ClientHello carries an x25519 share only.
        assert relay.saw_hello_retry() == (group != NamedGroup.x25519)

    run_async(main())


# HelloRetryRequest --------------------------------------------------------------------------
def test_quicnet_client_hello_retry_request(pki: InteropPki) -> None:
    """quicnet sends an x25519 share; the ``ssl`` server takes only P-256 and asks again."""

    async def main() -> None:
        ctx = python_server_context(pki.server(), curve="prime256v1")
        async with python_server(ctx) as (port, accepted), Relay(port) as relay:
            config = pki.client_config(
                groups=(NamedGroup.x25519, NamedGroup.secp256r1),
                key_share_groups=(NamedGroup.x25519,),
            )
            client = await open_connection("127.0.0.1", relay.port, config)
            server = await accepted.next()
            await ping_pong(client, server)
            client[1].close()
        assert relay.saw_hello_retry()
        assert len(relay.server_hellos()) == 2
        assert client[1].handshake is not None
        assert client[1].handshake.group == NamedGroup.secp256r1

    run_async(main())


# Signature algorithms via the server's key type ---------------------------------------------------
@pytest.mark.parametrize("kind", PYTHON_KEY_TYPES)
def test_quicnet_client_verifies_python_server_key(pki: InteropPki, kind: str) -> None:
    identity = pki.server(kind)

    async def main() -> None:
        async with python_server(python_server_context(identity)) as (port, accepted):
            client = await open_connection("127.0.0.1", port, pki.client_config())
            server = await accepted.next()
            await ping_pong(client, server)
            handshake = client[1].handshake
            assert handshake is not None
            assert handshake.signature_scheme == KEY_TYPES[kind][2]
            assert handshake.peer_certificates[0] == identity.leaf
            client[1].close()

    run_async(main())


@pytest.mark.parametrize("kind", PYTHON_KEY_TYPES)
def test_python_client_verifies_quicnet_server_key(pki: InteropPki, kind: str) -> None:
    identity = pki.server(kind)

    async def main() -> None:
        async with quicnet_server(identity.server_config()) as (port, accepted):
            client = await python_connect(port, python_client_context(pki.server_ca.ca_file))
            server = await accepted.next()
            await ping_pong(client, server)
            peer = ssl_object(client[1]).getpeercert(binary_form=True)
            assert peer == identity.leaf.to_der()
            assert server[1].handshake is not None
            assert server[1].handshake.signature_scheme == KEY_TYPES[kind][2]
            await close_python(client[1], server)

    run_async(main())


# ALPN ------------------------------------------------------------------------------------------
def test_quicnet_client_alpn(pki: InteropPki) -> None:
    """The server's preference wins among what the client offers."""

    async def main() -> None:
        ctx = python_server_context(pki.server(), alpn=("h2", "http/1.1"))
        async with python_server(ctx) as (port, accepted):
            config = pki.client_config(alpn_protocols=("http/1.1", "h2"))
            client = await open_connection("127.0.0.1", port, config)
            server = await accepted.next()
            await ping_pong(client, server)
            assert client[1].handshake is not None
            assert client[1].handshake.alpn_protocol == "h2"
            assert ssl_object(server[1]).selected_alpn_protocol() == "h2"
            client[1].close()

    run_async(main())


def test_quicnet_client_alpn_ignored_by_python_server(pki: InteropPki) -> None:
    """``ssl`` servers answer an ALPN mismatch with no ALPN at all (allowed by RFC 7301)."""

    async def main() -> None:
        ctx = python_server_context(pki.server(), alpn=("h2",))
        async with python_server(ctx) as (port, accepted):
            config = pki.client_config(alpn_protocols=("http/1.1",))
            client = await open_connection("127.0.0.1", port, config)
            server = await accepted.next()
            await ping_pong(client, server)
            assert client[1].handshake is not None
            assert client[1].handshake.alpn_protocol is None
            assert ssl_object(server[1]).selected_alpn_protocol() is None
            client[1].close()

    run_async(main())


def test_python_client_alpn(pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(alpn_protocols=("h2", "http/1.1"))
        async with quicnet_server(config) as (port, accepted):
            ctx = python_client_context(pki.server_ca.ca_file, alpn=("http/1.1", "h2"))
            client = await python_connect(port, ctx)
            server = await accepted.next()
            await ping_pong(client, server)
            assert ssl_object(client[1]).selected_alpn_protocol() == "h2"
            assert server[1].handshake is not None
            assert server[1].handshake.alpn_protocol == "h2"
            await close_python(client[1], server)

    run_async(main())


def test_python_client_alpn_mismatch_gets_no_application_protocol(pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(alpn_protocols=("h2",))
        async with quicnet_server(config) as (port, accepted):
            ctx = python_client_context(pki.server_ca.ca_file, alpn=("http/1.1",))
            with pytest.raises(ssl.SSLError, match=r"(?i)no.application.protocol"):
                await python_connect(port, ctx)
            assert accepted.empty()

    run_async(main())


# Client certificates ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["ec-p256", "rsa2048", "ed25519"])
def test_quicnet_client_certificate(pki: InteropPki, kind: str) -> None:
    identity = pki.client(kind)

    async def main() -> None:
        ctx = python_server_context(pki.server(), client_ca=pki.client_ca.ca_file)
        async with python_server(ctx) as (port, accepted):
            config = pki.client_config(certificate_chain=identity.chain, private_key=identity.key)
            client = await open_connection("127.0.0.1", port, config)
            server = await accepted.next()
            await ping_pong(client, server)
            peer = ssl_object(server[1]).getpeercert()
            assert peer is not None
            assert (("commonName", CLIENT_SUBJECT),) in peer["subject"]
            assert ssl_object(server[1]).getpeercert(binary_form=True) == identity.leaf.to_der()
            client[1].close()

    run_async(main())


def _python_server_handshake_error(sock: socket.socket, ctx: ssl.SSLContext) -> str:
    """Blocking ``ssl`` server (asyncio's drops the alert): the handshake error it saw."""
    conn, _ = sock.accept()
    conn.settimeout(TIMEOUT)
    try:
        ctx.wrap_socket(conn, server_side=True).close()
    except ssl.SSLError as exc:
        return str(exc)
    finally:
        conn.close()
    return "no error"


def test_quicnet_client_without_certificate_is_refused(pki: InteropPki) -> None:
    """TLS 1.3: the client's handshake ends first; the refusal arrives as an alert."""
    ctx = python_server_context(pki.server(), client_ca=pki.client_ca.ca_file)

    async def main() -> None:
        with listener() as sock:
            server = asyncio.ensure_future(
                asyncio.to_thread(_python_server_handshake_error, sock, ctx)
            )
            port = sock.getsockname()[1]
            reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
            with pytest.raises(AlertReceived, match="certificate_required"):
                await read_to_eof(reader)
            assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in await within(server)
            writer.close()

    run_async(main())


@pytest.mark.parametrize("kind", ["ec-p256", "rsa2048", "ed25519"])
def test_python_client_certificate(pki: InteropPki, kind: str) -> None:
    identity = pki.client(kind)

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            ctx = python_client_context(pki.server_ca.ca_file, identity=identity)
            client = await python_connect(port, ctx)
            server = await accepted.next()
            await ping_pong(client, server)
            assert server[1].handshake is not None
            assert server[1].handshake.peer_certificates[0] == identity.leaf
            await close_python(client[1], server)

    run_async(main())


def test_python_client_without_certificate_is_refused(pki: InteropPki) -> None:
    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            reader, writer = await python_connect(
                port, python_client_context(pki.server_ca.ca_file)
            )
            with pytest.raises(ssl.SSLError, match=r"(?i)certificate.required"):
                await read_to_eof(reader)
            assert accepted.empty()
            writer.close()

    run_async(main())


def test_python_client_certificate_from_unknown_ca_is_refused(pki: InteropPki) -> None:
    """A client certificate that does not chain to ``client_trust_roots`` is rejected."""
    stranger = pki.server("ec-p256")  # issued by the server CA, not the client CA

    async def main() -> None:
        config = pki.server().server_config(
            client_auth=ClientAuth.REQUIRED, client_trust_roots=[pki.client_ca.root]
        )
        async with quicnet_server(config) as (port, accepted):
            ctx = python_client_context(pki.server_ca.ca_file, identity=stranger)
            reader, writer = await python_connect(port, ctx)
            with pytest.raises(ssl.SSLError, match=r"(?i)unknown.ca|bad.certificate"):
                await read_to_eof(reader)
            assert accepted.empty()
            writer.close()

    run_async(main())


# Resumption ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hrr", "stateful"),
    [(False, False), (True, False), (False, True)],
    ids=["direct", "after-hrr", "stateful-ticket"],
)
def test_quicnet_client_resumes_with_python_ticket(
    pki: InteropPki, hrr: bool, stateful: bool
) -> None:
    """Stateless tickets, after an HRR too; with OP_NO_TICKET the ticket is a session id."""
    groups = {"groups": (NamedGroup.x25519, NamedGroup.secp256r1)} if hrr else {}
    ctx = python_server_context(pki.server(), curve="prime256v1" if hrr else None)
    if stateful:
        ctx.options |= ssl.OP_NO_TICKET

    async def main() -> None:
        async with python_server(ctx) as (port, accepted):
            client = await open_connection("127.0.0.1", port, pki.client_config(**groups))
            server = await accepted.next()
            await ping_pong(client, server)
            ticket = await within(client[1].wait_session_ticket())
            assert client[1].handshake is not None and not client[1].handshake.resumed
            client[1].close()
            await client[1].wait_closed()

            config = pki.client_config(session=ticket, **groups)
            async with Relay(port) as relay:
                client = await open_connection("127.0.0.1", relay.port, config)
                server = await accepted.next()
                await ping_pong(client, server, b"again")
            handshake = client[1].handshake
            assert handshake is not None
            assert handshake.resumed
            assert handshake.peer_certificates == ()  # no certificate on resumption
            assert ssl_object(server[1]).session_reused
            assert relay.saw_hello_retry() == hrr
            if hrr:
                assert handshake.group == NamedGroup.secp256r1
            client[1].close()

    run_async(main())


def _python_client_session(
    port: int, ctx: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[ssl.SSLSession, bool]:
    """Blocking ``ssl`` client: say hello, read the greeting; (session, reused)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        ctx.wrap_socket(raw, server_hostname=SERVER_NAME, session=session) as tls,
    ):
        tls.sendall(b"hello")
        greeting = b""
        while len(greeting) < 8:
            chunk = tls.recv(8 - len(greeting))
            assert chunk, "the server closed before its greeting"
            greeting += chunk
        assert greeting == b"greeting"
        # The tickets came before the greeting, so the session has one now.
        assert tls.session is not None and tls.session.has_ticket
        return tls.session, bool(tls.session_reused)


@pytest.mark.parametrize("hrr", [False, True], ids=["direct", "after-hrr"])
def test_python_client_resumes_with_quicnet_ticket(pki: InteropPki, hrr: bool) -> None:
    config = pki.server().server_config(
        groups=(NamedGroup.secp384r1,) if hrr else (NamedGroup.x25519,)
    )
    ctx = python_client_context(pki.server_ca.ca_file)

    async def serve_one(accepted: Accepted[TLSStreamWriter]) -> bool:
        reader, writer = await accepted.next()
        assert await read_exactly(reader, 5) == b"hello"
        writer.write(b"greeting")
        await writer.drain()
        assert writer.handshake is not None
        return writer.handshake.resumed

    async def main() -> None:
        async with quicnet_server(config) as (port, accepted):
            first = asyncio.ensure_future(serve_one(accepted))
            session, reused = await within(
                asyncio.to_thread(_python_client_session, port, ctx, None)
            )
            assert not reused
            assert not await within(first)

            second = asyncio.ensure_future(serve_one(accepted))
            async with Relay(port) as relay:
                _, reused = await within(
                    asyncio.to_thread(_python_client_session, relay.port, ctx, session)
                )
            assert reused
            assert await within(second)
            assert relay.saw_hello_retry() == hrr

    run_async(main())


def test_quicnet_session_survives_pem_round_trip(pki: InteropPki) -> None:
    """A ticket from an ``ssl`` server, saved as PEM (what s_client -sess_out does), resumes."""

    async def main() -> None:
        async with python_server(python_server_context(pki.server())) as (port, accepted):
            client = await open_connection("127.0.0.1", port, pki.client_config())
            await accepted.next()
            ticket = await within(client[1].wait_session_ticket())
            client[1].close()
            restored = SessionTicket.from_pem(ticket.to_pem())
            assert restored.to_bytes() == ticket.to_bytes()
            client = await open_connection("127.0.0.1", port, pki.client_config(session=restored))
            server = await accepted.next()
            await ping_pong(client, server)
            assert client[1].handshake is not None and client[1].handshake.resumed
            assert ssl_object(server[1]).session_reused
            client[1].close()

    run_async(main())


# KeyUpdate -----------------------------------------------------------------------------------------
async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 16):
        writer.write(data)
        await writer.drain()


def test_quicnet_client_key_update_mid_transfer(pki: InteropPki) -> None:
    """KeyUpdate while data flows both ways: the ``ssl`` server answers an update request."""
    blocks = [payload(256 * 1024, seed) for seed in range(6)]

    async def main() -> None:
        async with python_server(python_server_context(pki.server())) as (port, accepted):
            reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
            s_reader, s_writer = await accepted.next()
            echo = asyncio.ensure_future(_echo(s_reader, s_writer))
            read0, write0 = traffic_secrets(writer)

            # Two blocks in flight, update (asking the peer to update too), two more.
            for i, block in enumerate(blocks[:4]):
                writer.write(block)
                if i == 1:
                    writer.key_update(request_peer=True)
            await writer.drain()
            echoed = await read_exactly(reader, sum(map(len, blocks[:4])))
            assert echoed == b"".join(blocks[:4])
            assert traffic_secrets(writer) == (
                next_secret(writer, read0),
                next_secret(writer, write0),
            )

            # An update the peer need not answer: only our sending key moves.
            writer.key_update(request_peer=False)
            writer.write(blocks[4] + blocks[5])
            echoed = await read_exactly(reader, len(blocks[4]) * 2)
            assert echoed == blocks[4] + blocks[5]
            assert traffic_secrets(writer) == (
                next_secret(writer, read0),
                next_secret(writer, write0, 2),
            )
            writer.close()
            await within(echo)

    run_async(main())


def test_quicnet_server_key_update_mid_transfer(pki: InteropPki) -> None:
    blocks = [payload(256 * 1024, seed) for seed in range(10, 14)]

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            c_reader, c_writer = await python_connect(
                port, python_client_context(pki.server_ca.ca_file)
            )
            reader, writer = await accepted.next()
            read0, write0 = traffic_secrets(writer)

            async def echo_with_update() -> None:
                sent = 0
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    sent += len(data)
                    if sent >= len(blocks[0]) and traffic_secrets(writer)[1] == write0:
                        writer.key_update(request_peer=True)
                    await writer.drain()

            echo = asyncio.ensure_future(echo_with_update())
            c_writer.write(b"".join(blocks))
            await c_writer.drain()
            echoed = await read_exactly(c_reader, sum(map(len, blocks)))
            assert echoed == b"".join(blocks)
            # The ``ssl`` client answered the request before its next bytes.
            c_writer.write(b"after the update")
            await c_writer.drain()
            assert await read_exactly(c_reader, 16) == b"after the update"
            assert traffic_secrets(writer) == (
                next_secret(writer, read0),
                next_secret(writer, write0),
            )
            c_writer.close()
            await within(echo)  # ends at the ssl client's close_notify
            assert writer.connection.peer_closed
            writer.close()
            await within(c_writer.wait_closed())

    run_async(main())


# 20 MB each way --------------------------------------------------------------------------------------
def test_bulk_20mb_quicnet_client_python_server(pki: InteropPki) -> None:
    up, down = payload(BULK_SIZE, 1), payload(BULK_SIZE, 2)

    async def main() -> None:
        async with python_server(python_server_context(pki.server())) as (port, accepted):
            reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
            s_reader, s_writer = await accepted.next()

            async def python_side() -> tuple[str, int]:
                s_writer.write(down)
                received = await hash_stream(s_reader, BULK_SIZE)
                await s_writer.drain()
                s_writer.close()  # close_notify after the last byte
                return received

            server_task = asyncio.ensure_future(python_side())
            writer.write(up)
            await writer.drain()
            client_received = await within(hash_stream(reader))
            assert await within(server_task) == (sha256(up), BULK_SIZE)
            assert client_received == (sha256(down), BULK_SIZE)
            assert writer.connection.peer_closed  # EOF came from close_notify
            writer.close()

    run_async(main())


def test_bulk_20mb_python_client_quicnet_server(pki: InteropPki) -> None:
    up, down = payload(BULK_SIZE, 3), payload(BULK_SIZE, 4)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            c_reader, c_writer = await python_connect(
                port, python_client_context(pki.server_ca.ca_file)
            )
            reader, writer = await accepted.next()

            async def quicnet_side() -> tuple[str, int]:
                writer.write(down)
                received = await hash_stream(reader, BULK_SIZE)
                await writer.drain()
                writer.write_eof()
                return received

            server_task = asyncio.ensure_future(quicnet_side())
            c_writer.write(up)
            await c_writer.drain()
            client_received = await within(hash_stream(c_reader))
            assert await within(server_task) == (sha256(up), BULK_SIZE)
            assert client_received == (sha256(down), BULK_SIZE)
            await close_python(c_writer, (reader, writer))

    run_async(main())


# close_notify ---------------------------------------------------------------------------------------
def _python_server_after_close_notify(sock: socket.socket, ctx: ssl.SSLContext) -> bytes:
    """Read to close_notify (truncation raises), answer, then send our close_notify."""
    conn, _ = sock.accept()
    conn.settimeout(TIMEOUT)
    with ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False) as tls:
        received = b""
        while chunk := tls.recv(1 << 16):
            received += chunk
        tls.sendall(b"answer after your close_notify")
        tls.unwrap().close()
    return received


def test_quicnet_client_close_notify_half_close(pki: InteropPki) -> None:
    """quicnet's write_eof is a close_notify the ``ssl`` server reads as a clean EOF; the
    server may still answer, then its close_notify ends quicnet's reading."""
    ctx = python_server_context(pki.server())

    async def main() -> None:
        with listener() as sock:
            port = sock.getsockname()[1]
            server = asyncio.ensure_future(
                asyncio.to_thread(_python_server_after_close_notify, sock, ctx)
            )
            reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
            writer.write(b"request, then close_notify")
            writer.write_eof()
            assert await read_to_eof(reader) == b"answer after your close_notify"
            assert writer.connection.peer_closed
            assert await within(server) == b"request, then close_notify"
            writer.close()

    run_async(main())


def _python_client_unwrap(port: int, ctx: ssl.SSLContext) -> bytes:
    """Wait for the server's word, send, then close_notify; unwrap() returns only when the
    peer's close_notify came."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        tls = ctx.wrap_socket(raw, server_hostname=SERVER_NAME, suppress_ragged_eofs=False)
        assert tls.recv(5) == b"ready"
        tls.sendall(b"last words")
        plain = tls.unwrap()
        return plain.recv(16)  # after both close_notify: only the TCP FIN is left


def test_python_client_close_notify(pki: InteropPki) -> None:
    ctx = python_client_context(pki.server_ca.ca_file)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            client = asyncio.ensure_future(asyncio.to_thread(_python_client_unwrap, port, ctx))
            reader, writer = await accepted.next()
            writer.write(b"ready")
            assert await read_to_eof(reader) == b"last words"
            assert writer.connection.peer_closed  # a close_notify, not a bare TCP FIN
            writer.close()
            assert await within(client) == b""

    run_async(main())


def _python_client_closes_with_its_finished(port: int, ctx: ssl.SSLContext) -> str:
    """An ``ssl`` client (memory BIOs) whose Finished, data and close_notify leave in one
    send; then it waits for the server's close_notify."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=SERVER_NAME)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if flight := outgoing.read():
                    sock.sendall(flight)
                incoming.write(sock.recv(1 << 16))
        tls.write(b"last words")
        with contextlib.suppress(ssl.SSLWantReadError):
            tls.unwrap()  # queues close_notify, then wants the peer's
        sock.sendall(outgoing.read())  # Finished + data + close_notify together
        while data := sock.recv(1 << 16):
            incoming.write(data)
            try:
                tls.unwrap()
                return "close_notify"
            except ssl.SSLWantReadError:
                continue
        return "TCP FIN without close_notify"


def test_python_client_close_notify_right_after_finished(pki: InteropPki) -> None:
    ctx = python_client_context(pki.server_ca.ca_file)

    async def main() -> None:
        async with quicnet_server(pki.server().server_config()) as (port, accepted):
            client = asyncio.ensure_future(
                asyncio.to_thread(_python_client_closes_with_its_finished, port, ctx)
            )
            reader, writer = await accepted.next()
            assert writer.connection.peer_closed  # the record layer saw the close_notify
            assert await read_exactly(reader, 10) == b"last words"
            try:
                # The EOF is due at once: bounded at 5 s to keep a failure cheap.
                assert await within(reader.read(), 5) == b""
            finally:
                writer.close()
                assert await within(client) == "close_notify"

    run_async(main())


def test_quicnet_client_tells_truncation_from_close_notify(pki: InteropPki) -> None:
    """A TCP FIN without close_notify ends the stream, but ``peer_closed`` stays False."""
    ctx = python_server_context(pki.server())

    def truncating_server(sock: socket.socket) -> None:
        conn, _ = sock.accept()
        conn.settimeout(TIMEOUT)
        tls = ctx.wrap_socket(conn, server_side=True)
        tls.sendall(b"cut")
        tls.recv(1)  # until the client's byte: the handshake is over on both sides
        tls.shutdown(socket.SHUT_RDWR)  # TCP FIN, no close_notify
        tls.close()

    async def main() -> None:
        with listener() as sock:
            port = sock.getsockname()[1]
            server = asyncio.ensure_future(asyncio.to_thread(truncating_server, sock))
            reader, writer = await open_connection("127.0.0.1", port, pki.client_config())
            writer.write(b"x")
            assert await read_to_eof(reader) == b"cut"
            assert not writer.connection.peer_closed
            await within(server)
            writer.close()

    run_async(main())
