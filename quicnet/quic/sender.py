"""Building packets and datagrams for a connection (RFC 9000 §12-§14, RFC 9001 §5).

Frames go in priority order: ACK, CRYPTO, control frames (written by
:func:`~quicnet.quic.control_frames.write_control_frames`: HANDSHAKE_DONE,
ACK_FREQUENCY, CIDs, flow-control credit, STOP_SENDING, NEW_TOKEN, PING or
IMMEDIATE_ACK), DATAGRAMs, then STREAM data round robin. Each frame that needs
action on acknowledgement or loss leaves a small tuple on its packet's record (a
*frame record*); :func:`quicnet.quic.records.on_delivered` reads them when recovery
reports the packet acknowledged or lost, so a lost frame is queued again as data,
never as the same packet.

Once the handshake is over, a datagram is one 1-RTT packet built in one
buffer: header, frames written in place, sealed in place (AEAD, then header
protection). Before that, packets of several epochs are coalesced.

Datagrams are as large as the current path's MTU (:mod:`~quicnet.quic.pmtu`:
1200 bytes until discovery confirms more). The datagrams besides data go out
from here too but are built elsewhere, with :meth:`PacketSender.new_packet` and
:meth:`PacketSender.seal`: path validation, PMTU and version probes in
:mod:`~quicnet.quic.probes`, CONNECTION_CLOSE in :mod:`~quicnet.quic.closing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic import frames as fr
from quicnet.quic.buffer import append_varint
from quicnet.quic.closing import close_datagrams
from quicnet.quic.compatible_versions import on_initial_sent
from quicnet.quic.control_frames import write_control_frames
from quicnet.quic.data_frames import write_crypto, write_datagrams, write_stream_frames
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    PacketType,
    encode_packet_number,
    long_header_prefix,
)
from quicnet.quic.pmtu import BASE_PLPMTU
from quicnet.quic.probes import path_datagram, pmtu_probe, version_probe
from quicnet.quic.records import (
    DATAGRAM,
    IDLE_IMMEDIATE_ACK,
    STREAM,
    requeue_crypto,
)
from quicnet.quic.recovery import FrameRecord, PacketSpace, SentPacket
from quicnet.quic.states import DRAINING, TERMINATED
from quicnet.tls import Epoch
from quicnet.tls.events import HANDSHAKE_EPOCH, INITIAL_EPOCH, ONE_RTT_EPOCH, ZERO_RTT_EPOCH

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.events import Address
    from quicnet.quic.protection import PacketKey

    Key = PacketKey | None

__all__ = ["MAX_DATAGRAMS_PER_CALL", "MAX_PACKET_SIZE", "OutgoingPacket", "PacketSender"]

_TAG = 16
_SPACE = {Epoch.INITIAL: 0, Epoch.ZERO_RTT: 2, Epoch.HANDSHAKE: 1, Epoch.ONE_RTT: 2}
_LONG_TYPE = {
    Epoch.INITIAL: PacketType.INITIAL,
    Epoch.ZERO_RTT: PacketType.ZERO_RTT,
    Epoch.HANDSHAKE: PacketType.HANDSHAKE,
}
#: RFC 9000 §12.2: coalesced in order of increasing encryption level; with each epoch its
#: packet number space and whether its data goes regardless of the congestion window.
_COALESCED_PLAN = (
    (Epoch.INITIAL, 0, True),
    (Epoch.ZERO_RTT, 2, False),
    (Epoch.HANDSHAKE, 1, True),
    (Epoch.ONE_RTT, 2, False),
)
#: The size every path must carry (§14): every datagram's until PMTU discovery finds more.
MAX_PACKET_SIZE = BASE_PLPMTU
MAX_DATAGRAMS_PER_CALL = 64
_IDLE_ACK_RECORD = (IDLE_IMMEDIATE_ACK,)


class OutgoingPacket:
    """A packet being filled (long header, or 1-RTT outside the one-buffer path):
    frames go into ``payload``, their records into ``frames``."""

    __slots__ = (
        "ack_eliciting",
        "epoch",
        "frames",
        "header",
        "key",
        "padded",
        "payload",
        "pn",
        "pn_len",
    )

    def __init__(self, epoch: Epoch, header: bytes, pn: int, pn_len: int, key: Key) -> None:
        self.epoch = epoch
        self.key = key  # what seals it: the key its header was built for (version, phase)
        self.header = header  # long: up to (not incl.) the Length field; short: incl. DCID
        self.pn = pn
        self.pn_len = pn_len
        self.payload = bytearray()
        self.frames: list[FrameRecord] = []
        self.ack_eliciting = False
        self.padded = False  # PADDING makes a packet count as in flight (RFC 9002 §2)

    def overhead(self) -> int:
        """Bytes of the packet that are not payload: header, Length field, packet number, tag.

        Short-header (1-RTT) packets have no Length field (RFC 9000 §17.3).
        """
        length_field = 2 if self.epoch != ONE_RTT_EPOCH else 0
        return len(self.header) + length_field + self.pn_len + _TAG

    def size(self) -> int:
        """The protected packet's size in bytes: :meth:`overhead` plus the payload."""
        return self.overhead() + len(self.payload)


