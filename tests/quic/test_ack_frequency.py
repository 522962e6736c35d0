"""The acknowledgment frequency extension (draft-ietf-quic-ack-frequency-13) and the
RFC 9000 §13.2.1 acknowledgment rules it tunes."""

from __future__ import annotations

import types

import pytest
from adversary import seal_one_rtt, server_ends_on
from hypothesis import given
from hypothesis import strategies as st
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    client_config,
    handshake,
    make_pair,
    server_config,
)

from quicnet.quic import (
    QuicConfiguration,
    QuicConnection,
    QuicUsageError,
    TransportError,
    ack_frequency,
)
from quicnet.quic import frames as fr
from quicnet.quic.ack_frequency import AckFrequencyRequest, AckPolicy
from quicnet.quic.buffer import Reader, encode_varint
from quicnet.quic.errors import TransportErrorCode
from quicnet.quic.qlog_schema import qlog_frames
from quicnet.quic.records import ACK_FREQUENCY, on_delivered
from quicnet.quic.recovery import ACK_DELAY_ALWAYS, PacketSpace
from quicnet.quic.transport_params import TransportParameters
from quicnet.quic.zero_rtt import remembered_parameters
from quicnet.tls import SessionTicket

TICK = 1 / 30
PV = TransportErrorCode.PROTOCOL_VIOLATION


def v(value: int) -> bytes:
    return encode_varint(value)


def ack_frequency_frame(seq: int, threshold: int, delay_us: int, reordering: int) -> bytes:
    return v(0xAF) + v(seq) + v(threshold) + v(delay_us) + v(reordering)


def connected(**server: object) -> tuple[Simulation, QuicConnection, QuicConnection]:
    sim = make_pair(
        server=dict(server),
        c2s=LinkConfig(latency=0.005),
        s2c=LinkConfig(latency=0.005),
    )
    handshake(sim)
    sim.run_for(0.2)  # HANDSHAKE_DONE, the ACK_FREQUENCY frame and their ACKs
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    server_conn = sim.peer_of(client)
    assert server_conn is not None
    return sim, client, server_conn


def game_ticks(sim: Simulation, client: QuicConnection, server: QuicConnection, ticks: int) -> int:
    """``ticks`` rounds at 30 Hz: the client sends an input, the server a snapshot;
    returns the datagrams the client sent."""
    before = sim.c2s.stats.datagrams
    for _ in range(ticks):
        client.send_datagram(bytes(100))
        server.send_datagram(bytes(300))
        sim.run_for(TICK)
    return sim.c2s.stats.datagrams - before


# Negotiation (§3) -----------------------------------------------------------------------


def test_min_ack_delay_round_trips_and_may_not_exceed_max_ack_delay() -> None:
    params = TransportParameters(max_ack_delay=25, min_ack_delay=1000)
    assert TransportParameters.decode(params.encode(), from_server=True).min_ack_delay == 1000
    assert (
        TransportParameters.decode(TransportParameters().encode(), from_server=True).min_ack_delay
        is None
    )
    too_big = TransportParameters(max_ack_delay=25, min_ack_delay=25001).encode()
    with pytest.raises(TransportError) as info:
        TransportParameters.decode(too_big, from_server=False)
    assert info.value.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR


def test_min_ack_delay_is_advertised_by_default_and_never_above_max_ack_delay() -> None:
    assert QuicConfiguration().min_ack_delay_us == 1000
    assert QuicConfiguration(min_ack_delay=None).min_ack_delay_us is None
    # A max_ack_delay of 0.5 ms goes out as 0 ms: min_ack_delay follows it down.
    assert QuicConfiguration(max_ack_delay=0.0005).min_ack_delay_us == 0
    with pytest.raises(QuicUsageError):
        QuicConfiguration(min_ack_delay=0)


def test_min_ack_delay_is_not_remembered_for_0rtt() -> None:
    stored = TransportParameters(min_ack_delay=1000, initial_max_data=5000).encode()
    ticket = SessionTicket(
        ticket=b"t",
        resumption_psk=bytes(32),
        cipher_suite=0x1301,
        ticket_lifetime=3600,
        ticket_age_add=0,
        received_at=0.0,
        max_early_data_size=0xFFFFFFFF,
        server_name="localhost",
        alpn_protocol="quicnet",
        transport_parameters=stored,
    )
    remembered = remembered_parameters(ticket)
    assert remembered is not None
    assert remembered.initial_max_data == 5000
    assert remembered.min_ack_delay is None


