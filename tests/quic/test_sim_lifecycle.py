"""Connection lifetime on the simulated network: PTO storms, close, idle timeout,
stateless reset, Version Negotiation and what an endpoint does with strangers."""

from __future__ import annotations

import itertools
import os

import pytest
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
    server_config,
)

from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicConnection,
    QuicUsageError,
    QuicVersion,
    SessionTicketReceived,
    StreamDataReceived,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.packets import (
    PacketType,
    long_header_prefix,
    parse_version_negotiation,
)


def _endpoint(sim: Simulation) -> QuicEndpoint:
    ep = sim.server.impl
    assert isinstance(ep, QuicEndpoint)
    return ep


# PTO storms ------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["c2s", "s2c", "both"])
def test_transfer_survives_a_black_hole(direction: str) -> None:
    """Five seconds of total loss mid-transfer: PTOs back off, then the transfer completes."""
    link = LinkConfig(latency=0.02, jitter=0.003)
    sim = make_pair(seed=1, c2s=link, s2c=LinkConfig(latency=0.02, jitter=0.003))
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    client = sim.client.connection
    sent = send_on_new_streams(client, payloads(1, [1_500_000, 500_000]))
    sim.run_until(lambda: sum(map(len, collector.data.values())) > 300_000, what="progress")
    start = sim.now
    hole = (start, start + 5.0)
    if direction in ("c2s", "both"):
        sim.c2s.config.blackholes.append(hole)
    if direction in ("s2c", "both"):
        sim.s2c.config.blackholes.append(hole)
    max_pto = [0]

    def watch(sim: Simulation) -> None:
        max_pto[0] = max(max_pto[0], client.recovery.pto_count)

    sim.checks.append(watch)
    # Client datagrams sent into the hole after the first 100 ms (the window's worth of
    # packets already on the way aside): only probes.
    probes: list[float] = []
    sim.c2s.taps.append(
        lambda data, now: probes.append(now) if start + 0.1 <= now < start + 5.0 else None
    )
    sim.run_until(lambda: collector.complete(sent), timeout=120.0, what="transfer")
    for sid, data in sent.items():
        assert bytes(collector.data[sid]) == data
    assert max_pto[0] >= 3  # it really was a storm of probe timeouts
    assert sim.c2s.stats.blackholed + sim.s2c.stats.blackholed >= 3
    # ... and the probes back off exponentially: a few per PTO, not hundreds, in five seconds.
    assert 2 <= len(probes) <= 2 * (max_pto[0] + 2), probes
    assert client.state == ConnectionState.CONNECTED
    assert client.recovery.pto_count == 0


# Close -------------------------------------------------------------------------------------


@pytest.mark.parametrize("closer", ["client", "server"])
def test_application_close_reaches_the_peer_and_both_terminate(closer: str) -> None:
    sim = make_pair(seed=2)
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    send_on_new_streams(client, [b"hello"])
    sim.run_for(0.5)
    me, me_node, peer, peer_node = (
        (client, sim.client, server, sim.server)
        if closer == "client"
        else (server, sim.server, client, sim.client)
    )
    closed_at = sim.now
    closing_period = 3 * me.recovery.pto_duration(2)
    draining_period = 3 * peer.recovery.pto_duration(2)
    me.close(0x42, "bye now")
    assert me.state == ConnectionState.CLOSING
    with pytest.raises(QuicUsageError, match="closed"):
        me.send_stream_data(me.create_stream(), b"late")
    sim.run_until(lambda: peer.state == ConnectionState.DRAINING, timeout=1.0, what="draining")
    [by_peer] = peer_node.events_of(ConnectionTerminated)
    assert by_peer.error_code == 0x42
    assert by_peer.reason == "bye now"
    assert by_peer.by_peer and by_peer.is_application and not by_peer.stateless_reset
    # A draining endpoint sends nothing (RFC 9000 §10.2.2).
    sent_by_peer = (sim.s2c if peer is server else sim.c2s).stats.datagrams
    ended: dict[str, float] = {}

    def watch(sim: Simulation) -> None:
        for name, conn in (("me", me), ("peer", peer)):
            if conn.state == ConnectionState.TERMINATED:
                ended.setdefault(name, sim.now)

    sim.checks.append(watch)
    sim.run_until(
        lambda: me.state == peer.state == ConnectionState.TERMINATED, timeout=10.0, what="end"
    )
    assert (sim.s2c if peer is server else sim.c2s).stats.datagrams == sent_by_peer
    # Both stayed around for three PTOs (the closing and draining periods) before ending.
    assert me_node.time_of(ConnectionTerminated) - closed_at >= closing_period * 0.99
    drained_at = peer_node.time_of(ConnectionTerminated)  # the event came on receipt
    assert ended["peer"] - drained_at >= draining_period * 0.99
    assert ended["me"] - closed_at >= closing_period * 0.99
    [mine] = me_node.events_of(ConnectionTerminated)
    assert mine.error_code == 0x42 and not mine.by_peer
    assert len(peer_node.events_of(ConnectionTerminated)) == 1
    assert me.next_timer() is None and peer.next_timer() is None
    assert _endpoint(sim).connections == {}  # reaped


