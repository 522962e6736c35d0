"""Stream halves, the crypto buffer, the stream manager's rules, and RangeSet.

ReceiveHalf must reassemble any permutation/duplication of overlapping
chunks exactly, and enforce final size and flow control with the RFC 9000
error codes; SendHalf must resend exactly the lost ranges and free what was
acknowledged; RangeSet must behave like a set of integers.
"""

from __future__ import annotations

import itertools
import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic.crypto_streams import CryptoSpace
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import StopSendingReceived, StreamDataReceived, StreamReset
from quicnet.quic.frames import (
    MaxStreamDataFrame,
    ResetStreamFrame,
    StopSendingFrame,
    StreamFrame,
)
from quicnet.quic.rangeset import RangeSet
from quicnet.quic.stream_manager import StreamManager
from quicnet.quic.streams import QuicStream, ReceiveHalf, SendHalf
from quicnet.quic.transport_params import TransportParameters

FCE = TransportErrorCode.FLOW_CONTROL_ERROR
FSE = TransportErrorCode.FINAL_SIZE_ERROR


def _read_all(half: ReceiveHalf) -> bytes:
    out = bytearray()
    while chunk := half.read():
        out += chunk
    return bytes(out)


# ReceiveHalf -------------------------------------------------------------------------------


def test_in_order_and_out_of_order() -> None:
    half = ReceiveHalf(1000)
    assert half.receive(5, b"world", False) == 10
    assert half.read() == b""  # a hole at 0-5
    assert half.receive(0, b"hello", False) == 0
    assert half.read() == b"helloworld"
    assert half.read_offset == 10 and not half.finished
    half.receive(10, b"!", True)
    assert half.read() == b"!" and half.finished and half.final_size == 11


def test_overlaps_and_duplicates_are_harmless() -> None:
    half = ReceiveHalf(1000)
    half.receive(2, b"cdef", False)
    half.receive(0, b"abcd", False)
    half.receive(1, b"bcdefgh", False)
    half.receive(0, b"ab", False)
    assert _read_all(half) == b"abcdefgh"
    half.receive(3, b"def", False)  # entirely below read_offset
    assert half.read() == b""
    assert half.highest_offset == 8


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=0, max_size=3000), data=st.data())
def test_any_permutation_and_duplication_reassembles(payload: bytes, data: st.DataObject) -> None:
    # Random (overlapping) chunks covering the payload, some duplicated, in any order.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=30)))
    bounds = [0, *cuts, len(payload)]
    chunks = list(itertools.pairwise(bounds))
    extra = data.draw(
        st.lists(st.tuples(st.integers(0, len(payload)), st.integers(0, len(payload))), max_size=15)
    )
    chunks += [(min(a, b), max(a, b)) for a, b in extra]
    chunks += data.draw(st.lists(st.sampled_from(chunks), max_size=10))
    order = data.draw(st.permutations(chunks))
    half = ReceiveHalf(len(payload) + 1)
    got = bytearray()
    for start, stop in order:
        half.receive(start, payload[start:stop], stop == len(payload))
        got += _read_all(half)
    assert bytes(got) == payload
    assert half.finished and half.final_size == len(payload)


def test_flow_control_error() -> None:
    half = ReceiveHalf(100)
    half.receive(0, bytes(100), False)  # exactly the limit is fine
    with pytest.raises(TransportError) as info:
        half.receive(100, b"x", False)
    assert info.value.error_code == FCE
    with pytest.raises(TransportError) as info:
        ReceiveHalf(100).receive(99, b"xy", False)
    assert info.value.error_code == FCE


def test_credit_follows_what_the_application_consumes() -> None:
    """RFC 9000 §4.2: MAX_STREAM_DATA grows with consumption, not with delivery."""
    half = ReceiveHalf(100)
    half.receive(0, bytes(50), False)
    assert len(half.read()) == 50
    assert half.max_stream_data == 100  # delivered, not yet consumed: no new credit
    assert half.consume(49) is None
    assert half.consume(1) == 150 and half.max_stream_data == 150
    half.receive(50, bytes(100), False)  # now allowed
    half.receive(150, b"", True)
    half.read()
    assert half.consume(100) is None  # the final size is known: no more credit


