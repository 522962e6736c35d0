"""Explicit Congestion Notification (RFC 9000 §13.4, Appendix A.4; RFC 9002 §7.1, B.7).

Two halves, one object per connection:

- Receiving: ``received[space * 4 + codepoint]`` counts the packets that arrived in
  each packet number space with ECT(1), ECT(0) or CE (index 0, Not-ECT, is
  never counted). The sender writes them into an ACK_ECN frame (§19.3.2) once
  any is non-zero.
- Sending: whether the datagrams built now carry ECT(0), and the validation
  of the path (§13.4.2). A path starts *testing*: the first ``TESTING_PACKETS``
  packets (counted per ``datagrams_to_send`` call, so a call in progress
  finishes marked) go out ECT(0), fewer if a second PTO in a row fires before
  an ACK; then marking pauses (*unknown*) until an ACK
  frame validates, which makes the path *capable* and marking resumes. A path
  that drops every marked packet stays unknown, that is unmarked, for good.
  Validation fails, and marking stops on this path (*failed*), when an ACK
  newly acknowledges a marked packet without ECN counts, when the counts fall,
  report ECT(1) (never sent), more ECT(0) than was sent, or grow by less than
  the marked packets the frame newly acknowledges (§13.4.2.1). Only ACK
  frames that raise the largest acknowledged are checked (reordered ones could
  carry older counts). A rise in the CE count of a frame that validates is a
  congestion event for the controller (RFC 9002 §7.1).

The marking decision is made once per ``datagrams_to_send`` call: the driver
applies one codepoint to all of the call's datagrams (one ``setsockopt`` when
it changes, none otherwise). Which packet numbers went out marked is kept as a
few ranges per space (one per change of decision), not per packet. A new path
starts over at testing, as does a restart after Version Negotiation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "CE",
    "ECT0",
    "ECT1",
    "NOT_ECT",
    "TESTING_PACKETS",
    "EcnState",
    "EcnValidation",
]

# The ECN field of the IP header (RFC 3168 §5).
NOT_ECT, ECT1, ECT0, CE = 0, 1, 2, 3
#: Packets marked ECT(0) on a new path before waiting for an ACK (RFC 9000 §13.4.2).
TESTING_PACKETS = 10


class EcnValidation:
    """The states of Appendix A.4 (plus ``DISABLED``: the configuration turned ECN off)."""

    TESTING = "testing"
    UNKNOWN = "unknown"
    CAPABLE = "capable"
    FAILED = "failed"
    DISABLED = "disabled"


class _Space(Protocol):
    @property
    def next_packet_number(self) -> int: ...


class _Recovery(Protocol):
    @property
    def spaces(self) -> Sequence[_Space]: ...

    @property
    def pto_count(self) -> int: ...


class _Acked(Protocol):
    packet_number: int


# Offsets of the per-space fields in ``EcnState._n``.
_OPEN, _CLOSED, _PEER_ECT0, _PEER_CE, _LAST = 0, 3, 6, 9, 12
_CAPABLE = EcnValidation.CAPABLE


class EcnState:
    """A connection's ECN counts, marking decision and path validation.

    The per-space numbers live in two flat lists of small ints (an idle
    connection holds one of these per side, so it is kept small).
    """

    __slots__ = (
        "_marked",
        "_n",
        "_path",
        "_recovery",
        "_settled",
        "_testing_left",
        "marking",
        "received",
        "state",
        "validating",
    )

    def __init__(self, enabled: bool) -> None:
        #: Packets received, by space and ECN codepoint: ``received[space_id * 4 + codepoint]``
        #: (codepoint 0, Not-ECT, is never counted).
        self.received = [0] * 12
        self.state = EcnValidation.TESTING if enabled else EcnValidation.DISABLED
        #: Whether the datagrams of the current ``datagrams_to_send`` call carry ECT(0).
        self.marking = False
        #: Whether ACK frames still need checking (testing, unknown or capable).
        self.validating = enabled
        self._path: object = None
        self._recovery: object = None
        #: The path whose marking decision is settled (capable and marking, or unknown or
        #: failed and not): begin_batch answers ``marking`` at once until the state moves.
        self._settled: object = None
        self._reset()

    def received_counts(self, space_id: int) -> tuple[int, int, int, int]:
        """Packets received in ``space_id`` by codepoint (Not-ECT, ECT(1), ECT(0), CE)."""
        r = self.received
        base = space_id * 4
        return r[base], r[base + 1], r[base + 2], r[base + 3]

    def _reset(self) -> None:
        #: The closed packet-number ranges sent marked, flat: space, first, end; None until
        #: marking first stops (on a path that validates, never). The open range of each
        #: space is ``_n[_OPEN + space]``.
        self._marked: list[int] | None = None
        #: Per space (index ``field + space_id``): where the open range starts (_OPEN, -1:
        #: none), how many packets the closed ranges hold (_CLOSED), the highest ECT(0) and
        #: CE counts the peer reported (_PEER_ECT0, _PEER_CE; ECT(1) stays 0), and the next
        #: packet number at the last decision (_LAST).
        self._n = [-1, -1, -1] + [0] * 12
        self._testing_left = TESTING_PACKETS
        self.marking = False
        self._settled = None

    # Sending ----------------------------------------------------------------------------------
    def begin_batch(self, recovery: _Recovery, path: object) -> bool:
        """Decide whether the datagrams about to be built carry ECT(0); called once per
        ``datagrams_to_send`` with the connection's recovery and current path."""
        if path is self._settled and recovery is self._recovery:  # the common case: no news
            return self.marking
        state = self.state
        if state == EcnValidation.DISABLED:
            return False
        n = self._n
        if recovery is not self._recovery:  # a new connection, or restarted by VN (§6)
            # Not marking after the reset: the _LAST numbers are taken below, unread before.
            if self._recovery is not None:  # restarted (a new connection is fresh from init)
                self._reset()
                n = self._n
            self._recovery = recovery
        if path is not self._path:
            # §13.4.2: each path is validated on its own (the peer's counts and ours of
            # what went out marked are per packet number space, so they carry over).
            self._path = path
            self._testing_left = TESTING_PACKETS
            state = self.state = EcnValidation.TESTING
            self.validating = True
        # The three spaces by hand, not a comprehension (a call on Python 3.11): this runs
        # for every datagrams_to_send while a path is tested, the whole handshake.
        initial, handshake, application = recovery.spaces
        numbers = [
            initial.next_packet_number,
            handshake.next_packet_number,
            application.next_packet_number,
        ]
        if self.marking and state == EcnValidation.TESTING:
            self._testing_left -= (
                numbers[0] + numbers[1] + numbers[2] - n[_LAST] - n[_LAST + 1] - n[_LAST + 2]
            )
            # §13.4.2: ten packets, or fewer if probes go unanswered (marks dropped?).
            if self._testing_left <= 0 or recovery.pto_count >= 2:
                state = self.state = EcnValidation.UNKNOWN
        n[_LAST : _LAST + 3] = numbers
        mark = state == EcnValidation.TESTING or state == EcnValidation.CAPABLE
        # Only testing counts packets per call; the other states wait for an ACK frame.
        self._settled = None if state == EcnValidation.TESTING else path
        if mark != self.marking:
            self.marking = mark
            if mark:  # each space opens a range at its next packet number
                n[_OPEN : _OPEN + 3] = numbers
                return True
            for space_id, pn in enumerate(numbers):
                first = n[_OPEN + space_id]
                if first >= 0:  # close this space's open range
                    n[_OPEN + space_id] = -1
                    if pn > first:
                        closed = self._marked
                        if closed is None:
                            closed = self._marked = []
                        closed += (space_id, first, pn)
                        n[_CLOSED + space_id] += pn - first
        return mark

    def _marked_among(self, space_id: int, acked: Sequence[_Acked]) -> int:
        """How many of ``acked`` (ascending) were sent marked (the walk the open range
        spares the common case)."""
        start = self._n[_OPEN + space_id]
        closed = self._marked or ()
        n = 0
        for p in acked:
            pn = p.packet_number
            if 0 <= start <= pn:
                n += 1
                continue
            for i in range(0, len(closed), 3):
                if closed[i] == space_id and closed[i + 1] <= pn < closed[i + 2]:
                    n += 1
                    break
        return n

    # Receiving ACK frames (§13.4.2.1) ---------------------------------------------------------
    def on_ack(
        self,
        space_id: int,
        acked: Sequence[_Acked],
        counts: tuple[int, int, int] | None,
        largest_raised: bool,
        next_packet_number: int,
    ) -> int:
        """Check an ACK frame's ECN counts against the packets it newly acknowledged
        (``acked``, ascending, not empty); returns the rise in the CE count (0 unless
        the frame validates), a congestion signal for the controller."""
        n = self._n
        start = n[_OPEN + space_id]
        if start >= 0 and acked[0].packet_number >= start:
            marked = len(acked)  # all in the open range: the common case
        else:
            marked = self._marked_among(space_id, acked)
        if counts is None:
            if marked:
                self._fail()  # §13.4.2.1: marked packets acknowledged without counts
            return 0
        if not largest_raised:
            return 0  # possibly reordered: its counts may be older than the last ones
        ect0, ect1, ce = counts
        d0 = ect0 - n[_PEER_ECT0 + space_id]
        dce = ce - n[_PEER_CE + space_id]
        sent = n[_CLOSED + space_id] + (next_packet_number - start if start >= 0 else 0)
        if (
            d0 < 0
            or dce < 0
            or ect1  # we never send ECT(1)
            or ect0 > sent
            or d0 + dce < marked
        ):
            self._fail()
            return 0
        n[_PEER_ECT0 + space_id] = ect0
        n[_PEER_CE + space_id] = ce
        if marked and self.state != EcnValidation.CAPABLE:
            self.state = EcnValidation.CAPABLE
            self._settled = None  # marking resumes at the next batch
        return dce

    def on_one_rtt_ack(
        self, acked: Sequence[_Acked], counts: tuple[int, int, int], next_packet_number: int
    ) -> int:
        """``on_ack`` for the common case, checked the same way (§13.4.2.1): a 1-RTT ACK
        frame with ECN counts that raised the largest acknowledged; the fields of
        space 2 at fixed offsets (``_n[_OPEN + 2]`` is ``_n[2]``, and so on)."""
        n = self._n
        start = n[2]  # _OPEN + 2
        if start >= 0 and acked[0].packet_number >= start:
            marked = len(acked)  # all in the open range
            sent = n[5] + next_packet_number - start  # _CLOSED + 2, plus the open range
        else:
            marked = self._marked_among(2, acked)
            sent = n[5] + (next_packet_number - start if start >= 0 else 0)
        ect0, ect1, ce = counts
        d0 = ect0 - n[8]  # _PEER_ECT0 + 2
        dce = ce - n[11]  # _PEER_CE + 2
        # The ints' sign bits at once: negative when a count fell (d0 or dce below 0) or
        # when ECT(1), never sent, is reported (-ect1 below 0).
        if (d0 | dce | -ect1) < 0 or ect0 > sent or d0 + dce < marked:
            self._fail()
            return 0
        n[8] = ect0
        n[11] = ce
        if self.state != _CAPABLE and marked:
            self.state = _CAPABLE
            self._settled = None  # marking resumes at the next batch
        return dce

    def _fail(self) -> None:
        self.state = EcnValidation.FAILED
        self._settled = None  # marking stops at the next batch
        self.validating = False