class PacketSender:
    """The sending half of a :class:`~quicnet.quic.connection.QuicConnection`."""

    __slots__ = ("c", "idle_ack", "pacing_deadline", "packet_size")

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection
        #: The next 1-RTT packet that empties the send queues carries IMMEDIATE_ACK
        #: (draft-ietf-quic-ack-frequency §8.1.1; set by quicnet.quic.ack_frequency,
        #: cleared while one is in flight). False on a connection that asked nothing.
        self.idle_ack = False
        #: When pacing lets the next ack-eliciting packet go (None: not waiting).
        self.pacing_deadline: float | None = None
        #: The current path's MTU: how large the datagrams being built may be.
        self.packet_size = MAX_PACKET_SIZE

    # Datagrams ---------------------------------------------------------------------------------

    def detach(self) -> None:
        """Forget the connection, which ended (:meth:`QuicConnection.dispose
        <quicnet.quic.QuicConnection.dispose>`): no reference cycle is left through here."""
        del self.c

    def nothing_to_send(self) -> bool:
        """True in the common case of a confirmed connection with no ACK due, no frame,
        DATAGRAM or stream data queued, no probe and no path to challenge: answered in a
        few attribute reads (False: :meth:`build_datagrams` has to look)."""
        c = self.c
        recovery = c.recovery
        if (  # (the queues first: the False answer of a woken connection comes soonest)
            c.datagram_queue
            or c.streams.send_queue
            or recovery.spaces[2].ack_queued
            or c.pending.waiting
            or recovery.probes_pending
            or c.paths.active
            or not c.handshake_confirmed
            or c.closing is not None
        ):
            return False
        self.pacing_deadline = None  # nothing waits for the pacer
        return True

    def build_datagrams(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now, with its destination address; the caller
        (:meth:`QuicConnection.datagrams_to_send
        <quicnet.quic.QuicConnection.datagrams_to_send>`) asked :meth:`nothing_to_send`
        first and got False."""
        c = self.c
        path = c.paths.current
        state = c.state  # (QuicConnection.can_send, in place)
        if path is None or not c.cids.peer or state is TERMINATED or state is DRAINING:
            return []
        if c.closing is not None:
            return close_datagrams(self, path, now)
        if not c.handshake_confirmed and c.version_probing:  # (over once confirmed)
            probe = version_probe(self, now)
            return [(probe, path.address)] if probe is not None else []
        out: list[tuple[bytes, Address]] = []
        if c.paths.active and c.handshake_complete:
            for probed in c.paths.paths_due(now):
                if datagram := path_datagram(self, probed, now):
                    probed.bytes_sent += len(datagram)
                    if probed.local is None:
                        out.append((datagram, probed.address))
                    else:  # from a server's preferred address (RFC 9000 §9.6.2)
                        ecn = 2 if c.ecn.marking else 0  # ECT(0), as the others (§13.4)
                        c.paths.routed.append((datagram, probed.address, probed.local, ecn))
        self.pacing_deadline = None
        address, first = path.address, len(out)  # from here on, the current path's
        pmtu = path.pmtu
        due = pmtu.due_at
        if (
            due is not None
            and now >= due
            and c.handshake_confirmed
            and path.validated
            and (datagram := pmtu_probe(self, pmtu, now))  # RFC 9000 §14.3
        ):
            path.bytes_sent += len(datagram)
            out.append((datagram, address))
        size = pmtu.mtu
        if size != self.packet_size:  # a new size, or a path of another size
            self.packet_size = size
            c.recovery.set_max_datagram_size(size)
        one_rtt_only = c.spaces[HANDSHAKE_EPOCH].send_key is None and c.handshake_complete
        drained = False
        while len(out) < MAX_DATAGRAMS_PER_CALL:
            budget = size
            if not path.validated:  # §8.1, §9.3.1: three times what we received
                budget = min(budget, path.budget())
                if budget < 64:
                    break
            if one_rtt_only and c.spaces[INITIAL_EPOCH].send_key is None:
                datagram = self._one_rtt_datagram(budget, now)
                if datagram:
                    path.bytes_sent += len(datagram)
                    out.append((datagram, address))
                # What did not fit is still queued; with the queues empty, one packet
                # held everything and another round would find nothing.
                if not (c.datagram_queue or c.streams.send_queue or c.pending.waiting):
                    drained = True
                    break
                if not datagram:
                    break
                continue
            datagram = self._coalesced_datagram(budget, now)
            if not datagram:
                break
            path.bytes_sent += len(datagram)
            out.append((datagram, address))
        if path.local is not None:  # the current path leaves from a preferred address
            # (A loop, not a comprehension: that made cells of path and ecn on every call.)
            routed, local, ecn = c.paths.routed, path.local, 2 if c.ecn.marking else 0
            for d, a in out[first:]:
                routed.append((d, a, local, ecn))
            del out[first:]
        if drained or (
            one_rtt_only and not (c.datagram_queue or c.streams.send_queue or c.pending.waiting)
        ):  # (drained: the loop just found the queues empty)
            c.recovery.cc.on_app_limited(now)  # ran out of data, not of window or pacing
        return out

    def _eliciting_room(self, now: float) -> int:
        """How large an ack-eliciting datagram congestion control and pacing (RFC 9002 §7)
        allow now: the path's packet size, less when the window has less room; 0: none."""
        recovery = self.c.recovery
        size = self.packet_size
        if recovery.probes_pending:  # only spaces with probes left are keys
            return size  # §6.2.4: probes go regardless
        cc = recovery.cc
        room = cc.congestion_window - cc.bytes_in_flight
        if room < size:
            # Bytes in flight never exceed the window (§7), but a smaller packet may go:
            # with a large PMTU the window holds few full-size packets, and a small
            # message must not wait for an ACK (with its delay) to make room for one.
            if room < MAX_PACKET_SIZE:
                return 0
            size = room
        pacer = recovery.pacer
        if pacer.tokens < size and recovery.rtt.first_sample:
            # Tokens only grow with time: enough already means no need to refill.
            wait = pacer.next_send_time(now, size)
            if wait is not None:
                self.pacing_deadline = wait
                return 0
        return size

    # The 1-RTT datagram: one packet, one buffer --------------------------------------------
    def _one_rtt_datagram(self, budget: int, now: float) -> bytes:
        c = self.c
        recovery = c.recovery
        rspace = recovery.spaces[2]
        # (largest_received >= 0: something arrived; no RangeSet.__bool__ call per packet)
        ack_due = rspace.ack_queued and rspace.largest_received >= 0
        streams = c.streams
        probes_pending = recovery.probes_pending
        probes = probes_pending.get(2, 0) if probes_pending else 0
        # Truthy when anything ack-eliciting is queued (no bool() call per packet).
        eliciting: object = c.pending.waiting or c.datagram_queue or streams.send_queue
        if eliciting:
            size = self.packet_size
            cc = recovery.cc
            if (
                probes_pending
                or cc.congestion_window - cc.bytes_in_flight < size
                or recovery.pacer.tokens < size
            ):  # (else room and tokens for a full packet, _eliciting_room's common answer)
                room = self._eliciting_room(now)
                if not room:
                    eliciting = False
                elif room < budget:
                    budget = room
        if not (ack_due or eliciting or probes):
            return b""  # the common case when idle: nothing to build
        keys = c.keys
        pn = rspace.next_packet_number
        # §17.1, Appendix A.2: enough bytes for twice the packets not yet acknowledged,
        # plus the reordering seen (a late packet must still decode at the receiver).
        largest_acked = rspace.largest_acked
        unacked = 2 * (
            (pn + 1 if largest_acked is None else pn - largest_acked) + c.recovery.packet_threshold
        )
        pn_len = (
            1 if unacked < 0x100 else 2 if unacked < 0x10000 else 3 if unacked < 0x1000000 else 4
        )
        buf = bytearray((0x40 | (keys.key_phase << 2) | (pn_len - 1),))
        buf += c.cids.current_peer_cid
        pn_offset = len(buf)
        if pn_len == 1:  # (most packets: the newest acknowledged is a few packets back)
            buf.append(pn & 0xFF)
        else:
            buf += (pn & ((1 << (8 * pn_len)) - 1)).to_bytes(pn_len, "big")
        header_length = pn_offset + pn_len
        limit = budget - _TAG  # where the payload must end
        frames: list[FrameRecord] = []
        # ACK (§13.2): when due, and piggybacked on anything ack-eliciting.
        if (
            ack_due or (eliciting and rspace.unacked_ack_eliciting)
        ) and rspace.largest_received >= 0:
            ecn = c.ecn.received  # the 1-RTT counts are [9:12]: ECT(1), ECT(0), CE
            bounds = rspace.received.bounds  # (RangeSet.only, without its call)
            # (buf holds the header alone so far)
            if len(bounds) == 2 and limit - header_length >= 49:  # one range, written in place
                first, stop = bounds
                delay_us = int((now - rspace.largest_received_time) * 1e6)
                delay = delay_us >> c.local_params.ack_delay_exponent if delay_us > 0 else 0
                marks = ecn[10] or ecn[9] or ecn[11]  # (ECT(0) first: the one that counts)
                stop -= 1
                first = stop - first
                if (stop | delay | first) < 0x4000:  # (all three: none has a higher bit)
                    # The type (ACK_ECN once anything came marked), Largest Acknowledged,
                    # ACK Delay, 0 more ranges, First ACK Range: one or two bytes each in
                    # all but long or slow connections (§16), as one int, one to_bytes.
                    if stop < 0x40:
                        v = (0x0300 if marks else 0x0200) | stop
                        size = 2
                    else:
                        v = (0x034000 if marks else 0x024000) | stop
                        size = 3
                    if delay < 0x40:
                        v = v << 16 | delay << 8
                        size += 2
                    else:
                        v = v << 24 | 0x400000 | delay << 8
                        size += 3
                    if first < 0x40:
                        v = v << 8 | first
                        size += 1
                    else:
                        v = v << 16 | 0x4000 | first
                        size += 2
                    if marks:  # §19.3.2: ECT(0), ECT(1), CE
                        ect0 = ecn[10]  # a count of packets: two bytes until 16,384 of them
                        if 0x40 <= ect0 < 0x4000 and not (ecn[9] or ecn[11]):
                            # Most marked paths: ECT(1) and CE both 0, in the same int.
                            v = v << 32 | 0x40000000 | ect0 << 16
                            size += 4
                            marks = 0
                    buf += v.to_bytes(size, "big")
                else:
                    buf.append(0x03 if marks else 0x02)
                    append_varint(buf, stop)
                    append_varint(buf, delay)
                    buf.append(0)
                    append_varint(buf, first)
                if marks:  # §19.3.2: the counts not written above
                    append_varint(buf, ecn[10])
                    append_varint(buf, ecn[9])
                    append_varint(buf, ecn[11])
                ack_sent = True
            else:
                ack = self._ack_frame(rspace, now, 2, one_rtt=True)
                ack_sent = len(buf) + len(ack) <= limit
                if ack_sent:
                    buf += ack
            if ack_sent:
                rspace.ack_queued = False
                rspace.largest_ack_sent = rspace.largest_received
                rspace.unacked_ack_eliciting = 0
                rspace.ack_deadline = None
        start = len(buf)
        if eliciting:
            if c.pending.waiting:
                crypto = c.spaces[ONE_RTT_EPOCH].sender  # post-handshake CRYPTO (tickets)
                if crypto.has_pending():
                    write_crypto(c, buf, frames, ONE_RTT_EPOCH, limit)
                write_control_frames(c, buf, frames, limit)
            if c.datagram_queue:
                write_datagrams(c, buf, frames, limit, self.idle_ack)
            if streams.send_queue:
                write_stream_frames(c, buf, frames, limit)
            if self.idle_ack:
                self._idle_immediate_ack(buf, frames, limit, probes)
        if probes:
            params = c.remote_params
            if params is not None and params.min_ack_delay is not None and len(buf) < limit:
                # IMMEDIATE_ACK: ack-eliciting, and the probe's ACK is not held back by
                # the peer's ACK delay (draft-ietf-quic-ack-frequency §7).
                buf.append(0x1F)
            elif len(buf) == start:
                buf.append(0x01)  # PING: a probe must elicit an ACK
            recovery.take_probe(2)
        end = len(buf)
        ack_eliciting = end > start
        if end == header_length:
            return b""
        # §5.4.2: the header-protection sample needs 4 bytes after the packet number.
        padded = False
        short = pn_len + end - header_length
        if short < 4:
            buf += bytes(4 - short)
            padded = True
        if c.tracer is not None:  # qlog: the plaintext, before it is sealed in place
            c.tracer.packet_sent(ONE_RTT_EPOCH, pn, buf, header_length, len(buf) + _TAG, now)
        # Packet protection in place (RFC 9001 §5): seal, then mask the short header
        # (§5.4.1) from the sample 4 bytes after the packet number (§5.4.2).
        send = keys.send
        send.aead.seal_in_place(pn, buf, header_length)  # type: ignore[union-attr]
        hp = send.hp  # type: ignore[union-attr]
        ecb = hp.ecb  # AES (§5.4.3): the block's first 5 bytes, no mask() call
        sample = buf[pn_offset + 4 : pn_offset + 20]
        mask = hp.mask(sample) if ecb is None else ecb.update(sample)
        buf[0] ^= mask[0] & 0x1F
        buf[pn_offset] ^= mask[1]
        if pn_len > 1:  # (a one-byte packet number, the common case: no loop)
            for i in range(1, pn_len):
                buf[pn_offset + i] ^= mask[1 + i]
        rspace.next_packet_number = pn + 1
        size = len(buf)
        if ack_eliciting or padded:  # an ACK-only packet needs no record (RFC 9002 §2)
            recovery.on_one_rtt_sent(pn, now, ack_eliciting, size, frames)
        if ack_eliciting:  # §10.1: the first since a receipt restarts the idle timer
            deadlines = c.deadlines  # (ConnectionDeadlines.on_ack_eliciting_sent, in place)
            if deadlines.restart_on_send:
                deadlines.restart_on_send = False
                deadlines.last_activity = now
        keys.packets_in_phase += 1
        if keys.phase_started is None:
            keys.phase_started = now
        elif (
            keys.packets_in_phase >= keys.update_after_packets
            and keys.update_confirmed
            and c.handshake_confirmed
        ):
            keys.initiate(rspace.next_packet_number)  # RFC 9001 §6.6
        return bytes(buf)

    def _idle_immediate_ack(
        self, buf: bytearray, frames: list[FrameRecord], limit: int, probes: int
    ) -> None:
        """draft-ietf-quic-ack-frequency §8.1.1: this packet carries application data
        and leaves nothing queued to send (none held back by flow control either), so
        the sender goes idle after it: IMMEDIATE_ACK, so the peer acknowledges it (and
        what it still holds) at once instead of after the delay we asked for. One in
        flight at a time (the next once its packet is acknowledged or lost); not in a
        PTO probe, which carries its own."""
        c = self.c
        streams = c.streams
        if c.pending.waiting or c.datagram_queue or streams.send_queue or probes:
            return
        if len(buf) >= limit:
            return  # no room left: the next packet that empties the queues
        data = False
        for record in frames:
            kind = record[0]
            if kind == STREAM:
                sender = streams.sender_of(record[1])
                if sender is not None and sender.offset > sender.sent_high:
                    return  # written, not sent: flow control holds it, not the application
                data = True
            elif kind == DATAGRAM:
                data = True
        if not data:
            return
        buf.append(0x1F)
        frames.append(_IDLE_ACK_RECORD)
        self.idle_ack = False

    def _ack_frame(self, rspace: PacketSpace, now: float, space_id: int, *, one_rtt: bool) -> bytes:
        """An ACK frame for ``space_id``; ACK_ECN once any packet of it arrived marked."""
        delay = 0
        if one_rtt:
            delay_us = int((now - rspace.largest_received_time) * 1e6)
            delay = max(0, delay_us) >> self.c.local_params.ack_delay_exponent
        received = rspace.received
        _, ect1, ect0, ce = self.c.ecn.received_counts(space_id)
        if ect1 or ect0 or ce:  # §19.3.2: ECT(0), ECT(1), CE
            return fr.encode_ack(received.descending()[:32], delay, (ect0, ect1, ce))
        if len(received) == 1:  # the common case: one range, written directly
            first, stop = received.first
            buf = bytearray(b"\x02")
            append_varint(buf, stop - 1)
            append_varint(buf, delay)
            buf.append(0)
            append_varint(buf, stop - 1 - first)
            return bytes(buf)
        return fr.encode_ack(received.descending()[:32], delay)

    # Coalesced datagrams (the handshake) ----------------------------------------------------
    def _coalesced_datagram(self, budget: int, now: float) -> bytes:
        c = self.c
        allow_eliciting = self._eliciting_room(now) > 0
        recovery = c.recovery
        spaces = recovery.spaces
        probes_pending = recovery.probes_pending
        packets: list[OutgoingPacket] = []
        remaining = budget
        pad = False
        keys = (c.spaces[0].send_key, c.zero_rtt_send_key, c.spaces[2].send_key, c.keys.send)
        # send_key(c, epoch) (crypto_streams), as is
        for (epoch, space_id, long_eliciting), key in zip(_COALESCED_PLAN, keys, strict=True):
            if key is None or remaining < 48:
                continue
            # Handshake data is small and unblocks everything else: it is not held
            # back by a congestion window full of 1-RTT packets the peer cannot read yet.
            eliciting = allow_eliciting or long_eliciting
            if epoch == INITIAL_EPOCH and budget < MIN_INITIAL_DATAGRAM:
                # §14.1 pads an ack-eliciting Initial to 1200 bytes; §8.1 forbids the
                # padding beyond 3x: without room for both, only an ACK may go.
                eliciting = False
            rspace = spaces[space_id]
            probes = probes_pending.get(space_id, 0) if probes_pending else 0
            has_eliciting = eliciting and self._has_eliciting(epoch)
            if not ((rspace.ack_queued and rspace.received.bounds) or probes or has_eliciting):
                continue  # nothing for this space: no ACK due, no probe, no frame waiting
            packet = self._fill_packet(
                epoch, space_id, rspace, remaining, now, eliciting, has_eliciting, probes
            )
            if packet is not None:
                packets.append(packet)
                remaining -= packet.size()
                # §14.1: datagrams with a client Initial (or an ack-eliciting server
                # Initial) are >= 1200 bytes.
                if epoch == INITIAL_EPOCH and (c.is_client or packet.ack_eliciting):
                    pad = True
        if not packets:
            return b""
        if pad and budget - remaining < MIN_INITIAL_DATAGRAM:
            last = packets[-1]
            last.payload += bytes(MIN_INITIAL_DATAGRAM - budget + remaining)
            last.padded = True
        if len(packets) == 1:
            return self.seal(packets[0], now)
        sealed = []  # (a loop: a comprehension made cells of self and now on every call)
        for p in packets:
            sealed.append(self.seal(p, now))
        return b"".join(sealed)

    def _fill_packet(
        self,
        epoch: Epoch,
        space_id: int,
        rspace: PacketSpace,
        max_size: int,
        now: float,
        allow_eliciting: bool,
        has_eliciting: bool,
        probes: int,
    ) -> OutgoingPacket | None:
        """A packet of ``epoch`` with what its space has to send, or None; the caller
        found something (an ACK due in ``rspace``, ``probes``, or ``has_eliciting``)."""
        c = self.c
        recovery = c.recovery
        packet = self.new_packet(epoch)
        limit = max_size - packet.overhead()  # the most payload this packet holds
        if limit <= 0:
            return None
        payload = packet.payload
        zero_rtt = epoch == ZERO_RTT_EPOCH  # no ACK, no CRYPTO (RFC 9000 §12.5)
        # ACK (§13.2): always when queued; piggybacked whenever anything else goes.
        piggyback = rspace.unacked_ack_eliciting and has_eliciting
        if (rspace.ack_queued or piggyback) and rspace.received.bounds and not zero_rtt:
            ack = self._ack_frame(rspace, now, space_id, one_rtt=epoch == ONE_RTT_EPOCH)
            if len(ack) <= limit:
                payload += ack
                rspace.ack_queued = False
                rspace.largest_ack_sent = rspace.largest_received
                rspace.unacked_ack_eliciting = 0
                rspace.ack_deadline = None
        if allow_eliciting:
            if probes and space_id < 2 and not c.spaces[epoch].sender.has_pending():
                # Each probe datagram carries the unacknowledged CRYPTO data: a peer
                # drops an Initial without it (RFC 9000 §17.2.2).
                requeue_crypto(c, space_id)
            start = len(payload)
            if not zero_rtt:
                write_crypto(c, payload, packet.frames, epoch, limit)
            # 0-RTT: stream data and DATAGRAMs; control frames wait for 1-RTT.
            if zero_rtt or (epoch == ONE_RTT_EPOCH and c.handshake_complete):
                if c.pending.waiting and not zero_rtt:
                    write_control_frames(self.c, payload, packet.frames, limit)
                if c.datagram_queue:
                    write_datagrams(c, payload, packet.frames, limit, self.idle_ack)
                if c.streams.send_queue:
                    write_stream_frames(c, payload, packet.frames, limit)
            if len(payload) > start:
                packet.ack_eliciting = True
            if probes:
                if not packet.ack_eliciting:
                    payload += b"\x01"  # PING
                    packet.ack_eliciting = True
                recovery.take_probe(space_id)
        if not payload:
            return None
        return packet

    def _has_eliciting(self, epoch: Epoch) -> bool:
        c = self.c
        if epoch == ZERO_RTT_EPOCH:
            return bool(c.datagram_queue or c.streams.send_queue)
        if c.spaces[epoch].sender.has_pending():
            return True
        if epoch != ONE_RTT_EPOCH or not c.handshake_complete:
            return False
        return bool(c.pending.waiting or c.datagram_queue or c.streams.send_queue)

    def new_packet(self, epoch: Epoch) -> OutgoingPacket:
        """An empty packet of ``epoch`` with the next packet number, to fill and :meth:`seal`."""
        c = self.c
        rspace = c.recovery.spaces[_SPACE[epoch]]
        pn = rspace.next_packet_number
        reference = rspace.largest_acked
        if reference is not None and rspace is c.recovery.spaces[2]:
            reference -= c.recovery.packet_threshold  # reordering, as _one_rtt_datagram
        _, pn_len = encode_packet_number(pn, reference)
        peer_cid = c.cids.current_peer_cid
        if epoch == ONE_RTT_EPOCH:  # the key as send_key(c, epoch) gives it
            keys = c.keys
            key = keys.send
            header = bytes((0x40 | (keys.key_phase << 2) | (pn_len - 1),)) + peer_cid
        else:
            key = c.zero_rtt_send_key if epoch == ZERO_RTT_EPOCH else c.spaces[epoch].send_key
            token = c.retry_token if epoch == INITIAL_EPOCH and c.is_client else b""
            version = c.version if key is None else key.version  # 0-RTT: RFC 9369 §4.1
            header = long_header_prefix(
                _LONG_TYPE[epoch], version, peer_cid, c.host_cid, token, pn_len
            )
        return OutgoingPacket(epoch, header, pn, pn_len, key)

    def seal(
        self, packet: OutgoingPacket, now: float, *, record: bool = True, in_flight: bool = True
    ) -> bytes:
        """Protect ``packet`` and hand its record to recovery (none with ``record=False``;
        not counted in flight with ``in_flight=False``): the datagram bytes."""
        c = self.c
        key = packet.key
        assert key is not None
        # §5.4.2: the sample needs 4 bytes after the start of the packet number.
        if packet.pn_len + len(packet.payload) < 4:
            packet.payload += bytes(4 - packet.pn_len - len(packet.payload))
            packet.padded = True
        pn_bytes = (packet.pn & ((1 << (8 * packet.pn_len)) - 1)).to_bytes(packet.pn_len, "big")
        if packet.epoch == ONE_RTT_EPOCH:
            header = packet.header + pn_bytes
        else:
            length = packet.pn_len + len(packet.payload) + _TAG
            header = packet.header + (0x4000 | length).to_bytes(2, "big") + pn_bytes
        wire = key.protect(header, packet.payload, packet.pn)
        if c.tracer is not None:
            c.tracer.packet_sent(packet.epoch, packet.pn, packet.payload, 0, len(wire), now)
        space_id = _SPACE[packet.epoch]
        c.recovery.spaces[space_id].next_packet_number += 1
        if space_id == 0 and not c.is_client:
            on_initial_sent(c)  # RFC 9369 §4.1: before the switch, the original version
        if record:
            c.recovery.on_packet_sent(
                space_id,
                SentPacket(
                    packet.pn,
                    now,
                    packet.ack_eliciting,
                    in_flight and (packet.ack_eliciting or packet.padded),
                    len(wire),
                    packet.frames,
                ),
            )
        if packet.ack_eliciting:
            c.deadlines.on_ack_eliciting_sent(now)
        if packet.epoch == ONE_RTT_EPOCH:
            keys = c.keys
            keys.packets_in_phase += 1
            if keys.phase_started is None:
                keys.phase_started = now
            if keys.due() and c.handshake_confirmed:  # RFC 9001 §6.6
                keys.initiate(c.recovery.spaces[2].next_packet_number)
        if packet.epoch == HANDSHAKE_EPOCH and c.is_client:
            c.discard_epoch(INITIAL_EPOCH)  # RFC 9001 §4.9.1
        return wire
