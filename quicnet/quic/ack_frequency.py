"""Acknowledgment frequency (draft-ietf-quic-ack-frequency-13): when this endpoint
acknowledges, and what it asks of its peer.

An endpoint that sends the ``min_ack_delay`` transport parameter (§3) lets its peer
send ACK_FREQUENCY (§4) and IMMEDIATE_ACK (§5) frames. Until one arrives it
acknowledges as RFC 9000 §13.2.1 says: every second ack-eliciting packet, within
max_ack_delay, and at once when a packet arrives out of order or marked CE.
ACK_FREQUENCY changes the threshold, the delay and the reordering tolerance.

A data sender configured to ask sends an ACK_FREQUENCY frame once the handshake is
confirmed, if the peer supports it. What it asks comes in two kinds:

- :class:`AckFrequencyRequest`: fixed values. A game server whose clients send an
  input every tick asks them to wait a little longer than a tick, and their
  acknowledgments ride on the inputs instead of costing a datagram of their own.
- :class:`AdaptiveAckFrequency`: values derived from the path, as §8.1 guides a
  bulk sender. The Ack-Eliciting Threshold follows the congestion window in
  maximum-sized packets and the Requested Max Ack Delay the smoothed RTT (not
  min_rtt), so that the peer still acknowledges ``acks_per_rtt`` times per round
  trip: enough for the congestion controller and loss detection (§8.1, §8.3),
  far fewer ACKs than every second packet once the window is large. The values are
  looked at again at most once per smoothed RTT, on ACK processing (one comparison
  per ACK frame, :func:`review`), and a new frame goes out only when the window or
  the RTT moved by a factor of two (§8.1: "not every change should trigger an
  update").

It asks again, with the next sequence number, once a connection migration is
confirmed (§8.4: the new path's congestion controller and RTT estimate start
afresh, and derived values with them); a lost request is sent again only while it
is the newest (§4). The PTO counts the largest max ack delay the peer may be using
(§7), and leaves it out while more ack-eliciting packets are in flight than the largest
Ack-Eliciting Threshold the peer may be using (§7: it acknowledges without waiting
then; never with a Reordering Threshold of 0). Bursts that fewer ACKs could release
are spread by the pacer (§8.2, RFC 9002 §7.7). A sender about to go idle asks for an
immediate ACK (§8.1.1: :class:`AdaptiveAckFrequency`'s ``immediate_ack_before_idle``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quicnet.quic import records
from quicnet.quic.buffer import encode_varint
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.recovery import ACK_DELAY_ALWAYS

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.recovery import PacketSpace, Recovery

__all__ = [
    "ACK_FREQUENCY",
    "IMMEDIATE_ACK",
    "MAX_REQUESTED_ACK_DELAY_US",
    "AckFrequencyRequest",
    "AckPolicy",
    "AdaptiveAckFrequency",
    "RequestValues",
    "ask",
    "on_path_confirmed",
    "peer_offered",
    "review",
]

ACK_FREQUENCY = 0xAF  # §4 (two bytes as a varint: 0x40 0xaf)
IMMEDIATE_ACK = 0x1F  # §5
#: §4: a Requested Max Ack Delay of 2^14 ms or more is invalid (RFC 9000 §18.2's bound).
MAX_REQUESTED_ACK_DELAY_US = (1 << 14) * 1000
#: What an ACK_FREQUENCY frame carries besides its sequence number: (Ack-Eliciting
#: Threshold, Requested Max Ack Delay in microseconds, Reordering Threshold).
RequestValues = tuple[int, int, int]
#: ``AckPolicy.review_at`` when nothing is to be reviewed (no adaptive request) ...
_NEVER = math.inf
#: ... and when a request was just made: the next ACK starts the RTT to wait.
_NEXT_ACK = -math.inf


@dataclass(frozen=True, slots=True)
class AckFrequencyRequest:
    """What a data sender asks its peer (draft-ietf-quic-ack-frequency §4), sent once the
    handshake is confirmed (and again after each confirmed migration, §8.4) and only to
    a peer that sent ``min_ack_delay``.

    ``max_ack_delay`` is in seconds; it is raised to the peer's ``min_ack_delay`` when
    below it. ``ack_eliciting_threshold`` ack-eliciting packets may arrive before the
    peer must acknowledge (1: every second one, RFC 9000's default); a
    ``reordering_threshold`` of 1 asks for an immediate ACK on any gap, 0 for none.

    ``immediate_ack_before_idle``: the packet that empties the send queues carries
    IMMEDIATE_ACK (§8.1.1, see :class:`AdaptiveAckFrequency`). Off by default: an
    application that fixes the delay usually counts on the peer's ACKs riding on its
    own next packets (a game client's next input), which an immediate ACK after every
    snapshot would undo.
    """

    max_ack_delay: float
    ack_eliciting_threshold: int = 1
    reordering_threshold: int = 1
    immediate_ack_before_idle: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.max_ack_delay * 1e6 < MAX_REQUESTED_ACK_DELAY_US:
            raise QuicUsageError(
                f"AckFrequencyRequest.max_ack_delay must be above 0 and below 16.384 s "
                f"(RFC 9000 §18.2), not {self.max_ack_delay}"
            )
        for name in ("ack_eliciting_threshold", "reordering_threshold"):
            value = getattr(self, name)
            if not 0 <= value < 1 << 62:
                raise QuicUsageError(f"AckFrequencyRequest.{name} must be a varint, not {value}")

    def values(self, peer_min_ack_delay_us: int, recovery: Recovery) -> RequestValues:
        """The frame's values: the configured ones, the delay raised to the peer's
        ``min_ack_delay`` (§4: a smaller one is invalid)."""
        delay_us = max(round(self.max_ack_delay * 1e6), peer_min_ack_delay_us)
        delay_us = min(delay_us, MAX_REQUESTED_ACK_DELAY_US - 1)
        return (self.ack_eliciting_threshold, delay_us, self.reordering_threshold)


@dataclass(frozen=True, slots=True)
class AdaptiveAckFrequency:
    """Ask the peer for ACK_FREQUENCY values derived from this end's path state
    (draft-ietf-quic-ack-frequency §8.1), for a data sender that wants fewer ACKs
    without starving its congestion controller or loss detection of them.

    ``acks_per_rtt`` is how many acknowledgments per round trip the peer should
    still send (2 to 65535; §8.1 asks for at least one):

    - Ack-Eliciting Threshold: the congestion window in maximum-sized packets over
      ``acks_per_rtt``, less one (the peer acknowledges after *more* than that
      many), never below 1 (RFC 9000's every second packet);
    - Requested Max Ack Delay: the smoothed RTT over ``acks_per_rtt`` (§8.1: from
      smoothed_rtt, not min_rtt), never below ``max_ack_delay_floor`` nor the peer's
      ``min_ack_delay``, always below 2^14 ms. Without an RTT sample on the path (a
      new path, before its first) it is not raised above what the peer may already
      be using;
    - Reordering Threshold: ``reordering_threshold`` (1: an ACK at once on any gap,
      RFC 9000's rule and the fastest loss detection; §6.3 suggests RFC 9002's packet
      threshold, 3, for fewer ACKs under reordering), but 1 whenever the delay
      exceeds the smoothed RTT (§8.1: other values then delay loss detection by more
      than an RTT).

    While data flows the delay alone brings about ``acks_per_rtt`` ACKs per RTT; the
    threshold keeps them that frequent within a full window. The values are reviewed
    at most once per smoothed RTT, on ACK processing, and a new frame goes only when
    they changed materially (:meth:`update`): between updates the threshold in force
    still gives at least ``acks_per_rtt / 2`` ACKs per window (at least one, §8.1),
    the window's saw-tooth moves nothing, and slow start asks again every RTT or two.

    ``immediate_ack_before_idle`` (§8.1.1): a 1-RTT packet that carries data and leaves
    nothing queued to send (the sender becomes application-limited) also carries an
    IMMEDIATE_ACK, so that its acknowledgment, and that of the packets the peer still
    holds below the threshold, comes one RTT after it left instead of after the delay
    too. At most one such frame is in flight: the next goes only once its packet was
    acknowledged or lost, so at most about one extra ACK per RTT.
    """

    acks_per_rtt: int = 4
    max_ack_delay_floor: float = 0.001
    reordering_threshold: int = 1
    immediate_ack_before_idle: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.acks_per_rtt < 1 << 16:
            raise QuicUsageError(
                f"AdaptiveAckFrequency.acks_per_rtt must be 2 to 65535, not {self.acks_per_rtt}"
            )
        if not 0 <= self.max_ack_delay_floor * 1e6 < MAX_REQUESTED_ACK_DELAY_US:
            raise QuicUsageError(
                f"AdaptiveAckFrequency.max_ack_delay_floor must be 0 or more and below "
                f"16.384 s (RFC 9000 §18.2), not {self.max_ack_delay_floor}"
            )
        if not 0 <= self.reordering_threshold < 1 << 62:
            raise QuicUsageError(
                f"AdaptiveAckFrequency.reordering_threshold must be a varint, "
                f"not {self.reordering_threshold}"
            )

    def values(self, peer_min_ack_delay_us: int, recovery: Recovery) -> RequestValues:
        """The frame's values for the path's congestion window and smoothed RTT now."""
        per_rtt = self.acks_per_rtt
        packets = recovery.cc.congestion_window // recovery.pacer.max_datagram_size
        threshold = max(packets // per_rtt - 1, 1)  # §8.1: well inside the window
        rtt = recovery.rtt
        srtt_us = round(rtt.smoothed_rtt * 1e6)
        delay_us = srtt_us // per_rtt  # §8.1: no more than the RTT
        if not rtt.first_sample:  # kInitialRtt is no estimate: ask for no longer delay
            delay_us = min(delay_us, round(recovery.max_ack_delay * 1e6))
        delay_us = max(delay_us, round(self.max_ack_delay_floor * 1e6), peer_min_ack_delay_us)
        delay_us = min(delay_us, MAX_REQUESTED_ACK_DELAY_US - 1)
        reordering = self.reordering_threshold if delay_us <= srtt_us else 1  # §8.1
        return (threshold, delay_us, reordering)

    def update(
        self, current: RequestValues, peer_min_ack_delay_us: int, recovery: Recovery
    ) -> RequestValues | None:
        """The values to ask for instead of ``current``, or None while those still do
        (§8.1: "not every change should trigger an update"). A change is material when
        the window moved so far that the threshold in force gives fewer than half or
        more than twice ``acks_per_rtt`` ACKs per window (a NewReno or CUBIC reduction
        alone does not: no request flaps back and forth with the window's saw-tooth),
        when the delay in force is half or twice the derived one, or when the
        reordering threshold changes."""
        values = self.values(peer_min_ack_delay_us, recovery)
        if values == current:
            return None
        threshold, delay_us, reordering = current
        per_rtt = self.acks_per_rtt
        # ACKs per window with the threshold in force: packets / (threshold + 1).
        packets = recovery.cc.congestion_window // recovery.pacer.max_datagram_size
        if (
            values[0] != threshold
            and (2 * packets < per_rtt * (threshold + 1) or packets > 2 * per_rtt * (threshold + 1))
        ) or (values[1] != delay_us and (2 * values[1] <= delay_us or values[1] >= 2 * delay_us)):
            return values
        return values if values[2] != reordering else None


class AckPolicy:
    """When this endpoint sends an ACK for 1-RTT packets, and the ACK_FREQUENCY frames
    it sends its peer (see the module docstring).

    The receive path reads ``ack_eliciting_threshold`` and ``max_ack_delay`` for each
    ack-eliciting packet and asks :meth:`ack_now` only when the packet arrived out of
    order, marked CE, or with a reordering threshold above 1 in force.
    """

    __slots__ = (
        "ack_eliciting_threshold",
        "acked_sequence",
        "in_flight",
        "largest_sequence",
        "last_ce",
        "max_ack_delay",
        "min_ack_delay_us",
        "peer_delay",
        "peer_threshold",
        "reordering_threshold",
        "request",
        "request_migrations",
        "request_values",
        "review_at",
    )

    def __init__(self, max_ack_delay: float, min_ack_delay_us: int | None) -> None:
        #: RFC 9000 §13.2.1's defaults until the peer's ACK_FREQUENCY changes them.
        self.max_ack_delay = max_ack_delay
        self.ack_eliciting_threshold = 1
        self.reordering_threshold = 1
        #: The min_ack_delay we advertise (µs); None: we take no ACK_FREQUENCY frames.
        self.min_ack_delay_us = min_ack_delay_us
        self.largest_sequence = -1  # of the ACK_FREQUENCY frames applied (§4)
        self.last_ce = -1  # the packet number of the last CE-marked packet (§6.4)
        #: Our newest ACK_FREQUENCY frame: (requested max ack delay in seconds, the
        #: frame's bytes, its sequence number, its PTO threshold: see ``peer_threshold``),
        #: or None before the first.
        self.request: tuple[float, bytes, int, int] | None = None
        #: Requests sent, not acknowledged, and still possibly applied by the peer (none
        #: older than the newest it acknowledged): sequence -> (delay, PTO threshold).
        self.in_flight: dict[int, tuple[float, int]] = {}
        #: The largest sequence number the peer acknowledged, and the max ack delay it
        #: applies since (before any: its max_ack_delay transport parameter) ...
        self.acked_sequence = -1
        self.peer_delay = max_ack_delay
        #: ... and the Ack-Eliciting Threshold above which it acknowledges without waiting
        #: for that delay (§7): ACK_DELAY_ALWAYS before any, or when its Reordering
        #: Threshold is 0 (a loss may then leave it waiting, and the PTO must allow for it).
        self.peer_threshold = ACK_DELAY_ALWAYS
        #: The connection's path migrations when the newest request was made (§8.4).
        self.request_migrations = 0
        #: The newest request's values (threshold, delay in µs, reordering), or None.
        self.request_values: RequestValues | None = None
        #: When ACK processing next calls :func:`review` (an adaptive request only):
        #: at most once per smoothed RTT (§8.1). A float compared per ACK frame.
        self.review_at = _NEVER

    # Receiving: how we acknowledge -----------------------------------------------------
    def ack_now(self, space: PacketSpace, packet_number: int, previous: int, ce: bool) -> bool:
        """An ack-eliciting packet ``packet_number`` arrived after the largest ``previous``
        (its ECN mark CE when ``ce``): acknowledge at once (§6.2, §6.4; RFC 9000 §13.2.1)?"""
        threshold = self.reordering_threshold
        now_due = False
        if ce:
            # §6.4: above a threshold of 1 only the step from not-CE to CE is urgent.
            now_due = self.ack_eliciting_threshold <= 1 or self.last_ce != previous
            self.last_ce = packet_number
        if threshold == 0 or now_due:
            return now_due
        if threshold == 1:  # RFC 9000 §13.2.1: late, or beyond a gap
            return packet_number != previous + 1
        # §6.2: acknowledge when the smallest packet still missing above the Largest
        # Reported Missing (what our last ACK lets the sender declare lost) lies
        # ``threshold`` or more below the largest received.
        missing = max(space.largest_ack_sent - threshold + 1, space.received_floor)
        for start, stop in space.received:  # ascending [start, stop) ranges
            if missing < start:
                break  # ``missing`` was never received
            if missing < stop:
                missing = stop
        return space.largest_received - missing >= threshold

    def on_ack_frequency(
        self,
        sequence_number: int,
        ack_eliciting_threshold: int,
        requested_max_ack_delay_us: int,
        reordering_threshold: int,
    ) -> None:
        """Apply the peer's ACK_FREQUENCY frame (§4); PROTOCOL_VIOLATION if we never
        offered the extension or the requested delay is invalid."""
        if self.min_ack_delay_us is None:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "ACK_FREQUENCY without our min_ack_delay",
                ACK_FREQUENCY,
            )
        if not self.min_ack_delay_us <= requested_max_ack_delay_us < MAX_REQUESTED_ACK_DELAY_US:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "ACK_FREQUENCY requested max ack delay below min_ack_delay or 2^14 ms or more",
                ACK_FREQUENCY,
            )
        if sequence_number <= self.largest_sequence:
            return  # §4: an obsolete or repeated frame is ignored
        self.largest_sequence = sequence_number
        self.ack_eliciting_threshold = ack_eliciting_threshold
        self.max_ack_delay = requested_max_ack_delay_us / 1e6
        self.reordering_threshold = reordering_threshold

    def on_immediate_ack(self) -> None:
        """IMMEDIATE_ACK (§5) from a peer we never offered the extension to is a
        PROTOCOL_VIOLATION; otherwise the caller queues the ACK."""
        if self.min_ack_delay_us is None:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "IMMEDIATE_ACK without our min_ack_delay",
                IMMEDIATE_ACK,
            )

    # Sending: what we ask of the peer ---------------------------------------------------
    def make_request(
        self,
        values: RequestValues,
        recovery: Recovery,
        migrations: int = 0,
    ) -> None:
        """Encode the next ACK_FREQUENCY frame with ``values`` (sequence numbers 0, 1,
        ..., §4); until the peer acknowledges it the PTO counts the larger delay and
        threshold (§7)."""
        if self.request is None:
            self.peer_delay = recovery.max_ack_delay  # the peer's transport parameter
        sequence = 0 if self.request is None else self.request[2] + 1
        threshold, delay_us, reordering = values
        frame = (
            b"\x40\xaf"  # type 0xaf as a two-byte varint
            + encode_varint(sequence)
            + encode_varint(threshold)
            + encode_varint(delay_us)
            + encode_varint(reordering)
        )
        pto_threshold = threshold if reordering else ACK_DELAY_ALWAYS  # §7
        self.request = (delay_us / 1e6, frame, sequence, pto_threshold)
        self.request_values = values
        self.request_migrations = migrations
        self._update_pto(recovery)

    def on_request_sent(self) -> tuple[int, int]:
        """The newest request went out: its frame record for the packet."""
        request = self.request
        assert request is not None
        self.in_flight[request[2]] = (request[0], request[3])
        return (records.ACK_FREQUENCY, request[2])

    def on_request_delivered(self, sequence: int, acked: bool, recovery: Recovery) -> bool:
        """The packet carrying request ``sequence`` was acknowledged or lost. Returns True
        when it must be sent again: lost, and still the newest (§4; an older one is
        superseded, and the peer would ignore it after the newer one anyway)."""
        request = self.request
        newest = request is not None and request[2] == sequence
        in_flight = self.in_flight
        if acked:
            values = in_flight.pop(sequence, None)
            if values is not None and sequence > self.acked_sequence:
                self.acked_sequence = sequence  # §4: the peer applied it, or a newer one
                self.peer_delay, self.peer_threshold = values
                for older in [s for s in in_flight if s < sequence]:
                    del in_flight[older]  # the peer ignores it now, even if it arrives
        # A lost request stays counted: the packet may have arrived all the same, and
        # the peer applies it until it has a newer one.
        self._update_pto(recovery)
        return not acked and newest

    def _update_pto(self, recovery: Recovery) -> None:
        """§7: the PTO counts the largest max ack delay the peer may be using: the one it
        acknowledged, and every one in flight or about to be sent; it leaves that delay
        out only above the largest Ack-Eliciting Threshold among them."""
        delay = self.peer_delay
        threshold = self.peer_threshold
        for value, pto_threshold in self.in_flight.values():
            if value > delay:
                delay = value
            if pto_threshold > threshold:
                threshold = pto_threshold
        request = self.request
        if request is not None and request[2] > self.acked_sequence:
            delay = max(delay, request[0])
            threshold = max(threshold, request[3])
        recovery.max_ack_delay = delay
        recovery.peer_ack_threshold = threshold


def peer_offered(c: QuicConnection) -> bool:
    """The peer sent ``min_ack_delay`` (§3): it takes ACK_FREQUENCY and IMMEDIATE_ACK."""
    params = c.remote_params
    return params is not None and params.min_ack_delay is not None


def ask(c: QuicConnection) -> None:
    """Queue an ACK_FREQUENCY frame with the configured request's values, if there is one
    and the peer offered the extension (§3): at handshake confirmation, and after
    migrations. An adaptive request derives them from the current path's state."""
    request = c.configuration.ack_frequency
    params = c.remote_params
    if request is None or params is None or params.min_ack_delay is None:
        return
    acks = c.acks
    recovery = c.recovery
    if acks.request is None and request.immediate_ack_before_idle:
        c.sender.idle_ack = True  # §8.1.1, from the first request on
    acks.make_request(request.values(params.min_ack_delay, recovery), recovery, c.paths.migrations)
    if isinstance(request, AdaptiveAckFrequency):
        acks.review_at = _NEXT_ACK  # the RTT before the next review starts at the next ACK
    c.pending.queue_ack_frequency()


def review(c: QuicConnection, now: float) -> None:
    """ACK processing found ``now >= c.acks.review_at``: an adaptive request's values
    are due for a look (§8.1: not more than once per RTT); a new frame, with the next
    sequence number, goes if :meth:`AdaptiveAckFrequency.update` finds them stale."""
    acks = c.acks
    recovery = c.recovery
    rtt = recovery.rtt
    if not rtt.first_sample:
        return  # a new path without an RTT estimate yet: look again at the next ACK
    starting = acks.review_at == _NEXT_ACK
    acks.review_at = now + rtt.smoothed_rtt
    request = c.configuration.ack_frequency
    params = c.remote_params
    current = acks.request_values
    if (
        starting
        or not isinstance(request, AdaptiveAckFrequency)
        or params is None
        or params.min_ack_delay is None
        or current is None
    ):
        return
    values = request.update(current, params.min_ack_delay, recovery)
    if values is not None:
        # A migration not yet confirmed still gets its own request (§8.4): keep the count.
        acks.make_request(values, recovery, acks.request_migrations)
        c.pending.queue_ack_frequency()


def on_path_confirmed(c: QuicConnection) -> None:
    """A path was validated or became current. §8.4: once a migration is confirmed (the
    current path changed since the last request and is validated), a sender that asked
    before asks again with the next sequence number: the new path's congestion
    controller and RTT estimate start afresh, and the pattern of acknowledgments with
    them. A fixed request's values are the same (still raised to ``min_ack_delay``); an
    adaptive one's come from the new path's fresh state."""
    acks = c.acks
    path = c.paths.current
    if acks.request is None or path is None or acks.request_migrations == c.paths.migrations:
        return
    if path.validated and path.validation_deadline is None:
        ask(c)
