"""``s_server``: a TLS 1.3 server with OpenSSL's flags (``-www`` for a status page)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

from quicnet.cli.common import Parser, network_error, parse_accept, read_passphrase
from quicnet.cli.ech import add_ech_server_flags, ech_server_keys
from quicnet.cli.s_client import start_stdin_reader
from quicnet.cli.tls_common import (
    add_tls_flags,
    key_log_writer,
    load_identity,
    load_roots,
    load_staple,
    parse_ciphersuites,
    parse_groups,
)
from quicnet.crypto import NamedGroup, dev_identity, format_fingerprint
from quicnet.tls import ClientAuth, ServerConfig, TLSStreamWriter, start_server
from quicnet.tls.config import DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS

_MAX_REQUEST = 1 << 14


def status_page(writer: TLSStreamWriter) -> bytes:
    """The ``-www`` reply: HTTP/1.0 200 with what the handshake negotiated."""
    h = writer.handshake
    assert h is not None
    lines = [
        "quicnet s_server",
        "Protocol  : TLSv1.3",
        f"Cipher    : {h.cipher_suite.name}",
        f"Group     : {NamedGroup(h.group).name if h.group is not None else '(PSK only)'}",
        f"ALPN      : {h.alpn_protocol or '(none)'}",
        f"SNI       : {h.server_name or '(none)'}",
        f"Resumed   : {'yes' if h.resumed else 'no'}",
        f"Early data: {'accepted' if h.early_data_accepted else 'no'}",
    ]
    if h.peer_certificates:
        lines.append(f"Client    : {h.peer_certificates[0].subject}")
    body = "<html><body><pre>\n" + "\n".join(lines) + "\n</pre></body></html>\r\n"
    return b"HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n" + body.encode()


async def run(argv: list[str]) -> int:
    """The ``s_server`` command on a running event loop."""
    p = Parser(
        "s_server", "TLS 1.3 server: prints what clients send; -www answers GET / with a page."
    )
    p.add_argument("-accept", default="4433", metavar="[HOST:]PORT", help="0 picks a free port")
    p.add_argument("-www", action="store_true", help="answer 'GET /' with an HTTP/1.0 status page")
    p.add_argument("-verify", type=int, metavar="DEPTH", help="ask for a client certificate")
    p.add_argument(
        "-Verify", dest="Verify", type=int, metavar="DEPTH", help="require a client certificate"
    )
    p.add_argument("-early_data", action="store_true", help="accept 0-RTT data")
    p.add_argument("-naccept", type=int, metavar="N", help="exit after N connections")
    p.add_argument("-num_tickets", type=int, default=2, metavar="N")
    p.add_argument(
        "-status_file", metavar="FILE", help="staple this DER OCSP response (RFC 6066 §8)"
    )
    add_tls_flags(p)
    add_ech_server_flags(p)
    a = p.parse_args(argv)

    host, port = parse_accept(a.accept)
    chain, key = load_identity(a.cert, a.key, read_passphrase(a.passin))
    development = key is None
    if key is None:
        ident = dev_identity()
        chain, key = list(ident.certificate_chain), ident.private_key
    client_auth = (
        ClientAuth.REQUIRED
        if a.Verify is not None
        else ClientAuth.OPTIONAL
        if a.verify is not None
        else ClientAuth.NONE
    )
    staple = load_staple(a.status_file) if a.status_file else None
    config = ServerConfig(
        certificate_chain=chain,
        private_key=key,
        alpn_protocols=a.alpn.split(",") if a.alpn else (),
        cipher_suites=parse_ciphersuites(a.ciphersuites)
        if a.ciphersuites
        else DEFAULT_CIPHER_SUITES,
        groups=parse_groups(a.groups) if a.groups else DEFAULT_GROUPS,
        client_auth=client_auth,
        client_trust_roots=load_roots(a.CAfile) if client_auth else (),
        max_early_data_size=16384 if a.early_data else 0,
        tickets_to_send=a.num_tickets,
        key_log=key_log_writer(a.keylogfile),
        ocsp_staple=staple,
        ech_keys=ech_server_keys(a),
    )
    clients: set[TLSStreamWriter] = set()
    tasks: list[asyncio.Task[None]] = []
    remaining = a.naccept
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: TLSStreamWriter) -> None:
        nonlocal remaining
        clients.add(writer)
        try:
            if a.www:
                request = b""
                with contextlib.suppress(asyncio.LimitOverrunError, asyncio.IncompleteReadError):
                    request = await reader.readuntil(b"\r\n\r\n")
                if request.startswith(b"GET "):
                    writer.write(status_page(writer))
                else:
                    writer.write(b"HTTP/1.0 400 bad request\r\n\r\n")
                await writer.drain()
            else:
                while data := await reader.read(1 << 16):
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
        except (OSError, Exception) as exc:
            if not a.quiet:
                sys.stderr.write(f"s_server: connection ended: {exc}\n")
        finally:
            clients.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if remaining is not None:
                remaining -= 1
                if remaining <= 0:
                    done.set()

    try:
        server = await start_server(handle, host, port, config)
    except OSError as exc:  # in use, not a local address, unknown name
        raise network_error(f"cannot listen on {a.accept}", exc) from None
    if development:
        sys.stderr.write(
            "s_server: no -cert given, using a fresh development identity\n"
            f"  pin it with: -pin {chain[0].fingerprint().hex()}\n"
        )
    bound = server.sockets[0].getsockname()
    print(f"ACCEPT {bound[0]}:{bound[1]}", flush=True)
    if not a.quiet:
        sys.stderr.write(
            f"s_server: certificate SHA256 Fingerprint={format_fingerprint(chain[0].fingerprint())}\n"
        )
    if not a.www:
        stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        start_stdin_reader(stdin)

        async def broadcast() -> None:
            while (chunk := await stdin.get()) is not None:
                for w in list(clients):
                    with contextlib.suppress(Exception):
                        w.write(chunk)

        tasks.append(asyncio.ensure_future(broadcast()))
    async with server:
        if remaining is None:
            await server.serve_forever()
        else:
            await done.wait()
    for task in tasks:
        task.cancel()
    return 0


def s_server(argv: list[str]) -> int:
    """``quicnet s_server``: a TLS 1.3 server over TCP that prints what clients send.

    With ``-www`` it answers ``GET /`` with a status page. Ctrl-C stops it
    with status 0.
    """
    try:
        return asyncio.run(run(argv))
    except KeyboardInterrupt:
        return 0
