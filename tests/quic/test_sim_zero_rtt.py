"""0-RTT on the simulated network (RFC 9001 §4.6, RFC 9000 §7.4.1, RFC 9221 §3).

A first connection earns a session ticket; a second client resumes with it and
sends stream data and a DATAGRAM before the handshake completes. The server
accepts that early data once per ticket (anti-replay), rejects it when its
configuration says so or changed, and a rejecting server processes none of it:
the client sends it all again in 1-RTT. Every run also checks simnet's
invariants, among them that early data is delivered at most once per ticket.
"""

from __future__ import annotations

import dataclasses

import pytest
from adversary import Adversary
from simnet import (
    Address,
    InvariantViolation,
    LinkConfig,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    packet_types,
    payloads,
    send_on_new_streams,
    server_config,
)

from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    QuicConnection,
    QuicUsageError,
    QuicVersion,
    SessionTicketReceived,
    StreamDataReceived,
    TransportErrorCode,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.packets import PacketType, long_header_prefix
from quicnet.quic.transport_params import TransportParameters
from quicnet.tls import SessionTicket, StrikeRegister, TicketKeys

EARLY = {"enable_early_data": True}
SECOND_CLIENT: Address = ("10.0.0.1", 50001)


def _ticket(
    *,
    seed: int = 40,
    server: dict[str, object] | None = None,
    endpoint: dict[str, object] | None = None,
    client: dict[str, object] | None = None,
) -> tuple[Simulation, QuicEndpoint, SessionTicket]:
    """A first connection to an endpoint that allows 0-RTT; the ticket it earned."""
    sim = make_pair(seed=seed, server={**EARLY, **(server or {})}, endpoint=endpoint, client=client)
    handshake(sim)
    sim.run_for(0.5)
    tickets = sim.client.events_of(SessionTicketReceived)
    assert tickets and tickets[0].ticket.max_early_data_size == 0xFFFFFFFF  # RFC 9001 §4.6.1
    endpoint_impl = sim.server.impl
    assert isinstance(endpoint_impl, QuicEndpoint)
    return sim, endpoint_impl, tickets[0].ticket


def _resume(
    endpoint: QuicEndpoint,
    ticket: SessionTicket,
    *,
    start: float,
    seed: int = 41,
    client: dict[str, object] | None = None,
    c2s: LinkConfig | None = None,
    s2c: LinkConfig | None = None,
    address: Address = SECOND_CLIENT,
) -> tuple[Simulation, QuicConnection, StreamCollector]:
    """A second client with the ticket and early data on, connecting (not yet run)."""
    conn = QuicConnection(client_config(session_ticket=ticket, **{**EARLY, **(client or {})}))
    sim = Simulation(
        conn, endpoint, seed=seed, start=start, client_address=address, c2s=c2s, s2c=s2c
    )
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.connect()
    return sim, conn, collector


def _server_events_before_handshake(sim: Simulation) -> list[object]:
    events = sim.server.events
    done = [i for i, e in enumerate(events) if isinstance(e, HandshakeCompleted)]
    assert done, "the server's handshake has not completed"
    return events[: done[0]]


def _run_both(sim: Simulation, collector: StreamCollector, sent: dict[int, bytes]) -> None:
    """Until the server has every stream and its handshake completed."""
    sim.run_until(
        lambda: collector.complete(sent) and bool(sim.server.events_of(HandshakeCompleted)),
        what="early data and handshake",
    )


def _server_conn(sim: Simulation) -> QuicConnection:
    """The server connection of this simulation's client (it reported the handshake)."""
    [done] = sim.server.events_of(HandshakeCompleted)
    return sim.server.event_connections[sim.server.events.index(done)]


def _early_bytes(sim: Simulation) -> dict[int, bytes]:
    out: dict[int, bytearray] = {}
    for event in _server_events_before_handshake(sim):
        if isinstance(event, StreamDataReceived):
            out.setdefault(event.stream_id, bytearray()).extend(event.data)
    return {sid: bytes(data) for sid, data in out.items()}


