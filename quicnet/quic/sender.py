"""Building packets and datagrams for a connection (RFC 9000 §12-§14, RFC 9001 §5).

Frames go in priority order: ACK, CONNECTION_CLOSE, CRYPTO, HANDSHAKE_DONE,
path and CID frames, flow-control updates, stream resets, DATAGRAMs, then
STREAM data round robin. Each retransmittable frame leaves a delivery
handler on its packet, called on acknowledgement or loss, so a lost frame is
re-queued as data (never as the same packet).
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import TYPE_CHECKING

from quicnet.quic import frames as fr
from quicnet.quic.buffer import encode_varint
from quicnet.quic.events import DatagramAcknowledged, DatagramLost, QuicEvent
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    PacketType,
    encode_packet_number,
    long_header_prefix,
)
from quicnet.quic.recovery import DeliveryHandler, SentPacket
from quicnet.tls import Epoch

if TYPE_CHECKING:
    from quicnet.quic.connection import Address, QuicConnection
    from quicnet.quic.paths import Path

__all__ = ["PacketSender"]

_TAG = 16
_SPACE = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ONE_RTT: 2}
_LONG_TYPE = {Epoch.INITIAL: PacketType.INITIAL, Epoch.HANDSHAKE: PacketType.HANDSHAKE}
#: AEAD confidentiality limit for AES-GCM packets (RFC 9001 §6.6), with margin.
KEY_UPDATE_PACKETS = 1 << 22
MAX_PACKET_SIZE = 1200  # no PMTU discovery yet: the size every path must carry (§14)
MAX_DATAGRAMS_PER_CALL = 64


class _Packet:
    """A packet being filled: header fields, payload, delivery handlers."""

    __slots__ = (
        "ack_eliciting",
        "epoch",
        "handlers",
        "header",
        "padded",
        "payload",
        "pn",
        "pn_len",
        "retransmit",
    )

    def __init__(self, epoch: Epoch, header: bytes, pn: int, pn_len: int) -> None:
        self.epoch = epoch
        self.header = header  # long: up to (not incl.) the Length field; short: incl. DCID
        self.pn = pn
        self.pn_len = pn_len
        self.payload = bytearray()
        self.handlers: list[DeliveryHandler] = []
        #: Called with False when a probe should carry this packet's CRYPTO data again.
        self.retransmit: list[DeliveryHandler] = []
        self.ack_eliciting = False
        self.padded = False  # PADDING makes a packet count as in flight (RFC 9002 §2)

    def overhead(self) -> int:
        length_field = 2 if self.epoch != Epoch.ONE_RTT else 0
        return len(self.header) + length_field + self.pn_len + _TAG

    def size(self) -> int:
        return self.overhead() + len(self.payload)


class PacketSender:
    """The sending half of :class:`~quicnet.quic.connection.QuicConnection`."""

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now, with its destination address."""
        c = self.c
        from quicnet.quic.connection import ConnectionState

        path = c.paths.current
        if (
            path is None
            or not c.cids.peer  # a server that has not authenticated a packet yet
            or c.state in (ConnectionState.TERMINATED, ConnectionState.DRAINING)
        ):
            return []
        if c.state == ConnectionState.CLOSING:
            return self._close_datagrams(path, now)
        if c._version_probe_due is not None:
            probe = c.version_probe(now)
            return [(probe, path.address)] if probe is not None else []
        out: list[tuple[bytes, Address]] = []
        if c.paths.active and c.handshake_complete:
            for probed in c.paths.paths_due(now):
                if datagram := self._path_datagram(probed, now):
                    probed.bytes_sent += len(datagram)
                    out.append((datagram, probed.address))
        c._pacing_deadline = None
        address = path.address
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            datagram = self._build_datagram(path, now)
            if not datagram:
                break
            path.bytes_sent += len(datagram)
            out.append((datagram, address))
        return out

    def _path_datagram(self, path: Path, now: float) -> bytes:
        """PATH_RESPONSE and/or PATH_CHALLENGE for ``path``, alone in a datagram.

        RFC 9000 §8.2.1-8.2.2: expanded to 1200 bytes, or as far as the path's 3x
        budget allows. It goes outside congestion control (§9.4 allows probes that
        exception): it is sent at most once per PTO and per challenge received.
        """
        c = self.c
        packet = self._new_packet(Epoch.ONE_RTT)
        challenge = c.paths.challenge_due(path, now)
        budget = path.budget()
        if packet.overhead() + 9 * (challenge + (path.response is not None)) > budget:
            return b""  # the 3x limit leaves no room yet: wait for the peer's next datagram
        if path.response is not None:
            packet.payload += b"\x1b" + path.response
            path.response = None
        if challenge:
            packet.payload += b"\x1a" + c.paths.new_challenge(path, now, c.recovery.pto_base())
        packet.ack_eliciting = True
        size = min(MIN_INITIAL_DATAGRAM, budget)
        if packet.size() < size:
            packet.payload += bytes(size - packet.size())
        return self._seal(packet, now, in_flight=False)

    def _close_datagrams(self, path: Path, now: float) -> list[tuple[bytes, Address]]:
        c = self.c
        closing = c.closing
        if closing is None or not closing.send_due:
            return []
        closing.send_due = False
        if c._close_deadline is None:
            c._close_deadline = now + 3 * c.recovery.pto_duration(2)
        buf = bytearray()
        for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT):
            if c.spaces[epoch].send_key is None:
                continue
            frame = closing.frame
            if epoch != Epoch.ONE_RTT and closing.application and frame[0] == 0x1D:
                # §10.2.3: before 1-RTT an application close becomes APPLICATION_ERROR.
                frame = fr.encode_connection_close(0x0C, 0, b"")
            packet = self._new_packet(epoch)
            packet.payload += frame
            buf += self._seal(packet, now, record=False)
        if not buf or len(buf) > path.budget():  # §10.2.1: within the 3x limit
            return []
        path.bytes_sent += len(buf)
        return [(bytes(buf), path.address)]

    def _new_packet(self, epoch: Epoch) -> _Packet:
        c = self.c
        rspace = c.recovery.spaces[_SPACE[epoch]]
        pn = rspace.next_packet_number
        _, pn_len = encode_packet_number(pn, rspace.largest_acked)
        peer_cid = c.cids.current_peer_cid
        if epoch == Epoch.ONE_RTT:
            header = bytes((0x40 | (c.key_phase << 2) | (pn_len - 1),)) + peer_cid
        else:
            token = c._retry_token if epoch == Epoch.INITIAL and c.is_client else b""
            header = long_header_prefix(
                _LONG_TYPE[epoch], c.version, peer_cid, c.host_cid, token, pn_len
            )
        packet = _Packet(epoch, header, pn, pn_len)
        return packet

    def _seal(
        self, packet: _Packet, now: float, *, record: bool = True, in_flight: bool = True
    ) -> bytes:
        """Protect ``packet`` and hand its record to recovery."""
        c = self.c
        space = c.spaces[packet.epoch]
        key = space.send_key
        assert key is not None
        # §5.4.2: the sample needs 4 bytes after the start of the packet number.
        if packet.pn_len + len(packet.payload) < 4:
            packet.payload += bytes(4 - packet.pn_len - len(packet.payload))
            packet.padded = True
        pn_bytes = (packet.pn & ((1 << (8 * packet.pn_len)) - 1)).to_bytes(packet.pn_len, "big")
        if packet.epoch == Epoch.ONE_RTT:
            header = packet.header + pn_bytes
        else:
            length = packet.pn_len + len(packet.payload) + _TAG
            header = packet.header + (0x4000 | length).to_bytes(2, "big") + pn_bytes
        wire = key.protect(header, bytes(packet.payload), packet.pn)
        rspace = c.recovery.spaces[_SPACE[packet.epoch]]
        rspace.next_packet_number += 1
        if record:
            c.recovery.on_packet_sent(
                _SPACE[packet.epoch],
                SentPacket(
                    packet.pn,
                    now,
                    packet.ack_eliciting,
                    in_flight and (packet.ack_eliciting or packet.padded),
                    len(wire),
                    packet.handlers,
                    packet.retransmit,
                ),
            )
        if packet.ack_eliciting:
            c.deadlines.on_ack_eliciting_sent(now)
        if packet.epoch == Epoch.ONE_RTT:
            c._packets_in_key_phase += 1
            # RFC 9001 §6.6: update keys well before the AEAD confidentiality limit.
            if (
                c._packets_in_key_phase >= KEY_UPDATE_PACKETS
                and c._key_update_confirmed
                and c.handshake_confirmed
            ):
                c._initiate_key_update()
        if packet.epoch == Epoch.HANDSHAKE and c.is_client:
            c._discard_epoch(Epoch.INITIAL)  # RFC 9001 §4.9.1
        return wire

    def _build_datagram(self, path: Path, now: float) -> bytes:
        c = self.c
        budget = MAX_PACKET_SIZE
        if not path.validated:  # §8.1, §9.3.1: three times what we received
            budget = min(budget, path.budget())
            if budget < 64:
                return b""
        cc = c.recovery.cc
        cwnd_room = cc.congestion_window - cc.bytes_in_flight
        probing = any(c._probes_pending.values())
        allow_eliciting = cwnd_room >= MAX_PACKET_SIZE or probing
        if allow_eliciting and not probing and c.recovery.rtt.first_sample:
            wait = c.recovery.pacer.next_send_time(now, MAX_PACKET_SIZE)
            if wait is not None:
                c._pacing_deadline = wait
                allow_eliciting = False
        packets: list[_Packet] = []
        remaining = budget
        for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT):
            if c.spaces[epoch].send_key is None or remaining < 48:
                continue
            # Handshake data is small and unblocks everything else: it is not held
            # back by a congestion window full of 1-RTT packets the peer cannot read yet.
            eliciting = allow_eliciting or epoch != Epoch.ONE_RTT
            if epoch == Epoch.INITIAL and budget < MIN_INITIAL_DATAGRAM:
                # §14.1 pads an ack-eliciting Initial to 1200 bytes; §8.1 forbids the
                # padding beyond 3x: without room for both, only an ACK may go.
                eliciting = False
            packet = self._fill_packet(epoch, remaining, now, eliciting)
            if packet is not None:
                packets.append(packet)
                remaining -= packet.size()
        if not packets:
            return b""
        # §14.1: datagrams with a client Initial (or an ack-eliciting server Initial) are >= 1200.
        if any(p.epoch == Epoch.INITIAL and (c.is_client or p.ack_eliciting) for p in packets):
            total = sum(p.size() for p in packets)
            if total < MIN_INITIAL_DATAGRAM:
                last = packets[-1]
                last.payload += bytes(MIN_INITIAL_DATAGRAM - total)
                last.padded = True
        return b"".join(self._seal(p, now) for p in packets)

    def _fill_packet(
        self, epoch: Epoch, max_size: int, now: float, allow_eliciting: bool
    ) -> _Packet | None:
        c = self.c
        space_id = _SPACE[epoch]
        rspace = c.recovery.spaces[space_id]
        probes = c._probes_pending.get(space_id, 0)
        has_eliciting = allow_eliciting and self._has_eliciting(epoch)
        if not ((rspace.ack_queued and rspace.received) or probes or has_eliciting):
            return None  # the common case on the hot path: nothing for this space
        packet = self._new_packet(epoch)
        room = max_size - packet.overhead()
        if room <= 0:
            return None
        payload = packet.payload
        # ACK (§13.2): always when queued; piggybacked whenever anything else goes.
        piggyback = rspace.unacked_ack_eliciting and has_eliciting
        if (rspace.ack_queued or piggyback) and rspace.received:
            ack = self._ack_frame(epoch, now)
            if len(ack) <= room:
                payload += ack
                rspace.ack_queued = False
                rspace.unacked_ack_eliciting = 0
                if epoch == Epoch.ONE_RTT:
                    c._ack_deadline = None
        if allow_eliciting:
            if probes and space_id < 2 and not c.spaces[epoch].sender.has_pending():
                # Each probe datagram carries the unacknowledged CRYPTO data: a peer
                # drops an Initial without it (RFC 9000 §17.2.2).
                for sent in rspace.sent.values():
                    for requeue in sent.retransmit:
                        requeue(False)
            self._add_eliciting_frames(packet, max_size - packet.overhead(), now)
            if probes:
                if not packet.ack_eliciting:
                    payload += b"\x01"  # PING
                    packet.ack_eliciting = True
                c._probes_pending[space_id] = probes - 1
        if not payload:
            return None
        return packet

    def _has_eliciting(self, epoch: Epoch) -> bool:
        c = self.c
        space = c.spaces[epoch]
        if space.sender.has_pending():
            return True
        if epoch != Epoch.ONE_RTT or not c.handshake_complete:
            return False
        s = c.streams
        return bool(
            c._datagrams
            or s.send_queue
            or s.pending_max_data
            or s.pending_max_stream_data
            or s.pending_max_streams
            or s.pending_stop_sending
            or c.cids.pending_new
            or c.cids.pending_retire
            or c._handshake_done_pending
            or c._ping_pending
        )

    def _ack_frame(self, epoch: Epoch, now: float) -> bytes:
        c = self.c
        rspace = c.recovery.spaces[_SPACE[epoch]]
        ranges = rspace.received.descending()[:32]
        exponent = c.local_params.ack_delay_exponent if epoch == Epoch.ONE_RTT else 3
        delay_us = (
            max(0, int((now - rspace.largest_received_time) * 1e6)) if epoch == Epoch.ONE_RTT else 0
        )
        return fr.encode_ack(ranges, delay_us >> exponent)

    def _add_eliciting_frames(self, packet: _Packet, room: int, now: float) -> None:
        c = self.c
        payload = packet.payload
        handlers = packet.handlers
        start = len(payload)

        # CRYPTO
        crypto = c.spaces[packet.epoch].sender
        while True:
            avail = room - len(payload) - 1 - 8 - 2  # type, offset, length fields (upper bounds)
            if avail <= 0:
                break
            chunk = crypto.next_range(avail, 1 << 62)
            if chunk is None:
                break
            offset, data, _fin, _new = chunk
            payload += fr.encode_crypto(offset, data)
            handlers.append(_range_handler(crypto, offset, len(data), False))
            packet.retransmit.append(_range_handler(crypto, offset, len(data), False))
        if packet.epoch == Epoch.ONE_RTT and c.handshake_complete:
            self._add_one_rtt_frames(packet, room)
        if len(payload) > start:
            packet.ack_eliciting = True

    def _add_one_rtt_frames(self, packet: _Packet, room: int) -> None:
        c = self.c
        payload = packet.payload
        handlers = packet.handlers
        streams = c.streams
        events = c._events

        def room_left() -> int:
            return room - len(payload)

        if c._handshake_done_pending and room_left() >= 1:
            payload += b"\x1e"
            c._handshake_done_pending = False
            handlers.append(_flag_handler(c, "_handshake_done_pending"))
        while c.cids.pending_new and room_left() >= 45:
            entry = c.cids.pending_new.pop(0)
            payload += (
                b"\x18"
                + encode_varint(entry.sequence_number)
                + encode_varint(0)
                + bytes((len(entry.cid),))
                + entry.cid
                + entry.stateless_reset_token
            )
            handlers.append(_requeue_handler(c.cids.pending_new, entry))
        while c.cids.pending_retire and room_left() >= 9:
            seq = c.cids.pending_retire.pop(0)
            payload += b"\x19" + encode_varint(seq)
            handlers.append(partial(c.cids.on_retire_delivered, seq))
        if streams.pending_max_data and room_left() >= 9:
            payload += b"\x10" + encode_varint(streams.max_data_local)
            streams.pending_max_data = False
            handlers.append(_flag_handler(streams, "pending_max_data"))
        for stream_id in list(streams.pending_max_stream_data):
            if room_left() < 17:
                break
            streams.pending_max_stream_data.discard(stream_id)
            stream = streams.streams.get(stream_id)
            if stream is None or stream.receiver is None:
                continue
            payload += (
                b"\x11" + encode_varint(stream_id) + encode_varint(stream.receiver.max_stream_data)
            )
            handlers.append(_set_add_handler(streams.pending_max_stream_data, stream_id))
        for bidi in list(streams.pending_max_streams):
            if room_left() < 9:
                break
            streams.pending_max_streams.discard(bidi)
            payload += (b"\x12" if bidi else b"\x13") + encode_varint(
                streams.max_streams_local[bidi]
            )
            handlers.append(_set_add_handler(streams.pending_max_streams, bidi))
        for stream_id, code in list(streams.pending_stop_sending.items()):
            if room_left() < 17:
                break
            del streams.pending_stop_sending[stream_id]
            payload += b"\x05" + encode_varint(stream_id) + encode_varint(code)
            handlers.append(_dict_handler(streams.pending_stop_sending, stream_id, code))
        if c._ping_pending and room_left() >= 1:
            payload += b"\x01"
            c._ping_pending = False
        # DATAGRAM frames (RFC 9221): never retransmitted; ack/loss become events.
        while c._datagrams:
            datagram_id, data = c._datagrams[0]
            frame = fr.encode_datagram(data)
            if len(frame) > room_left():
                break
            c._datagrams.popleft()
            payload += frame
            handlers.append(_datagram_handler(events, datagram_id))
        # STREAM frames, round robin.
        queue = streams.send_queue
        for _ in range(len(queue)):
            if room_left() < 24:
                break
            stream_id = queue.popleft()
            stream = streams.streams.get(stream_id)
            if stream is None or stream.sender is None:
                continue
            sender = stream.sender
            if sender.reset_pending and sender.reset_error_code is not None:
                payload += (
                    b"\x04"
                    + encode_varint(stream_id)
                    + encode_varint(sender.reset_error_code)
                    + encode_varint(sender.final_size)
                )
                sender.reset_pending = False
                handlers.append(_reset_handler(streams, stream_id))
                continue
            header_room = 1 + 8 + 8 + 2
            chunk = sender.next_range(room_left() - header_room, streams.connection_credit)
            if chunk is not None:
                offset, data, fin, new_bytes = chunk
                streams.data_sent += new_bytes
                payload += fr.encode_stream(stream_id, offset, data, fin)
                handlers.append(_stream_handler(streams, stream_id, offset, len(data), fin))
            if sender.has_pending():
                queue.append(stream_id)


