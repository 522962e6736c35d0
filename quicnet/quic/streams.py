"""QUIC streams (RFC 9000 §2-§4): send and receive halves with flow control.

The receive half reassembles out-of-order and overlapping STREAM frames into
an in-order byte stream, never buffering beyond the flow-control window it
advertised. The send half keeps data until it is acknowledged and hands out
ranges to (re)transmit.
"""

from __future__ import annotations

from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.rangeset import RangeSet

__all__ = ["QuicStream", "stream_is_bidirectional", "stream_is_client_initiated"]


def stream_is_client_initiated(stream_id: int) -> bool:
    """RFC 9000 §2.1: the lowest bit of a stream ID is 0 on client-initiated streams."""
    return not stream_id & 0x01


def stream_is_bidirectional(stream_id: int) -> bool:
    """RFC 9000 §2.1: the second-lowest bit is 0 on bidirectional streams."""
    return not stream_id & 0x02


class ReceiveHalf:
    """§3.2: Recv -> Size Known -> Data Recvd -> Data Read, or Reset."""

    __slots__ = (
        "_buffer",
        "_ready",
        "_received",
        "consumed_offset",
        "fin_delivered",
        "final_size",
        "highest_offset",
        "max_stream_data",
        "read_offset",
        "reset_error_code",
        "stop_sending_error_code",
        "window",
    )

    def __init__(self, window: int) -> None:
        self._buffer = bytearray()  # bytes from read_offset on; holes are zero-filled
        self._received = RangeSet()
        #: The common case: a frame's data that came in order with nothing buffered, kept
        #: as it is (no copy into the buffer, no range) until read() hands it over.
        self._ready = b""
        self.read_offset = 0  # handed to the application (queued as events)
        self.consumed_offset = 0  # taken by the application: what earns new credit
        self.highest_offset = 0
        self.final_size: int | None = None
        self.fin_delivered = False
        self.window = window
        self.max_stream_data = window  # the limit we advertised
        self.reset_error_code: int | None = None
        self.stop_sending_error_code: int | None = None

    def receive(self, offset: int, data: bytes, fin: bool) -> int:
        """Store a STREAM frame; returns how far ``highest_offset`` grew (for connection flow control)."""
        end = offset + len(data)
        if end > self.max_stream_data:
            raise TransportError(
                TransportErrorCode.FLOW_CONTROL_ERROR, "stream data beyond MAX_STREAM_DATA"
            )
        if self.final_size is not None and (
            end > self.final_size or (fin and end != self.final_size)
        ):
            raise TransportError(
                TransportErrorCode.FINAL_SIZE_ERROR, "stream data beyond or changing its final size"
            )
        if fin:
            if end < self.highest_offset:
                raise TransportError(
                    TransportErrorCode.FINAL_SIZE_ERROR, "final size below data already received"
                )
            self.final_size = end
        grew = max(0, end - self.highest_offset)
        self.highest_offset = max(self.highest_offset, end)
        if self.reset_error_code is not None:
            return grew
        if offset == self.read_offset and not self._received.bounds and not self._ready:
            self._ready = data
            return grew
        if self._ready:  # more before read(): into the buffer with the rest
            ready, self._ready = self._ready, b""
            self._buffer[0:0] = ready
            self._received.add(self.read_offset, self.read_offset + len(ready))
        start = max(offset, self.read_offset)
        if start < end:
            pos = start - self.read_offset
            need = end - self.read_offset
            if len(self._buffer) < need:
                self._buffer.extend(bytes(need - len(self._buffer)))
            self._buffer[pos : pos + (end - start)] = data[start - offset :]
            self._received.add(start, end)
        return grew

    def read(self) -> bytes:
        """Contiguous bytes from ``read_offset`` (consumed)."""
        ready = self._ready
        if ready:
            self._ready = b""
            self.read_offset += len(ready)
            return ready
        received = self._received.bounds  # the lowest range: received[0], received[1]
        if not received or received[0] != self.read_offset:
            return b""
        stop = received[1]
        n = stop - self.read_offset
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._received.shift()
        self.read_offset = stop
        return data

    @property
    def fragments(self) -> int:
        """How many separate byte ranges are buffered (holes + 1; RFC 9000 §21.7)."""
        return len(self._received)

    @property
    def finished(self) -> bool:
        """All data up to the final size was read."""
        return self.final_size is not None and self.read_offset == self.final_size

    def consume(self, length: int) -> int | None:
        """The application took ``length`` bytes: a new MAX_STREAM_DATA value when half
        the window is free again, else None (RFC 9000 §4.2: credit follows consumption)."""
        self.consumed_offset += length
        if self.final_size is not None or self.reset_error_code is not None:
            return None
        if self.max_stream_data - self.consumed_offset <= self.window // 2:
            self.max_stream_data = self.consumed_offset + self.window
            return self.max_stream_data
        return None

    def reset(self, error_code: int, final_size: int) -> int:
        """RESET_STREAM: returns how far ``highest_offset`` grew."""
        if final_size > self.max_stream_data:
            raise TransportError(
                TransportErrorCode.FLOW_CONTROL_ERROR, "reset final size beyond MAX_STREAM_DATA"
            )
        if (
            self.final_size is not None and final_size != self.final_size
        ) or final_size < self.highest_offset:
            raise TransportError(
                TransportErrorCode.FINAL_SIZE_ERROR, "RESET_STREAM changes the final size"
            )
        grew = final_size - self.highest_offset
        self.highest_offset = final_size
        self.final_size = final_size
        self.reset_error_code = error_code
        self._buffer.clear()
        self._ready = b""
        self._received = RangeSet()
        return grew


