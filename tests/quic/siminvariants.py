"""Invariants every simulated run checks beyond the wire-level ones in simnet.py.

- :class:`DeliveryLedger` (``"delivery"``): what each connection's application
  sent on each stream and as DATAGRAMs, and what the peer's application was
  handed. Stream data must arrive once, in order and unaltered (each event
  the next bytes the peer's application wrote; the end only where the peer
  ended the stream); a DATAGRAM payload at most as often as the peer's
  application sent it (RFC 9000 §2.2, §12.3; RFC 9221 §5).
- :class:`ProtocolErrorAudit` (``"protocol errors"``): a connection
  never closes itself with a transport error between two honest quicnet
  peers. Such an error is raised only on a packet that decrypted (RFC 9001
  §6.2, RFC 9000 §21); an attacker cannot make those, and an honest peer
  sends nothing wrong. A test whose peer breaks rules on purpose (authentic
  packets sealed with :func:`adversary.seal_one_rtt`, a mangled handshake, a
  protocol mismatch) waives it with its reason.
- :class:`StateBounds` (``"state bounds"``): every connection's per-peer state
  stays under a fixed size whatever arrives (RFC 9000 §21.9, issue 7 items 6
  and 7): paths and their challenges, peer and retiring connection IDs, queued
  control frames, received packet-number ranges, buffered stream fragments.

The ledger follows each connection by giving it a recording subclass of its
own class (``QuicConnection`` has ``__slots__``, so methods cannot be wrapped
per instance): ``send_stream_data`` and ``send_datagram`` call the real ones,
then record what they accepted. Nothing else of the connection changes. A
delivery from a connection the simulation does not follow (an attacker's own
client) is counted in :attr:`DeliveryLedger.unchecked`, not judged.

Opting out: a test that delivers data no application sent (packets sealed by
hand) or whose peer breaks a rule on purpose turns the invariant off for its
simulation with ``sim.waive("delivery" | "protocol errors" | "state bounds",
reason=...)``; the reason is required. Use it only in such tests (grep
``waive(`` for the list).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from quicnet.quic import (
    ConnectionTerminated,
    DatagramReceived,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.paths import MAX_CHALLENGES, MAX_PATHS
from quicnet.quic.recovery import MAX_RECEIVED_RANGES

if TYPE_CHECKING:
    from simnet import Node, Simulation

__all__ = [
    "MAX_QUEUED_FRAMES",
    "DeliveryLedger",
    "ProtocolErrorAudit",
    "StateBounds",
    "new_events",
]

#: Control frames a connection may hold queued per kind (MAX_STREAM_DATA, STOP_SENDING,
#: NEW_CONNECTION_ID, RETIRE_CONNECTION_ID): far above any honest run, far below what a
#: flood left unbounded reaches (issue 7 item 6: 400k queued PATH_RESPONSEs).
MAX_QUEUED_FRAMES = 4096


def new_events(
    sim: Simulation, seen: dict[Node, int]
) -> Iterator[tuple[Node, QuicConnection, QuicEvent, float]]:
    """Each node's events since the last call with ``seen`` (which it updates), with the
    connection that reported each and when."""
    for node in list(sim.nodes.values()):
        start = seen.get(node, 0)
        events = node.events
        if start == len(events):
            continue
        seen[node] = len(events)
        for i in range(start, len(events)):
            yield node, node.event_connections[i], events[i], node.event_times[i]


class DeliveryLedger:
    """What each application sent, and the checks on what each peer delivered."""

    def __init__(self, sim: Simulation, violation: type[AssertionError]) -> None:
        self.sim = sim
        self._violation = violation
        #: id(sender) -> stream id -> bytes written; which streams it ended.
        self.streams: dict[int, dict[int, bytearray]] = {}
        self.ended: dict[int, set[int]] = {}
        #: id(sender) -> DATAGRAM payload -> times sent.
        self.datagrams: dict[int, Counter[bytes]] = {}
        #: The connections followed (kept alive: their ids key the tables).
        self.followed: dict[int, QuicConnection] = {}
        self._classes: dict[type, type] = {}
        # Receive side: (id(receiver), stream id) -> bytes delivered; DATAGRAMs delivered.
        self._offsets: dict[tuple[int, int], int] = {}
        self._got: dict[int, Counter[bytes]] = {}
        self._peers: dict[int, QuicConnection] = {}
        self._pos: dict[Node, int] = {}
        self._endpoint_sizes: dict[int, int] = {}
        #: Deliveries whose sender this simulation does not follow (not checked).
        self.unchecked = 0

    # Following senders ----------------------------------------------------------------
    def follow(self, conn: QuicConnection) -> None:
        """Record what ``conn``'s application sends from now on."""
        if id(conn) in self.followed:
            return
        base = type(conn)
        cls = self._classes.get(base)
        if cls is None:
            cls = self._classes[base] = self._recording_class(base)
        conn.__class__ = cls
        self.followed[id(conn)] = conn

    def follow_new(self, node: Node) -> None:
        """Follow the connections an endpoint node made since the last call (cheap)."""
        impl = node.impl
        if not isinstance(impl, QuicEndpoint):
            return
        size = len(impl.connections)
        if self._endpoint_sizes.get(id(impl)) == size:
            return
        self._endpoint_sizes[id(impl)] = size
        for conn in impl.connections.values():
            self.follow(conn)

    def _recording_class(self, base: type[QuicConnection]) -> type:
        ledger = self

        def send_stream_data(
            self: QuicConnection, stream_id: int, data: bytes, end_stream: bool = False
        ) -> None:
            base.send_stream_data(self, stream_id, data, end_stream)
            sent = ledger.streams.setdefault(id(self), {}).setdefault(stream_id, bytearray())
            sent += data
            if end_stream:
                ledger.ended.setdefault(id(self), set()).add(stream_id)

        def send_datagram(self: QuicConnection, data: bytes) -> int:
            datagram_id: int = base.send_datagram(self, data)
            ledger.datagrams.setdefault(id(self), Counter())[bytes(data)] += 1
            return datagram_id

        namespace: dict[str, Any] = {
            "__slots__": (),
            "__doc__": base.__doc__,
            "__module__": base.__module__,
            "send_stream_data": send_stream_data,
            "send_datagram": send_datagram,
        }
        return type(base.__name__, (base,), namespace)

    # Checking receivers ---------------------------------------------------------------
    def check(self) -> None:
        for node, conn, event, when in new_events(self.sim, self._pos):
            if isinstance(event, (StreamDataReceived, DatagramReceived)):
                self._delivered(node, conn, event, when)

    def _sender(self, conn: QuicConnection) -> QuicConnection | None:
        peer = self._peers.get(id(conn))
        if peer is None:
            peer = self.sim.peer_of(conn)
            if peer is None or id(peer) not in self.followed:
                return None
            self._peers[id(conn)] = peer
        return peer

    def _delivered(self, node: Node, conn: QuicConnection, event: QuicEvent, when: float) -> None:
        peer = self._sender(conn)
        if peer is None:
            self.unchecked += 1
            return
        where = f"{node.name} t={when:.6f}"
        if isinstance(event, DatagramReceived):
            sent = self.datagrams.get(id(peer), Counter())[event.data]
            got = self._got.setdefault(id(conn), Counter())
            got[event.data] += 1
            if got[event.data] > sent:
                raise self._violation(
                    f"{where}: DATAGRAM {event.data[:24]!r}... delivered {got[event.data]} "
                    f"times, sent {sent} (a replay, or altered; RFC 9000 §12.3, RFC 9221 §5)"
                )
            return
        assert isinstance(event, StreamDataReceived)
        sid = event.stream_id
        key = (id(conn), sid)
        offset = self._offsets.get(key, 0)
        data = self.streams.get(id(peer), {}).get(sid, bytearray())
        n = len(event.data)
        if memoryview(data)[offset : offset + n] != event.data:
            raise self._violation(
                f"{where}: stream {sid}: {n} bytes delivered at offset {offset} are not the "
                f"bytes the peer wrote there (it wrote {len(data)}): duplicated, out of order "
                "or altered (RFC 9000 §2.2)"
            )
        offset += n
        self._offsets[key] = offset
        if event.end_stream and (sid not in self.ended.get(id(peer), ()) or offset != len(data)):
            raise self._violation(
                f"{where}: stream {sid} ended at {offset}; the peer wrote {len(data)} bytes "
                f"and {'ended' if sid in self.ended.get(id(peer), ()) else 'did not end'} it"
            )


