"""A small authoritative game server over quicnet, with headless bots.

    python examples/game_server.py --bots 4 --seconds 5     # server and bots, one process
    python examples/game_server.py --serve --port 7777      # just the server
    python examples/game_server.py --connect 127.0.0.1:7777 --pin AB:CD:... --bots 2

The server owns the game state: it moves every player at a fixed tick (30 Hz)
from the last input it has from that player, and after each tick sends all
players a snapshot of the world. Clients only send inputs (and pings).
Channels (the default table):

- inputs: channel 3, SEQUENCED (or 1, UNRELIABLE, with ``--inputs 1``): a
  lost input is not worth resending, the next one supersedes it;
- snapshots: channel 3, SEQUENCED: never one older than what a client
  already has, and a lost one is simply replaced by the next tick's;
- events (joined, left, welcome): channel 0, RELIABLE_ORDERED;
- pings: channel 1, UNRELIABLE, echoed by the server: a lost one is just a
  missing sample.

With ``--bots N`` the bots (each a ``quicnet.Client`` on its own socket)
wander about, and after ``--seconds`` each prints what it saw: snapshots,
events, the ping round-trip time, and how long an input took to show up in
a snapshot (about a tick: the server applies inputs at its next tick). The
exit status is 0 if every bot got snapshots in order.
"""

from __future__ import annotations

import argparse
import itertools
import random
import selectors
import statistics
import struct
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import quicnet

TICK_HZ = 30
SPEED = 20.0  # units per second
ARENA = 100.0  # the world is ARENA x ARENA, wrapping at the edges


class Channel:
    """What this game sends on each channel of the default table. (Dotted names: in a
    ``match`` pattern a bare name would capture, a dotted one compares.)"""

    EVENTS = 0  # RELIABLE_ORDERED
    PINGS = 1  # UNRELIABLE: pings and their echoes (and inputs, with --inputs 1)
    INPUTS = 3  # SEQUENCED: inputs by default, client -> server
    SNAPSHOTS = 3  # SEQUENCED: server -> client


# Wire formats, all big-endian. What a client sends starts with its kind: an input
# (b"i", its sequence number, a direction), or a ping (b"p", the client's clock),
# which the server sends straight back.
INPUT = struct.Struct("!cIbb")
PING = struct.Struct("!cd")
# A snapshot: the tick number and how many players, then per player: id, position,
# and the last input the server applied from that player (so it can time its inputs).
SNAPSHOT_HEAD = struct.Struct("!IH")
PLAYER = struct.Struct("!IffI")


# The server ------------------------------------------------------------------------------------


@dataclass
class Player:
    x: float
    y: float
    dx: int = 0
    dy: int = 0
    last_input: int = 0  # the newest input's sequence number applied


class Game:
    """The authoritative world and the server that carries it."""

    def __init__(self, server: quicnet.Server) -> None:
        self.server = server
        self.players: dict[int, Player] = {}
        self.tick = 0

    def handle(self, events: list[quicnet.RealtimeEvent]) -> None:
        for event in events:
            match event:
                case quicnet.PeerConnected(peer=peer):
                    self.players[peer] = Player(random.uniform(0, ARENA), random.uniform(0, ARENA))
                    self.server.send(
                        peer, Channel.EVENTS, f"welcome, you are player {peer}".encode()
                    )
                    self.server.broadcast(
                        Channel.EVENTS, f"player {peer} joined".encode(), exclude=peer
                    )
                case quicnet.MessageReceived(
                    peer=peer, channel=Channel.INPUTS | Channel.PINGS, data=data
                ):
                    player = self.players.get(peer)
                    if player is None:
                        continue  # not a player (any more)
                    if data[:1] == b"p" and len(data) == PING.size:
                        self.server.send(peer, Channel.PINGS, data)
                    elif data[:1] == b"i" and len(data) == INPUT.size:
                        _, sequence, dx, dy = INPUT.unpack(data)
                        # Channel 1 may reorder: an input older than the one applied is stale.
                        if sequence > player.last_input:
                            player.last_input = sequence
                            player.dx, player.dy = max(-1, min(1, dx)), max(-1, min(1, dy))
                    # Anything else is not this game's: ignored.
                case quicnet.PeerDisconnected(peer=peer):
                    if self.players.pop(peer, None) is not None:
                        self.server.broadcast(Channel.EVENTS, f"player {peer} left".encode())

    def step(self) -> None:
        """One tick: move everyone, then send everyone the world as it is now."""
        self.tick += 1
        step = SPEED / TICK_HZ
        for p in self.players.values():
            p.x = (p.x + p.dx * step) % ARENA
            p.y = (p.y + p.dy * step) % ARENA
        snapshot = SNAPSHOT_HEAD.pack(self.tick, len(self.players)) + b"".join(
            PLAYER.pack(peer, p.x, p.y, p.last_input) for peer, p in self.players.items()
        )
        # One call queues it for every player and sends them all. Bigger than a datagram
        # (many players)? quicnet cuts it into fragments and joins them again.
        self.server.broadcast(Channel.SNAPSHOTS, snapshot)