def test_transport_close_with_an_error_code() -> None:
    sim = make_pair(seed=3)
    handshake(sim)
    sim.client.connection.close(0x0A, "protocol violation, sorry", application=False)
    sim.run_until(lambda: bool(sim.server.events_of(ConnectionTerminated)), what="close")
    [event] = sim.server.events_of(ConnectionTerminated)
    assert event.error_code == 0x0A and not event.is_application
    assert event.frame_type == 0
    assert event.reason == "protocol violation, sorry"


def test_closing_endpoint_answers_late_packets_with_connection_close() -> None:
    """RFC 9000 §10.2.1: in the closing state, incoming packets get CONNECTION_CLOSE again."""
    sim = make_pair(seed=4)
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    server.close(7, "closing")
    # The first CLOSE is lost (and so is the client's next packet); the closing period
    # (3 PTOs, about 0.3 s here) outlasts the hole.
    sim.c2s.config.blackholes.append((sim.now, sim.now + 0.05))
    sim.s2c.config.blackholes.append((sim.now, sim.now + 0.05))
    sim.flush()
    assert server.state == ConnectionState.CLOSING
    send_on_new_streams(client, [b"are you there?"])
    sim.run_until(lambda: client.state == ConnectionState.DRAINING, timeout=1.0, what="draining")
    assert sim.s2c.stats.blackholed >= 1
    [event] = sim.client.events_of(ConnectionTerminated)
    assert event.error_code == 7 and event.reason == "closing"


# Idle timeout ----------------------------------------------------------------------------


def test_idle_timeout_fires_when_the_peer_goes_silent() -> None:
    idle = {"idle_timeout": 5.0}
    sim = make_pair(seed=5, client=idle, server=idle)
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    server = sim.server.connection
    last_c, last_s = sim.client.last_received, sim.server.last_received
    assert last_c is not None and last_s is not None
    sim.c2s.config.blackholes.append((sim.now, 1e9))
    sim.s2c.config.blackholes.append((sim.now, 1e9))
    sim.run_until(
        lambda: client.state == server.state == ConnectionState.TERMINATED,
        timeout=30.0,
        what="idle timeout",
    )
    for node, last in ((sim.client, last_c), (sim.server, last_s)):
        [event] = node.events_of(ConnectionTerminated)
        assert event.reason == "idle timeout" and not event.by_peer
        waited = node.time_of(ConnectionTerminated) - last
        assert 5.0 <= waited < 5.01, (node.name, waited)


def test_idle_timeout_is_the_smaller_of_both_sides() -> None:
    sim = make_pair(seed=6, client={"idle_timeout": 30.0}, server={"idle_timeout": 3.0})
    handshake(sim)
    client = sim.client.connection
    assert client.idle_timeout == 3.0
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=10.0, what="idle")
    assert sim.client.events_of(ConnectionTerminated)[0].reason == "idle timeout"


