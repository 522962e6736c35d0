"""ECN (RFC 9000 §13.4, RFC 9002 §7.1): counts, ACK_ECN, validation, CE as congestion.

The simulated links carry each datagram's codepoint (``Link.ecn`` changes it on
the way, as a router or a middlebox would); the loopback tests check that the
Linux drivers really mark and read the IP header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from simnet import (
    LinkConfig,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.crypto import dev_identity
from quicnet.io import aio
from quicnet.io.udp import ECN_PLATFORM, UdpClient, UdpServer
from quicnet.quic import (
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
)
from quicnet.quic.buffer import Reader
from quicnet.quic.congestion import NewReno
from quicnet.quic.ecn import CE, ECT0, ECT1, NOT_ECT, EcnState, EcnValidation
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.frames import AckFrame, FrameType, encode_ack, parse_frame

# ACK_ECN on the wire -----------------------------------------------------------------------


@st.composite
def _ack_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Valid ACK ranges, largest first, with the gaps §19.3.1 requires."""
    top = draw(st.integers(0, 2**40))
    ranges = []
    for _ in range(draw(st.integers(1, 6))):
        length = draw(st.integers(0, min(top, 1000)))
        ranges.append((top, top - length))
        next_top = top - length - 2 - draw(st.integers(0, 1000))
        if next_top < 0:
            break
        top = next_top
    return ranges


_COUNT = st.integers(0, 2**62 - 1)


@given(_ack_ranges(), st.integers(0, 2**62 - 1), st.tuples(_COUNT, _COUNT, _COUNT))
def test_ack_ecn_round_trips(
    ranges: list[tuple[int, int]], delay: int, counts: tuple[int, int, int]
) -> None:
    data = encode_ack(ranges, delay, counts)
    assert data[0] == FrameType.ACK_ECN
    r = Reader(data)
    frame = parse_frame(r, r.varint())
    assert frame == AckFrame(tuple(ranges), delay, counts)
    assert r.at_end()


@given(_ack_ranges(), st.tuples(_COUNT, _COUNT, _COUNT), st.data())
def test_truncated_ack_ecn_is_a_frame_encoding_error(
    ranges: list[tuple[int, int]], counts: tuple[int, int, int], data: st.DataObject
) -> None:
    frame = encode_ack(ranges, 0, counts)
    cut = data.draw(st.integers(1, len(frame) - 1))
    r = Reader(frame[:cut])
    with pytest.raises(TransportError) as info:
        parse_frame(r, r.varint())
    assert info.value.error_code == TransportErrorCode.FRAME_ENCODING_ERROR


# The simulated network ------------------------------------------------------------------------


def _remark(
    change: Callable[[int, int], int],
) -> Callable[[int, bytes, float], int]:
    """A link ECN function from ``change(index, codepoint)`` (index: datagrams seen)."""
    seen = [0]

    def ecn(codepoint: int, data: bytes, now: float) -> int:
        seen[0] += 1
        return change(seen[0], codepoint)

    return ecn


class _Recorder(NewReno):
    """NewReno that records each congestion event CE marks started."""

    def __init__(self, max_datagram_size: int) -> None:
        super().__init__(max_datagram_size)
        self.ce_signals = 0
        self.ce_reductions: list[float] = []

    def on_congestion_event(self, time_sent: float, now: float) -> None:
        self.ce_signals += 1
        before = self.congestion_window
        super().on_congestion_event(time_sent, now)
        if self.congestion_window < before:
            self.ce_reductions.append(now)


def _recorded_pair() -> tuple[Simulation, list[_Recorder]]:
    """A 2 MB/s, 20 ms link whose client runs a :class:`_Recorder` (the last one made is the
    connection's), handshake done."""
    recorders: list[_Recorder] = []

    def controller(size: int) -> _Recorder:
        recorders.append(_Recorder(size))
        return recorders[-1]

    link = LinkConfig(latency=0.02, bandwidth=2_000_000, queue_limit=1 << 20)
    sim = make_pair(seed=2, c2s=link, client={"congestion_controller": controller})
    handshake(sim)
    return sim, recorders


