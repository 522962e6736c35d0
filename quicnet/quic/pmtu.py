"""Path MTU discovery for one path: DPLPMTUD (RFC 8899) as QUIC uses it (RFC 9000 §14.3).

Every path starts at the size every QUIC path must carry, 1200 bytes of UDP
payload (``BASE_PLPMTU``, RFC 9000 §14). Once the handshake is confirmed and
the path validated, :class:`PathMtu` asks for probe packets: PING and PADDING
filling a datagram of the size being tried (RFC 9000 §14.4). A probe that is
acknowledged makes its size the path's (the PLPMTU); one that is lost
``MAX_PROBES`` times in a row marks its size too big. The search (RFC 8899
§5.2 ``SEARCHING``):

1. one optimistic probe at the ceiling (the smaller of our
   ``max_udp_payload_size`` and the peer's): on a loopback interface or a clean
   Ethernet path that one probe ends the search;
2. otherwise up a ladder of common sizes (1280, 1350, 1400, 1452, 1472, then
   jumbo-frame sizes) below the ceiling, each tried up to ``MAX_PROBES`` times;
3. after a size failed, a binary search between the largest size that passed
   and the smallest that failed, until they are ``SEARCH_GRANULARITY`` apart.

Then ``SEARCH_COMPLETE``: the search starts again ``PMTU_RAISE_TIMER`` (600 s,
RFC 8899 §5.1.1) later, when the connection next sends something (an idle
connection does not probe).

Plain UDP sockets deliver no Packet Too Big messages, so a path that shrinks
(a *black hole*, RFC 8899 §4.3) shows only as loss. Two signs fall back to
``BASE_PLPMTU`` and start the search over (RFC 8899 §5.2 ``BASE``):

- ``BLACK_HOLE_PTOS`` probe timeouts in a row (RFC 9002 §6.2) while the path's
  size is above the base: nothing at the current size gets through;
- ``BLACK_HOLE_LOSSES`` loss events in which packets larger than the base were
  lost while no larger-than-base packet sent after them was acknowledged
  (smaller ones were: that is how the losses were detected).

Probes count toward the congestion window and bytes in flight, but their loss
is no congestion signal (RFC 8899 §3 item 7, RFC 9000 §14.4): the sender marks
the probe's packet number for recovery, which leaves it out of the congestion
controller's loss response. This object never sends and never reads a clock:
the sender asks it what to probe and tells it what happened.
"""

from __future__ import annotations

import enum

__all__ = [
    "BASE_PLPMTU",
    "BLACK_HOLE_LOSSES",
    "BLACK_HOLE_PTOS",
    "MAX_PROBES",
    "PMTU_RAISE_TIMER",
    "PROBE_LADDER",
    "SEARCH_GRANULARITY",
    "PathMtu",
    "PmtuState",
]

#: RFC 9000 §14: every QUIC path carries UDP payloads of 1200 bytes (RFC 8899 BASE_PLPMTU).
BASE_PLPMTU = 1200
#: RFC 8899 §5.1.2 MAX_PROBES: a size is given up after this many probes lost in a row.
MAX_PROBES = 3
#: RFC 8899 §5.1.1: seconds after a completed search before larger sizes are tried again.
PMTU_RAISE_TIMER = 600.0
#: Sizes tried on the way up (UDP payload): IPv6's minimum link MTU, common tunnel and
#: PPPoE sizes, Ethernet over IPv6 (1500 - 40 - 8) and IPv4 (1500 - 20 - 8), jumbo frames.
PROBE_LADDER = (1280, 1350, 1400, 1452, 1472, 4052, 8972, 16384, 32768, 65507)
#: The binary search after a failed size stops when the sizes that passed and failed
#: are this close.
SEARCH_GRANULARITY = 20
#: Consecutive probe timeouts that mean packets of the current size no longer pass.
BLACK_HOLE_PTOS = 2
#: Loss events with only larger-than-base packets lost that mean the same.
BLACK_HOLE_LOSSES = 3


class PmtuState(enum.Enum):
    """RFC 8899 §5.2's states (DISABLED: discovery is off; the path stays at the base)."""

    DISABLED = "disabled"
    BASE = "base"
    SEARCHING = "searching"
    SEARCH_COMPLETE = "search_complete"


# The members as module constants: on Python 3.11 ``PmtuState.X`` costs ~70 ns.
_DISABLED, _BASE = PmtuState.DISABLED, PmtuState.BASE
_SEARCHING, _SEARCH_COMPLETE = PmtuState.SEARCHING, PmtuState.SEARCH_COMPLETE