def _wire_types(sim: Simulation) -> list[list[PacketType]]:
    """Record the packet types of every datagram the (second) client sends."""
    seen: list[list[PacketType]] = []
    sim.c2s.taps.append(lambda data, now: seen.append(packet_types(data)))
    return seen


# Accepted ------------------------------------------------------------------------------------


def test_zero_rtt_accepted_data_arrives_before_the_handshake_completes() -> None:
    sim1, endpoint, ticket = _ticket()
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(41, [700, 2500]))
    datagram_id = client.send_datagram(b"early datagram")
    sim.run_until(lambda: collector.complete(sent), what="early streams")
    # The first datagram carries the ClientHello and the early data (RFC 9000 §12.2).
    assert wire[0] == [PacketType.INITIAL, PacketType.ZERO_RTT]
    # Everything was delivered before the server's handshake completed, byte for byte.
    assert not sim.server.events_of(HandshakeCompleted)
    sim.run_until(lambda: bool(sim.server.events_of(HandshakeCompleted)), what="handshake")
    assert _early_bytes(sim) == sent
    assert DatagramReceived(b"early datagram") in _server_events_before_handshake(sim)
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert server_done.session_resumed and server_done.early_data_accepted
    sim.run_until(lambda: bool(sim.client.events_of(DatagramAcknowledged)), what="ack")
    [client_done] = sim.client.events_of(HandshakeCompleted)
    assert client_done.early_data_accepted
    assert sim.client.events_of(DatagramAcknowledged) == [DatagramAcknowledged(datagram_id)]
    assert not sim.client.events_of(DatagramLost)
    # A bigger transfer after it, on the same connection.
    more = send_on_new_streams(client, payloads(42, [200_000]))
    sim.run_until(lambda: collector.complete(more), what="transfer")
    assert {sid: bytes(collector.data[sid]) for sid in (*sent, *more)} == {**sent, **more}


def test_client_discards_zero_rtt_keys_with_one_rtt_and_sends_no_more_0rtt() -> None:
    sim1, endpoint, ticket = _ticket()
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(43, [60_000, 60_000]))
    assert client.zero_rtt_send_key is not None
    sim.run_until(lambda: client.handshake_complete, what="handshake")
    assert client.zero_rtt_send_key is None  # RFC 9001 §4.9.3
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    flat = [t for types in wire for t in types]
    first_one_rtt = flat.index(PacketType.ONE_RTT)
    assert PacketType.ZERO_RTT in flat[:first_one_rtt]
    assert PacketType.ZERO_RTT not in flat[first_one_rtt:]  # RFC 9001 §5.6
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent


def _seal_zero_rtt(
    client: QuicConnection, key: object, dcid: bytes, pn: int, payload: bytes
) -> bytes:
    header = long_header_prefix(PacketType.ZERO_RTT, client.version, dcid, client.host_cid, b"", 4)
    length = 4 + len(payload) + 16
    header += (0x4000 | length).to_bytes(2, "big") + pn.to_bytes(4, "big")
    return key.protect(header, payload, pn)  # type: ignore[attr-defined, no-any-return]


def test_server_drops_zero_rtt_keys_three_ptos_after_the_handshake() -> None:
    sim1, endpoint, ticket = _ticket()
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    key = client.zero_rtt_send_key
    sent = send_on_new_streams(client, payloads(44, [1000]))
    _run_both(sim, collector, sent)
    server = _server_conn(sim)
    assert server.zero_rtt_recv_key is not None  # kept a while, for reordered packets
    dcid = client.cids.current_peer_cid

    # A late (reordered) 0-RTT packet, within the window, still counts (RFC 9001 §4.9.3).
    sim.waive("delivery", reason="the late 0-RTT packets are sealed by hand, not sent by the app")
    # ... with packet numbers the client never used: the server's ACK of them ends it.
    sim.waive("protocol errors", reason="the client never sent the hand-sealed packets")
    late = _seal_zero_rtt(client, key, dcid, 1000, b"\x09\x10" + b"late")  # STREAM 16, FIN
    sim.inject(late, SECOND_CLIENT, sim.server.address)
    sim.run_until(lambda: 16 in collector.ended, what="late 0-RTT")
    assert bytes(collector.data[16]) == b"late"

    deadline = server.zero_rtt.discard_at if server.zero_rtt else None
    assert deadline is not None and deadline - sim.now < 3 * 1.0
    sim.run_for(deadline - sim.now + 0.001)
    assert server.zero_rtt_recv_key is None and server.zero_rtt is None
    # After that, a 0-RTT packet is never decrypted: nothing of it reaches the application.
    after = _seal_zero_rtt(client, key, dcid, 1001, b"\x09\x14" + b"too late")  # STREAM 20
    sim.inject(after, SECOND_CLIENT, sim.server.address)
    sim.run_for(0.5)
    assert 20 not in collector.data
    assert server.state == ConnectionState.CONNECTED


