"""qlog's vocabulary for QUIC: packets, frames, parameters and errors as qlog writes them.

The shapes are those of draft-ietf-quic-qlog-quic-events-03 (§8: PacketType,
the QuicFrame objects, TransportError and CryptoError) under
draft-ietf-quic-qlog-main-schema-04 (qlog_version "0.3"); DATAGRAM frames
(RFC 9221), which that draft does not define yet, are ``{"frame_type":
"datagram", "length": n}``. :class:`~quicnet.quic.qlog.QlogTracer` writes them.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from quicnet.quic import frames as fr
from quicnet.quic.buffer import Reader
from quicnet.quic.errors import TransportError
from quicnet.quic.records import CRYPTO, STREAM
from quicnet.tls import Epoch

if TYPE_CHECKING:
    from quicnet.quic.events import ConnectionTerminated
    from quicnet.quic.recovery import SentPacket
    from quicnet.quic.transport_params import TransportParameters

__all__ = [
    "PACKET_TYPE",
    "QLOG_FORMAT",
    "QLOG_VERSION",
    "SPACE_PACKET_TYPE",
    "close_trigger",
    "error_code_name",
    "lost_frames",
    "milliseconds",
    "parameters_set",
    "qlog_frames",
]

QLOG_VERSION = "0.3"  # main schema -02 to -05, §3
QLOG_FORMAT = "JSON-SEQ"  # main schema §6.2

#: PacketType (quic-events §8.5) of each epoch and of each packet number space.
PACKET_TYPE = {
    Epoch.INITIAL: "initial",
    Epoch.ZERO_RTT: "0RTT",
    Epoch.HANDSHAKE: "handshake",
    Epoch.ONE_RTT: "1RTT",
}
SPACE_PACKET_TYPE = ("initial", "handshake", "1RTT")
# TransportError names of quic-events -03 (RFC 9000 §20.1, codes 0x00-0x10); others are numbers.
_TRANSPORT_ERRORS = (
    "no_error",
    "internal_error",
    "connection_refused",
    "flow_control_error",
    "stream_limit_error",
    "stream_state_error",
    "final_size_error",
    "frame_encoding_error",
    "transport_parameter_error",
    "connection_id_limit_error",
    "protocol_violation",
    "invalid_token",
    "application_error",
    "crypto_buffer_exceeded",
    "key_update_error",
    "aead_limit_reached",
    "no_viable_path",
)
_FRAME_NAMES = {
    0x00: "padding",
    0x01: "ping",
    0x02: "ack",
    0x03: "ack",
    0x04: "reset_stream",
    0x05: "stop_sending",
    0x06: "crypto",
    0x07: "new_token",
    **{t: "stream" for t in range(0x08, 0x10)},
    0x10: "max_data",
    0x11: "max_stream_data",
    0x12: "max_streams",
    0x13: "max_streams",
    0x14: "data_blocked",
    0x15: "stream_data_blocked",
    0x16: "streams_blocked",
    0x17: "streams_blocked",
    0x18: "new_connection_id",
    0x19: "retire_connection_id",
    0x1A: "path_challenge",
    0x1B: "path_response",
    0x1C: "connection_close",
    0x1D: "connection_close",
    0x1E: "handshake_done",
    0x1F: "immediate_ack",  # draft-ietf-quic-ack-frequency §5
    0x30: "datagram",
    0x31: "datagram",
    0xAF: "ack_frequency",  # draft-ietf-quic-ack-frequency §4
}


def error_code_name(code: int) -> str | int:
    """A transport error as quic-events names it: TransportError, CryptoError or a number."""
    if code < len(_TRANSPORT_ERRORS):
        return _TRANSPORT_ERRORS[code]
    if 0x100 <= code <= 0x1FF:
        return f"crypto_error_0x{code:x}"
    return code


def _stream_type(bidirectional: bool) -> str:
    return "bidirectional" if bidirectional else "unidirectional"


def milliseconds(seconds: float) -> float:
    """Seconds as qlog's milliseconds (main schema §1.1.1), to the microsecond."""
    return round(seconds * 1000, 3)