def test_request_values_are_checked() -> None:
    with pytest.raises(QuicUsageError):
        AckFrequencyRequest(max_ack_delay=0)
    with pytest.raises(QuicUsageError):
        AckFrequencyRequest(max_ack_delay=16.384)
    with pytest.raises(QuicUsageError):
        AckFrequencyRequest(max_ack_delay=0.05, ack_eliciting_threshold=-1)


# The frames (§4, §5) ----------------------------------------------------------------------


@given(
    st.integers(0, (1 << 62) - 1),
    st.integers(0, (1 << 62) - 1),
    st.integers(0, (1 << 62) - 1),
    st.integers(0, (1 << 62) - 1),
)
def test_ack_frequency_frame_parses(seq: int, threshold: int, delay: int, reordering: int) -> None:
    r = Reader(ack_frequency_frame(seq, threshold, delay, reordering))
    assert r.varint() == fr.FrameType.ACK_FREQUENCY
    assert fr.parse_frame(r, fr.FrameType.ACK_FREQUENCY) == fr.AckFrequencyFrame(
        seq, threshold, delay, reordering
    )
    assert r.at_end()


@given(st.binary(max_size=40))
def test_any_ack_frequency_body_parses_or_is_a_frame_encoding_error(body: bytes) -> None:
    r = Reader(body)
    try:
        frame = fr.parse_frame(r, fr.FrameType.ACK_FREQUENCY)
    except TransportError as exc:
        assert exc.error_code == TransportErrorCode.FRAME_ENCODING_ERROR
    else:
        assert isinstance(frame, fr.AckFrequencyFrame) and frame.sequence_number >= 0


def test_qlog_names_the_frames() -> None:
    logged = qlog_frames(b"\x1f" + ack_frequency_frame(3, 2, 40000, 0))
    assert logged == [
        {"frame_type": "immediate_ack"},
        {
            "frame_type": "ack_frequency",
            "sequence_number": 3,
            "ack_eliciting_threshold": 2,
            "request_max_ack_delay": 40.0,
            "reordering_threshold": 0,
        },
    ]


# The receiver's rules (§4, §6; RFC 9000 §13.2.1) -----------------------------------------------


def test_an_ack_frequency_frame_is_applied_once_and_in_order() -> None:
    policy = AckPolicy(0.025, 1000)
    policy.on_ack_frequency(1, 9, 50_000, 0)
    assert (policy.ack_eliciting_threshold, policy.max_ack_delay, policy.reordering_threshold) == (
        9,
        0.05,
        0,
    )
    policy.on_ack_frequency(0, 1, 2_000, 1)  # older: ignored (§4)
    policy.on_ack_frequency(1, 1, 2_000, 1)  # repeated: ignored
    assert policy.ack_eliciting_threshold == 9 and policy.max_ack_delay == 0.05


@pytest.mark.parametrize(
    ("min_ack_delay_us", "requested_us"),
    [(None, 50_000), (1000, 999), (1000, (1 << 14) * 1000)],
    ids=["not-offered", "below-min", "2^14-ms"],
)
def test_an_invalid_ack_frequency_is_a_protocol_violation(
    min_ack_delay_us: int | None, requested_us: int
) -> None:
    policy = AckPolicy(0.025, min_ack_delay_us)
    with pytest.raises(TransportError) as info:
        policy.on_ack_frequency(0, 1, requested_us, 1)
    assert info.value.error_code == PV
    assert info.value.frame_type == fr.FrameType.ACK_FREQUENCY


def _receive(space: PacketSpace, policy: AckPolicy, pn: int) -> bool:
    """One ack-eliciting packet ``pn`` as the receive path handles it: ACK at once?"""
    previous = space.largest_received
    space.on_packet_received(pn, 0.0)
    return policy.ack_now(space, pn, previous, False)


def _send_ack(space: PacketSpace) -> None:
    space.largest_ack_sent = space.largest_received


