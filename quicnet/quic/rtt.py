"""RTT estimation (RFC 9002 §5): the latest, minimum and smoothed RTT, its variation,
and the jitter between samples, from the samples loss recovery takes on ACKs."""

from __future__ import annotations

__all__ = ["K_GRANULARITY", "K_INITIAL_RTT", "RttEstimator"]

K_GRANULARITY = 0.001  # §6.1.2 (the timer granularity; the PTO's floor of 4 * rttvar)
K_INITIAL_RTT = 0.333  # §6.2.2


class RttEstimator:
    """§5: latest, min, smoothed RTT and its variation."""

    __slots__ = (
        "first_sample",
        "jitter",
        "latest_adjusted",
        "latest_rtt",
        "min_rtt",
        "rttvar",
        "smoothed_rtt",
    )

    def __init__(self) -> None:
        #: Smoothed difference between consecutive samples less the peer's ACK delay
        #: (gain 1/16, as RFC 3550 §6.4.1's interarrival jitter).
        self.jitter = 0.0
        self.latest_adjusted = 0.0
        self.latest_rtt = 0.0
        self.min_rtt = 0.0
        self.smoothed_rtt = K_INITIAL_RTT
        self.rttvar = K_INITIAL_RTT / 2
        self.first_sample = False

    def update(
        self,
        latest_rtt: float,
        ack_delay: float,
        handshake_confirmed: bool,
        max_ack_delay: float,
    ) -> None:
        """Take an RTT sample (§5.1-5.3). The first sets every estimate; later ones update
        min_rtt, then smooth the sample less the peer's ack delay (capped at
        max_ack_delay once the handshake is confirmed; not subtracted below min_rtt)."""
        self.latest_rtt = latest_rtt
        if not self.first_sample:
            self.first_sample = True
            self.latest_adjusted = latest_rtt
            self.min_rtt = latest_rtt
            self.smoothed_rtt = latest_rtt
            self.rttvar = latest_rtt / 2
            return
        # (Conditionals, not min(): a builtin call costs several times as much per ACK.)
        # (Recovery.on_ack_received does the same in place for 1-RTT samples once the
        # handshake is confirmed: a change here goes there too.)
        if latest_rtt < self.min_rtt:
            self.min_rtt = latest_rtt
        if handshake_confirmed and ack_delay > max_ack_delay:
            ack_delay = max_ack_delay
        adjusted = latest_rtt - ack_delay if latest_rtt >= self.min_rtt + ack_delay else latest_rtt
        self.jitter += (abs(adjusted - self.latest_adjusted) - self.jitter) / 16
        self.latest_adjusted = adjusted
        self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.smoothed_rtt - adjusted)
        self.smoothed_rtt = 0.875 * self.smoothed_rtt + 0.125 * adjusted
