"""One quicnet-rt/1 session over one QUIC connection, either side (docs/protocol.md).

A :class:`Session` turns the application's ``send(channel, data)`` into QUIC
calls by the channel's delivery mode, and the connection's QUIC events into
real-time events. It stands on the QUIC connection's public API only.

State, by direction:

- out: the stream of each ordered channel, the next sequence number of each
  sequenced channel, the next fragmented message id, and a backlog for what
  cannot go yet (before the handshake; an unordered message waiting for stream
  credit);
- in: the control stream's reader, each open stream's header and reader, the
  last sequence number delivered per sequenced channel, the fragment
  reassembler, and (on a server) messages held until the client is admitted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from quicnet.quic import (
    Address,
    ConnectionTerminated,
    DatagramReceived,
    HandshakeCompleted,
    PathValidated,
    PeerAddressChanged,
    QuicConnection,
    StreamDataReceived,
    StreamReset,
    TransportErrorCode,
)
from quicnet.realtime.errors import (
    MessageTooLargeError,
    NotConnectedError,
    UnknownChannelError,
)
from quicnet.realtime.events import (
    Connected,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerMigrated,
    RealtimeEvent,
)
from quicnet.realtime.fragments import Reassembler, fragment
from quicnet.realtime.wire import (
    PROTOCOL_VERSION,
    STREAM_ORDERED,
    STREAM_UNORDERED,
    CloseCode,
    ControlReader,
    Delivery,
    Hello,
    OrderedReader,
    RealtimeProtocolError,
    Welcome,
    encode_control,
    encode_varint,
    parse_datagram_header,
    read_varint,
)

if TYPE_CHECKING:
    from quicnet.quic import QuicEvent
    from quicnet.realtime.settings import Settings

__all__ = ["Admission", "Session", "disconnect_reason"]

#: A server's decision on a HELLO: None admits, a string refuses with that reason.
Admission = Callable[["Session", Hello], str | None]

_CONTROL_STREAM = 0
# The modes as module constants for the per-message paths: on Python 3.11 each
# ``Delivery.X`` lookup runs EnumType.__getattr__ (~75 ns against ~8 for a global).
_MODE_UNRELIABLE = Delivery.UNRELIABLE
_MODE_SEQUENCED = Delivery.SEQUENCED
_MODE_RELIABLE_ORDERED = Delivery.RELIABLE_ORDERED
_MODE_RELIABLE_UNORDERED = Delivery.RELIABLE_UNORDERED
_UNRELIABLE = frozenset({_MODE_UNRELIABLE, _MODE_SEQUENCED})
# RFC 8446 §6.2 alerts about a certificate: the peer (or we) did not accept it.
_CERTIFICATE_ALERTS = frozenset({42, 43, 44, 45, 46, 48, 116})
_BY_PEER_CODE = {
    CloseCode.CLOSED: DisconnectReason.CLOSED_BY_PEER,
    CloseCode.KICKED: DisconnectReason.KICKED,
    CloseCode.SERVER_SHUTDOWN: DisconnectReason.SERVER_SHUTDOWN,
    CloseCode.REFUSED: DisconnectReason.REFUSED,
    CloseCode.PROTOCOL_ERROR: DisconnectReason.PROTOCOL_ERROR,
}


def disconnect_reason(
    ended: ConnectionTerminated, local: tuple[DisconnectReason, str] | None
) -> tuple[DisconnectReason, str]:
    """Why a session ended, from QUIC's ConnectionTerminated (and what we closed it for)."""
    if local is not None and not ended.by_peer:
        return local
    code = ended.error_code
    text = ended.reason
    if ended.stateless_reset:
        return DisconnectReason.CONNECTION_FAILED, "reset by the peer (stateless reset)"
    if ended.is_application:
        if not ended.by_peer:
            return DisconnectReason.CLOSED, text
        reason = _BY_PEER_CODE.get(code, DisconnectReason.PROTOCOL_ERROR)  # type: ignore[call-overload]
        return reason, text or reason.value
    if 0x100 <= code <= 0x1FF:  # RFC 9001 §4.8: a TLS alert
        if code - 0x100 in _CERTIFICATE_ALERTS:
            return DisconnectReason.CERTIFICATE_REJECTED, text
        return DisconnectReason.CONNECTION_FAILED, text
    if not ended.by_peer:
        if text.startswith("idle timeout"):
            return DisconnectReason.IDLE_TIMEOUT, text
        if text.startswith("handshake timeout"):
            return DisconnectReason.CONNECTION_FAILED, text
        if code == TransportErrorCode.NO_ERROR:
            return DisconnectReason.CONNECTION_FAILED, text  # e.g. path validation failed
    elif code == TransportErrorCode.NO_ERROR:
        return DisconnectReason.CLOSED_BY_PEER, text
    return DisconnectReason.PROTOCOL_ERROR, text