@pytest.mark.parametrize(
    ("threshold", "arrivals"),
    [
        # The draft's §6.2.1 tables: (packet received, immediate ACK?).
        (
            3,
            [
                (0, False),
                (1, False),
                (3, False),
                (4, False),
                (5, True),
                (8, False),
                (9, True),
                (10, True),
            ],
        ),
        (
            5,
            [
                (0, False),
                (1, False),
                (3, False),
                (5, False),
                (6, False),
                (7, True),
                (8, False),
                (9, True),
            ],
        ),
        # RFC 9000 §13.2.1: a threshold of 1 acknowledges any gap and any late packet.
        (1, [(0, False), (1, False), (3, True), (2, True), (4, False)]),
        (0, [(0, False), (5, False), (1, False)]),  # never for reordering
    ],
)
def test_reordering_threshold_follows_the_drafts_examples(
    threshold: int, arrivals: list[tuple[int, bool]]
) -> None:
    policy = AckPolicy(0.025, 1000)
    policy.on_ack_frequency(0, 100, 25_000, threshold)
    space = PacketSpace()
    for pn, immediate in arrivals:
        assert _receive(space, policy, pn) == immediate, pn
        if immediate:
            _send_ack(space)


def test_ce_is_acknowledged_at_once_and_above_threshold_one_only_on_the_first() -> None:
    policy = AckPolicy(0.025, 1000)
    space = PacketSpace()
    for pn in range(3):  # RFC 9000 §13.2.1: every CE-marked packet by default
        space.on_packet_received(pn, 0.0)
        assert policy.ack_now(space, pn, pn - 1, True)
    policy.on_ack_frequency(0, 10, 25_000, 1)
    marks = [False, True, True, False, True]  # §6.4: only the step to CE is urgent
    for pn, ce in enumerate(marks, start=3):
        space.on_packet_received(pn, 0.0)
        assert policy.ack_now(space, pn, pn - 1, ce) == (ce and not marks[pn - 4]), pn


# Two endpoints ------------------------------------------------------------------------------


def test_a_game_server_lets_its_clients_acks_ride_on_their_inputs() -> None:
    """30 Hz inputs and snapshots: without a request a client also sends an ACK-only
    datagram every tick (its 25 ms ACK delay runs out before the next input); asked to
    wait 50 ms, it sends only the inputs, each carrying the ACK."""
    sim, client, server = connected()
    assert client.remote_params is not None and server.remote_params is not None
    assert server.remote_params.min_ack_delay == 1000  # the client offers the extension
    assert game_ticks(sim, client, server, 30) >= 55

    sim, client, server = connected(ack_frequency=AckFrequencyRequest(0.05))
    assert client.acks.max_ack_delay == 0.05
    assert client.acks.largest_sequence == 0
    assert server.recovery.max_ack_delay == 0.05  # §7: the PTO counts what was asked
    assert game_ticks(sim, client, server, 30) <= 31
    # Still acknowledged: nothing the server sent is left waiting for its PTO.
    assert server.recovery.spaces[2].ack_eliciting_in_flight <= 2


def test_no_request_goes_to_a_peer_that_did_not_offer_the_extension() -> None:
    sim = make_pair(
        client={"min_ack_delay": None}, server={"ack_frequency": AckFrequencyRequest(0.05)}
    )
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    server = sim.peer_of(client)
    assert server is not None
    assert server.acks.request is None
    assert client.acks.largest_sequence == -1 and client.acks.max_ack_delay == 0.025
    assert server.recovery.max_ack_delay == 0.025


def test_a_lost_request_is_sent_again() -> None:
    sim, client, server = connected(ack_frequency=AckFrequencyRequest(0.05))
    on_delivered(server, [(ACK_FREQUENCY, 0)], False)  # recovery declares its packet lost
    assert server.pending.ack_frequency and server.pending.waiting
    server.send_datagram(b"next")  # the next packet carries it again
    sim.run_for(0.1)
    assert not server.pending.ack_frequency
    assert client.acks.max_ack_delay == 0.05  # the repeat (same sequence) was ignored


