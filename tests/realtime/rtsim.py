"""A deterministic simulated network for the sans-I/O real-time cores.

One :class:`~quicnet.realtime.ServerCore` and any number of
:class:`~quicnet.realtime.ClientCore` live in memory at their own addresses,
joined by ``tests/quic/simnet.py``'s seeded :class:`Link` (loss, reordering,
duplication, latency, corruption) on a simulated clock.

Every run checks the delivery guarantees as an invariant, whatever the test
is about: each message sent through :meth:`RtSim.send` is recorded by a
:class:`DeliveryLedger`, and every ``MessageReceived`` is checked against it
the moment a core reports it:

- any mode: the payload is one the sender sent on that channel to that
  receiver (nothing corrupted, forged or crossed between peers or channels),
  and it arrives at most once;
- RELIABLE_ORDERED: it is the next one in send order (no gap, no reordering);
- SEQUENCED: it is newer than every message already delivered on the channel.

:meth:`DeliveryLedger.check_complete` adds the reliable modes' promise that
everything sent arrived. A test that writes a message past the session (raw
QUIC) records it in the ledger itself, or its delivery fails the run.

:class:`EventOrder` checks the events' life cycle on every run too: on the
server, a peer's messages and migrations come between its PeerConnected and
its one PeerDisconnected, and ids are never given twice; on a client,
messages come between Connected and the one Disconnected, which is last.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simnet import (  # tests/quic, on the path by this directory's conftest
    Link,
    LinkConfig,
    identity,
)

from quicnet.quic import Address, QuicConnection
from quicnet.realtime import (
    ClientCore,
    Connected,
    Delivery,
    Disconnected,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerMigrated,
    RealtimeEvent,
    ServerCore,
    Settings,
    client_configuration,
    server_configuration,
)

__all__ = [
    "SERVER_ADDR",
    "DeliveryLedger",
    "EventOrder",
    "InvariantViolation",
    "LinkConfig",
    "RtNode",
    "RtSim",
    "SimulationStuck",
    "identity",
    "lossy",
]

SERVER_ADDR: Address = ("10.0.0.2", 7777)


def lossy(loss: float = 0.10, *, latency: float = 0.015) -> LinkConfig:
    """A bad path: ``loss``, and 5% of datagrams overtaken (reordered) and 5% duplicated."""
    return LinkConfig(
        latency=latency, jitter=0.004, loss=loss, reorder=0.05, duplicate=0.05, reorder_delay=0.02
    )


class InvariantViolation(AssertionError):
    """A delivery guarantee broke."""


class SimulationStuck(AssertionError):
    """A condition was not reached within the simulated time or step limit."""


@dataclass
class _Flow:
    """The messages one side sent to another on one channel, and what arrived."""

    mode: Delivery
    index: dict[bytes, int] = field(default_factory=dict)  # payload -> send order
    sent: list[bytes] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)


class DeliveryLedger:
    """What was sent, checked against what is delivered (see the module docstring)."""

    def __init__(self) -> None:
        self.flows: dict[tuple[str, str, int], _Flow] = {}
        self.violations: list[str] = []

    def record(self, src: str, dst: str, channel: int, mode: Delivery, data: bytes) -> None:
        flow = self.flows.setdefault((src, dst, channel), _Flow(mode))
        if data in flow.index:
            raise ValueError("ledger payloads must be unique (use RtSim.payload)")
        flow.index[data] = len(flow.sent)
        flow.sent.append(data)

    def _fail(self, text: str) -> None:
        self.violations.append(text)
        raise InvariantViolation(text)

    def delivered(self, src: str, dst: str, channel: int, data: bytes) -> None:
        key = (src, dst, channel)
        flow = self.flows.get(key)
        i = None if flow is None else flow.index.get(data)
        if flow is None or i is None:
            self._fail(f"{src}->{dst} ch{channel}: a message never sent ({len(data)} bytes)")
            return
        if i in flow.seen:
            self._fail(f"{src}->{dst} ch{channel}: message #{i} delivered twice")
        if flow.mode == Delivery.RELIABLE_ORDERED and i != len(flow.received):
            self._fail(
                f"{src}->{dst} ch{channel}: #{i} delivered after {len(flow.received)} of them"
            )
        if flow.mode == Delivery.SEQUENCED and flow.received and i < max(flow.received):
            self._fail(f"{src}->{dst} ch{channel}: #{i} delivered after #{max(flow.received)}")
        flow.seen.add(i)
        flow.received.append(i)

    def reliable_done(self) -> bool:
        """Every reliable message sent so far has arrived."""
        return all(
            len(f.seen) == len(f.sent)
            for f in self.flows.values()
            if f.mode in (Delivery.RELIABLE_ORDERED, Delivery.RELIABLE_UNORDERED)
        )

    def check_complete(self) -> None:
        """The reliable modes' promise: everything sent arrived."""
        for (src, dst, channel), f in self.flows.items():
            if f.mode in (Delivery.RELIABLE_ORDERED, Delivery.RELIABLE_UNORDERED):
                missing = len(f.sent) - len(f.seen)
                assert missing == 0, f"{src}->{dst} ch{channel}: {missing} of {len(f.sent)} lost"

    def flow(self, src: str, dst: str, channel: int) -> _Flow:
        return self.flows[(src, dst, channel)]


