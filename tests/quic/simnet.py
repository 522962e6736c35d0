"""A deterministic simulated network for sans-I/O QUIC tests.

Two (or more) nodes live in memory: a client :class:`QuicConnection` and a
server (a :class:`QuicEndpoint` or a :class:`QuicConnection`). Time is a
simulated clock. Each direction between the client and the server is a
:class:`Link` with its own seeded :class:`random.Random` that can drop,
reorder, duplicate, delay (latency + jitter) and corrupt (flip one byte)
datagrams, plus scripted black-hole windows and filters.

:meth:`Simulation.step` advances the clock to the next event: the next
datagram delivery or the earliest ``next_timer()`` of any node. Every run
has a step limit, so a connection that spins without advancing time (or
never finishes) fails the test instead of hanging it.

Link decisions draw a fixed number of ``random()`` values per datagram, so
the sequence of fates depends on the seed and the number of datagrams only,
never on their sizes or contents.
"""

from __future__ import annotations

import copy
import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from quicnet.crypto import dev_identity
from quicnet.quic import (
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.errors import TransportError
from quicnet.quic.packets import PacketType, parse_long_header

__all__ = [
    "CLIENT_ADDR",
    "SERVER_ADDR",
    "Link",
    "LinkConfig",
    "Node",
    "SimulationStuck",
    "Simulation",
    "StreamCollector",
    "client_config",
    "identity",
    "drop_long_headers",
    "handshake",
    "make_pair",
    "packet_types",
    "payloads",
    "send_on_new_streams",
    "server_config",
]

Address = tuple[str, int]
CLIENT_ADDR: Address = ("10.0.0.1", 50000)
SERVER_ADDR: Address = ("10.0.0.2", 4433)

_IDENTITY: Any = None


def identity() -> Any:
    """One development identity per test process (making one costs a few ms)."""
    global _IDENTITY
    if _IDENTITY is None:
        _IDENTITY = dev_identity()
    return _IDENTITY


def client_config(**overrides: Any) -> QuicConfiguration:
    ident = identity()
    kwargs: dict[str, Any] = {
        "is_client": True,
        "server_name": "localhost",
        "trust_roots": (ident.trust_root,),
    }
    kwargs.update(overrides)
    return QuicConfiguration(**kwargs)


def server_config(**overrides: Any) -> QuicConfiguration:
    ident = identity()
    kwargs: dict[str, Any] = {
        "is_client": False,
        "certificate_chain": ident.certificate_chain,
        "private_key": ident.private_key,
    }
    kwargs.update(overrides)
    return QuicConfiguration(**kwargs)


class SimulationStuck(AssertionError):
    """The simulation hit its step limit, spun without advancing time, or timed out."""


@dataclass
class LinkConfig:
    """One direction of a path. Probabilities are per datagram."""

    latency: float = 0.020  # one-way, seconds
    #: Uniform extra delay in [0, jitter). Jitter alone keeps the link FIFO (a datagram
    #: never overtakes an earlier one); reordering is the ``reorder`` knob's job.
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0  # a second copy, delayed independently
    reorder: float = 0.0  # probability of an extra reorder_delay (overtaken by later ones)
    reorder_delay: float = 0.030
    corrupt: float = 0.0  # XOR one random byte with a random non-zero value
    #: Serialization rate in bytes/s (None: infinite) and the drop-tail queue, in bytes.
    bandwidth: float | None = None
    queue_limit: int = 64 * 1024
    #: ``(start, end)`` simulated-time windows in which every datagram is dropped.
    blackholes: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class LinkStats:
    datagrams: int = 0  # offered to the link
    bytes: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    dropped: int = 0
    blackholed: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    queue_drops: int = 0


class Link:
    """One direction, with its own seeded random generator."""

    def __init__(self, config: LinkConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.stats = LinkStats()
        #: ``filter(data, now) -> bool``: False drops the datagram (scripted losses).
        self.filter: Callable[[bytes, float], bool] | None = None
        #: Called with every datagram offered to the link (before its fate): ``tap(data, now)``.
        self.taps: list[Callable[[bytes, float], None]] = []
        self._busy_until = 0.0
        self._last_arrival = 0.0

    def transmit(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        """The ``(arrival_time, bytes)`` copies that will arrive (maybe none)."""
        c = self.config
        rng = self.rng
        # A fixed number of draws per datagram keeps fates independent of sizes.
        r_loss, r_dup, r_corrupt, r_pos, r_val, r_reorder, r_jit1, r_jit2 = (
            rng.random() for _ in range(8)
        )
        self.stats.datagrams += 1
        self.stats.bytes += len(data)
        for tap in self.taps:
            tap(data, now)
        if any(start <= now < end for start, end in c.blackholes):
            self.stats.blackholed += 1
            return []
        if self.filter is not None and not self.filter(data, now):
            self.stats.dropped += 1
            return []
        if r_loss < c.loss:
            self.stats.dropped += 1
            return []
        depart = now
        if c.bandwidth is not None:
            queued = max(0.0, self._busy_until - now) * c.bandwidth
            if queued + len(data) > c.queue_limit:
                self.stats.queue_drops += 1
                return []
            depart = max(now, self._busy_until) + len(data) / c.bandwidth
            self._busy_until = depart
        if r_corrupt < c.corrupt and data:
            pos = int(r_pos * len(data))
            flip = 1 + int(r_val * 255)
            data = data[:pos] + bytes((data[pos] ^ flip,)) + data[pos + 1 :]
            self.stats.corrupted += 1
        arrival = depart + c.latency + r_jit1 * c.jitter
        if r_reorder < c.reorder:
            arrival += c.reorder_delay  # later datagrams overtake this one
            self.stats.reordered += 1
        else:
            arrival = max(arrival, self._last_arrival)
            self._last_arrival = arrival
        out = [(arrival, data)]
        if r_dup < c.duplicate:
            self.stats.duplicated += 1
            out.append((depart + c.latency + r_jit2 * (c.jitter + c.reorder_delay), data))
        return out


class Node:
    """A QuicConnection or a QuicEndpoint at an address, with its events collected."""

    def __init__(self, name: str, impl: QuicConnection | QuicEndpoint, address: Address) -> None:
        self.name = name
        self.impl = impl
        self.address = address
        self.is_endpoint = isinstance(impl, QuicEndpoint)
        self.events: list[QuicEvent] = []
        #: The simulated time each event was collected (parallel to ``events``).
        self.event_times: list[float] = []
        #: When a datagram was last delivered to this node.
        self.last_received: float | None = None
        self.clock: Callable[[], float] = lambda: 0.0
        #: For an endpoint: the connection each event came from (parallel to ``events``).
        self.event_connections: list[QuicConnection] = []
        #: ``on_event(node, connection, event)``: react to events as they happen.
        self.on_event: Callable[[Node, QuicConnection, QuicEvent], None] | None = None

    @property
    def connection(self) -> QuicConnection:
        """The connection (for an endpoint: the first one that reported an event)."""
        if isinstance(self.impl, QuicConnection):
            return self.impl
        if not self.event_connections:
            raise AssertionError(f"{self.name}: no connection has reported an event yet")
        return self.event_connections[0]

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def time_of(self, kind: type) -> float:
        """When the first event of ``kind`` was collected."""
        for event, when in zip(self.events, self.event_times, strict=True):
            if isinstance(event, kind):
                return when
        raise AssertionError(f"{self.name}: no {kind.__name__} event")

    def drain(self) -> None:
        impl = self.impl
        while True:
            item = impl.next_event()
            if item is None:
                return
            if isinstance(impl, QuicEndpoint):
                conn, event = item  # type: ignore[misc]
            else:
                conn, event = impl, item
            self.events.append(event)
            self.event_times.append(self.clock())
            self.event_connections.append(conn)
            if self.on_event is not None:
                self.on_event(self, conn, event)


class Simulation:
    """Client and server nodes joined by two links, on a simulated clock."""

    def __init__(
        self,
        client: QuicConnection,
        server: QuicConnection | QuicEndpoint,
        *,
        seed: int = 0,
        c2s: LinkConfig | None = None,
        s2c: LinkConfig | None = None,
        start: float = 1.0,
        client_address: Address = CLIENT_ADDR,
        server_address: Address = SERVER_ADDR,
        clock_tick: float = 1e-6,
    ) -> None:
        self.now = start
        #: The clock's granularity: when a node asks to be woken at an instant that was
        #: already processed, time moves on by this much (as a real clock would). With 0 the
        #: clock stands still and such a node spins until the stuck detector fails the run.
        self.clock_tick = clock_tick
        #: How often a node asked for a timer at (or before) an instant already processed.
        self.respins = 0
        self._processed: float | None = None
        self.seed = seed
        self.client = Node("client", client, client_address)
        self.server = Node("server", server, server_address)
        self.client.clock = self.server.clock = self._clock
        self.nodes: dict[Address, Node] = {client_address: self.client, server_address: self.server}
        # Each link gets its own copy: tests change a running link's config freely.
        self.c2s = Link(copy.deepcopy(c2s or LinkConfig()), random.Random(f"{seed}/c2s"))
        self.s2c = Link(copy.deepcopy(s2c or LinkConfig()), random.Random(f"{seed}/s2c"))
        self._queue: list[tuple[float, int, Address, Address, bytes]] = []
        self._seq = 0
        self.steps = 0
        self.unroutable = 0
        #: Datagrams that nodes sent to addresses other than the two linked ones (and were lost).
        self.sent_elsewhere: list[tuple[Address, Address, bytes]] = []
        #: Called after every step: ``check(sim)``; use it for invariants.
        self.checks: list[Callable[[Simulation], None]] = []

    def _clock(self) -> float:
        return self.now

    # Wiring -------------------------------------------------------------------------
    def connect(self) -> None:
        """Start the client's handshake toward the server's address."""
        conn = self.client.impl
        assert isinstance(conn, QuicConnection)
        conn.connect(self.server.address, self.now)

    def replace_server(self, impl: QuicConnection | QuicEndpoint) -> Node:
        """Put another implementation at the server's address (e.g. a restarted endpoint)."""
        node = Node("server", impl, self.server.address)
        node.clock = self._clock
        self.server = node
        self.nodes[node.address] = node
        return node

    def rebind_client(self, address: Address) -> None:
        """NAT rebinding: from now on the client's datagrams come from ``address``.

        Datagrams still on their way to the old address are lost, like those
        the server keeps sending there.
        """
        del self.nodes[self.client.address]
        self.client.address = address
        self.nodes[address] = self.client

    def link(self, src: Address, dst: Address) -> Link | None:
        if src == self.client.address and dst == self.server.address:
            return self.c2s
        if src == self.server.address and dst == self.client.address:
            return self.s2c
        return None

    def inject(self, data: bytes, src: Address, dst: Address, delay: float = 0.0) -> None:
        """Deliver ``data`` to ``dst`` as if from ``src``, bypassing the links."""
        self._push(self.now + delay, src, dst, data)

    def _push(self, when: float, src: Address, dst: Address, data: bytes) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, src, dst, data))

    # Running ------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand every datagram the nodes want to send now to the links."""
        for node in list(self.nodes.values()):
            for data, dst in node.impl.datagrams_to_send(self.now):
                dst = (str(dst[0]), int(dst[1]))
                link = self.link(node.address, dst)
                if link is None:
                    self.sent_elsewhere.append((node.address, dst, data))
                    continue
                for when, payload in link.transmit(data, self.now):
                    self._push(when, node.address, dst, payload)
            node.drain()

    def next_event_time(self) -> float | None:
        times = [t for n in self.nodes.values() if (t := n.impl.next_timer()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        return min(times) if times else None

    def pending_datagrams(self) -> int:
        return len(self._queue)

    def step(self) -> bool:
        """Advance to the next event and process it; False when nothing is left to do."""
        self.flush()
        when = self.next_event_time()
        if when is None:
            return False
        self.steps += 1
        if when <= self.now and self._processed == self.now:
            self.respins += 1
            self.now += self.clock_tick
        self.now = max(self.now, when)
        now = self._processed = self.now
        while self._queue and self._queue[0][0] <= now:
            _, _, src, dst, data = heapq.heappop(self._queue)
            node = self.nodes.get(dst)
            if node is None:
                self.unroutable += 1
                continue
            link = self.link(src, dst)
            if link is not None:
                link.stats.delivered += 1
                link.stats.delivered_bytes += len(data)
            node.last_received = now
            node.impl.receive_datagram(data, src, now)
            node.drain()
        for node in list(self.nodes.values()):
            t = node.impl.next_timer()
            if t is not None and t <= now:
                node.impl.handle_timer(now)
                node.drain()
        self.flush()
        for check in self.checks:
            check(self)
        return True

    def run_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 60.0,
        max_steps: int = 200_000,
        what: str = "condition",
    ) -> float:
        """Step until ``predicate()`` holds; returns the simulated time it took.

        Raises :class:`SimulationStuck` after ``timeout`` simulated seconds,
        ``max_steps`` steps, or 2,000 steps without the clock moving.
        """
        start = self.now
        deadline = start + timeout
        steps = 0
        still = 0
        last = self.now
        while not predicate():
            if self.now > deadline:
                raise SimulationStuck(
                    f"{what}: not reached after {timeout} simulated seconds ({self.describe()})"
                )
            if steps >= max_steps:
                raise SimulationStuck(f"{what}: step limit {max_steps} hit ({self.describe()})")
            if not self.step():
                self.flush()
                if predicate():
                    break
                raise SimulationStuck(f"{what}: the simulation went quiet ({self.describe()})")
            steps += 1
            if self.now == last:
                still += 1
                if still > 2_000:
                    raise SimulationStuck(
                        f"{what}: 2000 steps at t={self.now} without time advancing "
                        f"({self.describe()})"
                    )
            else:
                still = 0
                last = self.now
        return self.now - start

    def run_for(self, duration: float, *, max_steps: int = 200_000) -> None:
        """Step until the clock passes ``now + duration`` (or nothing is left to do)."""
        end = self.now + duration
        steps = 0
        still = 0
        last = self.now
        while True:
            self.flush()
            when = self.next_event_time()
            if when is None or when > end:
                self.now = max(self.now, end)
                self.flush()
                return
            self.step()
            steps += 1
            if steps >= max_steps:
                raise SimulationStuck(f"run_for: step limit {max_steps} hit ({self.describe()})")
            if self.now == last:
                still += 1
                if still > 2_000:
                    raise SimulationStuck(
                        f"run_for: 2000 steps at t={self.now} without time advancing"
                    )
            else:
                still = 0
                last = self.now

    def describe(self) -> str:
        parts = [f"t={self.now:.3f}", f"steps={self.steps}", f"queued={len(self._queue)}"]
        for node in self.nodes.values():
            impl = node.impl
            if isinstance(impl, QuicConnection):
                parts.append(f"{node.name}={impl.state.name}")
            else:
                states = [c.state.name for c in impl._all]
                parts.append(f"{node.name}=endpoint{states}")
        parts.append(f"c2s={self.c2s.stats}")
        parts.append(f"s2c={self.s2c.stats}")
        return ", ".join(parts)


class StreamCollector:
    """Reassembles StreamDataReceived events per stream and remembers which ended."""

    def __init__(self) -> None:
        self.data: dict[int, bytearray] = {}
        self.ended: set[int] = set()

    def __call__(self, node: Node, conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            if event.stream_id in self.ended:
                raise AssertionError(f"data after the end of stream {event.stream_id}")
            self.data.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                self.ended.add(event.stream_id)

    def complete(self, stream_ids: Iterable[int]) -> bool:
        return all(s in self.ended for s in stream_ids)


def make_pair(
    *,
    seed: int = 0,
    c2s: LinkConfig | None = None,
    s2c: LinkConfig | None = None,
    client: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    endpoint: dict[str, Any] | None = None,
    use_endpoint: bool = True,
    start: float = 1.0,
) -> Simulation:
    """A client and a server (an endpoint unless ``use_endpoint`` is False), not yet connected."""
    client_conn = QuicConnection(client_config(**(client or {})))
    server_impl: QuicConnection | QuicEndpoint
    if use_endpoint:
        server_impl = QuicEndpoint(server_config(**(server or {})), **(endpoint or {}))
    else:
        # A bare server connection keyed by the client's first destination CID.
        server_impl = QuicConnection(
            server_config(**(server or {})),
            original_destination_cid=client_conn.original_destination_cid,
        )
    return Simulation(client_conn, server_impl, seed=seed, c2s=c2s, s2c=s2c, start=start)


def handshake(sim: Simulation, *, timeout: float = 60.0, confirmed: bool = True) -> float:
    """Connect and run until the client completed (and by default confirmed) the handshake.

    Waiting for confirmation (HANDSHAKE_DONE) before sending data keeps the
    tests that are not about the handshake independent of what happens while
    the client's Finished is still unacknowledged.
    """
    sim.connect()
    client = sim.client.impl
    assert isinstance(client, QuicConnection)

    def done() -> bool:
        return client.handshake_confirmed if confirmed else client.handshake_complete

    return sim.run_until(done, timeout=timeout, what="handshake")


def payloads(seed: int, sizes: Iterable[int]) -> list[bytes]:
    """Deterministic random payloads."""
    rng = random.Random(f"payload/{seed}")
    return [rng.randbytes(n) for n in sizes]


def send_on_new_streams(conn: QuicConnection, datas: Iterable[bytes]) -> dict[int, bytes]:
    """Open one bidirectional stream per payload, write it and end the stream."""
    out: dict[int, bytes] = {}
    for data in datas:
        sid = conn.create_stream()
        conn.send_stream_data(sid, data, end_stream=True)
        out[sid] = data
    return out


def drop_long_headers(probability: float, seed: object) -> Callable[[bytes, float], bool]:
    """A link filter dropping that share of datagrams whose first packet has a long header.

    Loss confined to the handshake's Initial and Handshake packets (seeded).
    """
    rng = random.Random(f"long-header-loss/{seed}")

    def keep(data: bytes, now: float) -> bool:
        r = rng.random()
        return not (data and data[0] & 0x80) or r >= probability

    return keep


def packet_types(datagram: bytes) -> list[PacketType]:
    """The (unprotected) types of the packets coalesced in a datagram, as far as parsable."""
    out: list[PacketType] = []
    start = 0
    while start < len(datagram):
        if not datagram[start] & 0x80:
            out.append(PacketType.ONE_RTT)
            break
        if datagram[start + 1 : start + 5] == b"\x00\x00\x00\x00":
            out.append(PacketType.VERSION_NEGOTIATION)
            break
        try:
            header = parse_long_header(datagram, start)
        except TransportError:
            break
        out.append(header.packet_type)
        if header.end <= start:
            break
        start = header.end
    return out