@pytest.mark.parametrize(
    ("frame", "frame_type"),
    [
        (ack_frequency_frame(0, 1, 50_000, 1), fr.FrameType.ACK_FREQUENCY),
        (b"\x1f", fr.FrameType.IMMEDIATE_ACK),
    ],
)
def test_an_ack_frequency_to_an_endpoint_that_never_offered_it_closes_the_connection(
    frame: bytes, frame_type: fr.FrameType
) -> None:
    sim = make_pair(server={"min_ack_delay": None})
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    server = sim.peer_of(client)
    assert server is not None
    termination = server_ends_on(
        sim,
        server,
        seal_one_rtt(client, frame),
        "the client breaks the extension's rule on purpose",
    )
    assert termination.error_code == PV
    assert termination.frame_type == frame_type


@pytest.mark.parametrize(("frames", "immediate"), [(b"\x01", False), (b"\x1f", True)])
def test_immediate_ack_is_answered_without_the_ack_delay(frames: bytes, immediate: bool) -> None:
    """One in-order ack-eliciting packet waits for the ACK delay; with IMMEDIATE_ACK
    (§5) the ACK is queued at once."""
    sim, client, server = connected()
    space = server.recovery.spaces[2]
    assert not space.ack_queued and space.unacked_ack_eliciting == 0
    server.receive_datagram(seal_one_rtt(client, frames), CLIENT_ADDR, sim.now)
    assert space.unacked_ack_eliciting == 1
    assert space.ack_queued is immediate


def _bare_pair(
    client_options: dict[str, object] | None = None, **server: object
) -> tuple[QuicConnection, QuicConnection, float]:
    """A client and a server connection, handshake confirmed and settled, driven by hand."""
    client = QuicConnection(client_config(**(client_options or {})))
    peer = QuicConnection(
        server_config(**server), original_destination_cid=client.original_destination_cid
    )
    now = 1.0
    client.connect(SERVER_ADDR, now)
    for _ in range(40):
        now += 0.01
        for data, _ in client.datagrams_to_send(now):
            peer.receive_datagram(data, CLIENT_ADDR, now)
        for data, _ in peer.datagrams_to_send(now):
            client.receive_datagram(data, SERVER_ADDR, now)
        for conn in (client, peer):
            if (t := conn.next_timer()) is not None and t <= now:
                conn.handle_timer(now)
    assert client.handshake_confirmed
    return client, peer, now


@pytest.mark.parametrize("client_offers", [True, False])
def test_a_probe_carries_immediate_ack_to_a_peer_that_offers_the_extension(
    client_offers: bool,
) -> None:
    """The server's DATAGRAM is lost; its PTO probe reaches the client, which (asked to
    ignore reordering and wait 50 ms) acknowledges at once only because the probe
    carries IMMEDIATE_ACK (§7)."""
    request = AckFrequencyRequest(0.05, reordering_threshold=0)
    if client_offers:
        client, server, now = _bare_pair(ack_frequency=request)
        assert client.acks.largest_sequence == 0 and client.acks.reordering_threshold == 0
    else:  # the same delays, set by hand: no IMMEDIATE_ACK to a peer without the extension
        client, server, now = _bare_pair({"min_ack_delay": None})
        client.acks.max_ack_delay, client.acks.reordering_threshold = 0.05, 0
    server.send_datagram(b"lost")
    assert len(server.datagrams_to_send(now)) == 1  # dropped on the way
    pto = server.next_timer()
    assert pto is not None
    server.handle_timer(pto)
    probes = server.datagrams_to_send(pto)
    assert probes
    space = client.recovery.spaces[2]
    client.receive_datagram(probes[0][0], SERVER_ADDR, pto)
    assert space.ack_queued is client_offers
    if not client_offers:
        assert space.ack_deadline == pytest.approx(pto + 0.05)


# After a migration (§8.4) and when a request is lost (§4) --------------------------------

REQUEST = AckFrequencyRequest(0.05, ack_eliciting_threshold=3, reordering_threshold=2)


def _applied(conn: QuicConnection, sequence: int) -> bool:
    """``conn`` applied the request of that sequence number (and ``REQUEST``'s values)."""
    acks = conn.acks
    return (
        acks.largest_sequence == sequence
        and acks.max_ack_delay == 0.05
        and (acks.ack_eliciting_threshold, acks.reordering_threshold) == (3, 2)
    )