def ticks(seconds: float | None) -> Iterable[int]:
    """Tick numbers for ``seconds`` (forever when None)."""
    return range(round(seconds * TICK_HZ)) if seconds is not None else itertools.count()


# The bots --------------------------------------------------------------------------------------


@dataclass
class Bot:
    """A headless player: wanders, and keeps figures on what it sees."""

    client: quicnet.Client
    input_channel: int
    name: str
    me: int | None = None
    direction: tuple[int, int] = (0, 0)
    sequence: int = 0
    snapshots: int = 0
    out_of_order: int = 0
    last_tick: int = 0
    events: list[str] = field(default_factory=list)
    sent_at: dict[int, float] = field(default_factory=dict)  # input sequence -> time sent
    input_latency: list[float] = field(default_factory=list)
    ping_rtt: list[float] = field(default_factory=list)
    disconnected: str | None = None

    def send_input(self, now: float) -> None:
        if self.sequence % 15 == 0:  # a new direction twice a second
            self.direction = (random.randint(-1, 1), random.randint(-1, 1))
        self.sequence += 1
        self.sent_at[self.sequence] = now
        dx, dy = self.direction
        self.client.send(self.input_channel, INPUT.pack(b"i", self.sequence, dx, dy))
        if self.sequence % 10 == 0:  # three pings a second
            self.client.send(Channel.PINGS, PING.pack(b"p", time.perf_counter()))

    def handle(self, events: list[quicnet.RealtimeEvent], now: float) -> None:
        for event in events:
            match event:
                case quicnet.Connected(client_id=me):
                    self.me = me
                case quicnet.MessageReceived(channel=Channel.EVENTS, data=data):
                    self.events.append(data.decode())
                case quicnet.MessageReceived(channel=Channel.SNAPSHOTS, data=data):
                    self.on_snapshot(data, now)
                case quicnet.MessageReceived(channel=Channel.PINGS, data=data):
                    _, sent = PING.unpack(data)
                    self.ping_rtt.append(time.perf_counter() - sent)
                case quicnet.Disconnected(reason=reason, message=message):
                    self.disconnected = f"{reason.value} {message}".strip()

    def on_snapshot(self, data: bytes, now: float) -> None:
        tick, count = SNAPSHOT_HEAD.unpack_from(data)
        self.snapshots += 1
        if tick <= self.last_tick:
            self.out_of_order += 1  # SEQUENCED promises this never happens
        self.last_tick = tick
        for i in range(count):
            peer, _x, _y, applied = PLAYER.unpack_from(data, SNAPSHOT_HEAD.size + i * PLAYER.size)
            if peer == self.me:
                # The first snapshot that shows an input applied: that input's latency.
                for sequence in [s for s in self.sent_at if s <= applied]:
                    sent = self.sent_at.pop(sequence)
                    if sequence == applied:
                        self.input_latency.append(now - sent)

    def summary(self) -> str:
        def p50(samples: list[float]) -> str:
            return f"{statistics.median(samples) * 1000:.2f} ms" if samples else "-"

        text = (
            f"{self.name}: {self.snapshots} snapshots ({self.out_of_order} out of order),"
            f" {len(self.events)} events, {self.sequence} inputs sent,"
            f" ping rtt p50 {p50(self.ping_rtt)} ({len(self.ping_rtt)} pings),"
            f" input->snapshot p50 {p50(self.input_latency)}"
        )
        return text + (f", disconnected: {self.disconnected}" if self.disconnected else "")


