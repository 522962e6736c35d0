"""ReceiveHalf keeps an in-order frame as it is until read(): whatever comes before that
read, and however reads and frames interleave, the bytes come out whole and in order."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic.streams import ReceiveHalf


def test_frames_in_order_before_a_read_come_out_together() -> None:
    half = ReceiveHalf(1000)
    half.receive(0, b"hello", False)  # in order, nothing buffered: kept as it is
    half.receive(5, b" world", False)  # more before the read
    half.receive(11, b"!", True)
    assert half.read() == b"hello world!"
    assert half.read() == b""
    assert half.finished and half.read_offset == 12 and half.fragments == 0


def test_an_in_order_frame_then_a_hole_then_the_rest() -> None:
    half = ReceiveHalf(1000)
    half.receive(0, b"abc", False)
    half.receive(6, b"ghi", False)  # beyond a hole
    assert half.fragments == 2
    assert half.read() == b"abc"
    half.receive(3, b"def", False)
    assert half.read() == b"defghi"


def test_reset_drops_what_was_kept() -> None:
    half = ReceiveHalf(1000)
    half.receive(0, b"abc", False)
    half.reset(7, 3)
    assert half.read() == b""


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=1, max_size=2000), data=st.data())
def test_any_order_with_reads_at_any_time_reassembles(payload: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=20)))
    chunks = list(itertools.pairwise([0, *cuts, len(payload)]))
    chunks += data.draw(st.lists(st.sampled_from(chunks), max_size=8))  # duplicates
    # Mostly in order (the fast path), sometimes shuffled (the buffer).
    if data.draw(st.booleans()):
        chunks = data.draw(st.permutations(chunks))
    half = ReceiveHalf(len(payload) + 1)
    got = bytearray()
    for start, stop in chunks:
        half.receive(start, payload[start:stop], stop == len(payload))
        if data.draw(st.booleans()):  # read now, or leave it for later
            got += half.read()
    while chunk := half.read():
        got += chunk
    assert bytes(got) == payload
    assert half.finished