def _upload(sim: Simulation, size: int, *, timeout: float = 120.0) -> None:
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(sim.client.connection, payloads(7, [size]))
    sim.run_until(lambda: collector.complete(sent), timeout=timeout, max_steps=2_000_000)
    for sid, data in sent.items():
        assert bytes(collector.data[sid]) == data


def test_a_clean_path_validates_and_every_packet_is_counted() -> None:
    sim = make_pair(seed=1)
    handshake(sim)
    _upload(sim, 300_000)
    client = sim.client.connection
    server = sim.server.connection
    assert client.ecn.state == EcnValidation.CAPABLE
    assert server.ecn.state == EcnValidation.CAPABLE
    # Everything the client sent in 1-RTT once capable arrived ECT(0); nothing else.
    got = server.ecn.received_counts(2)
    assert got[ECT0] > 200 and got[ECT1] == 0 and got[CE] == 0
    assert client.ecn_marked > 0 or not client.datagrams_to_send(sim.now)
    assert sim.c2s.stats.dropped == 0 and client.recovery.packets_lost == 0


def test_ce_marks_halve_the_window_once_per_round_trip_with_nothing_lost() -> None:
    sim, recorders = _recorded_pair()
    # A router past the handshake marks CE in bursts: 6 datagrams in every 60, so that
    # several ACK frames of one round trip report a rise in the CE count.
    sim.c2s.ecn = _remark(lambda i, cp: CE if cp == ECT0 and i % 60 < 6 else cp)
    start = sim.now
    _upload(sim, 2_000_000)
    client = sim.client.connection
    cc = recorders[-1]
    server_counts = sim.server.connection.ecn.received_counts(2)
    assert server_counts[CE] >= 100
    assert client.ecn.state == EcnValidation.CAPABLE  # CE marks are no failure
    assert client.recovery.packets_lost == 0 and sim.c2s.stats.queue_drops == 0
    # The window reacted, but at most once per round trip (§7.3.2's recovery period),
    # though more ACKs than that reported a rise in the CE count.
    assert cc.ce_reductions
    min_rtt = client.recovery.rtt.min_rtt
    rounds = (sim.now - start) / min_rtt
    assert len(cc.ce_reductions) <= rounds + 1
    assert all(
        b - a >= min_rtt for a, b in zip(cc.ce_reductions, cc.ce_reductions[1:], strict=False)
    )
    assert cc.ce_signals >= 2 * len(cc.ce_reductions)


def test_unmarked_path_keeps_growing_the_window() -> None:
    """The control for the test above: the same transfer, no CE, no reduction."""
    sim, recorders = _recorded_pair()
    _upload(sim, 2_000_000)
    assert recorders[-1].ce_signals == 0 and recorders[-1].ssthresh == float("inf")


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("bleach", lambda i, cp: NOT_ECT),  # a middlebox that clears the field
        ("remark", lambda i, cp: ECT1 if cp == ECT0 else cp),  # counts we never sent
        ("bleach-later", lambda i, cp: NOT_ECT if i > 30 else cp),  # after validation
    ],
)
def test_a_path_that_mangles_marks_fails_validation_and_marking_stops(
    name: str, change: Callable[[int, int], int]
) -> None:
    sim = make_pair(seed=3)
    sim.c2s.ecn = _remark(change)
    marked_after_failure: list[int] = []
    sent_codepoints: list[int] = []

    def watch(codepoint: int, data: bytes, now: float) -> int:
        sent_codepoints.append(codepoint)
        if sim.client.impl.ecn.state == EcnValidation.FAILED:  # type: ignore[union-attr]
            marked_after_failure.append(codepoint)
        return codepoint

    c2s_ecn = sim.c2s.ecn
    sim.c2s.ecn = lambda cp, data, now: c2s_ecn(watch(cp, data, now), data, now)
    handshake(sim)
    _upload(sim, 200_000)
    client = sim.client.connection
    assert client.ecn.state == EcnValidation.FAILED
    assert ECT0 in sent_codepoints  # it did try
    # Once failed, nothing more went out marked (the batch in progress aside).
    assert marked_after_failure and set(marked_after_failure[-50:]) == {NOT_ECT}
    # The other direction is untouched and validates.
    assert sim.server.connection.ecn.state == EcnValidation.CAPABLE


