"""An attacker on the simulated network, while real clients do real work.

One server endpoint serves two or three real clients, each at its own
address with its own pair of seeded links. The clients send requests on streams (unique seeded
payloads; the server answers each with a unique seeded body) and DATAGRAM
frames both ways, the whole time an :class:`~adversary.Adversary` replays,
forwards, spoofs, forges and floods. Hypothesis chooses what it does and when.

What must hold (beyond the simulation's default invariants, checked after
every step of every simulated run: the 3x amplification limit toward every
unvalidated address seen from the wire, the structure of every event, the
delivered data against what the peer's application sent, no connection
closing itself with a transport error, bounded connection state; see
simnet.py and siminvariants.py):

- every byte of every stream arrives once, in order, unaltered, and each
  stream ends exactly once; a DATAGRAM payload arrives at most once, unaltered;
- the good connections stay CONNECTED and finish their work (nothing the
  attacker sends ends them: no ConnectionTerminated);
- every connection's memory (:func:`~simnet.deep_size`, less the written stream
  data its peer has not acknowledged yet, which reliable delivery must keep:
  :class:`~simnet.MemoryMonitor`) stays under a fixed bound (see
  :data:`MEMORY_MARGIN`), measured every 0.1 simulated seconds and at the end;
- a connection closed on purpose mid-attack answers in its closing state only
  its peer's address, at a falling rate (:class:`Closing`, RFC 9000 §10.2.1).

Besides the attacker's moves, hypothesis draws two the application or the
network makes: a NAT rebinding, and a close (after which the attacker sends
junk at the closing connection). "thin and replay" adds a burst of small
DATAGRAMs, so the thinned path carries many packets.

The named tests below script one attack each (RFC 9000 §8, §9.3, §10.2.1,
§12.3, §21).
"""

from __future__ import annotations

import datetime
import functools
import random
from collections import Counter
from typing import Any

import pytest
from adversary import ATTACKER_ADDR, VICTIMS, Adversary, Captured, seal_one_rtt
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Address,
    InvariantViolation,
    LinkConfig,
    MemoryMonitor,
    Node,
    Simulation,
    client_config,
    deep_size,
    server_config,
    unacked_stream_bytes,
)

