"""An attacker on the simulated network (RFC 9000 §8, §9.3, §10.2, §10.3, §21).

An :class:`Adversary` attaches to a :class:`~simnet.Simulation` and sees every
datagram a node sends (an on-path observer: ``sim.wiretaps``). It cannot read
or forge protected packets, but it can

- replay a captured datagram from its genuine source, later (§21.1, §12.3);
- forward a captured datagram from a spoofed "victim" address that no node
  owns, later or racing ahead of the original (§9.3.2, §9.3.3);
- inject garbage, truncated and bit-flipped datagrams (§21.9, §12.2);
- forge short-header packets with live destination CIDs, learnt from the
  headers of captured packets (the bytes after the first one;
  ``connection_id_length`` long, 8 by default);
- forge Initials: genuine ClientHellos from throwaway clients, which open
  real server connections toward a victim (§8.1, §21.2), or undecryptable
  ones;
- flood many small datagrams at a live CID;
- spoof the source address of a legitimate node;
- thin out a path (drop every other datagram one way for a while: the
  receiver sees many gaps, more than the 64 ACK ranges it keeps, §13.2.3)
  and meanwhile replay everything that path delivered (§12.3: packets below
  the trimmed ranges are still duplicates);
- lie in wait for a connection's first 1-RTT packets and forge short headers
  at it from its peer's address while its handshake is not yet confirmed (a
  forged key-phase bit must not end it, RFC 9001 §6.2).

Everything it does is counted in :attr:`Adversary.counts` and logged in
:attr:`Adversary.log` (shown when a test fails). Its bytes come from a seeded
generator; *when* and *what* it does is the caller's choice (hypothesis's, in
test_adversary.py).

:func:`seal_one_rtt` is not the attacker's: it crafts authenticated 1-RTT
packets with a connection's own keys, to play a peer that breaks the rules.
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from simnet import CLIENT_ADDR, SERVER_ADDR, Address, Simulation, client_config

from quicnet.quic import ConnectionTerminated, QuicConnection
from quicnet.quic.crypto_streams import send_key
from quicnet.quic.errors import TransportError
from quicnet.quic.packets import PacketType, long_header_prefix, parse_long_header
from quicnet.quic.versions import QuicVersion
from quicnet.tls import Epoch

__all__ = [
    "ATTACKER_ADDR",
    "VICTIMS",
    "Adversary",
    "Captured",
    "seal_one_rtt",
]

#: Where the attacker sends from when it does not spoof.
ATTACKER_ADDR: Address = ("10.66.6.6", 6666)
#: Addresses no node owns: whatever a node sends there hits an innocent host.
VICTIMS: tuple[Address, ...] = (
    ("10.66.0.1", 6661),
    ("10.66.0.2", 6662),
    ("10.66.0.3", 443),
)


@dataclass(frozen=True, slots=True)
class Captured:
    """A datagram a node sent, as the attacker saw it leave."""

    time: float
    src: Address
    dst: Address
    data: bytes

    @property
    def is_short(self) -> bool:
        return bool(self.data) and not self.data[0] & 0x80


class Adversary:
    """An on-path observer and off-path injector (see the module docstring)."""

    def __init__(
        self,
        sim: Simulation,
        *,
        seed: int = 0,
        cid_length: int = 8,
        victims: tuple[Address, ...] = VICTIMS,
    ) -> None:
        self.sim = sim
        self.rng = random.Random(f"adversary/{seed}")
        self.cid_length = cid_length
        self.victims = victims
        self.captured: list[Captured] = []
        #: Destination CIDs that route to the node at an address, learnt from headers.
        self.cids: dict[Address, list[bytes]] = {}
        self.counts: Counter[str] = Counter()
        self.log: list[str] = []
        #: Armed races: (src, victim, max_size): forward the next short-header datagram
        #: from ``src`` (of at most ``max_size`` bytes) from ``victim``.
        self._races: list[tuple[Address, Address, int | None]] = []
        #: Armed ambushes: forge this many short headers at a node the first time its
        #: peer sends it a 1-RTT datagram while ``unconfirmed(address)`` holds.
        self._ambushes: list[tuple[int, Callable[[Address], bool]]] = []
        sim.wiretaps.append(self._tap)

    # Observing --------------------------------------------------------------------
    def _tap(self, src: Address, dst: Address, data: bytes, now: float) -> None:
        captured = Captured(now, src, dst, data)
        # In a canonical order: by time, then path, each path's datagrams as sent (an
        # endpoint may hand out its connections' datagrams in any order).
        key = (now, src, dst)
        at = bisect.bisect_right(self.captured, key, key=lambda c: (c.time, c.src, c.dst))
        self.captured.insert(at, captured)
        self._learn_cids(captured)
        for i, (from_src, victim, max_size) in enumerate(self._races):
            if (
                from_src == src
                and captured.is_short
                and (max_size is None or len(data) <= max_size)
            ):
                del self._races[i]
                # §9.3.3: a copy that arrives before the original looks like a migration.
                self.sim.inject(data, victim, dst)
                self._did("race", f"{len(data)}B {src}->{dst} raced from {victim}")
                break
        if self._ambushes and captured.is_short:
            for i, (count, unconfirmed) in enumerate(self._ambushes):
                if unconfirmed(dst):
                    del self._ambushes[i]
                    # With the CID the genuine packet carries, from its source, before it
                    # arrives (it is still on the link).
                    cid = data[1 : 1 + self.cid_length]
                    for _ in range(count):
                        self._forged_short(dst, src, cid, self.rng.randrange(40, 1200))
                    self._did("ambush", f"{count} forged short headers at {dst} as {src}")
                    break

    def _learn_cids(self, c: Captured) -> None:
        data = c.data
        if not data:
            return
        if c.is_short:
            self._add_cid(c.dst, data[1 : 1 + self.cid_length])
            return
        try:
            header = parse_long_header(data)
        except TransportError:
            return
        self._add_cid(c.dst, header.destination_cid)
        self._add_cid(c.src, header.source_cid)  # the sender's CID: the peer sends to it

    def _add_cid(self, address: Address, cid: bytes) -> None:
        known = self.cids.setdefault(address, [])
        if len(cid) == self.cid_length and cid not in known:
            known.append(cid)

    def captured_from(self, src: Address, *, short_only: bool = False) -> list[Captured]:
        return [c for c in self.captured if c.src == src and (c.is_short or not short_only)]

    def _did(self, what: str, detail: str) -> None:
        self.counts[what] += 1
        self.log.append(f"t={self.sim.now:.4f} {what}: {detail}")

    def summary(self) -> str:
        return f"{dict(self.counts)}; last actions:\n  " + "\n  ".join(self.log[-25:])

    # Acting -----------------------------------------------------------------------
    def replay(self, c: Captured, *, times: int = 1, delay: float = 0.0) -> None:
        """The same datagram again, from its genuine source (§21.1: replay)."""
        for _ in range(times):
            self.sim.inject(c.data, c.src, c.dst, delay)
        self._did("replay", f"{times}x {len(c.data)}B {c.src}->{c.dst} from t={c.time:.4f}")

    def forward(self, c: Captured, victim: Address, *, delay: float = 0.0) -> None:
        """A genuine datagram from a spoofed address (§9.3.2, §9.3.3)."""
        self.sim.inject(c.data, victim, c.dst, delay)
        self._did("forward", f"{len(c.data)}B {c.src}->{c.dst} from t={c.time:.4f} as {victim}")

    def race(self, src: Address, victim: Address, *, max_size: int | None = None) -> None:
        """Forward the next short-header datagram ``src`` sends (of at most ``max_size``
        bytes) from ``victim``, ahead of the original."""
        self._races.append((src, victim, max_size))
        self.counts["race armed"] += 1

    def garbage(self, dst: Address, src: Address, size: int) -> None:
        """Random bytes."""
        self.sim.inject(self.rng.randbytes(size), src, dst)
        self._did("garbage", f"{size}B {src}->{dst}")

    def mutate(self, c: Captured, src: Address, *, flips: int, cut: int | None) -> None:
        """A captured datagram with ``flips`` random bits flipped, truncated to ``cut`` bytes."""
        out = bytearray(c.data[:cut] if cut is not None else c.data)
        for _ in range(flips if out else 0):
            out[self.rng.randrange(len(out))] ^= 1 << self.rng.randrange(8)
        self.sim.inject(bytes(out), src, c.dst)
        self._did("mutate", f"{len(out)}B ({flips} flips, cut {cut}) {src}->{c.dst}")

    def forge_short(self, dst: Address, src: Address, cid: bytes, size: int) -> None:
        """A short header with a (live) destination CID over random bytes."""
        self._forged_short(dst, src, cid, size)
        self._did("forge short", f"{size}B cid={cid.hex()} {src}->{dst}")

    def _forged_short(self, dst: Address, src: Address, cid: bytes, size: int) -> None:
        # Random protected bits: the key-phase bit unmasks to either phase (RFC 9001 §5.4).
        first = 0x40 | self.rng.randrange(0x40)
        body = self.rng.randbytes(max(0, size - 1 - len(cid)))
        self.sim.inject(bytes((first,)) + cid + body, src, dst)

    def ambush(self, unconfirmed: Callable[[Address], bool], *, count: int) -> None:
        """Forge ``count`` short headers at the first node whose peer sends it a 1-RTT
        datagram while ``unconfirmed(its address)`` (its handshake not yet confirmed),
        from that peer's address, with the CID the peer uses (RFC 9001 §6.2, §21.1.1)."""
        self._ambushes.append((count, unconfirmed))
        self.counts["ambush armed"] += 1

    def thin_and_replay(
        self,
        src: Address,
        dst: Address,
        *,
        duration: float,
        every: float = 0.03,
    ) -> None:
        """On the path ``src`` -> ``dst``: drop every other datagram for ``duration``
        seconds (each lost packet is a gap at the receiver, soon more than the 64 ACK
        ranges it keeps, §13.2.3), and every ``every`` seconds until then, and once
        after, replay each short-header datagram the path let through since the start
        (§12.3: each is a duplicate, below the trimmed ranges too)."""
        link = self.sim.link(src, dst)
        if link is None:
            return
        sim = self.sim
        start, end = sim.now, sim.now + duration
        previous = link.filter
        parity = [0]
        dropped: set[bytes] = set()

        def thin(data: bytes, now: float) -> bool:
            if now >= end:
                return previous is None or previous(data, now)
            parity[0] ^= 1
            if not parity[0]:
                dropped.add(data)  # replaying it would fill the gap
                return False
            return previous is None or previous(data, now)

        link.filter = thin
        self._did("thin", f"{src}->{dst} every other datagram for {duration:.3f}s")
        due: list[float | None] = [start + every]

        def replay(sim: Simulation) -> None:
            when = due[0]
            if when is None or sim.now < when:
                return
            due[0] = sim.now + every if sim.now < end else None
            if due[0] is None and link.filter is thin:
                link.filter = previous
            old = [
                c
                for c in self.captured
                if c.time >= start
                and c.src == src
                and c.dst == dst
                and c.is_short
                and c.data not in dropped
            ]
            for c in old:
                sim.inject(c.data, c.src, c.dst)
            self._did("replay all", f"{len(old)} datagrams {src}->{dst} since t={start:.4f}")

        sim.checks.append(replay)

    def flood(
        self, dst: Address, src: Address, cid: bytes, *, count: int, size: int, spread: float
    ) -> None:
        """``count`` forged short headers at ``cid`` within ``spread`` seconds."""
        for i in range(count):
            first = 0x40 | self.rng.randrange(0x40)
            body = self.rng.randbytes(max(0, size - 1 - len(cid)))
            self.sim.inject(bytes((first,)) + cid + body, src, dst, spread * i / max(1, count))
        self._did("flood", f"{count}x{size}B cid={cid.hex()} {src}->{dst} over {spread}s")

    def forge_initial(self, dst: Address, src: Address, *, valid: bool) -> bytes:
        """An Initial from ``src``: a real ClientHello (``valid``) or an undecryptable one.

        A valid one opens a real connection at the server, which then answers
        ``src`` (§8.1: at most three times what ``src`` "sent"). Its first
        destination CID becomes live at ``dst``. Returns that CID.
        """
        if valid:
            conn = QuicConnection(client_config())
            conn.connect(dst, self.sim.now)
            [(datagram, _)] = conn.datagrams_to_send(self.sim.now)[:1]
            dcid = conn.original_destination_cid
        else:
            dcid = self.rng.randbytes(8)
            header = long_header_prefix(
                PacketType.INITIAL, QuicVersion.V1, dcid, self.rng.randbytes(8), b"", 4
            )
            length = 1200 - len(header) - 2
            datagram = header + (0x4000 | length).to_bytes(2, "big") + self.rng.randbytes(length)
        self._add_cid(dst, dcid)
        self.sim.inject(datagram, src, dst)
        self._did("forge initial", f"{'valid' if valid else 'garbage'} dcid={dcid.hex()} {src}")
        return dcid