# Rejected ------------------------------------------------------------------------------------


def _other_endpoint(keys: TicketKeys, **server: object) -> QuicEndpoint:
    """Another server that opens the same tickets (shared ticket keys)."""
    return QuicEndpoint(server_config(ticket_keys=keys, **server))


def _check_rejected(
    sim: Simulation, client: QuicConnection, collector: StreamCollector, sent: dict[int, bytes]
) -> None:
    sim.run_until(lambda: collector.complete(sent), what="transfer after rejection")
    [client_done] = sim.client.events_of(HandshakeCompleted)
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert client_done.session_resumed and not client_done.early_data_accepted
    assert not server_done.early_data_accepted
    # The server processed no 0-RTT packet: nothing reached its application early...
    assert _server_events_before_handshake(sim) == []
    # ...and everything arrived once, byte for byte, on the streams the client opened.
    assert {sid: bytes(collector.data[sid]) for sid in collector.data} == sent


@pytest.mark.parametrize("fates", [True, False], ids=["fates", "no-fates"])
def test_zero_rtt_rejected_by_a_server_with_early_data_off(fates: bool) -> None:
    keys = TicketKeys(key=bytes(range(32)))
    sim1, _endpoint, ticket = _ticket(server={"ticket_keys": keys})
    endpoint = _other_endpoint(keys)  # enable_early_data=False
    sim, client, collector = _resume(
        endpoint, ticket, start=sim1.now + 1, client={"datagram_ack_events": fates}
    )
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(45, [900, 30_000, 4000]))
    datagram_id = client.send_datagram(b"lost with 0-RTT")
    sim.run_until(lambda: client.handshake_complete, what="handshake")
    assert PacketType.ZERO_RTT in wire[0]  # it was sent in 0-RTT...
    # ...and, the server having rejected it, the DATAGRAM is lost (RFC 9221: never resent),
    # which is reported when the application asked for DATAGRAM fates.
    assert sim.client.events_of(DatagramLost) == ([DatagramLost(datagram_id)] if fates else [])
    _check_rejected(sim, client, collector, sent)
    assert not sim.server.events_of(DatagramReceived)
    assert not sim.client.events_of(DatagramAcknowledged)
    # The connection goes on: a new DATAGRAM arrives.
    client.send_datagram(b"after")
    sim.run_until(lambda: bool(sim.server.events_of(DatagramReceived)), what="datagram")


def test_zero_rtt_rejected_when_the_server_lowered_its_limits() -> None:
    """RFC 9000 §7.4.1: a server whose limits changed since the ticket rejects 0-RTT; the
    client then sends under the new, lower limits: streams beyond the new MAX_STREAMS
    keep their IDs and wait for credit."""
    keys = TicketKeys(key=bytes(range(32)))
    sim1, _endpoint, ticket = _ticket(
        server={"ticket_keys": keys, "initial_max_streams_uni": 8, "initial_max_data": 1 << 20}
    )
    endpoint = _other_endpoint(
        keys, enable_early_data=True, initial_max_streams_uni=2, initial_max_data=40_000
    )
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    sent: dict[int, bytes] = {}
    for data in payloads(46, [5000, 20_000, 300, 7000, 60_000]):
        stream_id = client.create_stream(bidirectional=False)
        client.send_stream_data(stream_id, data, end_stream=True)
        sent[stream_id] = data
    assert sorted(sent) == [2, 6, 10, 14, 18]
    _check_rejected(sim, client, collector, sent)