class EventOrder:
    """The life cycle of the events each node reports (see the module docstring)."""

    def __init__(self) -> None:
        self._server: dict[tuple[int, int], str] = {}  # (server, peer) -> "up" | "down"
        self._client: dict[str, str] = {}  # node name -> "up" | "down"

    def check(self, node: RtNode, event: object) -> None:
        if isinstance(node.core, ServerCore):
            self._on_server(id(node.core), event)
        elif isinstance(node.core, ClientCore):
            self._on_client(node.name, event)

    def _on_server(self, server: int, event: object) -> None:
        peers = self._server
        if isinstance(event, PeerConnected):
            if (server, event.peer) in peers:
                raise InvariantViolation(f"peer id {event.peer} given twice")
            peers[server, event.peer] = "up"
        elif isinstance(event, MessageReceived | PeerMigrated | PeerDisconnected):
            if peers.get((server, event.peer)) != "up":
                raise InvariantViolation(f"{event} for a peer not connected")
            if isinstance(event, PeerDisconnected):
                peers[server, event.peer] = "down"
        else:
            raise InvariantViolation(f"a server reported {event}")

    def _on_client(self, name: str, event: object) -> None:
        state = self._client.get(name)
        if state == "down":
            raise InvariantViolation(f"{name}: {event} after Disconnected")
        if isinstance(event, Connected):
            if state is not None or event.peer != 0:
                raise InvariantViolation(f"{name}: {event} (state {state})")
            self._client[name] = "up"
        elif isinstance(event, MessageReceived):
            if state != "up" or event.peer != 0:
                raise InvariantViolation(f"{name}: {event} before Connected")
        elif isinstance(event, Disconnected):
            if event.peer != 0:
                raise InvariantViolation(f"{name}: {event}")
            self._client[name] = "down"
        else:
            raise InvariantViolation(f"a client reported {event}")


class RtNode:
    """A core at an address, with the events it reported (and when)."""

    def __init__(
        self, name: str, core: ServerCore | ClientCore | QuicConnection, address: Address
    ) -> None:
        self.name = name
        self.core = core
        self.address = address
        self.events: list[RealtimeEvent] = []

    def __repr__(self) -> str:
        return f"RtNode({self.name!r} at {self.address})"

    def of(self, kind: type) -> list[Any]:
        """The events of ``kind`` reported so far."""
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def client(self) -> ClientCore:
        assert isinstance(self.core, ClientCore)
        return self.core

    @property
    def peer(self) -> int:
        """A client node's id on the server."""
        peer = self.client.client_id
        assert peer is not None, f"{self.name} is not connected"
        return peer