from quicnet.crypto import (
    Certificate,
    PrivateKey,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
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
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.frames import encode_stream

#: Where the real clients live (the first one where simnet's single client does).
CLIENT_ADDRS: tuple[Address, ...] = (CLIENT_ADDR, ("10.0.0.3", 50001), ("10.0.0.4", 50002))

#: Requests per client, one every TICK; upload and response sizes cycle through these.
REQUESTS = 16
UPLOADS = (6_000, 1, 0, 20_000, 1_300)
RESPONSES = (30_000, 1_200, 5, 60_000, 0)
DATAGRAMS = 24  # per direction and client, one per tick
TICK = 0.075

#: Added to the peak size of the same connections in an attack-free run to get the
#: memory bound: generous (a fresh connection is about 30 KiB, one in the middle of this
#: workload under 200 KiB) yet far below what an unbounded queue or buffer reaches
#: under a flood (a queued PATH_RESPONSE costs ~50 bytes, a buffered datagram ~1.2 KiB).
MEMORY_MARGIN = 256 * 1024


@functools.cache
def _identity() -> tuple[tuple[Certificate, ...], PrivateKey, Certificate]:
    """An Ed25519 server identity: its signatures have a fixed size (ECDSA's vary by a
    byte or two), so a run replays byte for byte in size and time, as hypothesis needs."""
    not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = generate_private_key("Ed25519")
    ca = make_ca(ca_key, "/CN=quicnet adversary test CA", days=30, not_before=not_before)
    key = generate_private_key("Ed25519")
    csr = make_csr(key, "/CN=localhost", names=("localhost",))
    leaf = issue_certificate(csr, ca, ca_key, days=30, not_before=not_before)
    return (leaf,), key, ca


def _server_config(**overrides: Any) -> QuicConfiguration:
    chain, key, _ = _identity()
    return server_config(certificate_chain=chain, private_key=key, **overrides)


def _client_config() -> QuicConfiguration:
    return client_config(trust_roots=(_identity()[2],))


def _link() -> LinkConfig:
    return LinkConfig(latency=0.015, jitter=0.002)


def _payload(*parts: object, size: int) -> bytes:
    """Seeded bytes for ``parts`` (``parts`` itself in front: unique unless cut short)."""
    tag = repr(parts).encode()
    if size <= len(tag):
        return tag[:size] if size else b""
    return tag + random.Random(repr(parts)).randbytes(size - len(tag))


class Party:
    """One good client and what it and the server exchange."""

    def __init__(self, world: World, index: int, node: Node, seed: int) -> None:
        self.world = world
        self.index = index
        self.node = node
        self.seed = seed
        self.conn: QuicConnection = node.impl  # type: ignore[assignment]
        self.server_conn: QuicConnection | None = None
        self.connect_at = 0.0
        self.started = False  # connect() called
        self.connected = False
        self.may_close = False  # a test closes this one on purpose
        self.requests: dict[int, bytes] = {}  # stream id -> upload
        # Receive-side progress: (direction, stream id) -> bytes so far; which ended.
        self.offsets: dict[tuple[str, int], int] = {}
        self.ended: set[tuple[str, int]] = set()
        # DATAGRAM payloads each way: sent, and how often each arrived.
        self.sent_datagrams: dict[str, set[bytes]] = {"up": set(), "down": set()}
        self.got_datagrams: dict[str, Counter[bytes]] = {"up": Counter(), "down": Counter()}
        self.ticked: Counter[str] = Counter()  # DATAGRAMs sent by tick(), each way
        self.bursts = 0  # burst() calls so far (names each burst's payloads)

    @property
    def name(self) -> str:
        return f"client {self.index} at {self.node.address}"

    def response_for(self, stream_id: int) -> bytes:
        k = stream_id >> 2
        return _payload(
            "down", self.seed, self.index, stream_id, size=RESPONSES[k % len(RESPONSES)]
        )

    def check_stream(self, direction: str, event: StreamDataReceived, expected: bytes) -> None:
        key = (direction, event.stream_id)
        where = f"{self.name} {direction} stream {event.stream_id}"
        assert key not in self.ended, f"{where}: data after its end"
        offset = self.offsets.get(key, 0)
        chunk = expected[offset : offset + len(event.data)]
        assert event.data == chunk, f"{where}: bytes at {offset} altered or out of order"
        offset += len(event.data)
        self.offsets[key] = offset
        if event.end_stream:
            assert offset == len(expected), f"{where}: ended at {offset} of {len(expected)}"
            self.ended.add(key)

    def check_datagram(self, direction: str, data: bytes) -> None:
        where = f"{self.name} {direction} DATAGRAM {data[:24]!r}"
        assert data in self.sent_datagrams[direction], f"{where}: never sent (altered?)"
        self.got_datagrams[direction][data] += 1
        assert self.got_datagrams[direction][data] == 1, f"{where}: delivered twice"

    def tick(self) -> None:
        """Issue the next request and DATAGRAMs, as an application would over time."""
        if not self.connected or self.conn.state != ConnectionState.CONNECTED:
            return
        if len(self.requests) < REQUESTS:
            k = len(self.requests)
            sid = self.conn.create_stream()
            body = _payload("up", self.seed, self.index, sid, size=UPLOADS[k % len(UPLOADS)])
            self.requests[sid] = body
            self.conn.send_stream_data(sid, body, end_stream=True)
        for direction, conn in (("up", self.conn), ("down", self.server_conn)):
            k = self.ticked[direction]
            if conn is None or k >= DATAGRAMS or conn.state != ConnectionState.CONNECTED:
                continue
            data = _payload(direction, "dgram", self.seed, self.index, k, size=200)
            conn.send_datagram(data)
            self.sent_datagrams[direction].add(data)
            self.ticked[direction] += 1

    def burst(self, direction: str, count: int, interval: float) -> None:
        """Send ``count`` small DATAGRAMs one way, one every ``interval`` seconds (a game's
        inputs or snapshots): many packets, so a lossy path leaves many gaps."""
        sim = self.world.sim
        due = [sim.now]
        sent = [0]
        # Bursts may overlap (two "thin and replay" moves on one party): each payload names
        # its burst and its place in it, so the application never sends the same bytes twice.
        self.bursts += 1
        burst = self.bursts

        def send(sim: Simulation) -> None:
            conn = self.conn if direction == "up" else self.server_conn
            if sent[0] >= count or sim.now < due[0] or conn is None:
                return
            due[0] = sim.now + interval
            if conn.state != ConnectionState.CONNECTED:
                return
            data = _payload(direction, "burst", self.seed, self.index, burst, sent[0], size=60)
            conn.send_datagram(data)
            self.sent_datagrams[direction].add(data)
            sent[0] += 1

        sim.checks.append(send)

    def done(self) -> bool:
        return len(self.requests) == REQUESTS and all(
            ("up", sid) in self.ended and ("down", sid) in self.ended for sid in self.requests
        )

    def on_client_event(self, node: Node, conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.connected = True
        elif isinstance(event, StreamDataReceived):
            self.check_stream("down", event, self.response_for(event.stream_id))
        elif isinstance(event, DatagramReceived):
            self.check_datagram("down", event.data)
        elif isinstance(event, ConnectionTerminated) and not self.may_close:
            raise AssertionError(f"{self.name}: good connection ended: {event}")

    def on_server_event(self, conn: QuicConnection, event: QuicEvent) -> None:
        self.server_conn = conn
        if isinstance(event, StreamDataReceived):
            expected = self.requests.get(event.stream_id)
            assert expected is not None, (
                f"{self.name}: data on stream {event.stream_id} never opened"
            )
            self.check_stream("up", event, expected)
            if event.end_stream:
                conn.send_stream_data(
                    event.stream_id, self.response_for(event.stream_id), end_stream=True
                )
        elif isinstance(event, DatagramReceived):
            self.check_datagram("up", event.data)
        elif isinstance(event, ConnectionTerminated) and not self.may_close:
            raise AssertionError(f"server side of {self.name}: good connection ended: {event}")


class World:
    """One endpoint, ``clients`` good clients with work to do, one simulated network."""

    def __init__(
        self,
        seed: int,
        *,
        clients: int = 2,
        server: dict[str, Any] | None = None,
        endpoint: dict[str, Any] | None = None,
    ) -> None:
        self.seed = seed
        conns = [QuicConnection(_client_config()) for _ in range(clients)]
        self.endpoint = QuicEndpoint(_server_config(**(server or {})), **(endpoint or {}))
        self.sim = Simulation(conns[0], self.endpoint, seed=seed, c2s=_link(), s2c=_link())
        nodes = [self.sim.client] + [
            self.sim.add_client(c, CLIENT_ADDRS[i + 1], c2s=_link(), s2c=_link())
            for i, c in enumerate(conns[1:])
        ]
        self.parties = [Party(self, i, node, seed) for i, node in enumerate(nodes)]
        self._by_odcid = {p.conn.original_destination_cid: p for p in self.parties}
        for p in self.parties:
            p.node.on_event = p.on_client_event
        self.sim.server.on_event = self._on_server_event
        self.memory = MemoryMonitor(self.sim, interval=0.1)
        self._next_tick = self.sim.now
        self.closings: list[Closing] = []

    def _on_server_event(self, node: Node, conn: QuicConnection, event: QuicEvent) -> None:
        party = self._by_odcid.get(conn.original_destination_cid)
        if party is not None:  # else: a connection the attacker opened
            party.on_server_event(conn, event)

    def advance(self, until: float) -> None:
        """Run the network (connecting clients and ticking their work) until ``until``."""
        sim = self.sim
        while sim.now < until:
            for p in self.parties:
                if not p.started and sim.now >= p.connect_at:
                    p.started = True
                    sim.connect(p.node)
            if sim.now >= self._next_tick:
                self._next_tick = sim.now + TICK
                for p in self.parties:
                    p.tick()
            pending_connects = [p.connect_at for p in self.parties if not p.started]
            stop = min([until, self._next_tick, *pending_connects])
            sim.run_for(max(stop - sim.now, 0.0))
            if stop == until:
                break

    def finish(self, *, timeout: float = 20.0, quiet: float = 5.0) -> None:
        """Run until every party's work is done (each stream answered and ended), then
        ``quiet`` seconds more: long enough for a path validation to time out (RFC 9000
        §8.2.4: three PTOs, at least 3 x 333 ms on a new path) and the server to revert."""
        deadline = self.sim.now + timeout
        while not all(p.done() for p in self.parties if not p.may_close):
            if self.sim.now > deadline:
                progress = {
                    p.name: (len(p.requests), len(p.ended), p.conn.state.name) for p in self.parties
                }
                raise AssertionError(
                    f"work not done after {timeout} simulated seconds: {progress} "
                    f"({self.sim.describe()})"
                )
            self.advance(self.sim.now + TICK)
        self.advance(self.sim.now + quiet)

    def assert_healthy(self, bound: int) -> None:
        for p in self.parties:
            if p.may_close:
                continue
            assert p.conn.state == ConnectionState.CONNECTED, (p.name, p.conn.state)
            assert p.server_conn is not None
            assert p.server_conn.state == ConnectionState.CONNECTED, (p.name, p.server_conn.state)
            assert not p.node.events_of(ConnectionTerminated)
            assert not self.sim.server.events_for(p.server_conn, ConnectionTerminated)
            # The server talks to the client where it really is (RFC 9000 §9.3.2: revert).
            assert p.server_conn.peer_address == p.node.address, p.server_conn.peer_address
        self.memory.measure()
        size, whose = self.memory.worst()
        assert size <= bound, f"{whose} reached {size} bytes; the bound is {bound}"


@functools.cache
def memory_bound(seed: int, clients: int = 2, window: int | None = None) -> int:
    """The peak size of any connection in an attack-free run of the same work, plus
    :data:`MEMORY_MARGIN` (with ``window``: a server whose receive windows are that
    small, plus the window itself, which a peer holding the keys may legitimately fill;
    RFC 9000 §21.7)."""
    world = World(seed, clients=clients, server=_windows(window))
    world.advance(world.sim.now + 0.01)
    world.finish()
    world.assert_healthy(bound=1 << 62)
    return world.memory.worst()[0] + MEMORY_MARGIN + (window or 0)


def _windows(window: int | None) -> dict[str, Any]:
    if window is None:
        return {}
    return {"initial_max_data": window, "initial_max_stream_data": window}


# The attacker, driven by hypothesis ----------------------------------------------------

ATTACKS = (
    "replay",
    "forward",
    "race",
    "garbage",
    "mutate",
    "forge short",
    "flood",
    "forge initial",
    "rebind",  # not the attacker: a real NAT rebinding, which looks the same (§9.3)
    "thin and replay",
    "ambush",  # armed from the start: it waits for a handshake to forge into
    "close",  # not the attacker: one side closes, then the attacker sends it junk
)

#: No shrinking: a failing run is reported with hypothesis's draws and the attacker's
#: log, which is enough to replay it, and shrinking whole simulations takes minutes.
ATTACK = settings(
    max_examples=30,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _sources(world: World) -> list[Address]:
    """Where injected datagrams claim to come from: victims, the attacker, real nodes."""
    return [*VICTIMS, ATTACKER_ADDR, SERVER_ADDR, *(p.node.address for p in world.parties)]


def _attack(data: st.DataObject, world: World, adv: Adversary, kind: str) -> None:
    """One attack of ``kind``, its details drawn now (from what the attacker saw so far)."""
    draw = data.draw
    targets = [SERVER_ADDR, *(p.node.address for p in world.parties)]
    captured = adv.captured
    # RFC 9000 §21.1.1.3: racing a client's Initial (or Handshake) packets from another
    # address can make its handshake fail; no defence is asked for. Those copies are
    # replayed from their true source only, until that client's handshake is confirmed.
    handshaking = {p.node.address for p in world.parties if not p.conn.handshake_confirmed}
    movable = [c for c in captured if c.is_short or c.src not in handshaking]
    if (kind == "replay" and not captured) or (kind in ("forward", "mutate") and not movable):
        kind = "garbage"
    if kind == "replay":
        c: Captured = draw(st.sampled_from(captured))
        adv.replay(c, times=draw(st.integers(1, 5)), delay=draw(st.floats(0, 0.5)))
    elif kind == "forward":
        c = draw(st.sampled_from(movable))
        adv.forward(c, draw(st.sampled_from(VICTIMS)), delay=draw(st.floats(0, 0.3)))
    elif kind == "race":
        src = draw(st.sampled_from([SERVER_ADDR, *(p.node.address for p in world.parties)]))
        adv.race(src, draw(st.sampled_from(VICTIMS)))
    elif kind == "garbage":
        adv.garbage(
            draw(st.sampled_from(targets)),
            draw(st.sampled_from(_sources(world))),
            draw(st.integers(0, 1500)),
        )
    elif kind == "mutate":
        c = draw(st.sampled_from(movable))
        src = draw(st.sampled_from([c.src, *_sources(world)]))
        cut = draw(st.none() | st.integers(0, len(c.data)))
        adv.mutate(c, src, flips=draw(st.integers(0, 4)), cut=cut)
    elif kind in ("forge short", "flood"):
        dst = draw(st.sampled_from(targets))
        known = adv.cids.get(dst, [])
        cid = draw(st.sampled_from(known)) if known else adv.rng.randbytes(8)
        src = draw(st.sampled_from(_sources(world)))
        if kind == "forge short":
            adv.forge_short(dst, src, cid, draw(st.integers(1, 1400)))
        else:
            adv.flood(
                dst,
                src,
                cid,
                count=draw(st.integers(10, 300)),
                size=draw(st.integers(20, 100)),
                spread=draw(st.floats(0, 0.5)),
            )
    elif kind == "forge initial":
        src = draw(st.sampled_from([*VICTIMS, ATTACKER_ADDR]))
        adv.forge_initial(SERVER_ADDR, src, valid=draw(st.booleans()))
    elif kind == "thin and replay":
        # §13.2.3, §12.3: a burst of DATAGRAMs on a path thinned out leaves the receiver
        # more gaps than the ranges it keeps; meanwhile the attacker replays.
        party = draw(st.sampled_from(world.parties))
        up = draw(st.booleans())
        src, dst = (party.node.address, SERVER_ADDR) if up else (SERVER_ADDR, party.node.address)
        count = draw(st.integers(100, 250))
        party.burst("up" if up else "down", count, 0.003)
        adv.thin_and_replay(src, dst, duration=count * 0.003 + 0.1)
    elif kind == "ambush":
        parties = {p.node.address: p for p in world.parties}

        def unconfirmed(address: Address) -> bool:
            p = parties.get(address)
            return p is not None and not p.conn.handshake_confirmed

        # The key-phase bit unmasks with a key random per run: 8 forgeries or more all
        # keep the current phase once in 256 runs at most (RFC 9001 §5.4).
        adv.ambush(unconfirmed, count=draw(st.integers(8, 24)))
    elif kind == "close":
        _close_under_attack(data, world, adv)
    elif kind == "rebind":
        party = draw(st.sampled_from(world.parties))
        n = len(world.sim.nodes) + sum(adv.counts.values())
        address = (f"10.0.9.{n % 250 + 1}", 40000 + n)
        # RFC 9000 §9: addresses are stable during the handshake; rebind only after it.
        if address not in world.sim.nodes and party.conn.handshake_confirmed:
            world.sim.rebind_client(address, party.node)
            adv.log.append(f"t={world.sim.now:.4f} (NAT) {party.name} rebound")
    else:  # pragma: no cover
        raise AssertionError(kind)


class Closing:
    """A connection closed on purpose mid-attack, and what it sent its peer since.

    RFC 9000 §10.2.1: in the closing state a connection answers only packets
    from its peer's address, the 1st, 2nd, 4th, 8th ... of them, so while it
    closes it sends its peer at most one CONNECTION_CLOSE datagram more than the
    bit length of the number of datagrams that came from there. Junk from any
    other address must not add to that; the 3x limit toward those addresses is
    the simulation's own invariant. What the connection sent is its own count:
    the endpoint around it may answer junk with unknown CIDs from the same
    address with stateless resets (rate-limited, and not the connection's).
    """

    def __init__(self, world: World, node: Node, conn: QuicConnection, peer: Address) -> None:
        self.node, self.conn, self.peer = node, conn, peer
        ledger = world.sim.ledger
        self.sent_before = conn.traffic.datagrams_sent
        self.received_before = ledger.received_datagrams.get((node, peer), 0)
        self.checks = 0
        world.sim.checks.append(self.check)

    def check(self, sim: Simulation) -> None:
        if self.conn.state == ConnectionState.TERMINATED:
            return  # after the closing period the endpoint may answer with stateless resets
        self.checks += 1
        ledger = sim.ledger
        sent = self.conn.traffic.datagrams_sent - self.sent_before
        came = ledger.received_datagrams.get((self.node, self.peer), 0) - self.received_before
        assert sent <= came.bit_length() + 1, (
            f"closing {self.node.name} connection sent {sent} datagrams to its peer "
            f"{self.peer} for {came} datagrams from there (RFC 9000 §10.2.1: at a falling "
            "rate, and only for packets from the peer's address)"
        )


def _close_under_attack(data: st.DataObject, world: World, adv: Adversary) -> None:
    """One side of a good connection closes; junk at its CID from a third address or
    its peer's."""
    draw = data.draw
    open_parties = [
        p for p in world.parties if not p.may_close and p.server_conn is not None and p.connected
    ]
    if len(open_parties) < 2:  # keep a good connection to check
        _attack(data, world, adv, "garbage")
        return
    party = draw(st.sampled_from(open_parties))
    assert party.server_conn is not None
    server_side = draw(st.booleans())
    if server_side:
        node, conn, peer = world.sim.server, party.server_conn, party.node.address
    else:
        node, conn, peer = party.node, party.conn, SERVER_ADDR
    # The CID the peer sends to, from the latest short header captured on its way in.
    heard = [c for c in adv.captured if c.dst == node.address and c.src == peer and c.is_short]
    if not heard or conn.state != ConnectionState.CONNECTED:
        _attack(data, world, adv, "garbage")
        return
    party.may_close = True
    conn.close(0x42, "closing mid-attack")
    world.sim.flush()
    world.closings.append(Closing(world, node, conn, peer))
    adv.flood(
        node.address,
        # A third address (nothing may answer it), or the peer's, spoofed (answers fall off).
        draw(st.sampled_from([ATTACKER_ADDR, *VICTIMS, peer])),
        heard[-1].data[1 : 1 + adv.cid_length],
        count=draw(st.integers(50, 300)),
        size=draw(st.integers(20, 100)),
        spread=draw(st.floats(0, 0.1)),
    )
    adv.log.append(
        f"t={world.sim.now:.4f} {party.name} closed its {'server' if server_side else 'client'} side"
    )


@ATTACK
@given(data=st.data())
def test_attacker_cannot_hurt_good_connections(data: st.DataObject) -> None:
    seed = data.draw(st.integers(0, 3), label="seed")
    clients = data.draw(st.integers(2, 3), label="clients")
    world = World(seed, clients=clients)
    adv = Adversary(world.sim, seed=seed)
    start = world.sim.now
    for p in world.parties:
        p.connect_at = start + data.draw(st.floats(0, 0.2), label="connect at")
    plan = sorted(
        data.draw(
            st.lists(
                st.tuples(st.floats(0, 1.2), st.sampled_from(ATTACKS)), min_size=1, max_size=12
            ),
            label="plan (time, attack)",
        )
    )
    try:
        for _, kind in plan:
            if kind == "ambush":  # it lies in wait from the start
                _attack(data, world, adv, kind)
        for at, kind in plan:
            if kind != "ambush":
                world.advance(start + at)
                _attack(data, world, adv, kind)
        world.finish()
        world.assert_healthy(memory_bound(seed, clients))
        assert all(c.checks for c in world.closings)
    except BaseException:
        note(f"adversary: {adv.summary()}")
        note(f"simulation: {world.sim.describe()}")
        raise


# Named scenarios -----------------------------------------------------------------------


def _started(seed: int, **kwargs: Any) -> tuple[World, Adversary]:
    """Both clients connected and working; the attacker watching."""
    world = World(seed, **kwargs)
    adv = Adversary(world.sim, seed=seed)
    world.advance(world.sim.now + 0.3)
    assert all(p.connected and p.server_conn is not None for p in world.parties)
    return world, adv


@pytest.mark.parametrize("timing", ["race", "race-small", "late"])
def test_forwarded_client_packet_from_a_victim(timing: str) -> None:
    """RFC 9000 §9.3.2-§9.3.3, §8: a copy of a client packet from a victim's address.

    Racing ahead of the original, it looks like a migration: the server may
    probe the victim (at most 3x what the victim address "sent": a small
    packet, such as one carrying only an ACK, earns little), must go back to
    the client's real address, and the transfer goes on. Arriving late, it is
    a duplicate: nothing goes to the victim at all.
    """
    world, adv = _started(41)
    victim = VICTIMS[0]
    client = world.parties[0]
    if timing.startswith("race"):
        adv.race(client.node.address, victim, max_size=60 if timing == "race-small" else None)
        world.advance(world.sim.now + 0.2)
        assert adv.counts["race"] == 1
    else:
        world.advance(world.sim.now + 0.1)
        # One the server received long ago (the link's latency is 15-17 ms).
        old = adv.captured_from(client.node.address, short_only=True)
        old = [c for c in old if c.time < world.sim.now - 0.05]
        adv.forward(old[-1], victim)
    world.finish()
    world.assert_healthy(memory_bound(41))
    server = world.sim.server
    sent = world.sim.ledger.sent.get((server, victim), 0)
    received = world.sim.ledger.received.get((server, victim), 0)
    assert received > 0
    assert sent <= 3 * received
    if timing == "late":
        assert sent == 0


def test_client_ignores_server_packets_from_an_unknown_address() -> None:
    """RFC 9000 §9: a client discards packets from an address its server never used,
    so a forwarded server packet makes it send nothing to the victim."""
    world, adv = _started(42)
    victim = VICTIMS[1]
    adv.race(SERVER_ADDR, victim)
    world.advance(world.sim.now + 0.1)
    assert adv.counts["race"] == 1
    world.finish()
    world.assert_healthy(memory_bound(42))
    for p in world.parties:
        assert world.sim.ledger.sent.get((p.node, victim), 0) == 0
        assert p.conn.peer_address == SERVER_ADDR


def test_replayed_datagram_frames_are_delivered_once() -> None:
    """RFC 9000 §12.3, §13.2.3; RFC 9221 §5: a replayed packet is a duplicate, however
    many times it comes and however many gaps the receiver saw since (its ACK ranges
    are bounded; the packets below them must still count as seen)."""
    world, adv = _started(43, clients=1)
    party = world.parties[0]
    client = party.conn
    sim = world.sim
    up, _down = sim.links_of(party.node)
    passed: set[bytes] = set()
    seen = [0]

    def every_other(data: bytes, now: float) -> bool:
        seen[0] += 1
        if seen[0] % 2:
            passed.add(data)
            return True
        return False

    def replay_passed(times: int) -> None:
        # Only what reached the server: replaying a lost packet would fill a gap.
        for c in adv.captured_from(party.node.address, short_only=True):
            if c.data in passed:
                adv.replay(c, times=times)

    # On the path, every other client datagram is lost: over 200 packets the server
    # sees far more than 64 gaps in the packet numbers.
    up.filter = every_other
    for i in range(200):
        data = b"once %d" % i
        client.send_datagram(data)
        party.sent_datagrams["up"].add(data)
        sim.run_for(0.002)
    up.filter = None
    assert seen[0] - len(passed) > 80, "the premise: many gaps"
    replay_passed(3)  # the oldest are below the receiver's ACK ranges by now ...
    sim.run_for(0.3)
    replay_passed(3)  # ... and later all of them
    sim.run_for(0.3)
    assert adv.counts["replay"] >= 160  # each of 80+ delivered packets, three times, twice
    got = party.got_datagrams["up"]
    assert got and max(got.values()) == 1  # check_datagram raised at once anyway
    world.finish()
    world.assert_healthy(memory_bound(43, clients=1))


def test_flood_of_forged_short_headers_from_victims() -> None:
    """RFC 9000 §8, §21.9: forged packets at live CIDs from victims' addresses do not
    decrypt; nothing (or at most 3x) goes back to the victims and the work goes on."""
    world, adv = _started(44)
    server_cids = adv.cids[SERVER_ADDR]
    assert server_cids
    for i, victim in enumerate(VICTIMS):
        for cid in server_cids:
            adv.flood(SERVER_ADDR, victim, cid, count=100, size=30 + 20 * i, spread=0.3)
    world.finish()
    world.assert_healthy(memory_bound(44))
    for victim in VICTIMS:
        sent = world.sim.ledger.sent.get((world.sim.server, victim), 0)
        assert sent <= 3 * world.sim.ledger.received[(world.sim.server, victim)]


def test_garbage_does_not_raise_the_budget_toward_an_unvalidated_address() -> None:
    """RFC 9000 §8.1: the 3x budget toward an address counts what came *from that
    address*. A real ClientHello from a victim's address opens a connection; garbage
    at its CID from the attacker's own address must not let the server send the
    victim more (here: its retransmitted first flight)."""
    world, adv = _started(45)
    victim = VICTIMS[2]
    dcid = adv.forge_initial(SERVER_ADDR, victim, valid=True)
    world.advance(world.sim.now + 0.05)
    adv.flood(SERVER_ADDR, ATTACKER_ADDR, dcid, count=60, size=1200, spread=2.0)
    world.advance(world.sim.now + 3.0)
    world.finish()
    world.assert_healthy(memory_bound(45))
    ledger = world.sim.ledger
    assert (
        ledger.sent[(world.sim.server, victim)] <= 3 * ledger.received[(world.sim.server, victim)]
    )


def test_closing_connection_and_garbage_from_a_third_address() -> None:
    """RFC 9000 §10.2.1: a closing connection answers with CONNECTION_CLOSE at a limited
    rate, and sends an unvalidated address at most 3x what came from it.

    200 garbage datagrams at the closing connection's CID, from the attacker's
    address, during the closing period: at most a tenth of them may trigger a
    CONNECTION_CLOSE toward the real peer (a rate limit that grows the gap, as
    §10.2.1 suggests, answers far fewer). The other client is not affected.
    """
    world, adv = _started(46)
    closing = world.parties[0]
    closing.may_close = True
    sim = world.sim
    server_conn = closing.server_conn
    assert server_conn is not None
    cid = adv.captured_from(closing.node.address, short_only=True)[-1].data[1:9]
    server_conn.close(0x42, "closing on purpose")
    sim.flush()
    assert server_conn.state == ConnectionState.CLOSING
    before = sim.ledger.sent_datagrams.get((sim.server, closing.node.address), 0)
    adv.flood(SERVER_ADDR, ATTACKER_ADDR, cid, count=200, size=60, spread=0.15)
    sim.run_for(0.2)
    closes = sim.ledger.sent_datagrams.get((sim.server, closing.node.address), 0) - before
    to_attacker = sim.ledger.sent.get((sim.server, ATTACKER_ADDR), 0)
    assert to_attacker <= 3 * sim.ledger.received[(sim.server, ATTACKER_ADDR)]
    assert closes <= 20, f"{closes} CONNECTION_CLOSE datagrams for 200 garbage datagrams"
    [event] = closing.node.events_of(ConnectionTerminated)
    assert event.by_peer and event.error_code == 0x42
    world.finish()
    world.assert_healthy(memory_bound(46))


def test_peer_flooding_path_challenges_stays_within_the_memory_bound() -> None:
    """RFC 9000 §8.2.2, §21.9: a peer (with the keys; an off-path attacker has none)
    sends 200 packets of 120 PATH_CHALLENGE frames each. The server owes each at most
    one PATH_RESPONSE but must not queue them without bound: its connection stays
    under the same memory bound, and the other client keeps working."""
    world, _ = _started(47)
    bad = world.parties[0]
    bad.may_close = True  # a misbehaving peer may be cut off; it must not take memory
    sim = world.sim
    server_conn = bad.server_conn
    assert server_conn is not None
    bound = memory_bound(47)
    peak = [0]

    def watch(sim: Simulation) -> None:
        if server_conn.state != ConnectionState.TERMINATED:
            peak[0] = max(peak[0], _size(server_conn))

    rng = random.Random("path challenges")
    for _ in range(200):
        frames = b"".join(b"\x1a" + rng.randbytes(8) for _ in range(120))
        sim.inject(seal_one_rtt(bad.conn, frames), bad.node.address, SERVER_ADDR)
    sim.checks.append(watch)
    world.advance(sim.now + 0.5)
    sim.checks.remove(watch)
    assert peak[0] <= bound, f"server connection reached {peak[0]} bytes; the bound is {bound}"
    world.finish()
    world.assert_healthy(bound)


def test_peer_fragmenting_a_stream_stays_within_the_memory_bound() -> None:
    """RFC 9000 §21.7: a peer (with the keys) sends 20,000 one-byte STREAM frames with a
    hole before each, all within the 64 KiB the server allows. The server may buffer
    its window's worth, or refuse that many holes and close the connection (§21.9),
    but the ranges it tracks must not cost more than the window (plus the margin); the
    other client keeps working."""
    window = 64 * 1024
    world, _ = _started(48, server=_windows(window))
    bad = world.parties[0]
    bad.may_close = True  # RFC 9000 §21.9: an endpoint MAY answer with a connection error
    sim = world.sim
    sim.waive("protocol errors", reason="the peer fragments a stream on purpose (§21.9)")
    server_conn = bad.server_conn
    assert server_conn is not None
    bound = memory_bound(48, window=window)
    sid = bad.conn.create_stream()
    for packet in range(200):
        frames = b"".join(
            encode_stream(sid, 2 * (packet * 100 + i) + 1, b"x", False) for i in range(100)
        )
        sim.inject(seal_one_rtt(bad.conn, frames), bad.node.address, SERVER_ADDR)
    sim.run_for(0.001)  # delivered, nothing read: the holes never fill
    size = _size(server_conn)
    assert size <= bound, f"server connection reached {size} bytes; the bound is {bound}"
    world.finish()
    world.assert_healthy(bound)


def _size(conn: QuicConnection) -> int:
    """A connection's size as :class:`~simnet.MemoryMonitor` measures it (the bounds)."""
    return deep_size(conn, shared=(conn.configuration,)) - unacked_stream_bytes(conn)


# The harness itself ---------------------------------------------------------------------


class _Reflector:
    """A fake server that answers every datagram with ``factor`` times as many bytes."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.out: list[tuple[bytes, Address]] = []
        self.connections: dict[bytes, QuicConnection] = {}

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        self.out.append((bytes(self.factor * len(data)), address))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self.out = self.out, []
        return out

    def next_timer(self) -> None:
        return None

    def handle_timer(self, now: float) -> None:
        pass

    def next_event(self) -> None:
        return None


def _reflecting_sim(factor: int) -> tuple[Simulation, _Reflector]:
    sim = Simulation(QuicConnection(client_config()), QuicEndpoint(server_config()))
    reflector = _Reflector(factor)
    sim.replace_server(reflector)  # type: ignore[arg-type]
    return sim, reflector


def test_the_amplification_invariant_catches_a_reflector() -> None:
    sim, _ = _reflecting_sim(4)
    sim.inject(b"x" * 100, VICTIMS[0], SERVER_ADDR)
    with pytest.raises(InvariantViolation, match=r"sent 400 bytes .* received only 100"):
        sim.run_for(0.1)


def test_the_amplification_invariant_trusts_an_address_that_answered() -> None:
    """A real node that received from the server and answered from its address owns it."""
    sim, reflector = _reflecting_sim(3)
    sim.connect()  # 1200 bytes in, 3600 out (garbage to the client, which retransmits)
    sim.run_until(
        lambda: sim.ledger.is_validated(sim.server, CLIENT_ADDR), timeout=5.0, what="validation"
    )
    reflector.factor = 10  # no limit toward a validated address
    sim.run_for(3.0)
    ledger = sim.ledger
    assert ledger.sent[(sim.server, CLIENT_ADDR)] > 3 * ledger.received[(sim.server, CLIENT_ADDR)]


def test_waiving_an_invariant_takes_a_reason() -> None:
    sim, _ = _reflecting_sim(4)
    with pytest.raises(ValueError, match="reason"):
        sim.waive("amplification", reason=" ")
    with pytest.raises(KeyError):
        sim.waive("no such thing", reason="typo")
    sim.waive("amplification", reason="this test is about the reflector itself")
    sim.inject(b"x" * 100, VICTIMS[0], SERVER_ADDR)
    sim.run_for(0.1)
    assert sim.ledger.sent[(sim.server, VICTIMS[0])] == 400


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (
            [StreamDataReceived(401, b"a", True), StreamDataReceived(401, b"b", False)],
            "after the end",
        ),
        ([StreamReset(405, 1), StreamDataReceived(405, b"b", False)], "after RESET_STREAM"),
        ([DatagramLost(3000), DatagramAcknowledged(3000)], "twice"),
        (
            [ConnectionTerminated(0, None, "forged", by_peer=True, is_application=True)],
            "never sent",
        ),
    ],
)
def test_the_integrity_invariant(events: list[QuicEvent], message: str) -> None:
    world = World(49, clients=1)
    world.advance(world.sim.now + 0.2)
    node = world.parties[0].node
    node.on_event = None
    for event in events:
        node.events.append(event)
        node.event_times.append(world.sim.now)
        node.event_connections.append(world.parties[0].conn)
    with pytest.raises(InvariantViolation, match=message):
        world.sim.check_invariants()
