"""``stats()`` on both sides tells the truth about the simulated path: traffic counted as
the links carried it, RTT from the links' latency, loss from their drops, messages as the
ledger counted them."""

from __future__ import annotations

from rtsim import LinkConfig, RtSim

from quicnet.realtime import PeerStats


def test_stats_match_the_simulated_path() -> None:
    link = LinkConfig(latency=0.020, loss=0.10)
    sim = RtSim(seed=16, link=link)
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    for _ in range(150):
        for channel in (0, 1, 2, 3):
            sim.send(node, server, channel, sim.payload(300))
            sim.send(server, node, channel, sim.payload(300))
        sim.run_for(0.02)
    sim.run_until(sim.ledger.reliable_done, what="reliable messages")
    sim.run_for(0.5)
    sides: list[tuple[PeerStats, str, str]] = [
        (node.client.stats(), "c1", "server"),
        (sim.server_core.stats(node.peer), "server", "c1"),
    ]
    for stats, me, other in sides:
        out, back = sim.link(me, other), sim.link(other, me)
        assert stats.packets_out == out.stats.datagrams and stats.bytes_out == out.stats.bytes
        assert (
            stats.packets_in <= back.stats.delivered
            and stats.bytes_in <= back.stats.delivered_bytes
        )
        assert stats.packets_in >= 0.95 * back.stats.delivered  # all authenticated, so nearly all
        # 40 ms there and back; a sample may include the peer's ACK delay (25 ms at most).
        assert 0.0399 <= stats.min_rtt <= stats.rtt <= 0.040 + 0.025 + 0.005
        assert 0.0399 <= stats.latest_rtt <= 0.040 + 0.025 + 0.005
        assert 0 <= stats.jitter <= 0.025
        # The path dropped 10%: the sender declared about that many lost (some later ACKs
        # show a packet arrived after all; a lost ACK can hide one).
        assert 0.05 <= stats.loss <= 0.15, stats.loss
        assert stats.packets_lost > 0 and stats.cwnd > 0 and stats.bytes_in_flight >= 0
        sent = sum(len(f.sent) for (src, _, _), f in sim.ledger.flows.items() if src == me)
        got = sum(len(f.received) for (_, dst, _), f in sim.ledger.flows.items() if dst == me)
        assert stats.messages_out == sent == 600 and stats.messages_in == got
        assert stats.key_updates == 0 and stats.migrations == 0
