"""The receive path of a QUIC connection (RFC 9000 §12, §17; RFC 9001 §5, §6).

Unprotects each packet in a datagram with the right key (and key phase),
drops duplicates, and dispatches its frames: ACK to recovery, STREAM and
flow control to the stream manager, CRYPTO to TLS, the rest to the
connection's state. Also Version Negotiation and Retry on the client.

A 1-RTT packet takes a flat path: header protection and AEAD with the keys
built once per key phase, and ACK, STREAM, DATAGRAM, PADDING, PING and
NEW_CONNECTION_ID read in place from the payload without frame objects. Other
frames go through the general parser, then to their handler by frame type
(:mod:`~quicnet.quic.control_received`); the long-header packets of the
handshake read ACK and CRYPTO in place too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.crypto import DecryptError
from quicnet.quic import frames as fr
from quicnet.quic.ack_frequency import review as review_ack_frequency
from quicnet.quic.buffer import MAX_VARINT, Reader, padding_end, varint_at, varint_size
from quicnet.quic.compatible_versions import (
    defers_initial_ack,
    on_other_version_opened,
    other_version_key,
)
from quicnet.quic.control_received import CONTROL_HANDLERS, MAX_NEW_TOKENS, new_connection_id
from quicnet.quic.crypto_streams import recv_key
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.frames import read_ack
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    LongHeader,
    PacketType,
    decode_packet_number,
    parse_long_header,
)
from quicnet.quic.paths import address_key
from quicnet.quic.protection import PacketKey
from quicnet.quic.qlog_schema import PACKET_TYPE
from quicnet.quic.recovery import EPOCH_SPACE
from quicnet.quic.restart import on_retry
from quicnet.quic.zero_rtt import discard_keys_if_due
from quicnet.tls import Epoch
from quicnet.tls.events import INITIAL_EPOCH, ONE_RTT_EPOCH, ZERO_RTT_EPOCH

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.events import Address

__all__ = ["MAX_NEW_TOKENS", "OpenedInitial", "PacketReceiver"]

#: A datagram's first packet, already opened: (datagram, key, header, first byte, packet
#: number, payload); see ``PacketReceiver.opened_first``.
OpenedInitial = tuple[bytes, PacketKey, LongHeader, int, int, bytes]


# Frames allowed per packet type (RFC 9000 §12.4, Table 3).
_HANDSHAKE_FRAMES = frozenset({0x00, 0x01, 0x02, 0x03, 0x06, 0x1C})
# 0-RTT: also ACK_FREQUENCY and IMMEDIATE_ACK (draft-ietf-quic-ack-frequency §3).
_ZERO_RTT_FORBIDDEN = frozenset({0x02, 0x03, 0x06, 0x07, 0x19, 0x1B, 0x1E, 0x1F, 0xAF})
_NOT_ACK_ELICITING = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
_PROBING = frozenset({0x00, 0x18, 0x1A, 0x1B})  # PADDING, NEW_CONNECTION_ID, PATH_* (§9.1)
_PACKET_EPOCH = {
    PacketType.INITIAL: Epoch.INITIAL,
    PacketType.HANDSHAKE: Epoch.HANDSHAKE,
    PacketType.ZERO_RTT: Epoch.ZERO_RTT,
}
_FRAME_ENCODING = TransportErrorCode.FRAME_ENCODING_ERROR
#: Each byte value as a one-byte ``bytes``: a tuple lookup, not a ``bytes(...)`` call, for
#: the first and packet-number bytes of each 1-RTT packet's associated data.
_BYTE = tuple(bytes((i,)) for i in range(256))
_VIOLATION = TransportErrorCode.PROTOCOL_VIOLATION
_RETRY = PacketType.RETRY


def _truncated(frame_type: int) -> TransportError:
    return TransportError(_FRAME_ENCODING, f"frame 0x{frame_type:x} truncated", frame_type)


class PacketReceiver:
    """Parses and dispatches what arrives for one connection."""

    __slots__ = ("c", "new_tokens", "opened_first")

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection
        #: NEW_TOKEN frames received (RFC 9000 §19.7); only the first few become events.
        self.new_tokens = 0
        #: A server endpoint's client first Initial, which it authenticated before building
        #: the connection: the datagram, the key that opened it, the parsed header, and
        #: what opening gave (first byte, packet number, payload). Set and cleared by the
        #: endpoint around that datagram's ``receive_datagram``, so the packet is not
        #: decrypted twice; the same datagram object under the same key only.
        self.opened_first: OpenedInitial | None = None

    def detach(self) -> None:
        """Forget the connection, which ended (:meth:`QuicConnection.dispose
        <quicnet.quic.QuicConnection.dispose>`): no reference cycle is left through here."""
        del self.c

    def receive_packets(self, data: bytes, address: Address, now: float, ecn: int = 0) -> None:
        """Every packet of a datagram, in order (raises on a peer's protocol violation);
        ``ecn`` is the datagram's ECN codepoint, counted for each packet (§13.4.1)."""
        if not data[0] & 0x80:
            self.receive_short(data, 0, address, now, ecn)  # the common case: one 1-RTT packet
            return
        start = 0
        end: int | None = 0
        first_dcid = data[6 : 6 + data[5]] if len(data) > 6 else b""
        while end is not None and start < len(data):
            if start:
                # §12.2: coalesced packets carry the first one's destination CID; a
                # packet with another is not part of this datagram's connection.
                long = data[start] & 0x80
                at = start + 6 if long else start + 1
                size = data[start + 5] if long and len(data) > start + 5 else len(first_dcid)
                if data[at : at + size] != first_dcid:
                    if self.c.tracer is not None:
                        kind = "unknown" if long else "1RTT"
                        self.c.tracer.packet_dropped(
                            kind, len(data) - start, "unknown_connection_id", now
                        )
                    return
            if data[start] & 0x80:
                end = self._receive_long(data, start, address, now, ecn)
            else:
                self.receive_short(data, start, address, now, ecn)
                return  # a short-header packet runs to the end of the datagram
            start = end if end is not None else start

    # 1-RTT: the flat path ---------------------------------------------------------------------
    def receive_short(
        self, data: bytes, start: int, address: Address, now: float, ecn: int
    ) -> None:
        """The 1-RTT packet at ``start``, to the end of the datagram (the connection
        calls it directly for a datagram that starts with one)."""
        c = self.c
        keys = c.keys
        recv = keys.recv
        first = data[start]
        if recv is None or not first & 0x40:
            # No 1-RTT keys (yet), or the fixed bit is zero (§17.3).
            if c.tracer is not None:
                why = "key_unavailable" if recv is None else "header_parse_error"
                c.tracer.packet_dropped("1RTT", len(data) - start, why, now)
            return
        pn_offset = start + 1 + c.cid_length
        sample = pn_offset + 4
        if len(data) < sample + 16:  # too short to sample: may still be a stateless reset
            if start == 0 and c.cids.is_stateless_reset(data):
                c.end_by_stateless_reset()
            elif c.tracer is not None:
                c.tracer.packet_dropped("1RTT", len(data) - start, "header_parse_error", now)
            return
        hp = recv.hp
        ecb = hp.ecb  # AES (RFC 9001 §5.4.3): the block's first 5 bytes, no mask() call
        mask = (
            hp.mask(data[sample : sample + 16])
            if ecb is None
            else ecb.update(data[sample : sample + 16])
        )
        first ^= mask[0] & 0x1F
        pn_len = (first & 0x03) + 1
        dcid = data[start + 1 : pn_offset]
        space = c.recovery.spaces[2]
        # Appendix A.3; in the common case the packet is the next one expected.
        expected = space.largest_received + 1
        if pn_len == 1:  # (most packets: no int conversions)
            truncated = data[pn_offset] ^ mask[1]
            header = _BYTE[first] + dcid + _BYTE[truncated]
            pn = (expected & -0x100) | truncated  # (the expected number's high bytes)
        else:
            truncated = int.from_bytes(data[pn_offset : pn_offset + pn_len], "big")
            truncated ^= int.from_bytes(mask[1 : 1 + pn_len], "big")
            header = _BYTE[first] + dcid + truncated.to_bytes(pn_len, "big")
            pn = (expected >> (8 * pn_len) << (8 * pn_len)) | truncated
        if pn != expected:
            pn = decode_packet_number(truncated, pn_len, space.largest_received)
        body = data[pn_offset + pn_len :]  # (a copy costs less than a view of a packet)
        try:
            if (first >> 2) & 0x01 == keys.recv_phase:
                payload = recv.aead.open(pn, body, header)  # (PacketKey.open, one call less)
            else:  # RFC 9001 §6.3: the next keys, or late old ones
                payload = keys.open_flipped(
                    header,
                    body,
                    pn,
                    (first >> 2) & 0x01,
                    space.largest_received,
                    # §6.1: the client cannot confirm before the server completed; a
                    # client may see the server's update before HANDSHAKE_DONE.
                    may_follow=c.is_client or c.handshake_confirmed,
                    next_packet_number=space.next_packet_number,
                )
        except DecryptError:
            if start == 0 and c.cids.is_stateless_reset(data):
                c.end_by_stateless_reset()
            elif c.tracer is not None:
                c.tracer.packet_dropped("1RTT", len(data) - start, "payload_decrypt_error", now)
            return
        if first & 0x18:  # §17.3.1: reserved bits are zero once protection is removed
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if pn <= space.largest_received and space.is_duplicate(pn):
            if c.tracer is not None:
                c.tracer.packet_dropped("1RTT", len(data) - start, "duplicate", now, pn)
            return
        if c.preferred is not None and pn > space.largest_received and c.preferred.left_behind(c):
            # §9.6.2: a server that moved to its preferred address drops newer packets
            # that still reach the old one (delayed ones it may process).
            if c.tracer is not None:
                c.tracer.packet_dropped("1RTT", len(data) - start, "unexpected_packet", now, pn)
            return
        # §10.1: the idle timer restarts (ConnectionDeadlines.on_packet_received, in
        # place); the datagram earned its path's 3x budget (§8).
        deadlines = c.deadlines
        deadlines.last_activity = now
        deadlines.restart_on_send = True
        c.datagram_authenticated = True
        if c.tracer is not None:
            c.tracer.packet_received(ONE_RTT_EPOCH, pn, payload, len(data) - start, now)
        ack_eliciting, non_probing = self._one_rtt_frames(payload, now, dcid)
        if non_probing and pn > space.largest_received:
            current = c.paths.current
            if c.preferred is not None:  # §9.6.2: the preferred address has its own rules
                c.preferred.on_non_probing(c, address, now)
            elif (
                current is not None
                and address != current.address
                and address_key(address) != current.key
                and c.handshake_confirmed
                and not c.is_client
            ):
                c.on_peer_migrated(address, now)  # §9.3: the newest packet decides
        previous = space.largest_received
        bounds = space.received.bounds
        if pn == previous + 1 and bounds and bounds[-1] == pn:
            # PacketSpace.on_packet_received for the next packet in order: it extends
            # the top range (no new range, so no trimming).
            bounds[-1] = pn + 1
            space.largest_received = pn
            space.largest_received_time = now
        else:
            space.on_packet_received(pn, now)
        if ecn:  # §13.4.1: each packet counts, duplicates (dropped above) do not
            c.ecn.received[8 + ecn] += 1
        if ack_eliciting:
            # §13.2.1 (and the peer's ACK_FREQUENCY): every second packet by default; at
            # once when out of order or CE-marked; else within max_ack_delay.
            acks = c.acks
            space.unacked_ack_eliciting += 1
            if space.unacked_ack_eliciting > acks.ack_eliciting_threshold or (
                (pn != previous + 1 or ecn == 3 or acks.reordering_threshold > 1)
                and acks.ack_now(space, pn, previous, ecn == 3)
            ):
                space.ack_queued = True
            elif space.ack_deadline is None:
                space.ack_deadline = now + acks.max_ack_delay

    def _one_rtt_frames(self, payload: bytes, now: float, dcid: bytes) -> tuple[bool, bool]:
        """The frames of a 1-RTT packet; returns (ack-eliciting?, non-probing? (§9.1))."""
        end = len(payload)
        if not end:
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames")
        c = self.c
        ack_eliciting = non_probing = False
        pos = 0
        t = 0
        try:
            while pos < end:
                frame_start = pos
                t = payload[pos]
                pos += 1
                if t == 0x00:  # PADDING: skip the run (in C, not byte by byte)
                    pos = padding_end(payload, pos)
                    continue
                if t == 0x31 or t == 0x30:  # DATAGRAM (RFC 9221 §4)
                    if t == 0x31:
                        length = payload[pos]
                        if 0x40 <= length < 0x80:  # the usual two-byte length
                            length = ((length & 0x3F) << 8) | payload[pos + 1]
                            pos += 2
                        else:
                            length, pos = varint_at(payload, pos)
                        if pos + length > end:
                            raise _truncated(t)
                    else:
                        length = end - pos
                    limit = c.local_params.max_datagram_frame_size
                    # RFC 9221 §3: the limit counts the whole frame (type, length, payload).
                    if limit is None or pos + length - frame_start > limit:
                        raise TransportError(
                            _VIOLATION, "DATAGRAM frame not allowed or too large", t
                        )
                    c.datagrams.on_received(payload[pos : pos + length])
                    pos += length
                    ack_eliciting = non_probing = True
                elif t == 0x02 or t == 0x03:  # ACK (§19.3)
                    ranges, delay, counts, pos = read_ack(payload, pos, t)
                    self._on_ack(2, ranges, delay, now, counts)
                    non_probing = True
                elif 0x08 <= t <= 0x0F:  # STREAM (§19.8)
                    # One- and two-byte varints inline (the first streams, short
                    # lengths); longer ones by varint_at.
                    stream_id = payload[pos]
                    if stream_id < 0x40:
                        pos += 1
                    else:
                        stream_id, pos = varint_at(payload, pos)
                    offset = 0
                    if t & 0x04:
                        offset, pos = varint_at(payload, pos)
                    if t & 0x02:
                        length = payload[pos]
                        if length < 0x40:
                            pos += 1
                        elif length < 0x80:
                            length = ((length & 0x3F) << 8) | payload[pos + 1]
                            pos += 2
                        else:
                            length, pos = varint_at(payload, pos)
                        if pos + length > end:
                            raise _truncated(t)
                    else:
                        length = end - pos
                    if offset + length > MAX_VARINT:
                        raise TransportError(_FRAME_ENCODING, "stream data beyond 2^62-1", t)
                    c.streams.on_stream_data(
                        stream_id, offset, payload[pos : pos + length], bool(t & 0x01), t
                    )
                    pos += length
                    ack_eliciting = non_probing = True
                elif t == 0x01:  # PING
                    ack_eliciting = non_probing = True
                elif t == 0x18:  # NEW_CONNECTION_ID: a probing frame (§9.1), several a handshake
                    pos = self._on_new_connection_id(payload, pos, end)
                    ack_eliciting = True
                elif t == 0x1F:  # IMMEDIATE_ACK (draft-ietf-quic-ack-frequency §5)
                    c.acks.on_immediate_ack()  # PROTOCOL_VIOLATION unless we offered it
                    c.recovery.spaces[2].ack_queued = True
                    ack_eliciting = non_probing = True
                elif t >= 0x40:  # a type varint of two or more bytes: only ACK_FREQUENCY
                    t, pos = varint_at(payload, pos - 1)
                    if t != fr.FrameType.ACK_FREQUENCY or pos != frame_start + 2:
                        raise TransportError(_FRAME_ENCODING, f"unknown frame type 0x{t:x}", t)
                    reader = Reader(payload, pos)
                    frame = fr.parse_frame(reader, t)
                    pos = reader.pos
                    ack_eliciting = non_probing = True
                    self._on_control_frame(frame, t, dcid, now)
                elif t == 0x06:  # CRYPTO (§19.6): a NewSessionTicket, read in place
                    ack_eliciting = non_probing = True
                    pos = self._read_crypto(ONE_RTT_EPOCH, payload, pos, end, now)
                else:  # the rest: rare, parsed into objects
                    reader = Reader(payload, pos)
                    frame = fr.parse_frame(reader, t)
                    pos = reader.pos
                    if t not in _NOT_ACK_ELICITING:
                        ack_eliciting = True
                    if t not in _PROBING:
                        non_probing = True
                    self._on_control_frame(frame, t, dcid, now)
        except IndexError:  # a varint or field ran past the payload
            raise _truncated(t) from None
        except TransportError as exc:  # §19.19: the close names the frame that caused it
            if exc.frame_type is None:
                exc.frame_type = t
            raise
        return ack_eliciting, non_probing

    def _on_new_connection_id(self, payload: bytes, pos: int, end: int) -> int:
        """NEW_CONNECTION_ID (§19.15) at ``pos``, after its type, read in place; returns
        the position after it. IndexError when a varint runs past the payload."""
        sequence_number, pos = varint_at(payload, pos)
        retire_prior_to, pos = varint_at(payload, pos)
        length = payload[pos]
        if not 1 <= length <= 20:
            raise TransportError(_FRAME_ENCODING, "NEW_CONNECTION_ID length outside 1..20", 0x18)
        start = pos + 1
        token_start = start + length
        stop = token_start + 16  # the Stateless Reset Token
        if stop > end:
            raise _truncated(0x18)
        if retire_prior_to > sequence_number:
            raise TransportError(_FRAME_ENCODING, "retire_prior_to above sequence number", 0x18)
        new_connection_id(
            self.c,
            sequence_number,
            retire_prior_to,
            payload[start:token_start],
            payload[token_start:stop],
        )
        return stop

    def _on_datagram(self, data: bytes, frame_size: int, t: int) -> None:
        """A DATAGRAM frame of a 0-RTT packet (the 1-RTT loop reads its own in place)."""
        c = self.c
        limit = c.local_params.max_datagram_frame_size
        # RFC 9221 §3: the limit counts the whole frame (type, length, payload).
        if limit is None or frame_size > limit:
            raise TransportError(_VIOLATION, "DATAGRAM frame not allowed or too large", t)
        c.datagrams.on_received(data)

    # Long headers: the handshake ----------------------------------------------------------------
    def _receive_long(
        self, data: bytes, start: int, address: Address, now: float, ecn: int
    ) -> int | None:
        """Process the long-header packet at ``start``; return where the next one starts."""
        c = self.c
        opened = self.opened_first
        if opened is not None and (start or opened[0] is not data):
            opened = None
        try:
            header = parse_long_header(data, start) if opened is None else opened[2]
        except TransportError:  # unknown version or malformed: drop the rest
            if c.tracer is not None:
                c.tracer.packet_dropped("unknown", len(data) - start, "header_parse_error", now)
            return None
        other_key = None
        if header.version != c.version and header.packet_type != _RETRY:
            # RFC 9368 §2.3, RFC 9369 §4.1: the original or the negotiated version.
            other_key = other_version_key(c, header.version, _PACKET_EPOCH[header.packet_type])
        if header.version != c.version and other_key is None:
            if c.tracer is not None:
                c.tracer.packet_dropped("unknown", len(data) - start, "unexpected_version", now)
            return None
        if header.packet_type == _RETRY:
            accepted = on_retry(c, data[start:], header.source_cid, header.token)
            if c.tracer is not None:
                c.tracer.retry_received(header, len(data) - start, accepted, now)
            return None
        epoch = _PACKET_EPOCH[header.packet_type]
        tracer = c.tracer
        if not c.is_client and epoch == INITIAL_EPOCH and len(data) < MIN_INITIAL_DATAGRAM:
            # §14.1: a server drops Initials in small datagrams.
            if tracer is not None:
                tracer.packet_dropped(PACKET_TYPE[epoch], len(data) - start, "invalid_initial", now)
            return None
        end = header.end
        if epoch == ZERO_RTT_EPOCH and c.zero_rtt is not None:
            discard_keys_if_due(c, now)  # RFC 9001 §4.9.3: never past their time
        key = recv_key(c, epoch) if other_key is None else other_key
        if key is None:  # keys not (yet, or any longer) available: drop this packet
            if tracer is not None:
                tracer.packet_dropped(PACKET_TYPE[epoch], end - start, "key_unavailable", now)
            return end
        space = c.recovery.spaces[EPOCH_SPACE[epoch]]
        if opened is not None and opened[1] is key and space.largest_received < 0:
            # Opened by the endpoint with this key, nothing received before (the packet
            # number decodes as it did there): the same first byte, number and payload.
            self.opened_first = None
            first, pn, payload = opened[3], opened[4], opened[5]
        else:
            packet = data[start:end]
            pn_offset = header.pn_offset - start
            try:
                first, truncated, pn_len = key.unprotect_header(packet, pn_offset)
                pn = decode_packet_number(truncated, pn_len, space.largest_received)
                aad = bytes((first,)) + packet[1:pn_offset] + truncated.to_bytes(pn_len, "big")
                payload = key.open(aad, packet[pn_offset + pn_len :], pn)
            except DecryptError:
                if tracer is not None:
                    tracer.packet_dropped(
                        PACKET_TYPE[epoch], end - start, "payload_decrypt_error", now
                    )
                return end
        if first & 0x0C:  # §17.2: reserved bits are zero once protection is removed
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if pn <= space.largest_received and space.is_duplicate(pn):
            if tracer is not None:
                tracer.packet_dropped(PACKET_TYPE[epoch], end - start, "duplicate", now, pn)
            return end
        if other_key is not None:
            on_other_version_opened(c, header.version)
        c.deadlines.on_packet_received(now)  # §10.1: the idle timer restarts
        c.datagram_authenticated = True  # §8: the datagram earns its path's 3x budget
        if tracer is not None:
            tracer.packet_received(epoch, pn, payload, end - start, now, header)
        c.handshake.on_long_header_packet(epoch, header.source_cid, address)
        # A server's ClientHello so far (RFC 9368 §2.3: the version may hang on the rest).
        hello = c.spaces[epoch].receiver if epoch == INITIAL_EPOCH and not c.is_client else None
        seen = hello.highest_offset + hello.read_offset if hello is not None else 0
        ack_eliciting = self._long_header_frames(epoch, payload, now, header.destination_cid)
        space.on_packet_received(pn, now)
        if ecn:
            c.ecn.received[EPOCH_SPACE[epoch] * 4 + ecn] += 1
        if ack_eliciting:
            space.unacked_ack_eliciting += 1
            if hello is not None and defers_initial_ack(
                c, hello.highest_offset + hello.read_offset > seen
            ):
                pass  # acknowledged with the ServerHello, in the negotiated version
            elif epoch != ZERO_RTT_EPOCH or space.unacked_ack_eliciting >= 2:
                space.ack_queued = True  # §13.2.1: Initial and Handshake at once
            elif space.ack_deadline is None:
                space.ack_deadline = now + c.configuration.max_ack_delay
        return end

    def _long_header_frames(self, epoch: Epoch, payload: bytes, now: float, dcid: bytes) -> bool:
        """Process an Initial, Handshake or 0-RTT packet's frames; True if ack-eliciting.

        ACK and CRYPTO, the frames of the handshake, are read in place as on the 1-RTT
        path; the others are parsed into objects."""
        end = len(payload)
        if not end:
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames")
        ack_eliciting = False
        handshake = epoch != ZERO_RTT_EPOCH
        pos = 0
        t = 0
        try:
            while pos < end:
                t = payload[pos]
                if t < 0x40:
                    pos += 1
                else:
                    t, pos = varint_at(payload, pos)
                if handshake and t not in _HANDSHAKE_FRAMES:
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        f"frame 0x{t:x} not allowed at {epoch.name}",
                        t,
                    )
                if not handshake and t in _ZERO_RTT_FORBIDDEN:
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        f"frame 0x{t:x} not allowed in 0-RTT",
                        t,
                    )
                if t not in _NOT_ACK_ELICITING:
                    ack_eliciting = True
                if t == 0x00:  # PADDING: skip the run (in C, not byte by byte)
                    pos = padding_end(payload, pos)
                elif t == 0x06:  # CRYPTO (§19.6), never in 0-RTT
                    pos = self._read_crypto(epoch, payload, pos, end, now)
                elif t == 0x02 or t == 0x03:  # ACK (§19.3), never in 0-RTT
                    ranges, delay, counts, pos = read_ack(payload, pos, t)
                    self._on_ack(EPOCH_SPACE[epoch], ranges, delay, now, counts)
                else:
                    reader = Reader(payload, pos)
                    frame = fr.parse_frame(reader, t)
                    pos = reader.pos
                    if isinstance(frame, fr.StreamFrame):  # 0-RTT only
                        self.c.streams.on_stream(frame, t)
                    elif isinstance(frame, fr.DatagramFrame):
                        size = len(frame.data) + 1
                        if t == 0x31:
                            size += varint_size(len(frame.data))
                        self._on_datagram(frame.data, size, t)
                    elif not isinstance(frame, fr.PingFrame | fr.PaddingFrame):
                        self._on_control_frame(frame, t, dcid, now)
        except IndexError:  # a varint or field ran past the payload, as on the 1-RTT path
            raise _truncated(t) from None
        except TransportError as exc:  # §19.19: the close names the frame that caused it
            if exc.frame_type is None:
                exc.frame_type = t
            raise
        return ack_eliciting

    # Frames shared by both paths ----------------------------------------------------------------
    def _read_crypto(self, epoch: Epoch, payload: bytes, pos: int, end: int, now: float) -> int:
        """The CRYPTO frame (§19.6) whose type byte ends at ``pos``, read in place and
        handed on; returns where the next frame starts."""
        offset, pos = varint_at(payload, pos)
        length, pos = varint_at(payload, pos)
        if pos + length > end:
            raise _truncated(0x06)
        if offset + length > MAX_VARINT:
            raise TransportError(_FRAME_ENCODING, "crypto data beyond 2^62-1", 0x06)
        self._on_crypto(epoch, offset, payload[pos : pos + length], now)
        return pos + length

    def _on_crypto(self, epoch: Epoch, offset: int, data: bytes, now: float) -> None:
        c = self.c
        space = c.spaces[ONE_RTT_EPOCH if epoch == ZERO_RTT_EPOCH else epoch]
        data = space.receive(offset, data)
        if data:
            c.tls.receive(epoch, data, c.configuration.wall_clock())  # dates tickets
            c.drain_tls(now)

    def _on_ack(
        self,
        space_id: int,
        ranges: list[tuple[int, int]] | tuple[tuple[int, int], ...],
        ack_delay: int,
        now: float,
        ecn_counts: tuple[int, int, int] | None,
    ) -> None:
        c = self.c
        space = c.recovery.spaces[space_id]
        if space.discarded:
            return  # the rest of a packet whose CRYPTO data just ended its epoch (§4.9)
        largest = ranges[0][0]
        if largest >= space.next_packet_number:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "ACK for a packet never sent",
                0x02 if ecn_counts is None else 0x03,  # ACK or ACK_ECN (§19.3)
            )
        params = c.remote_params
        exponent = params.ack_delay_exponent if params is not None and space_id == 2 else 3
        delay = (ack_delay << exponent) / 1e6
        previous = space.largest_acked
        recovery = c.recovery
        acked, _lost = recovery.on_ack_received(space_id, ranges, delay, now)
        if not acked:
            return
        if space_id == 2:
            keys = c.keys
            if not keys.update_confirmed:  # RFC 9001 §6.1
                keys.on_acked(acked[-1].packet_number)
            if now >= c.acks.review_at:  # an adaptive ACK_FREQUENCY, once per RTT (§8.1)
                review_ack_frequency(c, now)
        ecn = c.ecn
        if ecn.validating:  # RFC 9000 §13.4.2.1; a CE rise is congestion (RFC 9002 §7.1)
            raised = previous is None or largest > previous
            if raised and space_id == 2 and ecn_counts is not None:  # the common case
                ce = ecn.on_one_rtt_ack(acked, ecn_counts, space.next_packet_number)
            else:
                ce = ecn.on_ack(space_id, acked, ecn_counts, raised, space.next_packet_number)
            if ce:
                recovery.cc.on_congestion_event(acked[-1].time_sent, now)  # §13.4.2, RFC 9002 §B.7

    def _on_control_frame(self, frame: fr.Frame, t: int, dcid: bytes, now: float) -> None:
        handler = CONTROL_HANDLERS.get(t)
        if handler is not None:  # none for DATA_BLOCKED and the like: informational
            handler(self, frame, t, dcid, now)
