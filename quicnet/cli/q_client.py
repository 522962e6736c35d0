"""``q_client``: a QUIC client: stdin on one stream, or hq-interop downloads of URLs.

With ``-sess_in`` it resumes a session ``-sess_out`` saved (ticket and NEW_TOKEN
token) and sends its requests in 0-RTT; with either (or ``-early_data``), like
``openssl s_client``, it says on stderr ``New, TLSv1.3`` or ``Reused, TLSv1.3``,
and ``Early data was accepted`` or ``... rejected`` when it sent some.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from urllib.parse import urlparse

from quicnet.cli.common import (
    CliError,
    Parser,
    network_error,
    read_input,
    split_host_port,
    write_output,
)
from quicnet.cli.crl_flags import add_crl_flags, crl_options
from quicnet.cli.ech import add_ech_client_flags, ech_client_options, rejected_error
from quicnet.cli.quic_session import QuicSession
from quicnet.cli.tls_common import key_log_writer, load_roots, parse_pins
from quicnet.io.aio import QuicClient, connect, describe_termination, run
from quicnet.quic import (
    ConnectionTerminated,
    HandshakeCompleted,
    NewTokenReceived,
    PeerAddressChanged,
    QuicConfiguration,
    QuicEvent,
    QuicUsageError,
    QuicVersion,
    SessionTicketReceived,
    StreamDataReceived,
    StreamReset,
)
from quicnet.quic.controllers import CONTROLLERS
from quicnet.tls import SessionTicket
from quicnet.tls.errors import ECHRejected


def _closed_with_error(event: ConnectionTerminated) -> CliError | None:
    """The error to exit with when the connection ended in an error (None for a clean close)."""
    if event.error_code == 0 and not event.stateless_reset:
        return None
    return CliError(f"connection {describe_termination(event)}")


class _AfterBytes:
    """Does something once, when that many bytes of response bodies have arrived."""

    def __init__(self, client: QuicClient, after: int | None) -> None:
        self.client = client
        self.after = after
        self.received = 0

    def on_body(self, size: int) -> None:
        self.received += size
        if self.after is None or self.received < self.after:
            return
        self.after = None  # once (a refusal is not retried)
        self.act()

    def act(self) -> None:
        raise NotImplementedError


class _Mover(_AfterBytes):
    """``-migrate_after``: move to a new local port."""

    def act(self) -> None:
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


class _Session:
    """What the connection says about the session: OpenSSL's lines on stderr when the
    handshake completes, and the newest ticket and NEW_TOKEN token for ``-sess_out``."""

    def __init__(self, early_data_sent: bool, *, report: bool) -> None:
        self.early_data_sent = early_data_sent
        self.report = report
        self.ticket: SessionTicket | None = None
        self.token = b""

    def on_event(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted) and self.report:
            sys.stderr.write(f"{'Reused' if event.session_resumed else 'New'}, TLSv1.3\n")
            if self.early_data_sent:
                verdict = "accepted" if event.early_data_accepted else "rejected"
                sys.stderr.write(f"Early data was {verdict}\n")
            sys.stderr.flush()
        elif isinstance(event, SessionTicketReceived):
            self.ticket = event.ticket
        elif isinstance(event, NewTokenReceived):
            self.token = event.token


class _Request:
    """One stream: what was asked, and where the answer goes (a file, or stdout)."""

    def __init__(self, name: str, target: Path | None) -> None:
        self.name = name
        self.target = target
        self.body = bytearray()


def _send_requests(
    client: QuicClient, urls: list[str], out: Path, first: bytes | None
) -> dict[int, _Request]:
    """Open a stream per request now: before the handshake completes they go in 0-RTT
    when the session allows (RFC 9001 §4.6.1). ``first`` (stdin or -early_data) first,
    its answer to stdout; then a ``GET`` per URL (hq-interop), each answer to a file."""
    conn = client.connection
    requests: dict[int, _Request] = {}
    if first is not None:
        stream_id = conn.create_stream()
        requests[stream_id] = _Request("the answer", None)
        client.send_stream_data(stream_id, first, end_stream=True)
    for url in urls:
        path = urlparse(url).path or "/"
        stream_id = conn.create_stream()
        requests[stream_id] = _Request(path, out / (Path(path).name or "index.html"))
        client.send_stream_data(stream_id, f"GET {path}\r\n".encode(), end_stream=True)
    return requests


async def _collect(
    client: QuicClient,
    requests: dict[int, _Request],
    timeout: float,
    watchers: tuple[_Mover, _KeyUpdater],
    session: _Session,
) -> int:
    """Every answer, each to its file or to stdout; returns how many failed."""
    done: set[int] = set()
    failed = 0
    ended: list[ConnectionTerminated] = []

    async def collect() -> None:
        nonlocal failed
        async for event in client.events():
            session.on_event(event)
            request = requests.get(getattr(event, "stream_id", -1))
            if isinstance(event, StreamDataReceived) and request is not None:
                if request.target is None:
                    sys.stdout.buffer.write(event.data)
                    sys.stdout.buffer.flush()
                else:
                    request.body.extend(event.data)
                    for watcher in watchers:
                        watcher.on_body(len(event.data))
                if event.end_stream:
                    if request.target is not None:
                        request.target.write_bytes(bytes(request.body))
                    done.add(event.stream_id)
            elif isinstance(event, StreamReset) and request is not None:
                sys.stderr.write(f"q_client: {request.name}: refused by the server\n")
                done.add(event.stream_id)
                failed += 1
            elif isinstance(event, ConnectionTerminated):
                ended.append(event)
                return
            elif isinstance(event, PeerAddressChanged):  # a preferred address (§9.6)
                new, old = event.new_address, event.old_address
                sys.stderr.write(
                    f"q_client: the server is at {new[0]}:{new[1]} now (was {old[0]}:{old[1]})\n"
                )
            if len(done) == len(requests):
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(collect(), timeout)
    missing = len(requests) - len(done)
    for stream_id, request in requests.items():
        if stream_id not in done and request.target is not None:  # stdout's: one error line
            sys.stderr.write(f"q_client: {request.name}: incomplete\n")
    if ended and (error := _closed_with_error(ended[0])) is not None:
        raise error
    if ended and missing and all(r.target is None for r in requests.values()):
        raise CliError(f"connection {describe_termination(ended[0])} before the answer ended")
    return failed + missing


async def _await_ticket(client: QuicClient, session: _Session, timeout: float) -> None:
    """For -sess_out: the server's ticket, if it has not come with the answers."""

    async def wait() -> None:
        async for event in client.events():
            session.on_event(event)
            if session.ticket is not None or isinstance(event, ConnectionTerminated):
                return

    if session.ticket is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait(), timeout)


