"""Frame records: what a sent packet carried, one small tuple per frame, and what
becomes of each when recovery reports the packet acknowledged or lost.

A record's first item is its kind (below); the rest is what acting on it needs.
Nothing is retransmitted as bytes (RFC 9000 §13.3): a lost STREAM or CRYPTO range
is sent again from its stream, a lost control frame is queued again with its
newest value, a DATAGRAM is reported lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from quicnet.quic.events import DatagramAcknowledged, DatagramLost
from quicnet.quic.recovery import FrameRecord

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = [
    "ACK_FREQUENCY",
    "CRYPTO",
    "DATAGRAM",
    "HANDSHAKE_DONE",
    "IDLE_IMMEDIATE_ACK",
    "MAX_DATA",
    "MAX_STREAMS",
    "MAX_STREAM_DATA",
    "NEW_CONNECTION_ID",
    "NEW_TOKEN",
    "PMTU_PROBE",
    "RESET_STREAM",
    "RETIRE_CONNECTION_ID",
    "STOP_SENDING",
    "STREAM",
    "on_delivered",
    "requeue_crypto",
]

# Frame record kinds: the first item of each record tuple.
CRYPTO = 0  # (CRYPTO, epoch, offset, length)
STREAM = 1  # (STREAM, stream_id, offset, length, fin)
RESET_STREAM = 2  # (RESET_STREAM, stream_id)
DATAGRAM = 3  # (DATAGRAM, datagram_id)
HANDSHAKE_DONE = 4  # (HANDSHAKE_DONE,)
MAX_DATA = 5  # (MAX_DATA,)
MAX_STREAM_DATA = 6  # (MAX_STREAM_DATA, stream_id)
MAX_STREAMS = 7  # (MAX_STREAMS, bidirectional)
STOP_SENDING = 8  # (STOP_SENDING, stream_id, error_code)
NEW_CONNECTION_ID = 9  # (NEW_CONNECTION_ID, LocalCid)
RETIRE_CONNECTION_ID = 10  # (RETIRE_CONNECTION_ID, sequence_number)
NEW_TOKEN = 11  # (NEW_TOKEN, token)
PMTU_PROBE = 12  # (PMTU_PROBE, PathMtu, probe_id, size)
ACK_FREQUENCY = 13  # (ACK_FREQUENCY, sequence_number)
IDLE_IMMEDIATE_ACK = 14  # (IDLE_IMMEDIATE_ACK,): sent with the last packet before idle


def on_delivered(c: QuicConnection, frames: Sequence[FrameRecord], acked: bool) -> None:
    """Recovery reports a packet acknowledged or lost: act on each frame it carried
    (acknowledged: done; lost: sent again, or its newest value queued, §13.3)."""
    streams = c.streams
    pending = c.pending
    report_datagrams = c.configuration.datagram_ack_events
    for record in frames:
        kind = record[0]
        if kind == STREAM:
            _, stream_id, offset, length, fin = record
            sender = streams.sender_of(stream_id)
            if sender is None:
                continue
            if acked:
                sender.on_ack(offset, length, fin)
                if sender.fin_acked:  # (else the send half is not done: nothing to forget)
                    streams.on_sender_done(stream_id)
            else:
                sender.on_lost(offset, length, fin)
                streams.schedule(stream_id)
        elif kind == DATAGRAM:
            if report_datagrams:
                event = DatagramAcknowledged(record[1]) if acked else DatagramLost(record[1])
                c.event_queue.append(event)
        elif kind == CRYPTO:
            _, epoch, offset, length = record
            crypto = c.spaces[epoch].sender
            if acked:
                crypto.on_ack(offset, length, False)
            else:
                crypto.on_lost(offset, length, False)
                pending.waiting = True  # a 1-RTT CRYPTO resend goes with the control frames
        elif kind == RESET_STREAM:
            sender = streams.sender_of(record[1])
            if sender is None:
                continue
            if acked:
                sender.reset_acked = True
                streams.on_sender_done(record[1])
            else:
                sender.reset_pending = True
                streams.schedule(record[1])
        elif kind == RETIRE_CONNECTION_ID:
            c.cids.on_retire_delivered(record[1], acked)
        elif kind == PMTU_PROBE:  # the search goes on (RFC 8899 §5.2)
            pmtu = record[1]
            (pmtu.on_probe_acked if acked else pmtu.on_probe_lost)(record[2], record[3])
        elif kind == ACK_FREQUENCY:  # draft-ietf-quic-ack-frequency §4, §7
            if c.acks.on_request_delivered(record[1], acked, c.recovery):
                pending.queue_ack_frequency()  # lost and still the newest: again
        elif kind == IDLE_IMMEDIATE_ACK:  # draft-ietf-quic-ack-frequency §8.1.1
            c.sender.idle_ack = True  # that flight is over: the next idle period gets one
        elif acked:
            continue
        elif kind == HANDSHAKE_DONE:
            pending.queue_handshake_done()
        elif kind == MAX_DATA:
            pending.queue_max_data()
        elif kind == MAX_STREAM_DATA:
            pending.queue_max_stream_data(record[1])
        elif kind == MAX_STREAMS:
            pending.queue_max_streams(record[1])
        elif kind == STOP_SENDING:
            pending.queue_stop_sending(record[1], record[2])
        elif kind == NEW_CONNECTION_ID:
            pending.queue_new_connection_id(record[1])
        elif kind == NEW_TOKEN:
            pending.queue_new_token(record[1])


def requeue_crypto(c: QuicConnection, space_id: int) -> None:
    """Send a space's unacknowledged CRYPTO data again (PTO probes, Retry, §6.2.4)."""
    for packet in c.recovery.spaces[space_id].sent.values():
        for record in packet.frames:
            if record[0] == CRYPTO:
                c.spaces[record[1]].sender.on_lost(record[2], record[3], False)