def seal_one_rtt(conn: QuicConnection, payload: bytes, *, dcid: bytes | None = None) -> bytes:
    """A 1-RTT packet carrying ``payload`` (frames) sealed with ``conn``'s own send key.

    It takes the next packet number of ``conn`` (which thus skips it, as
    RFC 9000 §12.3 allows) and encodes it in 4 bytes. For tests that play a
    peer breaking the rules; it reads the connection's internals (``spaces``,
    ``recovery``, ``cids``, ``key_phase``).
    """
    key = send_key(conn, Epoch.ONE_RTT)
    assert key is not None, "no 1-RTT keys yet"
    space = conn.recovery.spaces[2]
    pn = space.next_packet_number
    space.next_packet_number += 1
    cid = conn.cids.current_peer_cid if dcid is None else dcid
    header = (
        bytes((0x40 | (conn.key_phase << 2) | 0x03,)) + cid + (pn & 0xFFFFFFFF).to_bytes(4, "big")
    )
    return key.protect(header, payload, pn)


def seal_initial(
    conn: QuicConnection, frames: bytes, *, version: int | None = None, dcid: bytes | None = None
) -> bytes:
    """A client's datagram of one Initial packet carrying ``frames`` then PADDING to 1,200
    bytes (RFC 9000 §14.1), sealed with ``conn``'s own Initial send key, in ``version``
    (default: the connection's) to ``dcid`` (default: the peer CID in use).

    Like :func:`seal_one_rtt`, it takes the next packet number (§12.3 lets the
    client skip it) and encodes it in 4 bytes.
    """
    key = send_key(conn, Epoch.INITIAL)
    assert key is not None, "no Initial keys (any longer)"
    space = conn.recovery.spaces[0]
    pn = space.next_packet_number
    space.next_packet_number += 1
    header = long_header_prefix(
        PacketType.INITIAL,
        conn.version if version is None else version,
        conn.cids.current_peer_cid if dcid is None else dcid,
        conn.host_cid,
        b"",
        4,
    )
    payload = frames + bytes(1200 - len(header) - 2 - 4 - 16 - len(frames))
    length = 4 + len(payload) + 16
    return key.protect(
        header + (0x4000 | length).to_bytes(2, "big") + pn.to_bytes(4, "big"), payload, pn
    )


def server_ends_on(
    sim: Simulation, server: QuicConnection, datagram: bytes, reason: str
) -> ConnectionTerminated:
    """Inject ``datagram`` from the client, one that breaks a rule on purpose (``reason``
    waives the simulator's protocol-error check), and return how ``server`` ended."""
    sim.waive("protocol errors", reason=reason)
    sim.inject(datagram, CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.01)
    termination = server.termination
    assert termination is not None
    return termination
