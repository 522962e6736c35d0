"""Each delivery mode keeps its promise on a bad network (10% loss, reordering, duplication).

The guarantees themselves are checked by ``rtsim``'s ledger on every message
of every simulated run (at most once, intact, never forged; in order for
RELIABLE_ORDERED; never older for SEQUENCED); these tests drive traffic in
both directions, with fragmented unreliable messages up to the limit and
multi-KB reliable ones, and add what only the end can tell: every reliable
message arrived.
"""

from __future__ import annotations

import pytest
from rtsim import RtSim, lossy

from quicnet.realtime import Delivery, Settings

#: Message sizes per channel: small, one datagram, several datagrams, the limit.
MAX_UNRELIABLE = 6000
SIZES = {
    0: (8, 700, 4000, 30_000),
    1: (8, 300, 1200, 3000, MAX_UNRELIABLE),
    2: (8, 900, 5000, 20_000),
    3: (9, 400, 2500, MAX_UNRELIABLE),
}


def _exchange(seed: int, clients: int, rounds: int) -> RtSim:
    settings = Settings(max_unreliable_message_size=MAX_UNRELIABLE)
    sim = RtSim(seed=seed, settings=settings, link=lossy(0.10))
    nodes = [sim.add_client() for _ in range(clients)]
    sim.connect_all()
    server = sim.server
    assert server is not None
    for r in range(rounds):
        for node in nodes:
            for channel, sizes in SIZES.items():
                size = sizes[(r + node.peer) % len(sizes)]
                sim.send(node, server, channel, sim.payload(size))
                sim.send(server, node, channel, sim.payload(sizes[-1 - r % len(sizes)]))
        sim.run_for(0.02)  # a game tick: traffic overlaps losses and retransmissions
    sim.run_until(sim.ledger.reliable_done, timeout=60, what="every reliable message")
    return sim


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_every_mode_keeps_its_promise_under_loss_reordering_and_duplication(seed: int) -> None:
    sim = _exchange(seed, clients=2, rounds=60)
    sim.ledger.check_complete()
    # The network was as bad as claimed, both ways.
    for name in ("c1", "c2"):
        for link in (sim.link(name, "server"), sim.link("server", name)):
            assert link.stats.dropped > 0.05 * link.stats.datagrams
            assert link.stats.duplicated > 0 and link.stats.reordered > 0
    # Both directions carried every mode, and the unreliable modes delivered (loss-tolerant,
    # not loss-free): whole fragmented messages up to the limit came through.
    for src, dst in (("c1", "server"), ("server", "c1"), ("c2", "server"), ("server", "c2")):
        for channel, mode in Settings().channels.items():
            flow = sim.ledger.flow(src, dst, channel)
            assert flow.mode == mode
            assert flow.received, f"{src}->{dst} ch{channel}: nothing arrived"
        for channel in (1, 3):
            flow = sim.ledger.flow(src, dst, channel)
            big = [i for i in flow.received if len(flow.sent[i]) > 1500]
            assert big, f"{src}->{dst} ch{channel}: no fragmented message arrived"
            assert len(flow.received) < len(flow.sent)  # 10% loss did cost some
    assert sim.ledger.violations == []


def test_ordered_channel_delivers_in_send_order_with_nothing_missing() -> None:
    sim = _exchange(seed=11, clients=1, rounds=30)
    for src, dst in (("c1", "server"), ("server", "c1")):
        flow = sim.ledger.flow(src, dst, 0)
        assert flow.mode == Delivery.RELIABLE_ORDERED
        assert flow.received == list(range(len(flow.sent)))
        unordered = sim.ledger.flow(src, dst, 2)
        assert sorted(unordered.received) == list(range(len(unordered.sent)))


def test_sequenced_channel_drops_what_is_older_than_delivered() -> None:
    """A burst on the sequenced channel over a reordering path: what arrives late is not
    delivered, so the delivered sequence only goes up, and some were dropped for it."""
    link = lossy(0.0)
    link.reorder = 0.3
    sim = RtSim(seed=5, link=link)
    node = sim.add_client()
    sim.connect_all()
    server = sim.server
    assert server is not None
    for _ in range(300):
        sim.send(node, server, 3, sim.payload(100))
        sim.send(server, node, 3, sim.payload(100))
        sim.run_for(0.002)
    sim.run_for(1.0)
    for src, dst in (("c1", "server"), ("server", "c1")):
        flow = sim.ledger.flow(src, dst, 3)
        assert flow.received == sorted(flow.received)
        assert 0 < len(flow.received) < len(flow.sent)  # nothing was lost: the rest was late