class SendHalf:
    """§3.1: Ready -> Send -> Data Sent -> Data Recvd, or Reset Sent -> Reset Recvd."""

    __slots__ = (
        "_acked",
        "_buffer",
        "_buffer_start",
        "_pending",
        "fin_acked",
        "fin_offset",
        "fin_pending",
        "max_stream_data",
        "offset",
        "reset_acked",
        "reset_error_code",
        "reset_pending",
        "sent_high",
    )

    def __init__(self, max_stream_data: int) -> None:
        self._buffer = bytearray()  # data from _buffer_start (lowest unacked) on
        self._buffer_start = 0
        self._pending = RangeSet()  # ranges to send or resend
        self._acked = RangeSet()
        self.offset = 0  # bytes written by the application
        self.sent_high = 0  # highest offset ever sent
        self.max_stream_data = max_stream_data  # the peer's limit
        self.fin_offset: int | None = None
        self.fin_pending = False
        self.fin_acked = False
        self.reset_error_code: int | None = None
        self.reset_pending = False
        self.reset_acked = False  # §3.1 "Reset Recvd": until then RESET_STREAM may be resent

    def write(self, data: bytes, fin: bool) -> None:
        """Queue application data, and with ``fin`` the end of the stream; QuicUsageError
        once the stream has ended or was reset."""
        if self.fin_offset is not None or self.reset_error_code is not None:
            raise QuicUsageError("the stream was already finished or reset")
        if data:
            self._buffer += data
            self._pending.add(self.offset, self.offset + len(data))
            self.offset += len(data)
        if fin:
            self.fin_offset = self.offset
            self.fin_pending = True

    @property
    def buffered(self) -> int:
        """Bytes written but not yet acknowledged."""
        return self.offset - self._buffer_start

    def has_pending(self) -> bool:
        """Something may go now: a RESET_STREAM owed, data within the peer's
        MAX_STREAM_DATA, or a FIN with no data left before it."""
        if self.reset_error_code is not None:
            return self.reset_pending
        pending = self._pending.bounds  # RangeSet.bounds: no call per test
        if pending and pending[0] < self.max_stream_data:
            return True
        return self.fin_pending and not pending

    def next_range(
        self, max_bytes: int, connection_credit: int
    ) -> tuple[int, bytes, bool, int] | None:
        """The next ``(offset, data, fin, new_bytes)`` to send, or None.

        Retransmissions are free, but bytes beyond the highest offset ever
        sent count against the connection's MAX_DATA: at most
        ``connection_credit`` of them, reported back as ``new_bytes``.
        """
        if self.reset_error_code is not None:
            return None
        pending = self._pending.bounds  # its first range is cut in place below
        if not pending:
            if self.fin_pending and self.fin_offset is not None:
                self.fin_pending = False
                return self.fin_offset, b"", True, 0
            return None
        start = pending[0]
        stop = pending[1]
        # (min and max as conditionals: a builtin call costs more than the test)
        if stop > start + max_bytes:
            stop = start + max_bytes
        if stop > self.max_stream_data:
            stop = self.max_stream_data
        sent_high = self.sent_high
        fresh = start if start > sent_high else sent_high  # where new bytes begin
        if stop > fresh + connection_credit:
            stop = fresh + connection_credit
        if stop <= start:
            return None
        if stop > sent_high:  # bytes never sent before count against MAX_DATA
            new_bytes = stop - fresh
            self.sent_high = stop
        else:
            new_bytes = 0
        data = bytes(self._buffer[start - self._buffer_start : stop - self._buffer_start])
        # [start, stop) is a prefix of the first pending range (stop <= pending[1]):
        # RangeSet.subtract's answer for a prefix, in place.
        if stop == pending[1]:
            del pending[:2]
        else:
            pending[0] = stop
        fin = self.fin_pending and self.fin_offset == stop and not pending
        if fin:
            self.fin_pending = False
        return start, data, fin, new_bytes

    def on_ack(self, offset: int, length: int, fin: bool) -> None:
        """A STREAM frame's range (and FIN) was acknowledged; the acknowledged prefix leaves
        the buffer."""
        if fin:
            self.fin_acked = True
        start = self._buffer_start
        stop = offset + length
        if stop <= start:
            return  # nothing left in the buffer (an empty range, or one acknowledged before)
        acked = self._acked.bounds
        if offset <= start and not acked:
            # It reaches the buffer's start with nothing acknowledged ahead (the common
            # case): it leaves at once, as the add-then-shift below would do.
            del self._buffer[: stop - start]
            self._buffer_start = stop
            return
        # Only what is still buffered is recorded: a range below the buffer's start (the
        # same data acknowledged twice, in an original and its retransmission, §13.3)
        # would sit below it for good and keep everything after it from being freed.
        self._acked.add(offset if offset > start else start, stop)
        if acked[0] == start:
            stop = acked[1]
            del self._buffer[: stop - start]
            self._buffer_start = stop
            self._acked.shift()

    def on_lost(self, offset: int, length: int, fin: bool) -> None:
        """A STREAM frame was lost: what of its range is not acknowledged goes again, and so
        does its FIN."""
        if self.reset_error_code is not None:
            return
        start = max(offset, self._buffer_start)
        if start < offset + length:
            self._pending.add(start, offset + length)
            # Drop parts already acknowledged (only those inside the lost range).
            for a, b in self._acked.overlapping(start, offset + length):
                self._pending.subtract(a, b)
        if fin and not self.fin_acked:
            self.fin_pending = True

    def restart(self, max_stream_data: int) -> None:
        """Nothing sent reached the peer (its 0-RTT was rejected, RFC 9001 §4.6.2): all
        of it goes again from offset 0, as new data, within the peer's ``max_stream_data``;
        so does a RESET_STREAM, whose final size is then what gets sent again."""
        self.max_stream_data = max_stream_data
        self.sent_high = 0
        self._acked = RangeSet()
        self._pending = RangeSet()
        self.fin_acked = False
        if self.reset_error_code is not None:
            self.reset_pending = True
            self.reset_acked = False
            return
        if self.offset > self._buffer_start:
            self._pending.add(self._buffer_start, self.offset)
        self.fin_pending = self.fin_offset is not None

    @property
    def all_acked(self) -> bool:
        """Data Recvd (§3.1): every byte and the FIN are acknowledged."""
        return self.fin_acked and self._buffer_start == self.fin_offset

    def reset(self, error_code: int) -> None:
        """Reset Sent (§3.1): owe a RESET_STREAM with ``error_code`` and drop unsent data;
        nothing happens once reset or all acknowledged."""
        if self.reset_error_code is None and not self.all_acked:
            self.reset_error_code = error_code
            self.reset_pending = True
            self._pending = RangeSet()
            self.fin_pending = False

    @property
    def final_size(self) -> int:
        """What RESET_STREAM reports: bytes sent, not merely written (§19.4)."""
        return self.sent_high if self.reset_error_code is not None else self.offset


class QuicStream:
    """One stream: a send half, a receive half, or both."""

    __slots__ = ("is_local", "receiver", "sender", "stream_id")

    def __init__(
        self,
        stream_id: int,
        *,
        is_client: bool,
        receive_window: int,
        send_limit: int,
    ) -> None:
        self.stream_id = stream_id
        self.is_local = stream_is_client_initiated(stream_id) == is_client
        bidi = stream_is_bidirectional(stream_id)
        self.receiver = ReceiveHalf(receive_window) if bidi or not self.is_local else None
        self.sender = SendHalf(send_limit) if bidi or self.is_local else None

    @property
    def finished(self) -> bool:
        """Both halves done: the stream can be forgotten."""
        recv_done = (
            self.receiver is None
            or self.receiver.finished
            or self.receiver.reset_error_code is not None
        )
        send_done = self.sender is None or self.sender.all_acked or self.sender.reset_acked
        return recv_done and send_done
