"""A deterministic simulated network for sans-I/O QUIC tests.

Nodes live in memory: a server (a :class:`QuicEndpoint` or a
:class:`QuicConnection`) and one or more client connections, each at its
own address. Time is a simulated clock. Each direction between a
client and the server is a :class:`Link` with its own seeded
:class:`random.Random` that can drop, reorder, duplicate, delay (latency +
jitter) and corrupt (flip one byte) datagrams, plus scripted black-hole
windows and filters.

:meth:`Simulation.step` advances the clock to the next event: the next
datagram delivery or the earliest ``next_timer()`` of any node. Every run
has a step limit, so a connection that spins without advancing time (or
never finishes) fails the test instead of hanging it.

Every simulation checks invariants after every step, whatever the test is
about: the anti-amplification limit seen from the wire
(:class:`TrafficLedger`), the structure of the events nodes report
(:class:`EventAudit`), and from siminvariants.py: every byte and DATAGRAM an
application is handed is one its peer's application sent, once, in order and
unaltered (:class:`~siminvariants.DeliveryLedger`); no connection closes itself
with a transport error (its peer is honest, and an attacker's packets do not
decrypt: :class:`~siminvariants.ProtocolErrorAudit`); per-connection state stays
bounded (:class:`~siminvariants.StateBounds`). A test turns one off only with a
reason (:meth:`Simulation.waive`). :func:`deep_size` measures a connection's memory.

Link decisions draw a fixed number of ``random()`` values per datagram, so
the sequence of fates depends on the seed and the number of datagrams only,
never on their sizes or contents.
"""

from __future__ import annotations

import copy
import enum
import gc
import heapq
import logging
import random
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

try:  # tests/quic on sys.path (its own tests), or imported as tests.quic.simnet (tests/tls)
    from siminvariants import DeliveryLedger, ProtocolErrorAudit, StateBounds, new_events
except ModuleNotFoundError:
    from tests.quic.siminvariants import (
        DeliveryLedger,
        ProtocolErrorAudit,
        StateBounds,
        new_events,
    )

from quicnet.crypto import dev_identity
from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)
from quicnet.quic import frames as fr
from quicnet.quic.buffer import Reader
from quicnet.quic.crypto_streams import recv_key
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.errors import TransportError
from quicnet.quic.packets import PacketType, decode_packet_number, parse_long_header
from quicnet.tls import Epoch

__all__ = [
    "CLIENT_ADDR",
    "SERVER_ADDR",
    "Address",
    "CidUses",
    "MemoryMonitor",
    "EventAudit",
    "InvariantViolation",
    "Link",
    "LinkConfig",
    "Node",
    "SimulationStuck",
    "Simulation",
    "StreamCollector",
    "TrafficLedger",
    "check_cid_uses",
    "cid_uses",
    "client_config",
    "deep_size",
    "identity",
    "drop_long_headers",
    "handshake",
    "make_pair",
    "one_rtt_frame_types",
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
        # Each DATAGRAM's fate reported (off by default), checked never to come twice.
        "datagram_ack_events": True,
    }
    kwargs.update(overrides)
    return QuicConfiguration(**kwargs)


