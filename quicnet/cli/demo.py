"""``demo``: the README's first command: a local encrypted game server and bots, live.

One process, on loopback: a tick-driven :class:`quicnet.Server` with a fresh
development identity, and ``-clients`` bot clients that pin its certificate.
Sixty times a second each bot sends an input on channel 1 (UNRELIABLE) and
its state on channel 3 (SEQUENCED); every tenth tick a chat line on channel 0
(RELIABLE_ORDERED) and every thirtieth an item event on channel 2
(RELIABLE_UNORDERED). The server echoes every message to its sender, and the
bots time the round trips. Once a second a table shows, per delivery mode,
the messages each way and the RTT; then the jitter, loss and traffic QUIC
measured. ``-loss PCT`` puts a relay that drops that share of datagrams (each
way) between the bots and the server: the reliable channels still deliver
everything, in order. The summary checks each mode's guarantee and the demo
fails if one broke. ``-toolkit`` runs the crypto toolkit walk-through instead.
"""

from __future__ import annotations

import contextlib
import math
import random
import selectors
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field

import quicnet
from quicnet.cli.common import CliError, Parser
from quicnet.cli.toolkit_demo import toolkit_demo
from quicnet.io.udp import open_udp_socket

TICK_HZ = 60
_MODES = (
    (0, "reliable ordered", 100, 10),  # channel, name, size, every n-th tick
    (1, "unreliable", 64, 1),
    (2, "reliable unordered", 300, 30),
    (3, "sequenced", 200, 1),
)


def demo(argv: list[str]) -> int:
    """``quicnet demo``: a local encrypted game server and bot clients, with live figures.

    With ``-toolkit`` (or ``-dir``) it walks through the crypto toolkit instead.
    Returns 1 if a check in the summary failed (a message missing, duplicated,
    out of order or stale, or bots that never connected).
    """
    p = Parser("demo", "A local encrypted game server and bot clients, with live figures.")
    p.add_argument("-seconds", type=float, default=5.0, help="how long it runs (default 5)")
    p.add_argument("-clients", type=int, default=4, help="bot clients (default 4)")
    p.add_argument("-loss", type=float, default=0.0, metavar="PCT", help="drop PCT%% each way")
    p.add_argument("-port", type=int, default=0, help="the server's UDP port (default: any)")
    p.add_argument("-toolkit", action="store_true", help="the crypto toolkit walk-through")
    p.add_argument("-dir", metavar="DIR", help="with -toolkit: write ca.pem, server.pem, key")
    a = p.parse_args(argv)
    if a.toolkit or a.dir:
        print("quicnet toolkit demo\n")
        toolkit_demo(a.dir)
        print("\ndemo OK")
        return 0
    if not 0 <= a.loss < 100:
        raise CliError(f"-loss must be a percentage below 100, not {a.loss:g}")
    if not 1 <= a.clients <= 500:
        raise CliError(f"-clients must be 1-500, not {a.clients}")
    if not a.seconds > 0:
        raise CliError(f"-seconds must be positive, not {a.seconds:g}")
    ok = GameDemo(a.clients, a.loss / 100, a.port).run(a.seconds)
    print("\ndemo OK" if ok else "\ndemo FAILED: a delivery guarantee broke (see above)")
    return 0 if ok else 1


@dataclass
class _Mode:
    """What the bots sent and got back on one channel."""

    sent: int = 0
    sent_reported: int = 0  # sent by the last report
    received: int = 0
    rtts: list[float] = field(default_factory=list)  # this second's
    all_rtts: list[float] = field(default_factory=list)
    out_of_order: int = 0  # ordered channel: a sequence number not the next one
    duplicates: int = 0
    stale: int = 0  # sequenced: older than one seen (must never be delivered)


class _Bot:
    """One client: its sending schedule and what it has seen of each channel."""

    def __init__(self, client: quicnet.Client) -> None:
        self.client = client
        self.connected = False
        self.next_seq = dict.fromkeys(range(4), 0)
        self.expect_ordered = 0
        self.seen: dict[int, set[int]] = {ch: set() for ch in range(4)}
        self.last_sequenced = -1


class _Relay:
    """A lossy middlebox: each bot talks to its own port here, forwarded to the server."""

    def __init__(self, server: tuple[str, int], loss: float, seed: int = 1) -> None:
        self.server = server
        self.loss = loss
        self.random = random.Random(seed)
        self.fronts: list[socket.socket] = []  # what a bot sends to
        self.backs: dict[socket.socket, tuple[socket.socket, tuple[str, int] | None]] = {}
        self.bot_address: dict[socket.socket, tuple[str, int]] = {}

    def front(self) -> tuple[str, int]:
        """A new address for one bot to connect to."""
        front = open_udp_socket("127.0.0.1", 0)
        back = open_udp_socket("127.0.0.1", 0)
        self.fronts.append(front)
        self.backs[front] = (back, None)
        self.backs[back] = (front, None)
        name = front.getsockname()
        return (str(name[0]), int(name[1]))

    def sockets(self) -> list[socket.socket]:
        return list(self.backs)

    def forward(self, sock: socket.socket) -> None:
        other, _ = self.backs[sock]
        while True:
            try:
                data, address = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            if sock in self.fronts:
                self.bot_address[sock] = address
                destination: tuple[str, int] | None = self.server
            else:
                destination = self.bot_address.get(other)
            if destination is None or self.random.random() < self.loss:
                continue
            with contextlib.suppress(OSError):  # a full buffer is loss too
                other.sendto(data, destination)

    def close(self) -> None:
        for sock in self.backs:
            sock.close()