def _frame(frame: fr.Frame, frame_type: int, ack_delay_exponent: int) -> dict[str, Any]:
    """One frame as quic-events §8.11 writes it."""
    name = _FRAME_NAMES[frame_type]
    out: dict[str, Any] = {"frame_type": name}
    if isinstance(frame, fr.PaddingFrame):
        out["length"] = out["payload_length"] = frame.length
    elif isinstance(frame, fr.AckFrame):
        out["ack_delay"] = milliseconds((frame.ack_delay << ack_delay_exponent) / 1e6)
        out["acked_ranges"] = [
            [low] if low == high else [low, high] for high, low in reversed(frame.ranges)
        ]
        if frame.ecn_counts is not None:
            out["ect0"], out["ect1"], out["ce"] = frame.ecn_counts
    elif isinstance(frame, fr.StreamFrame):
        out.update(stream_id=frame.stream_id, offset=frame.offset, length=len(frame.data))
        if frame.fin:
            out["fin"] = True
    elif isinstance(frame, fr.DatagramFrame):
        out["length"] = len(frame.data)
    elif isinstance(frame, fr.CryptoFrame):
        out.update(offset=frame.offset, length=len(frame.data))
    elif isinstance(frame, fr.ResetStreamFrame):
        out.update(
            stream_id=frame.stream_id, error_code=frame.error_code, final_size=frame.final_size
        )
    elif isinstance(frame, fr.StopSendingFrame):
        out.update(stream_id=frame.stream_id, error_code=frame.error_code)
    elif isinstance(frame, fr.NewTokenFrame):
        out["token"] = {"length": len(frame.token)}
    elif isinstance(frame, fr.MaxDataFrame):
        out["maximum"] = frame.maximum_data
    elif isinstance(frame, fr.MaxStreamDataFrame):
        out.update(stream_id=frame.stream_id, maximum=frame.maximum_stream_data)
    elif isinstance(frame, fr.MaxStreamsFrame):
        out.update(stream_type=_stream_type(frame.bidirectional), maximum=frame.maximum_streams)
    elif isinstance(frame, fr.DataBlockedFrame):
        out["limit"] = frame.maximum_data
    elif isinstance(frame, fr.StreamDataBlockedFrame):
        out.update(stream_id=frame.stream_id, limit=frame.maximum_stream_data)
    elif isinstance(frame, fr.StreamsBlockedFrame):
        out.update(stream_type=_stream_type(frame.bidirectional), limit=frame.maximum_streams)
    elif isinstance(frame, fr.NewConnectionIdFrame):
        out.update(
            sequence_number=frame.sequence_number,
            retire_prior_to=frame.retire_prior_to,
            connection_id_length=len(frame.connection_id),
            connection_id=frame.connection_id.hex(),
            stateless_reset_token=frame.stateless_reset_token.hex(),
        )
    elif isinstance(frame, fr.RetireConnectionIdFrame):
        out["sequence_number"] = frame.sequence_number
    elif isinstance(frame, fr.PathChallengeFrame | fr.PathResponseFrame):
        out["data"] = frame.data.hex()
    elif isinstance(frame, fr.AckFrequencyFrame):
        out.update(
            sequence_number=frame.sequence_number,
            ack_eliciting_threshold=frame.ack_eliciting_threshold,
            request_max_ack_delay=frame.requested_max_ack_delay / 1000,  # milliseconds
            reordering_threshold=frame.reordering_threshold,
        )
    elif isinstance(frame, fr.ConnectionCloseFrame):
        if frame.is_application:
            out.update(error_space="application", error_code=frame.error_code)
        else:
            out.update(error_space="transport", error_code=error_code_name(frame.error_code))
            offending = frame.frame_type or 0
            out["trigger_frame_type"] = _FRAME_NAMES.get(offending, offending)
        out["raw_error_code"] = frame.error_code
        out["reason"] = frame.reason.decode("utf-8", "replace")
    return out


