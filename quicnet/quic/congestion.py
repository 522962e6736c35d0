"""Congestion control behind a small interface (RFC 9002 §7), NewReno, and pacing."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

__all__ = ["PACING_GAIN", "CongestionController", "NewReno", "Pacer", "SentInfo"]

K_LOSS_REDUCTION_FACTOR = 0.5
#: Congestion windows paced out per smoothed RTT (RFC 9002 §7.7: N = 1.25).
PACING_GAIN = 1.25


class SentInfo(Protocol):
    """What a congestion controller reads of a sent packet."""

    size: int
    time_sent: float


class CongestionController(Protocol):
    """What loss recovery needs from a congestion controller.

    Recovery reports sends, acknowledgements and losses; ECN (RFC 9002 §7.1) reports a
    CE mark through :meth:`on_congestion_event`. When every packet whose loss caused
    the last reduction turns out to have arrived after all (reordering, not loss),
    recovery calls :meth:`undo_congestion_event`.
    """

    congestion_window: int
    bytes_in_flight: int
    #: Reductions so far: recovery tells a new congestion event from a repeated signal
    #: inside the current recovery period by this counter changing.
    congestion_events: int
    #: Bytes per second the pacer should use, or None to pace at 1.25 windows per
    #: smoothed RTT (RFC 9002 §7.7). A model-based controller (BBR) sets its own.
    pacing_rate: float | None

    def on_packet_sent(self, size: int, now: float) -> None:
        """An in-flight packet of ``size`` bytes was sent at ``now``: add it to
        ``bytes_in_flight``."""

    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """In-flight packets were acknowledged: take them out of ``bytes_in_flight`` and
        grow the window as the algorithm allows (RFC 9002 §7.3)."""

    def on_packets_lost(self, packets: Iterable[SentInfo], now: float) -> None:
        """In-flight packets were declared lost: take them out of ``bytes_in_flight`` and
        react to the congestion, at most once per recovery period (§7.3.2)."""

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """A congestion signal (a loss, or an ECN-CE count increase, §7.1) for a packet
        sent at ``sent_time``: reduce the window unless a recovery period that began
        after it is already under way (§7.3.2)."""

    def undo_congestion_event(self) -> None:
        """The last reduction was spurious (every loss behind it was reordering): go back
        to the window and threshold from before it (RFC 9438 §4.9 describes it for CUBIC)."""

    def on_persistent_congestion(self) -> None:
        """Persistent congestion was established (§7.6.2): fall to the minimum window."""

    def on_app_limited(self, now: float) -> None:
        """The sender ran out of data at ``now`` (what it sent then included): the
        application, not the window, limits the rate while the window has room. BBR marks
        its delivery-rate samples so (draft-cheng-iccrg-delivery-rate-estimation,
        "Detecting application-limited phases"); the others ignore it."""

    def discard(self, packets: Iterable[SentInfo]) -> None:
        """Packets of a discarded packet number space leave ``bytes_in_flight`` as neither
        acknowledged nor lost (§6.4)."""

    def set_max_datagram_size(self, size: int) -> None:
        """The path's maximum datagram size changed (PMTU discovery, RFC 9002 §7.2)."""


def initial_window(max_datagram_size: int) -> int:
    """RFC 9002 §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))."""
    return min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))


