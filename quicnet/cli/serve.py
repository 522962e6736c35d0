"""``serve``: a real-time chat relay for two terminals (``quicnet connect`` is the other).

A :func:`quicnet.serve` server on ``-host``/``-port``. What a client sends
on channel 0 goes to every other client as ``<peer N> text``; joins and
leaves are announced the same way (``* peer N joined``). The terminal shows
connects, disconnects (with the reason) and, every ``-stats`` seconds, each
peer's RTT, jitter, loss and messages. Without ``-cert``/``-key`` it uses a
fresh development identity and prints its fingerprint and the exact
``quicnet connect`` command that pins it.

The first line on standard output is ``ACCEPT host:port`` (the bound port,
so ``-port 0`` can be scripted). Ctrl-C (or SIGTERM, or ``-seconds``) ends
every session with SERVER_SHUTDOWN and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import quicnet
from quicnet.cli.common import CliError, Parser, network_error, read_passphrase
from quicnet.cli.tls_common import load_identity
from quicnet.crypto import Certificate, PrivateKey, format_fingerprint
from quicnet.io.realtime_aio import AsyncServer
from quicnet.io.realtime_api import Identity

__all__ = ["serve"]

#: The chat channel (RELIABLE_ORDERED in the default table).
CHAT = 0


@dataclass(frozen=True)
class _Identity:
    """A certificate chain and key from files (the shape ``quicnet.serve`` takes)."""

    certificate_chain: Sequence[Certificate]
    private_key: PrivateKey


def say(line: str) -> None:
    """One line on standard output, at once (a pipe would otherwise hold it)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def host_port(host: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def stats_line(peer: int, stats: quicnet.PeerStats) -> str:
    """One peer's figures, as the periodic report prints them."""
    return (
        f"stats: peer {peer} rtt {stats.rtt * 1000:.2f} ms jitter {stats.jitter * 1000:.2f} ms "
        f"loss {stats.loss * 100:.1f}% messages in {stats.messages_in} out {stats.messages_out}"
    )


def serve(argv: list[str]) -> int:
    """``quicnet serve``: a real-time chat relay that ``quicnet connect`` clients talk through."""
    p = Parser("serve", "A real-time chat relay: 'quicnet connect' clients talk through it.")
    p.add_argument("-host", default="127.0.0.1", help="the address to bind (default 127.0.0.1)")
    p.add_argument("-port", type=int, default=7777, help="UDP port (default 7777; 0: any)")
    p.add_argument(
        "-cert", metavar="FILE", help="certificate chain (PEM) or a .p12; default: a dev one"
    )
    p.add_argument("-key", metavar="FILE", help="the certificate's private key")
    p.add_argument("-pass", dest="passin", metavar="ARG", help="passphrase of -key")
    p.add_argument(
        "-stats", type=float, default=10.0, metavar="S", help="print stats every S s (0: never)"
    )
    p.add_argument("-seconds", type=float, metavar="S", help="shut down after S seconds")
    p.add_argument("-qlog", metavar="DIR", help="write a qlog trace per connection to DIR")
    a = p.parse_args(argv)
    if not 0 <= a.port <= 65535:
        raise CliError(f"-port must be 0-65535, not {a.port}")
    if a.stats < 0 or (a.seconds is not None and not a.seconds > 0):
        raise CliError("-stats must be 0 or more and -seconds positive")
    if a.key and not a.cert:
        raise CliError("-key needs -cert")
    chain, key = load_identity(a.cert, a.key, read_passphrase(a.passin))
    if key is None:
        identity: Identity = quicnet.dev_identity()
    else:
        identity = _Identity(chain, key)
    try:
        return int(quicnet.run(_serve(a.host, a.port, identity, a.stats, a.seconds, a.qlog)))
    except KeyboardInterrupt:  # where the loop has no signal handlers
        return 0


async def _serve(
    host: str,
    port: int,
    identity: Identity,
    every: float,
    seconds: float | None,
    qlog: str | None,
) -> int:
    try:
        server = await quicnet.serve((host, port), identity=identity, qlog=qlog)
    except OSError as exc:
        raise network_error(f"cannot listen on {host_port(host, port)}", exc) from None
    bound_host, bound_port = server.address
    say(f"ACCEPT {host_port(bound_host, bound_port)}")
    fingerprint = identity.certificate_chain[0].fingerprint()
    say(f"fingerprint SHA256 {format_fingerprint(fingerprint)}")
    target = bound_host
    if target in ("0.0.0.0", "::"):  # any address: this machine's, from the same machine
        target = "127.0.0.1" if target == "0.0.0.0" else "::1"
    say(f"connect with: quicnet connect {host_port(target, bound_port)} -pin {fingerprint.hex()}")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
    tasks = [asyncio.create_task(_relay(server))]
    if every > 0:
        tasks.append(asyncio.create_task(_report(server, every)))
    try:
        if seconds is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds)
    finally:
        peers = len(server.peers)
        server.close("server shutdown")
        for task in tasks:
            task.cancel()
        say(f"shut down: {peers} peer{'s' if peers != 1 else ''} disconnected")
    return 0


async def _relay(server: AsyncServer) -> None:
    """Every event: print it; relay chat lines to the other peers."""
    async for event in server.events():
        if isinstance(event, quicnet.PeerConnected):
            say(f"peer {event.peer} connected from {host_port(*event.address)}")
            server.broadcast(CHAT, f"* peer {event.peer} joined".encode(), exclude=event.peer)
        elif isinstance(event, quicnet.MessageReceived):
            if event.channel == CHAT:
                say(f"peer {event.peer}: {len(event.data)} bytes")
                line = f"<peer {event.peer}> ".encode() + event.data
                server.broadcast(CHAT, line, exclude=event.peer)
        elif isinstance(event, quicnet.PeerDisconnected):
            reason = event.reason.value + (f" ({event.message})" if event.message else "")
            say(f"peer {event.peer} disconnected: {reason}")
            server.broadcast(CHAT, f"* peer {event.peer} left: {reason}".encode())
        elif isinstance(event, quicnet.PeerMigrated):
            say(f"peer {event.peer} moved to {host_port(*event.new_address)}")


async def _report(server: AsyncServer, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        for peer in server.peers:
            with contextlib.suppress(quicnet.UnknownPeerError):  # left in between
                say(stats_line(peer, server.stats(peer)))