class _Periodic:
    """A checker that looks every ``interval`` simulated seconds (``_due``)."""

    def __init__(
        self, sim: Simulation, violation: type[AssertionError], *, interval: float = 0.05
    ) -> None:
        self.sim = sim
        self._violation = violation
        self.interval = interval
        self._next = sim.now

    def _due(self) -> bool:
        """True once per ``interval``: the next look is then scheduled."""
        if self.sim.now < self._next:
            return False
        self._next = self.sim.now + self.interval
        return True


class ProtocolErrorAudit(_Periodic):
    """``"protocol errors"``: no connection closes itself with a transport error.

    It looks at the ConnectionTerminated events, and every ``interval`` simulated
    seconds at each live connection's ``termination`` (set as soon as it closes,
    while the event waits for the closing period to end).
    """

    def __init__(
        self, sim: Simulation, violation: type[AssertionError], *, interval: float = 0.05
    ) -> None:
        super().__init__(sim, violation, interval=interval)
        self._pos: dict[Node, int] = {}

    def check(self) -> None:
        scan = self._due()
        for node in list(self.sim.nodes.values()):
            start = self._pos.get(node, 0)
            if start < len(node.events):
                self._pos[node] = len(node.events)
                for i in range(start, len(node.events)):
                    event = node.events[i]
                    if isinstance(event, ConnectionTerminated):
                        self._judge(node, node.event_connections[i], event)
            if scan:
                for conn in node.live_connections():
                    if conn.termination is not None:
                        self._judge(node, conn, conn.termination)

    def _judge(self, node: Node, conn: QuicConnection, event: ConnectionTerminated) -> None:
        """Closed by itself with a transport error (not NO_ERROR, not a TLS alert, RFC 9001
        §4.8: a handshake that fails on its merits is not an attack)?"""
        if (
            event.by_peer
            or event.is_application
            or event.stateless_reset
            or not 0 < event.error_code < 0x100
        ):
            return
        raise self._violation(
            f"{node.name} t={self.sim.now:.6f}: a {'client' if conn.is_client else 'server'} "
            f"connection closed itself with transport error 0x{event.error_code:x} "
            f"({event.reason!r}), though its peer is an honest quicnet connection: a "
            "packet that should not have been accepted was (RFC 9000 §21, RFC 9001 §6.2), "
            "or the peer broke a rule. A test whose peer does so on purpose waives "
            '"protocol errors" with its reason.'
        )