@pytest.mark.parametrize(
    "frames",
    [
        [(0, b"abcdef", True), (0, b"abcdefg", False)],  # data beyond the final size
        [(0, b"abcdef", True), (0, b"abc", True)],  # a different final size
        [(0, b"abcdef", False), (0, b"abc", True)],  # final size below data received
        [(4, b"ef", True), (0, b"abcdefgh", False)],
    ],
)
def test_final_size_errors(frames: list[tuple[int, bytes, bool]]) -> None:
    half = ReceiveHalf(1000)
    *ok, bad = frames
    for offset, data, fin in ok:
        half.receive(offset, data, fin)
    with pytest.raises(TransportError) as info:
        half.receive(*bad)
    assert info.value.error_code == FSE


def test_repeated_fin_with_the_same_final_size_is_fine() -> None:
    half = ReceiveHalf(1000)
    half.receive(0, b"abc", True)
    half.receive(0, b"abc", True)
    half.receive(3, b"", True)
    assert _read_all(half) == b"abc" and half.finished


def test_reset_stream_rules() -> None:
    half = ReceiveHalf(100)
    half.receive(0, b"abcdef", False)
    assert half.reset(7, 10) == 4  # grew from 6 to 10
    assert half.reset_error_code == 7 and half.final_size == 10
    assert half.read() == b""  # buffered data is dropped
    half.receive(0, b"abcdefghij", True)  # late data within the final size: ignored
    with pytest.raises(TransportError) as info:
        half.receive(8, b"xyz", False)  # beyond the final size
    assert info.value.error_code == FSE
    with pytest.raises(TransportError) as info:
        ReceiveHalf(100).reset(0, 101)
    assert info.value.error_code == FCE
    below = ReceiveHalf(100)
    below.receive(0, b"abcdef", False)
    with pytest.raises(TransportError) as info:
        below.reset(0, 5)  # final size below what was received
    assert info.value.error_code == FSE
    known = ReceiveHalf(100)
    known.receive(0, b"abc", True)
    with pytest.raises(TransportError) as info:
        known.reset(0, 4)  # RESET_STREAM changing a known final size
    assert info.value.error_code == FSE


# CRYPTO buffer ---------------------------------------------------------------------------------


def test_crypto_buffer_slides_with_what_tls_consumed() -> None:
    space = CryptoSpace(100)
    assert space.receive(0, bytes(60)) == bytes(60)
    assert space.receive(100, bytes(60)) == b""  # ends at 160 = 60 read + 100 buffer
    with pytest.raises(TransportError) as info:
        space.receive(150, bytes(11))  # ends at 161: beyond the buffer
    assert info.value.error_code == TransportErrorCode.CRYPTO_BUFFER_EXCEEDED
    assert space.receive(60, bytes(40)) == bytes(100)


# SendHalf ----------------------------------------------------------------------------------------


def test_send_half_hands_out_ranges_within_both_limits() -> None:
    half = SendHalf(max_stream_data=1000)
    half.write(bytes(range(250)) * 8, False)  # 2000 bytes
    first = half.next_range(300, connection_credit=10_000)
    assert first is not None and first[:1] == (0,) and len(first[1]) == 300 and first[3] == 300
    second = half.next_range(5000, connection_credit=100)  # connection credit limits it
    assert second is not None and second[0] == 300 and len(second[1]) == 100
    third = half.next_range(5000, connection_credit=10_000)  # stream limit: 1000
    assert third is not None and third[0] == 400 and len(third[1]) == 600
    assert half.next_range(5000, 10_000) is None and not half.has_pending()
    half.max_stream_data = 2000
    assert half.has_pending()
    rest = half.next_range(5000, 10_000)
    assert rest is not None and rest[0] == 1000 and len(rest[1]) == 1000


def test_lost_ranges_are_resent_exactly_and_for_free() -> None:
    data = bytes(random.Random(1).randbytes(1000))
    half = SendHalf(1 << 20)
    half.write(data, True)
    sent = []
    while (chunk := half.next_range(300, 1 << 20)) is not None:
        sent.append(chunk)
    assert [(o, len(d), fin) for o, d, fin, _ in sent] == [
        (0, 300, False),
        (300, 300, False),
        (600, 300, False),
        (900, 100, True),
    ]
    half.on_ack(0, 300, False)
    half.on_ack(600, 300, False)
    half.on_lost(300, 300, False)
    half.on_lost(900, 100, True)
    resent = []
    while (chunk := half.next_range(1000, connection_credit=0)) is not None:
        resent.append(chunk)
    # Only the lost bytes come back (no connection credit needed: they were sent before).
    assert [(o, d, fin, new) for o, d, fin, new in resent] == [
        (300, data[300:600], False, 0),
        (900, data[900:], True, 0),
    ]