def test_a_second_connection_with_the_same_ticket_gets_no_early_data() -> None:
    """RFC 8446 §8: the strike register lets a ticket carry early data once."""
    sim1, endpoint, ticket = _ticket()
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    first = send_on_new_streams(client, payloads(47, [1500]))
    _run_both(sim, collector, first)
    assert sim.server.events_of(HandshakeCompleted)[0].early_data_accepted
    sim.server.on_event = None  # the collector follows the first connection only
    # Another client, with the same ticket, on the same network a moment later.
    conn2 = QuicConnection(client_config(session_ticket=ticket, **EARLY))
    node2 = sim.add_client(conn2, ("10.0.0.3", 50002))
    sim.connect(node2)
    second = send_on_new_streams(conn2, payloads(48, [1500, 9000]))
    sim.run_until(
        lambda: len(sim.server.events_of(HandshakeCompleted)) == 2, what="second handshake"
    )
    [done2] = node2.events_of(HandshakeCompleted)
    assert done2.session_resumed and not done2.early_data_accepted
    server2 = next(
        conn
        for e, conn in zip(sim.server.events, sim.server.event_connections, strict=True)
        if isinstance(e, HandshakeCompleted) and not e.early_data_accepted
    )
    received: dict[int, bytearray] = {}

    def has_all() -> bool:
        received.clear()
        for e in sim.server.events_for(server2, StreamDataReceived):
            received.setdefault(e.stream_id, bytearray()).extend(e.data)
        return {sid: bytes(data) for sid, data in received.items()} == second

    sim.run_until(has_all, what="second transfer")
    # Nothing of the second connection reached the application before its handshake.
    events2 = sim.server.events_for(server2)
    assert isinstance(events2[0], HandshakeCompleted)


def test_replayed_zero_rtt_datagrams_deliver_nothing_twice() -> None:
    sim1, endpoint, ticket = _ticket()
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    adversary = Adversary(sim, seed=49)
    sent = send_on_new_streams(client, payloads(49, [1200, 5000]))
    client.send_datagram(b"once")
    _run_both(sim, collector, sent)
    flight = adversary.captured_from(SECOND_CLIENT)[:4]
    assert PacketType.ZERO_RTT in packet_types(flight[0].data)
    delivered = len(sim.server.events)

    # While the connection lives: duplicates by packet number (RFC 9000 §12.3).
    for captured in flight:
        adversary.replay(captured, times=2)
    sim.run_for(0.5)
    assert sim.server.events[delivered:] == []

    # Once it is gone: the replayed ClientHello opens a new connection, which resumes
    # but gets no 0-RTT keys (the strike register saw the ticket): nothing delivered.
    # Well within the ticket-age window, so the strike register is what refuses it.
    server = _server_conn(sim)
    client.close()
    sim.run_until(lambda: server not in sim.server.live_connections(), what="server forgets")
    assert sim.now - flight[0].time < StrikeRegister().window / 2
    accepted = endpoint.stats.connections_accepted
    for captured in flight:
        adversary.replay(captured)
    sim.run_for(2.0)
    assert endpoint.stats.connections_accepted == accepted + 1
    assert not [
        e
        for e in sim.server.events[delivered:]
        if isinstance(e, (StreamDataReceived, DatagramReceived))
    ]


