"""The QUIC connection (RFC 9000/9001/9002/9221), sans-I/O.

Datagrams in with :meth:`QuicConnection.receive_datagram`, datagrams out of
:meth:`~QuicConnection.datagrams_to_send`, timers through
:meth:`~QuicConnection.next_timer` / :meth:`~QuicConnection.handle_timer`,
events from :meth:`~QuicConnection.next_event`. ``now`` is seconds (any
clock, but the same one throughout; wall-clock seconds date session tickets).

Sending lives in :mod:`quicnet.quic.sender`, stream bookkeeping in
:mod:`quicnet.quic.stream_manager`, loss recovery in :mod:`quicnet.quic.recovery`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from quicnet.crypto import DecryptError, hmac_digest, random_bytes
from quicnet.quic import frames as fr
from quicnet.quic.buffer import Reader
from quicnet.quic.cids import ConnectionIdManager
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.crypto_streams import CryptoSpace
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import (
    ConnectionTerminated,
    DatagramReceived,
    HandshakeCompleted,
    QuicEvent,
    SessionTicketReceived,
)
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    PacketType,
    decode_packet_number,
    parse_long_header,
    parse_version_negotiation,
    retry_is_valid,
)
from quicnet.quic.protection import PacketKey, initial_keys
from quicnet.quic.recovery import Recovery
from quicnet.quic.sender import PacketSender
from quicnet.quic.stream_manager import StreamManager
from quicnet.quic.transport_params import TransportParameters
from quicnet.tls import (
    ClientConfig,
    Epoch,
    HandshakeComplete,
    ProtocolViolation,
    ServerConfig,
    TLSClient,
    TLSError,
    TLSServer,
    TrafficSecretReady,
)
from quicnet.tls import SessionTicketReceived as TLSSessionTicket
from quicnet.tls.key_schedule import CIPHER_SUITES

__all__ = ["ConnectionState", "QuicConnection"]

Address = tuple[str, int] | tuple[str, int, int, int]

# Frames allowed per packet type (RFC 9000 §12.4, Table 3).
_HANDSHAKE_FRAMES = frozenset({0x00, 0x01, 0x02, 0x03, 0x06, 0x1C})
_ZERO_RTT_FORBIDDEN = frozenset({0x02, 0x03, 0x06, 0x07, 0x19, 0x1B, 0x1E})
_NOT_ACK_ELICITING = frozenset({0x00, 0x02, 0x03, 0x1C, 0x1D})
_EPOCH_SPACE = {Epoch.INITIAL: 0, Epoch.HANDSHAKE: 1, Epoch.ZERO_RTT: 2, Epoch.ONE_RTT: 2}
_PACKET_EPOCH = {
    PacketType.INITIAL: Epoch.INITIAL,
    PacketType.HANDSHAKE: Epoch.HANDSHAKE,
    PacketType.ZERO_RTT: Epoch.ZERO_RTT,
}
#: AEAD confidentiality limit for AES-GCM packets (RFC 9001 §6.6), with margin.
KEY_UPDATE_PACKETS = 1 << 22


class ConnectionState(enum.Enum):
    HANDSHAKE = "handshake"
    CONNECTED = "connected"
    CLOSING = "closing"  # we sent CONNECTION_CLOSE (§10.2.1)
    DRAINING = "draining"  # the peer did (§10.2.2)
    TERMINATED = "terminated"


def _default_reset_token(cid: bytes, key: bytes = random_bytes(32)) -> bytes:
    return hmac_digest("sha256", key, cid)[:16]


class QuicConnection:
    """One QUIC connection, client or server."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        original_destination_cid: bytes | None = None,
        local_cid: bytes | None = None,
        retry_source_cid: bytes | None = None,
        reset_token_for: Callable[[bytes], bytes] | None = None,
        peer_address_validated: bool = False,
    ) -> None:
        c = configuration
        self.configuration = c
        self.is_client = c.is_client
        self.version = c.version
        self.state = ConnectionState.HANDSHAKE
        self._events: deque[QuicEvent] = deque()
        self.peer_address: Address | None = None
        local_cid = local_cid if local_cid is not None else random_bytes(c.connection_id_length)
        self.host_cid = local_cid
        self.cids = ConnectionIdManager(
            local_cid,
            cid_length=c.connection_id_length,
            reset_token_for=reset_token_for or _default_reset_token,
            active_connection_id_limit=c.active_connection_id_limit,
        )
        self.recovery = Recovery(max_ack_delay=0.025, max_datagram_size=1200)
        self.recovery.cc = c.congestion_controller(1200)
        self.spaces = {
            e: CryptoSpace(c.max_crypto_buffer)
            for e in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
        }
        self.zero_rtt_recv_key: PacketKey | None = None
        self.zero_rtt_send_key: PacketKey | None = None
        # 1-RTT key update (RFC 9001 §6).
        self.key_phase = 0
        self.recv_key_phase = 0
        self._next_recv_key: PacketKey | None = None
        self._prev_recv_key: PacketKey | None = None
        self._packets_in_key_phase = 0
        self._key_update_confirmed = True  # the peer acknowledged a packet in the current phase
        self._key_phase_first_pn = 0
        self.key_updates = 0
        # Handshake progress.
        self.handshake_complete = False
        self.handshake_confirmed = False
        self.address_validated = peer_address_validated or self.is_client
        self.bytes_received = 0
        self.bytes_sent = 0  # counted toward the 3x limit before validation
        self._received_first_packet = False
        self._discarded_epochs: set[Epoch] = set()
        self._handshake_done_pending = False
        self._retry_token = b""
        self._retry_happened = retry_source_cid is not None
        self.original_destination_cid = original_destination_cid or random_bytes(8)
        self._retry_source_cid = retry_source_cid
        self._peer_initial_source_cid: bytes | None = None
        self._version_negotiated = False
        # Timers.
        self.idle_timeout = c.idle_timeout
        self._last_activity: float | None = None
        self._idle_restart_on_send = False
        self._close_deadline: float | None = None
        self._ack_deadline: float | None = None
        self._close_frame: bytes | None = None
        self._close_reason: ConnectionTerminated | None = None
        self._close_resend_due = False
        self._close_application = True
        self._pacing_deadline: float | None = None
        self._probes_pending: dict[int, int] = {}
        # Application data.
        self.local_params = self._local_transport_parameters()
        self.remote_params: TransportParameters | None = None
        self.streams = StreamManager(
            is_client=self.is_client, local=self.local_params, events=self._events
        )
        self._datagrams: deque[tuple[int, bytes]] = deque()
        self._next_datagram_id = 0
        self._ping_pending = False
        self._path_responses: deque[bytes] = deque()
        self._path_challenges: deque[bytes] = deque()  # PATH_CHALLENGE data to send
        self._path_challenge: bytes | None = None  # what the current path must echo
        self.path_migrations = 0
        self.alpn_protocol: str | None = None
        self.tls = self._make_tls()
        self.sender = PacketSender(self)
        if not self.is_client:
            # The client's Initial after a Retry is keyed by the Retry's source CID.
            self._install_initial_keys(retry_source_cid or self.original_destination_cid)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now, with its destination address."""
        return self.sender.datagrams_to_send(now)

    # Setup ---------------------------------------------------------------------------
    def _local_transport_parameters(self) -> TransportParameters:
        c = self.configuration
        return TransportParameters(
            original_destination_connection_id=None
            if self.is_client
            else self.original_destination_cid,
            max_idle_timeout=int(c.idle_timeout * 1000),
            stateless_reset_token=None
            if self.is_client
            else self.cids.local[0].stateless_reset_token,
            max_udp_payload_size=c.max_udp_payload_size,
            initial_max_data=c.initial_max_data,
            initial_max_stream_data_bidi_local=c.initial_max_stream_data,
            initial_max_stream_data_bidi_remote=c.initial_max_stream_data,
            initial_max_stream_data_uni=c.initial_max_stream_data,
            initial_max_streams_bidi=c.initial_max_streams_bidi,
            initial_max_streams_uni=c.initial_max_streams_uni,
            ack_delay_exponent=c.ack_delay_exponent,
            max_ack_delay=int(c.max_ack_delay * 1000),
            active_connection_id_limit=c.active_connection_id_limit,
            initial_source_connection_id=self.host_cid,
            retry_source_connection_id=self._retry_source_cid,
            max_datagram_frame_size=c.max_datagram_frame_size,
        )

    def _make_tls(self) -> TLSClient | TLSServer:
        c = self.configuration
        params = self.local_params.encode()
        if self.is_client:
            return TLSClient(
                ClientConfig(
                    server_name=c.server_name,
                    alpn_protocols=c.alpn_protocols,
                    trust_roots=c.trust_roots,
                    pinned_fingerprints=c.pinned_fingerprints,
                    insecure_skip_verify=c.insecure_skip_verify,
                    cipher_suites=c.cipher_suites,
                    groups=c.groups,
                    certificate_chain=c.certificate_chain,
                    private_key=c.private_key,
                    session=c.session_ticket,
                    enable_early_data=False,
                    quic_transport_parameters=params,
                    middlebox_compatibility=False,
                    key_log=c.key_log,
                ),
                quic=True,
            )
        if c.private_key is None:
            raise QuicUsageError("a QUIC server needs certificate_chain and private_key")
        return TLSServer(
            ServerConfig(
                certificate_chain=c.certificate_chain,
                private_key=c.private_key,
                alpn_protocols=c.alpn_protocols,
                cipher_suites=c.cipher_suites,
                groups=c.groups,
                ticket_keys=c.ticket_keys,
                quic_transport_parameters=params,
                middlebox_compatibility=False,
                key_log=c.key_log,
            ),
            quic=True,
        )

    def _install_initial_keys(self, destination_cid: bytes) -> None:
        send, recv = initial_keys(self.version, destination_cid, is_client=self.is_client)
        space = self.spaces[Epoch.INITIAL]
        space.send_key, space.recv_key = send, recv

    def connect(self, address: Address, now: float) -> None:
        """Client: start the handshake toward ``address``."""
        if not self.is_client or self._last_activity is not None:
            raise QuicUsageError("connect() is for a new client connection")
        self.peer_address = address
        self.cids.set_initial_peer(self.original_destination_cid)
        self._install_initial_keys(self.original_destination_cid)
        self._last_activity = now
        assert isinstance(self.tls, TLSClient)
        self.tls.start(now)
        self._drain_tls(now)

    # Public API -------------------------------------------------------------------------
    def next_event(self) -> QuicEvent | None:
        return self._events.popleft() if self._events else None

    def create_stream(self, *, bidirectional: bool = True) -> int:
        """Open a stream; returns its id."""
        return self.streams.open(bidirectional)

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        self._check_open()
        self.streams.send(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.streams.reset(stream_id, error_code)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        self.streams.stop_sending(stream_id, error_code)

    @property
    def max_datagram_size(self) -> int | None:
        """The largest DATAGRAM payload the peer accepts now (None: not negotiated)."""
        p = self.remote_params
        if p is None or p.max_datagram_frame_size is None:
            return None
        # A DATAGRAM frame must fit one packet: leave room for headers, tag and frame overhead.
        return min(p.max_datagram_frame_size - 3, 1200 - 60)

    def send_datagram(self, data: bytes) -> int:
        """Queue an unreliable datagram (RFC 9221); returns an id for its ack/loss events."""
        self._check_open()
        limit = self.max_datagram_size
        if limit is None:
            raise QuicUsageError("the peer does not accept DATAGRAM frames")
        if len(data) > limit:
            raise QuicUsageError(f"datagram of {len(data)} bytes exceeds the limit of {limit}")
        datagram_id = self._next_datagram_id
        self._next_datagram_id += 1
        self._datagrams.append((datagram_id, bytes(data)))
        return datagram_id

    def ping(self) -> None:
        self._ping_pending = True

    def request_key_update(self) -> None:
        """Start a 1-RTT key update (RFC 9001 §6.1)."""
        if not self.handshake_confirmed:
            raise QuicUsageError("keys can be updated only after the handshake is confirmed")
        if not self._key_update_confirmed:
            raise QuicUsageError("the previous key update is not acknowledged yet")
        self._initiate_key_update()

    def close(self, error_code: int = 0, reason: str = "", *, application: bool = True) -> None:
        """Send CONNECTION_CLOSE and enter the closing state (§10.2)."""
        if self.state in (
            ConnectionState.CLOSING,
            ConnectionState.DRAINING,
            ConnectionState.TERMINATED,
        ):
            return
        self._enter_closing(error_code, None if application else 0, reason, application=application)

    def _check_open(self) -> None:
        if self.state in (
            ConnectionState.CLOSING,
            ConnectionState.DRAINING,
            ConnectionState.TERMINATED,
        ):
            raise QuicUsageError("the connection is closed")

    # Receiving ---------------------------------------------------------------------------
    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Process one UDP datagram from ``address``."""
        if self.state == ConnectionState.TERMINATED:
            return
        self.bytes_received += len(data)
        if self.peer_address is None:
            self.peer_address = address
        if self.state in (ConnectionState.CLOSING, ConnectionState.DRAINING):
            if self.state == ConnectionState.CLOSING:
                self._close_resend_due = True  # §10.2.1: answer with CONNECTION_CLOSE
            return
        if not data:
            return
        if (
            self.is_client
            and data[0] & 0x80
            and len(data) >= 5
            and data[1:5] == b"\x00\x00\x00\x00"
        ):
            self._on_version_negotiation(data, now)
            return
        start = 0
        while start < len(data):
            try:
                end = self._receive_packet(data, start, address, now)
            except TransportError as exc:
                self._enter_closing(
                    exc.error_code, exc.frame_type or 0, exc.reason, application=False
                )
                return
            except TLSError as exc:
                alert = exc.alert if isinstance(exc, ProtocolViolation) else 80
                self._enter_closing(
                    TransportErrorCode.CRYPTO_ERROR + int(alert), 0x06, str(exc), application=False
                )
                return
            if end is None:
                break
            start = end

    def _on_version_negotiation(self, data: bytes, now: float) -> None:
        """§6.2: restart with a version both sides support, once, before any other packet."""
        if self._received_first_packet or self._version_negotiated:
            return
        try:
            dcid, _scid, versions = parse_version_negotiation(data)
        except TransportError:
            return
        if dcid != self.host_cid or self.version in versions:
            return  # §6.2: a VN listing our version is discarded
        common = [v for v in self.configuration.supported_versions if v in versions]
        if not common:
            self._terminate(
                TransportErrorCode.NO_ERROR, None, "no common QUIC version", by_peer=True
            )
            return
        self._version_negotiated = True
        self.version = common[0]
        self._restart_handshake(now)

    def _restart_handshake(self, now: float) -> None:
        """Start over (after Version Negotiation) with fresh TLS and Initial state."""
        self.recovery = Recovery(max_ack_delay=0.025, max_datagram_size=1200)
        self.recovery.cc = self.configuration.congestion_controller(1200)
        self.spaces = {
            e: CryptoSpace(self.configuration.max_crypto_buffer)
            for e in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
        }
        self.tls = self._make_tls()
        self._install_initial_keys(self.original_destination_cid)
        assert isinstance(self.tls, TLSClient)
        self.tls.start(now)
        self._drain_tls(now)

    def _receive_packet(self, data: bytes, start: int, address: Address, now: float) -> int | None:
        """Process the packet at ``start``; return where the next one starts (None: stop)."""
        first = data[start]
        if first & 0x80:
            try:
                header = parse_long_header(data, start)
            except TransportError:
                return None  # unknown version or malformed: drop the rest
            if header.version != self.version:
                return None
            if header.packet_type == PacketType.RETRY:
                self._on_retry(data[start:], header.source_cid, header.token, now)
                return None
            epoch = _PACKET_EPOCH[header.packet_type]
            if (
                not self.is_client
                and header.packet_type == PacketType.INITIAL
                and len(data) < MIN_INITIAL_DATAGRAM
            ):
                return None  # §14.1: a server drops Initials in small datagrams
            pn_offset, end, dcid = header.pn_offset, header.end, header.destination_cid
            peer_scid: bytes | None = header.source_cid
        else:
            epoch = Epoch.ONE_RTT
            pn_offset = start + 1 + self.configuration.connection_id_length
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
        space = self.recovery.spaces[_EPOCH_SPACE[epoch]]
        try:
            plain_first, truncated, pn_len = key.unprotect_header(packet, rel_pn_offset)
        except DecryptError:  # too short to sample: may still be a stateless reset
            if epoch == Epoch.ONE_RTT and start == 0 and self.cids.is_stateless_reset(data):
                self._terminate(0, None, "stateless reset", by_peer=True, stateless_reset=True)
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
            if epoch == Epoch.ONE_RTT and start == 0 and self.cids.is_stateless_reset(data):
                self._terminate(0, None, "stateless reset", by_peer=True, stateless_reset=True)
                return None
            return end
        # §17.2/17.3: reserved bits must be zero once protection is removed.
        reserved = plain_first & (0x0C if first & 0x80 else 0x18)
        if reserved:
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "reserved header bits set")
        if pn in space.received or pn < space.largest_received - 100_000:
            return end  # duplicate (or hopelessly old)
        self._on_packet_authenticated(epoch, peer_scid, dcid, address, now)
        ack_eliciting = self._handle_frames(epoch, payload, now, dcid)
        if (
            address != self.peer_address
            and epoch == Epoch.ONE_RTT
            and pn > space.largest_received
            and self.handshake_confirmed
        ):
            self._on_peer_address_change(address)
        space.received.add(pn)
        if pn > space.largest_received:
            space.largest_received = pn
            space.largest_received_time = now
        if len(space.received) > 64:
            space.received.trim_below(space.received.descending()[31][1])
        if ack_eliciting:
            space.unacked_ack_eliciting += 1
            if epoch != Epoch.ONE_RTT or space.unacked_ack_eliciting >= 2:
                space.ack_queued = True  # §13.2.1
            elif self._ack_deadline is None:
                self._ack_deadline = now + self.configuration.max_ack_delay
        self._drain_tls(now)
        return end

    def _recv_key(self, epoch: Epoch) -> PacketKey | None:
        if epoch == Epoch.ZERO_RTT:
            return self.zero_rtt_recv_key
        return self.spaces[epoch].recv_key

    def _open_one_rtt(self, plain_first: int, header: bytes, ciphertext: bytes, pn: int) -> bytes:
        """RFC 9001 §6.3: a flipped key-phase bit means the next keys (or late old ones)."""
        phase = (plain_first >> 2) & 0x01
        current = self.spaces[Epoch.ONE_RTT].recv_key
        assert current is not None
        if phase == self.recv_key_phase:
            return current.open(header, ciphertext, pn)
        if self._prev_recv_key is not None and pn < self.recovery.spaces[2].largest_received:
            return self._prev_recv_key.open(header, ciphertext, pn)
        if not self.handshake_confirmed:
            raise TransportError(
                TransportErrorCode.KEY_UPDATE_ERROR, "key update before the handshake was confirmed"
            )
        nxt = self._next_recv_key or current.next_generation()
        payload = nxt.open(header, ciphertext, pn)  # DecryptError leaves state untouched
        self._prev_recv_key = current
        self.spaces[Epoch.ONE_RTT].recv_key = nxt
        self._next_recv_key = nxt.next_generation()
        self.recv_key_phase = phase
        if phase != self.key_phase:  # the peer started it: follow (§6.2)
            self._update_send_key()
        return payload

    def _initiate_key_update(self) -> None:
        self._update_send_key()
        self._key_update_confirmed = False

    def _update_send_key(self) -> None:
        space = self.spaces[Epoch.ONE_RTT]
        assert space.send_key is not None
        space.send_key = space.send_key.next_generation()
        self._key_phase_first_pn = self.recovery.spaces[2].next_packet_number
        self.key_phase ^= 1
        self._packets_in_key_phase = 0
        self.key_updates += 1

    def _on_packet_authenticated(
        self, epoch: Epoch, peer_scid: bytes | None, dcid: bytes, address: Address, now: float
    ) -> None:
        self._last_activity = now
        self._idle_restart_on_send = True
        if not self._received_first_packet:
            self._received_first_packet = True
            if peer_scid is not None:
                self._peer_initial_source_cid = peer_scid
                if self.is_client:
                    self.cids.set_initial_peer(peer_scid)  # §7.2: use the server's chosen CID
                else:
                    self.cids.set_initial_peer(peer_scid)
        if not self.is_client and epoch == Epoch.HANDSHAKE:
            self.address_validated = True  # §8.1: a Handshake packet proves the address
            self._discard_epoch(Epoch.INITIAL)

    def _on_peer_address_change(self, address: Address) -> None:
        """RFC 9000 §9.3: follow a rebinding peer and validate the new path."""
        self.peer_address = address
        self._path_challenge = random_bytes(8)
        self._path_challenges.append(self._path_challenge)
        self.path_migrations += 1

    def _on_retry(self, packet: bytes, source_cid: bytes, token: bytes, now: float) -> None:
        """§17.2.5: accept one valid Retry before any other packet from the server."""
        if not self.is_client or self._received_first_packet or self._retry_happened or not token:
            return
        if source_cid == self.original_destination_cid:  # RFC 9000 §17.2.5.1
            return
        if not retry_is_valid(packet, self.original_destination_cid, self.version):
            return
        self._retry_happened = True
        self._retry_source_cid = source_cid
        self._retry_token = token
        self.cids.set_initial_peer(source_cid)
        self._install_initial_keys(source_cid)
        # Everything sent in Initial packets goes again under the new keys.
        space = self.recovery.spaces[0]
        self.recovery.cc.discard([p for p in space.sent.values() if p.in_flight])
        for p in list(space.sent.values()):
            for handler in p.handlers:
                handler(False)
        space.sent.clear()
        space.ack_eliciting_in_flight = 0

    # Frames ------------------------------------------------------------------------------
    def _handle_frames(self, epoch: Epoch, payload: bytes, now: float, dcid: bytes) -> bool:
        """Process a packet's frames; True if it was ack-eliciting."""
        r = Reader(payload)
        if r.at_end():
            raise TransportError(TransportErrorCode.PROTOCOL_VIOLATION, "packet without frames")
        ack_eliciting = False
        streams = self.streams
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
                    self.local_params.max_datagram_frame_size is None
                    or len(frame.data) + 1 > self.local_params.max_datagram_frame_size
                ):
                    raise TransportError(
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        "DATAGRAM frame not allowed or too large",
                        t,
                    )
                self._events.append(DatagramReceived(frame.data))
            elif isinstance(frame, fr.CryptoFrame):
                data = self.spaces[Epoch.ONE_RTT if epoch == Epoch.ZERO_RTT else epoch].receive(
                    frame.offset, frame.data
                )
                if data:
                    self.tls.receive(epoch, data, now)
            elif isinstance(frame, (fr.PingFrame, fr.PaddingFrame)):
                pass
            else:
                self._handle_control_frame(frame, t, epoch, dcid, now)
        return ack_eliciting

    def _handle_control_frame(
        self, frame: fr.Frame, t: int, epoch: Epoch, dcid: bytes, now: float
    ) -> None:
        streams = self.streams
        if isinstance(frame, fr.ConnectionCloseFrame):
            reason = frame.reason.decode("utf-8", "replace")
            self._enter_draining(
                frame.error_code, frame.frame_type, reason, frame.is_application, now
            )
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
            self.cids.on_new_connection_id(
                frame, peer_uses_empty_cid=len(self.cids.current_peer_cid) == 0
            )
        elif isinstance(frame, fr.RetireConnectionIdFrame):
            self.cids.on_retire(frame.sequence_number, dcid)
        elif isinstance(frame, fr.PathChallengeFrame):
            self._path_responses.append(frame.data)
        elif isinstance(frame, fr.PathResponseFrame):
            if self._path_challenge is not None and frame.data == self._path_challenge:
                self._path_challenge = None  # §8.2.2: the new path is validated
        elif isinstance(frame, fr.HandshakeDoneFrame):
            if not self.is_client:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION, "HANDSHAKE_DONE from a client", t
                )
            self._confirm_handshake()
        elif isinstance(frame, fr.NewTokenFrame) and not self.is_client:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "NEW_TOKEN from a client", t
            )
        # DATA_BLOCKED, STREAM_DATA_BLOCKED, STREAMS_BLOCKED, PATH_RESPONSE: informational.

    def _on_ack(self, epoch: Epoch, frame: fr.AckFrame, now: float) -> None:
        space_id = _EPOCH_SPACE[epoch]
        space = self.recovery.spaces[space_id]
        if frame.largest_acknowledged >= space.next_packet_number:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "ACK for a packet never sent", 0x02
            )
        exponent = (
            self.remote_params.ack_delay_exponent
            if self.remote_params and epoch == Epoch.ONE_RTT
            else 3
        )
        delay = (frame.ack_delay << exponent) / 1e6
        acked, _lost = self.recovery.on_ack_received(space_id, frame.ranges, delay, now)
        if (
            acked
            and epoch == Epoch.ONE_RTT
            and not self._key_update_confirmed
            and acked[-1].packet_number >= self._key_phase_first_pn
        ):
            self._key_update_confirmed = True  # RFC 9001 §6.5: a packet of the new phase

    # TLS ---------------------------------------------------------------------------------
    def _drain_tls(self, now: float) -> None:
        tls = self.tls
        while (event := tls.next_event()) is not None:
            if isinstance(event, TrafficSecretReady):
                self._install_secret(event)
            elif isinstance(event, HandshakeComplete):
                self._on_handshake_complete(event)
            elif isinstance(event, TLSSessionTicket):
                self._events.append(SessionTicketReceived(event.ticket))
        for epoch, data in tls.data_to_send():
            space = self.spaces[epoch if epoch != Epoch.ZERO_RTT else Epoch.ONE_RTT]
            space.sender.write(data, False)
        if not self.is_client and self.remote_params is None and tls.state != "START":
            self._set_remote_params(tls.peer_transport_parameters)

    def _install_secret(self, event: TrafficSecretReady) -> None:
        suite = CIPHER_SUITES[event.cipher_suite]
        key = PacketKey(suite.aead, suite.hash_name, event.secret, self.version)
        if event.epoch == Epoch.ZERO_RTT:
            if event.is_write:
                self.zero_rtt_send_key = key
            else:
                self.zero_rtt_recv_key = key
            return
        space = self.spaces[event.epoch]
        if event.is_write:
            space.send_key = key
        else:
            space.recv_key = key
            if event.epoch == Epoch.ONE_RTT:
                self._next_recv_key = key.next_generation()

    def _set_remote_params(self, raw: bytes | None) -> None:
        if raw is None:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR, "no transport parameters"
            )
        params = TransportParameters.decode(raw, from_server=self.is_client)
        # §7.3: authenticate the connection IDs used during the handshake.
        if params.initial_source_connection_id != self._peer_initial_source_cid:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
                "initial_source_connection_id mismatch",
            )
        if self.is_client:
            if params.original_destination_connection_id != self.original_destination_cid:
                raise TransportError(
                    TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
                    "original_destination_connection_id mismatch",
                )
            if params.retry_source_connection_id != self._retry_source_cid:
                raise TransportError(
                    TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
                    "retry_source_connection_id mismatch",
                )
            if params.stateless_reset_token is not None:
                self.cids.set_peer_reset_token(params.stateless_reset_token)
        self.remote_params = params
        self.recovery.max_ack_delay = params.max_ack_delay / 1000
        if params.max_idle_timeout:
            peer = params.max_idle_timeout / 1000
            self.idle_timeout = min(self.idle_timeout, peer) if self.idle_timeout else peer
        self.streams.set_remote_parameters(params)

    def _on_handshake_complete(self, event: HandshakeComplete) -> None:
        if self.is_client:
            self._set_remote_params(self.tls.peer_transport_parameters)
        self.handshake_complete = True
        self.alpn_protocol = event.alpn_protocol
        self.state = ConnectionState.CONNECTED
        limit = (self.remote_params.active_connection_id_limit if self.remote_params else 2) - 1
        self.cids.issue(min(limit, 7))
        if not self.is_client:
            self._handshake_done_pending = True
            self._confirm_handshake()  # §4.1.2: the server confirms at completion
        self._events.append(
            HandshakeCompleted(event.alpn_protocol, event.resumed, event.early_data_accepted)
        )

    def _confirm_handshake(self) -> None:
        if self.handshake_confirmed:
            return
        self.handshake_confirmed = True
        self.recovery.handshake_confirmed = True
        self.recovery.peer_completed_address_validation = True
        self._discard_epoch(Epoch.HANDSHAKE)

    def _discard_epoch(self, epoch: Epoch) -> None:
        """RFC 9001 §4.9: drop keys and recovery state of a finished epoch."""
        if epoch in self._discarded_epochs:
            return
        self._discarded_epochs.add(epoch)
        space = self.spaces[epoch]
        space.send_key = space.recv_key = None
        self.recovery.discard_space(_EPOCH_SPACE[epoch])

    # Closing -----------------------------------------------------------------------------
    def _enter_closing(
        self, error_code: int, frame_type: int | None, reason: str, *, application: bool
    ) -> None:
        self._close_frame = fr.encode_connection_close(
            error_code, None if application else (frame_type or 0), reason.encode()[:200]
        )
        self._close_application = application
        self._close_reason = ConnectionTerminated(
            error_code, frame_type, reason, by_peer=False, is_application=application
        )
        self.state = ConnectionState.CLOSING
        self._close_resend_due = True
        self._close_deadline = None  # set when the close frame is sent

    def _enter_draining(
        self, error_code: int, frame_type: int | None, reason: str, application: bool, now: float
    ) -> None:
        if self.state in (ConnectionState.DRAINING, ConnectionState.TERMINATED):
            return
        self.state = ConnectionState.DRAINING
        self._close_deadline = now + 3 * self.recovery.pto_duration(2)
        self._events.append(
            ConnectionTerminated(
                error_code, frame_type, reason, by_peer=True, is_application=application
            )
        )
        self._close_reason = None

    def _terminate(
        self,
        error_code: int,
        frame_type: int | None,
        reason: str,
        *,
        by_peer: bool,
        stateless_reset: bool = False,
    ) -> None:
        if self.state == ConnectionState.TERMINATED:
            return
        previous = self.state
        self.state = ConnectionState.TERMINATED
        if previous == ConnectionState.CLOSING and self._close_reason is not None:
            self._events.append(self._close_reason)
        elif previous != ConnectionState.DRAINING:
            self._events.append(
                ConnectionTerminated(
                    error_code, frame_type, reason, by_peer=by_peer, stateless_reset=stateless_reset
                )
            )

    # Timers ---------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` must run, or None."""
        if self.state == ConnectionState.TERMINATED:
            return None
        if self.state in (ConnectionState.CLOSING, ConnectionState.DRAINING):
            return self._close_deadline
        candidates = []
        if self.idle_timeout and self._last_activity is not None:
            candidates.append(self._idle_deadline(self._last_activity))
        loss_time, _ = self.recovery.earliest_loss_time()
        if loss_time is not None:
            candidates.append(loss_time)
        elif self._may_send_probe():
            pto, _ = self.recovery.pto_time(
                self._last_activity or 0.0,
                has_handshake_keys=self.spaces[Epoch.HANDSHAKE].send_key is not None,
                is_client=self.is_client,
            )
            if pto is not None:
                candidates.append(pto)
        if self._ack_deadline is not None:
            candidates.append(self._ack_deadline)
        if self._pacing_deadline is not None:
            candidates.append(self._pacing_deadline)
        return min(candidates) if candidates else None

    def _idle_deadline(self, last_activity: float) -> float:
        # RFC 9000 §10.1: at least three PTOs, measured without backoff.
        return last_activity + max(self.idle_timeout, 3 * self.recovery.pto_base())

    def start_idle_timer(self, now: float) -> None:
        """Arm the idle timeout from ``now`` (a server connection, from its first datagram)."""
        if self._last_activity is None:
            self._last_activity = now

    def on_ack_eliciting_sent(self, now: float) -> None:
        """RFC 9000 §10.1: the first ack-eliciting packet after a receipt restarts the timer."""
        if self._idle_restart_on_send:
            self._idle_restart_on_send = False
            self._last_activity = now

    def _may_send_probe(self) -> bool:
        # §8.1 / RFC 9002 §6.2.2.1: an amplification-limited server does not arm the PTO.
        return self.address_validated or self.bytes_sent < 3 * self.bytes_received

    def handle_timer(self, now: float) -> None:
        if self.state == ConnectionState.TERMINATED:
            return
        if self.state in (ConnectionState.CLOSING, ConnectionState.DRAINING):
            if self._close_deadline is not None and now >= self._close_deadline:
                self._terminate(0, None, "closed", by_peer=False)
            return
        if (
            self.idle_timeout
            and self._last_activity is not None
            and now >= self._idle_deadline(self._last_activity)
        ):
            self._terminate(TransportErrorCode.NO_ERROR, None, "idle timeout", by_peer=False)
            return
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self._ack_deadline = None
            self.recovery.spaces[2].ack_queued = True
        loss_time, space_id = self.recovery.earliest_loss_time()
        if loss_time is not None:
            if now >= loss_time:
                self.recovery.detect_lost_on_timer(space_id, now)
            return
        pto, space_id = self.recovery.pto_time(
            self._last_activity or 0.0,
            has_handshake_keys=self.spaces[Epoch.HANDSHAKE].send_key is not None,
            is_client=self.is_client,
        )
        if pto is not None and now >= pto and self._may_send_probe():
            self.recovery.pto_count += 1
            self._probes_pending[space_id] = 2  # §6.2.4: one or two probe packets
            # Probes carry unacknowledged handshake data rather than a bare PING.
            for space in self.recovery.spaces[:2]:
                for packet in space.sent.values():
                    for requeue in packet.retransmit:
                        requeue(False)
