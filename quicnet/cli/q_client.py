"""``q_client``: a QUIC client: stdin on one stream, or hq-interop downloads of URLs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from urllib.parse import urlparse

from quicnet.cli.common import CliError, Parser, network_error, split_host_port
from quicnet.cli.crl_flags import add_crl_flags, crl_options
from quicnet.cli.tls_common import key_log_writer, load_roots, parse_pins
from quicnet.io.aio import QuicClient, connect, describe_termination, run
from quicnet.quic import (
    ConnectionTerminated,
    QuicConfiguration,
    QuicUsageError,
    StreamDataReceived,
    StreamReset,
)
from quicnet.quic.controllers import CONTROLLERS


def _closed_with_error(event: ConnectionTerminated) -> CliError | None:
    """The error to exit with when the connection ended in an error (None for a clean close)."""
    if event.error_code == 0 and not event.stateless_reset:
        return None
    return CliError(f"connection {describe_termination(event)}")


class _Mover:
    """``-migrate_after``: move to a new local port once that many body bytes arrived."""

    def __init__(self, client: QuicClient, after: int | None) -> None:
        self.client = client
        self.after = after
        self.received = 0

    def on_body(self, size: int) -> None:
        self.received += size
        if self.after is None or self.received < self.after:
            return
        self.after = None  # one move (a refusal is not retried)
        old = self.client.local_address
        try:
            new = self.client.migrate()
        except QuicUsageError as exc:
            sys.stderr.write(f"q_client: {exc}; the download goes on\n")
            return
        sys.stderr.write(
            f"q_client: migrated from port {old[1]} to {new[0]}:{new[1]} "
            f"after {self.received} bytes\n"
        )


async def _download(
    client: QuicClient, urls: list[str], out: Path, timeout: float, mover: _Mover
) -> int:
    """One stream per URL, all at once; returns how many failed."""
    conn = client.connection
    files: dict[int, tuple[Path, bytearray]] = {}
    for url in urls:
        path = urlparse(url).path or "/"
        stream_id = conn.create_stream()
        files[stream_id] = (out / (Path(path).name or "index.html"), bytearray())
        client.send_stream_data(stream_id, f"GET {path}\r\n".encode(), end_stream=True)
    done: set[int] = set()
    failed = 0
    ended: list[ConnectionTerminated] = []

    async def collect() -> None:
        nonlocal failed
        async for event in client.events():
            if isinstance(event, StreamDataReceived) and event.stream_id in files:
                files[event.stream_id][1].extend(event.data)
                mover.on_body(len(event.data))
                if event.end_stream:
                    target, data = files[event.stream_id]
                    target.write_bytes(bytes(data))
                    done.add(event.stream_id)
            elif isinstance(event, StreamReset) and event.stream_id in files:
                sys.stderr.write(
                    f"q_client: {files[event.stream_id][0].name}: refused by the server\n"
                )
                done.add(event.stream_id)
                failed += 1
            elif isinstance(event, ConnectionTerminated):
                ended.append(event)
                return
            if len(done) == len(files):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout)
    missing = len(files) - len(done)
    for stream_id, (target, _) in files.items():
        if stream_id not in done:
            sys.stderr.write(f"q_client: {target.name}: incomplete\n")
    if ended and (error := _closed_with_error(ended[0])) is not None:
        raise error
    return failed + missing


async def _stdin_exchange(client: QuicClient, timeout: float) -> int:
    data = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    stream_id = client.connection.create_stream()
    client.send_stream_data(stream_id, data, end_stream=True)

    async def collect() -> None:
        async for event in client.events():
            if isinstance(event, StreamDataReceived) and event.stream_id == stream_id:
                sys.stdout.buffer.write(event.data)
                sys.stdout.buffer.flush()
                if event.end_stream:
                    return
            elif isinstance(event, ConnectionTerminated):
                raise _closed_with_error(event) or CliError(
                    f"connection {describe_termination(event)} before the answer ended"
                )

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        raise CliError(f"no complete answer within -timeout {timeout:g} s") from None
    return 0


async def main(argv: list[str]) -> int:
    p = Parser("q_client", "QUIC client: sends stdin on a stream, or downloads URLs (hq-interop).")
    p.add_argument("-connect", required=True, metavar="HOST:PORT")
    p.add_argument("-servername", metavar="NAME")
    p.add_argument("-alpn", metavar="P1,P2")
    p.add_argument("-CAfile", metavar="FILE")
    p.add_argument("-insecure", action="store_true", help="do NOT verify the server (tests only)")
    p.add_argument("-pin", action="append", default=[], metavar="HEX")
    p.add_argument("-keylogfile", metavar="FILE")
    p.add_argument("-out", metavar="DIR", default=".", help="where downloads go (default: .)")
    p.add_argument(
        "-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds for the exchange after the handshake (default 60)",
    )
    p.add_argument(
        "-handshake_timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="give up when the handshake is not done within S seconds (default 10)",
    )
    add_crl_flags(p, check_all=True)
    p.add_argument(
        "-migrate_after",
        type=int,
        metavar="BYTES",
        help="move to a new local port after BYTES of response bodies (RFC 9000 §9.2)",
    )
    p.add_argument(
        "-cc",
        choices=sorted(CONTROLLERS),
        default="newreno",
        help="congestion control: newreno (RFC 9002, default), cubic (RFC 9438) or bbr",
    )
    p.add_argument("urls", nargs="*", metavar="URL")
    a = p.parse_args(argv)
    crls, revocation = crl_options(a)

    host, port = split_host_port(a.connect)
    pins = parse_pins(a.pin)
    if a.migrate_after is not None and not a.urls:
        raise CliError("-migrate_after needs URLs to download")
    if a.migrate_after is not None and a.migrate_after < 0:
        raise CliError(f"-migrate_after must not be negative, not {a.migrate_after}")
    if not a.handshake_timeout > 0:
        raise CliError(f"-handshake_timeout must be positive, not {a.handshake_timeout:g}")
    roots = [] if a.insecure or (pins and not a.CAfile) else load_roots(a.CAfile)
    if not (roots or pins or a.insecure):
        raise CliError("no trusted roots: give -CAfile, -pin, or -insecure")
    alpn = a.alpn.split(",") if a.alpn else (["hq-interop"] if a.urls else ["quicnet"])
    config = QuicConfiguration(
        is_client=True,
        alpn_protocols=alpn,
        server_name=a.servername or host,
        trust_roots=roots,
        pinned_fingerprints=pins,
        insecure_skip_verify=a.insecure,
        crls=crls,
        revocation_check=revocation,
        key_log=key_log_writer(a.keylogfile),  # without it: SSLKEYLOGFILE, if set
        handshake_timeout=a.handshake_timeout,
        congestion_control=a.cc,
    )
    try:
        # The connection's own handshake deadline bounds this wait.
        client = await connect(host, port, config)
    except OSError as exc:  # unknown name, no route; the handshake failed or timed out
        raise network_error(f"cannot connect to {a.connect}", exc) from None
    try:
        if a.urls:
            out = Path(a.out)
            out.mkdir(parents=True, exist_ok=True)
            mover = _Mover(client, a.migrate_after)
            failed = await _download(client, a.urls, out, a.timeout, mover)
            return 1 if failed else 0
        return await _stdin_exchange(client, a.timeout)
    finally:
        await client.close()


def q_client(argv: list[str]) -> int:
    return int(run(main(argv)))
