"""What a connection does with the control frames it receives (RFC 9000 §19).

The receiver reads ACK, STREAM, DATAGRAM, PADDING, PING and (in 1-RTT packets)
NEW_CONNECTION_ID and IMMEDIATE_ACK in place (IMMEDIATE_ACK is allowed in 1-RTT
packets only); the rarer frames come here parsed, and
:data:`CONTROL_HANDLERS` gives each frame type its handler: one dictionary look-up
where a chain of ``isinstance`` tests cost a dozen for the frames a handshake
brings last (HANDSHAKE_DONE, NEW_TOKEN). DATA_BLOCKED, STREAM_DATA_BLOCKED and
STREAMS_BLOCKED are informational and have none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quicnet.quic import ack_frequency
from quicnet.quic import frames as fr
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.events import NewTokenReceived, PathValidated

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.receiver import PacketReceiver

__all__ = ["CONTROL_HANDLERS", "MAX_NEW_TOKENS", "new_connection_id"]

#: NEW_TOKEN frames per connection handed to the application; more are ignored.
MAX_NEW_TOKENS = 4

_FT = fr.FrameType


def _connection_close(
    r: PacketReceiver, frame: fr.ConnectionCloseFrame, t: int, dcid: bytes, now: float
) -> None:
    reason = frame.reason.decode("utf-8", "replace")
    r.c.enter_draining(frame.error_code, frame.frame_type, reason, frame.is_application, now)


def _max_data(r: PacketReceiver, frame: fr.MaxDataFrame, t: int, dcid: bytes, now: float) -> None:
    r.c.streams.on_max_data(frame.maximum_data)


def _max_stream_data(
    r: PacketReceiver, frame: fr.MaxStreamDataFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.streams.on_max_stream_data(frame, t)


def _max_streams(
    r: PacketReceiver, frame: fr.MaxStreamsFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.streams.on_max_streams(frame)


def _reset_stream(
    r: PacketReceiver, frame: fr.ResetStreamFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.streams.on_reset_stream(frame, t)


def _stop_sending(
    r: PacketReceiver, frame: fr.StopSendingFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.streams.on_stop_sending(frame, t)


def new_connection_id(
    c: QuicConnection,
    sequence_number: int,
    retire_prior_to: int,
    cid: bytes,
    stateless_reset_token: bytes,
) -> None:
    """NEW_CONNECTION_ID (§19.15), its encoding checked: to the CID manager, which moves
    off a retired CID to none another path holds (§9.5)."""
    cids = c.cids
    cids.on_new_connection_id(
        sequence_number,
        retire_prior_to,
        cid,
        stateless_reset_token,
        peer_uses_empty_cid=not cids.current_peer_cid,
        # Read only when the frame retires CIDs: most (a handshake's) retire none.
        taken=c.paths.peer_cids_taken() if retire_prior_to else (),
    )


def _new_connection_id(
    r: PacketReceiver, frame: fr.NewConnectionIdFrame, t: int, dcid: bytes, now: float
) -> None:
    # In a 0-RTT packet; a 1-RTT packet's are read in place by the receiver.
    new_connection_id(
        r.c,
        frame.sequence_number,
        frame.retire_prior_to,
        frame.connection_id,
        frame.stateless_reset_token,
    )


def _retire_connection_id(
    r: PacketReceiver, frame: fr.RetireConnectionIdFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.cids.on_retire(frame.sequence_number, dcid)


def _path_challenge(
    r: PacketReceiver, frame: fr.PathChallengeFrame, t: int, dcid: bytes, now: float
) -> None:
    # §8.2.2: the response goes on the path the challenge came on.
    c = r.c
    address = c.datagram_address
    if address is not None:
        c.paths.on_challenge(c.paths.path_for(address, c.datagram_local), frame.data)


def _path_response(
    r: PacketReceiver, frame: fr.PathResponseFrame, t: int, dcid: bytes, now: float
) -> None:
    c = r.c
    validated = c.paths.on_response(frame.data)  # §8.2.3: the challenged path
    if validated is not None:
        c.event_queue.append(PathValidated(validated.address))
        if c.preferred is not None:
            c.preferred.on_validated(c, validated)
        ack_frequency.on_path_confirmed(c)  # a migration confirmed: ask again


def _handshake_done(
    r: PacketReceiver, frame: fr.HandshakeDoneFrame, t: int, dcid: bytes, now: float
) -> None:
    c = r.c
    if not c.is_client:
        raise TransportError(
            TransportErrorCode.PROTOCOL_VIOLATION, "HANDSHAKE_DONE from a client", t
        )
    c.confirm_handshake()
    if c.preferred is not None:
        c.preferred.start(c, now)  # §9.6.1: once the handshake is confirmed


def _ack_frequency(
    r: PacketReceiver, frame: fr.AckFrequencyFrame, t: int, dcid: bytes, now: float
) -> None:
    r.c.acks.on_ack_frequency(
        frame.sequence_number,
        frame.ack_eliciting_threshold,
        frame.requested_max_ack_delay,
        frame.reordering_threshold,
    )


def _new_token(r: PacketReceiver, frame: fr.NewTokenFrame, t: int, dcid: bytes, now: float) -> None:
    c = r.c
    if not c.is_client:
        raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "NEW_TOKEN from a client", t)
    r.new_tokens += 1  # §8.1.3: for the next connection; a few are plenty
    if r.new_tokens <= MAX_NEW_TOKENS:
        c.event_queue.append(NewTokenReceived(frame.token))


#: The handler of each control frame type: ``handler(receiver, frame, frame type, the
#: packet's destination CID, now)``.
_Handler = Callable[["PacketReceiver", Any, int, bytes, float], None]
_BY_TYPE: dict[fr.FrameType, _Handler] = {
    _FT.CONNECTION_CLOSE: _connection_close,
    _FT.CONNECTION_CLOSE_APP: _connection_close,
    _FT.MAX_DATA: _max_data,
    _FT.MAX_STREAM_DATA: _max_stream_data,
    _FT.MAX_STREAMS_BIDI: _max_streams,
    _FT.MAX_STREAMS_UNI: _max_streams,
    _FT.RESET_STREAM: _reset_stream,
    _FT.STOP_SENDING: _stop_sending,
    _FT.NEW_CONNECTION_ID: _new_connection_id,
    _FT.RETIRE_CONNECTION_ID: _retire_connection_id,
    _FT.PATH_CHALLENGE: _path_challenge,
    _FT.PATH_RESPONSE: _path_response,
    _FT.HANDSHAKE_DONE: _handshake_done,
    _FT.ACK_FREQUENCY: _ack_frequency,
    _FT.NEW_TOKEN: _new_token,
}
#: Keyed by plain ints, as the receiver looks them up.
CONTROL_HANDLERS = {int(frame_type): handler for frame_type, handler in _BY_TYPE.items()}
