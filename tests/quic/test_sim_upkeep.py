"""What keeps a long-lived connection healthy and observable, on the simulated network:
keepalive PINGs, key updates by packet count and by time, the connection's
figures (``stats()``) and the event that says the peer's address changed.
"""

from __future__ import annotations

import pytest
from simnet import (
    LinkConfig,
    StreamCollector,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    DatagramReceived,
    PeerAddressChanged,
    QuicConfiguration,
    QuicUsageError,
    StreamDataReceived,
)


def _echo_streams(node, conn, event) -> None:  # type: ignore[no-untyped-def]
    if isinstance(event, StreamDataReceived):
        conn.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)


# Keepalive --------------------------------------------------------------------------------


def test_an_idle_connection_with_keepalive_outlives_the_idle_timeout() -> None:
    sim = make_pair(
        seed=30,
        client={"idle_timeout": 2.0, "keepalive_interval": 0.5},
        server={"idle_timeout": 2.0},
    )
    handshake(sim)
    sent_before = sim.client.connection.stats().packets_sent
    sim.run_for(20.0)  # ten idle timeouts without a byte from the application
    client = sim.client.connection
    assert client.state == ConnectionState.CONNECTED
    assert not sim.client.events_of(ConnectionTerminated)
    assert not sim.server.events_of(ConnectionTerminated)
    # A PING about every half second (each acknowledged before the next).
    assert 30 <= client.stats().packets_sent - sent_before <= 45


def test_without_keepalive_the_same_connection_idles_out() -> None:
    sim = make_pair(seed=30, client={"idle_timeout": 2.0}, server={"idle_timeout": 2.0})
    handshake(sim)
    sim.run_for(20.0)
    [ended] = sim.client.events_of(ConnectionTerminated)
    assert "idle" in ended.reason


def test_keepalive_waits_while_data_flows() -> None:
    """No PINGs are added to a connection that sends anyway."""
    sim = make_pair(seed=31, client={"keepalive_interval": 0.05})
    handshake(sim)
    client = sim.client.connection
    for _ in range(40):
        client.send_datagram(b"x" * 32)
        sim.run_for(0.02)
    received = len(sim.server.events_of(DatagramReceived))
    # Every ack-eliciting packet carried a datagram: nothing but ACKs beside them (and
    # the PMTU probes, which are not keepalives).
    assert received == 40
    path = client.paths.current
    assert path is not None
    probes = path.pmtu.probes_acked + path.pmtu.probes_lost + (path.pmtu.outstanding > 0)
    assert client.stats().packets_sent - probes <= 40 + 3  # + the handshake's in-flight


# Key updates --------------------------------------------------------------------------------


def test_key_updates_by_packet_count_leave_a_transfer_intact() -> None:
    sim = make_pair(
        seed=32,
        client={"key_update_packets": 40},
        server={"key_update_packets": 40},
        c2s=LinkConfig(loss=0.05),
        s2c=LinkConfig(loss=0.05),
    )
    sim.server.on_event = _echo_streams
    back = StreamCollector()
    sim.client.on_event = back
    handshake(sim)
    sent = send_on_new_streams(sim.client.connection, payloads(32, [300_000, 100_000]))
    sim.run_until(lambda: back.complete(sent), timeout=120.0, what="echo")
    for stream_id, data in sent.items():
        assert bytes(back.data[stream_id]) == data
    client = sim.client.connection
    assert client.key_updates >= 6
    assert client.stats().key_updates == client.key_updates


def test_key_updates_by_time() -> None:
    sim = make_pair(seed=33, client={"key_update_interval": 0.5})
    handshake(sim)
    client = sim.client.connection
    for _ in range(100):  # five seconds of 20 datagrams a second
        client.send_datagram(b"tick")
        sim.run_for(0.05)
    assert len(sim.server.events_of(DatagramReceived)) == 100
    # One phase per half second, each begun only once the last was acknowledged.
    assert 6 <= client.key_updates <= 10
    server = sim.server.connection
    assert server.recv_key_phase == client.key_phase


@pytest.mark.parametrize(
    "settings",
    [
        {"keepalive_interval": 0.0},
        {"keepalive_interval": -1.0},
        {"key_update_interval": 0},
        {"key_update_packets": 0},
    ],
)
def test_nonsense_upkeep_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(QuicUsageError):
        QuicConfiguration(**settings)  # type: ignore[arg-type]


# Figures ------------------------------------------------------------------------------------


def test_stats_count_what_went_each_way() -> None:
    sim = make_pair(seed=34)
    handshake(sim)
    client = sim.client.connection
    for _ in range(50):
        client.send_datagram(bytes(100))
    sim.run_for(1.0)
    server = sim.server.connection
    c, s = client.stats(), server.stats()
    # A lossless link: what one side sent, the other received, datagram for datagram.
    assert c.datagrams_sent == s.datagrams_received
    assert s.datagrams_sent == c.datagrams_received
    assert c.bytes_sent == s.bytes_received and s.bytes_sent == c.bytes_received
    assert c.bytes_sent > 50 * 100
    assert c.packets_lost == 0 and c.loss == 0.0
    # 20 ms each way: the RTT estimates sit at 40 ms plus at most the ACK delay.
    assert 0.040 <= c.min_rtt <= c.smoothed_rtt <= 0.040 + 0.026
    assert c.jitter >= 0.0 and c.congestion_window > 0


def test_stats_see_loss_and_jitter() -> None:
    link = LinkConfig(loss=0.1, jitter=0.01)
    sim = make_pair(seed=35, c2s=link, s2c=LinkConfig(loss=0.1, jitter=0.01))
    handshake(sim, timeout=120.0)
    client = sim.client.connection
    for _ in range(300):
        client.send_datagram(bytes(200))
        sim.run_for(0.01)
    sim.run_for(1.0)
    c = client.stats()
    assert c.packets_lost > 0
    assert 0.03 < c.loss < 0.25
    assert c.jitter > 0.0


# Migration ------------------------------------------------------------------------------------


def test_a_nat_rebinding_tells_the_server_the_old_and_the_new_address() -> None:
    sim = make_pair(seed=36)
    sim.server.on_event = _echo_streams
    back = StreamCollector()
    sim.client.on_event = back
    handshake(sim)
    first = send_on_new_streams(sim.client.connection, [b"before"])
    sim.run_until(lambda: back.complete(first), what="echo before")
    old = sim.server.connection.peer_address
    assert old is not None
    sim.rebind_client(("10.0.0.77", 61000))
    sent = send_on_new_streams(sim.client.connection, [b"after"])
    sim.run_until(lambda: back.complete(sent), what="echo after")
    [changed] = sim.server.events_of(PeerAddressChanged)
    assert changed.old_address == old
    assert changed.new_address[:2] == ("10.0.0.77", 61000)
    assert sim.server.connection.stats().path_migrations == 1
    assert not sim.client.events_of(PeerAddressChanged)
