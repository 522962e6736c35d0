"""The API's refusals: too large, unknown peer, undefined channel, ended session; and a
custom channel table on both sides.

A refused ``send`` raises before anything is queued: the next flush carries
no datagram and the ledger never learns of the message.
"""

from __future__ import annotations

import pytest
from rtsim import RtNode, RtSim

from quicnet.realtime import (
    Delivery,
    Disconnected,
    DisconnectReason,
    MessageTooLargeError,
    NotConnectedError,
    RealtimeUsageError,
    Settings,
    UnknownChannelError,
    UnknownPeerError,
)

LIMITS = Settings(max_message_size=10_000, max_unreliable_message_size=3000)


def _sim(settings: Settings = LIMITS) -> tuple[RtSim, RtNode]:
    sim = RtSim(seed=9, settings=settings)
    node = sim.add_client()
    sim.connect_all()
    sim.run_for(1.0)  # handshake done and acknowledged: the wire is quiet
    return sim, node


def _quiet(sim: RtSim) -> bool:
    """Nothing to send right now, on either side."""
    return all(not n.core.datagrams_to_send(sim.now) for n in sim.nodes.values())


@pytest.mark.parametrize(
    ("channel", "size"),
    [(0, 10_001), (2, 10_001), (1, 3001), (3, 3001), (0, 1 << 20), (1, 60_000)],
)
def test_a_message_over_the_limit_raises_at_send_and_nothing_is_sent(
    channel: int, size: int
) -> None:
    sim, node = _sim()
    server = sim.server
    assert server is not None and _quiet(sim)
    limit = 3000 if channel in (1, 3) else 10_000
    with pytest.raises(MessageTooLargeError, match=f"the limit is {limit}"):
        node.client.send(channel, bytes(size))
    with pytest.raises(MessageTooLargeError, match=f"{size} bytes on channel {channel}"):
        server.core.send(node.peer, channel, bytes(size))  # type: ignore[union-attr]
    assert _quiet(sim)
    assert node.client.stats().messages_out == 0
    # At the limit it goes, both ways.
    sim.send(node, server, channel, sim.payload(limit))
    sim.send(server, node, channel, sim.payload(limit))
    sim.run_for(1.0)
    assert sim.ledger.flow("c1", "server", channel).received == [0]
    assert sim.ledger.flow("server", "c1", channel).received == [0]


def test_sending_to_an_unknown_or_departed_peer_raises_unknown_peer() -> None:
    sim, node = _sim()
    core = sim.server_core
    with pytest.raises(UnknownPeerError, match="no connected peer 99"):
        core.send(99, 0, b"x")
    with pytest.raises(UnknownPeerError):
        core.stats(99)
    with pytest.raises(UnknownPeerError):
        core.disconnect(99)
    peer = node.peer
    node.client.close("bye")
    sim.run_for(1.0)
    with pytest.raises(UnknownPeerError, match=f"no connected peer {peer}"):
        core.send(peer, 0, b"x")
    with pytest.raises(UnknownPeerError):
        core.disconnect(peer)
    assert core.stats(peer).messages_in == 0  # its last figures stay readable
    assert isinstance(UnknownPeerError("x"), KeyError) and str(UnknownPeerError("x")) == "x"


def test_an_undefined_channel_raises_on_either_side() -> None:
    sim, node = _sim()
    with pytest.raises(UnknownChannelError, match="channel 4 is not defined"):
        node.client.send(4, b"x")
    with pytest.raises(UnknownChannelError, match="channel 200 is not defined"):
        sim.server_core.send(node.peer, 200, b"x")
    with pytest.raises(UnknownChannelError):
        sim.server_core.broadcast(9, b"x")
    assert _quiet(sim)


def test_sending_on_an_ended_session_raises_not_connected() -> None:
    sim, node = _sim()
    node.client.close()
    with pytest.raises(NotConnectedError, match="ended"):
        node.client.send(0, b"late")
    sim.flush()
    assert node.of(Disconnected) == [Disconnected(0, DisconnectReason.CLOSED, "closed")]


def test_custom_channel_tables_on_both_sides() -> None:
    channels = {
        5: Delivery.SEQUENCED,
        9: Delivery.RELIABLE_ORDERED,
        17: Delivery.RELIABLE_ORDERED,
        200: Delivery.UNRELIABLE,
        255: Delivery.RELIABLE_UNORDERED,
    }
    sim, node = _sim(Settings(channels=channels))
    server = sim.server
    assert server is not None
    for _ in range(5):
        for channel in channels:
            sim.send(node, server, channel, sim.payload(2000))
            sim.send(server, node, channel, sim.payload(2000))
    sim.run_until(sim.ledger.reliable_done, what="reliable messages")
    sim.run_for(0.5)
    for src, dst in (("c1", "server"), ("server", "c1")):
        for channel in channels:
            assert sorted(sim.ledger.flow(src, dst, channel).received) == [0, 1, 2, 3, 4]
    with pytest.raises(UnknownChannelError):
        node.client.send(0, b"the default table's channel 0 is not in this one")


def test_a_client_with_another_channel_table_is_refused() -> None:
    sim = RtSim(seed=2)
    node = sim.add_client(settings=Settings(channels={0: Delivery.RELIABLE_ORDERED}))
    sim.run_until(lambda: sim.ended(node), what="refusal")
    assert node.of(Disconnected) == [
        Disconnected(0, DisconnectReason.REFUSED, "the channel tables differ")
    ]
    assert sim.server_core.peers == []


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(RealtimeUsageError, match="at least one channel"):
        Settings(channels={})
    with pytest.raises(RealtimeUsageError, match="not an integer 0-255"):
        Settings(channels={256: Delivery.UNRELIABLE})
    with pytest.raises(RealtimeUsageError, match="not a Delivery mode"):
        Settings(channels={1: 1})  # type: ignore[dict-item]
    with pytest.raises(RealtimeUsageError, match="positive"):
        Settings(max_message_size=0)
    with pytest.raises(RealtimeUsageError, match="idle_timeout"):
        Settings(idle_timeout=0)
