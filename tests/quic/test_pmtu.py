"""Path MTU discovery (DPLPMTUD, RFC 8899 as RFC 9000 §14.3 profiles it; issue 10).

The search state machine alone, then two endpoints in the simulation over
links with an MTU (a datagram above it is dropped, as a router drops a DF
packet), then the UDP driver on loopback.
"""

from __future__ import annotations

import errno
import socket
import sys
import time

import pytest
from simnet import (
    CLIENT_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    handshake,
    identity,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.io.udp import (
    LOOPBACK_MAX_UDP_PAYLOAD,
    DatagramSender,
    UdpClient,
    UdpServer,
    loopback_configuration,
    open_udp_socket,
)
from quicnet.quic import (
    DatagramReceived,
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    StreamDataReceived,
)
from quicnet.quic.errors import QuicUsageError
from quicnet.quic.pmtu import (
    BASE_PLPMTU,
    MAX_PROBES,
    PMTU_RAISE_TIMER,
    SEARCH_GRANULARITY,
    PathMtu,
    PmtuState,
)

# The search alone ---------------------------------------------------------------------------


def _search(pmtu: PathMtu, passes: int, ceiling: int = 1452, now: float = 0.0) -> list[int]:
    """Run the search against a path carrying ``passes`` bytes: the sizes probed, in order."""
    sizes = []
    while (probe := pmtu.next_probe(ceiling, now)) is not None:
        probe_id, size = probe
        sizes.append(size)
        if size <= passes:
            pmtu.on_probe_acked(probe_id, size)
        else:
            pmtu.on_probe_lost(probe_id, size)
        assert len(sizes) < 100
    return sizes


def test_one_optimistic_probe_at_the_ceiling_ends_the_search_on_a_clean_path() -> None:
    pmtu = PathMtu()
    assert (pmtu.mtu, pmtu.state, pmtu.due_at) == (BASE_PLPMTU, PmtuState.BASE, 0.0)
    assert _search(pmtu, passes=1500, now=5.0) == [1452]
    assert (pmtu.mtu, pmtu.state) == (1452, PmtuState.SEARCH_COMPLETE)
    assert pmtu.due_at == 5.0 + PMTU_RAISE_TIMER  # RFC 8899 §5.1.1


def test_the_search_climbs_the_ladder_then_halves_the_gap_after_a_failed_size() -> None:
    """A 1280-byte path (IPv6's minimum): the ceiling once, then 1280 passes, 1350 fails
    MAX_PROBES times, and the binary search between them fails until the gap is small."""
    pmtu = PathMtu()
    sizes = _search(pmtu, passes=1280)
    assert sizes == [1452, 1280] + [1350] * MAX_PROBES + [1315] * MAX_PROBES + [1297] * 3
    assert (pmtu.mtu, pmtu.state) == (1280, PmtuState.SEARCH_COMPLETE)


@pytest.mark.parametrize("passes", [1200, 1250, 1299, 1300, 1400, 1451, 1452])
def test_the_search_settles_at_the_largest_size_that_passes(passes: int) -> None:
    pmtu = PathMtu()
    _search(pmtu, passes=passes)
    assert passes - SEARCH_GRANULARITY <= pmtu.mtu <= passes
    assert pmtu.state == PmtuState.SEARCH_COMPLETE


def test_a_larger_ceiling_climbs_to_jumbo_sizes() -> None:
    pmtu = PathMtu()
    sizes = _search(pmtu, passes=9000, ceiling=65527)
    assert sizes[0] == 65527 and 8972 in sizes
    assert 9000 - SEARCH_GRANULARITY <= pmtu.mtu <= 9000


def test_the_raise_timer_searches_again_from_the_current_size() -> None:
    pmtu = PathMtu()
    _search(pmtu, passes=1280, now=10.0)
    assert pmtu.due_at == 10.0 + PMTU_RAISE_TIMER
    # The path grew meanwhile: the optimistic probe at the ceiling finds it.
    assert _search(pmtu, passes=1500, now=10.0 + PMTU_RAISE_TIMER) == [1452]
    assert pmtu.mtu == 1452


def test_repeated_probe_timeouts_fall_back_to_the_base_and_void_probes_in_flight() -> None:
    pmtu = PathMtu()
    _search(pmtu, passes=1452)
    assert not pmtu.on_probe_timeout(1)  # one PTO is no black hole
    assert pmtu.mtu == 1452
    assert pmtu.on_probe_timeout(2)
    assert (pmtu.mtu, pmtu.state, pmtu.black_holes, pmtu.due_at) == (1200, PmtuState.BASE, 1, 0.0)
    probe = pmtu.next_probe(1452, 1.0)
    assert probe is not None and probe[1] == 1280  # up the ladder, not the ceiling again


def test_a_stale_probe_result_is_ignored() -> None:
    pmtu = PathMtu()
    probe = pmtu.next_probe(1452, 0.0)
    assert probe is not None
    pmtu.on_probe_timeout(5)  # nothing to fall back from: no effect
    pmtu.postpone()  # the congestion window had no room: that probe never went
    assert not pmtu.on_probe_acked(*probe)
    assert pmtu.mtu == BASE_PLPMTU and pmtu.due_at == 0.0


def test_large_losses_without_a_large_acknowledgement_make_a_black_hole() -> None:
    pmtu = PathMtu()
    _search(pmtu, passes=1452)
    assert not pmtu.on_large_lost(3.0)
    assert not pmtu.on_large_lost(3.0)
    assert not pmtu.on_large_lost(4.0)  # a large packet got through meanwhile: count anew
    assert not pmtu.on_large_lost(4.0)
    assert pmtu.on_large_lost(4.0)
    assert pmtu.mtu == BASE_PLPMTU and pmtu.black_holes == 1
    assert not pmtu.on_large_lost(4.0)  # at the base there is nothing larger to lose


def test_discovery_off_keeps_the_base() -> None:
    pmtu = PathMtu(enabled=False)
    assert pmtu.due_at is None and pmtu.state == PmtuState.DISABLED
    assert not pmtu.on_probe_timeout(9) and pmtu.mtu == BASE_PLPMTU


def test_max_udp_payload_size_is_checked() -> None:
    with pytest.raises(QuicUsageError, match="max_udp_payload_size"):
        QuicConfiguration(max_udp_payload_size=1199)


# In the simulation --------------------------------------------------------------------------


def _sizes(sim: Simulation, src: str) -> list[int]:
    """Every datagram ``src`` ("client" or "server") puts on the wire, by size, in order."""
    seen: list[int] = []
    server = sim.server.address

    def tap(s: tuple[str, int], d: tuple[str, int], data: bytes, now: float) -> None:
        if (s if src == "server" else d) == server:
            seen.append(len(data))

    sim.wiretaps.append(tap)
    return seen


def _transfer(sim: Simulation, size: int, seed: int, *, timeout: float = 120.0) -> None:
    """The client sends ``size`` bytes on a stream; every byte must arrive intact."""
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sent = send_on_new_streams(client, payloads(seed, [size]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), timeout=timeout, what="transfer")
    for stream_id, data in sent.items():
        assert bytes(collector.data[stream_id]) == data


def _client(sim: Simulation) -> QuicConnection:
    conn = sim.client.impl
    assert isinstance(conn, QuicConnection)
    return conn


def test_a_clean_path_grows_from_1200_to_the_configured_maximum() -> None:
    sim = make_pair(seed=101)
    sizes = _sizes(sim, "client")
    handshake(sim)
    client = _client(sim)
    assert client.stats().path_mtu == 1200
    _transfer(sim, 300_000, 101)
    assert client.stats().path_mtu == 1452
    assert client.paths.current is not None
    assert client.paths.current.pmtu.state == PmtuState.SEARCH_COMPLETE
    assert max(sizes) == 1452  # the probe
    assert sum(size > 1400 for size in sizes) > 150  # the data rides in the larger packets
    assert client.recovery.cc.max_datagram_size == 1452  # RFC 9002 §7.2
    # DATAGRAM frames keep the limit every path carries (the realtime layer fragments by it).
    assert client.max_datagram_size == 1200 - 60


def test_a_1280_byte_black_hole_settles_at_1280_and_probe_loss_is_no_congestion() -> None:
    """Datagrams above 1280 bytes vanish both ways: the search ends at 1280 exactly,
    every byte arrives, and the lost probes neither shrink the congestion window nor
    count as lost packets (RFC 8899 §3 item 7, RFC 9000 §14.4)."""
    link = LinkConfig(mtu=1280)
    sim = make_pair(seed=102, c2s=link, s2c=link)
    sizes = _sizes(sim, "client")
    handshake(sim)
    client = _client(sim)
    _transfer(sim, 1_000_000, 102)
    pmtu = client.paths.current.pmtu if client.paths.current else None
    assert pmtu is not None
    for _ in range(100):  # probes ride on traffic: keep some going until the search ends
        if pmtu.state == PmtuState.SEARCH_COMPLETE:
            break
        client.ping()
        sim.run_for(0.05)
    assert pmtu.state == PmtuState.SEARCH_COMPLETE and pmtu.mtu == 1280
    assert pmtu.probes_lost >= 3 * MAX_PROBES and sim.c2s.stats.too_big == pmtu.probes_lost
    assert max(s for s in sizes if s <= 1280) == 1280
    cc = client.recovery.cc
    assert cc.ssthresh == float("inf") and cc.congestion_recovery_start_time is None
    assert client.stats().packets_lost == 0
    assert cc.bytes_in_flight == 0 or cc.bytes_in_flight < cc.congestion_window


def test_a_window_short_of_a_full_packet_still_sends_a_smaller_one() -> None:
    """With 64 KB datagrams the window holds few full-size packets: what room is left
    (here 40,000 bytes) carries a smaller packet at once, rather than everything waiting
    for an ACK (and its delay) to make room for a full one; the window is never
    exceeded (RFC 9002 §7)."""
    big = {"max_udp_payload_size": 65487}
    sim = make_pair(seed=109, client=big, server=big)
    handshake(sim)
    client = _client(sim)
    _transfer(sim, 2_000_000, 109)
    assert client.stats().path_mtu == 65487
    cc = client.recovery.cc
    stream = client.create_stream()
    client.send_stream_data(stream, bytes(200_000))
    cc.congestion_window = cc.bytes_in_flight + 40_000
    out = client.datagrams_to_send(sim.now)
    assert len(out) == 1 and 1200 < len(out[0][0]) <= 40_000
    assert cc.bytes_in_flight <= cc.congestion_window
    assert client.datagrams_to_send(sim.now) == []  # the window is full now


def test_probing_never_holds_a_small_message_for_a_delayed_ack() -> None:
    """A game-like echo of 64-byte DATAGRAMs, application-limited: the window grows
    slowly until a 64 KB probe fits. The probe leaves room for the next message, and
    once the path is at 64 KB a small message does not wait for room for a full
    packet: no echo takes longer than the path's round trip (a wait for the peer's
    delayed ACK would add its 25 ms)."""
    big = {"max_udp_payload_size": 65487}
    sim = make_pair(seed=111, client=big, server=big)
    handshake(sim)
    client = _client(sim)

    def echo(node: object, conn: QuicConnection, event: object) -> None:
        if isinstance(event, DatagramReceived):
            conn.send_datagram(event.data)

    sim.server.on_event = echo  # type: ignore[assignment]
    echoes: list[float] = []

    def back(node: object, conn: QuicConnection, event: object) -> None:
        if isinstance(event, DatagramReceived):
            echoes.append(sim.now)

    sim.client.on_event = back  # type: ignore[assignment]
    worst = 0.0
    for i in range(1500):
        sent_at = sim.now
        client.send_datagram(i.to_bytes(4, "big") + bytes(60))
        sim.run_until(lambda i=i: len(echoes) > i, what="echo")
        worst = max(worst, echoes[i] - sent_at)
        sim.run_for(0.001)
    assert client.stats().path_mtu == 65487  # the probe did go, mid-flow
    assert worst < 2 * 0.020 + 0.005  # two one-way latencies, no ACK delay


def test_the_peers_max_udp_payload_size_bounds_the_search() -> None:
    sim = make_pair(seed=103, server={"max_udp_payload_size": 1300})
    sizes = _sizes(sim, "client")
    handshake(sim)
    _transfer(sim, 300_000, 103)
    assert _client(sim).stats().path_mtu == 1300
    assert max(sizes) == 1300


def test_without_discovery_every_datagram_stays_at_1200() -> None:
    sim = make_pair(seed=104, client={"pmtu_discovery": False}, server={"pmtu_discovery": False})
    client_sizes = _sizes(sim, "client")
    server_sizes = _sizes(sim, "server")
    handshake(sim)
    _transfer(sim, 300_000, 104)
    assert max(client_sizes + server_sizes) == 1200
    assert _client(sim).stats().path_mtu == 1200


def test_a_path_that_shrinks_mid_transfer_falls_back_and_delivers_every_byte() -> None:
    """The route shrinks to 1280 bytes with 1452-byte packets in flight: nothing of the
    current size passes any more, repeated PTOs reveal the black hole, the path falls
    back to 1200 bytes, the search finds 1280 again, and the stream completes."""
    sim = make_pair(seed=105)
    handshake(sim)
    client = _client(sim)
    sent = send_on_new_streams(client, payloads(105, [3_000_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    path = client.paths.current
    assert path is not None
    sim.run_until(lambda: path.pmtu.mtu == 1452, what="the search")
    sim.c2s.config.mtu = 1280
    sim.run_until(lambda: collector.complete(sent), timeout=120, what="transfer")
    assert bytes(collector.data[0]) == sent[0]
    assert path.pmtu.black_holes == 1 and path.pmtu.mtu == 1280
    assert sim.c2s.stats.too_big > MAX_PROBES  # data packets were lost, not only probes


def test_a_route_that_drops_only_large_packets_is_found_by_the_losses() -> None:
    """The route shrinks to 1200 bytes under a game's DATAGRAMs: each tick two 700-byte
    ones (one packet above 1200 bytes) and a 50-byte one (a small packet, which passes).
    ACKs keep coming, so no PTO fires: the loss-based detector (large packets lost, no
    large one acknowledged after them) falls back to 1200 bytes, and the 700-byte
    datagrams flow again, one per packet."""
    sim = make_pair(seed=106)
    handshake(sim)
    client = _client(sim)
    path = client.paths.current
    assert path is not None
    _transfer(sim, 300_000, 106)
    assert path.pmtu.mtu == 1452
    sim.c2s.config.mtu = 1200
    big = 0

    def count(node: object, conn: object, event: object) -> None:
        nonlocal big
        if isinstance(event, DatagramReceived) and len(event.data) == 700:
            big += 1

    sim.server.on_event = count  # type: ignore[assignment]
    for _ in range(40):
        client.send_datagram(bytes(700))
        client.send_datagram(bytes(700))
        sim.run_for(0.01)
        client.send_datagram(bytes(50))
        sim.run_for(0.01)
    assert path.pmtu.black_holes == 1 and path.pmtu.mtu == 1200
    assert client.recovery.pto_count == 0  # ACKs kept coming: the losses told
    sim.run_for(0.2)
    before = big
    for _ in range(10):
        client.send_datagram(bytes(700))
        client.send_datagram(bytes(700))
        sim.run_for(0.05)
    assert big == before + 20  # every one of them passes now


def test_a_migrated_path_starts_at_1200_and_searches_again() -> None:
    """RFC 9000 §14.3: the server's path to a client that moved (NAT rebinding) is a new
    path: its datagrams start at 1200 bytes and grow once the new path is validated."""
    sim = make_pair(seed=108)
    handshake(sim)
    client = _client(sim)
    server_sizes = _sizes(sim, "server")
    stream = client.create_stream()
    client.send_stream_data(stream, b"download")
    collector = StreamCollector()
    sim.client.on_event = collector

    def serve(size: int) -> None:
        server = sim.server.connection
        server.send_stream_data(stream, payloads(size, [size])[0])

    sim.run_until(lambda: bool(sim.server.events_of(StreamDataReceived)), what="request")
    server = sim.server.connection
    serve(300_000)
    old_path = server.paths.current
    assert old_path is not None
    sim.run_until(lambda: len(collector.data.get(stream, b"")) >= 300_000, what="first half")
    assert old_path.pmtu.mtu == 1452
    sim.rebind_client(("10.0.0.1", 50001))
    client.send_stream_data(stream, b"more")
    before = len(server_sizes)
    sim.run_until(lambda: server.peer_address == ("10.0.0.1", 50001), what="migration")
    new_path = server.paths.current
    assert new_path is not None and new_path is not old_path and new_path.pmtu.mtu == 1200
    serve(600_000)
    sim.run_until(lambda: len(collector.data.get(stream, b"")) >= 900_000, what="second half")
    assert new_path.pmtu.mtu == 1452 and server.stats().path_mtu == 1452
    after = server_sizes[before:]
    first_large = next(i for i, n in enumerate(after) if n > 1200)
    assert first_large > 0  # the new path's first datagrams were 1200 bytes at most
    assert sim.client.address != CLIENT_ADDR


# Sockets ----------------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="IP_MTU_DISCOVER is Linux's")
def test_driver_sockets_set_the_dont_fragment_bit() -> None:
    for host, level, option in (
        ("127.0.0.1", socket.IPPROTO_IP, 10),
        ("::1", socket.IPPROTO_IPV6, 23),
    ):
        try:
            sock = open_udp_socket(host, 0)
        except OSError:
            continue  # no IPv6 on this machine
        try:
            assert sock.getsockopt(level, option) == 2  # IP(V6)_PMTUDISC_DO
        finally:
            sock.close()


def test_a_datagram_too_large_to_send_is_dropped_not_raised() -> None:
    """EMSGSIZE (a probe larger than the kernel allows) is a loss, never an exception."""
    receiver = open_udp_socket("127.0.0.1", 0)
    sock = open_udp_socket("127.0.0.1", 0)
    try:
        to = receiver.getsockname()
        with pytest.raises(OSError) as info:
            sock.sendto(bytes(65600), to)
        assert info.value.errno == errno.EMSGSIZE
        sender = DatagramSender(sock)
        sender.send([(bytes(65600), to), (b"after", to)])
        sender.send([(bytes(65600), to)] * 3 + [(b"x" * 100, to)])
        assert sender.datagrams_sent == 2  # the oversize ones dropped, the rest sent
    finally:
        sock.close()
        receiver.close()


def test_loopback_raises_only_the_default_ceiling() -> None:
    default = QuicConfiguration()
    for host in ("127.0.0.1", "127.9.9.9", "::1"):
        raised = loopback_configuration(default, host)
        assert raised.max_udp_payload_size == LOOPBACK_MAX_UDP_PAYLOAD
        assert raised.ticket_keys is default.ticket_keys  # the rest is the same
    for host in ("10.0.0.1", "2001:db8::1", "localhost", "0.0.0.0"):
        assert loopback_configuration(default, host) is default
    for chosen_size in (1452, 1400):  # set explicitly: kept, even at the default's value
        chosen = QuicConfiguration(max_udp_payload_size=chosen_size)
        assert loopback_configuration(chosen, "127.0.0.1") is chosen
    assert default.max_udp_payload_size is None  # the caller's configuration is left alone
    assert default.udp_payload_limit == 1452


def test_on_loopback_the_path_grows_past_1200_bytes() -> None:
    ident = identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
        )
    )
    client = UdpClient(
        QuicConfiguration(server_name="localhost", trust_roots=[ident.trust_root]),
        server.local_address,
    )
    try:
        conn = client.connection
        body = payloads(110, [1_000_000])[0]
        received = bytearray()
        done = False
        deadline = time.monotonic() + 30
        while not done and time.monotonic() < deadline:
            for event in client.poll(0.002):
                if isinstance(event, HandshakeCompleted):
                    stream = conn.create_stream()
                    conn.send_stream_data(stream, body, end_stream=True)
            for _, event in server.poll(0.002):
                if isinstance(event, StreamDataReceived):
                    received += event.data
                    done = event.end_stream
        assert done and bytes(received) == body
        assert conn.stats().path_mtu > 1452  # loopback: beyond what Ethernet carries
        assert conn.configuration.max_udp_payload_size == LOOPBACK_MAX_UDP_PAYLOAD
    finally:
        client.close_socket()
        server.close_socket()


@pytest.mark.parametrize("peer_takes_immediate_ack", [True, False])
def test_a_probe_is_acknowledged_at_once_by_a_peer_that_takes_immediate_ack(
    peer_takes_immediate_ack: bool,
) -> None:
    """draft-ietf-quic-ack-frequency §8.3: a sender SHOULD bundle IMMEDIATE_ACK with its
    PMTU probes. The probe, alone in flight, is then acknowledged one round trip after it
    left; a peer without the extension (no min_ack_delay) gets PING and holds its ACK
    for its max_ack_delay (25 ms here) first."""
    link = LinkConfig(latency=0.02)
    server = {} if peer_takes_immediate_ack else {"min_ack_delay": None}
    sim = make_pair(seed=113, c2s=link, s2c=link, server=server)
    sent: list[float] = []

    def tap(s: tuple[str, int], d: tuple[str, int], data: bytes, now: float) -> None:
        if d == sim.server.address and len(data) > 1200:
            sent.append(now)  # the client's probe: nothing else is that large yet

    sim.wiretaps.append(tap)
    handshake(sim)
    pmtu = _client(sim).paths.current.pmtu if _client(sim).paths.current else None
    assert pmtu is not None
    sim.run_until(lambda: pmtu.mtu > 1200, timeout=5.0, what="the probe acknowledged")
    round_trip = 2 * link.latency
    waited = sim.now - sent[0]
    if peer_takes_immediate_ack:
        assert waited == pytest.approx(round_trip)
    else:
        assert waited == pytest.approx(round_trip + 0.025)