def test_acknowledged_data_is_freed() -> None:
    half = SendHalf(1 << 20)
    half.write(bytes(1000), False)
    while half.next_range(100, 1 << 20) is not None:
        pass
    assert half.buffered == 1000
    half.on_ack(100, 100, False)  # out of order: nothing freed yet
    assert half.buffered == 1000
    half.on_ack(0, 100, False)
    assert half.buffered == 800
    half.on_ack(200, 800, False)
    assert half.buffered == 0
    half.on_lost(0, 300, False)  # a late loss report of acknowledged data: nothing to resend
    assert not half.has_pending()


def test_loss_after_partial_ack_resends_only_the_unacknowledged_part() -> None:
    half = SendHalf(1 << 20)
    half.write(bytes(range(100)), False)
    assert half.next_range(100, 1 << 20) is not None
    half.on_ack(40, 20, False)  # a retransmission of 40..60 was acknowledged meanwhile
    half.on_lost(0, 100, False)
    ranges = []
    while (chunk := half.next_range(1000, 0)) is not None:
        ranges.append((chunk[0], len(chunk[1])))
    assert ranges == [(0, 40), (60, 40)]


def test_fin_only_and_fin_acknowledgement() -> None:
    half = SendHalf(100)
    half.write(b"abc", False)
    assert half.next_range(100, 100) == (0, b"abc", False, 3)
    half.write(b"", True)
    assert half.next_range(100, 100) == (3, b"", True, 0)
    half.on_ack(0, 3, False)
    assert not half.all_acked
    half.on_lost(3, 0, True)
    assert half.next_range(100, 100) == (3, b"", True, 0)
    half.on_ack(3, 0, True)
    assert half.all_acked
    with pytest.raises(QuicUsageError):
        half.write(b"more", False)


def test_reset_stops_everything() -> None:
    half = SendHalf(100)
    half.write(bytes(50), False)
    half.next_range(10, 100)
    half.reset(9)
    assert half.reset_pending and half.reset_error_code == 9
    assert half.next_range(100, 100) is None
    half.on_lost(0, 10, False)
    assert half.next_range(100, 100) is None
    with pytest.raises(QuicUsageError):
        half.write(b"x", False)


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(0, 3000),
    chunk=st.integers(1, 700),
    seed=st.integers(0, 1000),
)
def test_send_half_delivers_everything_through_random_loss(
    size: int, chunk: int, seed: int
) -> None:
    """Whatever is lost gets resent until the receiver holds every byte and the fin."""
    rng = random.Random(seed)
    data = rng.randbytes(size)
    sender, receiver = SendHalf(1 << 20), ReceiveHalf(1 << 20)
    sender.write(data, True)
    in_flight: deque[tuple[int, bytes, bool]] = deque()
    got = bytearray()
    for _ in range(10_000):
        while (r := sender.next_range(chunk, 1 << 20)) is not None:
            in_flight.append(r[:3])
        if not in_flight:
            break
        offset, piece, fin = in_flight.popleft()
        if rng.random() < 0.3:
            sender.on_lost(offset, len(piece), fin)
        else:
            receiver.receive(offset, piece, fin)
            got += _read_all(receiver)
            sender.on_ack(offset, len(piece), fin)
    assert bytes(got) == data and receiver.finished
    assert sender.all_acked and sender.buffered == 0


# Stream manager rules ------------------------------------------------------------------------------


def _manager(*, is_client: bool, **local: int) -> tuple[StreamManager, deque[object]]:
    events: deque[object] = deque()
    params = TransportParameters(
        initial_max_data=local.get("max_data", 10_000),
        initial_max_stream_data_bidi_local=1000,
        initial_max_stream_data_bidi_remote=1000,
        initial_max_stream_data_uni=1000,
        initial_max_streams_bidi=local.get("bidi", 4),
        initial_max_streams_uni=local.get("uni", 2),
    )
    manager = StreamManager(is_client=is_client, local=params, events=events)  # type: ignore[arg-type]
    manager.set_remote_parameters(params)
    return manager, events


