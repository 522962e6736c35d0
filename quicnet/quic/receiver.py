"""The receive path of a QUIC connection (RFC 9000 §12, §17; RFC 9001 §5, §6).

Unprotects each packet in a datagram with the right key (and key phase),
drops duplicates, and dispatches its frames: ACK to recovery, STREAM and
flow control to the stream manager, CRYPTO to TLS, the rest to the
connection's state. Also Version Negotiation and Retry on the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.crypto import DecryptError
from quicnet.quic import frames as fr
from quicnet.quic.buffer import Reader
from quicnet.quic.crypto_streams import CryptoSpace
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.events import DatagramReceived
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    PacketType,
    decode_packet_number,
    parse_long_header,
    parse_version_negotiation,
    retry_is_valid,
)
from quicnet.quic.paths import address_key
from quicnet.quic.protection import PacketKey
from quicnet.quic.recovery import Recovery
from quicnet.quic.tls_setup import make_tls
from quicnet.tls import Epoch, TLSClient

if TYPE_CHECKING:
    from quicnet.quic.connection import Address, QuicConnection

__all__ = ["PacketReceiver"]

# Frames allowed per packet type (RFC 9000 §12.4, Table 3).
_HANDSHAKE_FRAMES = frozenset({0x00, 0x01, 0x02, 0x03, 0x06, 0x1C})
_ZERO_RTT_FORBIDDEN = frozenset({0x02, 0x03, 0x06, 0x07, 0x19, 0x1B, 0x1E})
_NOT_ACK_ELICITING = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
_PROBING = frozenset({0x00, 0x18, 0x1A, 0x1B})  # PADDING, NEW_CONNECTION_ID, PATH_* (§9.1)
_EPOCH_SPACE = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ZERO_RTT: 2, Epoch.ONE_RTT: 2}
_PACKET_EPOCH = {
    PacketType.INITIAL: Epoch.INITIAL,
    PacketType.HANDSHAKE: Epoch.HANDSHAKE,
    PacketType.ZERO_RTT: Epoch.ZERO_RTT,
}


class PacketReceiver:
    """Parses and dispatches what arrives for one connection."""

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection

    def _on_version_negotiation(self, data: bytes, now: float) -> None:
        """§6.2: restart with a version both sides support, once, before any other packet."""
        c = self.c
        if c._received_first_packet or c._version_negotiated:
            return
        try:
            dcid, _scid, versions = parse_version_negotiation(data)
        except TransportError:
            return
        if dcid != c.host_cid or c.offered_version in versions:
            return  # §6.2: a VN listing the version we offered is discarded
        common = [v for v in c.configuration.supported_versions if v in versions]
        if not common:
            c._terminate(TransportErrorCode.NO_ERROR, None, "no common QUIC version", by_peer=True)
            return
        c._version_negotiated = True
        c._version_probe_due = None
        c.version = common[0]
        self._restart_handshake(now)

    def _restart_handshake(self, now: float) -> None:
        """Start over (after Version Negotiation) with fresh TLS and Initial state."""
        c = self.c
        c.recovery = Recovery(max_ack_delay=0.025, max_datagram_size=1200)
        c.recovery.cc = c.configuration.congestion_controller(1200)
        c.spaces = {
            e: CryptoSpace(c.configuration.max_crypto_buffer)
            for e in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
        }
        c.tls = make_tls(c.configuration, c.local_params.encode())
        c._install_initial_keys(c.original_destination_cid)
        assert isinstance(c.tls, TLSClient)
        c.tls.start(now)
        c._drain_tls(now)

    def _receive_packet(self, data: bytes, start: int, address: Address, now: float) -> int | None:
        """Process the packet at ``start``; return where the next one starts (None: stop)."""
        c = self.c
        first = data[start]
        if first & 0x80:
            try:
                header = parse_long_header(data, start)
            except TransportError:
                return None  # unknown version or malformed: drop the rest
            if header.version != c.version:
                return None
            if header.packet_type == PacketType.RETRY:
                self._on_retry(data[start:], header.source_cid, header.token, now)
                return None
            epoch = _PACKET_EPOCH[header.packet_type]
            if (
                not c.is_client
                and header.packet_type == PacketType.INITIAL
                and len(data) < MIN_INITIAL_DATAGRAM
            ):
                return None  # §14.1: a server drops Initials in small datagrams
            pn_offset, end, dcid = header.pn_offset, header.end, header.destination_cid
            peer_scid: bytes | None = header.source_cid
        else:
            epoch = Epoch.ONE_RTT
            pn_offset = start + 1 + c.configuration.connection_id_length
            end = len(data)
            dcid = data[start + 1 : pn_offset]
            peer_scid = None
            if len(data) < pn_offset or not first & 0x40:
                return None
        key = self._recv_key(epoch)
        if key is None:
            return end  # keys not (yet, or any longer) available: drop this packet
        packet = data[start:end]
        rel_pn_offset = pn_offset - start
        space = c.recovery.spaces[_EPOCH_SPACE[epoch]]
        try:
            plain_first, truncated, pn_len = key.unprotect_header(packet, rel_pn_offset)
        except DecryptError:  # too short to sample: may still be a stateless reset
            if epoch == Epoch.ONE_RTT and start == 0 and c.cids.is_stateless_reset(data):
                c._terminate(0, None, "stateless reset", by_peer=True, stateless_reset=True)
                return None
            return end
        pn = decode_packet_number(truncated, pn_len, space.largest_received)
        header_bytes = (
            bytes((plain_first,)) + packet[1:rel_pn_offset] + truncated.to_bytes(pn_len, "big")
        )
        ciphertext = packet[rel_pn_offset + pn_len :]
        try:
            if epoch == Epoch.ONE_RTT:
                payload = self._open_one_rtt(plain_first, header_bytes, ciphertext, pn)
            else:
                payload = key.open(header_bytes, ciphertext, pn)
        except DecryptError:
            if epoch == Epoch.ONE_RTT and start == 0 and c.cids.is_stateless_reset(data):
                c._terminate(0, None, "stateless reset", by_peer=True, stateless_reset=True)
                return None
            return end
        # §17.2/17.3: reserved bits must be zero once protection is removed.
        reserved = plain_first & (0x0C if first & 0x80 else 0x18)
        if reserved:
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if space.is_duplicate(pn):
            return end
        self._on_packet_authenticated(epoch, peer_scid, dcid, address, now)
        ack_eliciting, non_probing = self._handle_frames(epoch, payload, now, dcid)
        if non_probing and epoch == Epoch.ONE_RTT and pn > space.largest_received:
            current = c.paths.current
            if (
                current is not None
                and address != current.address
                and address_key(address) != current.key
                and c.handshake_confirmed
                and not c.is_client
            ):
                c._on_peer_migrated(address, dcid, now)  # §9.3: the newest packet decides
            c._active_dcid = dcid
        space.on_packet_received(pn, now)
        if ack_eliciting:
            space.unacked_ack_eliciting += 1
            if epoch != Epoch.ONE_RTT or space.unacked_ack_eliciting >= 2:
                space.ack_queued = True  # §13.2.1
            elif c._ack_deadline is None:
                c._ack_deadline = now + c.configuration.max_ack_delay
        c._drain_tls(now)
        return end

    def _recv_key(self, epoch: Epoch) -> PacketKey | None:
        c = self.c
        if epoch == Epoch.ZERO_RTT:
            return c.zero_rtt_recv_key
        return c.spaces[epoch].recv_key

    def _open_one_rtt(self, plain_first: int, header: bytes, ciphertext: bytes, pn: int) -> bytes:
        """RFC 9001 §6.3: a flipped key-phase bit means the next keys (or late old ones)."""
        c = self.c
        phase = (plain_first >> 2) & 0x01
        current = c.spaces[Epoch.ONE_RTT].recv_key
        assert current is not None
        if phase == c.recv_key_phase:
            return current.open(header, ciphertext, pn)
        if c._prev_recv_key is not None and pn < c.recovery.spaces[2].largest_received:
            return c._prev_recv_key.open(header, ciphertext, pn)
        nxt = c._next_recv_key or current.next_generation()
        # Decrypt first: a forged packet with a flipped bit fails here and is dropped;
        # only an authenticated one can be an error (DecryptError leaves state untouched).
        payload = nxt.open(header, ciphertext, pn)
        if not c.is_client and not c.handshake_confirmed:
            # §6.1: the client cannot have confirmed the handshake before the server
            # completed it; a client may see the server's update before HANDSHAKE_DONE.
            raise TransportError(
                TransportErrorCode.KEY_UPDATE_ERROR, "key update before the handshake was confirmed"
            )
        c._prev_recv_key = current
        c.spaces[Epoch.ONE_RTT].recv_key = nxt
        c._next_recv_key = nxt.next_generation()
        c.recv_key_phase = phase
        if phase != c.key_phase:  # the peer started it: follow (§6.2)
            c._update_send_key()
        return payload

    def _on_packet_authenticated(
        self, epoch: Epoch, peer_scid: bytes | None, dcid: bytes, address: Address, now: float
    ) -> None:
        c = self.c
        c.deadlines.on_packet_received(now)
        if not c._received_first_packet:
            c._received_first_packet = True
            if peer_scid is not None:
                c._peer_initial_source_cid = peer_scid
                if c.is_client:
                    c.cids.set_initial_peer(peer_scid)  # §7.2: use the server's chosen CID
                else:
                    c.cids.set_initial_peer(peer_scid)
        c._datagram_authenticated = True
        if not c.is_client and epoch == Epoch.HANDSHAKE:
            current = c.paths.current
            if current is not None and address_key(address) == current.key:
                current.validated = True  # §8.1: a Handshake packet proves the address
                c.deadlines.on_address_validated()
            c._discard_epoch(Epoch.INITIAL)

    def _on_retry(self, packet: bytes, source_cid: bytes, token: bytes, now: float) -> None:
        """§17.2.5: accept one valid Retry before any other packet from the server."""
        c = self.c
        if not c.is_client or c._received_first_packet or c._retry_happened or not token:
            return
        if source_cid == c.original_destination_cid:  # RFC 9000 §17.2.5.1
            return
        if not retry_is_valid(packet, c.original_destination_cid, c.version):
            return
        c._retry_happened = True
        c._retry_source_cid = source_cid
        c._retry_token = token
        c.cids.set_initial_peer(source_cid)
        c._install_initial_keys(source_cid)
        # Everything sent in Initial packets goes again under the new keys.
        space = c.recovery.spaces[0]
        c.recovery.cc.discard([p for p in space.sent.values() if p.in_flight])
        for p in list(space.sent.values()):
            for handler in p.handlers:
                handler(False)
        space.sent.clear()
        space.ack_eliciting_in_flight = 0

    def _handle_frames(
        self, epoch: Epoch, payload: bytes, now: float, dcid: bytes
    ) -> tuple[bool, bool]:
        """Process a packet's frames; returns (ack-eliciting?, non-probing? (§9.1))."""
        c = self.c
        r = Reader(payload)
        if r.at_end():
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames")
        ack_eliciting = False
        non_probing = False
        streams = c.streams
        while not r.at_end():
            t = r.varint()
            if epoch in (Epoch.INITIAL, Epoch.HANDSHAKE) and t not in _HANDSHAKE_FRAMES:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION,
                    f"frame 0x{t:x} not allowed at {epoch.name}",
                    t,
                )
            if epoch == Epoch.ZERO_RTT and t in _ZERO_RTT_FORBIDDEN:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION, f"frame 0x{t:x} not allowed in 0-RTT", t
                )
            if t not in _NOT_ACK_ELICITING:
                ack_eliciting = True
            if t not in _PROBING:
                non_probing = True
            if t == 0x00:  # PADDING: skip the run
                while r.pos < r.end and payload[r.pos] == 0:
                    r.pos += 1
                continue
            frame = fr.parse_frame(r, t)
            if isinstance(frame, fr.StreamFrame):
                if epoch != Epoch.ONE_RTT and epoch != Epoch.ZERO_RTT:
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION, "STREAM outside 1-RTT", t
                    )
                streams.on_stream(frame, t)
            elif isinstance(frame, fr.AckFrame):
                self._on_ack(epoch, frame, now)
            elif isinstance(frame, fr.DatagramFrame):
                if (
                    c.local_params.max_datagram_frame_size is None
                    or len(frame.data) + 1 > c.local_params.max_datagram_frame_size
                ):
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        "DATAGRAM frame not allowed or too large",
                        t,
                    )
                if c.datagrams_queued < c.configuration.max_received_datagrams:
                    c.datagrams_queued += 1
                    c._events.append(DatagramReceived(frame.data))
                else:  # the application is not reading: drop (RFC 9221 §5)
                    c.datagrams_dropped += 1
            elif isinstance(frame, fr.CryptoFrame):
                data = c.spaces[Epoch.ONE_RTT if epoch == Epoch.ZERO_RTT else epoch].receive(
                    frame.offset, frame.data
                )
                if data:
                    c.tls.receive(epoch, data, now)
            elif isinstance(frame, (fr.PingFrame, fr.PaddingFrame)):
                pass
            else:
                self._handle_control_frame(frame, t, epoch, dcid, now)
        return ack_eliciting, non_probing

    def _handle_control_frame(
        self, frame: fr.Frame, t: int, epoch: Epoch, dcid: bytes, now: float
    ) -> None:
        c = self.c
        streams = c.streams
        if isinstance(frame, fr.ConnectionCloseFrame):
            reason = frame.reason.decode("utf-8", "replace")
            c._enter_draining(frame.error_code, frame.frame_type, reason, frame.is_application, now)
        elif isinstance(frame, fr.MaxDataFrame):
            streams.on_max_data(frame.maximum_data)
        elif isinstance(frame, fr.MaxStreamDataFrame):
            streams.on_max_stream_data(frame, t)
        elif isinstance(frame, fr.MaxStreamsFrame):
            streams.on_max_streams(frame)
        elif isinstance(frame, fr.ResetStreamFrame):
            streams.on_reset_stream(frame, t)
        elif isinstance(frame, fr.StopSendingFrame):
            streams.on_stop_sending(frame, t)
        elif isinstance(frame, fr.NewConnectionIdFrame):
            c.cids.on_new_connection_id(
                frame, peer_uses_empty_cid=len(c.cids.current_peer_cid) == 0
            )
        elif isinstance(frame, fr.RetireConnectionIdFrame):
            c.cids.on_retire(frame.sequence_number, dcid)
        elif isinstance(frame, fr.PathChallengeFrame):
            # §8.2.2: the response goes on the path the challenge came on.
            address = c._datagram_address
            if address is not None:
                c.paths.on_challenge(c.paths.path_for(address), frame.data)
        elif isinstance(frame, fr.PathResponseFrame):
            c.paths.on_response(frame.data)  # §8.2.3: validates the challenged path
        elif isinstance(frame, fr.HandshakeDoneFrame):
            if not c.is_client:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION, "HANDSHAKE_DONE from a client", t
                )
            c._confirm_handshake()
        elif isinstance(frame, fr.NewTokenFrame) and not c.is_client:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "NEW_TOKEN from a client", t
            )

    def _on_ack(self, epoch: Epoch, frame: fr.AckFrame, now: float) -> None:
        c = self.c
        space_id = _EPOCH_SPACE[epoch]
        space = c.recovery.spaces[space_id]
        if frame.largest_acknowledged >= space.next_packet_number:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "ACK for a packet never sent", 0x02
            )
        exponent = (
            c.remote_params.ack_delay_exponent if c.remote_params and epoch == Epoch.ONE_RTT else 3
        )
        delay = (frame.ack_delay << exponent) / 1e6
        acked, _lost = c.recovery.on_ack_received(space_id, frame.ranges, delay, now)
        if (
            acked
            and epoch == Epoch.ONE_RTT
            and not c._key_update_confirmed
            and acked[-1].packet_number >= c._key_phase_first_pn
        ):
            c._key_update_confirmed = True  # RFC 9001 §6.5: a packet of the new phase