def test_servers_without_shared_anti_replay_state_accept_a_replay() -> None:
    """The limit docs/quic.md states: a replay sent to a second server that shares the
    ticket keys but not the strike register is accepted again, and the simulation's
    invariant (early data at most once per ticket) catches it."""
    keys = TicketKeys(key=bytes(range(32)))
    sim1, endpoint, ticket = _ticket(server={"ticket_keys": keys})
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    adversary = Adversary(sim, seed=50)
    sent = send_on_new_streams(client, payloads(50, [800]))
    _run_both(sim, collector, sent)
    flight = adversary.captured_from(SECOND_CLIENT)[:2]
    other = _other_endpoint(keys, enable_early_data=True, anti_replay=StrikeRegister())
    sim.replace_server(other)
    for captured in flight:
        adversary.replay(captured)
    with pytest.raises(InvariantViolation, match="second server connection for one session"):
        sim.run_for(1.0)


# Loss and reordering -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [51, 52, 53])
def test_zero_rtt_under_loss_and_reordering(seed: int) -> None:
    link = LinkConfig(latency=0.02, jitter=0.005, loss=0.10, reorder=0.10, duplicate=0.02)
    sim1, endpoint, ticket = _ticket(seed=seed)
    sim, client, collector = _resume(
        endpoint, ticket, start=sim1.now + 1, seed=seed, c2s=link, s2c=link
    )
    sent = send_on_new_streams(client, payloads(seed, [3000, 40_000, 150_000]))
    ids = [client.send_datagram(bytes([i]) * 100) for i in range(5)]
    sim.run_until(lambda: collector.complete(sent), timeout=120, what="lossy 0-RTT")
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent
    sim.run_for(3.0)
    fates = [
        e.datagram_id
        for e in sim.client.events
        if isinstance(e, (DatagramAcknowledged, DatagramLost))
    ]
    assert sorted(fates) == ids  # each DATAGRAM: acknowledged or lost, exactly once
    received = [e.data for e in sim.server.events_of(DatagramReceived)]
    assert len(received) == len(set(received))  # none delivered twice


# Remembered limits ---------------------------------------------------------------------------


def test_zero_rtt_stays_within_the_remembered_limits() -> None:
    """RFC 9000 §7.4.1: 0-RTT packets use the limits of the ticket's connection only."""
    limits = {"initial_max_data": 20_000, "initial_max_stream_data": 8_000}
    sim1, endpoint, ticket = _ticket(server=limits)
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    sent = send_on_new_streams(client, payloads(54, [30_000, 30_000, 30_000]))
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    early = _early_bytes(sim)
    assert early and sum(map(len, early.values())) <= 20_000
    assert all(len(data) <= 8_000 for data in early.values())
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent


@pytest.mark.parametrize(
    "name", ["initial_max_data", "initial_max_streams_bidi", "max_datagram_frame_size"]
)
def test_client_closes_when_an_accepting_server_lowered_a_remembered_limit(name: str) -> None:
    """RFC 9000 §7.4.1, RFC 9221 §3: a server that accepts 0-RTT must not lower a limit
    the client remembered; the client ends the connection with PROTOCOL_VIOLATION.

    The client here remembers more than the server gave (its stored parameters are
    raised); the server, whose sealed ticket still matches its configuration, accepts.
    """
    sim1, endpoint, ticket = _ticket()
    assert ticket.transport_parameters is not None
    stored = TransportParameters.decode(ticket.transport_parameters, from_server=True)
    raised = stored.replace(**{name: (getattr(stored, name) or 0) + 1})
    inflated = dataclasses.replace(ticket, transport_parameters=raised.encode())
    sim, client, _collector = _resume(endpoint, inflated, start=sim1.now + 1)
    sim.waive("protocol errors", reason="the client's remembered limits are raised by hand")
    send_on_new_streams(client, payloads(55, [500]))
    sim.run_until(
        lambda: bool(sim.server.events_of(ConnectionTerminated)), what="the close arrives"
    )
    closed = client.termination  # why it is closing (the event comes when it has closed)
    assert closed is not None
    assert closed.error_code == TransportErrorCode.PROTOCOL_VIOLATION and not closed.by_peer
    assert name in closed.reason
    assert not sim.client.events_of(HandshakeCompleted)
    # The server had accepted: the early data reached its application.
    assert sim.server.events_of(StreamDataReceived)
    [at_server] = sim.server.events_of(ConnectionTerminated)
    assert at_server.by_peer and at_server.error_code == TransportErrorCode.PROTOCOL_VIOLATION