class StateBounds(_Periodic):
    """``"state bounds"``: per-connection state a peer or attacker can grow stays bounded.

    Checked every ``interval`` simulated seconds (cheap: a few ``len()`` per connection).
    """

    def __init__(
        self, sim: Simulation, violation: type[AssertionError], *, interval: float = 0.05
    ) -> None:
        super().__init__(sim, violation, interval=interval)
        self.checks = 0

    def check(self) -> None:
        if not self._due():
            return
        self.checks += 1
        for node in list(self.sim.nodes.values()):
            for conn in node.live_connections():
                if conn.termination is not None:
                    continue  # closing: its state goes with it (the limit that closed it may
                    # stand one over, as it counts before it refuses)
                problem = self.problem(conn)
                if problem is not None:
                    side = "client" if conn.is_client else "server"
                    raise self._violation(
                        f"{node.name} t={self.sim.now:.6f}: {side} connection state unbounded "
                        f"(RFC 9000 §21.9): {problem}"
                    )

    @staticmethod
    def problem(conn: QuicConnection) -> str | None:
        """What exceeds its bound in ``conn``, or None."""
        paths = conn.paths.paths()
        if len(paths) > MAX_PATHS:
            return f"{len(paths)} paths (at most {MAX_PATHS})"
        for path in paths:
            if len(path.challenges) > MAX_CHALLENGES:
                return f"{len(path.challenges)} PATH_CHALLENGEs outstanding on {path.address}"
        cids = conn.cids
        if len(cids.peer) > cids.our_limit:
            return f"{len(cids.peer)} peer CIDs kept (limit {cids.our_limit})"
        if cids.retirements_outstanding > 2 * max(cids.our_limit, 2):
            return f"{cids.retirements_outstanding} CIDs retiring"
        pending = conn.pending
        for name in ("max_stream_data", "stop_sending", "new_connection_ids"):
            queued = len(getattr(pending, name))
            if queued > MAX_QUEUED_FRAMES:
                return f"{queued} queued {name} frames (at most {MAX_QUEUED_FRAMES})"
        if len(pending.retire_connection_ids) > MAX_QUEUED_FRAMES:
            return f"{len(pending.retire_connection_ids)} queued RETIRE_CONNECTION_ID frames"
        for space in conn.recovery.spaces:
            if len(space.received) > MAX_RECEIVED_RANGES:
                return f"{len(space.received)} received packet-number ranges (§13.2.3)"
        streams = conn.streams
        if streams.fragments > streams.max_fragments:
            return f"{streams.fragments} buffered stream fragments (§21.7)"
        return None