class WindowController:
    """What the window-based controllers share: the window and its floor, bytes in
    flight, recovery periods (RFC 9002 §7.3.2) and datagram-size changes (§7.2)."""

    __slots__ = (
        "bytes_in_flight",
        "congestion_events",
        "congestion_recovery_start_time",
        "congestion_window",
        "max_datagram_size",
        "minimum_window",
        "recovering",
    )

    #: The minimum window, in datagrams.
    MIN_WINDOW_PACKETS = 2
    pacing_rate: float | None = None  # pace by the window (RFC 9002 §7.7)

    def __init__(self, max_datagram_size: int = 1200) -> None:
        self.max_datagram_size = max_datagram_size
        self.minimum_window = self.MIN_WINDOW_PACKETS * max_datagram_size
        self.congestion_window = initial_window(max_datagram_size)
        self.bytes_in_flight = 0
        self.congestion_recovery_start_time: float | None = None
        self.congestion_events = 0
        #: In a recovery period (RFC 9002 §7.3.2): from a reduction until a packet sent
        #: after it is acknowledged. Kept for :attr:`state_name` (qlog), set per ACK frame.
        self.recovering = False

    @property
    def state_name(self) -> str:
        """The controller's state as qlog names it (``recovery:congestion_state_updated``):
        "slow_start", "congestion_avoidance" or "recovery" (RFC 9002 §7.3). Read by the
        qlog tracer only, never on the packet path."""
        if self.recovering:
            return "recovery"
        ssthresh: float = getattr(self, "ssthresh", math.inf)
        return "slow_start" if self.congestion_window < ssthresh else "congestion_avoidance"

    def _in_recovery(self, time_sent: float) -> bool:
        start = self.congestion_recovery_start_time
        return start is not None and time_sent <= start

    def on_packet_sent(self, size: int, now: float) -> None:
        """Count ``size`` bytes in flight."""
        self.bytes_in_flight += size

    def on_packets_lost(self, packets: Iterable[SentInfo], now: float) -> None:
        """Take lost packets out of flight; the newest starts a congestion event unless a
        recovery period covers it (§7.3.2)."""
        latest_sent: float | None = None
        for p in packets:
            self.bytes_in_flight -= p.size
            latest_sent = p.time_sent if latest_sent is None else max(latest_sent, p.time_sent)
        if latest_sent is not None:
            self.on_congestion_event(latest_sent, now)

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """A congestion signal for a packet sent at ``sent_time`` (RFC 9002 §7.3.2).

        Each subclass (NewReno, CUBIC, BBR) decides how its window responds.
        """
        raise NotImplementedError

    def on_app_limited(self, now: float) -> None:
        """Nothing to do: NewReno and CUBIC do not look at application-limited periods."""

    def discard(self, packets: Iterable[SentInfo]) -> None:
        """Packets of a discarded packet number space leave bytes_in_flight (§6.4)."""
        for p in packets:
            self.bytes_in_flight -= p.size

    def set_max_datagram_size(self, size: int) -> None:
        """The path's datagram size changed (PMTU discovery, §7.2): the minimum window
        follows it.

        The window, in bytes, does not grow with a larger size (RFC 8899 §3 item 7),
        except that it never stays below the minimum window, so that a full-size
        packet can always go (else a window of 2,400 bytes would hold back a path of
        1,452-byte packets forever).
        """
        self.max_datagram_size = size
        self.minimum_window = self.MIN_WINDOW_PACKETS * size
        if self.congestion_window < self.minimum_window:
            self.congestion_window = self.minimum_window