class _KeyUpdater(_AfterBytes):
    """``-key_update_after``: start a 1-RTT key update."""

    def act(self) -> None:
        try:
            self.client.connection.request_key_update()
        except QuicUsageError as exc:
            sys.stderr.write(f"q_client: no key update: {exc}\n")
            return
        self.client.transmit()
        sys.stderr.write(f"q_client: key update after {self.received} bytes\n")


async def main(argv: list[str]) -> int:
    """The ``q_client`` command on a running event loop; 1 if a download failed."""
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
    add_ech_client_flags(p)
    p.add_argument(
        "-key_update_after",
        type=int,
        metavar="BYTES",
        help="start a 1-RTT key update after BYTES of response bodies (RFC 9001 §6)",
    )
    p.add_argument("-sess_out", metavar="FILE", help="save the session (ticket and token)")
    p.add_argument(
        "-sess_in", metavar="FILE", help="resume the session in FILE; requests go in 0-RTT"
    )
    p.add_argument(
        "-early_data",
        metavar="FILE",
        help="send FILE on the first stream (in 0-RTT with -sess_in), its answer to stdout",
    )
    p.add_argument(
        "-quic_version",
        choices=("v1", "v2"),
        default="v1",
        help="v2: offer QUIC v2 (RFC 9369) from a v1 Initial, v1 if the server lacks it",
    )
    p.add_argument(
        "-cc",
        choices=sorted(CONTROLLERS),
        default="newreno",
        help="congestion control: newreno (RFC 9002, default), cubic (RFC 9438) or bbr",
    )
    p.add_argument("urls", nargs="*", metavar="URL")
    a = p.parse_args(argv)
    ech_configs, ech_grease = ech_client_options(a)
    crls, revocation = crl_options(a)

    host, port = split_host_port(a.connect)
    pins = parse_pins(a.pin)
    for flag in ("migrate_after", "key_update_after"):
        value = getattr(a, flag)
        if value is not None and not a.urls:
            raise CliError(f"-{flag} needs URLs to download")
        if value is not None and value < 0:
            raise CliError(f"-{flag} must not be negative, not {value}")
    if not a.handshake_timeout > 0:
        raise CliError(f"-handshake_timeout must be positive, not {a.handshake_timeout:g}")
    roots = [] if a.insecure or (pins and not a.CAfile) else load_roots(a.CAfile)
    if not (roots or pins or a.insecure):
        raise CliError("no trusted roots: give -CAfile, -pin, or -insecure")
    saved = QuicSession.from_pem(read_input(a.sess_in, "session")) if a.sess_in else None
    early_file = read_input(a.early_data, "early data") if a.early_data else None
    alpn = a.alpn.split(",") if a.alpn else (["hq-interop"] if a.urls else ["quicnet"])
    if saved is not None and saved.version == QuicVersion.V2:
        # RFC 9369 §5: a v2 ticket and token only for a connection that starts in v2.
        versions: dict[str, object] = {"version": QuicVersion.V2}
    elif a.quic_version == "v2":  # RFC 9368 §2.3: v1 on the wire first, v2 preferred
        versions = {
            "version": QuicVersion.V1,
            "supported_versions": (QuicVersion.V2, QuicVersion.V1),
        }
    else:
        versions = {"version": QuicVersion.V1}
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
        ech_configs=ech_configs,
        ech_grease=ech_grease,
        session_ticket=saved.ticket if saved is not None else None,
        address_token=saved.token if saved is not None else b"",
        enable_early_data=saved is not None,
        **versions,  # type: ignore[arg-type]
        congestion_control=a.cc,
    )
    try:
        client = await connect(host, port, config, wait_connected=False)
    except OSError as exc:  # unknown name, no route
        raise network_error(f"cannot connect to {a.connect}", exc) from None
    except ECHRejected as exc:
        raise rejected_error(exc) from None
    try:
        session = _Session(
            client.connection.can_send_early_data,
            report=bool(a.sess_in or a.sess_out or a.early_data),  # else errors stay one line
        )
        if a.urls:
            out = Path(a.out)
            out.mkdir(parents=True, exist_ok=True)
            first = early_file
        else:
            out = Path(".")
            first = early_file if early_file is not None else _read_stdin()
        requests: dict[int, _Request] = {}
        if session.early_data_sent:  # in 0-RTT, before the handshake completes
            requests = _send_requests(client, a.urls, out, first)
        try:
            # The connection's own handshake deadline bounds this wait.
            await client.wait_connected()
        except ECHRejected as exc:
            raise rejected_error(exc) from None
        except OSError as exc:  # the handshake failed or timed out
            raise network_error(f"cannot connect to {a.connect}", exc) from None
        if not session.early_data_sent:
            requests = _send_requests(client, a.urls, out, first)
        watchers = (_Mover(client, a.migrate_after), _KeyUpdater(client, a.key_update_after))
        failed = await _collect(client, requests, a.timeout, watchers, session)
        if a.sess_out:
            await _await_ticket(client, session, 2.0)
            if session.ticket is None:
                sys.stderr.write("q_client: the server sent no session ticket to save\n")
            else:
                version = client.connection.version
                record = QuicSession(version, session.ticket, session.token)
                write_output(a.sess_out, record.to_pem(), private=True)
        if not a.urls and failed:
            raise CliError(f"no complete answer within -timeout {a.timeout:g} s")
        return 1 if failed else 0
    finally:
        await client.close()


def _read_stdin() -> bytes:
    return sys.stdin.buffer.read() if not sys.stdin.isatty() else b""


def q_client(argv: list[str]) -> int:
    """``quicnet q_client -connect HOST:PORT``: a QUIC client.

    It sends standard input on a stream, or downloads URLs over hq-interop.
    Returns 1 if a download failed.
    """
    return int(run(main(argv)))