class PathMtu:
    """The PLPMTU of one path and the search for a larger one (RFC 8899 §5.2)."""

    __slots__ = (
        "_black_hole_losses",
        "_failures",
        "_high",
        "_jump",
        "_large_acked",
        "_probe_id",
        "black_holes",
        "due_at",
        "mtu",
        "outstanding",
        "probes_acked",
        "probes_lost",
        "state",
    )

    def __init__(self, *, enabled: bool = True) -> None:
        #: The largest UDP payload this path is known to carry (RFC 8899 PLPMTU).
        self.mtu = BASE_PLPMTU
        self.state = _BASE if enabled else _DISABLED
        #: When the next probe may go (None: one is in flight, or discovery is off or
        #: done until the sender restarts it); 0.0: as soon as the path allows.
        self.due_at: float | None = 0.0 if enabled else None
        #: The size of the probe in flight (0: none).
        self.outstanding = 0
        self._probe_id = 0
        #: The smallest size known not to pass (0: none yet; the ceiling bounds the search).
        self._high = 0
        #: The next probe is the optimistic one at the ceiling.
        self._jump = True
        self._failures = 0  # probes of the size being tried lost in a row
        self._black_hole_losses = 0
        self._large_acked = -1.0  # recovery's mark when the losses above were counted
        #: Probes acknowledged and lost, and black holes detected, over the path's life.
        self.probes_acked = 0
        self.probes_lost = 0
        self.black_holes = 0

    # What to probe ----------------------------------------------------------------------------
    def next_probe(self, ceiling: int, now: float) -> tuple[int, int] | None:
        """``(probe id, size)`` of the probe to send now, or None when the search is over.

        ``ceiling``: the largest UDP payload both ends allow (our ``max_udp_payload_size``
        and the peer's transport parameter, RFC 9000 §18.2). Call only once
        :attr:`due_at` has passed; then send the probe, or call :meth:`postpone`.
        A completed search whose raise timer passed starts again here.
        """
        if self.state == _SEARCH_COMPLETE:  # RFC 8899 §5.2: PMTU_RAISE_TIMER
            self._high = 0
            self._jump = True
            self._failures = 0
        size = self._next_size(ceiling)
        if size is None:
            self.state = _SEARCH_COMPLETE
            self.due_at = now + PMTU_RAISE_TIMER
            return None
        self.state = _SEARCHING
        self._probe_id += 1
        self.outstanding = size
        self.due_at = None  # wait for its acknowledgement or loss
        return self._probe_id, size

    def _next_size(self, ceiling: int) -> int | None:
        low = self.mtu
        high = self._high if self._high and self._high <= ceiling else ceiling + 1
        if high - low <= 1:
            return None
        if self._jump:
            return high - 1
        for size in PROBE_LADDER:
            if low < size < high:
                return size
        if low < ceiling < high:
            return ceiling
        if high <= ceiling and high - low > SEARCH_GRANULARITY:
            return (low + high) // 2  # §5.3.2: between what passed and what failed
        return None

    def postpone(self) -> None:
        """The probe :meth:`next_probe` chose could not go (congestion window, 3x limit)."""
        self.outstanding = 0
        self.due_at = 0.0
        self._probe_id += 1  # its id is void

    # What happened to a probe --------------------------------------------------------------
    def on_probe_acked(self, probe_id: int, size: int) -> bool:
        """A probe was acknowledged: its size passes. True when the path's size grew."""
        if probe_id != self._probe_id or self.state == _DISABLED:
            return False  # a probe from before a black hole or a restart
        self.probes_acked += 1
        self.outstanding = 0
        self._failures = 0
        self._jump = False
        self.due_at = 0.0  # the next size at once
        if size <= self.mtu:
            return False
        self.mtu = size
        return True

    def on_probe_lost(self, probe_id: int, size: int) -> None:
        """A probe was declared lost: after ``MAX_PROBES`` in a row its size is too big."""
        if probe_id != self._probe_id or self.state == _DISABLED:
            return
        self.probes_lost += 1
        self.outstanding = 0
        self.due_at = 0.0
        if self._jump:  # the optimistic probe gets one try: then the ladder
            self._jump = False
            return
        self._failures += 1
        if self._failures >= MAX_PROBES:
            self._failures = 0
            self._high = size

    # Black holes (RFC 8899 §4.3) -------------------------------------------------------------
    def on_probe_timeout(self, pto_count: int) -> bool:
        """The application space's probe timer fired (RFC 9002 §6.2) for the
        ``pto_count``-th time in a row. True when that means a black hole."""
        if pto_count >= BLACK_HOLE_PTOS and self.mtu > BASE_PLPMTU:
            self._fall_back()
            return True
        return False

    def on_large_lost(self, large_acked: float) -> bool:
        """Packets above the base size were lost and none sent after them was acknowledged.

        ``large_acked`` is recovery's mark of the newest larger-than-base packet
        acknowledged: a new mark means large packets pass again, and the count
        restarts. True when that makes a black hole.
        """
        if self.mtu <= BASE_PLPMTU:
            return False
        if large_acked != self._large_acked:
            self._large_acked = large_acked
            self._black_hole_losses = 0
        self._black_hole_losses += 1
        if self._black_hole_losses >= BLACK_HOLE_LOSSES:
            self._fall_back()
            return True
        return False

    def _fall_back(self) -> None:
        """RFC 8899 §5.2: back to BASE_PLPMTU, then search again from there."""
        self.black_holes += 1
        self.mtu = BASE_PLPMTU
        self.state = _BASE
        self.outstanding = 0
        self._probe_id += 1  # probes in flight belong to the search that failed
        self._high = 0
        self._jump = False  # up the ladder: the ceiling just failed
        self._failures = 0
        self._black_hole_losses = 0
        self.due_at = 0.0

    def __repr__(self) -> str:
        return f"PathMtu({self.mtu}, {self.state.value})"