@pytest.mark.parametrize("when", ["handshake", "transfer"])
def test_idle_timeout_fires_while_probes_are_unanswered(when: str) -> None:
    """A dead peer must be given up on within the idle timeout (plus 3 unbacked PTOs)."""
    idle = {"idle_timeout": 5.0}
    slow = LinkConfig(latency=0.15)
    sim = make_pair(seed=7, client=idle, server=idle, c2s=slow, s2c=LinkConfig(latency=0.15))
    client = sim.client.connection
    if when == "handshake":
        sim.c2s.config.blackholes.append((0.0, 1e9))
        sim.connect()
    else:
        handshake(sim)
        send_on_new_streams(client, payloads(7, [2_000_000]))
        sim.run_for(1.0)
        sim.c2s.config.blackholes.append((sim.now, 1e9))
        sim.s2c.config.blackholes.append((sim.now, 1e9))
    silent_since = sim.now if when == "handshake" else sim.client.last_received
    assert silent_since is not None
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=60.0, what="idle")
    assert sim.client.time_of(ConnectionTerminated) - silent_since < 5.0 + 3 * 1.1


def test_idle_timeout_with_a_clock_that_starts_at_zero() -> None:
    """The docs allow any clock; one that starts at 0 (time.monotonic() in a fresh VM) too."""
    sim = make_pair(seed=8, client={"idle_timeout": 5.0}, start=0.0)
    sim.c2s.config.blackholes.append((0.0, 1e9))
    sim.connect()
    client = sim.client.connection
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=60.0, what="idle")
    assert sim.client.time_of(ConnectionTerminated) < 5.0 + 3 * 1.1


def test_sending_restarts_the_idle_timer() -> None:
    # Without PMTU probes after the handshake the client hears last, so its deadline
    # (the one this test sends just before) is the earlier of the two.
    idle = {"idle_timeout": 5.0, "pmtu_discovery": False}
    slow = LinkConfig(latency=0.05)
    sim = make_pair(seed=17, client=idle, server=idle, c2s=slow, s2c=LinkConfig(latency=0.05))
    handshake(sim)
    sim.run_for(0.5)
    last = sim.client.last_received
    assert last is not None
    sim.run_for(last + 4.99 - sim.now)  # quiet until 10 ms before the client's deadline

    def echo(node, conn, event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, StreamDataReceived):
            conn.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)

    sim.server.on_event = echo
    back = StreamCollector()
    sim.client.on_event = back
    sent = send_on_new_streams(sim.client.connection, [b"still there?"])
    sim.run_until(lambda: back.complete(sent), timeout=2.0, what="answer")
    # Sending 10 ms before the deadline pushed it out: the answer came, nobody timed out.
    assert [bytes(d) for d in back.data.values()] == [b"still there?"]
    assert sim.client.connection.state == ConnectionState.CONNECTED
    assert not sim.client.events_of(ConnectionTerminated)


def test_nat_rebinding() -> None:
    sim = make_pair(seed=18)

    def echo(node, conn, event) -> None:  # type: ignore[no-untyped-def]
        if isinstance(event, StreamDataReceived):
            conn.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)

    sim.server.on_event = echo
    back = StreamCollector()
    sim.client.on_event = back
    handshake(sim)
    first = send_on_new_streams(sim.client.connection, [b"before"])
    sim.run_until(lambda: back.complete(first), what="echo before")
    sim.rebind_client(("10.0.0.77", 61000))
    sent = send_on_new_streams(sim.client.connection, payloads(18, [50_000]))
    sim.run_until(lambda: back.complete(sent), timeout=30.0, what="echo after rebinding")
    assert bytes(back.data[next(iter(sent))]) == next(iter(sent.values()))


def test_session_resumption() -> None:
    sim = make_pair(seed=19)
    handshake(sim)
    sim.run_for(0.5)
    tickets = sim.client.events_of(SessionTicketReceived)
    assert tickets
    endpoint = _endpoint(sim)
    # A second client, later, from another port, with the ticket of the first.
    again = QuicConnection(client_config(session_ticket=tickets[0].ticket))
    sim2 = Simulation(
        again, endpoint, seed=20, start=sim.now + 10, client_address=("10.0.0.1", 50001)
    )
    collector = StreamCollector()
    sim2.server.on_event = collector
    handshake(sim2)
    [done] = sim2.client.events_of(HandshakeCompleted)
    assert done.session_resumed and not done.early_data_accepted
    assert sim2.server.events_of(HandshakeCompleted)[0].session_resumed
    sent = send_on_new_streams(again, payloads(19, [30_000]))
    sim2.run_until(lambda: collector.complete(sent), what="transfer")
    assert endpoint.stats.connections_accepted == 2


