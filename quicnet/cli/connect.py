"""``connect``: a real-time chat client for the terminal (``quicnet serve`` is the server).

Each line read from standard input goes to the server on channel 0
(RELIABLE_ORDERED); each message received is printed on standard output, one
per line. Status lines (connected, RTT, why the session ended) go to standard
error, prefixed ``connect:``. A line ``/rtt`` prints the RTT now; ``-rtt S``
prints it every S seconds; ``/quit`` leaves.

At the end of input (or Ctrl-C, or SIGTERM) the client waits, at most a few
seconds, until the server has acknowledged what it sent, then closes the
session with the reason ("end of input", "interrupted") and exits 0 (1 if
the server had not admitted it by then). A session the server ended exits 0
when it was shut down or closed, 1 on a failure (refused, certificate
rejected, no answer).

``-sess_out FILE`` saves the session ticket the server sends (PEM, mode
0600: it holds a secret key); ``-sess_in FILE`` resumes it, and the first
lines go in 0-RTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Awaitable
from typing import Any

import quicnet
from quicnet.cli.common import (
    CliError,
    Parser,
    network_error,
    read_input,
    split_host_port,
    write_output,
)
from quicnet.cli.tls_common import parse_pins
from quicnet.io.realtime_aio import AsyncClient
from quicnet.tls import DecodeError, SessionTicket

__all__ = ["connect"]

CHAT = 0
#: How long the client waits at the end for its last messages to be acknowledged.
LINGER = 5.0
_OK = {
    quicnet.DisconnectReason.CLOSED,
    quicnet.DisconnectReason.CLOSED_BY_PEER,
    quicnet.DisconnectReason.SERVER_SHUTDOWN,
    quicnet.DisconnectReason.KICKED,
}


def status(line: str) -> None:
    """Write a ``connect:`` status line to standard error."""
    sys.stderr.write(f"connect: {line}\n")
    sys.stderr.flush()


def rtt_line(stats: quicnet.PeerStats) -> str:
    """RTT, minimum RTT and jitter in ms and loss in percent, as one status line."""
    return (
        f"rtt {stats.rtt * 1000:.2f} ms (min {stats.min_rtt * 1000:.2f} ms, "
        f"jitter {stats.jitter * 1000:.2f} ms, loss {stats.loss * 100:.1f}%)"
    )


def connect(argv: list[str]) -> int:
    """``quicnet connect HOST:PORT``: a real-time chat client for ``quicnet serve``.

    Standard input lines go to the server, the messages it relays to standard
    output. Returns 1 if the connection closed before the server admitted it.
    """
    p = Parser("connect", "A real-time chat client: stdin lines to the server, messages out.")
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("-pin", action="append", default=[], metavar="HEX", help="server fingerprint")
    p.add_argument("-CAfile", metavar="FILE", help="trusted roots (with the server's name)")
    p.add_argument("-servername", metavar="NAME", help="the name to verify (default: HOST)")
    p.add_argument("-insecure", action="store_true", help="do NOT verify the server (tests only)")
    p.add_argument("-rtt", type=float, default=0.0, metavar="S", help="print the RTT every S s")
    p.add_argument("-sess_in", metavar="FILE", help="resume this saved session (0-RTT)")
    p.add_argument("-sess_out", metavar="FILE", help="save the session for -sess_in")
    p.add_argument("-token", metavar="TEXT", help="a token for the server's admission hook")
    p.add_argument("-qlog", metavar="DIR", help="write a qlog trace to DIR")
    a = p.parse_args(argv)
    host, port = split_host_port(a.address, "HOST:PORT")
    pins = parse_pins(a.pin)
    if not (pins or a.CAfile or a.insecure):
        raise CliError("the server cannot be verified: give -pin (see 'quicnet serve'), -CAfile")
    if a.rtt < 0:
        raise CliError(f"-rtt must be 0 or more, not {a.rtt:g}")
    session = None
    if a.sess_in:
        try:
            session = SessionTicket.from_pem(read_input(a.sess_in, "session"))
        except DecodeError as exc:
            raise CliError(f"-sess_in {a.sess_in!r}: {exc}") from None
    opening = quicnet.connect(
        (host, port),
        pin=pins or None,
        cafile=a.CAfile,
        server_name=a.servername,
        insecure_skip_verify=a.insecure,
        token=(a.token or "").encode(),
        session=session,
        qlog=a.qlog,
        wait_connected=False,
    )
    try:
        return int(quicnet.run(_chat(f"{host}:{port}", opening, a.rtt, a.sess_out)))
    except KeyboardInterrupt:  # where the loop has no signal handlers
        return 0


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[bytes | None]) -> None:
    """A thread: standard input, line by line, then None at its end.

    It reads the file descriptor, not ``sys.stdin``: a daemon thread blocked in a
    buffered reader would abort the interpreter's exit (it holds the buffer's lock)."""
    fd = sys.stdin.fileno()
    pending = b""
    try:
        while chunk := os.read(fd, 65536):
            *done, pending = (pending + chunk).split(b"\n")
            for line in done:
                loop.call_soon_threadsafe(lines.put_nowait, line.rstrip(b"\r"))
        if pending:
            loop.call_soon_threadsafe(lines.put_nowait, pending.rstrip(b"\r"))
    except (OSError, RuntimeError):
        pass  # stdin closed under us (its end), or the loop is gone (we are exiting)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(lines.put_nowait, None)


async def _chat(
    address: str, opening: Awaitable[AsyncClient], every: float, sess_out: str | None
) -> int:
    try:
        client = await opening
    except OSError as exc:
        raise network_error(f"cannot connect to {address}", exc) from None
    status(
        f"connecting to {address}"
        + (", resuming a saved session (0-RTT)" if client.core.early_data else "")
    )
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(loop, lines), daemon=True).start()
    interrupted = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, interrupted.set)

    ended: asyncio.Future[quicnet.Disconnected] = loop.create_future()
    receiver = asyncio.create_task(_receive(client, ended))
    ticker = asyncio.create_task(_tick(client, every)) if every > 0 else None
    close_reason = await _send_lines(client, lines, interrupted, ended)
    never_up = False
    if close_reason is not None and not client.core.ended:
        await _linger(client, ended)
        never_up = not client.connected
        client.close(close_reason)
    disconnected = await ended
    receiver.cancel()
    if ticker is not None:
        ticker.cancel()
    if sess_out:
        if client.session is not None:
            write_output(sess_out, client.session.to_pem(), private=True)
        else:
            status(f"no session ticket came: {sess_out} not written")
    reason, message = disconnected.reason, disconnected.message
    if reason == quicnet.DisconnectReason.CLOSED:
        text = message or reason.value  # we closed it: the reason we gave
    else:
        text = reason.value + (f": {message}" if message and message != reason.value else "")
    if never_up:
        status(f"closed: {text}, before the server admitted us")
        return 1
    status(f"closed: {text}")
    return 0 if disconnected.reason in _OK else 1


async def _send_lines(
    client: AsyncClient,
    lines: asyncio.Queue[bytes | None],
    interrupted: asyncio.Event,
    ended: asyncio.Future[quicnet.Disconnected],
) -> str | None:
    """Send stdin's lines until it ends (the close reason) or the session does (None)."""
    while True:
        get = asyncio.ensure_future(lines.get())
        stop = asyncio.ensure_future(interrupted.wait())
        waiting: set[asyncio.Future[Any]] = {get, stop, ended}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        get.cancel()
        stop.cancel()
        if ended in done:
            return None
        if stop in done:
            return "interrupted"
        line = get.result()
        if line is None:
            return "end of input"
        if line == b"/quit":
            return "quit"
        if line == b"/rtt":
            status(rtt_line(client.stats()) if client.connected else "not connected yet")
            continue
        try:
            client.send(CHAT, line)
        except quicnet.MessageTooLargeError as exc:
            status(str(exc))


async def _receive(client: AsyncClient, ended: asyncio.Future[quicnet.Disconnected]) -> None:
    async for event in client.events():
        if isinstance(event, quicnet.MessageReceived):
            sys.stdout.buffer.write(event.data + b"\n")
            sys.stdout.buffer.flush()
        elif isinstance(event, quicnet.Connected):
            early = client.early_data_accepted
            note = {True: ", 0-RTT accepted", False: ", 0-RTT rejected", None: ""}[early]
            note = note if client.core.early_data else ""
            status(f"connected as peer {event.client_id}{note}")
        elif isinstance(event, quicnet.Disconnected):
            if not ended.done():
                ended.set_result(event)
            return


async def _tick(client: AsyncClient, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if client.connected:
            status(rtt_line(client.stats()))


async def _linger(client: AsyncClient, ended: asyncio.Future[quicnet.Disconnected]) -> None:
    """Wait (LINGER at most) until we are connected and the server acknowledged
    everything sent: closing at once would discard what is still in flight."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER
    while loop.time() < deadline and not ended.done():
        if client.connected and client.stats().bytes_in_flight == 0:
            return
        await asyncio.sleep(0.01)