# Retry and Version Negotiation do not reject 0-RTT (RFC 9001 §4.6.2) ----------------------------


def test_zero_rtt_after_a_retry() -> None:
    retry = {"require_retry": True}
    sim1, endpoint, ticket = _ticket(endpoint=retry)
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(56, [2000, 50_000]))
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    assert endpoint.stats.retries_sent == 2
    [done] = sim.client.events_of(HandshakeCompleted)
    assert done.early_data_accepted
    assert [PacketType.INITIAL, PacketType.ZERO_RTT] in wire[1:]  # sent again after it
    assert _early_bytes(sim)  # the resent 0-RTT data came before the handshake completed
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent


def test_a_client_starts_in_the_version_of_its_ticket() -> None:
    """A v2 ticket: the client, configured to start in v1 but speaking v2, starts in v2
    (RFC 9369 §5: the ticket may start no other version) and sends 0-RTT there."""
    v2 = {"version": QuicVersion.V2, "supported_versions": (QuicVersion.V2,)}
    sim1, endpoint, ticket = _ticket(server=v2)
    assert sim1.client.connection.version == QuicVersion.V2
    assert ticket.quic_version == QuicVersion.V2
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    assert client.configuration.version == QuicVersion.V1 and client.version == QuicVersion.V2
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(57, [2000, 20_000]))
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    assert wire[0] == [PacketType.INITIAL, PacketType.ZERO_RTT]
    assert endpoint.stats.version_negotiations_sent == 1  # only the first client's
    assert sim.client.events_of(HandshakeCompleted)[0].early_data_accepted
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent


def test_zero_rtt_sent_again_after_version_negotiation_away_from_the_ticket() -> None:
    """The server no longer speaks the ticket's v2: Version Negotiation moves the client
    to v1, where it may not use the ticket (RFC 9369 §5): a full handshake, and what
    its 0-RTT packets carried goes again in 1-RTT."""
    keys = TicketKeys(key=bytes(range(32)))
    v2 = {"version": QuicVersion.V2, "supported_versions": (QuicVersion.V2,), "ticket_keys": keys}
    sim1, _endpoint, ticket = _ticket(server=v2)
    v1_only = {"supported_versions": (QuicVersion.V1,), "enable_early_data": True}
    endpoint = _other_endpoint(keys, **v1_only)
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1)
    early: set[int] = set()  # the versions of the client's 0-RTT datagrams
    sim.c2s.taps.append(
        lambda data, now: (
            early.add(int.from_bytes(data[1:5], "big"))
            if PacketType.ZERO_RTT in packet_types(data)
            else None
        )
    )
    sent = send_on_new_streams(client, payloads(60, [2000, 20_000]))
    sim.run_until(lambda: collector.complete(sent), what="transfer")
    assert client.version == QuicVersion.V1
    assert endpoint.stats.version_negotiations_sent == 1
    # 0-RTT went in v2 only: in v1 the ClientHello carried no ticket.
    assert early == {QuicVersion.V2}
    [client_done] = sim.client.events_of(HandshakeCompleted)
    assert not client_done.session_resumed and not client_done.early_data_accepted
    assert _server_events_before_handshake(sim) == []
    assert {sid: bytes(collector.data[sid]) for sid in collector.data} == sent


# Tickets are the QUIC version's (RFC 9369 §5) ------------------------------------------------


def test_a_session_keeps_the_version_of_the_connection_that_received_it() -> None:
    _sim, _endpoint, ticket = _ticket()
    assert ticket.quic_version == QuicVersion.V1
    saved = ticket.to_bytes()
    assert SessionTicket.from_bytes(saved).to_bytes() == saved
    assert SessionTicket.from_pem(ticket.to_pem()).quic_version == QuicVersion.V1
    # A session saved before the version was kept (format QNS1: no trailing version).
    loaded = SessionTicket.from_bytes(b"QNS1" + saved[4:-4])
    assert loaded.quic_version is None
    assert loaded.to_bytes()[:-4] == saved[:-4]


