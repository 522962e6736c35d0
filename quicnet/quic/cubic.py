"""CUBIC congestion control (RFC 9438) for QUIC, with RFC 9002's recovery periods.

The window is counted in bytes; the cubic curve (RFC 9438 §4.2) is evaluated in
segments of ``max_datagram_size`` as the RFC writes it. Slow start, recovery periods
(RFC 9002 §7.3.2) and persistent congestion (§7.6.2) work as in NewReno; congestion
avoidance follows the cubic curve, or the Reno-friendly estimate when that is larger
(§4.3), with fast convergence (§4.7) and an undo of spurious reductions (§4.9).
"""

from __future__ import annotations

from collections.abc import Iterable

from quicnet.quic.congestion import SentInfo, WindowController

__all__ = ["BETA_CUBIC", "C_CUBIC", "Cubic"]

#: RFC 9438 §5: the multiplicative decrease factor and the curve's scaling constant.
BETA_CUBIC = 0.7
C_CUBIC = 0.4
#: §4.3: the Reno-friendly additive increase, 3 * (1 - beta) / (1 + beta) per RTT.
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)

_State = tuple[int, float, float | None, float, float, float | None, float, float]


class Cubic(WindowController):
    """RFC 9438 CUBIC behind :class:`quicnet.quic.congestion.CongestionController`."""

    __slots__ = (
        "_before_event",
        "_cwnd_epoch",
        "_reno_est",
        "_srtt",
        "_t_epoch",
        "cwnd_prior",
        "k",
        "ssthresh",
        "w_max",
    )

    def __init__(self, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size)
        self.ssthresh: float = float("inf")
        #: The window just before the last reduction (§4.3's cwnd_prior), bytes.
        self.cwnd_prior = 0.0
        #: §4.2's W_max (in bytes: segments times the datagram size) and K (seconds).
        self.w_max = 0.0
        self.k = 0.0
        self._t_epoch: float | None = None  # start of the congestion avoidance stage
        self._cwnd_epoch = 0.0
        self._reno_est = 0.0  # §4.3's W_est, bytes
        self._srtt = 0.0  # the controller's own smoothed RTT, for W_cubic(t + RTT)
        self._before_event: _State | None = None

    def w_cubic(self, t: float) -> float:
        """§4.2: the window (bytes) the cubic curve gives ``t`` seconds into the epoch."""
        mss = self.max_datagram_size
        return (C_CUBIC * (t - self.k) ** 3 + self.w_max / mss) * mss

    def _start_epoch(self, now: float) -> None:
        # §4.2: K is the time the curve takes to climb back to W_max from cwnd_epoch.
        mss = self.max_datagram_size
        cwnd = float(self.congestion_window)
        self._t_epoch = now
        self._cwnd_epoch = cwnd
        self._reno_est = cwnd
        if self.w_max <= cwnd:
            self.w_max = cwnd
            self.k = 0.0
        else:
            self.k = ((self.w_max - cwnd) / mss / C_CUBIC) ** (1 / 3)

    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """Slow start below ssthresh; above it, RFC 9438 §4.2-4.4 congestion avoidance.
        Packets sent before the recovery period began grow nothing (RFC 9002 §7.3.2)."""
        acked = 0
        newest = -1.0
        for p in packets:
            self.bytes_in_flight -= p.size
            if p.time_sent > newest:
                newest = p.time_sent
            if not self._in_recovery(p.time_sent):
                acked += p.size
        if newest >= 0:
            sample = now - newest
            self._srtt = sample if not self._srtt else 0.875 * self._srtt + 0.125 * sample
        if not acked:
            return
        self.recovering = False  # a packet sent after the reduction arrived (RFC 9002 §7.3.2)
        cwnd = float(self.congestion_window)
        if cwnd < self.ssthresh:  # slow start (§4.10: as in RFC 5681)
            self.congestion_window = int(cwnd + acked)
            return
        if self._t_epoch is None:
            self._start_epoch(now)
        assert self._t_epoch is not None
        mss = self.max_datagram_size
        t = now - self._t_epoch
        # §4.3: the Reno-friendly estimate; alpha becomes 1 once W_est reached cwnd_prior.
        alpha = 1.0 if self._reno_est >= self.cwnd_prior else ALPHA_CUBIC
        self._reno_est += alpha * mss * acked / cwnd
        w_cubic = self.w_cubic(t)
        if w_cubic < self._reno_est:
            new = self._reno_est  # §4.3: the Reno-friendly region
        else:  # §4.4: concave/convex region, towards W_cubic(t + RTT), at most 1.5 cwnd
            target = min(max(self.w_cubic(t + self._srtt), cwnd), 1.5 * cwnd)
            new = cwnd + (target - cwnd) * acked / cwnd
        self.congestion_window = max(int(new), self.congestion_window)

    def _state(self) -> _State:
        return (
            self.congestion_window,
            self.ssthresh,
            self.congestion_recovery_start_time,
            self.cwnd_prior,
            self.w_max,
            self._t_epoch,
            self.k,
            self._reno_est,
        )

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """§4.6 multiplicative decrease by beta, §4.7 fast convergence; a new epoch starts
        with the next acknowledgement."""
        if self._in_recovery(sent_time):
            return
        self._before_event = self._state()
        self.congestion_events += 1
        self.congestion_recovery_start_time = now
        self.recovering = True
        cwnd = float(self.congestion_window)
        # §4.7: a flow whose window stopped short of the last W_max releases bandwidth.
        self.w_max = cwnd * (1 + BETA_CUBIC) / 2 if cwnd < self.w_max else cwnd
        self.cwnd_prior = cwnd
        self.ssthresh = max(cwnd * BETA_CUBIC, self.minimum_window)
        self.congestion_window = int(self.ssthresh)
        self._t_epoch = None

    def undo_congestion_event(self) -> None:
        """§4.9: the reduction was spurious; restore the state from before it (never a
        smaller window than now)."""
        before = self._before_event
        if before is None:
            return
        self._before_event = None
        window = self.congestion_window
        (
            self.congestion_window,
            self.ssthresh,
            self.congestion_recovery_start_time,
            self.cwnd_prior,
            self.w_max,
            self._t_epoch,
            self.k,
            self._reno_est,
        ) = before
        self.congestion_window = max(self.congestion_window, window)
        self.recovering = False

    def on_persistent_congestion(self) -> None:
        """RFC 9002 §7.6.2 (RFC 9438 §4.8): the window falls to the minimum and the
        curve starts over with the next congestion avoidance stage."""
        self.congestion_window = self.minimum_window
        self.congestion_recovery_start_time = None
        self.recovering = False
        self._t_epoch = None
        self._before_event = None
