"""What a connection has carried, and a snapshot of its path's state for metrics.

:class:`TrafficCounters` is counted as datagrams go out and authenticated ones
come in; :class:`ConnectionStats` is what ``QuicConnection.stats()`` returns:
the counters, the RTT estimates (RFC 9002 §5) with a jitter figure, losses,
the congestion window and the path MTU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = ["ConnectionStats", "TrafficCounters", "connection_stats"]


class TrafficCounters:
    """Datagrams and bytes each way, counted by the connection (UDP payload bytes)."""

    __slots__ = ("bytes_received", "bytes_sent", "datagrams_received", "datagrams_sent")

    def __init__(self) -> None:
        self.datagrams_sent = 0
        self.bytes_sent = 0
        #: Only datagrams that carried at least one authenticated packet count.
        self.datagrams_received = 0
        self.bytes_received = 0


@dataclass(frozen=True, slots=True)
class ConnectionStats:
    """A connection's figures at one moment (seconds and bytes).

    ``jitter`` is the smoothed mean difference between consecutive RTT samples
    (in the manner of RFC 3550 §6.4.1's interarrival jitter, gain 1/16);
    ``loss`` is ``packets_lost / packets_sent`` over the connection's life.
    """

    smoothed_rtt: float
    min_rtt: float
    latest_rtt: float
    rtt_variance: float
    jitter: float
    datagrams_sent: int
    datagrams_received: int
    bytes_sent: int
    bytes_received: int
    packets_sent: int
    packets_lost: int
    congestion_window: int
    bytes_in_flight: int
    key_updates: int
    path_migrations: int
    #: The largest UDP payload the current path carries (PMTU discovery, RFC 8899).
    path_mtu: int = 1200

    @property
    def loss(self) -> float:
        """The fraction of packets sent that were declared lost."""
        return self.packets_lost / self.packets_sent if self.packets_sent else 0.0


def connection_stats(c: QuicConnection) -> ConnectionStats:
    """The connection's figures now: RTT, jitter, traffic, losses, congestion window."""
    recovery = c.recovery
    rtt = recovery.rtt
    traffic = c.traffic
    return ConnectionStats(
        smoothed_rtt=rtt.smoothed_rtt,
        min_rtt=rtt.min_rtt,
        latest_rtt=rtt.latest_rtt,
        rtt_variance=rtt.rttvar,
        jitter=rtt.jitter,
        datagrams_sent=traffic.datagrams_sent,
        datagrams_received=traffic.datagrams_received,
        bytes_sent=traffic.bytes_sent,
        bytes_received=traffic.bytes_received,
        packets_sent=recovery.packets_sent,
        packets_lost=recovery.packets_lost,
        congestion_window=recovery.cc.congestion_window,
        bytes_in_flight=recovery.cc.bytes_in_flight,
        key_updates=c.keys.updates,
        path_migrations=c.paths.migrations,
        path_mtu=c.paths.current.pmtu.mtu if c.paths.current else 1200,
    )