@pytest.mark.parametrize(("count", "default"), [(1, True), (0, False), (3, False)])
def test_a_server_sends_the_configured_number_of_session_tickets(count: int, default: bool) -> None:
    """One NewSessionTicket per handshake unless configured (RFC 8446 §4.6.1: any number,
    none included); each one resumes."""
    sim = make_pair(seed=21, server={} if default else {"session_tickets": count})
    handshake(sim)
    sim.run_for(0.5)
    tickets = sim.client.events_of(SessionTicketReceived)
    assert len(tickets) == count
    assert len({t.ticket.ticket for t in tickets}) == count  # each sealed on its own
    if tickets:
        again = QuicConnection(client_config(session_ticket=tickets[-1].ticket))
        sim2 = Simulation(again, _endpoint(sim), seed=22, start=sim.now + 10)
        handshake(sim2)
        assert sim2.client.events_of(HandshakeCompleted)[0].session_resumed


def test_a_negative_session_ticket_count_is_refused() -> None:
    with pytest.raises(QuicUsageError, match="session_tickets"):
        server_config(session_tickets=-1)


# Stateless reset ---------------------------------------------------------------------------


def _restart_server(sim: Simulation, key: bytes) -> QuicEndpoint:
    """Replace the server by a fresh endpoint with the same reset key: it has no state."""
    fresh = QuicEndpoint(server_config(), stateless_reset_key=key)
    sim.replace_server(fresh)
    return fresh


def test_stateless_reset_after_a_server_restart() -> None:
    key = bytes(range(32))
    sim = make_pair(seed=9, endpoint={"stateless_reset_key": key})
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    fresh = _restart_server(sim, key)
    before = sim.c2s.stats.datagrams
    log: list[tuple[str, int]] = []
    sim.c2s.taps.append(lambda data, now: log.append(("c2s", len(data))))
    sim.s2c.taps.append(lambda data, now: log.append(("s2c", len(data))))
    send_on_new_streams(client, [b"anyone home?"])
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=5.0, what="reset")
    [event] = sim.client.events_of(ConnectionTerminated)
    assert event.stateless_reset and event.by_peer
    assert fresh.stats.stateless_resets_sent >= 1
    # Every reset is shorter than the datagram that triggered it (RFC 9000 §10.3).
    for (d1, trigger), (d2, reset) in itertools.pairwise(log):
        if d2 == "s2c":
            assert d1 == "c2s" and 21 <= reset < trigger, log
    # A terminated client sends nothing more, so the reset ended it at once.
    assert client.next_timer() is None
    assert sim.c2s.stats.datagrams - before == sum(1 for d, _ in log if d == "c2s")


def test_stateless_reset_answering_a_keepalive_ping() -> None:
    """A lone PING packet is the smallest 1-RTT packet; its reset is one byte shorter."""
    key = bytes(range(32))
    sim = make_pair(seed=10, endpoint={"stateless_reset_key": key})
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    _restart_server(sim, key)
    sizes: list[int] = []
    sim.c2s.taps.append(lambda data, now: sizes.append(len(data)))
    client.ping()
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=60.0, what="reset")
    assert min(sizes) < 30
    [event] = sim.client.events_of(ConnectionTerminated)
    assert event.stateless_reset


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(
            n,
            marks=(),
        )
        for n in (21, 24, 28)
    ]
    + [29, 40, 100],
)
def test_client_detects_stateless_resets_of_any_valid_size(size: int) -> None:
    sim = make_pair(seed=11)
    handshake(sim)
    client = sim.client.connection
    token = _endpoint(sim).reset_token(client.cids.current_peer_cid)
    filler = bytearray(os.urandom(size - 16))
    filler[0] = 0x40 | (filler[0] & 0x3F)
    client.receive_datagram(bytes(filler) + token, SERVER_ADDR, sim.now)
    assert client.state == ConnectionState.TERMINATED
    [event] = [e for e in _drain(client) if isinstance(e, ConnectionTerminated)]
    assert event.stateless_reset


def _drain(conn: QuicConnection) -> list[object]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