def test_messages_sent_before_the_handshake_wait_and_arrive_after_connected() -> None:
    """A client sends before it is connected (its messages wait for the handshake) and the
    server may see them before it admitted the client (it holds them until PeerConnected);
    the ledger and the event order checks hold both to the guarantees, on a lossy path."""
    sim = RtSim(seed=13, link=lossy(0.10))
    server = sim.server
    assert server is not None
    nodes = [sim.add_client() for _ in range(3)]
    for node in nodes:
        for i in range(40):
            sim.send(node, server, i % 4, sim.payload(100 + 90 * i))
    assert not any(n.client.connected for n in nodes)
    sim.connect_all()
    sim.run_until(sim.ledger.reliable_done, what="the early reliable messages")
    sim.run_for(1.0)
    sim.ledger.check_complete()
    for node in nodes:
        for channel in (1, 3):
            assert sim.ledger.flow(node.name, "server", channel).received  # not all dropped


def test_a_client_queues_at_most_max_pending_unreliable_messages_before_the_handshake() -> None:
    sim = RtSim(seed=14, settings=Settings(max_pending_messages=10))
    server = sim.server
    assert server is not None
    node = sim.add_client()
    for _ in range(30):
        sim.send(node, server, 1, sim.payload(50))  # unreliable: beyond 10 they are dropped
    for _ in range(30):
        sim.send(node, server, 0, sim.payload(50))  # reliable: all wait, whatever the bound
    sim.connect_all()
    sim.run_until(sim.ledger.reliable_done, what="the early reliable messages")
    sim.run_for(1.0)
    assert sim.ledger.flow("c1", "server", 1).received == list(range(10))
    assert sim.ledger.flow("c1", "server", 0).received == list(range(30))


def test_unordered_messages_wait_for_stream_credit_and_all_arrive() -> None:
    """Each RELIABLE_UNORDERED message is a stream: with the peer allowing 4 at a time, 200
    sent at once wait for credit (in order, behind the messages already waiting)."""
    sim = RtSim(seed=15, settings=Settings(max_streams=4), link=lossy(0.10))
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    for i in range(200):
        sim.send(node, server, 2, sim.payload(50 + i * 10))
        sim.send(server, node, 2, sim.payload(50 + i * 10))
        if i % 50 == 0:
            sim.send(node, server, 0, sim.payload(100))
    sim.run_until(sim.ledger.reliable_done, timeout=60, what="every unordered message")
    sim.ledger.check_complete()
    assert node.client.stats().messages_out == 204


def test_megabyte_reliable_messages_cross_a_lossy_path_both_ways() -> None:
    sim = RtSim(seed=17, link=lossy(0.10, latency=0.005))
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    for channel in (0, 2):
        sim.send(node, server, channel, sim.payload(1 << 20))
        sim.send(server, node, channel, sim.payload(1 << 20))
        sim.send(node, server, channel, sim.payload(10))  # behind the large one
    sim.run_until(sim.ledger.reliable_done, timeout=120, what="the large messages")
    sim.ledger.check_complete()
    assert sim.ledger.flow("c1", "server", 0).received == [0, 1]


def test_an_ordered_channel_whose_stream_waits_for_credit_keeps_its_order() -> None:
    """An ordered channel's first message needs a stream too: when unordered messages hold
    all the credit, it waits with them (send does not fail), and the channel's later
    messages wait behind it, so the order holds."""
    channels = {
        0: Delivery.RELIABLE_ORDERED,
        2: Delivery.RELIABLE_UNORDERED,
        4: Delivery.RELIABLE_ORDERED,
    }
    sim = RtSim(seed=18, settings=Settings(channels=channels, max_streams=4), link=lossy(0.10))
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    for burst in range(6):
        for src, dst in ((node, server), (server, node)):
            for _ in range(8):
                sim.send(src, dst, 2, sim.payload(80))
            for _ in range(5):
                sim.send(src, dst, 0 if burst % 2 else 4, sim.payload(60))
        sim.run_for(0.01 * burst)
    sim.run_until(sim.ledger.reliable_done, timeout=60, what="every reliable message")
    sim.ledger.check_complete()
    for src, dst in (("c1", "server"), ("server", "c1")):
        for channel in (0, 4):
            assert sim.ledger.flow(src, dst, channel).received == list(range(15))