def server_config(**overrides: Any) -> QuicConfiguration:
    ident = identity()
    kwargs: dict[str, Any] = {
        "is_client": False,
        "certificate_chain": ident.certificate_chain,
        "private_key": ident.private_key,
        "datagram_ack_events": True,
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
    #: The largest datagram (UDP payload) the path carries; larger ones are dropped, as
    #: a router drops a packet with the DF bit set (None: no limit). Tests may change it
    #: mid-run (a route that shrinks).
    mtu: int | None = None


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
    too_big: int = 0  # above the link's MTU


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
        #: What the path does to a datagram's ECN codepoint: ``ecn(codepoint, data, now)``
        #: returns the one it arrives with (None: kept, as loopback does). A router
        #: CE-marks, a middlebox bleaches or re-marks (RFC 9000 §13.4).
        self.ecn: Callable[[int, bytes, float], int] | None = None
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
        if c.mtu is not None and len(data) > c.mtu:
            self.stats.too_big += 1
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

    def __repr__(self) -> str:
        return f"Node({self.name!r} at {self.address})"

    @property
    def connection(self) -> QuicConnection:
        """The connection (for an endpoint: the first one that reported an event)."""
        if isinstance(self.impl, QuicConnection):
            return self.impl
        if not self.event_connections:
            raise AssertionError(f"{self.name}: no connection has reported an event yet")
        return self.event_connections[0]

    def live_connections(self) -> list[QuicConnection]:
        """The connections this node still holds (an endpoint forgets terminated ones)."""
        impl = self.impl
        if isinstance(impl, QuicConnection):
            return [impl]
        seen: dict[int, QuicConnection] = {}
        for conn in impl.connections.values():
            seen.setdefault(id(conn), conn)
        return list(seen.values())

    def events_of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def events_for(self, conn: QuicConnection, kind: type | None = None) -> list[Any]:
        """The events one connection reported (of ``kind``, if given)."""
        return [
            e
            for e, c in zip(self.events, self.event_connections, strict=True)
            if c is conn and (kind is None or isinstance(e, kind))
        ]

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


class InvariantViolation(AssertionError):
    """A default invariant of the simulation (see :attr:`Simulation.invariants`) broke."""


class TrafficLedger:
    """Bytes each node sent to, and received from, each address, seen from outside.

    RFC 9000 §8 and §9.3.1: until an address is validated, an endpoint sends
    it at most three times what it received from it. The ledger judges that
    from the wire alone. A destination ``D`` counts as validated for a sender
    ``S`` once a real node located at ``D`` received a datagram that ``S``
    really sent (from any address of ``S``'s: a server's preferred address
    too) and then sent one back to that address from ``D`` (it could have
    proved it owns ``D``); or when ``S`` itself chose ``D`` (a client
    connecting to its server). Addresses that no node owns (an attacker's
    victims) are never validated. Received bytes count every datagram
    delivered to ``S`` from ``D``, whoever sent it (spoofed ones included):
    the node cannot tell them apart either.
    """

    def __init__(self, aliases: dict[Address, Node] | None = None) -> None:
        #: Other addresses a node owns (a server's preferred addresses, RFC 9000 §9.6):
        #: a datagram it really sent from one of them counts as from that node.
        self.aliases = aliases if aliases is not None else {}
        self.sent: dict[tuple[Node, Address], int] = {}
        self.sent_datagrams: dict[tuple[Node, Address], int] = {}
        self.received: dict[tuple[Node, Address], int] = {}
        self.received_datagrams: dict[tuple[Node, Address], int] = {}
        self.validated: set[tuple[Node, Address]] = set()
        self.initiated: set[tuple[Node, Address]] = set()
        #: receiver -> (source address, receiver's address then) -> genuine senders.
        self._heard: dict[Node, dict[tuple[Address, Address], set[Node]]] = {}
        self._dirty: set[tuple[Node, Address]] = set()

    def on_send(self, node: Node, dst: Address, size: int, src: Address | None = None) -> None:
        key = (node, dst)
        self.sent[key] = self.sent.get(key, 0) + size
        self.sent_datagrams[key] = self.sent_datagrams.get(key, 0) + 1
        # Answering a sender from the address it reached proves this node owns that address.
        heard = self._heard.get(node)
        src = src or node.address
        if heard:
            for sender in heard.get((dst, src), ()):
                self.validated.add((sender, src))
        if key not in self.validated and key not in self.initiated:
            self._dirty.add(key)

    def on_deliver(
        self, node: Node, src: Address, size: int, origin: Node | None, at: Address | None = None
    ) -> None:
        key = (node, src)
        self.received[key] = self.received.get(key, 0) + size
        self.received_datagrams[key] = self.received_datagrams.get(key, 0) + 1
        if origin is not None and (origin.address == src or self.aliases.get(src) is origin):
            at = at or node.address
            self._heard.setdefault(node, {}).setdefault((src, at), set()).add(origin)

    def is_validated(self, node: Node, dst: Address) -> bool:
        return (node, dst) in self.validated or (node, dst) in self.initiated

    def check(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            if self.is_validated(*key):
                continue
            sent, received = self.sent.get(key, 0), self.received.get(key, 0)
            if sent > 3 * received:
                node, dst = key
                raise InvariantViolation(
                    f"amplification (RFC 9000 §8, §9.3.1): {node.name} sent {sent} bytes in "
                    f"{self.sent_datagrams[key]} datagrams to unvalidated {dst}, which it "
                    f"received only {received} bytes from (limit {3 * received})"
                )


class EventAudit:
    """Structural checks on every event every node reports (RFC 9000 §2-§3, §10).

    Per connection: no stream data after the stream's end or after its reset,
    at most one reset and one end per stream, one HandshakeCompleted, one
    ConnectionTerminated, each DATAGRAM id acknowledged or lost at most once;
    a close ``by_peer`` only when the peer connection really closed, and a
    stateless reset only when the peer connection is gone (an attacker
    cannot forge either: no packet that failed to decrypt may end a
    connection).

    0-RTT (RFC 9001 §4.6, §9.2): a server connection that hands the application
    stream data or a DATAGRAM before its HandshakeCompleted is delivering early
    data, and its HandshakeCompleted must then say early_data_accepted; at most one
    server connection per session ticket does so (a replayed ClientHello, or a
    second client with the same ticket, gets no early data through).
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self._pos: dict[Node, int] = {}
        self._ended: set[tuple[int, int]] = set()
        self._reset: set[tuple[int, int]] = set()
        self._handshakes: set[int] = set()
        self._terminated: set[int] = set()
        self._datagram_fates: set[tuple[int, int]] = set()
        #: Server connections that delivered early data, and which one did per ticket.
        self._early: set[int] = set()
        self._early_by_ticket: dict[object, int] = {}

    def check(self) -> None:
        for node, conn, event, when in new_events(self.sim, self._pos):
            self._one(node, conn, event, when)

    def _one(self, node: Node, conn: QuicConnection, event: QuicEvent, when: float) -> None:
        where = f"{node.name} t={when:.6f}"
        c = id(conn)
        if (
            not conn.is_client
            and c not in self._handshakes
            and isinstance(event, (StreamDataReceived, StreamReset, DatagramReceived))
        ):
            self._early_data(conn, where)
        if isinstance(event, StreamDataReceived):
            key = (c, event.stream_id)
            if key in self._ended:
                raise InvariantViolation(
                    f"{where}: data after the end of stream {event.stream_id} (RFC 9000 §3.2)"
                )
            if key in self._reset:
                raise InvariantViolation(
                    f"{where}: data after RESET_STREAM on stream {event.stream_id} (§3.2)"
                )
            if event.end_stream:
                self._ended.add(key)
        elif isinstance(event, StreamReset):
            key = (c, event.stream_id)
            if key in self._reset:
                raise InvariantViolation(f"{where}: stream {event.stream_id} reset twice")
            self._reset.add(key)
        elif isinstance(event, HandshakeCompleted):
            if c in self._handshakes:
                raise InvariantViolation(f"{where}: a second HandshakeCompleted")
            self._handshakes.add(c)
            if c in self._early and not event.early_data_accepted:
                raise InvariantViolation(
                    f"{where}: early data delivered, then 0-RTT reported rejected "
                    "(RFC 9001 §4.6.2: a server that rejects processes no 0-RTT packet)"
                )
        elif isinstance(event, (DatagramAcknowledged, DatagramLost)):
            key = (c, event.datagram_id)
            if key in self._datagram_fates:
                raise InvariantViolation(
                    f"{where}: DATAGRAM {event.datagram_id} acknowledged or lost twice "
                    f"(now {type(event).__name__})"
                )
            self._datagram_fates.add(key)
        elif isinstance(event, ConnectionTerminated):
            if c in self._terminated:
                raise InvariantViolation(f"{where}: a second ConnectionTerminated: {event}")
            self._terminated.add(c)
            if not event.by_peer:
                return
            peer = self.sim.peer_of(conn)
            if peer is None:
                return  # the peer is not in this simulation (any more): nothing to compare
            alive = peer.state in (ConnectionState.HANDSHAKE, ConnectionState.CONNECTED)
            if event.stateless_reset and alive:
                raise InvariantViolation(
                    f"{where}: ended by a stateless reset although the peer's connection is "
                    f"{peer.state.name} (RFC 9000 §10.3): {event}"
                )
            if not event.stateless_reset and alive:
                raise InvariantViolation(
                    f"{where}: closed by a CONNECTION_CLOSE the peer never sent (its connection "
                    f"is {peer.state.name}; RFC 9000 §10.2): {event}"
                )

    def _early_data(self, conn: QuicConnection, where: str) -> None:
        c = id(conn)
        if c in self._early:
            return
        self._early.add(c)
        # The ticket is the client's (a replayed connection shares its first DCID).
        peer = self.sim.peer_of(conn)
        ticket = peer.configuration.session_ticket if peer is not None else None
        key: object = ticket.ticket if ticket is not None else conn.original_destination_cid
        first = self._early_by_ticket.setdefault(key, c)
        if first != c:
            raise InvariantViolation(
                f"{where}: early data delivered by a second server connection for one "
                "session ticket (a replay; RFC 8446 §8, RFC 9001 §9.2)"
            )


class Simulation:
    """A server node and one or more client nodes, each client joined to the server by
    two links, on a simulated clock.

    The first client is :attr:`client` with the links :attr:`c2s` and :attr:`s2c`;
    :meth:`add_client` adds more. Links are looked up by (source, destination)
    address: a datagram between two addresses that no link joins (to or from an
    address no node owns) is not carried, only recorded.

    Every simulation checks its :attr:`invariants` after every step and every flush:
    ``"amplification"`` (:class:`TrafficLedger`) and ``"integrity"``
    (:class:`EventAudit`). A test can turn one off only with a reason
    (:meth:`waive`).
    """

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
        self.server = Node("server", server, server_address)
        self.server.clock = self._clock
        self.nodes: dict[Address, Node] = {server_address: self.server}
        #: Nodes' other local addresses: a server's preferred address (RFC 9000 §9.6), an
        #: address a client moved from and still reads (§9.3.3, :meth:`keep_client_address`).
        self.aliases: dict[Address, Node] = {}
        self.clients: list[Node] = []
        #: Links by (source node name, destination node name): they follow a node that
        #: rebinds to another address and survive a server replaced at the same address.
        self._links: dict[tuple[str, str], Link] = {}
        self._queue: list[tuple[float, int, Address, Address, bytes, Node | None, int]] = []
        self._seq = 0
        self.steps = 0
        self.unroutable = 0
        #: Datagrams that nodes sent to addresses no link reaches (and were lost).
        self.sent_elsewhere: list[tuple[Address, Address, bytes]] = []
        #: Called after every step: ``check(sim)``; use it for invariants.
        self.checks: list[Callable[[Simulation], None]] = []
        #: Called with every datagram a node sends, before any link decides its fate:
        #: ``tap(src, dst, data, now)`` (an on-path observer sees all of them).
        self.wiretaps: list[Callable[[Address, Address, bytes, float], None]] = []
        self.ledger = TrafficLedger(self.aliases)
        self.audit = EventAudit(self)
        self.delivery = DeliveryLedger(self, InvariantViolation)
        self.bounds = StateBounds(self, InvariantViolation)
        #: The default invariants, by name; run after every step and every flush.
        self.invariants: dict[str, Callable[[], None]] = {
            "amplification": self.ledger.check,
            "integrity": self.audit.check,
            "delivery": self.delivery.check,
            "protocol errors": ProtocolErrorAudit(self, InvariantViolation).check,
            "state bounds": self.bounds.check,
        }
        #: Invariants a test turned off, with its reason.
        self.waived: dict[str, str] = {}
        if isinstance(server, QuicConnection):
            self.delivery.follow(server)
        self.client = self.add_client(client, client_address, c2s=c2s, s2c=s2c)

    def _clock(self) -> float:
        return self.now

    # Wiring -------------------------------------------------------------------------
    @property
    def c2s(self) -> Link:
        """The first client's link to the server."""
        return self._links[("client", "server")]

    @property
    def s2c(self) -> Link:
        """The server's link to the first client."""
        return self._links[("server", "client")]

    def add_client(
        self,
        conn: QuicConnection,
        address: Address,
        *,
        c2s: LinkConfig | None = None,
        s2c: LinkConfig | None = None,
        name: str | None = None,
    ) -> Node:
        """Another real client at ``address``, with its own pair of seeded links."""
        if address in self.nodes:
            raise ValueError(f"{address} already belongs to {self.nodes[address].name}")
        if name is None:
            name = "client" if not self.clients else f"client{len(self.clients) + 1}"
        if any(n.name == name for n in self.nodes.values()):
            raise ValueError(f"a node is already called {name!r}")
        node = Node(name, conn, address)
        node.clock = self._clock
        self.nodes[address] = node
        self.clients.append(node)
        self.delivery.follow(conn)
        # The first client keeps the seeds it always had, so existing runs do not change.
        prefix = f"{self.seed}" if name == "client" else f"{self.seed}/{name}"
        # Each link gets its own copy: tests change a running link's config freely.
        self._links[(name, self.server.name)] = Link(
            copy.deepcopy(c2s or LinkConfig()), random.Random(f"{prefix}/c2s")
        )
        self._links[(self.server.name, name)] = Link(
            copy.deepcopy(s2c or LinkConfig()), random.Random(f"{prefix}/s2c")
        )
        return node

    def add_server_address(self, address: Address) -> None:
        """Another local address of the server (its preferred address, RFC 9000 §9.6):
        datagrams to it reach the server with ``local=address``, and what the server
        sends from it (``routed_datagrams()``) leaves from it, over the same links. The
        clients chose it from the server's authenticated parameters, as they chose the
        server's address: the ledger counts it as theirs to send to."""
        self.aliases[address] = self.server
        for node in self.clients:
            self.ledger.initiated.add((node, address))

    def share_uplink(self, node: Node, other: Node) -> None:
        """From now on ``node``'s datagrams to the server take ``other``'s link: one
        bottleneck (one queue, one rate) that the two flows compete for."""
        self._links[(node.name, self.server.name)] = self._links[(other.name, self.server.name)]

    def links_of(self, node: Node) -> tuple[Link, Link]:
        """``(to the server, from the server)`` for a client node."""
        return self._links[(node.name, self.server.name)], self._links[
            (self.server.name, node.name)
        ]

    def links(self) -> list[tuple[str, str, Link]]:
        """Every link as ``(source node name, destination node name, link)``."""
        return [(a, b, link) for (a, b), link in self._links.items()]

    def connect(self, node: Node | None = None) -> None:
        """Start a client's handshake (the first client's by default) toward the server."""
        node = node or self.client
        conn = node.impl
        assert isinstance(conn, QuicConnection)
        conn.connect(self.server.address, self.now)
        self.ledger.initiated.add((node, self.server.address))

    def replace_server(self, impl: QuicConnection | QuicEndpoint) -> Node:
        """Put another implementation at the server's address (e.g. a restarted endpoint)."""
        node = Node("server", impl, self.server.address)
        node.clock = self._clock
        old, self.server = self.server, node
        if isinstance(impl, QuicConnection):
            self.delivery.follow(impl)
        self.nodes[node.address] = node
        for address, owner in self.aliases.items():  # its preferred addresses go with it
            if owner is old:
                self.aliases[address] = node
        return node

    def rebind_client(self, address: Address, node: Node | None = None) -> None:
        """NAT rebinding: from now on the client's datagrams come from ``address``.

        Datagrams still on their way to the old address are lost, like those
        the server keeps sending there.
        """
        node = node or self.client
        del self.nodes[node.address]
        node.address = address
        self.nodes[address] = node

    def keep_client_address(self, address: Address, node: Node | None = None) -> None:
        """The client (the first by default) moved from ``address`` and still reads it, as
        a driver reads its old socket a while: datagrams to it reach the client with
        ``local=address``, and what the client sends from it (``routed_datagrams()``)
        leaves from it, over the client's links, until :meth:`drop_client_address`."""
        self.aliases[address] = node or self.client

    def drop_client_address(self, address: Address) -> None:
        """The client no longer reads ``address``: datagrams to it are lost from now on."""
        del self.aliases[address]

    def link(self, src: Address, dst: Address) -> Link | None:
        a = self.nodes.get(src) or self.aliases.get(src)
        b = self.nodes.get(dst) or self.aliases.get(dst)
        if a is None or b is None:
            return None
        return self._links.get((a.name, b.name))

    def peer_of(self, conn: QuicConnection) -> QuicConnection | None:
        """The other end of ``conn`` among the nodes (matched by the client's first DCID)."""
        odcid = conn.original_destination_cid
        for node in self.nodes.values():
            for other in node.live_connections():
                if (
                    other is not conn
                    and other.is_client != conn.is_client
                    and other.original_destination_cid == odcid
                ):
                    return other
        return None

    def inject(self, data: bytes, src: Address, dst: Address, delay: float = 0.0) -> None:
        """Deliver ``data`` to ``dst`` as if from ``src``, bypassing the links."""
        self._push(self.now + delay, src, dst, data, None)

    def _push(
        self,
        when: float,
        src: Address,
        dst: Address,
        data: bytes,
        origin: Node | None,
        ecn: int = 0,
    ) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, src, dst, data, origin, ecn))

    # Invariants -----------------------------------------------------------------------
    def waive(self, invariant: str, *, reason: str) -> None:
        """Turn off a default invariant for this simulation; ``reason`` says why."""
        if invariant not in self.invariants:
            raise KeyError(f"no invariant {invariant!r} (have {sorted(self.invariants)})")
        if not reason.strip():
            raise ValueError("waiving an invariant needs a reason")
        self.waived[invariant] = reason

    def check_invariants(self) -> None:
        for name, check in self.invariants.items():
            if name not in self.waived:
                check()

    # Running ------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand every datagram the nodes want to send now to the links."""
        for node in list(self.nodes.values()):
            out = node.impl.datagrams_to_send(self.now)
            marked = getattr(node.impl, "ecn_marked", 0)  # the first ones go out ECT(0)
            for i, (data, dst) in enumerate(out):
                self._send(node, node.address, dst, data, 2 if i < marked else 0)
            take_routed = getattr(node.impl, "routed_datagrams", None)
            if take_routed is not None:  # from a preferred address (RFC 9000 §9.6)
                for data, dst, src, ecn in take_routed():
                    self._send(node, (str(src[0]), int(src[1])), dst, data, ecn)
            node.drain()
        self.check_invariants()

    def _send(self, node: Node, src: Address, dst: Any, data: bytes, ecn: int) -> None:
        dst = (str(dst[0]), int(dst[1]))
        self.ledger.on_send(node, dst, len(data), src)
        for tap in self.wiretaps:
            tap(src, dst, data, self.now)
        link = self.link(src, dst)
        if link is None:
            self.sent_elsewhere.append((src, dst, data))
            return
        if link.ecn is not None:
            ecn = link.ecn(ecn, data, self.now)
        for when, payload in link.transmit(data, self.now):
            self._push(when, src, dst, payload, node, ecn)

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
            _, _, src, dst, data, origin, ecn = heapq.heappop(self._queue)
            node = self.nodes.get(dst)
            local = None
            if node is None and dst in self.aliases:
                node, local = self.aliases[dst], dst
            if node is None:
                self.unroutable += 1
                continue
            self.ledger.on_deliver(node, src, len(data), origin, local)
            if origin is not None and (link := self.link(src, dst)) is not None:
                link.stats.delivered += 1
                link.stats.delivered_bytes += len(data)
            node.last_received = now
            if local is not None:
                assert isinstance(node.impl, QuicConnection | QuicEndpoint)
                node.impl.receive_datagram(data, src, now, ecn, local)
            elif ecn and isinstance(node.impl, QuicConnection | QuicEndpoint):
                node.impl.receive_datagram(data, src, now, ecn)
            else:
                node.impl.receive_datagram(data, src, now)
            self.delivery.follow_new(node)  # an endpoint's new connection: before any event
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
                states = [c.state.name for c in node.live_connections()]
                parts.append(f"{node.name}=endpoint{states}")
        for a, b, link in self.links():
            name = {("client", "server"): "c2s", ("server", "client"): "s2c"}.get((a, b))
            parts.append(f"{name or f'{a}->{b}'}={link.stats}")
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


