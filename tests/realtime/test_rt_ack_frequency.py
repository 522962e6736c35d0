"""``Settings.client_ack_delay``: a real-time server asks its clients to hold their ACKs
(draft-ietf-quic-ack-frequency), so a client that sends every tick carries them on its
messages instead of sending ACK-only datagrams."""

from __future__ import annotations

import pytest
from rtsim import RtSim
from simnet import LinkConfig

from quicnet.realtime import Settings
from quicnet.realtime.errors import RealtimeUsageError

TICK = 1 / 30


def _client_datagrams_over_a_second(settings: Settings) -> tuple[int, float]:
    """30 ticks: the client sends a 100-byte input, the server a 300-byte snapshot;
    returns the datagrams the client sent and its connection's ACK delay."""
    sim = RtSim(seed=3, settings=settings, link=LinkConfig(latency=0.005))
    node = sim.add_client()
    sim.connect_all()
    server = sim.server
    assert server is not None
    sim.run_for(0.2)
    link = sim.link(node.name, "server")
    before = link.stats.datagrams
    for _ in range(30):
        sim.send(node, server, 1, sim.payload(100))
        sim.send(server, node, 1, sim.payload(300))
        sim.run_for(TICK)
    return link.stats.datagrams - before, node.client.connection.acks.max_ack_delay


def test_client_ack_delay_halves_what_a_ticking_client_sends() -> None:
    sent, delay = _client_datagrams_over_a_second(Settings())
    assert delay == 0.025 and sent >= 55  # an input and an ACK-only datagram per tick
    sent, delay = _client_datagrams_over_a_second(Settings(client_ack_delay=0.05))
    assert delay == 0.05 and sent <= 31  # the inputs, each with its ACK


@pytest.mark.parametrize("value", [0.0, -1.0, 16.384])
def test_client_ack_delay_is_checked(value: float) -> None:
    with pytest.raises(RealtimeUsageError):
        Settings(client_ack_delay=value)