@pytest.mark.parametrize("port_only", [True, False])
def test_a_client_that_migrates_asks_again_once_the_new_path_is_validated(port_only: bool) -> None:
    """The client asks (sequence 0) and moves: once its new path is validated it sends
    sequence 1, which the server applies; the move's non-probing frame was IMMEDIATE_ACK
    (§8.4), not PING, to a server that offered the extension."""
    sim = make_pair(client={"ack_frequency": REQUEST})
    handshake(sim)
    sim.run_for(0.2)
    client = sim.client.connection
    server = sim.server.connection
    assert _applied(server, 0) and client.acks.request is not None
    host, port = CLIENT_ADDR
    sim.rebind_client((host, port + 1) if port_only else ("10.0.5.1", 50000))
    client.migrate(sim.now, port_only=port_only)
    assert client.pending.ping == fr.FrameType.IMMEDIATE_ACK
    assert client.acks.request[2] == 0  # not before the move is confirmed
    sim.run_until(lambda: client.paths.current is not None and not client.paths.current.validating)
    assert client.acks.request is not None and client.acks.request[2] == 1
    sim.run_for(0.5)
    assert _applied(server, 1)
    assert server.peer_address == sim.client.address
    assert client.recovery.max_ack_delay == 0.05  # §7: what the server acknowledged


def test_a_server_asks_again_once_it_validated_a_rebound_client() -> None:
    """NAT rebinding: the server follows the client to its new address, validates it, and
    only then sends its next ACK_FREQUENCY (sequence 1), which the client applies."""
    sim = make_pair(server={"ack_frequency": REQUEST})
    handshake(sim)
    sim.run_for(0.2)
    client = sim.client.connection
    server = sim.server.connection
    assert _applied(client, 0)
    sim.rebind_client(("10.0.6.1", 40000))  # the client's connection never knows
    client.send_datagram(b"after the rebinding")
    sim.run_until(lambda: server.path_migrations == 1)
    current = server.paths.current
    assert current is not None and current.validating  # not confirmed yet
    assert server.acks.request is not None and server.acks.request[2] == 0
    sim.run_until(lambda: not current.validating)
    assert current.validated and server.acks.request[2] == 1
    sim.run_for(0.5)
    assert _applied(client, 1)
    assert client.recovery.spaces[2].ack_eliciting_in_flight == 0  # everything acknowledged
    assert server.acks.in_flight == {}


def test_a_lost_request_is_sent_again_only_while_it_is_the_newest() -> None:
    """§4: a lost ACK_FREQUENCY is sent again unless a newer one went out; the newer one
    is, with its own sequence number."""
    sim, client, server = connected(ack_frequency=REQUEST)
    ack_frequency.ask(server)  # what a confirmed migration does
    server.send_datagram(b"carries sequence 1")
    sim.flush()
    assert not server.pending.ack_frequency and 1 in server.acks.in_flight
    on_delivered(server, [(ACK_FREQUENCY, 0)], False)  # an older one, lost: superseded
    assert not server.pending.ack_frequency
    on_delivered(server, [(ACK_FREQUENCY, 1)], False)  # the newest, lost: again
    assert server.pending.ack_frequency
    server.send_datagram(b"carries it again")
    sim.run_for(0.2)
    assert _applied(client, 1) and server.acks.in_flight == {}


def test_the_pto_counts_the_largest_delay_the_peer_may_be_using() -> None:
    """§7: until acknowledged, a request's delay counts if larger than the acknowledged
    one; an acknowledged older request does not lower what a newer one in flight asks."""
    recovery = types.SimpleNamespace(max_ack_delay=0.025)  # the peer's transport parameter
    acks = AckPolicy(0.025, 1000)
    values = AckFrequencyRequest(0.05).values(1000, recovery)  # type: ignore[arg-type]
    assert values == (1, 50_000, 1)
    acks.make_request(values, recovery)  # type: ignore[arg-type]
    assert acks.on_request_sent() == (ACK_FREQUENCY, 0) and recovery.max_ack_delay == 0.05
    acks.make_request((1, 10_000, 1), recovery)  # type: ignore[arg-type]
    assert acks.on_request_sent() == (ACK_FREQUENCY, 1) and recovery.max_ack_delay == 0.05
    assert not acks.on_request_delivered(0, True, recovery)  # type: ignore[arg-type]
    assert recovery.max_ack_delay == 0.05  # the peer uses 50 ms until it has sequence 1
    assert not acks.on_request_delivered(1, True, recovery)  # type: ignore[arg-type]
    assert recovery.max_ack_delay == 0.01
    assert acks.request is not None and acks.request[1][2] == 1  # sequence 1 on the wire