def test_stream_ids_and_limits() -> None:
    client, _ = _manager(is_client=True, bidi=2, uni=1)
    assert [client.open(True), client.open(True)] == [0, 4]
    assert client.open(False) == 2
    with pytest.raises(QuicUsageError):
        client.open(True)
    with pytest.raises(QuicUsageError):
        client.open(False)
    server, _ = _manager(is_client=False)
    assert [server.open(True), server.open(False)] == [1, 3]


def test_peer_stream_rules() -> None:
    server, events = _manager(is_client=False, bidi=2)
    server.on_stream(StreamFrame(4, 0, b"hi", False), 0x08)  # opens 0 and 4 implicitly
    assert set(server.streams) == {0, 4}
    assert events.popleft() == StreamDataReceived(4, b"hi", False)
    with pytest.raises(TransportError) as info:
        server.on_stream(StreamFrame(8, 0, b"x", False), 0x08)  # beyond MAX_STREAMS
    assert info.value.error_code == TransportErrorCode.STREAM_LIMIT_ERROR
    with pytest.raises(TransportError) as info:
        server.on_stream(StreamFrame(1, 0, b"x", False), 0x08)  # our stream, never opened
    assert info.value.error_code == TransportErrorCode.STREAM_STATE_ERROR
    uni = server.open(False)  # 3: our send-only stream
    with pytest.raises(TransportError) as info:
        server.on_stream(StreamFrame(uni, 0, b"x", False), 0x08)
    assert info.value.error_code == TransportErrorCode.STREAM_STATE_ERROR
    with pytest.raises(TransportError) as info:  # MAX_STREAM_DATA for the peer's send-only
        server.on_max_stream_data(MaxStreamDataFrame(2, 10), 0x11)
    assert info.value.error_code == TransportErrorCode.STREAM_STATE_ERROR


def test_connection_flow_control() -> None:
    server, _ = _manager(is_client=False, max_data=1500)
    # Out of order, so nothing is consumed (and no new credit is given) meanwhile.
    server.on_stream(StreamFrame(0, 200, bytes(800), False), 0x08)
    server.on_stream(StreamFrame(4, 499, b"x", False), 0x08)
    assert server.data_received == 1500  # exactly the limit
    with pytest.raises(TransportError) as info:
        server.on_stream(StreamFrame(4, 500, b"x", False), 0x08)  # 1501 > 1500
    assert info.value.error_code == FCE


def test_connection_window_is_extended_as_data_is_consumed() -> None:
    server, events = _manager(is_client=False, max_data=2000)
    server.on_stream(StreamFrame(0, 0, bytes(1000), False), 0x08)
    assert events and not server.pending.max_data  # queued for the application only
    server.on_data_consumed(0, 1000)
    assert server.pending.max_data and server.max_data_local == 3000
    server.on_stream(StreamFrame(4, 0, bytes(1000), False), 0x08)  # would exceed 2000 before
    assert server.data_received == 2000


def test_a_reset_stream_gives_back_the_credit_of_what_it_never_delivered() -> None:
    server, _ = _manager(is_client=False, max_data=2000)
    server.on_stream(StreamFrame(0, 500, bytes(500), False), 0x08)  # a hole: nothing delivered
    server.on_reset_stream(ResetStreamFrame(0, 7, 1000), 0x04)
    assert server.data_consumed == 1000 and server.pending.max_data


def test_reset_and_stop_sending_events() -> None:
    server, events = _manager(is_client=False)
    server.on_stream(StreamFrame(0, 0, b"abc", False), 0x08)
    events.clear()
    server.on_reset_stream(ResetStreamFrame(0, 5, 10), 0x04)
    server.on_reset_stream(ResetStreamFrame(0, 5, 10), 0x04)  # a retransmission: one event
    assert list(events) == [StreamReset(0, 5)]
    assert server.data_received == 10  # the final size counts against MAX_DATA
    events.clear()
    server.on_stream(StreamFrame(4, 0, b"x", False), 0x08)
    events.clear()
    server.send(4, b"reply", False)
    server.on_stop_sending(StopSendingFrame(4, 6), 0x05)
    assert list(events) == [StopSendingReceived(4, 6)]
    assert server.streams[4].sender is not None
    assert server.streams[4].sender.reset_error_code == 6