def qlog_frames(payload: bytes, ack_delay_exponent: int = 3) -> list[dict[str, Any]]:
    """The frames of a packet's plaintext as qlog ``QuicFrame`` objects.

    A run of PADDING is one frame (quic-events §8.11.1). What does not parse
    (the rest of a malformed payload) ends the list as an ``unknown`` frame
    with its ``raw_frame_type`` (the type varint, RFC 9000 §12.4; its first
    byte if even that is cut short) and ``raw_length``; this never raises.
    """
    out: list[dict[str, Any]] = []
    reader = Reader(payload)
    while not reader.at_end():
        start = reader.pos
        frame_type = -1
        try:
            frame_type = reader.varint()
            frame = fr.parse_frame(reader, frame_type)
        except TransportError:
            out.append(
                {
                    "frame_type": "unknown",
                    "raw_frame_type": payload[start] if frame_type < 0 else frame_type,
                    "raw_length": len(payload) - start,
                }
            )
            break
        out.append(_frame(frame, frame_type, ack_delay_exponent))
    return out


def lost_frames(packet: SentPacket) -> list[dict[str, Any]]:
    """What a lost packet carried, from the sender's frame records (STREAM and CRYPTO)."""
    out: list[dict[str, Any]] = []
    for record in packet.frames:
        if record[0] == STREAM:
            _, stream_id, offset, length, fin = record
            frame = {"frame_type": "stream", "stream_id": stream_id, "offset": offset}
            frame["length"] = length
            if fin:
                frame["fin"] = True
            out.append(frame)
        elif record[0] == CRYPTO:
            out.append({"frame_type": "crypto", "offset": record[2], "length": record[3]})
    return out


def parameters_set(params: TransportParameters, owner: str) -> dict[str, Any]:
    """transport:parameters_set (quic-events §5.3) for one side's transport parameters."""
    data: dict[str, Any] = {"owner": owner}
    for name in (
        "original_destination_connection_id",
        "initial_source_connection_id",
        "retry_source_connection_id",
        "stateless_reset_token",
    ):
        value = getattr(params, name)
        if value is not None:
            data[name] = value.hex()
    data.update(
        disable_active_migration=params.disable_active_migration,
        max_idle_timeout=params.max_idle_timeout,
        max_udp_payload_size=params.max_udp_payload_size,
        ack_delay_exponent=params.ack_delay_exponent,
        max_ack_delay=params.max_ack_delay,
        active_connection_id_limit=params.active_connection_id_limit,
        initial_max_data=params.initial_max_data,
        initial_max_stream_data_bidi_local=params.initial_max_stream_data_bidi_local,
        initial_max_stream_data_bidi_remote=params.initial_max_stream_data_bidi_remote,
        initial_max_stream_data_uni=params.initial_max_stream_data_uni,
        initial_max_streams_bidi=params.initial_max_streams_bidi,
        initial_max_streams_uni=params.initial_max_streams_uni,
    )
    if params.max_datagram_frame_size is not None:  # RFC 9221; an unspecified field (§5.3)
        data["max_datagram_frame_size"] = params.max_datagram_frame_size
    preferred = params.preferred_address
    if preferred is not None:  # quic-events §5.3's PreferredAddress
        data["preferred_address"] = {
            "ip_v4": str(ipaddress.IPv4Address(preferred.ipv4_address)),
            "port_v4": preferred.ipv4_port,
            "ip_v6": ipaddress.IPv6Address(preferred.ipv6_address).compressed,
            "port_v6": preferred.ipv6_port,
            "connection_id": preferred.connection_id.hex(),
            "stateless_reset_token": preferred.stateless_reset_token.hex(),
        }
    return data


def close_trigger(event: ConnectionTerminated) -> str:
    """connection_closed's trigger (quic-events §4.3) for how the connection ended."""
    if event.stateless_reset:
        return "stateless_reset"
    if event.reason.startswith("idle timeout"):
        return "idle_timeout"
    if event.reason.startswith("handshake timeout"):
        return "handshake_timeout"
    if event.reason == "no common QUIC version":
        return "version_mismatch"
    return "clean" if event.error_code == 0 else "error"
