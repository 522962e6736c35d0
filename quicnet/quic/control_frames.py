"""Pending control frames written into a 1-RTT packet (RFC 9000 §13.3).

:class:`~quicnet.quic.pending.PendingFrames` holds what waits to be sent; the
sender calls :func:`write_control_frames` while it fills a packet, and each frame
written leaves its record (:mod:`~quicnet.quic.records`) so that a loss queues it
again. Frames are written in place, most urgent first: HANDSHAKE_DONE,
ACK_FREQUENCY, connection IDs, flow-control credit, STOP_SENDING, NEW_TOKEN, then
PING or IMMEDIATE_ACK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.buffer import append_varint
from quicnet.quic.records import (
    HANDSHAKE_DONE,
    MAX_DATA,
    MAX_STREAM_DATA,
    MAX_STREAMS,
    NEW_CONNECTION_ID,
    NEW_TOKEN,
    RETIRE_CONNECTION_ID,
    STOP_SENDING,
)
from quicnet.tls.events import ONE_RTT_EPOCH

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.recovery import FrameRecord

__all__ = ["write_control_frames"]

_R_HANDSHAKE_DONE: FrameRecord = (HANDSHAKE_DONE,)
_R_MAX_DATA: FrameRecord = (MAX_DATA,)


def write_control_frames(
    c: QuicConnection, buf: bytearray, frames: list[FrameRecord], limit: int
) -> None:
    """Write the pending control frames that fit before ``limit`` into the 1-RTT payload
    ``buf``, each leaving its record in ``frames``; what does not fit stays pending."""
    pending = c.pending
    streams = c.streams
    if pending.handshake_done and len(buf) < limit:
        buf.append(0x1E)
        pending.handshake_done = False
        frames.append(_R_HANDSHAKE_DONE)
    request = c.acks.request
    if pending.ack_frequency and request is not None and limit - len(buf) >= len(request[1]):
        buf += request[1]  # ACK_FREQUENCY (draft-ietf-quic-ack-frequency §4)
        pending.ack_frequency = False
        frames.append(c.acks.on_request_sent())
    # Drained queues go back to the shared empty tuple (PendingFrames): no list kept.
    if pending.new_connection_ids:
        queued = pending.new_connection_ids
        while queued and limit - len(buf) >= 45:
            entry = queued.pop(0)
            sequence_number = entry.sequence_number
            cid = entry.cid
            if sequence_number < 0x40:  # a one-byte varint: a connection's first 64 CIDs
                buf += bytes((0x18, sequence_number, 0, len(cid)))  # retire_prior_to 0
            else:
                buf.append(0x18)
                append_varint(buf, sequence_number)
                buf.append(0)  # retire_prior_to
                buf.append(len(cid))
            buf += cid
            buf += entry.stateless_reset_token
            frames.append((NEW_CONNECTION_ID, entry))
        if not queued:
            pending.new_connection_ids = ()
    if pending.retire_connection_ids:
        retiring = pending.retire_connection_ids
        while retiring and limit - len(buf) >= 9:
            seq = retiring.pop(0)
            buf.append(0x19)
            append_varint(buf, seq)
            frames.append((RETIRE_CONNECTION_ID, seq))
        if not retiring:
            pending.retire_connection_ids = ()
    if pending.max_data and limit - len(buf) >= 9:
        buf.append(0x10)
        append_varint(buf, streams.max_data_local)
        pending.max_data = False
        frames.append(_R_MAX_DATA)
    while pending.max_stream_data:
        if limit - len(buf) < 17:
            break
        stream_id = pending.max_stream_data.pop()
        receiver = streams.receiver_of(stream_id)
        if receiver is None:
            continue
        buf.append(0x11)
        append_varint(buf, stream_id)
        append_varint(buf, receiver.max_stream_data)
        frames.append((MAX_STREAM_DATA, stream_id))
    while pending.max_streams:
        if limit - len(buf) < 9:
            break
        bidi = pending.max_streams.pop()
        buf.append(0x12 if bidi else 0x13)
        append_varint(buf, streams.max_streams_local[bidi])
        frames.append((MAX_STREAMS, bidi))
    for stream_id, code in list(pending.stop_sending.items()) if pending.stop_sending else ():
        if limit - len(buf) < 17:
            break
        del pending.stop_sending[stream_id]
        buf.append(0x05)
        append_varint(buf, stream_id)
        append_varint(buf, code)
        frames.append((STOP_SENDING, stream_id, code))
    token = pending.new_token
    if token and limit - len(buf) >= len(token) + 3:
        buf.append(0x07)  # NEW_TOKEN (RFC 9000 §19.7)
        append_varint(buf, len(token))
        buf += token
        pending.new_token = b""
        frames.append((NEW_TOKEN, token))
    if pending.ping and len(buf) < limit:
        buf.append(pending.ping)  # PING, or IMMEDIATE_ACK
        pending.ping = 0
    pending.settle()
    if c.spaces[ONE_RTT_EPOCH].sender.has_pending():
        pending.waiting = True  # post-handshake CRYPTO that did not fit rides this flag