def test_finished_peer_streams_raise_max_streams() -> None:
    server, _ = _manager(is_client=False, uni=1)
    server.on_stream(StreamFrame(2, 0, b"all", True), 0x08)
    assert 2 not in server.streams  # read to the end: forgotten
    assert server.max_streams_local[False] == 2 and False in server.pending.max_streams
    server.on_stream(StreamFrame(2, 0, b"all", True), 0x08)  # a late duplicate is ignored
    server.on_stream(StreamFrame(6, 0, b"next", True), 0x08)  # the new slot is usable


def _wide_manager(max_data: int, stream_window: int) -> StreamManager:
    params = TransportParameters(
        initial_max_data=max_data,
        initial_max_stream_data_bidi_local=stream_window,
        initial_max_stream_data_bidi_remote=stream_window,
        initial_max_streams_bidi=8,
    )
    manager = StreamManager(is_client=False, local=params, events=deque())
    manager.set_remote_parameters(params)
    return manager


@pytest.mark.parametrize("order", ["descending", "ascending", "across streams"])
def test_fragmenting_stream_data_is_bounded(order: str) -> None:
    """RFC 9000 §21.7: 1-byte frames with holes between them stop at a fixed bound.

    The attack cost O(n^2) in the range set (and its memory grew with n); now the
    buffered ranges over all streams are capped and the peer gets PROTOCOL_VIOLATION.
    """
    manager = _wide_manager(max_data=4 << 20, stream_window=1 << 20)
    limit = manager.max_fragments
    assert limit == 8192  # one range per 512 bytes of the 4 MiB connection window
    offsets = [2 * i + 1 for i in range(200_000 // 8)]
    frames: list[tuple[int, int]] = []
    if order == "descending":
        frames = [(0, o) for o in reversed(offsets)]
    elif order == "ascending":
        frames = [(0, o) for o in offsets]
    else:
        frames = [(4 * s, o) for o in offsets[:2000] for s in range(8)]
    sent = 0
    with pytest.raises(TransportError) as info:
        for stream_id, offset in frames:
            manager.on_stream(StreamFrame(stream_id, offset, b"x", False), 0x0E)
            sent += 1
            assert manager.fragments <= limit
    assert info.value.error_code == TransportErrorCode.PROTOCOL_VIOLATION
    assert sent == limit


def test_ordinary_loss_stays_far_below_the_fragment_bound() -> None:
    """Full-sized frames with every other one lost: a 1 MiB window holds ~450 holes."""
    manager = _wide_manager(max_data=4 << 20, stream_window=1 << 20)
    for offset in range(0, (1 << 20) - 2400, 2400):
        manager.on_stream(StreamFrame(0, offset + 1200, bytes(1200), False), 0x0E)
    assert 400 < manager.fragments < manager.max_fragments
    for offset in range(0, (1 << 20) - 2400, 2400):  # the retransmissions fill the holes
        manager.on_stream(StreamFrame(0, offset, bytes(1200), False), 0x0E)
    assert manager.fragments <= 1


def test_fragmented_crypto_data_is_bounded() -> None:
    space = CryptoSpace(1 << 16)
    with pytest.raises(TransportError) as info:
        for offset in range(1, 1 << 15, 2):
            space.receive(offset, b"x")
    assert info.value.error_code == TransportErrorCode.CRYPTO_BUFFER_EXCEEDED


def test_quic_stream_halves_by_id() -> None:
    assert QuicStream(0, is_client=True, receive_window=1, send_limit=1).receiver is not None
    uni_ours = QuicStream(2, is_client=True, receive_window=1, send_limit=1)
    assert uni_ours.receiver is None and uni_ours.sender is not None
    uni_theirs = QuicStream(3, is_client=True, receive_window=1, send_limit=1)
    assert uni_theirs.sender is None and uni_theirs.receiver is not None


# RangeSet ------------------------------------------------------------------------------------------

# Empty subtractions are left to test_rangeset_empty_subtract_is_a_no_op (a known bug).
_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["add", "trim"]), st.integers(0, 200), st.integers(0, 40)),
        st.tuples(
            st.sampled_from(["subtract", "overlap"]), st.integers(0, 200), st.integers(1, 40)
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_rangeset_behaves_like_a_set(ops: list[tuple[str, int, int]]) -> None:
    ranges = RangeSet()
    reference: set[int] = set()
    for op, start, length in ops:
        stop = start + length
        if op == "add":
            ranges.add(start, stop)
            reference |= set(range(start, stop))
        elif op == "subtract":
            ranges.subtract(start, stop)
            reference -= set(range(start, stop))
        elif op == "trim":
            ranges.trim_below(start)
            reference = {x for x in reference if x >= start}
        else:  # the members of [start, stop) as clipped ranges
            got = {x for a, b in ranges.overlapping(start, stop) for x in range(a, b)}
            assert got == {x for x in reference if start <= x < stop}
        # Same members, and a canonical form: sorted, disjoint, non-adjacent, non-empty.
        members = {x for a, b in ranges for x in range(a, b)}
        assert members == reference
        pairs = list(ranges)
        assert all(a < b for a, b in pairs)
        assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(pairs))
        for x in range(0, 245, 7):
            assert (x in ranges) == (x in reference)
        assert bool(ranges) == bool(reference) and len(ranges) == len(pairs)
    assert ranges.descending() == [(b - 1, a) for a, b in reversed(list(ranges))]


