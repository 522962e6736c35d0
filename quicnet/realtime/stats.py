"""A peer's figures, as ``Server.stats(peer)`` and ``Client.stats()`` report them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quicnet.realtime.session import Session

__all__ = ["PeerStats", "peer_stats"]


@dataclass(frozen=True, slots=True)
class PeerStats:
    """One session's figures at one moment; times in seconds, sizes in bytes.

    ``rtt`` is QUIC's smoothed RTT (RFC 9002 §5.3), ``jitter`` the smoothed
    difference between consecutive RTT samples, ``loss`` the fraction of
    packets sent that were declared lost. Bytes and packets are UDP datagrams
    in and out; messages are the application's.
    """

    rtt: float
    min_rtt: float
    latest_rtt: float
    jitter: float
    loss: float
    bytes_in: int
    bytes_out: int
    packets_in: int
    packets_out: int
    packets_lost: int
    messages_in: int
    messages_out: int
    cwnd: int
    bytes_in_flight: int
    key_updates: int
    migrations: int


def peer_stats(session: Session) -> PeerStats:
    """The figures of ``session`` now."""
    s = session.connection.stats()
    return PeerStats(
        rtt=s.smoothed_rtt,
        min_rtt=s.min_rtt,
        latest_rtt=s.latest_rtt,
        jitter=s.jitter,
        loss=s.loss,
        bytes_in=s.bytes_received,
        bytes_out=s.bytes_sent,
        packets_in=s.datagrams_received,
        packets_out=s.datagrams_sent,
        packets_lost=s.packets_lost,
        messages_in=session.messages_received,
        messages_out=session.messages_sent,
        cwnd=s.congestion_window,
        bytes_in_flight=s.bytes_in_flight,
        key_updates=s.key_updates,
        migrations=s.path_migrations,
    )
