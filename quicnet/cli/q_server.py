"""``q_server``: a QUIC server that echoes streams, or serves files over HTTP/0.9 (hq-interop)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from pathlib import Path

from quicnet.cli.common import CliError, Parser, network_error, parse_accept, read_passphrase
from quicnet.cli.ech import add_ech_server_flags, ech_server_keys
from quicnet.cli.tls_common import key_log_writer, load_identity
from quicnet.crypto import dev_identity, hmac_digest, random_bytes
from quicnet.crypto.keyfile import write_private_file
from quicnet.io.aio import run, serve
from quicnet.quic import (
    ConnectionTerminated,
    DatagramReceived,
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    QuicUsageError,
    StreamDataReceived,
)
from quicnet.quic.controllers import CONTROLLERS
from quicnet.tls import TicketKeys

_MAX_REQUEST = 4096


def _resolve(root: Path, request: bytes) -> Path | None:
    """The file a ``GET /path`` names inside ``root`` (None if malformed or outside)."""
    line = request.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("latin-1").strip()
    if not line.startswith("GET "):
        return None
    target = line[4:].split(" ", 1)[0].split("?", 1)[0]
    path = (root / target.lstrip("/")).resolve()
    if root not in path.parents and path != root:
        return None  # no escaping the served directory
    return path if path.is_file() else None


def _server_secret(path: str) -> bytes:
    """The 32-byte secret in ``path``, made (mode 0600) when the file does not exist."""
    try:
        with open(path, "rb") as f:
            secret = f.read()
    except FileNotFoundError:
        secret = random_bytes(32)
        write_private_file(path, secret)
    except OSError as exc:
        raise CliError(f"cannot read -ticket_key_file {path!r}: {exc.strerror or exc}") from None
    if len(secret) != 32:
        raise CliError(f"-ticket_key_file {path!r} does not hold a 32-byte key")
    return secret


async def main(argv: list[str]) -> int:
    """The ``q_server`` command on a running event loop."""
    p = Parser(
        "q_server", "QUIC server: echoes each stream, or with -www serves files (hq-interop)."
    )
    p.add_argument("-accept", default="4433", metavar="[HOST:]PORT")
    p.add_argument("-cert", metavar="FILE")
    p.add_argument("-key", metavar="FILE")
    p.add_argument("-pass", dest="passin", metavar="ARG")
    p.add_argument(
        "-www", metavar="DIR", help="serve files from DIR over HTTP/0.9 (ALPN hq-interop)"
    )
    p.add_argument("-retry", action="store_true", help="validate client addresses with Retry")
    p.add_argument(
        "-ticket_key_file",
        metavar="FILE",
        help="keep the session ticket and NEW_TOKEN keys in FILE (made if absent): a"
        " restarted server resumes its clients' sessions and accepts their tokens",
    )
    p.add_argument(
        "-early_data",
        action="store_true",
        help="issue tickets that allow 0-RTT and accept it, once per ticket (anti-replay)",
    )
    p.add_argument("-alpn", metavar="P1,P2")
    p.add_argument("-keylogfile", metavar="FILE")
    p.add_argument(
        "-cc",
        choices=sorted(CONTROLLERS),
        default="newreno",
        help="congestion control: newreno (RFC 9002, default), cubic (RFC 9438) or bbr",
    )
    p.add_argument(
        "-preferred_address",
        metavar="HOST:PORT",
        help="offer this address (a second socket) for clients to move to after the"
        " handshake (RFC 9000 §9.6); port 0 picks one",
    )
    p.add_argument("-quiet", action="store_true")
    add_ech_server_flags(p)
    a = p.parse_args(argv)

    host, port = parse_accept(a.accept)
    chain, key = load_identity(a.cert, a.key, read_passphrase(a.passin))
    development = key is None
    if key is None:
        ident = dev_identity()
        chain, key = list(ident.certificate_chain), ident.private_key
    root = Path(a.www).resolve() if a.www else None
    if root is not None and not root.is_dir():
        raise CliError(f"-www {a.www!r} is not a directory")
    alpn = a.alpn.split(",") if a.alpn else (["hq-interop"] if root else ["quicnet", "hq-interop"])
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=alpn,
        certificate_chain=chain,
        private_key=key,
        key_log=key_log_writer(a.keylogfile),
        ech_keys=ech_server_keys(a),
        enable_early_data=a.early_data,
        congestion_control=a.cc,
    )
    if a.preferred_address:
        preferred = parse_accept(a.preferred_address)
        try:
            if ":" in preferred[0]:
                config = dataclasses.replace(config, preferred_address_v6=preferred)
            else:
                config = dataclasses.replace(config, preferred_address_v4=preferred)
        except QuicUsageError as exc:
            raise CliError(f"-preferred_address: {exc}") from None
    endpoint_options: dict[str, object] = {"require_retry": a.retry}
    if a.ticket_key_file:
        secret = _server_secret(a.ticket_key_file)
        config.ticket_keys = TicketKeys(key=hmac_digest("sha256", secret, b"quicnet tickets"))
        endpoint_options["address_token_secret"] = hmac_digest(
            "sha256", secret, b"quicnet address tokens"
        )
    #: Stream bytes each connection reported before its HandshakeCompleted (0-RTT).
    early_bytes: dict[int, int] = {}
    completed: set[int] = set()
    requests: dict[tuple[int, int], bytearray] = {}
    #: (connection, peer's unidirectional stream) -> our stream carrying its echo.
    echo_streams: dict[tuple[int, int], int] = {}

    def echo(conn: QuicConnection, event: StreamDataReceived) -> None:
        stream_id = event.stream_id
        if stream_id & 0x2:
            # RFC 9000 §2.1: a peer's unidirectional stream is receive-only for us;
            # its echo goes back on a unidirectional stream of our own.
            key_ = (id(conn), stream_id)
            if key_ not in echo_streams:
                echo_streams[key_] = conn.create_stream(bidirectional=False)
            stream_id = echo_streams[key_]
            if event.end_stream:
                del echo_streams[key_]
        conn.send_stream_data(stream_id, event.data, event.end_stream)

    def handle(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if id(conn) not in completed:
                early_bytes[id(conn)] = early_bytes.get(id(conn), 0) + len(event.data)
            if root is None:
                echo(conn, event)
                return
            if event.stream_id & 0x2:
                return  # hq-interop requests come on bidirectional streams only
            key_ = (id(conn), event.stream_id)
            buf = requests.setdefault(key_, bytearray())
            buf += event.data
            if len(buf) > _MAX_REQUEST:
                conn.reset_stream(event.stream_id, 0x101)
                requests.pop(key_, None)
            elif event.end_stream or b"\n" in buf:
                requests.pop(key_, None)
                path = _resolve(root, bytes(buf))
                if path is None:
                    conn.reset_stream(event.stream_id, 0x104)  # like H3_REQUEST_REJECTED
                else:
                    conn.send_stream_data(event.stream_id, path.read_bytes(), True)
        elif isinstance(event, DatagramReceived):
            with contextlib.suppress(QuicUsageError):  # larger than the client accepts: dropped
                conn.send_datagram(event.data)
        elif isinstance(event, (HandshakeCompleted, ConnectionTerminated)):
            if isinstance(event, ConnectionTerminated):
                for table in (requests, echo_streams):
                    for k in [k for k in table if k[0] == id(conn)]:
                        del table[k]
            early = early_bytes.pop(id(conn), 0)
            if isinstance(event, HandshakeCompleted):
                completed.add(id(conn))
            else:
                completed.discard(id(conn))
            if not a.quiet:
                sys.stderr.write(f"q_server: {event}\n")
                if isinstance(event, HandshakeCompleted) and event.early_data_accepted:
                    sys.stderr.write(f"q_server: early data accepted: {early} bytes\n")
                sys.stderr.flush()

    try:
        server = await serve(host, port, config, handle, **endpoint_options)
    except OSError as exc:  # in use, not a local address, unknown name
        raise network_error(f"cannot listen on {a.accept}", exc) from None
    if development:
        sys.stderr.write(
            f"q_server: no -cert, using a development identity; pin: {chain[0].fingerprint().hex()}\n"
        )
    bound = server.local_address
    print(f"ACCEPT {bound[0]}:{bound[1]}", flush=True)
    for extra in server.preferred_addresses:
        print(f"PREFERRED {extra[0]}:{extra[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
    return 0


def q_server(argv: list[str]) -> int:
    """``quicnet q_server``: a QUIC server that echoes each stream.

    With ``-www`` it serves files over hq-interop instead. Ctrl-C stops it
    with status 0.
    """
    try:
        return int(run(main(argv)))
    except KeyboardInterrupt:
        return 0