# The loop --------------------------------------------------------------------------------------


def run(
    server: quicnet.Server | None, bots: list[Bot], seconds: float | None, *, quiet: bool
) -> None:
    """The fixed-rate loop: wait for packets until the next tick, then tick everyone."""
    game = Game(server) if server is not None else None
    # One selector over every socket this process owns: wake for whichever has input.
    selector = selectors.DefaultSelector()
    if server is not None:
        selector.register(server.sock, selectors.EVENT_READ)
    for bot in bots:
        selector.register(bot.client.sock, selectors.EVENT_READ)
    period = 1.0 / TICK_HZ
    start = time.monotonic()
    for tick in ticks(seconds):
        next_tick = start + (tick + 1) * period
        while True:  # at least once a tick, even when running late
            # poll(0) never waits: it takes what arrived, runs what is due, sends.
            now = time.monotonic()
            if game is not None:
                game.handle(game.server.poll(0))
            for bot in bots:
                bot.handle(bot.client.poll(0), now)
            now = time.monotonic()
            if next_tick <= now:
                break
            # Sleep until a packet comes, the tick is due, or QUIC has a timer due (a
            # delayed ACK, a retransmission, a keepalive): each core says when.
            cores = [bot.client.core for bot in bots] + ([game.server.core] if game else [])
            timers = [t for core in cores if (t := core.next_timer()) is not None]
            selector.select(max(0.0, min([next_tick, *timers]) - now))
        now = time.monotonic()
        for bot in bots:
            if bot.client.connected:
                bot.send_input(now)
        if game is not None:
            game.step()
            if not quiet and game.tick % TICK_HZ == 0:
                print(f"tick {game.tick}: {len(game.players)} players", flush=True)
    selector.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help="run only the server")
    parser.add_argument("--connect", metavar="HOST:PORT", help="bots against a server there")
    parser.add_argument("--pin", help="the server's fingerprint (with --connect)")
    parser.add_argument("--host", default="127.0.0.1", help="server: the address to bind")
    parser.add_argument("--port", type=int, default=0, help="server: the port (0: any free)")
    parser.add_argument("--bots", type=int, default=0, help="headless bot players to run")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: never)")
    parser.add_argument("--inputs", type=int, choices=(1, 3), default=3, help="input channel")
    args = parser.parse_args(argv)
    if args.connect and not args.pin:
        parser.error("--connect needs --pin (the server prints it)")
    if not (args.serve or args.connect or args.bots):
        parser.error("give --bots N (server and bots here), --serve, or --connect with --bots")

    server = None
    address: tuple[str, int]
    pin: str | bytes
    if args.connect:
        host, _, port = args.connect.rpartition(":")
        address, pin = (host.strip("[]"), int(port)), args.pin
    else:
        identity = quicnet.dev_identity()
        server = quicnet.Server((args.host, args.port), identity=identity)
        address, pin = server.address, identity.fingerprint
        print(f"game server on {address[0]}:{address[1]}, {TICK_HZ} Hz", flush=True)
        print(f"pin {identity.fingerprint_text}", flush=True)

    bots = [
        Bot(quicnet.Client(address, pin=pin), args.inputs, f"bot {i + 1}")
        for i in range(0 if args.serve else args.bots)
    ]
    try:
        run(server, bots, args.seconds, quiet=bool(bots))
    except KeyboardInterrupt:
        pass
    finally:
        for bot in bots:
            bot.client.close()
        if server is not None:
            server.close()
    if not bots:
        return 0
    print(f"{len(bots)} bots, {args.seconds} s at {TICK_HZ} Hz, inputs on channel {args.inputs}")
    for bot in bots:
        print(bot.summary())
    ok = all(b.snapshots > 0 and b.out_of_order == 0 and not b.disconnected for b in bots)
    print("every bot received snapshots in order:", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
