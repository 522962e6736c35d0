"""Profile the real-time message path beside the raw QUIC paths, in memory.

    python benchmarks/profile_realtime.py [--rounds 20000]
    python benchmarks/profile_realtime.py --profile 1     # cProfile: quic, quic-stream, 0..3

One thread, no sockets, a simulated clock: a 64-byte echo between a server
and a client, (a) through a QuicEndpoint and a QuicConnection, as a DATAGRAM
frame (``quic``) and on a stream each way (``quic-stream``), and (b) through
the real-time cores (ServerCore, ClientCore) on each channel of the default
table. The CPU per round trip (both ends) of each path shows what the
real-time layer adds to the QUIC it stands on: channels 1 and 3 against
``quic``, channel 0 against ``quic-stream``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Profile the checkout this script is in (not another install of quicnet).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from quicnet.crypto import dev_identity
from quicnet.quic import (
    DatagramReceived,
    QuicConfiguration,
    QuicConnection,
    QuicEndpoint,
    StreamDataReceived,
)
from quicnet.realtime import (
    ClientCore,
    MessageReceived,
    ServerCore,
    Settings,
    client_configuration,
    server_configuration,
)

SERVER = ("192.0.2.1", 4433)
CLIENT = ("192.0.2.2", 50000)
PAYLOAD = bytes(range(64))
#: Simulated time per round trip (loopback-like); the peers' delayed ACKs fire on it.
STEP = 0.0002


class Pair:
    """A server and a client side that move datagrams between them, on a simulated clock."""

    def __init__(self, server: Any, client: Any) -> None:
        self.server = server
        self.client = client
        self.now = 1.0

    def pump_client(self) -> None:
        now, server = self.now, self.server
        for data, _ in self.client.datagrams_to_send(now):
            server.receive_datagram(data, CLIENT, now)

    def pump_server(self) -> None:
        now, client = self.now, self.client
        for data, _ in self.server.datagrams_to_send(now):
            client.receive_datagram(data, SERVER, now)

    def pump(self) -> None:
        self.pump_client()
        self.pump_server()

    def tick(self) -> None:
        self.now += STEP
        now = self.now
        for side in (self.server, self.client):
            deadline = side.next_timer()
            if deadline is not None and deadline <= now:
                side.handle_timer(now)


def quic_pair(stream: bool = False) -> tuple[Pair, Callable[[], None]]:
    """QuicEndpoint + QuicConnection; one round trip: a DATAGRAM out and its echo back
    (``stream``: the payload on a long-lived unidirectional stream each way)."""
    ident = dev_identity()
    endpoint = QuicEndpoint(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
            max_datagram_frame_size=65535,
        )
    )
    client = QuicConnection(
        QuicConfiguration(
            is_client=True,
            server_name="localhost",
            trust_roots=[ident.trust_root],
            max_datagram_frame_size=65535,
        )
    )
    pair = Pair(endpoint, client)
    client.connect(SERVER, pair.now)
    while not client.handshake_confirmed:
        pair.pump()
        pair.tick()
    while endpoint.next_event() is not None:
        pass
    while client.next_event() is not None:
        pass

    def round_trip() -> None:
        client.send_datagram(PAYLOAD)
        pair.pump_client()
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            if type(event) is DatagramReceived:
                conn.send_datagram(event.data)
        pair.pump_server()
        got = False
        while (reply := client.next_event()) is not None:
            got = got or type(reply) is DatagramReceived
        if not got:
            raise RuntimeError("no echo")
        pair.tick()

    up = client.create_stream(bidirectional=False)
    down: dict[QuicConnection, int] = {}

    def stream_round_trip() -> None:
        client.send_stream_data(up, PAYLOAD)
        pair.pump_client()
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            if type(event) is StreamDataReceived:
                if conn not in down:
                    down[conn] = conn.create_stream(bidirectional=False)
                conn.send_stream_data(down[conn], event.data)
        pair.pump_server()
        got = False
        while (reply := client.next_event()) is not None:
            got = got or type(reply) is StreamDataReceived
        if not got:
            raise RuntimeError("no echo")
        pair.tick()

    return pair, stream_round_trip if stream else round_trip


def realtime_pair(channel: int) -> tuple[Pair, Callable[[], None]]:
    """ServerCore + ClientCore; one round trip: a message on ``channel`` and its echo."""
    ident = dev_identity()
    settings = Settings()
    server = ServerCore(
        server_configuration(ident.certificate_chain, ident.private_key, settings), settings
    )
    client = ClientCore(
        client_configuration("localhost", settings, pin=ident.fingerprint), SERVER, settings, 1.0
    )
    pair = Pair(server, client)
    while not client.connected:
        pair.pump()
        pair.tick()
        while server.next_event() is not None:
            pass
        while client.next_event() is not None:
            pass
    peer = server.peers[0]

    def round_trip() -> None:
        client.send(channel, PAYLOAD)
        pair.pump_client()
        while (event := server.next_event()) is not None:
            if type(event) is MessageReceived:
                server.send(peer, event.channel, event.data)
        pair.pump_server()
        got = False
        while (event := client.next_event()) is not None:
            got = got or type(event) is MessageReceived
        if not got:
            raise RuntimeError(f"no echo on channel {channel}")
        pair.tick()

    return pair, round_trip


def measure(round_trip: Callable[[], None], rounds: int) -> float:
    """Seconds of CPU per round trip (both ends), after a warm-up."""
    for _ in range(min(1000, rounds // 10)):
        round_trip()
    start = time.process_time()
    for _ in range(rounds):
        round_trip()
    return (time.process_time() - start) / rounds


def calls_per_round_trip(round_trip: Callable[[], None], rounds: int) -> dict[str, float]:
    """Python function calls per round trip, by where the function lives: quicnet's QUIC,
    its real-time layer, its crypto wrappers, and builtins or anything else. Unlike
    times, counts do not depend on what else the machine is doing."""
    for _ in range(100):
        round_trip()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(rounds):
        round_trip()
    profiler.disable()
    groups: collections.Counter[str] = collections.Counter()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, calls, _, _, _) in stats.items():
        path = filename.replace("\\", "/")
        group = next(
            (g for g in ("quic", "realtime", "crypto") if f"/quicnet/{g}/" in path),
            "benchmark" if "/benchmarks/" in path else "builtins and other",
        )
        groups[group] += calls
    return {group: count / rounds for group, count in sorted(groups.items())}


def paths() -> dict[str, Callable[[], tuple[Pair, Callable[[], None]]]]:
    return {
        "quic": quic_pair,
        "quic-stream": lambda: quic_pair(stream=True),
        **{f"channel-{c}": (lambda c=c: realtime_pair(c)) for c in (0, 1, 2, 3)},  # type: ignore[misc]
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20_000)
    p.add_argument("--profile", help="cProfile this path: quic, quic-stream or a channel number")
    p.add_argument("--calls", action="store_true", help="function calls per round trip, by package")
    a = p.parse_args()
    if a.profile is not None:
        name = a.profile if a.profile.startswith("quic") else f"channel-{a.profile}"
        _, round_trip = paths()[name]()
        for _ in range(1000):
            round_trip()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(a.rounds):
            round_trip()
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    if a.calls:
        for name, make in paths().items():
            counts = calls_per_round_trip(make()[1], min(a.rounds, 2000))
            print(f"{name:11}", ", ".join(f"{g} {n:.0f}" for g, n in counts.items()))
        return
    base = None
    for name, make in paths().items():
        _, round_trip = make()
        cost = measure(round_trip, a.rounds)
        base = base or cost
        print(f"{name:11} {cost * 1e6:6.1f} us CPU per round trip (both ends), {cost / base:.2f}x")


if __name__ == "__main__":
    main()