def answer_requests(body: bytes) -> Callable[[Node, QuicConnection, QuicEvent], None]:
    """A server's ``on_event``: each stream the client ends is answered with ``body``."""

    def serve(node: Node, conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.end_stream:
            conn.send_stream_data(event.stream_id, body, end_stream=True)

    return serve


def serve_download(sim: Simulation, body: bytes) -> StreamCollector:
    """The server answers each request stream with ``body``; the client's collector."""
    sim.server.on_event = answer_requests(body)
    down = StreamCollector()
    sim.client.on_event = down
    return down


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


#: For each CID that 1-RTT packets carried: the (from, to) address pairs it travelled between.
CidUses = dict[bytes, set[tuple[Address, Address]]]


def cid_uses(sim: Simulation) -> tuple[CidUses, CidUses]:
    """A wiretap on the datagrams that start with a short header, from now on: the
    (from, to) addresses each CID travels between, the server's CIDs in the clients'
    datagrams and the clients' in the server's (the simulator's CIDs are 8 bytes)."""
    client: CidUses = {}
    server: CidUses = {}

    def tap(src: Address, dst: Address, data: bytes, now: float) -> None:
        if not data[0] & 0x80:
            uses = client if (sim.nodes.get(src) or sim.aliases.get(src)) in sim.clients else server
            uses.setdefault(bytes(data[1:9]), set()).add((src, dst))

    sim.wiretaps.append(tap)
    return client, server


def check_cid_uses(uses: tuple[CidUses, CidUses], *, rebound: bool = False) -> None:
    """RFC 9000 §9.5: no CID left a side from two of its addresses, nor went to two of
    the other side's. ``rebound``: a NAT changed the client's address, which the client
    cannot know (it keeps its CID, §9.5 allows that): only where its CIDs went counts."""
    client, server = uses
    assert all(len(pairs) == 1 for pairs in server.values()), server
    if rebound:
        assert all(len({dst for _, dst in pairs}) == 1 for pairs in client.values()), client
    else:
        assert all(len(pairs) == 1 for pairs in client.values()), client


def one_rtt_frame_types(datagram: bytes, receiver: QuicConnection) -> list[int]:
    """The frame types of a 1-RTT datagram, opened with the receiver's current keys."""
    if not datagram or datagram[0] & 0x80:
        return []
    key = recv_key(receiver, Epoch.ONE_RTT)
    assert key is not None
    pn_offset = 1 + receiver.configuration.connection_id_length
    first, truncated, pn_len = key.unprotect_header(datagram, pn_offset)
    largest = receiver.recovery.spaces[2].largest_received
    pn = decode_packet_number(truncated, pn_len, largest)
    header = bytes((first,)) + datagram[1:pn_offset] + truncated.to_bytes(pn_len, "big")
    payload = key.open(header, datagram[pn_offset + pn_len :], pn)
    reader = Reader(payload)
    types = []
    while not reader.at_end():
        t = reader.varint()
        if t:
            fr.parse_frame(reader, t)
            types.append(t)
    return types


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


# Memory --------------------------------------------------------------------------------

#: Never counted by :func:`deep_size`: shared by every connection, or not state at all.
_OPAQUE: tuple[type, ...] = (
    types.ModuleType,
    type,
    types.BuiltinFunctionType,
    types.CodeType,
    types.FrameType,
    enum.Enum,
    logging.Logger,
    QuicConfiguration,
    QuicEndpoint,
)


def deep_size(obj: object, *, shared: Iterable[object] = ()) -> int:
    """Bytes reachable from ``obj``: ``sys.getsizeof`` summed over its object graph.

    Left out, as they are not the connection's own state: modules, classes,
    plain functions and code, enum members, loggers, configurations (a
    :class:`QuicConfiguration` is shared by every connection of an endpoint),
    endpoints (a connection holds a bound method of its endpoint) and
    everything reachable from ``shared`` (pass the configuration: its
    certificates, keys and trust roots are the same objects the TLS engine
    holds). Closures count (a sent packet's delivery handlers keep state in
    them) but not their globals; a bound method counts its ``__self__`` only.
    """
    excluded: set[int] = set()
    for root in shared:
        excluded.add(id(root))
        _walk(_referents(root), excluded)
    return _walk([obj], excluded)


def _referents(o: object) -> list[object]:
    """What ``o`` keeps alive, as far as :func:`deep_size` follows it."""
    if isinstance(o, _OPAQUE):
        return []
    if isinstance(o, types.FunctionType):
        if o.__closure__ is None:
            return []  # a plain function: code, not state
        return [cell.cell_contents for cell in o.__closure__ if _filled(cell)]
    if isinstance(o, types.MethodType):
        return [o.__self__]
    return gc.get_referents(o)


def _walk(stack: list[object], seen: set[int]) -> int:
    """Sum the sizes of everything reachable from ``stack`` not in ``seen`` (updated)."""
    total = 0
    while stack:
        o = stack.pop()
        i = id(o)
        if i in seen:
            continue
        seen.add(i)
        if isinstance(o, _OPAQUE) or (isinstance(o, types.FunctionType) and not o.__closure__):
            continue
        total += sys.getsizeof(o)
        stack.extend(_referents(o))
    return total


def unacked_stream_bytes(conn: QuicConnection) -> int:
    """Stream bytes ``conn``'s application wrote that the peer has not acknowledged yet:
    reliable delivery keeps them until it does (RFC 9000 §2.2, §13.3), however slowly
    acknowledgments come, and the application bounds them by what it writes."""
    streams = conn.streams.streams.values()
    return sum(stream.sender.buffered for stream in streams if stream.sender is not None)


class MemoryMonitor:
    """The peak size of every connection of every node, measured as a simulation check
    every ``interval`` simulated seconds (and on :meth:`measure`).

    A connection's size is its :func:`deep_size` less its :func:`unacked_stream_bytes`:
    an attacker that drops or delays packets legitimately keeps written data in the
    send buffers longer (measured: 281 KB of a workload's responses at once under
    "thin and replay"), while everything else the connection holds (received data,
    queued frames, records, paths) counts.
    """

    def __init__(self, sim: Simulation, *, interval: float = 0.25) -> None:
        self.sim = sim
        self.interval = interval
        self._next = sim.now
        #: id(connection) -> (peak bytes, "node name/state at the peak", connection)
        self.peaks: dict[int, tuple[int, str, QuicConnection]] = {}
        self.measurements = 0
        sim.checks.append(self._check)

    def _check(self, sim: Simulation) -> None:
        if sim.now >= self._next:
            self._next = sim.now + self.interval
            self.measure()

    def measure(self) -> None:
        self.measurements += 1
        for node in self.sim.nodes.values():
            for conn in node.live_connections():
                size = deep_size(conn, shared=(conn.configuration,))
                size -= unacked_stream_bytes(conn)
                peak = self.peaks.get(id(conn))
                if peak is None or size > peak[0]:
                    label = f"{node.name}/{'client' if conn.is_client else 'server'} connection"
                    label += f" ({conn.state.name} at t={self.sim.now:.3f})"
                    self.peaks[id(conn)] = (size, label, conn)

    def worst(self) -> tuple[int, str]:
        """The largest peak and whose it was."""
        if not self.peaks:
            return 0, "nothing measured"
        size, label, _ = max(self.peaks.values(), key=lambda p: p[0])
        return size, label


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True
