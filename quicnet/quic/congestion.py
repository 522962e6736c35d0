"""Congestion control behind a small interface (RFC 9002 §7), NewReno, and pacing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = ["CongestionController", "NewReno", "Pacer"]

K_LOSS_REDUCTION_FACTOR = 0.5


class SentInfo(Protocol):
    """What a congestion controller reads of a sent packet."""

    size: int
    time_sent: float


class CongestionController(Protocol):
    """What loss recovery needs from a congestion controller."""

    congestion_window: int
    bytes_in_flight: int

    def on_packet_sent(self, size: int) -> None:
        """An in-flight packet of ``size`` bytes was sent: add it to ``bytes_in_flight``."""

    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """In-flight packets were acknowledged: take them out of ``bytes_in_flight`` and
        grow the window as the algorithm allows (RFC 9002 §7.3)."""

    def on_packets_lost(self, packets: Iterable[SentInfo], now: float) -> None:
        """In-flight packets were declared lost: take them out of ``bytes_in_flight`` and
        react to the congestion, at most once per recovery period (§7.3.2)."""

    def on_ecn_ce(self, time_sent: float, now: float) -> None:
        """The peer's CE count rose in an ACK whose largest newly acknowledged packet
        left at ``time_sent``: a congestion event with nothing lost (§7.1, Appendix B.7)."""

    def on_persistent_congestion(self) -> None:
        """Persistent congestion was established (§7.6.2): fall to the minimum window."""

    def discard(self, packets: Iterable[SentInfo]) -> None:
        """Packets of a discarded packet number space leave ``bytes_in_flight`` as neither
        acknowledged nor lost (§6.4)."""


class NewReno:
    """RFC 9002 §7 and Appendix B: slow start, congestion avoidance, recovery periods."""

    __slots__ = (
        "_acked_in_avoidance",
        "bytes_in_flight",
        "congestion_recovery_start_time",
        "congestion_window",
        "max_datagram_size",
        "minimum_window",
        "ssthresh",
    )

    def __init__(self, max_datagram_size: int = 1200) -> None:
        self.max_datagram_size = max_datagram_size
        self.minimum_window = 2 * max_datagram_size
        # §7.2: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
        self.congestion_window = min(10 * max_datagram_size, max(14720, 2 * max_datagram_size))
        self.bytes_in_flight = 0
        self.ssthresh: float = float("inf")
        self.congestion_recovery_start_time: float | None = None
        self._acked_in_avoidance = 0

    def _in_recovery(self, time_sent: float) -> bool:
        start = self.congestion_recovery_start_time
        return start is not None and time_sent <= start

    def on_packet_sent(self, size: int) -> None:
        """Count ``size`` bytes in flight."""
        self.bytes_in_flight += size

    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """§7.3 / Appendix B.5: slow start grows by the bytes acknowledged, congestion
        avoidance by one datagram per window; packets sent before the recovery period
        began grow nothing."""
        for p in packets:
            self.bytes_in_flight -= p.size
            if self._in_recovery(p.time_sent):
                continue  # §7.3.2: no growth for packets sent before recovery began
            if self.congestion_window < self.ssthresh:
                self.congestion_window += p.size  # slow start
            else:
                self._acked_in_avoidance += p.size
                if self._acked_in_avoidance >= self.congestion_window:
                    self._acked_in_avoidance -= self.congestion_window
                    self.congestion_window += self.max_datagram_size

    def on_packets_lost(self, packets: Iterable[SentInfo], now: float) -> None:
        """§7.3.2 / Appendix B.6: a loss of a packet sent after the recovery period began
        starts a new one: ssthresh and the window halve (not below the minimum window)."""
        latest_sent: float | None = None
        for p in packets:
            self.bytes_in_flight -= p.size
            latest_sent = p.time_sent if latest_sent is None else max(latest_sent, p.time_sent)
        if latest_sent is not None:
            self._congestion_event(latest_sent, now)

    def on_ecn_ce(self, time_sent: float, now: float) -> None:
        """Appendix B.7: CE marks react as a loss does (at most once per recovery
        period), with nothing leaving ``bytes_in_flight``."""
        self._congestion_event(time_sent, now)

    def _congestion_event(self, time_sent: float, now: float) -> None:
        """Appendix B.6: a congestion signal for a packet sent after the recovery period
        began starts a new one: ssthresh and the window halve (not below the minimum)."""
        if not self._in_recovery(time_sent):
            self.congestion_recovery_start_time = now
            self.ssthresh = max(
                self.congestion_window * K_LOSS_REDUCTION_FACTOR, self.minimum_window
            )
            self.congestion_window = int(self.ssthresh)
            self._acked_in_avoidance = 0

    def on_persistent_congestion(self) -> None:
        """§7.6.2: the window drops to the minimum and the recovery period ends."""
        self.congestion_window = self.minimum_window  # §7.6.2
        self.congestion_recovery_start_time = None

    def discard(self, packets: Iterable[SentInfo]) -> None:
        """Packets of a discarded packet number space leave bytes_in_flight (§6.4)."""
        for p in packets:
            self.bytes_in_flight -= p.size


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
        """Pace at 1.25 congestion windows per smoothed RTT (RFC 9002 §7.7, N = 1.25)."""
        if smoothed_rtt > 0:
            self.rate = 1.25 * congestion_window / smoothed_rtt  # N = 1.25

    def _refill(self, now: float) -> None:
        if self.rate is not None and now > self.last_update:
            self.tokens = min(self.burst, self.tokens + (now - self.last_update) * self.rate)
        self.last_update = max(self.last_update, now)

    def next_send_time(self, now: float, size: int) -> float | None:
        """None if a packet of ``size`` may go now, else when it may."""
        self._refill(now)
        shortfall = size - self.tokens
        if self.rate is None or shortfall < 1:  # a fraction of a byte is float noise
            return None
        return now + max(shortfall / self.rate, 1e-6)  # strictly later: no idle re-fire

    def on_sent(self, now: float, size: int) -> None:
        """A packet of ``size`` bytes left at ``now``: spend its tokens."""
        self._refill(now)
        self.tokens = max(0.0, self.tokens - size)
