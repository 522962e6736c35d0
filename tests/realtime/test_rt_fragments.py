"""Fragmented unreliable messages end to end: all or nothing, and bounded reassembly.

Fragments are written straight through the client's QUIC connection (as a
peer could), so a test chooses exactly which ones the server sees.
"""

from __future__ import annotations

from rtsim import RtNode, RtSim
from simnet import deep_size

from quicnet.realtime import Settings
from quicnet.realtime.fragments import fragment

MAX = 8000
SETTINGS = Settings(max_unreliable_message_size=MAX, max_partial_messages=4, reassembly_timeout=1.0)


def _sim() -> tuple[RtSim, RtNode]:
    sim = RtSim(seed=3, settings=SETTINGS)
    node = sim.add_client()
    sim.connect_all()
    return sim, node


def _pieces(node: RtNode, message_id: int, data: bytes, channel: int = 1) -> list[bytes]:
    room = node.client.connection.max_datagram_size
    assert room is not None
    return fragment(channel, None, message_id, data, room)


def _send_raw(
    sim: RtSim, node: RtNode, pieces: list[bytes], *, record: bytes | None = None
) -> None:
    """Write datagrams through the QUIC connection; ``record`` is the message they make up,
    for the ledger (a message not recorded must never be delivered)."""
    for piece in pieces:
        node.client.connection.send_datagram(piece)
    if record is not None:
        assert sim.server is not None
        sim.ledger.record(node.name, "server", 1, SETTINGS.channels[1], record)
    sim.flush()


def _delivered(sim: RtSim, node: RtNode) -> list[bytes]:
    flow = sim.ledger.flows.get((node.name, "server", 1))
    return [] if flow is None else [flow.sent[i] for i in flow.received]


def test_a_message_missing_one_fragment_is_dropped_whole() -> None:
    sim, node = _sim()
    whole = sim.payload(5000)
    pieces = _pieces(node, 1000, whole)
    assert len(pieces) >= 4
    _send_raw(sim, node, pieces[:2] + pieces[3:], record=whole)  # all but the third
    complete = sim.payload(5000)
    _send_raw(sim, node, _pieces(node, 1001, complete), record=complete)
    sim.run_for(0.5)
    # The complete message arrived; of the other nothing, not even its parts (the ledger
    # fails the run on any payload that was not sent as a message).
    assert _delivered(sim, node) == [complete]
    assert sim.server_core.peers == [node.peer]  # a loss is not an offence


def test_a_fragment_later_than_the_reassembly_timeout_completes_nothing() -> None:
    sim, node = _sim()
    in_time, too_late = sim.payload(3000), sim.payload(3000)
    a, b = _pieces(node, 7, in_time), _pieces(node, 8, too_late)
    _send_raw(sim, node, a[:-1], record=in_time)
    _send_raw(sim, node, b[:-1], record=too_late)
    sim.run_for(SETTINGS.reassembly_timeout / 2)
    _send_raw(sim, node, a[-1:])
    sim.run_for(SETTINGS.reassembly_timeout)  # b's first fragments are now too old
    _send_raw(sim, node, b[-1:])
    sim.run_for(0.5)
    assert _delivered(sim, node) == [in_time]


def test_reassembly_memory_is_bounded_under_a_flood_of_partial_messages() -> None:
    sim, node = _sim()
    server = sim.server
    assert server is not None

    def held() -> int:
        return deep_size(server.core)

    _send_raw(sim, node, _pieces(node, 1, sim.payload(MAX))[:-1])  # warm up every structure
    sim.run_for(0.2)
    before = held()
    for message_id in range(2, 202):  # 200 messages of MAX bytes, none complete
        _send_raw(sim, node, _pieces(node, message_id, sim.payload(MAX))[:-1])
        sim.run_for(0.005)
    sim.run_for(0.2)
    growth = held() - before
    # Unbounded, that would be 200 * ~7 KB held; the bound is max_partial_messages messages.
    assert growth < SETTINGS.max_partial_messages * MAX + 64_000, growth
    # The flood cost the sender only its own messages: a complete one still arrives.
    complete = sim.payload(MAX)
    _send_raw(sim, node, _pieces(node, 500, complete), record=complete)
    sim.run_for(0.5)
    assert _delivered(sim, node) == [complete]
    assert server.core.stats(node.peer).messages_in == 1


def test_fragmented_messages_on_both_unreliable_modes_up_to_the_limit() -> None:
    sim, node = _sim()
    server = sim.server
    assert server is not None
    for channel in (1, 3):
        for size in (1100, 1500, 4000, MAX):
            sim.send(node, server, channel, sim.payload(size))
            sim.send(server, node, channel, sim.payload(size))
            sim.run_for(0.05)
    sim.run_for(0.5)
    for src, dst in (("c1", "server"), ("server", "c1")):
        for channel in (1, 3):
            flow = sim.ledger.flow(src, dst, channel)
            assert sorted(flow.received) == [0, 1, 2, 3]  # a clean path loses none


def test_sizes_around_the_datagram_boundaries_arrive_whole() -> None:
    """Every size near one datagram's room and near each fragment boundary, on both
    unreliable modes and both ways, arrives intact (the ledger checks every byte)."""
    sim, node = _sim()
    server = sim.server
    assert server is not None
    room = node.client.connection.max_datagram_size
    assert room is not None
    sizes = sorted(
        {room + d for d in range(-12, 13)} | {k * (room - 8) + d for k in (2, 3) for d in (-3, 3)}
    )
    for channel in (1, 3):
        for size in sizes:
            sim.send(node, server, channel, sim.payload(size))
            sim.send(server, node, channel, sim.payload(size))
            sim.run_for(0.01)
    sim.run_for(0.5)
    for src, dst in (("c1", "server"), ("server", "c1")):
        for channel in (1, 3):
            assert sim.ledger.flow(src, dst, channel).received == list(range(len(sizes)))


def test_the_default_unreliable_limit_of_64_kib_arrives_whole_on_a_clean_path() -> None:
    sim = RtSim(seed=20)
    server = sim.server
    assert server is not None
    node = sim.add_client()
    sim.connect_all()
    limit = Settings().max_unreliable_message_size
    assert limit == 64 << 10
    for channel in (1, 3):
        sim.send(node, server, channel, sim.payload(limit))
        sim.send(server, node, channel, sim.payload(limit))
        sim.run_for(0.5)
    for src, dst in (("c1", "server"), ("server", "c1")):
        for channel in (1, 3):
            assert sim.ledger.flow(src, dst, channel).received == [0]
