"""All streams of a connection: creation limits, connection flow control, stream frames."""

from __future__ import annotations

from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import QuicEvent, StopSendingReceived, StreamDataReceived, StreamReset
from quicnet.quic.frames import (
    MaxStreamDataFrame,
    MaxStreamsFrame,
    ResetStreamFrame,
    StopSendingFrame,
    StreamFrame,
)
from quicnet.quic.pending import PendingFrames
from quicnet.quic.streams import (
    QuicStream,
    ReceiveHalf,
    SendHalf,
    stream_is_bidirectional,
    stream_is_client_initiated,
)
from quicnet.quic.transport_params import TransportParameters

__all__ = ["StreamManager"]

#: The fewest buffered stream ranges a connection may hold before it is an attack (§21.7);
#: larger connection windows allow one range per 512 bytes of window.
MIN_FRAGMENT_LIMIT = 1024


class StreamManager:
    """The streams of a connection: opening them within the stream limits (RFC 9000
    §4.6), connection flow control (§4.1), and the stream frames from the peer."""

    __slots__ = (
        "_events",
        "_held",
        "_remote_params",
        "data_consumed",
        "data_received",
        "data_sent",
        "fragments",
        "is_client",
        "local",
        "max_data_local",
        "max_data_remote",
        "max_fragments",
        "max_streams_local",
        "max_streams_remote",
        "next_local_index",
        "opened_remote",
        "pending",
        "send_queue",
        "streams",
    )

    def __init__(
        self,
        *,
        is_client: bool,
        local: TransportParameters,
        events: list[QuicEvent],
        pending: PendingFrames | None = None,
    ) -> None:
        self.is_client = is_client
        #: Where MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS and STOP_SENDING wait to be sent.
        self.pending = pending if pending is not None else PendingFrames()
        self.local = local
        self._events = events
        self.streams: dict[int, QuicStream] = {}
        # Connection-level flow control (§4.1).
        self.max_data_local = local.initial_max_data  # what we allow
        self.data_received = 0  # highest offsets summed over streams
        self.data_consumed = 0
        self.max_data_remote = 0  # what the peer allows
        self.data_sent = 0  # new bytes sent, summed
        # Reassembly state (§21.7): separate byte ranges buffered over all streams.
        self.fragments = 0
        self.max_fragments = max(MIN_FRAGMENT_LIMIT, local.initial_max_data // 512)
        # Stream limits (§4.6), indexed by "bidirectional?" (False: 0, True: 1). Pairs of
        # ints as tuples, rebuilt when a stream opens or a limit moves: the garbage
        # collector stops tracking a tuple of ints, where each list would stay one more
        # tracked object per connection.
        self.max_streams_local = (local.initial_max_streams_uni, local.initial_max_streams_bidi)
        self.max_streams_remote = (0, 0)
        self.opened_remote = (0, 0)  # highest count the peer opened
        self.next_local_index = (0, 0)
        self._remote_params: TransportParameters | None = None
        self.send_queue: list[int] = []  # streams with data to send, round robin
        #: Our streams beyond the peer's MAX_STREAMS after a 0-RTT rejection, waiting.
        self._held: set[int] | None = None

    def set_remote_parameters(self, params: TransportParameters) -> None:
        """Apply the peer's transport parameters (§18.2): MAX_DATA, the stream limits, and
        the initial send credit of the streams already open."""
        self._remote_params = params
        self.max_data_remote = params.initial_max_data
        self.max_streams_remote = (params.initial_max_streams_uni, params.initial_max_streams_bidi)
        for stream in self.streams.values():
            if stream.sender is not None:
                stream.sender.max_stream_data = max(
                    stream.sender.max_stream_data, self._send_limit(stream.stream_id)
                )

    def restart_sending(self, params: TransportParameters) -> None:
        """0-RTT was rejected (RFC 9001 §4.6.2): the peer processed nothing we sent.

        Its new parameters replace the remembered ones, lower or not; every stream
        sends again from offset 0 (keeping its ID), counted anew against MAX_DATA. A
        stream the new MAX_STREAMS does not cover waits until the peer allows it.
        """
        self._remote_params = params
        self.max_data_remote = params.initial_max_data
        self.max_streams_remote = (params.initial_max_streams_uni, params.initial_max_streams_bidi)
        self.data_sent = 0
        self.send_queue = []
        held: set[int] = set()
        for stream_id, stream in self.streams.items():
            sender = stream.sender
            if sender is None:
                continue
            sender.restart(self._send_limit(stream_id))
            bidi = stream_is_bidirectional(stream_id)
            if stream.is_local and stream_id >> 2 >= self.max_streams_remote[bidi]:
                held.add(stream_id)
            elif sender.has_pending():
                self.send_queue.append(stream_id)
        self._held = held or None

    def _send_limit(self, stream_id: int) -> int:
        """The peer's initial limit for our sending on ``stream_id``."""
        p = self._remote_params
        if p is None:
            return 0
        if not stream_is_bidirectional(stream_id):
            return p.initial_max_stream_data_uni
        local = stream_is_client_initiated(stream_id) == self.is_client
        # The peer's "bidi_remote" limit applies to streams we opened (remote to the peer).
        return (
            p.initial_max_stream_data_bidi_remote if local else p.initial_max_stream_data_bidi_local
        )

    def _receive_window(self, stream_id: int) -> int:
        p = self.local
        if not stream_is_bidirectional(stream_id):
            return p.initial_max_stream_data_uni
        local = stream_is_client_initiated(stream_id) == self.is_client
        return (
            p.initial_max_stream_data_bidi_local if local else p.initial_max_stream_data_bidi_remote
        )

    def _new(self, stream_id: int) -> QuicStream:
        stream = QuicStream(
            stream_id,
            is_client=self.is_client,
            receive_window=self._receive_window(stream_id),
            send_limit=self._send_limit(stream_id),
        )
        self.streams[stream_id] = stream
        return stream

    # Local API ------------------------------------------------------------------------
    def open(self, bidirectional: bool) -> int:
        """Open our next stream of a type and return its id (§2.1); QuicUsageError when the
        peer's MAX_STREAMS allows no more."""
        index = self.next_local_index[bidirectional]
        if index >= self.max_streams_remote[bidirectional]:
            raise QuicUsageError(
                f"the peer allows {self.max_streams_remote[bidirectional]} "
                f"{'bidirectional' if bidirectional else 'unidirectional'} streams; all are open"
            )
        n = self.next_local_index
        self.next_local_index = (n[0], index + 1) if bidirectional else (index + 1, n[1])
        stream_id = (index << 2) | (0 if self.is_client else 1) | (0 if bidirectional else 2)
        self._new(stream_id)
        return stream_id

    def get_local(self, stream_id: int) -> QuicStream:
        """A stream the application names; QuicUsageError if there is none (never opened,
        or finished and forgotten). Either side may have opened it."""
        stream = self.streams.get(stream_id)
        if stream is None:
            raise QuicUsageError(f"stream {stream_id} does not exist (or has ended)")
        return stream

    def send(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        """Queue ``data`` (and the end of the stream) on a stream we may send on."""
        stream = self.get_local(stream_id)
        if stream.sender is None:
            raise QuicUsageError(f"stream {stream_id} is receive-only")
        stream.sender.write(data, end_stream)
        self.schedule(stream_id)

    def schedule(self, stream_id: int) -> None:
        """Put ``stream_id`` in the round-robin send queue (once)."""
        if self._held is not None and stream_id in self._held:
            return  # beyond the peer's MAX_STREAMS (after a 0-RTT rejection): not yet
        if stream_id not in self.send_queue:
            self.send_queue.append(stream_id)

    def reset(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream: RESET_STREAM goes out with the next packet (§3.1)."""
        stream = self.get_local(stream_id)
        if stream.sender is None:
            raise QuicUsageError(f"stream {stream_id} is receive-only")
        stream.sender.reset(error_code)
        self.schedule(stream_id)

    def stop_sending(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream: STOP_SENDING (§3.5)."""
        stream = self.get_local(stream_id)
        if stream.receiver is None:
            raise QuicUsageError(f"stream {stream_id} is send-only")
        stream.receiver.stop_sending_error_code = error_code
        self.pending.queue_stop_sending(stream_id, error_code)

    # Frames from the peer ---------------------------------------------------------------
    def _peer_stream(
        self, stream_id: int, frame_type: int, *, receiving: bool
    ) -> QuicStream | None:
        """The stream a peer frame names, opening peer streams implicitly (§3.2)."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            if receiving and stream.receiver is None:
                raise TransportError(
                    TransportErrorCode.STREAM_STATE_ERROR,
                    "data on our send-only stream",
                    frame_type,
                )
            if not receiving and stream.sender is None:
                raise TransportError(
                    TransportErrorCode.STREAM_STATE_ERROR,
                    "frame for our receive-only stream",
                    frame_type,
                )
            return stream
        bidi = stream_is_bidirectional(stream_id)
        index = stream_id >> 2
        if stream_is_client_initiated(stream_id) == self.is_client:  # ours
            if index >= self.next_local_index[bidi]:
                raise TransportError(
                    TransportErrorCode.STREAM_STATE_ERROR,
                    "frame for a stream we never opened",
                    frame_type,
                )
            return None  # finished and forgotten
        if not bidi and not receiving:
            raise TransportError(
                TransportErrorCode.STREAM_STATE_ERROR,
                "frame for the peer's send-only stream",
                frame_type,
            )
        if index >= self.max_streams_local[bidi]:
            raise TransportError(
                TransportErrorCode.STREAM_LIMIT_ERROR, "the peer exceeded MAX_STREAMS", frame_type
            )
        if index < self.opened_remote[bidi]:
            return None  # already finished and forgotten
        for i in range(self.opened_remote[bidi], index + 1):  # lower streams open implicitly
            self._new((i << 2) | (stream_id & 0x03))
        n = self.opened_remote
        self.opened_remote = (n[0], index + 1) if bidi else (index + 1, n[1])
        return self.streams[stream_id]

    def on_stream(self, frame: StreamFrame, frame_type: int) -> None:
        """A STREAM frame parsed into an object (in 0-RTT packets)."""
        self.on_stream_data(frame.stream_id, frame.offset, frame.data, frame.fin, frame_type)

    def on_stream_data(
        self, stream_id: int, offset: int, data: bytes, fin: bool, frame_type: int
    ) -> None:
        """A STREAM frame's fields (read in place by the receive path)."""
        stream = self._peer_stream(stream_id, frame_type, receiving=True)
        if stream is None or stream.receiver is None:
            return
        receiver = stream.receiver
        before = receiver.fragments
        grew = receiver.receive(offset, data, fin)
        if grew:  # (no new bytes: MAX_DATA cannot be newly exceeded)
            self._account_received(grew, frame_type)
        self._deliver(stream)
        if receiver.fragments != before:
            self._account_fragments(receiver.fragments - before, frame_type)

    def _account_fragments(self, change: int, frame_type: int) -> None:
        """RFC 9000 §21.7: bound the ranges buffered across all streams (§21.9: an error)."""
        self.fragments += change
        if self.fragments > self.max_fragments:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "stream data too fragmented", frame_type
            )

    def _account_received(self, grew: int, frame_type: int) -> None:
        self.data_received += grew
        if self.data_received > self.max_data_local:
            raise TransportError(
                TransportErrorCode.FLOW_CONTROL_ERROR, "the peer exceeded MAX_DATA", frame_type
            )

    def _deliver(self, stream: QuicStream) -> None:
        receiver = stream.receiver
        assert receiver is not None
        if receiver.reset_error_code is not None:
            return
        data = receiver.read()
        end = receiver.finished and not receiver.fin_delivered
        if data or end:
            receiver.fin_delivered = receiver.fin_delivered or end
            self._events.append(StreamDataReceived(stream.stream_id, data, end))
        if receiver.final_size is not None:  # (else the receive half is not done)
            self._maybe_forget(stream)

    def on_data_consumed(self, stream_id: int, length: int) -> None:
        """The application took ``length`` bytes of ``stream_id`` out of an event.

        Only now are they off our hands: credit (MAX_STREAM_DATA, MAX_DATA) follows
        what the application consumes, so a peer cannot fill memory with data the
        application is not reading (RFC 9000 §4.1-4.2).
        """
        stream = self.streams.get(stream_id)
        receiver = stream.receiver if stream is not None else None
        if receiver is not None and receiver.consume(length) is not None:
            self.pending.queue_max_stream_data(stream_id)
        self._release_credit(length)

    def _release_credit(self, length: int) -> None:
        self.data_consumed += length
        if self.max_data_local - self.data_consumed <= self.local.initial_max_data // 2:
            self.max_data_local = self.data_consumed + self.local.initial_max_data
            self.pending.queue_max_data()

    def on_reset_stream(self, frame: ResetStreamFrame, frame_type: int) -> None:
        """RESET_STREAM (§19.4): the final size counts against MAX_DATA, the credit of the
        bytes that will never be delivered is returned (§4.5), and the application gets
        a StreamReset."""
        stream = self._peer_stream(frame.stream_id, frame_type, receiving=True)
        if stream is None or stream.receiver is None:
            return
        already = stream.receiver.reset_error_code is not None
        before = stream.receiver.fragments
        grew = stream.receiver.reset(frame.error_code, frame.final_size)
        self._account_received(grew, frame_type)
        self._account_fragments(stream.receiver.fragments - before, frame_type)
        if not already:
            # §4.5: bytes up to the final size that will never be delivered free their credit.
            self._release_credit(frame.final_size - stream.receiver.read_offset)
            self._events.append(StreamReset(frame.stream_id, frame.error_code))
        self._maybe_forget(stream)

    def on_stop_sending(self, frame: StopSendingFrame, frame_type: int) -> None:
        """STOP_SENDING (§3.5): answer with RESET_STREAM carrying the peer's code and tell
        the application, unless the stream is reset already or all its data acknowledged."""
        stream = self._peer_stream(frame.stream_id, frame_type, receiving=False)
        if stream is None or stream.sender is None:
            return
        if stream.sender.reset_error_code is None and not stream.sender.all_acked:
            stream.sender.reset(frame.error_code)  # §3.5: answer with RESET_STREAM
            self.schedule(frame.stream_id)
            self._events.append(StopSendingReceived(frame.stream_id, frame.error_code))

    def on_max_stream_data(self, frame: MaxStreamDataFrame, frame_type: int) -> None:
        """MAX_STREAM_DATA (§19.10): raise a stream's send limit (a lower one is ignored)."""
        stream = self._peer_stream(frame.stream_id, frame_type, receiving=False)
        if (
            stream is not None
            and stream.sender is not None
            and frame.maximum_stream_data > stream.sender.max_stream_data
        ):
            stream.sender.max_stream_data = frame.maximum_stream_data
            self.schedule(frame.stream_id)

    def on_max_data(self, maximum: int) -> None:
        """MAX_DATA (§19.9): raise the connection's send limit; streams with data to send
        go back in the send queue."""
        if maximum > self.max_data_remote:
            self.max_data_remote = maximum
            for stream_id, stream in self.streams.items():
                if stream.sender is not None and stream.sender.has_pending():
                    self.schedule(stream_id)

    def on_max_streams(self, frame: MaxStreamsFrame) -> None:
        """MAX_STREAMS (§19.11): we may open more streams of a type (a lower limit is ignored)."""
        n = self.max_streams_remote
        maximum = frame.maximum_streams
        if maximum > n[frame.bidirectional]:
            self.max_streams_remote = (n[0], maximum) if frame.bidirectional else (maximum, n[1])
            if self._held is not None:
                self._release_held()

    def _release_held(self) -> None:
        """Streams held back after a 0-RTT rejection that MAX_STREAMS now allows go."""
        held = self._held
        assert held is not None
        for stream_id in sorted(held):
            if stream_id >> 2 < self.max_streams_remote[stream_is_bidirectional(stream_id)]:
                held.discard(stream_id)
                self.schedule(stream_id)
        if not held:
            self._held = None

    def _maybe_forget(self, stream: QuicStream) -> None:
        """A finished peer stream frees a slot: raise MAX_STREAMS (§4.6)."""
        if stream.finished and stream.stream_id in self.streams:
            del self.streams[stream.stream_id]
            if not stream.is_local:
                bidi = stream_is_bidirectional(stream.stream_id)
                n = self.max_streams_local
                self.max_streams_local = (n[0], n[1] + 1) if bidi else (n[0] + 1, n[1])
                self.pending.queue_max_streams(bidi)

    def on_sender_done(self, stream_id: int) -> None:
        """What we sent on a stream (or its reset) was acknowledged: forget the stream if
        both halves are done."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            self._maybe_forget(stream)

    def sender_of(self, stream_id: int) -> SendHalf | None:
        """The send half of a stream that still exists, or None."""
        stream = self.streams.get(stream_id)
        return None if stream is None else stream.sender

    def receiver_of(self, stream_id: int) -> ReceiveHalf | None:
        """The receive half of a stream that still exists, or None."""
        stream = self.streams.get(stream_id)
        return None if stream is None else stream.receiver

    @property
    def connection_credit(self) -> int:
        """New stream bytes the peer's MAX_DATA still allows (§4.1)."""
        return max(0, self.max_data_remote - self.data_sent)