def test_a_ticket_follows_compatible_version_negotiation() -> None:
    """A v1 connection negotiated to v2 (RFC 9368) issues v2 tickets, which resume with
    0-RTT in v2."""
    prefers_v2 = {"supported_versions": (QuicVersion.V2, QuicVersion.V1)}
    sim1, endpoint, ticket = _ticket(client=prefers_v2)
    # The client starts in v1 and prefers v2; the server picks v2.
    assert sim1.client.connection.version == QuicVersion.V2
    assert ticket.quic_version == QuicVersion.V2
    v2_client = {"version": QuicVersion.V2}
    sim, client, collector = _resume(endpoint, ticket, start=sim1.now + 1, client=v2_client)
    sent = send_on_new_streams(client, payloads(58, [3000]))
    _run_both(sim, collector, sent)
    assert _early_bytes(sim) == sent  # the server resumed a ticket it issued in v2
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert server_done.session_resumed and server_done.early_data_accepted


def test_a_client_does_not_offer_a_ticket_from_another_version() -> None:
    sim1, endpoint, ticket = _ticket()  # a v1 ticket
    v2_client = {"version": QuicVersion.V2, "supported_versions": (QuicVersion.V2,)}
    sim, client, _collector = _resume(endpoint, ticket, start=sim1.now + 1, client=v2_client)
    wire = _wire_types(sim)
    with pytest.raises(QuicUsageError):  # no 0-RTT, so no stream before the handshake
        client.create_stream()
    sim.run_until(lambda: bool(sim.server.events_of(HandshakeCompleted)), what="handshake")
    assert client.version == QuicVersion.V2
    assert not any(PacketType.ZERO_RTT in kinds for kinds in wire)
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert not server_done.session_resumed  # the ticket was not offered: a full handshake


def test_a_session_saved_without_its_version_resumes_without_0rtt() -> None:
    """Backwards-safe: a session loaded from the older format may resume, never with
    early data (its version is unknown)."""
    sim1, endpoint, ticket = _ticket()
    unknown = dataclasses.replace(ticket, quic_version=None)
    sim, client, _collector = _resume(endpoint, unknown, start=sim1.now + 1)
    wire = _wire_types(sim)
    with pytest.raises(QuicUsageError):
        client.create_stream()
    sim.run_until(lambda: bool(sim.client.events_of(HandshakeCompleted)), what="handshake")
    assert not any(PacketType.ZERO_RTT in kinds for kinds in wire)
    [client_done] = sim.client.events_of(HandshakeCompleted)
    assert client_done.session_resumed and not client_done.early_data_accepted


def test_a_server_declines_a_ticket_issued_for_another_version() -> None:
    """A v1 ticket relabelled v2 makes the client offer it, with 0-RTT, on a v2
    connection: the server resumes nothing (a full handshake, RFC 9369 §5), processes
    none of the early data, and the client sends it all again in 1-RTT."""
    sim1, endpoint, ticket = _ticket()
    forged = dataclasses.replace(ticket, quic_version=QuicVersion.V2)
    v2_client = {"version": QuicVersion.V2, "supported_versions": (QuicVersion.V2,)}
    sim, client, collector = _resume(endpoint, forged, start=sim1.now + 1, client=v2_client)
    wire = _wire_types(sim)
    sent = send_on_new_streams(client, payloads(59, [1200, 25_000]))
    sim.run_until(lambda: collector.complete(sent), what="transfer after the refusal")
    assert PacketType.ZERO_RTT in wire[0]  # the client did send early data...
    [client_done] = sim.client.events_of(HandshakeCompleted)
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert not server_done.session_resumed and not server_done.early_data_accepted
    assert not client_done.session_resumed and not client_done.early_data_accepted
    assert _server_events_before_handshake(sim) == []  # ...and the server processed none
    assert {sid: bytes(collector.data[sid]) for sid in collector.data} == sent