# §7: the PTO without the peer's max_ack_delay above its Ack-Eliciting Threshold ----------


def _pto_after_lost_packets(count: int, request: AckFrequencyRequest) -> tuple[float, float]:
    """The server, whose ``request`` the client applied and acknowledged, sends ``count``
    packets that are all lost: (how long after the last one its PTO fires, the client's
    max_ack_delay). The PTO fires when next_timer says."""
    client, server, now = _bare_pair(ack_frequency=request)
    assert client.acks.largest_sequence == 0 and server.acks.acked_sequence == 0
    for i in range(count):
        server.send_datagram(bytes([i]))
        assert len(server.datagrams_to_send(now)) == 1  # one packet each, dropped
    assert server.recovery.spaces[2].ack_eliciting_in_flight == count
    pto = server.next_timer()
    assert pto is not None
    server.handle_timer(pto - 1e-6)
    assert server.recovery.pto_count == 0  # not a moment before ...
    server.handle_timer(pto)
    assert server.recovery.pto_count == 1  # ... and then: handle_timer agrees
    return pto - now, client.acks.max_ack_delay


@pytest.mark.parametrize("count", [1, 3, 4, 8])
def test_the_pto_leaves_out_the_ack_delay_only_above_the_threshold(count: int) -> None:
    """§7: with more ack-eliciting packets in flight than the Ack-Eliciting Threshold the
    peer applies (3), it acknowledges without waiting for its max_ack_delay (200 ms), and
    the PTO leaves it out; with that many or fewer, the PTO counts it (RFC 9002 §6.2.1)."""
    duration, delay = _pto_after_lost_packets(count, AckFrequencyRequest(0.2, 3))
    assert delay == 0.2
    if count > 3:
        assert duration < 0.05
    else:
        assert 0.2 < duration < 0.25


def test_the_pto_keeps_the_ack_delay_when_the_peer_ignores_reordering() -> None:
    """With a Reordering Threshold of 0 a loss can leave the peer waiting for its delay
    however many packets were sent: §7, the PTO MUST then be larger than it."""
    duration, _ = _pto_after_lost_packets(8, AckFrequencyRequest(0.2, 3, reordering_threshold=0))
    assert duration > 0.2


def test_the_pto_threshold_is_the_largest_the_peer_may_be_using() -> None:
    """§7: a request waiting or in flight with a larger threshold (or a Reordering
    Threshold of 0) counts until acknowledged, lost or not; once a newer one is
    acknowledged an older one no longer does (the peer ignores it, §4)."""
    recovery = types.SimpleNamespace(max_ack_delay=0.025)
    acks = AckPolicy(0.025, 1000)

    def request(threshold: int, reordering: int = 1) -> int:
        acks.make_request((threshold, 50_000, reordering), recovery)  # type: ignore[arg-type]
        sequence: int = acks.on_request_sent()[1]
        return sequence

    def delivered(sequence: int, acked: bool) -> None:
        assert not acks.on_request_delivered(sequence, acked, recovery)  # type: ignore[arg-type]

    first = request(3)
    assert recovery.peer_ack_threshold == ACK_DELAY_ALWAYS  # nothing acknowledged yet
    delivered(first, True)
    assert recovery.peer_ack_threshold == 3
    acks.make_request((10, 50_000, 1), recovery)  # type: ignore[arg-type]
    assert recovery.peer_ack_threshold == 10  # waiting to be sent
    larger = acks.on_request_sent()[1]
    newer = request(5)
    assert recovery.peer_ack_threshold == 10  # ``larger`` is in flight
    delivered(larger, False)
    assert recovery.peer_ack_threshold == 10  # lost, but it may have arrived
    delivered(newer, True)
    assert recovery.peer_ack_threshold == 5 and acks.in_flight == {}
    delivered(request(5, reordering=0), True)
    assert recovery.peer_ack_threshold == ACK_DELAY_ALWAYS
