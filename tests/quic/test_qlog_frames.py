"""qlog's rendering of packet plaintext (quicnet.quic.qlog_schema.qlog_frames): it reads
the peer's packets before the connection checks them, so it must never raise, and
what it writes must be what was encoded."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicnet.quic.buffer import encode_varint
from quicnet.quic.frames import (
    encode_ack,
    encode_connection_close,
    encode_crypto,
    encode_datagram,
    encode_stream,
)
from quicnet.quic.qlog_schema import qlog_frames


@given(st.binary(max_size=300), st.integers(0, 20))
def test_qlog_frames_never_raises_and_is_json(payload: bytes, exponent: int) -> None:
    frames = qlog_frames(payload, exponent)
    assert json.loads(json.dumps(frames)) == frames
    if payload:
        assert frames and all(isinstance(f["frame_type"], str) for f in frames)
    unknown = [f for f in frames if f["frame_type"] == "unknown"]
    assert not unknown or unknown == [frames[-1]]  # what does not parse ends the list


_ranges = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), min_size=1, max_size=8)


@given(
    _ranges,
    st.integers(0, 1 << 20),
    st.integers(0, 20),
    st.integers(0, 1 << 40),
    st.binary(max_size=64),
    st.booleans(),
)
def test_qlog_frames_match_what_was_encoded(
    gaps_and_lengths: list[tuple[int, int]],
    ack_delay: int,
    exponent: int,
    offset: int,
    data: bytes,
    fin: bool,
) -> None:
    # Inclusive ACK ranges, largest first, from gaps and lengths counted upward.
    ranges: list[tuple[int, int]] = []
    low = 0
    for gap, length in gaps_and_lengths:
        low += gap + (2 if ranges else 0)
        ranges.append((low + length, low))
        low += length
    ranges.reverse()
    payload = (
        encode_ack(ranges, ack_delay)
        + encode_crypto(offset, data)
        + encode_datagram(data)
        + encode_connection_close(0x0A, 0x08, b"why")
        + encode_stream(4, offset, data, fin)
    )
    ack, crypto, datagram, close, stream = qlog_frames(payload, exponent)
    expected_ranges = [[lo] if lo == hi else [lo, hi] for hi, lo in reversed(ranges)]
    assert ack["frame_type"] == "ack" and ack["acked_ranges"] == expected_ranges
    assert ack["ack_delay"] == pytest.approx((ack_delay << exponent) / 1000, abs=1e-3)
    assert crypto == {"frame_type": "crypto", "offset": offset, "length": len(data)}
    assert datagram == {"frame_type": "datagram", "length": len(data)}
    assert close["error_space"] == "transport" and close["error_code"] == "protocol_violation"
    assert close["trigger_frame_type"] == "stream" and close["reason"] == "why"
    expected_stream = {"frame_type": "stream", "stream_id": 4, "offset": offset}
    expected_stream["length"] = len(data)
    if fin:
        expected_stream["fin"] = True
    assert stream == expected_stream


@given(st.integers(0x20, (1 << 62) - 1).filter(lambda t: t not in (0x30, 0x31, 0xAF)), st.binary())
def test_an_unknown_frame_type_is_logged_whole(frame_type: int, rest: bytes) -> None:
    """An extension frame we do not know, after a PING: its full type varint (not the
    varint's first byte) and the length of what is left."""
    tail = encode_varint(frame_type) + rest
    ping, unknown = qlog_frames(b"\x01" + tail)
    assert ping == {"frame_type": "ping"}
    assert unknown == {
        "frame_type": "unknown",
        "raw_frame_type": frame_type,
        "raw_length": len(tail),
    }


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x00, "no_error"),
        (0x0A, "protocol_violation"),
        (0x0D, "crypto_buffer_exceeded"),
        (0x0E, "key_update_error"),  # RFC 9000 §20.1; this connection raises it (RFC 9001 §6)
        (0x0F, "aead_limit_reached"),
        (0x10, "no_viable_path"),
        (0x128, "crypto_error_0x128"),  # TLS alert 40, handshake_failure
        (0x11, 0x11),  # not a name qlog defines: the number
    ],
)
def test_transport_error_codes_use_qlog_names(code: int, name: str | int) -> None:
    (close,) = qlog_frames(encode_connection_close(code, 0, b""))
    assert close["error_code"] == name and close["raw_error_code"] == code