def test_a_path_that_drops_marked_datagrams_stops_marking_and_still_connects() -> None:
    sim = make_pair(seed=4)
    last = [NOT_ECT]

    def note(codepoint: int, data: bytes, now: float) -> int:
        last[0] = codepoint
        return codepoint

    sim.c2s.ecn = note
    sim.c2s.filter = lambda data, now: last[0] == NOT_ECT  # an ECN black hole
    handshake(sim, timeout=60)
    _upload(sim, 50_000)
    client = sim.client.connection
    assert client.ecn.state == EcnValidation.UNKNOWN  # never validated, never marks
    assert client.ecn_marked == 0
    assert sim.server.connection.ecn.received_counts(2)[ECT0] == 0


def test_an_endpoint_marks_per_connection() -> None:
    """One server socket, two clients: the connection whose path bleached its marks
    stops marking, the other keeps marking (the endpoint's ``ecn_marked`` split)."""
    sim = make_pair(seed=6)
    second = sim.add_client(QuicConnection(client_config()), ("10.0.0.9", 5555))
    sent: dict[str, list[int]] = {"client": [], "client2": []}

    def record(name: str, bleach: bool) -> Callable[[int, bytes, float], int]:
        def ecn(codepoint: int, data: bytes, now: float) -> int:
            sent[name].append(codepoint)
            return NOT_ECT if bleach else codepoint

        return ecn

    sim.s2c.ecn = record("client", False)
    sim.links_of(second)[1].ecn = record("client2", True)
    handshake(sim)
    sim.connect(second)
    sim.run_until(lambda: second.impl.handshake_complete, what="second handshake")
    # The server sends to both at once: their datagrams leave in the same calls.
    for conn in sim.server.impl.connections.values():  # type: ignore[union-attr]
        sid = conn.create_stream()
        conn.send_stream_data(sid, payloads(1, [100_000])[0], end_stream=True)
    sim.run_for(5.0)
    states = {c.ecn.state for c in set(sim.server.impl.connections.values())}  # type: ignore[union-attr]
    assert states == {EcnValidation.CAPABLE, EcnValidation.FAILED}
    assert sent["client"][-20:] == [ECT0] * 20  # still marked
    assert sent["client2"][-20:] == [NOT_ECT] * 20  # stopped
    assert len(sent["client2"]) > 40


def test_ecn_off_in_the_configuration_marks_nothing() -> None:
    sim = make_pair(seed=5, client={"ecn": False})
    handshake(sim)
    _upload(sim, 20_000)
    assert sim.client.connection.ecn.state == EcnValidation.DISABLED
    assert sim.server.connection.ecn.received == [0] * 12


# Validation rules one by one (§13.4.2.1) ---------------------------------------------------


class _Space:
    def __init__(self) -> None:
        self.next_packet_number = 0


class _Recovery:
    def __init__(self) -> None:
        self.spaces = (_Space(), _Space(), _Space())
        self.pto_count = 0


class _Pn:
    def __init__(self, pn: int) -> None:
        self.packet_number = pn


def _sent(state: EcnState, recovery: _Recovery, n: int, path: object = "p") -> list[_Pn]:
    """One batch of ``n`` 1-RTT packets; returns them."""
    state.begin_batch(recovery, path)
    space = recovery.spaces[2]
    first = space.next_packet_number
    space.next_packet_number += n
    return [_Pn(pn) for pn in range(first, first + n)]


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ((4, 0, 0), EcnValidation.CAPABLE),
        ((3, 0, 1), EcnValidation.CAPABLE),  # CE counts as arrived-marked
        ((3, 0, 0), EcnValidation.FAILED),  # fewer than newly acknowledged
        ((5, 0, 0), EcnValidation.FAILED),  # more ECT(0) than ever sent
        ((4, 1, 0), EcnValidation.FAILED),  # ECT(1), never sent
        (None, EcnValidation.FAILED),  # marked packets acknowledged without counts
    ],
)
def test_validation_rules(counts: tuple[int, int, int] | None, state: str) -> None:
    ecn, recovery = EcnState(True), _Recovery()
    acked = _sent(ecn, recovery, 4)
    ecn.on_ack(2, acked, counts, True, 4)
    assert ecn.state == state


