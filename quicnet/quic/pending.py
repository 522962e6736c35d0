"""Control frames waiting for a packet (RFC 9000 §13.3).

The application and the receive path queue them here; the sender drains them
into the next packet it builds (:mod:`~quicnet.quic.control_frames` writes them),
and what a lost packet carried is put back.
``waiting`` is the one cheap answer to "is there anything to send?": the hot
path reads one attribute instead of asking every part of the connection.

Each frame is recorded on the packet that carries it as a small tuple (see
:mod:`quicnet.quic.records`), never as a closure, so acknowledging or losing a
packet is a loop over data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from quicnet.quic.cids import LocalCid

__all__ = ["PendingFrames"]


class PendingFrames:
    """HANDSHAKE_DONE, PING, flow-control credit, STOP_SENDING, CID, NEW_TOKEN and
    ACK_FREQUENCY frames to send."""

    __slots__ = (
        "ack_frequency",
        "handshake_done",
        "max_data",
        "max_stream_data",
        "max_streams",
        "new_connection_ids",
        "new_token",
        "ping",
        "retire_connection_ids",
        "stop_sending",
        "waiting",
    )

    def __init__(self) -> None:
        #: Something below is queued (may be stale-True; the sender settles it).
        self.waiting = False
        self.handshake_done = False
        self.ack_frequency = False  # the frame is the AckPolicy's request
        #: The frame type of the ack-eliciting frame asked for: 0 none, PING (0x01), or
        #: IMMEDIATE_ACK (0x1f, draft-ietf-quic-ack-frequency §5), which also elicits one.
        self.ping = 0
        self.max_data = False  # the value is the stream manager's at sending time
        # Short lists, not sets: usually empty, and an empty set costs four times as much.
        # Until the first frame of a kind is queued, the shared empty tuple stands in for
        # its list: most connections never queue most kinds, and an empty list is one more
        # object per connection for the garbage collector to track (the readers only test
        # truthiness and pop while non-empty, which a tuple answers the same way).
        self.max_stream_data: list[int] | tuple[()] = ()
        self.max_streams: list[bool] | tuple[()] = ()  # True: bidirectional
        self.stop_sending: dict[int, int] = {}
        self.new_connection_ids: list[LocalCid] | tuple[()] = ()
        self.retire_connection_ids: list[int] | tuple[()] = ()
        self.new_token = b""

    def settle(self) -> None:
        """Recompute ``waiting`` after the sender took what fitted."""
        self.waiting = bool(
            self.handshake_done
            or self.ack_frequency
            or self.ping
            or self.max_data
            or self.max_stream_data
            or self.max_streams
            or self.stop_sending
            or self.new_connection_ids
            or self.retire_connection_ids
            or self.new_token
        )

    # Queued by the connection, the stream manager and the CID manager ----------------------
    def queue_handshake_done(self) -> None:
        """HANDSHAKE_DONE (RFC 9000 §19.20): a server's, at handshake completion."""
        self.handshake_done = self.waiting = True

    def queue_ack_frequency(self) -> None:
        """ACK_FREQUENCY (draft-ietf-quic-ack-frequency §4): our request to the peer."""
        self.ack_frequency = self.waiting = True

    def queue_ping(self, *, immediate_ack: bool = False) -> None:
        """PING (§19.2): something for the peer to acknowledge; ``immediate_ack``: an
        IMMEDIATE_ACK instead, to acknowledge at once (a peer that offered the extension).
        """
        if immediate_ack:
            self.ping = 0x1F
        elif not self.ping:
            self.ping = 0x01
        self.waiting = True

    def queue_max_data(self) -> None:
        """MAX_DATA (§19.9); the value is the stream manager's when the frame is written."""
        self.max_data = self.waiting = True

    def queue_max_stream_data(self, stream_id: int) -> None:
        """MAX_STREAM_DATA (§19.10) for ``stream_id``, once; its value is read when written."""
        queued = self.max_stream_data
        if not queued:
            self.max_stream_data = [stream_id]
        elif stream_id not in queued:
            queued.append(stream_id)
        self.waiting = True

    def queue_max_streams(self, bidirectional: bool) -> None:
        """MAX_STREAMS (§19.11) for one stream type, once; its value is read when written."""
        queued = self.max_streams
        if not queued:
            self.max_streams = [bidirectional]
        elif bidirectional not in queued:
            queued.append(bidirectional)
        self.waiting = True

    def queue_stop_sending(self, stream_id: int, error_code: int) -> None:
        """STOP_SENDING (§19.5) for ``stream_id`` (a later code replaces an unsent one)."""
        self.stop_sending[stream_id] = error_code
        self.waiting = True

    def queue_new_connection_id(self, entry: LocalCid) -> None:
        """NEW_CONNECTION_ID (§19.15) for a CID of ours."""
        queued = self.new_connection_ids
        if queued:
            queued.append(entry)
        else:
            self.new_connection_ids = [entry]
        self.waiting = True

    def queue_retire_connection_id(self, sequence_number: int) -> None:
        """RETIRE_CONNECTION_ID (§19.16) for the peer's CID ``sequence_number``."""
        queued = self.retire_connection_ids
        if queued:
            queued.append(sequence_number)
        else:
            self.retire_connection_ids = [sequence_number]
        self.waiting = True

    def queue_new_token(self, token: bytes) -> None:
        """NEW_TOKEN (§19.7): a server's address-validation token for the next connection."""
        self.new_token = token
        self.waiting = True

    @property
    def credit(self) -> bool:
        """MAX_DATA or MAX_STREAM_DATA is waiting (worth sending at once)."""
        return self.max_data or bool(self.max_stream_data)
