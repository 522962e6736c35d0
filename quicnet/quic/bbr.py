"""BBR (version 1) congestion control: a model of the path, not a reaction to loss.

BBR estimates the bottleneck bandwidth (the largest delivery rate sampled over the
last ten round trips) and the round-trip propagation time (the smallest RTT seen in
ten seconds), paces at a gain times that bandwidth and caps what is in flight at
twice their product. It moves through four modes: STARTUP doubles the rate each
round until the bandwidth stops growing by 25% for three rounds; DRAIN empties the
queue STARTUP built; PROBE_BW cycles its pacing gain (1.25, 0.75, then six rounds
at 1) to find more bandwidth and give it back; PROBE_RTT drops to four packets for
200 ms when the RTT estimate is ten seconds old, to see the empty-queue RTT.

Delivery-rate samples are taken on each acknowledgement from what was delivered
between a packet's sending and its acknowledgement (the rate-sample method of
draft-cheng-iccrg-delivery-rate-estimation). When the sender runs out of data with
room in the window (``on_app_limited``), the packets sent from then until everything
then in flight is delivered are application-limited ("Detecting
application-limited phases"): their samples may raise the bandwidth estimate, never
lower it, and do not count toward STARTUP's plateau, so a sender that idles at
30 messages a second keeps the bottleneck's rate.

Loss does not change the model. It changes the window as BBRv1 does
(draft-cardwell-iccrg-bbr-congestion-control-00 §4.2.3.4, "Modulating cwnd in Loss
Recovery"): a new recovery period (RFC 9002 §7.3.2) saves the window and cuts it to
what is in flight plus what this acknowledgement delivered; for one round trip it
then grows only by what is delivered (packet conservation), after that as usual;
further losses trim it by what they lost; and when a packet sent after the period
began is acknowledged, the period ends and the saved window comes back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from quicnet.quic.congestion import SentInfo, WindowController

__all__ = ["Bbr", "BbrMode"]

HIGH_GAIN = 2 / math.log(2)  # STARTUP: the smallest gain that doubles the rate per round
PACING_GAIN_CYCLE = (1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
BW_FILTER_ROUNDS = 10
MIN_RTT_WINDOW = 10.0  # seconds
PROBE_RTT_DURATION = 0.2  # seconds
FULL_BW_GROWTH = 1.25
FULL_BW_ROUNDS = 3
MIN_PIPE_PACKETS = 4


class BbrMode:
    """The four modes of the BBR state machine."""

    STARTUP = "startup"
    DRAIN = "drain"
    PROBE_BW = "probe_bw"
    PROBE_RTT = "probe_rtt"


class Bbr(WindowController):
    """BBRv1 behind :class:`quicnet.quic.congestion.CongestionController`."""

    __slots__ = (
        "_app_limited",
        "_before_event",
        "_bw_rounds",
        "_cycle_index",
        "_cycle_stamp",
        "_first_sent_time",
        "_full_bw",
        "_full_bw_count",
        "_last_ack",
        "_next_round_delivered",
        "_probe_rtt_done",
        "_probe_rtt_round_done",
        "_round_start",
        "_rtt_expired",
        "_sample_app_limited",
        "_sent_state",
        "btl_bw",
        "cwnd_gain",
        "delivered",
        "delivered_time",
        "filled_pipe",
        "in_recovery",
        "min_rtt",
        "min_rtt_stamp",
        "mode",
        "pacing_gain",
        "pacing_rate",
        "packet_conservation",
        "prior_cwnd",
        "round_count",
    )

    MIN_WINDOW_PACKETS = MIN_PIPE_PACKETS

    def __init__(self, max_datagram_size: int = 1200) -> None:
        super().__init__(max_datagram_size)
        self.pacing_rate: float | None = None  # until the first bandwidth sample
        self.mode = BbrMode.STARTUP
        self.pacing_gain = HIGH_GAIN
        self.cwnd_gain = HIGH_GAIN
        self.btl_bw = 0.0  # bytes per second
        self.min_rtt = math.inf
        self.min_rtt_stamp = 0.0
        self.delivered = 0
        self.delivered_time = 0.0
        self.round_count = 0
        self.filled_pipe = False
        #: Per send instant: [packets, delivered, delivered_time, first_sent_time,
        #: app-limited (1.0 or 0.0)] then.
        self._sent_state: dict[float, list[float]] = {}
        #: While non-zero, packets sent are app-limited: until ``delivered`` passes it.
        self._app_limited = 0
        self._sample_app_limited = False
        #: In a loss recovery period (RFC 9002 §7.3.2) / its first round trip.
        self.in_recovery = False
        self.packet_conservation = False
        #: The window saved on entering recovery or PROBE_RTT, restored on leaving.
        self.prior_cwnd = 0
        self._last_ack = (0.0, 0)  # (when, bytes): what the latest acknowledgement delivered
        self._first_sent_time = 0.0
        self._next_round_delivered = 0
        self._round_start = False
        self._rtt_expired = False
        self._bw_rounds: list[tuple[int, float]] = []  # (round, max sample in it)
        self._full_bw = 0.0
        self._full_bw_count = 0
        self._cycle_index = 0
        self._cycle_stamp = 0.0
        self._probe_rtt_done: float | None = None
        self._probe_rtt_round_done = False
        self._before_event: int | None = None

    # Sending ----------------------------------------------------------------------
    def on_packet_sent(self, size: int, now: float) -> None:
        """Remember what was delivered when this packet left (its rate sample's start)."""
        if self.bytes_in_flight == 0:  # a fresh start after idle: the interval starts now
            self._first_sent_time = self.delivered_time = now
        state = self._sent_state.get(now)
        if state is None:
            self._sent_state[now] = [
                1.0,
                float(self.delivered),
                self.delivered_time,
                self._first_sent_time,
                1.0 if self._app_limited else 0.0,
            ]
        else:
            state[0] += 1
        self.bytes_in_flight += size

    def _forget(self, time_sent: float) -> list[float] | None:
        state = self._sent_state.get(time_sent)
        if state is not None:
            state[0] -= 1
            if state[0] <= 0:
                del self._sent_state[time_sent]
        return state

    # Acknowledgements -------------------------------------------------------------
    def on_packets_acked(self, packets: Iterable[SentInfo], now: float) -> None:
        """Take a delivery-rate sample, update the model, then the mode, rate and window."""
        acked = 0
        newest_sent = -1.0
        newest: list[float] | None = None
        for p in packets:
            self.bytes_in_flight -= p.size
            acked += p.size
            state = self._forget(p.time_sent)
            if state is not None and p.time_sent >= newest_sent:
                newest_sent, newest = p.time_sent, state
        if not acked:
            return
        self.delivered += acked
        self.delivered_time = now
        self._last_ack = (now, acked)
        if self._app_limited and self.delivered > self._app_limited:
            self._app_limited = 0  # all that was in flight when the data ran out arrived
        self._round_start = self._rtt_expired = False
        app_limited = False
        if newest is not None:
            _, prior_delivered, prior_time, first_sent, limited = newest
            app_limited = limited > 0
            self._first_sent_time = newest_sent
            rtt = now - newest_sent
            if rtt > 0:
                self._update_min_rtt(rtt, now)
            if prior_delivered >= self._next_round_delivered:  # a round trip ended
                self._next_round_delivered = self.delivered
                self.round_count += 1
                self._round_start = True
            interval = max(newest_sent - first_sent, now - prior_time)
            if interval > 0 and interval >= self.min_rtt * 0.999:
                sample = (self.delivered - prior_delivered) / interval
                # An app-limited sample only says the path carries at least that much.
                if not app_limited or sample >= self.btl_bw:
                    self._update_bw(sample)
            start = self.congestion_recovery_start_time
            if self.in_recovery and start is not None and newest_sent > start:
                self._leave_recovery()  # §4.2.3.4: restore the window saved on entry
            elif self._round_start:
                self.packet_conservation = False  # conservation lasts one round trip
        self._sample_app_limited = app_limited
        self._update_mode(now)
        self._set_pacing_rate()
        self._set_cwnd(acked)

    def _update_min_rtt(self, rtt: float, now: float) -> None:
        # A ten-second-old estimate takes the new sample whatever it is, and sends the
        # connection to PROBE_RTT to measure it with the queue drained.
        expired = now > self.min_rtt_stamp + MIN_RTT_WINDOW and self.min_rtt != math.inf
        if rtt <= self.min_rtt or expired:
            self.min_rtt = rtt
            self.min_rtt_stamp = now
        self._rtt_expired = expired

    def _update_bw(self, sample: float) -> None:
        rounds = self._bw_rounds
        if rounds and rounds[-1][0] == self.round_count:
            if sample > rounds[-1][1]:
                rounds[-1] = (self.round_count, sample)
        else:
            rounds.append((self.round_count, sample))
        while rounds[0][0] <= self.round_count - BW_FILTER_ROUNDS:
            rounds.pop(0)
        self.btl_bw = max(bw for _, bw in rounds)

    def _bdp(self, gain: float) -> float:
        if self.min_rtt == math.inf or not self.btl_bw:
            return float(self.congestion_window)
        return gain * self.btl_bw * self.min_rtt

    # The state machine ------------------------------------------------------------
    def _save_cwnd(self) -> None:
        """The window to come back to (after recovery, PROBE_RTT): the larger one."""
        if self.in_recovery or self.mode == BbrMode.PROBE_RTT:
            self.prior_cwnd = max(self.prior_cwnd, self.congestion_window)
        else:
            self.prior_cwnd = self.congestion_window

    def _leave_recovery(self) -> None:
        self.in_recovery = self.packet_conservation = False
        self.congestion_window = max(self.congestion_window, self.prior_cwnd)

    def _update_mode(self, now: float) -> None:
        if (
            self.mode == BbrMode.STARTUP
            and self._round_start
            and not self.filled_pipe
            and not self._sample_app_limited  # an app-limited round proves no plateau
        ):
            if self.btl_bw >= self._full_bw * FULL_BW_GROWTH:  # still growing
                self._full_bw = self.btl_bw
                self._full_bw_count = 0
            else:
                self._full_bw_count += 1
                if self._full_bw_count >= FULL_BW_ROUNDS:
                    self.filled_pipe = True
                    self.mode = BbrMode.DRAIN
                    self.pacing_gain = 1 / HIGH_GAIN
                    self.cwnd_gain = HIGH_GAIN
        if self.mode == BbrMode.DRAIN and self.bytes_in_flight <= self._bdp(1.0):
            self._enter_probe_bw(now)
        elif self.mode == BbrMode.PROBE_BW:
            self._advance_cycle(now)
        # PROBE_RTT: the RTT estimate was ten seconds old.
        if self.mode != BbrMode.PROBE_RTT and self._rtt_expired:
            self._save_cwnd()  # before the mode changes: this window, not an older one
            self.mode = BbrMode.PROBE_RTT
            self.pacing_gain = self.cwnd_gain = 1.0
            self._probe_rtt_done = None
        if self.mode == BbrMode.PROBE_RTT:
            self._probe_rtt(now)

    def _enter_probe_bw(self, now: float) -> None:
        self.mode = BbrMode.PROBE_BW
        self.cwnd_gain = 2.0
        # Start the cycle past the 0.75 phase: it would only drain an empty queue.
        self._cycle_index = 2
        self._cycle_stamp = now
        self.pacing_gain = PACING_GAIN_CYCLE[self._cycle_index]

    def _advance_cycle(self, now: float) -> None:
        gain = self.pacing_gain
        elapsed = now - self._cycle_stamp > self.min_rtt
        if gain > 1.0:  # probe until the extra is really in flight
            done = elapsed and self.bytes_in_flight >= self._bdp(gain)
        elif gain < 1.0:  # drain until the queue is gone, or a round passed
            done = elapsed or self.bytes_in_flight <= self._bdp(1.0)
        else:
            done = elapsed
        if done:
            self._cycle_index = (self._cycle_index + 1) % len(PACING_GAIN_CYCLE)
            self._cycle_stamp = now
            self.pacing_gain = PACING_GAIN_CYCLE[self._cycle_index]

    def _probe_rtt(self, now: float) -> None:
        if self._probe_rtt_done is None:
            if self.bytes_in_flight <= self.minimum_window:
                self._probe_rtt_done = now + PROBE_RTT_DURATION
                self._probe_rtt_round_done = False
                self._next_round_delivered = self.delivered
            return
        if self._round_start:
            self._probe_rtt_round_done = True
        if self._probe_rtt_round_done and now >= self._probe_rtt_done:
            self.min_rtt_stamp = now  # the RTT seen meanwhile is the new estimate
            self.congestion_window = max(self.congestion_window, self.prior_cwnd)
            if self.filled_pipe:
                self._enter_probe_bw(now)
            else:
                self.mode = BbrMode.STARTUP
                self.pacing_gain = self.cwnd_gain = HIGH_GAIN

    def _set_pacing_rate(self) -> None:
        if not self.btl_bw:
            return
        rate = self.pacing_gain * self.btl_bw
        # STARTUP never slows down until the pipe is full.
        if self.filled_pipe or self.pacing_rate is None or rate > self.pacing_rate:
            self.pacing_rate = rate

    def _set_cwnd(self, acked: int) -> None:
        if self.mode == BbrMode.PROBE_RTT:
            self.congestion_window = min(self.congestion_window, self.minimum_window)
            return
        cwnd = self.congestion_window
        if self.packet_conservation:  # §4.2.3.4: send no more than was delivered
            self.congestion_window = max(cwnd, self.bytes_in_flight + acked)
            return
        target = int(self._bdp(self.cwnd_gain)) + 3 * self.max_datagram_size
        if self.filled_pipe:
            cwnd = min(cwnd + acked, target)
        elif cwnd < target or self.delivered < 10 * self.max_datagram_size:
            cwnd += acked
        self.congestion_window = max(cwnd, self.minimum_window)

    @property
    def state_name(self) -> str:
        """The mode, as qlog's ``recovery:congestion_state_updated`` shows it ("startup",
        "drain", "probe_bw", "probe_rtt"). Read by the qlog tracer only."""
        return self.mode

    # Loss and the rest ------------------------------------------------------------
    def on_packets_lost(self, packets: Iterable[SentInfo], now: float) -> None:
        """The model ignores loss. A loss sent after the last recovery period began starts
        a new one: the window is saved and cut to what is in flight plus what the
        acknowledgement that revealed the loss delivered (at least a packet), in packet
        conservation for a round trip (§4.2.3.4). Losses within a period trim the window
        by what was lost. Never below four packets."""
        lost = 0
        latest_sent: float | None = None
        for p in packets:
            self.bytes_in_flight -= p.size
            lost += p.size
            self._forget(p.time_sent)
            latest_sent = p.time_sent if latest_sent is None else max(latest_sent, p.time_sent)
        if latest_sent is None:
            return
        events = self.congestion_events
        self.on_congestion_event(latest_sent, now)
        if self.congestion_events != events and self.mode != BbrMode.PROBE_RTT:
            self._save_cwnd()
            self.in_recovery = self.packet_conservation = True
            self._next_round_delivered = self.delivered  # a round starts now
            when, acked = self._last_ack
            delivered = max(acked if when == now else 0, self.max_datagram_size)
            cwnd = self.bytes_in_flight + delivered
        else:
            cwnd = self.congestion_window - lost
        self.congestion_window = max(cwnd, self.minimum_window)

    def on_congestion_event(self, sent_time: float, now: float) -> None:
        """Count a new congestion event (BBRv1 does not slow down for ECN-CE or loss)."""
        start = self.congestion_recovery_start_time
        if start is not None and sent_time <= start:
            return
        self._before_event = self.congestion_window
        self.congestion_events += 1
        self.congestion_recovery_start_time = now

    def undo_congestion_event(self) -> None:
        """The losses were reordering: give back the window they took, end the recovery."""
        if self._before_event is not None:
            self.congestion_window = max(self.congestion_window, self._before_event)
            self._before_event = None
            self.in_recovery = self.packet_conservation = False

    def on_persistent_congestion(self) -> None:
        """RFC 9002 §7.6.2: the window falls to its minimum (and stays: no recovery to
        restore it from); the model is kept."""
        self.congestion_window = self.minimum_window
        self.congestion_recovery_start_time = None
        self._before_event = None
        self.in_recovery = self.packet_conservation = False

    def on_app_limited(self, now: float) -> None:
        """The sender ran out of data at ``now``: with room in the window, what it sent
        then and sends until everything in flight is delivered is app-limited."""
        if self.bytes_in_flight >= self.congestion_window:
            return  # the window, not the application, is the limit
        self._app_limited = (self.delivered + self.bytes_in_flight) or 1
        state = self._sent_state.get(now)
        if state is not None:
            state[4] = 1.0

    def discard(self, packets: Iterable[SentInfo]) -> None:
        """Packets of a discarded packet number space leave bytes_in_flight (§6.4)."""
        for p in packets:
            self.bytes_in_flight -= p.size
            self._forget(p.time_sent)