def test_a_wrong_token_is_not_a_reset() -> None:
    sim = make_pair(seed=12)
    handshake(sim)
    client = sim.client.connection
    token = bytearray(_endpoint(sim).reset_token(client.cids.current_peer_cid))
    token[-1] ^= 1
    client.receive_datagram(b"\x41" + os.urandom(30) + bytes(token), SERVER_ADDR, sim.now)
    assert client.state == ConnectionState.CONNECTED


@pytest.mark.parametrize("size", [1, 9, 20, 21])
def test_no_stateless_reset_for_tiny_short_header_packets(size: int) -> None:
    endpoint = QuicEndpoint(server_config())
    endpoint.receive_datagram(b"\x41" + os.urandom(size - 1), CLIENT_ADDR, 1.0)
    assert endpoint.datagrams_to_send(1.0) == []
    assert endpoint.stats.stateless_resets_sent == 0


@pytest.mark.parametrize("size", [22, 30, 43, 44, 1200])
def test_stateless_reset_sizes(size: int) -> None:
    key = os.urandom(32)
    endpoint = QuicEndpoint(server_config(), stateless_reset_key=key)
    cid = os.urandom(8)
    endpoint.receive_datagram(b"\x41" + cid + os.urandom(size - 9), CLIENT_ADDR, 1.0)
    [(reset, address)] = endpoint.datagrams_to_send(1.0)
    assert address == CLIENT_ADDR
    assert 21 <= len(reset) < size
    assert len(reset) == min(size - 1, 43)
    assert reset[0] & 0xC0 == 0x40  # looks like a short-header packet
    assert reset[-16:] == endpoint.reset_token(cid)
    # The token is a keyed function of the CID: same key, same token after a restart.
    assert QuicEndpoint(server_config(), stateless_reset_key=key).reset_token(cid) == reset[-16:]


def test_stateless_resets_are_rate_limited() -> None:
    endpoint = QuicEndpoint(server_config(), max_stateless_resets_per_second=5)
    for _ in range(50):
        endpoint.receive_datagram(b"\x41" + os.urandom(60), CLIENT_ADDR, 1.0)
    assert len(endpoint.datagrams_to_send(1.0)) == 5
    endpoint.receive_datagram(b"\x41" + os.urandom(60), CLIENT_ADDR, 2.0)
    assert len(endpoint.datagrams_to_send(2.0)) == 1


# Version Negotiation from the endpoint ---------------------------------------------------


def _long_header_datagram(version: int, size: int, dcid: bytes, scid: bytes) -> bytes:
    first = bytes((0xC0,)) + version.to_bytes(4, "big")
    body = first + bytes((len(dcid),)) + dcid + bytes((len(scid),)) + scid
    return body + os.urandom(size - len(body))


@pytest.mark.parametrize(
    "version",
    [
        pytest.param(
            0x1A2A3A4A,
            marks=(),
        ),
        0x5A6A7A8A,
        0xFF00001D,
        0x00000002,
    ],
)
def test_version_negotiation_for_an_unknown_version(version: int) -> None:
    endpoint = QuicEndpoint(server_config())
    dcid, scid = os.urandom(8), os.urandom(5)
    endpoint.receive_datagram(_long_header_datagram(version, 1200, dcid, scid), CLIENT_ADDR, 1.0)
    [(vn, address)] = endpoint.datagrams_to_send(1.0)
    assert address == CLIENT_ADDR
    assert vn[0] & 0x80
    got_dcid, got_scid, versions = parse_version_negotiation(vn)
    assert (got_dcid, got_scid) == (scid, dcid)  # the client's CIDs, swapped
    assert QuicVersion.V1 in versions and QuicVersion.V2 in versions
    assert version not in versions
    assert endpoint.stats.version_negotiations_sent == 1
    assert endpoint.stats.connections_accepted == 0


@pytest.mark.parametrize("size", [1199, 600, 50])
def test_no_version_negotiation_for_a_small_datagram(size: int) -> None:
    endpoint = QuicEndpoint(server_config())
    datagram = _long_header_datagram(0x1A2A3A4A, size, os.urandom(8), os.urandom(8))
    endpoint.receive_datagram(datagram, CLIENT_ADDR, 1.0)
    assert endpoint.datagrams_to_send(1.0) == []
    assert endpoint.stats.version_negotiations_sent == 0


