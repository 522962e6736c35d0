"""Unreliable DATAGRAM frames (RFC 9221) over the simulated network.

What must hold whatever the path does: every DatagramReceived payload is one
that was sent, each at most once, never altered; once the connection is
quiet, DatagramAcknowledged and DatagramLost account for every sent id
exactly once; and an acknowledged datagram really was received.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from adversary import seal_one_rtt
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.quic import (
    ConnectionState,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    QuicConnection,
    QuicUsageError,
    TransportErrorCode,
)
from quicnet.quic.buffer import encode_varint


class _Sender:
    """Sends numbered datagrams from one side and checks the accounting afterwards."""

    def __init__(self, conn: QuicConnection, seed: int, tag: bytes) -> None:
        self.conn = conn
        self.rng = random.Random(f"datagrams/{seed}/{tag!r}")
        self.tag = tag
        self.sent: dict[int, bytes] = {}  # datagram id -> payload

    def send(self, count: int) -> None:
        limit = self.conn.max_datagram_size
        assert limit is not None
        for _ in range(count):
            size = min(self.rng.choice([8, 9, 100, 500, limit]), limit)
            body = self.tag + len(self.sent).to_bytes(4, "big")
            payload = body + self.rng.randbytes(size - len(body))
            datagram_id = self.conn.send_datagram(payload)
            assert datagram_id not in self.sent
            self.sent[datagram_id] = payload

    def check(self, sender_events: list[object], receiver_events: list[object]) -> None:
        received = [e.data for e in receiver_events if isinstance(e, DatagramReceived)]
        mine = [d for d in received if d.startswith(self.tag)]
        payloads = set(self.sent.values())
        # Never corrupted, never invented: every payload is one that was sent ...
        assert all(d in payloads for d in mine)
        # ... and never delivered twice (a duplicated UDP datagram is one packet number).
        dupes = [d[:8] for d, n in Counter(mine).items() if n > 1]
        assert dupes == []
        acked = [e.datagram_id for e in sender_events if isinstance(e, DatagramAcknowledged)]
        lost = [e.datagram_id for e in sender_events if isinstance(e, DatagramLost)]
        counts = Counter(acked + lost)
        assert set(counts) == set(self.sent), "every sent datagram is acked or lost"
        assert max(counts.values()) == 1, "... exactly once"
        got = set(mine)
        assert all(self.sent[i] in got for i in acked), "acknowledged means received"


def test_datagrams_on_a_clean_path() -> None:
    sim = make_pair(seed=0)
    handshake(sim)
    client = sim.client.connection
    sender = _Sender(client, 0, b"C")
    for _ in range(20):
        sender.send(10)
        sim.run_for(0.05)
    sim.run_for(2.0)
    sender.check(sim.client.events, sim.server.events)
    received = [e.data for e in sim.server.events if isinstance(e, DatagramReceived)]
    # Nothing lost or reordered on this path: all arrive, in order, all acknowledged.
    assert received == list(sender.sent.values())
    assert not sim.client.events_of(DatagramLost)
    assert len(sim.client.events_of(DatagramAcknowledged)) == 200


@pytest.mark.parametrize("seed", range(4))
def test_datagrams_under_loss_duplication_reordering_and_corruption(seed: int) -> None:
    link = LinkConfig(
        latency=0.02, jitter=0.005, loss=0.15, duplicate=0.1, reorder=0.1, reorder_delay=0.02
    )
    sim = make_pair(seed=seed, c2s=link, s2c=link)
    loss = sim.c2s.config.loss
    sim.c2s.config.loss = sim.s2c.config.loss = 0.0
    handshake(sim)
    sim.c2s.config.loss = sim.s2c.config.loss = loss
    sim.c2s.config.corrupt = sim.s2c.config.corrupt = 0.03
    client = sim.client.connection
    server = sim.server.connection
    up, down = _Sender(client, seed, b"C"), _Sender(server, seed, b"S")
    # Some stream data shares the packets, so datagram frames ride along with STREAM frames.
    send_on_new_streams(client, payloads(seed, [100_000]))
    for _ in range(40):
        up.send(6)
        down.send(4)
        sim.run_for(0.05)
    sim.run_for(10.0)  # quiet: every packet is acked or declared lost by now
    assert client.state == server.state == ConnectionState.CONNECTED
    up.check(sim.client.events, sim.server.events)
    down.check(sim.server.events, sim.client.events)
    assert sim.client.events_of(DatagramLost), "with 15% loss some datagrams are lost"
    assert sim.c2s.stats.duplicated and sim.c2s.stats.corrupted


def test_a_burst_larger_than_the_congestion_window() -> None:
    sim = make_pair(seed=5, c2s=LinkConfig(loss=0.05), s2c=LinkConfig())
    handshake(sim)
    client = sim.client.connection
    sender = _Sender(client, 5, b"B")
    sender.send(600)  # ~300 kB at once: queued, paced out over many round trips
    sim.run_for(20.0)
    sender.check(sim.client.events, sim.server.events)
    received = sum(1 for e in sim.server.events if isinstance(e, DatagramReceived))
    assert received >= 500


def test_datagram_size_limit() -> None:
    sim = make_pair(seed=6)
    handshake(sim)
    client = sim.client.connection
    limit = client.max_datagram_size
    assert limit is not None and limit >= 1000
    with pytest.raises(QuicUsageError):
        client.send_datagram(bytes(limit + 1))
    client.send_datagram(bytes(limit))
    client.send_datagram(b"")
    sim.run_for(0.5)
    assert [len(e.data) for e in sim.server.events_of(DatagramReceived)] == [limit, 0]


def test_datagrams_not_negotiated() -> None:
    sim = make_pair(seed=7, server={"max_datagram_frame_size": None})
    handshake(sim)
    client = sim.client.connection
    assert client.max_datagram_size is None
    with pytest.raises(QuicUsageError):
        client.send_datagram(b"nope")


def test_small_max_datagram_frame_size_with_other_frames_in_the_packet() -> None:
    sim = make_pair(seed=8, server={"max_datagram_frame_size": 200})
    handshake(sim)
    client = sim.client.connection
    assert client.max_datagram_size == 197
    send_on_new_streams(client, payloads(8, [50_000]))
    sender = _Sender(client, 8, b"D")
    sender.send(5)
    sim.run_for(1.0)
    assert client.state == ConnectionState.CONNECTED
    sender.check(sim.client.events, sim.server.events)


@pytest.mark.parametrize("over", [0, 1])
def test_max_datagram_frame_size_counts_the_whole_frame(over: int) -> None:
    """RFC 9221 §3: type, length and payload together within the peer's limit."""
    sim = make_pair(seed=7, server={"max_datagram_frame_size": 100})
    handshake(sim)
    client = sim.client.connection
    payload = bytes(100 - 3 + over)  # 0x31, a two-byte length, the payload
    frame = b"\x31" + encode_varint(len(payload)) + payload
    # A DATAGRAM sealed with the client's keys, not sent by its application; one too big.
    sim.waive("delivery", reason="the DATAGRAM is sealed by hand")
    sim.waive("protocol errors", reason="a DATAGRAM over the limit is a protocol violation")
    sim.inject(seal_one_rtt(client, frame), CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.1)
    server = sim.server.connection
    if over:
        assert server.termination is not None
        assert server.termination.error_code == TransportErrorCode.PROTOCOL_VIOLATION
    else:
        assert [e.data for e in sim.server.events_of(DatagramReceived)] == [payload]