class RtSim:
    """A server and clients on seeded links, with the delivery ledger always on."""

    def __init__(
        self,
        *,
        seed: int = 0,
        settings: Settings | None = None,
        link: LinkConfig | None = None,
        accept: Callable[..., bool | str] | None = None,
        start: float = 1.0,
        server: bool = True,
        **endpoint_options: Any,
    ) -> None:
        self.seed = seed
        self.now = start
        self._processed: float | None = None
        self.settings = settings or Settings()
        self.default_link = link or LinkConfig()
        self.nodes: dict[Address, RtNode] = {}
        self.clients: list[RtNode] = []
        self._links: dict[tuple[str, str], Link] = {}
        self._queue: list[tuple[float, int, Address, Address, bytes]] = []
        self._seq = itertools.count()
        self.steps = 0
        self.unroutable = 0
        self.ledger = DeliveryLedger()
        self.order = EventOrder()
        self._rng = random.Random(f"payload/{seed}")
        self._serial = itertools.count()
        #: Server peer id -> client node (learned from PeerConnected's address).
        self.peer_nodes: dict[int, RtNode] = {}
        self.server: RtNode | None = None
        self._accept = accept
        self._endpoint_options = endpoint_options
        if server:
            self.restart_server()

    def restart_server(self) -> RtNode:
        """A new server core at the server's address (the old one, and its state, is gone)."""
        ident = identity()
        config = server_configuration(ident.certificate_chain, ident.private_key, self.settings)
        core = ServerCore(config, self.settings, accept=self._accept, **self._endpoint_options)
        self.server = RtNode("server", core, SERVER_ADDR)
        self.nodes[SERVER_ADDR] = self.server
        self.peer_nodes.clear()
        return self.server

    # Wiring ----------------------------------------------------------------------------
    @property
    def server_core(self) -> ServerCore:
        assert self.server is not None and isinstance(self.server.core, ServerCore)
        return self.server.core

    def add_client(
        self,
        *,
        settings: Settings | None = None,
        pin: bytes | str | None = None,
        token: bytes = b"",
        link: LinkConfig | None = None,
        back: LinkConfig | None = None,
        to: Address = SERVER_ADDR,
        **quic: Any,
    ) -> RtNode:
        """A client at its own address, connecting to ``to`` now (seeded links both ways)."""
        if pin is None:
            pin = identity().fingerprint
        config = client_configuration("localhost", settings or self.settings, pin=pin, **quic)
        core = ClientCore(config, to, settings or self.settings, self.now, token=token)
        return self._place(core, link, back)

    def add_raw(
        self,
        connection: QuicConnection,
        *,
        link: LinkConfig | None = None,
        to: Address = SERVER_ADDR,
    ) -> RtNode:
        """A bare QUIC connection (no real-time session), connecting to ``to`` now."""
        connection.connect(to, self.now)
        return self._place(connection, link, None)

    def _place(
        self,
        core: ClientCore | QuicConnection,
        link: LinkConfig | None,
        back: LinkConfig | None,
    ) -> RtNode:
        n = len(self.clients) + 1
        name = f"c{n}"
        address: Address = (f"10.1.{n // 250}.{n % 250 + 1}", 40000 + n)
        node = RtNode(name, core, address)
        self.nodes[address] = node
        self.clients.append(node)
        # Each link has its own copy: a test changes one running link freely.
        forward = copy.deepcopy(link or self.default_link)
        backward = copy.deepcopy(back or link or self.default_link)
        self._links[(name, "server")] = Link(forward, random.Random(f"{self.seed}/{name}/up"))
        self._links[("server", name)] = Link(backward, random.Random(f"{self.seed}/{name}/down"))
        return node

    def link(self, src: str, dst: str) -> Link:
        return self._links[(src, dst)]

    def rebind(self, node: RtNode, address: Address) -> None:
        """NAT rebinding: ``node``'s datagrams come from ``address`` from now on."""
        del self.nodes[node.address]
        node.address = address
        self.nodes[address] = node

    def inject(self, data: bytes, src: Address, dst: Address) -> None:
        """Deliver ``data`` to ``dst`` as if from ``src``, now, off the links."""
        heapq.heappush(self._queue, (self.now, next(self._seq), src, dst, data))

    # Messages --------------------------------------------------------------------------
    def payload(self, size: int) -> bytes:
        """``size`` bytes unique in this simulation (a serial number, then seeded noise)."""
        head = next(self._serial).to_bytes(8, "big")
        if size <= 8:
            return head[8 - size :] if size else b""
        return head + self._rng.randbytes(size - 8)

    def send(self, src: RtNode, dst: RtNode, channel: int, data: bytes) -> None:
        """Send through the core (which may raise) and record it in the ledger once it went."""
        if isinstance(src.core, ServerCore):
            src.core.send(dst.peer, channel, data)
        else:
            src.client.send(channel, data)
        mode = src.core.settings.channels[channel]
        self.ledger.record(src.name, dst.name, channel, mode, data)

    # Running ---------------------------------------------------------------------------
    def _drain(self, node: RtNode) -> None:
        core = node.core
        while (event := core.next_event()) is not None:
            node.events.append(event)
            self.order.check(node, event)
            if isinstance(event, PeerConnected):
                other = self.nodes.get(event.address)
                if other is not None:
                    self.peer_nodes[event.peer] = other
            elif isinstance(event, MessageReceived):
                if node is self.server:
                    src = self.peer_nodes.get(event.peer)
                    src_name = src.name if src is not None else f"peer{event.peer}"
                else:
                    src_name = "server"
                self.ledger.delivered(src_name, node.name, event.channel, event.data)

    def flush(self) -> None:
        for node in list(self.nodes.values()):
            for data, dst in node.core.datagrams_to_send(self.now):
                dst = (str(dst[0]), int(dst[1]))
                target = self.nodes.get(dst)
                link = None if target is None else self._links.get((node.name, target.name))
                if link is None:
                    self.unroutable += 1
                    continue
                for when, payload in link.transmit(data, self.now):
                    heapq.heappush(self._queue, (when, next(self._seq), node.address, dst, payload))
            self._drain(node)

    def step(self) -> bool:
        """Advance to the next delivery or timer and process it; False if nothing is left."""
        self.flush()
        times = [t for n in self.nodes.values() if (t := n.core.next_timer()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        if not times:
            return False
        when = min(times)
        self.steps += 1
        if when <= self.now and self._processed == self.now:
            self.now += 1e-6  # a timer at an instant already processed: the clock ticks on
        self.now = now = max(self.now, when)
        self._processed = now
        while self._queue and self._queue[0][0] <= now:
            _, _, src, dst, data = heapq.heappop(self._queue)
            node = self.nodes.get(dst)
            if node is None:
                self.unroutable += 1
                continue
            sender = self.nodes.get(src)
            link = None if sender is None else self._links.get((sender.name, node.name))
            if link is not None:
                link.stats.delivered += 1
                link.stats.delivered_bytes += len(data)
            node.core.receive_datagram(data, src, now)
            self._drain(node)
        for node in list(self.nodes.values()):
            t = node.core.next_timer()
            if t is not None and t <= now:
                node.core.handle_timer(now)
                self._drain(node)
        self.flush()
        return True

    def run_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float = 30.0,
        max_steps: int = 300_000,
        what: str = "condition",
    ) -> float:
        """Step until ``predicate()``; the simulated time it took (SimulationStuck if never)."""
        start = self.now
        steps = 0
        while not predicate():
            if self.now - start > timeout or steps >= max_steps:
                raise SimulationStuck(f"{what}: not reached by t={self.now:.3f} ({steps} steps)")
            if not self.step():
                self.flush()
                if predicate():
                    break
                raise SimulationStuck(f"{what}: the simulation went quiet at t={self.now:.3f}")
            steps += 1
        return self.now - start

    def run_for(self, duration: float, *, max_steps: int = 300_000) -> None:
        """Step until the clock passes ``now + duration``."""
        end = self.now + duration
        for _ in range(max_steps):
            self.flush()
            times = [t for n in self.nodes.values() if (t := n.core.next_timer()) is not None]
            if self._queue:
                times.append(self._queue[0][0])
            if not times or min(times) > end:
                self.now = max(self.now, end)
                self.flush()
                return
            self.step()
        raise SimulationStuck(f"run_for: step limit {max_steps} hit at t={self.now:.3f}")

    # Conveniences ----------------------------------------------------------------------
    def connect_all(self, timeout: float = 30.0) -> None:
        """Run until every client is Connected and the server has seen them all."""

        def up() -> bool:
            clients = [c for c in self.clients if isinstance(c.core, ClientCore)]
            return all(c.client.connected for c in clients) and len(self.peer_nodes) >= len(clients)

        self.run_until(up, timeout=timeout, what="every client connected")

    def ended(self, node: RtNode) -> bool:
        return bool(node.of(Disconnected))

    def peer_ended(self, peer: int) -> bool:
        assert self.server is not None
        return any(e.peer == peer for e in self.server.of(PeerDisconnected))

    def migrations(self) -> list[PeerMigrated]:
        assert self.server is not None
        return self.server.of(PeerMigrated)