def test_no_version_negotiation_in_answer_to_version_negotiation() -> None:
    endpoint = QuicEndpoint(server_config())
    datagram = _long_header_datagram(0, 1200, os.urandom(8), os.urandom(8))
    endpoint.receive_datagram(datagram, CLIENT_ADDR, 1.0)
    assert endpoint.datagrams_to_send(1.0) == []


def test_initials_in_small_datagrams_open_no_connection() -> None:
    sim = make_pair(seed=13)
    first: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: first.append(data))
    sim.connect()
    sim.flush()
    initial = first[0]
    endpoint = QuicEndpoint(server_config())
    # The same Initial, cut to 1199 bytes by shortening its padding (the Length too).
    endpoint.receive_datagram(initial[:1199], CLIENT_ADDR, 1.0)
    assert endpoint.stats.connections_accepted == 0
    assert endpoint.datagrams_to_send(1.0) == []
    endpoint.receive_datagram(initial, CLIENT_ADDR, 1.0)
    assert endpoint.stats.connections_accepted == 1


# Strangers ------------------------------------------------------------------------------


def _garbage_initial(dcid: bytes | None = None) -> bytes:
    """An Initial header with a 1200-byte body that no key opens."""
    header = long_header_prefix(
        PacketType.INITIAL, QuicVersion.V1, dcid or os.urandom(8), os.urandom(8), b"", 4
    )
    length = 1200 - len(header) - 2
    return header + (0x4000 | length).to_bytes(2, "big") + os.urandom(length)


def test_undecryptable_initial_does_not_break_the_endpoint() -> None:
    sim = make_pair(seed=14)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    sim.inject(_garbage_initial(), ("10.9.9.9", 9999), SERVER_ADDR)
    sim.run_for(0.1)
    # Dropped: no connection kept, nothing sent back to the stranger.
    assert endpoint.stats.datagrams_dropped == 1 and endpoint.stats.connections_accepted == 0
    assert not endpoint.connections and not sim.sent_elsewhere
    # A real client still gets served.
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    sent = send_on_new_streams(sim.client.connection, [b"still there"])
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    assert [bytes(d) for d in collector.data.values()] == [b"still there"]
    assert endpoint.stats.connections_accepted == 1


def test_undecryptable_initials_do_not_use_up_handshake_slots() -> None:
    endpoint = QuicEndpoint(server_config(), max_handshakes=3)
    for i in range(10):
        endpoint.receive_datagram(_garbage_initial(), ("10.9.9.9", 1000 + i), 1.0)
        assert endpoint.datagrams_to_send(1.0) == []  # nothing answers a forged Initial
        assert endpoint.connections == {} and endpoint.stats.connections_accepted == 0
    # Long after any handshake timeout, the slots must be free again.
    for t in (10.0, 40.0, 100.0):
        if (when := endpoint.next_timer()) is not None and when <= t:
            endpoint.handle_timer(t)
    assert len(endpoint._all) == 0


def test_unknown_short_header_during_a_live_connection_is_answered_with_a_reset() -> None:
    """A datagram for a CID the endpoint does not know does not disturb the live one."""
    sim = make_pair(seed=15)
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    sim.inject(b"\x41" + os.urandom(60), ("10.7.7.7", 7777), SERVER_ADDR)
    sim.run_for(0.05)
    assert _endpoint(sim).stats.stateless_resets_sent == 1
    assert [d for _src, dst, d in sim.sent_elsewhere if dst == ("10.7.7.7", 7777)]
    sent = send_on_new_streams(sim.client.connection, [b"fine"])
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    assert sim.client.connection.state == ConnectionState.CONNECTED


def test_server_sees_client_events_in_order() -> None:
    """The endpoint hands out events per connection in the order they happened."""
    sim = make_pair(seed=16)
    handshake(sim)
    sent = send_on_new_streams(sim.client.connection, [b"a" * 3000, b"b" * 3000])
    sim.run_until(lambda: len(sim.server.events_of(StreamDataReceived)) >= 2, what="data")
    sim.run_for(0.5)
    kinds = [type(e).__name__ for e in sim.server.events]
    assert kinds[0] == "HandshakeCompleted"
    ends = [e.stream_id for e in sim.server.events_of(StreamDataReceived) if e.end_stream]
    assert sorted(ends) == sorted(sent)