def _too_large(size: int, limit: int) -> str:
    return f"an unreliable message of {size} bytes; the limit is {limit}"


class _InStream:
    """A peer-opened stream being read: its header, then its messages."""

    __slots__ = ("channel", "data", "header", "reader")

    def __init__(self) -> None:
        self.header = b""  # the first two bytes, until both are in
        self.channel = -1
        self.reader: OrderedReader | None = None  # ordered streams
        self.data: bytearray | None = None  # an unordered stream's message so far


class Session:
    """A peer's session: sending by delivery mode, and QUIC events into real-time events."""

    def __init__(
        self,
        connection: QuicConnection,
        peer: int,
        settings: Settings,
        events: deque[RealtimeEvent],
        *,
        is_client: bool,
        token: bytes = b"",
        admission: Admission | None = None,
    ) -> None:
        self.connection = connection
        #: The id of the other side: the client's on a server, 0 (the server) on a client.
        self.peer = peer
        self.settings = settings
        self.is_client = is_client
        self._events = events
        self._token = token
        self._admission = admission
        self._channels = dict(settings.channels)
        #: Per channel: its mode, its size limit, and the datagram header of a whole
        #: message (channel, no flags), so a send builds nothing but the datagram.
        self._plans = {
            channel: (
                mode,
                settings.max_unreliable_message_size
                if mode in _UNRELIABLE
                else settings.max_message_size,
                bytes((channel, 0)),
            )
            for channel, mode in self._channels.items()
        }
        #: Server: the client is admitted. Client: the server welcomed us.
        self.admitted = False
        #: Client: the id the server gave us (from WELCOME).
        self.client_id: int | None = None
        #: The session has ended (its Disconnected / PeerDisconnected was reported).
        self.ended = False
        #: Streams and datagrams can go: the QUIC handshake is complete, or (client)
        #: 0-RTT keys are in hand.
        self.ready = False
        #: Client: sending in 0-RTT (a resumed session). Server: the HELLO came in 0-RTT,
        #: before the handshake completed (so it could be a replay, docs/realtime.md).
        self.early = False
        #: The peer's address as last validated (and, on a server, reported).
        self.address = connection.peer_address
        self._moving_to: Address | None = None  # a new address, until validated
        self._local_close: tuple[DisconnectReason, str] | None = None
        # Out.
        self._ordered_out: dict[int, int] = {}  # channel -> stream id
        self._sequence_out: dict[int, int] = {}
        self._next_message_id = 0
        self._backlog: deque[tuple[int, bytes]] = deque()  # (channel, data), in order
        #: Messages that need a new stream and wait for the peer's stream credit, in order:
        #: unordered ones, and an ordered channel's first messages until its stream opens.
        self._stream_waiting: deque[tuple[int, bytes]] = deque()
        self._ordered_waiting: dict[int, int] = {}  # ordered channel -> its messages in there
        # In.
        self._control = ControlReader()
        self._in: dict[int, _InStream] = {}
        self._ordered_in: set[int] = set()  # channels whose ordered stream the peer opened
        self._sequence_in: dict[int, int] = {}
        self._reassembler = Reassembler(
            settings.max_unreliable_message_size,
            max_partial=settings.max_partial_messages,
            timeout=settings.reassembly_timeout,
        )
        self._held: list[tuple[int, bytes]] = []  # server: before admission
        self.messages_sent = 0
        self.messages_received = 0

    # Sending ------------------------------------------------------------------------------
    def send(self, channel: int, data: bytes) -> None:
        """Send one message on ``channel`` by its delivery mode (or queue it until it can go)."""
        plan = self._plans.get(channel)
        if plan is None:
            raise UnknownChannelError(f"channel {channel} is not defined")
        conn = self.connection
        if self.ended or conn.termination is not None:
            raise NotConnectedError("the session has ended")
        mode, limit, prefix = plan
        if len(data) > limit:
            raise MessageTooLargeError(
                f"a message of {len(data)} bytes on channel {channel} ({mode.name}); "
                f"the limit is {limit}"
            )
        if not self.ready or self._backlog:
            if len(self._backlog) >= self.settings.max_pending_messages and mode in _UNRELIABLE:
                return  # unreliable: dropping is within its contract
            self._backlog.append((channel, bytes(data)))
            return
        # The common cases are one QUIC call plus a header: a whole unreliable message in
        # a datagram, a message on an ordered channel's stream after its length.
        if mode is _MODE_UNRELIABLE and len(data) + 2 <= (conn.max_datagram_size or 0):
            conn.send_datagram(prefix + data)
        elif (
            mode is _MODE_RELIABLE_ORDERED
            and channel in self._ordered_out
            and channel not in self._ordered_waiting  # else it queues behind those
        ):
            conn.send_stream_data(self._ordered_out[channel], encode_varint(len(data)) + data)
        else:
            self._dispatch(channel, mode, data)
        self.messages_sent += 1

    def _dispatch(self, channel: int, mode: Delivery, data: bytes) -> None:
        conn = self.connection
        if mode == _MODE_UNRELIABLE:
            room = conn.max_datagram_size or 0
            if len(data) + 2 <= room:
                conn.send_datagram(bytes((channel, 0)) + data)  # the common case: one datagram
            else:
                self._send_fragments(channel, None, data, room)
        elif mode == _MODE_RELIABLE_ORDERED:
            if self._ordered_waiting.get(channel) or (
                channel not in self._ordered_out
                and (self._stream_waiting or not conn.streams_available(bidirectional=False))
            ):
                self._ordered_waiting[channel] = self._ordered_waiting.get(channel, 0) + 1
                self._stream_waiting.append((channel, bytes(data)))
            else:
                self._send_ordered(channel, data)
        elif mode == _MODE_SEQUENCED:
            sequence = self._sequence_out.get(channel, 0)
            self._sequence_out[channel] = sequence + 1
            header = self._plans[channel][2] + encode_varint(sequence)
            room = conn.max_datagram_size or 0
            if len(header) + len(data) <= room:
                conn.send_datagram(b"".join((header, data)))
            else:
                self._send_fragments(channel, sequence, data, room)
        elif self._stream_waiting or not conn.streams_available(bidirectional=False):
            self._stream_waiting.append((channel, bytes(data)))
        else:
            self._send_unordered(channel, data)

    def _send_ordered(self, channel: int, data: bytes) -> None:
        conn = self.connection
        stream_id = self._ordered_out.get(channel)
        prefix = encode_varint(len(data))
        if stream_id is None:
            stream_id = conn.create_stream(bidirectional=False)
            self._ordered_out[channel] = stream_id
            prefix = bytes((STREAM_ORDERED, channel)) + prefix
        conn.send_stream_data(stream_id, prefix + data)

    def _send_unordered(self, channel: int, data: bytes) -> None:
        conn = self.connection
        stream_id = conn.create_stream(bidirectional=False)
        conn.send_stream_data(stream_id, bytes((STREAM_UNORDERED, channel)) + data, end_stream=True)

    def _send_fragments(self, channel: int, sequence: int | None, data: bytes, room: int) -> None:
        message_id = self._next_message_id
        self._next_message_id += 1
        for piece in fragment(channel, sequence, message_id, data, room):
            self.connection.send_datagram(piece)

    def pump(self) -> bool:
        """Send what waited for the handshake or for stream credit; True if some still waits."""
        if not self.ready or self.ended or self.connection.termination is not None:
            return bool(self._backlog or self._stream_waiting)
        waiting = self._stream_waiting
        conn = self.connection
        ordered = self._ordered_waiting
        while waiting:
            channel, data = waiting[0]
            if channel in ordered:  # an ordered channel's message: a stream only for its first
                if channel not in self._ordered_out and not conn.streams_available(
                    bidirectional=False
                ):
                    break
                waiting.popleft()
                ordered[channel] -= 1
                if not ordered[channel]:
                    del ordered[channel]
                self._send_ordered(channel, data)
            elif conn.streams_available(bidirectional=False):
                self._send_unordered(*waiting.popleft())
            else:
                break
        backlog = self._backlog
        while backlog:
            channel, data = backlog.popleft()
            self._dispatch(channel, self._channels[channel], data)
            self.messages_sent += 1
        return bool(waiting)

    @property
    def waiting(self) -> bool:
        """Something waits to be sent (the handshake, or stream credit)."""
        return bool(self._backlog or self._stream_waiting)

    def close(self, code: CloseCode, text: str, reason: DisconnectReason) -> None:
        """End the session with CONNECTION_CLOSE ``code``, and report it ended (``reason``,
        ``text``) now: nothing more is sent or delivered on it."""
        if self.ended:
            return
        self._local_close = (reason, text)
        self.connection.close(int(code), text)
        self._end(reason, text)

    # Receiving ----------------------------------------------------------------------------
    def on_event(self, event: QuicEvent, now: float) -> None:
        """Act on one of the connection's QUIC events."""
        if self.ended:
            return  # closed here: what still arrives is not delivered
        try:
            kind = type(event)
            if kind is DatagramReceived:
                self._on_datagram(event.data, now)  # type: ignore[union-attr]
            elif kind is StreamDataReceived:
                assert isinstance(event, StreamDataReceived)
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
            elif kind is HandshakeCompleted:
                self._on_handshake_completed()
            elif kind is StreamReset:
                assert isinstance(event, StreamReset)
                self._on_stream_reset(event.stream_id)
            elif kind is PeerAddressChanged:
                assert isinstance(event, PeerAddressChanged)
                self._on_address_changed(event.new_address)
            elif kind is PathValidated:
                assert isinstance(event, PathValidated)
                if event.address == self._moving_to:
                    self._moved(event.address)
            elif kind is ConnectionTerminated:
                assert isinstance(event, ConnectionTerminated)
                self._on_terminated(event)
        except RealtimeProtocolError as exc:
            self.close(CloseCode.PROTOCOL_ERROR, str(exc), DisconnectReason.PROTOCOL_ERROR)

    def _on_address_changed(self, new_address: Address) -> None:
        """The peer's packets come from ``new_address``: reported once the address is
        validated (RFC 9000 §8.2, §9.3), so a relayed or spoofed packet, whose path
        validation fails and sends the connection back (§9.3.2), reports nothing."""
        if new_address == self.address:
            self._moving_to = None  # back where it was
        elif self.connection.address_validated:
            self._moved(new_address)  # a path validated before: nothing left to prove
        else:
            self._moving_to = new_address

    def _moved(self, new_address: Address) -> None:
        old_address, self.address, self._moving_to = self.address, new_address, None
        if self.admitted and not self.is_client and old_address is not None:
            self._events.append(PeerMigrated(self.peer, old_address, new_address))

    def start_early(self) -> None:
        """Client: 0-RTT keys are ready; the HELLO and the backlog go now, in 0-RTT.

        Should the server reject 0-RTT, QUIC sends the streams (the HELLO, every
        reliable message) again in 1-RTT; DATAGRAMs are lost (RFC 9001 §4.6.2).
        """
        if self.ready or not self.is_client:
            return
        self.early = True
        self._say_hello()

    def _say_hello(self) -> None:
        self.ready = True
        stream_id = self.connection.create_stream(bidirectional=True)
        assert stream_id == _CONTROL_STREAM
        hello = Hello(PROTOCOL_VERSION, self._token, self.settings.channel_table())
        self.connection.send_stream_data(stream_id, encode_control(hello))
        self.pump()

    def _on_handshake_completed(self) -> None:
        self.address = self.connection.peer_address
        if self.is_client and not self.ready:
            self._say_hello()
            return
        self.ready = True
        self.pump()

    def _on_terminated(self, ended: ConnectionTerminated) -> None:
        if not self.ended:
            self._end(*disconnect_reason(ended, self._local_close))

    def _end(self, reason: DisconnectReason, text: str) -> None:
        self.ended = True
        if self.is_client:
            self._events.append(Disconnected(0, reason, text))
        elif self.admitted:
            self._events.append(PeerDisconnected(self.peer, reason, text))
        self._held.clear()
        self._backlog.clear()
        self._stream_waiting.clear()
        self._ordered_waiting.clear()

    # Control stream ------------------------------------------------------------------------
    def _on_control(self, data: bytes) -> None:
        for message in self._control.feed(data):
            if isinstance(message, Hello):
                if self.is_client:
                    raise RealtimeProtocolError("HELLO sent to a client")
                self._on_hello(message)
            elif isinstance(message, Welcome):
                if not self.is_client:
                    raise RealtimeProtocolError("WELCOME sent to a server")
                if self.admitted:
                    raise RealtimeProtocolError("a second WELCOME")
                self.admitted = True
                self.client_id = message.peer
                self._events.append(Connected(0, message.peer))
                self._release_held()

    def _on_hello(self, hello: Hello) -> None:
        if self.admitted or self._admission is None:
            raise RealtimeProtocolError("a second HELLO")
        admission, self._admission = self._admission, None
        self.early = not self.ready  # RFC 9001 §5.7: before the handshake, only 0-RTT
        refusal = admission(self, hello)
        if refusal is not None:
            self._held.clear()
            self.close(CloseCode.REFUSED, refusal, DisconnectReason.REFUSED)
            return
        self.admitted = True
        self.connection.send_stream_data(_CONTROL_STREAM, encode_control(Welcome(self.peer)))
        address = self.address or self.connection.peer_address
        assert address is not None
        self._events.append(PeerConnected(self.peer, address))
        self._release_held()

    def _release_held(self) -> None:
        """Deliver what came before the admission (the client's early messages; on a client,
        a datagram that overtook the WELCOME)."""
        held, self._held = self._held, []
        for channel, data in held:
            self._deliver(channel, data)

    @property
    def hello_received(self) -> bool:
        """Server: the client's HELLO came (admitted or refused)."""
        return self._admission is None

    # Streams --------------------------------------------------------------------------------
    def _on_stream_data(self, stream_id: int, data: bytes, end_stream: bool) -> None:
        if stream_id == _CONTROL_STREAM:
            if end_stream:
                raise RealtimeProtocolError("the control stream ended")
            self._on_control(data)
            return
        if not stream_id & 0x02:  # RFC 9000 §2.1: bidirectional
            raise RealtimeProtocolError(f"stream {stream_id}: no bidirectional stream but 0")
        stream = self._in.get(stream_id)
        if stream is None:
            stream = self._in[stream_id] = _InStream()
        if stream.channel < 0:
            need = 2 - len(stream.header)
            stream.header += data[:need]
            data = data[need:]
            if len(stream.header) < 2:
                if end_stream:
                    raise RealtimeProtocolError(f"stream {stream_id} ended inside its header")
                return
            self._open_stream(stream_id, stream)
        if stream.reader is not None:  # ordered
            if end_stream:
                raise RealtimeProtocolError(f"the ordered stream of channel {stream.channel} ended")
            for message in stream.reader.feed(data):
                self._deliver(stream.channel, message)
            return
        assert stream.data is not None
        stream.data += data
        if len(stream.data) > self.settings.max_message_size:
            raise RealtimeProtocolError(
                f"a reliable message over {self.settings.max_message_size} bytes"
            )
        if end_stream:
            del self._in[stream_id]
            self._deliver(stream.channel, bytes(stream.data))

    def _open_stream(self, stream_id: int, stream: _InStream) -> None:
        kind, channel = stream.header[0], stream.header[1]
        mode = self._channels.get(channel)
        if mode is None:
            raise RealtimeProtocolError(f"stream {stream_id} on channel {channel}, not defined")
        if kind == STREAM_ORDERED and mode == _MODE_RELIABLE_ORDERED:
            if channel in self._ordered_in:
                raise RealtimeProtocolError(f"a second ordered stream for channel {channel}")
            self._ordered_in.add(channel)
            stream.reader = OrderedReader(self.settings.max_message_size)
        elif kind == STREAM_UNORDERED and mode == _MODE_RELIABLE_UNORDERED:
            stream.data = bytearray()
        else:
            raise RealtimeProtocolError(
                f"stream {stream_id}: kind {kind} on channel {channel} ({mode.name})"
            )
        stream.channel = channel

    def _on_stream_reset(self, stream_id: int) -> None:
        stream = self._in.pop(stream_id, None)
        if stream_id == _CONTROL_STREAM or (stream is not None and stream.reader is not None):
            raise RealtimeProtocolError(f"stream {stream_id} was reset")
        # An unordered message abandoned by its sender: nothing of it is delivered.

    # Datagrams ------------------------------------------------------------------------------
    def _on_datagram(self, data: bytes, now: float) -> None:
        if len(data) < 2:
            raise RealtimeProtocolError("a datagram shorter than its header")
        channel = data[0]
        mode = self._channels.get(channel)
        limit = self.settings.max_unreliable_message_size
        if data[1] == 0:  # the common cases: a whole message
            if mode is _MODE_UNRELIABLE:
                if len(data) - 2 > limit:
                    raise RealtimeProtocolError(_too_large(len(data) - 2, limit))
                self._deliver(channel, data[2:])
                return
            if mode is _MODE_SEQUENCED:
                number, pos = read_varint(data, 2, "datagram header")
                if len(data) - pos > limit:
                    raise RealtimeProtocolError(_too_large(len(data) - pos, limit))
                if number > self._sequence_in.get(channel, -1):  # else older: dropped
                    self._sequence_in[channel] = number
                    if len(self._reassembler):
                        self._reassembler.drop_older(channel, number)
                    self._deliver(channel, data[pos:])
                return
        if mode == _MODE_UNRELIABLE:
            header = parse_datagram_header(data, False)
        elif mode == _MODE_SEQUENCED:
            header = parse_datagram_header(data, True)
        elif mode is None:
            raise RealtimeProtocolError(f"a datagram on channel {channel}, not defined")
        else:
            raise RealtimeProtocolError(f"a datagram on channel {channel} ({mode.name})")
        payload = data[header.payload_offset :]
        if header.fragment is None and len(payload) > limit:
            raise RealtimeProtocolError(_too_large(len(payload), limit))
        sequence = header.sequence
        if sequence is not None and sequence <= self._sequence_in.get(channel, -1):
            return  # SEQUENCED: older than one already delivered
        if header.fragment is not None:
            whole = self._reassembler.add(channel, sequence, header.fragment, payload, now)
            if whole is None:
                return
            payload = whole
        if sequence is not None:
            self._sequence_in[channel] = sequence
            if len(self._reassembler):
                self._reassembler.drop_older(channel, sequence)
        self._deliver(channel, payload)

    def _deliver(self, channel: int, data: bytes) -> None:
        if self.admitted:
            self.messages_received += 1
            self._events.append(MessageReceived(self.peer, channel, data))
            return
        if len(self._held) >= self.settings.max_pending_messages:
            raise RealtimeProtocolError("too many messages before the session was admitted")
        self._held.append((channel, data))