def test_falling_counts_fail_but_reordered_frames_are_not_checked() -> None:
    ecn, recovery = EcnState(True), _Recovery()
    ecn.on_ack(2, _sent(ecn, recovery, 4), (4, 0, 0), True, 4)
    more = _sent(ecn, recovery, 2)
    # A late ACK frame that does not raise the largest acknowledged: its older counts
    # are not held against the path.
    assert ecn.on_ack(2, more[:1], (4, 0, 0), False, 6) == 0
    assert ecn.state == EcnValidation.CAPABLE
    ecn.on_ack(2, more[1:], (3, 0, 2), True, 6)
    assert ecn.state == EcnValidation.FAILED


def test_ce_rise_is_returned_once() -> None:
    ecn, recovery = EcnState(True), _Recovery()
    assert ecn.on_ack(2, _sent(ecn, recovery, 4), (2, 0, 2), True, 4) == 2
    assert ecn.on_ack(2, _sent(ecn, recovery, 2), (4, 0, 2), True, 6) == 0


def test_testing_then_unknown_then_capable_then_a_new_path_tests_again() -> None:
    ecn, recovery = EcnState(True), _Recovery()
    testing = _sent(ecn, recovery, 10)
    assert ecn.marking
    unmarked = _sent(ecn, recovery, 5)  # ten sent: wait for an ACK, unmarked
    assert ecn.state == EcnValidation.UNKNOWN and not ecn.marking
    # The ACK covers marked and unmarked packets: only the marked ones need counts.
    ecn.on_ack(2, testing + unmarked, (10, 0, 0), True, 15)
    assert ecn.state == EcnValidation.CAPABLE
    _sent(ecn, recovery, 3)
    assert ecn.marking
    _sent(ecn, recovery, 1, path="another")
    assert ecn.state == EcnValidation.TESTING and ecn.marking