class GameDemo:
    """The server, the bots, the relay if any, and the figures."""

    def __init__(self, clients: int, loss: float, port: int) -> None:
        self.identity = quicnet.dev_identity()
        self.server = quicnet.Server(
            ("127.0.0.1", port), identity=self.identity, key_update_interval=1.0
        )
        self.relay = _Relay(self.server.address, loss) if loss else None
        self.loss = loss
        self.bots = []
        for _ in range(clients):
            target = self.relay.front() if self.relay is not None else self.server.address
            client = quicnet.Client(target, pin=self.identity.fingerprint, key_update_interval=1.0)
            self.bots.append(_Bot(client))
        self.modes = {channel: _Mode() for channel, _, _, _ in _MODES}
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.server.sock, selectors.EVENT_READ, "server")
        for bot in self.bots:
            self.selector.register(bot.client.sock, selectors.EVENT_READ, bot)
        for sock in self.relay.sockets() if self.relay is not None else ():
            self.selector.register(sock, selectors.EVENT_READ, sock)
        self.tty = sys.stdout.isatty()

    # The loop -------------------------------------------------------------------------------
    def run(self, seconds: float) -> bool:
        """Run the bots for ``seconds`` and print the summary; False if a check failed."""
        print(
            f"quicnet demo: a server on {self.server.address[0]}:{self.server.address[1]} "
            f"and {len(self.bots)} bot clients pinning its certificate"
        )
        print(f"  SHA-256 {self.identity.fingerprint_text[:47]}...")
        if self.relay is not None:
            print(f"  through a relay that drops {100 * self.loss:g}% of datagrams each way")
        print("  each bot, 60 times a second: an input (ch 1) and its state (ch 3); a chat line")
        print("  (ch 0) every 10th tick, an item (ch 2) every 30th; the server echoes all.\n")
        self._connect(10.0)
        start = time.monotonic()
        end = start + seconds
        next_tick = start
        next_report = start + 1.0
        tick = 0
        try:
            while True:
                now = time.monotonic()
                if now >= end:
                    break
                if now >= next_tick:
                    self._send_tick(tick)
                    tick += 1
                    next_tick += 1.0 / TICK_HZ
                if now >= next_report:
                    self._report(now - start, seconds)
                    next_report += 1.0
                self._progress(now - start, seconds)
                wake = min(next_tick, next_report, end, self._next_timer())
                self._wait(wake - time.monotonic())
            self._drain(5.0)  # the last echoes (retransmitted ones, behind the relay)
            return self._summary(time.monotonic() - start)
        finally:
            for bot in self.bots:
                bot.client.close()
            self.server.close()
            if self.relay is not None:
                self.relay.close()

    def _connect(self, seconds: float) -> None:
        """Let the bots connect (each handshake a few ms; more when the relay drops some)."""
        started = time.monotonic()
        deadline = started + seconds
        while time.monotonic() < deadline and not all(bot.connected for bot in self.bots):
            self._wait(0.01)
        connected = sum(bot.connected for bot in self.bots)
        took = 1000 * (time.monotonic() - started)
        print(f"  {connected} of {len(self.bots)} bots connected in {took:.0f} ms\n")

    def _wait(self, timeout: float) -> None:
        ready = self.selector.select(max(0.0, timeout))
        polled_server = False
        for key, _ in ready:
            if key.data == "server":
                self._serve()
                polled_server = True
            elif isinstance(key.data, _Bot):
                self._take(key.data)
            elif self.relay is not None:
                self.relay.forward(key.data)
        if not polled_server:
            self._serve()  # its timers
        now = time.monotonic()
        taken = {key.data for key, _ in ready}
        for bot in self.bots:  # QUIC's timers: delayed ACKs, loss detection, keepalives
            due = bot.client.core.next_timer()
            if bot not in taken and due is not None and due <= now:
                self._take(bot)

    def _next_timer(self) -> float:
        """The earliest QUIC timer of the server and the bots (monotonic seconds)."""
        timers = [self.server.core.next_timer()]
        timers += [bot.client.core.next_timer() for bot in self.bots]
        return min((t for t in timers if t is not None), default=math.inf)

    def _serve(self) -> None:
        server = self.server
        events = server.poll(0.0)
        with server.batch():
            for event in events:
                if isinstance(event, quicnet.MessageReceived):
                    server.send(event.peer, event.channel, event.data)

    def _send_tick(self, tick: int) -> None:
        stamp = time.perf_counter()
        for bot in self.bots:
            if not bot.connected:
                continue
            with bot.client.batch():
                for channel, _, size, every in _MODES:
                    if tick % every:
                        continue
                    seq = bot.next_seq[channel]
                    bot.next_seq[channel] = seq + 1
                    head = seq.to_bytes(4, "big") + int(stamp * 1e9).to_bytes(8, "big")
                    bot.client.send(channel, head + bytes(size - len(head)))
                    self.modes[channel].sent += 1

    def _take(self, bot: _Bot) -> None:
        now = time.perf_counter()
        for event in bot.client.poll(0.0):
            if isinstance(event, quicnet.Connected):
                bot.connected = True
            elif isinstance(event, quicnet.MessageReceived):
                self._on_echo(bot, event.channel, event.data, now)

    def _on_echo(self, bot: _Bot, channel: int, data: bytes, now: float) -> None:
        mode = self.modes[channel]
        seq = int.from_bytes(data[:4], "big")
        sent = int.from_bytes(data[4:12], "big") / 1e9
        if seq in bot.seen[channel]:
            mode.duplicates += 1
            return
        bot.seen[channel].add(seq)
        mode.received += 1
        mode.rtts.append(now - sent)
        if channel == 0:
            if seq != bot.expect_ordered:
                mode.out_of_order += 1
            bot.expect_ordered = seq + 1
        elif channel == 3:
            if seq <= bot.last_sequenced:
                mode.stale += 1
            bot.last_sequenced = max(bot.last_sequenced, seq)

    def _drain(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the echoes of every reliable message."""
        end = time.monotonic() + seconds
        reliable = (self.modes[0], self.modes[2])
        while time.monotonic() < end and any(m.received < m.sent for m in reliable):
            self._wait(0.01)

    # The figures ------------------------------------------------------------------------------
    def _progress(self, elapsed: float, seconds: float) -> None:
        if not self.tty:
            return
        width = 30
        done = min(width, int(width * elapsed / seconds))
        connected = sum(bot.connected for bot in self.bots)
        line = (
            f"  [{'#' * done}{'.' * (width - done)}] {elapsed:4.1f}/{seconds:g} s, "
            f"{connected}/{len(self.bots)} connected"
        )
        sys.stdout.write("\r" + line)
        sys.stdout.flush()

    def _report(self, elapsed: float, seconds: float) -> None:
        if self.tty:
            sys.stdout.write("\r" + " " * 60 + "\r")
        print(f"  t={elapsed:4.1f} s   mode                 sent/s  echoed/s  RTT p50   RTT p99")
        for channel, name, _, _ in _MODES:
            mode = self.modes[channel]
            rtts, mode.rtts = mode.rtts, []
            mode.all_rtts += rtts
            sent, mode.sent_reported = mode.sent - mode.sent_reported, mode.sent
            print(
                f"             ch {channel} {name:<18} {sent:6d}  {len(rtts):8d}  "
                f"{_ms(rtts, 50):>8}  {_ms(rtts, 99):>8}"
            )
        print("             " + self._quic_line() + "\n")

    def _quic_line(self) -> str:
        stats = [self.server.stats(peer) for peer in self.server.peers]
        if not stats:
            return "no client connected yet"
        jitter = statistics.fmean(s.jitter for s in stats)
        sent = sum(s.packets_out for s in stats)
        lost = sum(s.packets_lost for s in stats)
        updates = sum(s.key_updates for s in stats)
        return (
            f"{len(stats)} clients; jitter {1000 * jitter:.3f} ms; server packets lost "
            f"{lost} of {sent} ({100 * lost / max(1, sent):.1f}%); key updates {updates}"
        )

    def _summary(self, elapsed: float) -> bool:
        if self.tty:
            sys.stdout.write("\r" + " " * 60 + "\r")
        ok = True
        print(f"summary: {elapsed:.1f} s, {len(self.bots)} clients")
        for channel, name, _, _ in _MODES:
            mode = self.modes[channel]
            mode.all_rtts += mode.rtts
            share = 100 * mode.received / max(1, mode.sent)
            notes = []
            if channel in (0, 2) and mode.received != mode.sent:
                notes.append("MISSING")
                ok = False
            if mode.duplicates:
                notes.append(f"{mode.duplicates} DUPLICATED")
                ok = False
            if channel == 0:
                notes.append("in order" if not mode.out_of_order else "OUT OF ORDER")
                ok = ok and not mode.out_of_order
            if channel == 3:
                notes.append("none stale" if not mode.stale else f"{mode.stale} STALE")
                ok = ok and not mode.stale
            print(
                f"  ch {channel} {name:<18} sent {mode.sent:6d}, echoed {mode.received:6d} "
                f"({share:5.1f}%), RTT p50 {_ms(mode.all_rtts, 50)}, p99 "
                f"{_ms(mode.all_rtts, 99)}" + (f"; {', '.join(notes)}" if notes else "")
            )
        print("  " + self._quic_line())
        connected = sum(bot.connected for bot in self.bots)
        if connected != len(self.bots):
            print(f"  {len(self.bots) - connected} of {len(self.bots)} bots never connected")
            ok = ok and connected > 0 and self.loss > 0  # on loopback every one must
        return ok


def _ms(values: list[float], percentile: int) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, len(ordered) * percentile // 100)]
    return f"{1000 * value:.2f} ms"
