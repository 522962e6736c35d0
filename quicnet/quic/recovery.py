"""Loss detection (RFC 9002 §6, Appendix A); RTT estimation (§5) is in :mod:`~quicnet.quic.rtt`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from quicnet.quic.congestion import PACING_GAIN, CongestionController, NewReno, Pacer
from quicnet.quic.pmtu import BASE_PLPMTU
from quicnet.quic.rangeset import RangeSet
from quicnet.quic.reordering import SpuriousLosses
from quicnet.quic.rtt import K_GRANULARITY, RttEstimator
from quicnet.tls import Epoch

__all__ = [
    "ACK_DELAY_ALWAYS",
    "EPOCH_SPACE",
    "K_GRANULARITY",
    "PacketSpace",
    "PathRecoveryState",
    "Recovery",
    "RttEstimator",
    "SentPacket",
]

K_PACKET_THRESHOLD = 3
K_TIME_THRESHOLD = 9 / 8
K_PERSISTENT_CONGESTION_THRESHOLD = 3
#: Caps on the adapted loss thresholds (§6.1.1 and §6.1.2 allow raising them).
K_MAX_PACKET_THRESHOLD = 1000
K_MAX_TIME_THRESHOLD = 2.0
#: The packet number space of each TLS epoch (0-RTT shares the application space).
EPOCH_SPACE = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ZERO_RTT: 2, Epoch.ONE_RTT: 2}
#: Received packet-number ranges kept for ACK frames before the oldest half is forgotten.
MAX_RECEIVED_RANGES = 64
#: ``Recovery.peer_ack_threshold`` while the peer's max_ack_delay always counts in the PTO.
ACK_DELAY_ALWAYS = 1 << 62

#: What a packet carried, as the sender recorded it: one small tuple per frame that
#: needs action on acknowledgement or loss (see quicnet.quic.sender).
FrameRecord = tuple[Any, ...]
#: Told what an acknowledged (True) or lost (False) packet carried.
DeliveryCallback = Callable[[Sequence[FrameRecord], bool], None]
#: Told of packets declared lost, with their space and the time, before recovery acts
#: on them (qlog's recovery:packet_lost).
LossObserver = Callable[[int, Sequence["SentPacket"], float], None]


class LargeLossObserver(Protocol):
    """Told that packets larger than BASE_PLPMTU were lost while no larger packet sent after
    them was acknowledged, with the mark of the newest such acknowledgement (RFC 8899 §4.3).
    An object rather than a callback: a stored bound method costs every connection."""

    def on_large_lost(self, mark: float) -> None:
        """Packets above BASE_PLPMTU sent after ``mark`` were lost (RFC 8899 §4.3).

        ``mark`` is when the newest acknowledged larger-than-base packet was sent
        (-1.0 before any).
        """


def _ignore(frames: Sequence[FrameRecord], acked: bool) -> None:
    pass


class SentPacket:
    """What recovery keeps of a packet sent: when, how big, and what it carried."""

    __slots__ = ("ack_eliciting", "frames", "in_flight", "packet_number", "size", "time_sent")

    def __init__(
        self,
        packet_number: int,
        time_sent: float,
        ack_eliciting: bool,
        in_flight: bool,
        size: int,
        frames: Sequence[FrameRecord] = (),
    ) -> None:
        self.packet_number = packet_number
        self.time_sent = time_sent
        self.ack_eliciting = ack_eliciting
        self.in_flight = in_flight
        self.size = size
        self.frames = frames


@dataclass(slots=True)
class PathRecoveryState:
    """Congestion control and RTT of a path the connection left (RFC 9000 §9.4)."""

    rtt: RttEstimator
    cc: CongestionController
    pacer: Pacer
    first_rtt_sample_time: float | None


class PacketSpace:
    """One packet number space: what we sent, what we received, what to acknowledge."""

    __slots__ = (
        "ack_deadline",
        "ack_eliciting_in_flight",
        "ack_queued",
        "discarded",
        "largest_ack_sent",
        "largest_acked",
        "largest_received",
        "largest_received_time",
        "loss_time",
        "next_packet_number",
        "received",
        "received_floor",
        "sent",
        "time_of_last_ack_eliciting",
        "unacked_ack_eliciting",
    )

    def __init__(self) -> None:
        self.next_packet_number = 0
        self.largest_acked: int | None = None
        self.sent: dict[int, SentPacket] = {}
        self.loss_time: float | None = None
        self.time_of_last_ack_eliciting: float | None = None
        self.ack_eliciting_in_flight = 0
        self.received = RangeSet()
        #: Packet numbers below this were forgotten to bound ``received``: they count as
        #: duplicates forever, so a replayed old packet is never processed again (§12.3).
        self.received_floor = 0
        self.largest_received = -1
        self.largest_received_time = 0.0
        self.ack_queued = False  # an ACK frame should be sent
        #: When a delayed ACK becomes due (§13.2.1: within max_ack_delay), or None.
        self.ack_deadline: float | None = None
        self.unacked_ack_eliciting = 0  # ack-eliciting packets received since our last ACK
        self.largest_ack_sent = -1  # the Largest Acknowledged of our last ACK frame
        self.discarded = False

    def is_duplicate(self, packet_number: int) -> bool:
        """RFC 9000 §12.3: seen before, or too old to tell (below the floor)."""
        if packet_number > self.largest_received:
            return False  # the common case: the newest packet yet
        return packet_number < self.received_floor or packet_number in self.received

    def on_packet_received(self, packet_number: int, now: float) -> None:
        """Record an authenticated packet number; keep at most 64 ranges (§13.2.3)."""
        received = self.received
        received.add(packet_number)
        largest = self.largest_received
        if packet_number > largest:
            self.largest_received = packet_number
            self.largest_received_time = now
            if packet_number == largest + 1:
                return  # the next in order extends the top range (largest is in it)
        if len(received) > MAX_RECEIVED_RANGES:
            floor = received.descending()[MAX_RECEIVED_RANGES // 2 - 1][1]
            received.trim_below(floor)
            self.received_floor = floor


_DISCARDED_SPACE = PacketSpace()
_DISCARDED_SPACE.discarded = True


class Recovery:
    """Loss detection state for all three packet number spaces of a connection."""

    __slots__ = (
        "_spurious",
        "cc",
        "first_rtt_sample_time",
        "handshake_confirmed",
        "large_acked_sent",
        "large_loss_observer",
        "loss_observer",
        "max_ack_delay",
        "mtu_probe",
        "on_delivered",
        "pacer",
        "packet_threshold",
        "packets_lost",
        "packets_sent",
        "peer_ack_threshold",
        "peer_completed_address_validation",
        "probes_pending",
        "pto_count",
        "rtt",
        "spaces",
        "time_threshold",
    )

    def __init__(
        self,
        *,
        max_ack_delay: float = 0.025,
        max_datagram_size: int = 1200,
        on_delivered: DeliveryCallback | None = None,
        cc: CongestionController | None = None,
    ) -> None:
        #: Called with each acknowledged or lost packet's frame records.
        self.on_delivered: DeliveryCallback = on_delivered or _ignore
        self.rtt = RttEstimator()
        self.spaces = (PacketSpace(), PacketSpace(), PacketSpace())  # Initial, Handshake, 1-RTT
        #: The congestion controller (by default NewReno).
        self.cc: CongestionController = cc if cc is not None else NewReno(max_datagram_size)
        self.pacer = Pacer(max_datagram_size)
        self.pto_count = 0
        #: In-flight packets sent and declared lost, over the connection's life.
        self.packets_sent = 0
        self.packets_lost = 0
        #: Probe packets still to send per space after a PTO (§6.2.4: one or two).
        self.probes_pending: dict[int, int] = {}
        self.max_ack_delay = max_ack_delay  # the peer's, seconds
        #: draft-ietf-quic-ack-frequency §7: with more ack-eliciting packets than this in
        #: flight the peer acknowledges without waiting for its max_ack_delay, which the
        #: 1-RTT PTO then leaves out (set by quicnet.quic.ack_frequency).
        self.peer_ack_threshold = ACK_DELAY_ALWAYS
        self.handshake_confirmed = False
        self.peer_completed_address_validation = False  # client: server validated us
        self.first_rtt_sample_time: float | None = None
        #: Told of every loss before it is acted on (None: nobody is watching).
        self.loss_observer: LossObserver | None = None
        #: The packet number of the PMTU probe in flight (-1: none): its loss is no
        #: congestion signal (RFC 8899 §3 item 7, RFC 9000 §14.4).
        self.mtu_probe = -1
        #: When the newest acknowledged packet larger than BASE_PLPMTU was sent, and who
        #: hears of large packets lost after it (PMTU black holes, RFC 8899 §4.3).
        self.large_acked_sent = -1.0
        self.large_loss_observer: LargeLossObserver | None = None
        #: §6.1: the RFC's thresholds to start with; raised when a loss proves spurious.
        self.packet_threshold = K_PACKET_THRESHOLD
        self.time_threshold = K_TIME_THRESHOLD
        #: Application-space losses watched for a late acknowledgement (reordering).
        self._spurious: SpuriousLosses | None = None

    @property
    def spurious(self) -> SpuriousLosses:
        """Application-space losses watched for a late acknowledgement (reordering); made
        at the first loss (most connections never lose a packet)."""
        spurious = self._spurious
        if spurious is None:
            spurious = self._spurious = SpuriousLosses()
        return spurious

    @property
    def bytes_in_flight(self) -> int:
        """Bytes in flight, as the congestion controller counts them."""
        return self.cc.bytes_in_flight

    def arm_probes(self, space_id: int) -> None:
        """A PTO fired for ``space_id``: send one or two probe packets (§6.2.4)."""
        self.pto_count += 1
        self.probes_pending[space_id] = 2

    def take_probe(self, space_id: int) -> None:
        """A probe packet for ``space_id`` was built: one fewer to send."""
        probes = self.probes_pending
        left = probes.get(space_id, 0) - 1
        if left > 0:
            probes[space_id] = left
        elif len(probes) > 1:
            probes.pop(space_id, None)
        else:
            self.probes_pending = {}  # an emptied dict keeps its table: drop it

    def set_max_datagram_size(self, size: int) -> None:
        """The path's largest datagram changed (PMTU discovery): tell the congestion
        controller and the pacer (RFC 9002 §7.2)."""
        self.cc.set_max_datagram_size(size)
        self.pacer.set_max_datagram_size(size)

    # Paths (RFC 9000 §9.4) -------------------------------------------------------------
    def switch_path(
        self, fresh_cc: CongestionController, restore: PathRecoveryState | None = None
    ) -> PathRecoveryState:
        """Start a new path with fresh (or restored) congestion and RTT state.

        Returns the state of the path being left, to restore if the connection comes
        back to it (§9.3: after a spurious migration). Packets in flight on the old
        path stop counting toward any controller; they are still acknowledged or
        declared lost, and their frames retransmitted, as usual.
        """
        saved = PathRecoveryState(self.rtt, self.cc, self.pacer, self.first_rtt_sample_time)
        for space in self.spaces:
            for packet in space.sent.values():
                if packet.in_flight:
                    packet.in_flight = False
                    if packet.ack_eliciting:
                        space.ack_eliciting_in_flight -= 1
        if restore is not None:
            self.rtt, self.cc, self.pacer = restore.rtt, restore.cc, restore.pacer
            self.first_rtt_sample_time = restore.first_rtt_sample_time
        else:
            self.rtt = RttEstimator()
            self.cc = fresh_cc
            self.pacer = Pacer(self.pacer.max_datagram_size)
            self.first_rtt_sample_time = None
        self.cc.bytes_in_flight = 0
        self.pto_count = 0
        # Reordering belongs to a path: the new one starts from RFC 9002's thresholds.
        self.packet_threshold = K_PACKET_THRESHOLD
        self.time_threshold = K_TIME_THRESHOLD
        self._spurious = None
        return saved

    # Sending --------------------------------------------------------------------------
    def on_packet_sent(self, space_id: int, packet: SentPacket) -> None:
        """Record a sent packet (Appendix A.5); an in-flight one counts toward the congestion
        controller and the pacer and, if ack-eliciting, becomes the PTO's anchor."""
        space = self.spaces[space_id]
        space.sent[packet.packet_number] = packet
        if packet.in_flight:
            self.packets_sent += 1
            if packet.ack_eliciting:
                space.time_of_last_ack_eliciting = packet.time_sent
                space.ack_eliciting_in_flight += 1
            self.cc.on_packet_sent(packet.size, packet.time_sent)
            self.pacer.on_sent(packet.time_sent, packet.size)

    def on_one_rtt_sent(
        self, pn: int, now: float, ack_eliciting: bool, size: int, frames: list[FrameRecord]
    ) -> None:
        """:meth:`on_packet_sent` for the sender's in-flight 1-RTT packet (once per
        packet): the record made here from the fields, not read back from it."""
        space = self.spaces[2]
        space.sent[pn] = SentPacket(pn, now, ack_eliciting, True, size, frames)
        self.packets_sent += 1
        if ack_eliciting:
            space.time_of_last_ack_eliciting = now
            space.ack_eliciting_in_flight += 1
        self.cc.on_packet_sent(size, now)
        pacer = self.pacer  # (Pacer.on_sent, in place: once per packet sent)
        tokens = pacer.tokens
        last = pacer.last_update
        if now > last:
            rate = pacer.rate
            if rate is not None:
                tokens += (now - last) * rate
                if tokens > pacer.burst:
                    tokens = pacer.burst
            pacer.last_update = now
        tokens -= size
        pacer.tokens = tokens if tokens > 0.0 else 0.0

    # Receiving ACKs (§A.7) -----------------------------------------------------------------
    def on_ack_received(
        self, space_id: int, ranges: Sequence[tuple[int, int]], ack_delay: float, now: float
    ) -> tuple[list[SentPacket], list[SentPacket]]:
        """Process an ACK frame; returns ``(newly_acked, newly_lost)``."""
        space = self.spaces[space_id]
        largest = ranges[0][0]
        if space.largest_acked is None or largest > space.largest_acked:
            space.largest_acked = largest
        sent = space.sent
        # ``sent`` is in ascending packet-number order: walk it up to the largest
        # acknowledged only (one merge pass with the ranges when there are several).
        numbers: list[int] = []
        if len(ranges) == 1:
            smallest = ranges[0][1]
            for pn in sent:
                if pn > largest:
                    break
                if pn >= smallest:
                    numbers.append(pn)
        else:
            ascending = ranges[::-1]
            i = 0
            last = len(ascending)
            for pn in sent:
                while i < last and pn > ascending[i][0]:
                    i += 1
                if i == last:
                    break
                if pn >= ascending[i][1]:
                    numbers.append(pn)
        spurious = self._spurious
        if space_id == 2 and spurious is not None and spurious.suspects:  # a loss in doubt
            self._check_spurious(space.largest_acked, ranges, now)
        if not numbers:
            return [], []
        acked = list(map(sent.pop, numbers))
        newest = acked[-1]
        if newest.size > BASE_PLPMTU:  # large packets pass (PMTU black holes, RFC 8899 §4.3)
            self.large_acked_sent = newest.time_sent
        # One pass: in-flight accounting, and whether anything ack-eliciting is new. Only
        # in-flight packets count: those sent on a path the connection left, and path
        # probes, give the current path no RTT sample (RFC 9000 §9.4).
        eliciting = False
        in_flight: list[SentPacket] = []
        for p in acked:
            if p.in_flight:
                in_flight.append(p)
                if p.ack_eliciting:
                    eliciting = True
                    space.ack_eliciting_in_flight -= 1
        rtt = self.rtt
        if eliciting and newest.packet_number == largest:
            latest_rtt = now - newest.time_sent
            if space_id == 2 and rtt.first_sample and self.handshake_confirmed:
                # RttEstimator.update, in place for the common sample (once per ACK frame):
                # min_rtt, then the sample less the capped ACK delay (§5.2-5.3); a first
                # sample was taken, so first_rtt_sample_time is set.
                rtt.latest_rtt = latest_rtt
                if latest_rtt < rtt.min_rtt:
                    rtt.min_rtt = latest_rtt
                if ack_delay > self.max_ack_delay:
                    ack_delay = self.max_ack_delay
                adjusted = (
                    latest_rtt - ack_delay if latest_rtt >= rtt.min_rtt + ack_delay else latest_rtt
                )
                # (abs() as conditionals: a builtin call costs more than the test.)
                step = adjusted - rtt.latest_adjusted
                rtt.jitter += ((step if step >= 0.0 else -step) - rtt.jitter) / 16
                rtt.latest_adjusted = adjusted
                smoothed = rtt.smoothed_rtt
                step = smoothed - adjusted
                rtt.rttvar = 0.75 * rtt.rttvar + 0.25 * (step if step >= 0.0 else -step)
                rtt.smoothed_rtt = 0.875 * smoothed + 0.125 * adjusted
            else:
                rtt.update(
                    latest_rtt,
                    ack_delay if space_id == 2 else 0.0,
                    self.handshake_confirmed,
                    self.max_ack_delay,
                )
                if self.first_rtt_sample_time is None:
                    self.first_rtt_sample_time = now
        if sent:
            lost = self._detect_lost(space_id, now)
        else:  # everything sent is acknowledged: nothing can be lost (the common case)
            lost = []
            space.loss_time = None
        cc = self.cc
        if in_flight:
            cc.on_packets_acked(in_flight, now)
        if lost:
            self._on_lost(space_id, lost, now)
        # §6.2.1: the PTO backoff resets on an ACK, except a client's before the
        # server validated its address.
        if space_id or self.peer_completed_address_validation:
            self.pto_count = 0
        rate = cc.pacing_rate
        if rate is None:  # RFC 9002 §7.7 (Pacer.update_rate, in place: once per ACK frame)
            srtt = rtt.smoothed_rtt
            if srtt > 0:
                self.pacer.rate = PACING_GAIN * cc.congestion_window / srtt
        else:  # a model-based controller paces at its own rate (BBR)
            self.pacer.rate = rate
        deliver = self.on_delivered
        for p in acked:
            if p.frames:
                deliver(p.frames, True)
        return acked, lost

    def _loss_delay(self) -> float:
        rtt = self.rtt
        return max(self.time_threshold * max(rtt.latest_rtt, rtt.smoothed_rtt), K_GRANULARITY)

    def _detect_lost(self, space_id: int, now: float) -> list[SentPacket]:
        """§6.1: packet and time thresholds."""
        space = self.spaces[space_id]
        space.loss_time = None
        largest = space.largest_acked
        if largest is None:
            return []
        loss_delay = self._loss_delay()
        threshold = self.packet_threshold
        sent = space.sent
        numbers: list[int] = []
        loss_time: float | None = None
        for pn, p in sent.items():
            if pn > largest:
                break  # ascending order: nothing above the largest acknowledged is lost
            # The same expression as the timer's deadline, so a timer never re-fires idle.
            if p.time_sent + loss_delay <= now or largest >= pn + threshold:
                numbers.append(pn)
            else:
                deadline = p.time_sent + loss_delay
                if loss_time is None or deadline < loss_time:
                    loss_time = deadline
        space.loss_time = loss_time
        lost = [sent.pop(pn) for pn in numbers]
        for p in lost:
            if p.ack_eliciting and p.in_flight:
                space.ack_eliciting_in_flight -= 1
        return lost

    def _on_lost(self, space_id: int, lost: list[SentPacket], now: float) -> None:
        observer = self.loss_observer
        if observer is not None:
            observer(space_id, lost, now)
        in_flight = [p for p in lost if p.in_flight]
        if self.mtu_probe >= 0 and space_id == 2:
            # RFC 8899 §3 item 7, RFC 9000 §14.4: a lost PMTU probe leaves bytes in flight
            # without a congestion response.
            probes = [p for p in in_flight if p.packet_number == self.mtu_probe]
            if probes:
                self.mtu_probe = -1
                self.cc.discard(probes)
                in_flight = [p for p in in_flight if p is not probes[0]]
        self.packets_lost += len(in_flight)
        cc = self.cc
        events = cc.congestion_events
        cc.on_packets_lost(in_flight, now)
        if self.large_loss_observer is not None:
            mark = self.large_acked_sent
            if any(p.size > BASE_PLPMTU and p.time_sent > mark for p in in_flight):
                self.large_loss_observer.on_large_lost(mark)
        self.spurious.on_lost(
            space_id,
            in_flight,
            self.spaces[space_id].largest_acked or 0,
            self.packet_threshold,
            cc.congestion_events != events,
            cc.congestion_events,
        )
        if self._persistent_congestion(lost):
            cc.on_persistent_congestion()
            self.spurious.undo_possible = False
        deliver = self.on_delivered
        for p in lost:
            if p.frames:
                deliver(p.frames, False)

    def _check_spurious(
        self, largest_acked: int | None, ranges: Sequence[tuple[int, int]], now: float
    ) -> None:
        """A packet declared lost was acknowledged after all: it was reordered. Raise the
        threshold that condemned it (§6.1.1, §6.1.2 allow it) and, once every loss of the
        last congestion event proved spurious, undo that event's reduction."""
        rtt = self.rtt
        reference = max(rtt.latest_rtt, rtt.smoothed_rtt)
        spurious = self.spurious
        for pn, time_sent, by_time in spurious.take_acknowledged(ranges, now, 4 * reference):
            if by_time:  # needed: the time it took to be acknowledged, in RTTs
                needed = (now - time_sent) / reference if reference > 0 else K_MAX_TIME_THRESHOLD
                self.time_threshold = min(max(self.time_threshold, needed), K_MAX_TIME_THRESHOLD)
            elif largest_acked is not None:  # the packets that overtook it, plus one
                self.packet_threshold = min(
                    max(self.packet_threshold, largest_acked - pn + 1), K_MAX_PACKET_THRESHOLD
                )
        if spurious.undo_due(self.cc.congestion_events):
            self.cc.undo_congestion_event()

    def _persistent_congestion(self, lost: list[SentPacket]) -> bool:
        """§7.6: two ack-eliciting losses further apart than the congestion period,
        with every packet sent between them lost too (§7.6.2).

        Only runs of consecutive packet numbers count: a gap means a packet in
        between was acknowledged (or not lost), which rules the run out.
        """
        if self.first_rtt_sample_time is None:
            return False
        rtt = self.rtt
        duration = (
            rtt.smoothed_rtt + max(4 * rtt.rttvar, K_GRANULARITY) + self.max_ack_delay
        ) * K_PERSISTENT_CONGESTION_THRESHOLD
        start: SentPacket | None = None
        previous: SentPacket | None = None
        for p in sorted(lost, key=lambda p: p.packet_number):
            if previous is None or p.packet_number != previous.packet_number + 1:
                start = None  # the run is broken
            previous = p
            if not p.ack_eliciting or p.time_sent <= self.first_rtt_sample_time:
                continue
            if start is None:
                start = p
            elif p.time_sent - start.time_sent > duration:
                return True
        return False

    # Timers (§6.2, §A.8) -------------------------------------------------------------------
    def pto_duration(self, space_id: int) -> float:
        """The probe timeout of ``space_id`` with its backoff (§6.2.1); max_ack_delay counts
        only in the application space."""
        rtt = self.rtt
        duration = rtt.smoothed_rtt + max(4 * rtt.rttvar, K_GRANULARITY)
        if space_id == 2:
            duration += self.max_ack_delay
        return duration * (1 << self.pto_count)

    def pto_base(self) -> float:
        """The 1-RTT PTO without backoff, the peer's max_ack_delay counted (for the idle
        timeout, RFC 9000 §10.1, and path validation, §8.2.4)."""
        rtt = self.rtt
        variation = 4 * rtt.rttvar
        if variation < K_GRANULARITY:
            variation = K_GRANULARITY
        return rtt.smoothed_rtt + variation + self.max_ack_delay

    def probe_timeout(self) -> float:
        """The 1-RTT probe timeout without backoff (§6.2.1): :meth:`pto_base`, but without
        the peer's max_ack_delay while more ack-eliciting packets are in flight than any
        Ack-Eliciting Threshold the peer may be using (draft-ietf-quic-ack-frequency §7:
        it then acknowledges without waiting; never so with a Reordering Threshold of 0)."""
        if self.spaces[2].ack_eliciting_in_flight <= self.peer_ack_threshold:
            return self.pto_base()
        rtt = self.rtt
        return rtt.smoothed_rtt + max(4 * rtt.rttvar, K_GRANULARITY)

    def earliest_loss_time(self) -> tuple[float | None, int]:
        """The earliest time-threshold loss deadline and its space (Appendix A.8), or
        ``(None, 0)``."""
        best: tuple[float | None, int] = (None, 0)
        for i, space in enumerate(self.spaces):
            if space.loss_time is not None and (best[0] is None or space.loss_time < best[0]):
                best = (space.loss_time, i)
        return best

    def pto_time(
        self, now: float, *, has_handshake_keys: bool, is_client: bool, zero_rtt_only: bool = False
    ) -> tuple[float | None, int]:
        """When the probe timeout fires, and for which space.

        ``zero_rtt_only``: all the application space holds is 0-RTT (a client without
        1-RTT keys). That space has no PTO yet, so its packets do not hold back the
        client's anti-deadlock probe (§6.2.2.1), or a lost server flight would stall.
        """
        spaces = self.spaces[:2] if zero_rtt_only else self.spaces
        if not any(s.ack_eliciting_in_flight for s in spaces):
            # §6.2.2.1: a client keeps probing until the server validated its address.
            if is_client and not self.peer_completed_address_validation:
                space_id = 1 if has_handshake_keys else 0
                return now + self.pto_duration(space_id) if self.pto_count else (
                    self._anchor(space_id) or now
                ) + self.pto_duration(space_id), space_id
            return None, 0
        best: tuple[float | None, int] = (None, 0)
        for i, space in enumerate(self.spaces):
            if not space.ack_eliciting_in_flight or space.time_of_last_ack_eliciting is None:
                continue
            if i == 2 and not self.handshake_confirmed:
                continue  # §6.2.1: no 1-RTT PTO before the handshake is confirmed
            if i == 2:  # as TimerDriver.next_timer computes it
                t = space.time_of_last_ack_eliciting + self.probe_timeout() * (1 << self.pto_count)
            else:
                t = space.time_of_last_ack_eliciting + self.pto_duration(i)
            if best[0] is None or t < best[0]:
                best = (t, i)
        return best

    def _anchor(self, space_id: int) -> float | None:
        return self.spaces[space_id].time_of_last_ack_eliciting

    def detect_lost_on_timer(self, space_id: int, now: float) -> list[SentPacket]:
        """The loss timer fired (§6.1.2): declare lost what the time threshold now
        condemns, and return those packets."""
        lost = self._detect_lost(space_id, now)
        if lost:
            self._on_lost(space_id, lost, now)
        return lost

    def abandon_space(self, space_id: int) -> None:
        """Packets the peer will never process (0-RTT rejected, RFC 9001 §4.6.2; or sent
        before a Retry or Version Negotiation): they leave ``bytes_in_flight`` as in
        §6.4, without a congestion signal, and what they carried is reported lost."""
        space = self.spaces[space_id]
        if not space.sent:
            return
        packets = list(space.sent.values())
        self.cc.discard([p for p in packets if p.in_flight])
        space.sent.clear()
        space.loss_time = None
        space.ack_eliciting_in_flight = 0
        deliver = self.on_delivered
        for p in packets:
            if p.frames:
                deliver(p.frames, False)

    def discard_space(self, space_id: int, *, keep_space: bool = False) -> None:
        """§6.4: forget a space's packets without declaring them lost.

        With ``keep_space`` the space goes on (a client after a Retry sends its
        Initial data again, RFC 9000 §17.2.5.2); otherwise it is closed for good.
        """
        space = self.spaces[space_id]
        in_flight = [p for p in space.sent.values() if p.in_flight]
        self.cc.discard(in_flight)
        space.sent.clear()
        space.loss_time = None
        space.ack_eliciting_in_flight = 0
        if keep_space:
            return
        self.pto_count = 0
        # The space is over for good: all connections share one empty stand-in for it.
        spaces = list(self.spaces)
        spaces[space_id] = _DISCARDED_SPACE
        self.spaces = (spaces[0], spaces[1], spaces[2])