class NewReno(WindowController):
    """RFC 9002 §7 and Appendix B: slow start, congestion avoidance, recovery periods."""

    __slots__ = (
        "_acked_in_avoidance",
        "_before_event",
        "ssthresh",
    )

    def __init__(self, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size)
        self.ssthresh: float = float("inf")
        self._acked_in_avoidance = 0
        #: (window, ssthresh, recovery start) before the last reduction, for an undo.
        self._before_event: tuple[int, float, float | None] | None = None

    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """§7.3 / Appendix B.5: slow start grows by the bytes acknowledged, congestion
        avoidance by one datagram per window; packets sent before the recovery period
        began grow nothing."""
        recovering = self.recovering
        if recovering:
            before = (self.congestion_window, self._acked_in_avoidance)
        start = self.congestion_recovery_start_time  # (_in_recovery, in place)
        for p in packets:
            self.bytes_in_flight -= p.size
            if start is not None and p.time_sent <= start:
                continue  # §7.3.2: no growth for packets sent before recovery began
            if self.congestion_window < self.ssthresh:
                self.congestion_window += p.size  # slow start
            else:
                self._acked_in_avoidance += p.size
                if self._acked_in_avoidance >= self.congestion_window:
                    self._acked_in_avoidance -= self.congestion_window
                    self.congestion_window += self.max_datagram_size
        # Growth means a packet sent after the recovery period began was acknowledged: the
        # period is over (§7.3.2). Checked once per ACK frame, and only in recovery.
        if recovering and before != (self.congestion_window, self._acked_in_avoidance):
            self.recovering = False

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """§7.3.2 / Appendix B.6: a new recovery period halves ssthresh and the window."""
        if self._in_recovery(sent_time):
            return
        self._before_event = (
            self.congestion_window,
            self.ssthresh,
            self.congestion_recovery_start_time,
        )
        self.congestion_events += 1
        self.congestion_recovery_start_time = now
        self.recovering = True
        self.ssthresh = max(self.congestion_window * K_LOSS_REDUCTION_FACTOR, self.minimum_window)
        self.congestion_window = int(self.ssthresh)
        self._acked_in_avoidance = 0

    def undo_congestion_event(self) -> None:
        """Restore the window and ssthresh from before the last reduction (never lower
        than they are now) and leave its recovery period."""
        before = self._before_event
        if before is None:
            return
        self._before_event = None
        window, ssthresh, start = before
        self.congestion_window = max(self.congestion_window, window)
        self.ssthresh = max(self.ssthresh, ssthresh)
        self.congestion_recovery_start_time = start
        self.recovering = False

    def on_persistent_congestion(self) -> None:
        """§7.6.2: the window drops to the minimum and the recovery period ends."""
        self.congestion_window = self.minimum_window  # §7.6.2
        self.congestion_recovery_start_time = None
        self.recovering = False
        self._before_event = None  # nothing to go back to


class Pacer:
    """Spreads a congestion window over a round trip (RFC 9002 §7.7), with a burst allowance."""

    __slots__ = (
        "burst",
        "last_update",
        "max_datagram_size",
        "rate",
        "tokens",
    )

    def __init__(self, max_datagram_size: int = 1200) -> None:
        self.max_datagram_size = max_datagram_size
        self.burst = 10 * max_datagram_size
        self.tokens = float(self.burst)
        self.rate: float | None = None  # bytes per second
        self.last_update = 0.0

    def update_rate(self, congestion_window: int, smoothed_rtt: float) -> None:
        """Pace at PACING_GAIN congestion windows per smoothed RTT (RFC 9002 §7.7)."""
        # (Recovery.on_ack_received does the same in place: a change here goes there too.)
        if smoothed_rtt > 0:
            self.rate = PACING_GAIN * congestion_window / smoothed_rtt

    def _refill(self, now: float) -> None:
        last = self.last_update
        if now > last:  # (conditionals, not min/max: this runs for every packet sent)
            if self.rate is not None:
                tokens = self.tokens + (now - last) * self.rate
                self.tokens = tokens if tokens < self.burst else self.burst
            self.last_update = now

    def next_send_time(self, now: float, size: int) -> float | None:
        """None if a packet of ``size`` may go now, else when it may."""
        self._refill(now)
        shortfall = size - self.tokens
        if self.rate is None or shortfall < 1:  # a fraction of a byte is float noise
            return None
        return now + max(shortfall / self.rate, 1e-6)  # strictly later: no idle re-fire

    def set_max_datagram_size(self, size: int) -> None:
        """The path's datagrams grew or shrank: the burst is ten of them."""
        self.max_datagram_size = size
        self.burst = 10 * size

    def on_sent(self, now: float, size: int) -> None:
        """A packet of ``size`` bytes left at ``now``: spend its tokens."""
        # (Recovery.on_one_rtt_sent does the same in place: a change here goes there too.)
        tokens = self.tokens
        last = self.last_update
        if now > last:  # _refill, in place (once per packet sent)
            if self.rate is not None:
                tokens += (now - last) * self.rate
                if tokens > self.burst:
                    tokens = self.burst
            self.last_update = now
        tokens -= size
        self.tokens = tokens if tokens > 0.0 else 0.0
