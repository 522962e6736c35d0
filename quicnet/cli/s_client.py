"""``s_client``: a TLS 1.3 client on stdin/stdout, with OpenSSL's flags."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

from quicnet.cli.common import (
    CliError,
    Parser,
    network_error,
    read_input,
    read_passphrase,
    split_host_port,
    write_output,
)
from quicnet.cli.crl_flags import add_crl_flags, crl_options
from quicnet.cli.ech import add_ech_client_flags, ech_client_options, rejected_error
from quicnet.cli.staple import describe_staple
from quicnet.cli.tls_common import (
    add_tls_flags,
    key_log_writer,
    load_identity,
    load_roots,
    parse_ciphersuites,
    parse_groups,
    parse_pins,
)
from quicnet.crypto import NamedGroup, format_fingerprint
from quicnet.tls import ClientConfig, HandshakeComplete, SessionTicket, open_connection
from quicnet.tls.config import DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS
from quicnet.tls.errors import ECHRejected


def describe(h: HandshakeComplete, quiet: bool) -> None:
    """Print the negotiated session to stderr, as ``openssl s_client``; nothing if ``quiet``."""
    if quiet:
        return
    err = sys.stderr
    err.write("CONNECTED\n")
    err.write(f"Protocol: TLSv1.3\nCipher: {h.cipher_suite.name}\n")
    if h.group is not None:
        err.write(f"Group: {NamedGroup(h.group).name}\n")
    err.write(f"ALPN: {h.alpn_protocol or '(none)'}\n")
    err.write(f"Resumed: {'yes' if h.resumed else 'no'}\n")
    err.write(f"Early data: {'accepted' if h.early_data_accepted else 'not accepted'}\n")
    if h.ech_accepted:
        err.write("ECH: accepted\n")
    if h.peer_certificates:
        leaf = h.peer_certificates[0]
        err.write(f"Server certificate: {leaf.subject}\n")
        err.write(f"  SHA256 Fingerprint={format_fingerprint(leaf.fingerprint())}\n")
    err.flush()


def _read_stdin() -> bytes:
    try:
        return os.read(sys.stdin.fileno(), 1 << 16)
    except (OSError, ValueError, AttributeError):  # no usable stdin: treat as EOF
        return b""


def start_stdin_reader(queue: asyncio.Queue[bytes | None]) -> None:
    """Feed stdin chunks (None at EOF) into ``queue`` from a daemon thread.

    A thread, not the loop's executor: a read blocked on a terminal must not
    keep the process alive at exit.
    """
    loop = asyncio.get_running_loop()

    def pump() -> None:
        while True:
            chunk = _read_stdin()
            try:
                loop.call_soon_threadsafe(queue.put_nowait, chunk or None)
            except RuntimeError:  # the loop is gone
                return
            if not chunk:
                return

    threading.Thread(target=pump, name="stdin", daemon=True).start()


async def run(argv: list[str]) -> int:
    """The ``s_client`` command on a running event loop."""
    p = Parser("s_client", "TLS 1.3 client: stdin goes to the server, its replies to stdout.")
    p.add_argument("-connect", required=True, metavar="HOST:PORT")
    p.add_argument("-servername", metavar="NAME", help="SNI and the name to verify (default: host)")
    p.add_argument("-insecure", action="store_true", help="do NOT verify the server (tests only)")
    p.add_argument(
        "-pin",
        action="append",
        default=[],
        metavar="HEX",
        help="SHA-256 of the server cert or its key",
    )
    p.add_argument("-sess_out", metavar="FILE", help="save the session for -sess_in")
    p.add_argument("-sess_in", metavar="FILE", help="resume this session")
    p.add_argument(
        "-early_data", metavar="FILE", help="send this file as 0-RTT data (with -sess_in)"
    )
    p.add_argument("-ign_eof", action="store_true", help="keep reading after stdin ends")
    p.add_argument("-status", action="store_true", help="ask for an OCSP staple and print it")
    p.add_argument(
        "-status_required",
        action="store_true",
        help="refuse the server without a good, fresh OCSP staple (implies -status)",
    )
    add_tls_flags(p)
    add_crl_flags(p, check_all=True)
    add_ech_client_flags(p)
    a = p.parse_args(argv)
    ech_configs, ech_grease = ech_client_options(a)
    crls, revocation = crl_options(a)

    host, port = split_host_port(a.connect)
    chain, key = load_identity(a.cert, a.key, read_passphrase(a.passin))
    pins = parse_pins(a.pin)
    session = SessionTicket.from_pem(read_input(a.sess_in, "session")) if a.sess_in else None
    roots = [] if a.insecure or (pins and not a.CAfile) else load_roots(a.CAfile)
    if not (roots or pins or a.insecure):
        raise CliError("no trusted roots: give -CAfile, -pin, or -insecure")
    config = ClientConfig(
        server_name=a.servername or host,
        alpn_protocols=a.alpn.split(",") if a.alpn else (),
        trust_roots=roots,
        pinned_fingerprints=pins,
        insecure_skip_verify=a.insecure,
        crls=crls,
        revocation_check=revocation,
        cipher_suites=parse_ciphersuites(a.ciphersuites)
        if a.ciphersuites
        else DEFAULT_CIPHER_SUITES,
        groups=parse_groups(a.groups) if a.groups else DEFAULT_GROUPS,
        certificate_chain=chain,
        private_key=key,
        session=session,
        enable_early_data=bool(a.early_data),
        key_log=key_log_writer(a.keylogfile),
        ocsp_stapling=a.status,
        require_ocsp_staple=a.status_required,
        ech_configs=ech_configs,
        ech_grease=ech_grease,
    )
    if a.groups:
        config.key_share_groups = config.groups[:1]
    early = read_input(a.early_data, "early data") if a.early_data else None
    try:
        reader, writer = await open_connection(host, port, config, early_data=early)
    except OSError as exc:  # refused, unreachable, unknown name: the user's to fix
        raise network_error(f"cannot connect to {a.connect}", exc) from None
    except ECHRejected as exc:
        raise rejected_error(exc) from None
    assert writer.handshake is not None
    describe(writer.handshake, a.quiet)
    if a.status or a.status_required:
        describe_staple(writer.handshake, roots)

    async def save_session() -> None:
        ticket = await writer.wait_session_ticket()
        write_output(a.sess_out, ticket.to_pem(), private=True)

    saver = asyncio.ensure_future(save_session()) if a.sess_out else None
    outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
    start_stdin_reader(outgoing)

    async def send_loop() -> None:
        while (chunk := await outgoing.get()) is not None:
            writer.write(chunk)
            await writer.drain()
        if not a.ign_eof:
            writer.write_eof()

    sender = asyncio.ensure_future(send_loop())
    try:
        while data := await reader.read(1 << 16):
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
    except OSError as exc:  # reset by the server, network gone
        raise network_error(f"connection to {a.connect} lost", exc) from None
    finally:
        if saver is not None:
            try:
                await asyncio.wait_for(saver, 2.0)
            except TimeoutError:
                sys.stderr.write("s_client: the server sent no session ticket\n")
        sender.cancel()
        writer.close()
    return 0


def s_client(argv: list[str]) -> int:
    """``quicnet s_client -connect HOST:PORT``: a TLS 1.3 client over TCP.

    Standard input goes to the server and its replies to standard output.
    """
    return asyncio.run(run(argv))
