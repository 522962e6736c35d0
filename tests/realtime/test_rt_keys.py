"""Key rotation mid-stream: hundreds of QUIC key updates (RFC 9001 §6) lose and reorder
nothing, on a lossy path, in both directions."""

from __future__ import annotations

from rtsim import RtSim, lossy

from quicnet.realtime import Settings


def test_hundreds_of_key_updates_lose_no_reliable_message() -> None:
    settings = Settings(key_update_packets=10)
    sim = RtSim(seed=21, settings=settings, link=lossy(0.05, latency=0.005))
    node = sim.add_client()
    sim.connect_all()
    server = sim.server
    assert server is not None
    for i in range(1200):
        sim.send(node, server, i % 2 * 2, sim.payload(300 + i % 7 * 400))
        sim.send(server, node, 2 - i % 2 * 2, sim.payload(200 + i % 5 * 500))
        sim.send(node, server, 1, sim.payload(100))
        sim.run_for(0.005)
    sim.run_until(sim.ledger.reliable_done, timeout=60, what="every reliable message")
    sim.ledger.check_complete()
    client_updates = node.client.stats().key_updates
    server_updates = sim.server_core.stats(node.peer).key_updates
    assert client_updates >= 200 and server_updates >= 200, (client_updates, server_updates)
    for src, dst in (("c1", "server"), ("server", "c1")):
        flow = sim.ledger.flow(src, dst, 0)
        assert flow.received == list(range(len(flow.sent))) and len(flow.sent) == 600
    assert node.client.connected and sim.server_core.peers == [node.peer]