def test_new_reno_reacts_to_ce_once_per_recovery_period() -> None:
    cc = NewReno(1200)
    window = cc.congestion_window
    cc.on_congestion_event(1.0, 1.1)
    assert cc.congestion_window == window // 2
    cc.on_congestion_event(1.05, 1.2)  # sent before the period began: no second reduction
    assert cc.congestion_window == window // 2
    cc.on_congestion_event(1.15, 1.3)
    assert cc.congestion_window == max(window // 4, cc.minimum_window)
    assert cc.bytes_in_flight == 0


# Real sockets on loopback -------------------------------------------------------------------

_LINUX_ONLY = pytest.mark.skipif(
    not ECN_PLATFORM, reason="ECN marks are read and set only on Linux (IP_RECVTOS, IP_TOS)"
)


def _configs() -> tuple[QuicConfiguration, QuicConfiguration]:
    ident = dev_identity()
    server = QuicConfiguration(
        is_client=False, certificate_chain=ident.certificate_chain, private_key=ident.private_key
    )
    client = QuicConfiguration(trust_roots=[ident.trust_root], server_name="localhost")
    return client, server


@_LINUX_ONLY
def test_udp_driver_marks_ect0_and_the_receiver_counts_it() -> None:
    client_config, server_config = _configs()
    server = UdpServer(server_config)
    client = UdpClient(client_config, server.local_address)
    got = 0
    try:
        assert client.ecn and server.ecn
        deadline = time.monotonic() + 20
        while got < 100_000 and time.monotonic() < deadline:
            for _, event in server.poll(0.002):
                if isinstance(event, StreamDataReceived):
                    got += len(event.data)
            for event in client.poll(0.002):
                if isinstance(event, HandshakeCompleted):
                    conn = client.connection
                    conn.send_stream_data(conn.create_stream(), b"e" * 100_000, end_stream=True)
        assert got == 100_000
        (server_conn,) = set(server.endpoint.connections.values())
        # Loopback keeps the TOS byte: the marks the client's socket set arrived.
        assert server_conn.ecn.received_counts(2)[ECT0] > 10
        assert client.connection.ecn.state == EcnValidation.CAPABLE
        assert server_conn.ecn.state == EcnValidation.CAPABLE
    finally:
        client.close_socket()
        server.close_socket()


@_LINUX_ONLY
def test_udp_driver_without_ecn_in_the_configuration_reads_no_marks() -> None:
    client_config, server_config = _configs()
    server = UdpServer(server_config)
    client = UdpClient(dataclasses.replace(client_config, ecn=False), server.local_address)
    try:
        assert not client.ecn and server.ecn
        deadline = time.monotonic() + 20
        done = False
        while not done and time.monotonic() < deadline:
            server.poll(0.002)
            done = any(isinstance(e, HandshakeCompleted) for e in client.poll(0.002))
        assert done
        (server_conn,) = set(server.endpoint.connections.values())
        # The server marked, the client neither marked nor read marks: its plain ACKs
        # fail the server's validation, which stops marking (a clean degradation).
        while server_conn.ecn.state != EcnValidation.FAILED and time.monotonic() < deadline:
            server.poll(0.002)
            client.poll(0.002)
        assert server_conn.ecn.state == EcnValidation.FAILED
        assert server_conn.ecn.received == [0] * 12
        assert client.connection.ecn.received == [0] * 12
    finally:
        client.close_socket()
        server.close_socket()


@_LINUX_ONLY
def test_asyncio_driver_marks_and_reads_ect0() -> None:
    client_config, server_config = _configs()
    received: list[int] = []

    async def scenario() -> tuple[int, str, bool]:
        server_conns = []
        all_in = asyncio.Event()

        def handler(conn: QuicConnection, event: QuicEvent) -> None:
            if isinstance(event, StreamDataReceived):
                server_conns.append(conn)
                received.append(len(event.data))
                if event.end_stream:
                    all_in.set()

        server = await aio.serve("127.0.0.1", 0, server_config, handler)
        client = await aio.connect("127.0.0.1", server.local_address[1], client_config)
        try:
            conn = client.connection
            conn.send_stream_data(conn.create_stream(), b"a" * 50_000, end_stream=True)
            client.transmit()
            await all_in.wait()
            assert sum(received) == 50_000
            server_conn = server_conns[0]
            return (
                server_conn.ecn.received_counts(2)[ECT0],
                conn.ecn.state,
                server.ecn and client.ecn,
            )
        finally:
            await client.close()
            await server.close()

    ect0, state, both = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert both
    assert ect0 > 10
    assert state == EcnValidation.CAPABLE


@given(
    batches=st.lists(st.integers(1, 12), min_size=1, max_size=5),
    counts=st.lists(
        st.tuples(st.integers(0, 70), st.integers(0, 2), st.integers(0, 6)), min_size=1, max_size=5
    ),
)
def test_one_rtt_fast_path_checks_as_on_ack(
    batches: list[int], counts: list[tuple[int, int, int]]
) -> None:
    """on_one_rtt_ack (the receiver's common case) answers and moves state exactly as
    on_ack for a 1-RTT frame with counts that raised the largest acknowledged."""
    general, fast, recovery_g, recovery_f = EcnState(True), EcnState(True), _Recovery(), _Recovery()
    for n, frame_counts in zip(batches, counts, strict=False):
        acked_g = _sent(general, recovery_g, n)
        acked_f = _sent(fast, recovery_f, n)
        pn = recovery_g.spaces[2].next_packet_number
        expected = general.on_ack(2, acked_g, frame_counts, True, pn)
        assert fast.on_one_rtt_ack(acked_f, frame_counts, pn) == expected
        assert (fast.state, fast.validating) == (general.state, general.validating)
        assert fast.begin_batch(recovery_f, "p") == general.begin_batch(recovery_g, "p")