def _range_handler(sender: object, offset: int, length: int, fin: bool) -> DeliveryHandler:
    def handle(acked: bool) -> None:
        if acked:
            sender.on_ack(offset, length, fin)  # type: ignore[attr-defined]
        else:
            sender.on_lost(offset, length, fin)  # type: ignore[attr-defined]

    return handle


def _stream_handler(
    streams: object, stream_id: int, offset: int, length: int, fin: bool
) -> DeliveryHandler:
    def handle(acked: bool) -> None:
        stream = streams.streams.get(stream_id)  # type: ignore[attr-defined]
        if stream is None or stream.sender is None:
            return
        if acked:
            stream.sender.on_ack(offset, length, fin)
            streams.on_sender_done(stream_id)  # type: ignore[attr-defined]
        else:
            stream.sender.on_lost(offset, length, fin)
            streams.schedule(stream_id)  # type: ignore[attr-defined]

    return handle


def _reset_handler(streams: object, stream_id: int) -> DeliveryHandler:
    def handle(acked: bool) -> None:
        stream = streams.streams.get(stream_id)  # type: ignore[attr-defined]
        if stream is None or stream.sender is None:
            return
        if acked:
            streams.on_sender_done(stream_id)  # type: ignore[attr-defined]
        else:
            stream.sender.reset_pending = True
            streams.schedule(stream_id)  # type: ignore[attr-defined]

    return handle


def _flag_handler(owner: object, attribute: str) -> DeliveryHandler:
    def handle(acked: bool) -> None:
        if not acked:
            setattr(owner, attribute, True)

    return handle


def _requeue_handler(queue: list, item: object) -> DeliveryHandler:  # type: ignore[type-arg]
    def handle(acked: bool) -> None:
        if not acked:
            queue.append(item)

    return handle


def _set_add_handler(pending: set, item: object) -> DeliveryHandler:  # type: ignore[type-arg]
    def handle(acked: bool) -> None:
        if not acked:
            pending.add(item)

    return handle


def _dict_handler(pending: dict, key: int, value: int) -> DeliveryHandler:  # type: ignore[type-arg]
    def handle(acked: bool) -> None:
        if not acked:
            pending[key] = value

    return handle


def _datagram_handler(events: deque[QuicEvent], datagram_id: int) -> DeliveryHandler:
    def handle(acked: bool) -> None:
        events.append(DatagramAcknowledged(datagram_id) if acked else DatagramLost(datagram_id))

    return handle