def test_rangeset_basics() -> None:
    r = RangeSet()
    r.add(5)
    r.add(7)
    r.add(6)
    assert list(r) == [(5, 8)]
    r.add(0, 2)
    r.add(10, 10)  # empty: ignored
    assert list(r) == [(0, 2), (5, 8)]
    assert r.first == (0, 2) and r.last == (5, 8)
    assert r.shift() == (0, 2) and list(r) == [(5, 8)]
    r.add(1, 20)
    assert list(r) == [(1, 20)]
    r.subtract(5, 10)
    assert list(r) == [(1, 5), (10, 20)]
    r.trim_below(12)
    assert list(r) == [(12, 20)]


def test_rangeset_empty_subtract_is_a_no_op() -> None:
    r = RangeSet()
    r.add(0, 10)
    r.subtract(4, 4)
    assert list(r) == [(0, 10)]


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=0, max_size=400), min_size=1, max_size=8),
    seed=st.integers(0, 10_000),
)
def test_send_half_any_ack_order_frees_exactly_the_acknowledged_prefix(
    pieces: list[bytes], seed: int
) -> None:
    """Acknowledgements in any order, duplicated, mixed with losses: every range handed
    out carries the bytes written at its offset, and the buffer holds exactly what lies
    past the acknowledged prefix (the in-order fast paths of next_range and on_ack
    against a model of which bytes were acknowledged)."""
    rng = random.Random(seed)
    data = b"".join(pieces)
    sender = SendHalf(1 << 20)
    acked = [False] * len(data)
    in_flight: list[tuple[int, int, bool]] = []
    written = 0
    for _ in range(20_000):
        if written < len(pieces) and rng.random() < 0.3:
            sender.write(pieces[written], written == len(pieces) - 1)
            written += 1
        while (r := sender.next_range(rng.randint(1, 300), 1 << 20)) is not None:
            offset, piece, fin, _ = r
            assert piece == data[offset : offset + len(piece)]
            in_flight.append((offset, len(piece), fin))
        if not in_flight:
            if written == len(pieces):
                break
            continue
        i = rng.randrange(len(in_flight))
        offset, length, fin = in_flight[i]
        if rng.random() < 0.2:
            del in_flight[i]
            sender.on_lost(offset, length, fin)
        else:
            if rng.random() < 0.8:  # else acknowledged again later (a duplicate ACK)
                del in_flight[i]
            sender.on_ack(offset, length, fin)
            acked[offset : offset + length] = [True] * length
        prefix = acked.index(False) if False in acked else len(acked)
        assert sender.buffered == sender.offset - min(prefix, sender.offset)
    assert sender.all_acked and sender.buffered == 0 and all(acked)


def test_data_acknowledged_twice_does_not_hold_the_buffer() -> None:
    """A range declared lost and resent, then acknowledged in both packets (§13.3): the
    second acknowledgement comes after the range left the buffer and must not keep the
    data after it from being freed."""
    sender = SendHalf(1 << 20)
    sender.write(b"a" * 100 + b"b" * 100, True)
    first = sender.next_range(100, 1 << 20)
    second = sender.next_range(100, 1 << 20)
    assert first is not None and second is not None
    sender.on_lost(0, 100, False)  # declared lost (spuriously): resent
    resent = sender.next_range(100, 1 << 20)
    assert resent is not None and resent[0] == 0
    sender.on_ack(0, 100, False)  # the retransmission
    sender.on_ack(0, 100, False)  # the original, late
    assert sender.buffered == 100
    sender.on_ack(100, 100, True)
    assert sender.buffered == 0 and sender.all_acked
