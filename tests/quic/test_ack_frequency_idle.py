"""IMMEDIATE_ACK with the last packet before the sender goes idle
(draft-ietf-quic-ack-frequency-13 §8.1.1): the packet that leaves nothing queued to send
asks the peer to acknowledge at once rather than after the delay we asked for, at most
one such frame in flight."""

from __future__ import annotations

import pytest
from simnet import LinkConfig, Simulation, handshake, make_pair

from quicnet.quic import AckFrequencyRequest, AdaptiveAckFrequency, QuicConnection
from quicnet.quic.records import IDLE_IMMEDIATE_ACK

#: One way; the RTT is 20 ms. The client is asked to wait 100 ms or for 10 packets.
LATENCY = 0.01
DELAY = 0.1


def connected(
    request: object, **client: object
) -> tuple[Simulation, QuicConnection, QuicConnection]:
    sim = make_pair(
        server={"ack_frequency": request},
        client=dict(client),
        c2s=LinkConfig(latency=LATENCY),
        s2c=LinkConfig(latency=LATENCY),
        use_endpoint=False,
    )
    handshake(sim)
    sim.run_for(0.5)  # the request, its ACK, and everything settled
    client = sim.client.connection
    server = sim.server.connection
    assert server.recovery.spaces[2].ack_eliciting_in_flight == 0
    return sim, client, server


def idle_acks_in_flight(conn: QuicConnection) -> int:
    """Packets in flight that carry the idle IMMEDIATE_ACK."""
    return sum(
        any(record[0] == IDLE_IMMEDIATE_ACK for record in packet.frames)
        for packet in conn.recovery.spaces[2].sent.values()
    )


def ack_time_of_a_burst(sim: Simulation, server: QuicConnection, messages: int) -> float:
    """The server sends ``messages`` 1000-byte messages (one packet each, fewer than the
    client's threshold), then nothing: how long until the last packet is acknowledged."""
    space = server.recovery.spaces[2]
    for i in range(messages):
        server.send_datagram(bytes([i]) * 1000)
    sim.flush()
    last = space.next_packet_number - 1
    sent = sim.now
    sim.run_until(
        lambda: space.largest_acked is not None and space.largest_acked >= last,
        what="the ACK of the last packet",
    )
    return sim.now - sent


@pytest.mark.parametrize("idle_ack", [True, False])
def test_the_last_packet_before_idle_is_acknowledged_after_one_rtt(idle_ack: bool) -> None:
    """Three packets, fewer than the client's threshold, then nothing to send: with the
    IMMEDIATE_ACK the last one is acknowledged one RTT after it left; without it, after
    the RTT and the 100 ms the client was asked to wait."""
    request = AckFrequencyRequest(DELAY, 10, immediate_ack_before_idle=idle_ack)
    sim, client, server = connected(request)
    assert client.acks.max_ack_delay == DELAY and client.acks.ack_eliciting_threshold == 10
    datagrams = sim.c2s.stats.datagrams
    took = ack_time_of_a_burst(sim, server, 3)
    if idle_ack:
        assert took == pytest.approx(2 * LATENCY, abs=0.002)
    else:
        assert took == pytest.approx(2 * LATENCY + DELAY, abs=0.002)
    assert sim.c2s.stats.datagrams == datagrams + 1  # one ACK either way, only sooner


def test_at_most_one_is_in_flight() -> None:
    """Three bursts a millisecond apart each empty the queues, but only the first
    carries IMMEDIATE_ACK: the next may go once its packet is acknowledged, and then
    the next burst has one again."""
    sim, _, server = connected(AdaptiveAckFrequency())
    assert server.sender.idle_ack
    for _ in range(3):
        server.send_datagram(b"tick")
        sim.run_for(0.001)
    assert idle_acks_in_flight(server) == 1 and not server.sender.idle_ack
    sim.run_for(0.05)
    assert idle_acks_in_flight(server) == 0 and server.sender.idle_ack
    server.send_datagram(b"again")
    sim.flush()
    assert idle_acks_in_flight(server) == 1


@pytest.mark.parametrize("request_", [AckFrequencyRequest(DELAY, 10), None])
def test_a_default_fixed_request_or_none_never_sends_it(request_: object) -> None:
    """A fixed request does not by default (a game server's clients' ACKs ride on their
    inputs: test_ack_frequency.py), nor does a connection that asked nothing: the ACK
    waits for the client's delay (100 ms asked, or RFC 9000's 25 ms)."""
    sim, client, server = connected(request_)
    assert not server.sender.idle_ack
    took = ack_time_of_a_burst(sim, server, 1)
    assert took == pytest.approx(2 * LATENCY + client.acks.max_ack_delay, abs=0.002)


@pytest.mark.parametrize(("size", "idle"), [(2000, True), (4000, False)])
def test_data_held_by_flow_control_is_no_idle_period(size: int, idle: bool) -> None:
    """The stream's last packet empties the send queue either way; only when the data
    all went does it carry IMMEDIATE_ACK, not when the client's 3000-byte stream limit
    holds the rest back (the sender is not application-limited)."""
    sim, _, server = connected(AdaptiveAckFrequency(), initial_max_stream_data=3000)
    stream = server.create_stream(bidirectional=False)
    server.send_stream_data(stream, bytes(size))
    sim.flush()
    assert not server.streams.send_queue
    assert idle_acks_in_flight(server) == int(idle)
