"""A client whose packets start coming from another address (NAT rebinding) keeps its
session: the server reports PeerMigrated(old, new) once per move and messages keep
flowing both ways, on a lossy path."""

from __future__ import annotations

from rtsim import RtNode, RtSim, lossy

from quicnet.realtime import PeerMigrated


def _play(sim: RtSim, node: RtNode, ticks: int) -> None:
    server = sim.server
    assert server is not None
    for _ in range(ticks):
        for channel in (0, 1, 2, 3):
            sim.send(node, server, channel, sim.payload(200 + 500 * channel))
            sim.send(server, node, channel, sim.payload(100 + 400 * channel))
        sim.run_for(0.02)


def test_rebinding_reports_peer_migrated_and_messages_keep_flowing() -> None:
    # A lost PATH_CHALLENGE on the new path is sent again only after ~1 s (a new address
    # starts a fresh RTT estimate, RFC 9000 §9.4, and §8.2.1 paces challenges like
    # Initials): the test waits for the server to validate each move, whatever the loss.
    sim = RtSim(seed=12, link=lossy(0.05))
    node = sim.add_client()
    other = sim.add_client()  # a bystander, never moved
    sim.connect_all()
    peer = node.peer
    first = node.address
    _play(sim, node, 20)
    moves = [("10.200.0.1", 50001), ("10.200.0.9", 61000)]
    old = first
    for count, new in enumerate(moves, 1):
        sim.rebind(node, new)
        before = {ch: len(sim.ledger.flow("server", node.name, ch).received) for ch in (0, 2)}
        _play(sim, node, 40)
        sim.run_until(sim.ledger.reliable_done, what="reliable messages after the move")
        sim.run_until(
            lambda: len(sim.migrations()) == count,  # noqa: B023 (used in this iteration)
            what="the server validates the new address",
        )
        assert sim.migrations()[-1] == PeerMigrated(peer, old, new)
        assert sim.server_core.address_of(peer) == new
        for ch in (0, 2):  # what the server sends reaches the client at its new address
            assert len(sim.ledger.flow("server", node.name, ch).received) >= before[ch] + 40
        old = new
    sim.ledger.check_complete()
    assert [(m.old_address, m.new_address) for m in sim.migrations()] == [
        (first, moves[0]),
        (moves[0], moves[1]),
    ]
    assert sim.server_core.stats(peer).migrations == 2
    assert sorted(sim.server_core.peers) == sorted([peer, other.peer])
    assert node.client.connected


def test_a_packet_relayed_from_another_address_does_not_steal_the_session() -> None:
    """RFC 9000 §9.3.3: an attacker relays one of the client's packets from its own address
    (and the original never arrives). The server may move to it, but the address never
    proves itself, so the session returns to the client's real address; the application
    hears of no move (PeerMigrated waits for validation), and play goes on."""
    sim = RtSim(seed=19)
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    peer, home = node.peer, node.address
    attacker = ("203.0.113.66", 6666)
    up = sim.link("c1", "server")
    captured: list[bytes] = []
    up.taps.append(lambda data, now: captured.append(data))
    up.filter = lambda data, now: False  # the original is lost ...
    sim.send(node, server, 0, sim.payload(100))
    sim.flush()
    up.filter = None
    assert len(captured) == 1
    sim.inject(captured[0], attacker, sim.server.address)  # ... and relayed from elsewhere
    _play(sim, node, 100)
    sim.run_until(sim.ledger.reliable_done, what="reliable messages")
    sim.ledger.check_complete()
    assert sim.server_core.address_of(peer) == home
    migrations = sim.migrations()
    assert migrations == []
    assert node.client.connected
