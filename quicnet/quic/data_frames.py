"""The data frames written into a packet being filled: CRYPTO (RFC 9000 §19.6),
DATAGRAM (RFC 9221 §4), STREAM and RESET_STREAM (§19.8, §19.4).

The sender (:mod:`~quicnet.quic.sender`) calls these while it fills a packet, after
the ACK and the control frames (:mod:`~quicnet.quic.control_frames`); each frame
that needs action on acknowledgement or loss leaves its record
(:mod:`~quicnet.quic.records`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.buffer import append_varint
from quicnet.quic.records import CRYPTO, DATAGRAM, RESET_STREAM, STREAM

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.recovery import FrameRecord
    from quicnet.tls import Epoch

__all__ = ["write_crypto", "write_datagrams", "write_stream_frames"]


def write_crypto(
    c: QuicConnection, buf: bytearray, frames: list[FrameRecord], epoch: Epoch, limit: int
) -> None:
    """CRYPTO frames (§19.6) of ``epoch``'s pending handshake data, as much as fits."""
    crypto = c.spaces[epoch].sender
    while True:
        avail = limit - len(buf) - 1 - 8 - 2  # type, offset, length (upper bounds)
        if avail <= 0:
            return
        chunk = crypto.next_range(avail, 1 << 62)
        if chunk is None:
            return
        offset, data, _fin, _new = chunk
        buf.append(0x06)
        append_varint(buf, offset)
        append_varint(buf, len(data))
        buf += data
        frames.append((CRYPTO, epoch, offset, len(data)))


def write_datagrams(
    c: QuicConnection, buf: bytearray, frames: list[FrameRecord], limit: int, idle_ack: bool
) -> None:
    """DATAGRAM frames (RFC 9221) in queue order, as many as fit; never retransmitted."""
    queue = c.datagram_queue
    # A record only for an event to report, or for the sender's idle IMMEDIATE_ACK
    # (``idle_ack``) to see: a lost DATAGRAM is never sent again, so most need none (and
    # their packets no on_delivered call when acknowledged).
    record = c.configuration.datagram_ack_events or idle_ack
    while queue:
        datagram_id, data = queue[0]
        size = len(data)
        if len(buf) + size + 3 > limit:
            return
        del queue[0]
        if size < 0x40:
            buf += bytes((0x31, size))
        elif size < 0x4000:
            buf += (0x314000 | size).to_bytes(3, "big")
        else:
            buf.append(0x31)
            append_varint(buf, size)
        buf += data
        if record:
            frames.append((DATAGRAM, datagram_id))


def write_stream_frames(
    c: QuicConnection, buf: bytearray, frames: list[FrameRecord], limit: int
) -> None:
    """STREAM frames (§19.8; and RESET_STREAM, §19.4), round robin over streams with data
    to send."""
    streams = c.streams
    queue = streams.send_queue
    for _ in range(len(queue)):
        room = limit - len(buf)
        if room < 24:
            return
        stream_id = queue.pop(0)
        sender = streams.sender_of(stream_id)
        if sender is None:
            continue
        if sender.reset_pending and sender.reset_error_code is not None:
            buf.append(0x04)
            append_varint(buf, stream_id)
            append_varint(buf, sender.reset_error_code)
            append_varint(buf, sender.final_size)
            sender.reset_pending = False
            frames.append((RESET_STREAM, stream_id))
            continue
        chunk = sender.next_range(room - 19, streams.connection_credit)  # 1+8+8+2
        if chunk is not None:
            offset, data, fin, new_bytes = chunk
            streams.data_sent += new_bytes
            # Type 0x08 | OFF (0x04) | LEN (0x02) | FIN (0x01), §19.8; one- and
            # two-byte varints (the first streams, short data) written inline.
            buf.append(0x0A | (0x04 if offset else 0) | (0x01 if fin else 0))
            if stream_id < 0x40:
                buf.append(stream_id)
            else:
                append_varint(buf, stream_id)
            if offset:
                append_varint(buf, offset)
            n = len(data)
            if n < 0x40:
                buf.append(n)
            elif n < 0x4000:
                buf += (0x4000 | n).to_bytes(2, "big")
            else:
                append_varint(buf, n)
            buf += data
            frames.append((STREAM, stream_id, offset, n, fin))
        if sender.has_pending():
            queue.append(stream_id)
