"""The QUIC connection (RFC 9000/9001/9002/9221), sans-I/O.

Datagrams in with :meth:`QuicConnection.receive_datagram`, datagrams out of
:meth:`~QuicConnection.datagrams_to_send`, timers through
:meth:`~QuicConnection.next_timer` / :meth:`~QuicConnection.handle_timer`,
events from :meth:`~QuicConnection.next_event`. ``now`` is seconds (any
clock, but the same one throughout; session tickets and certificates are dated by
the configuration's ``wall_clock``).

The connection is split along its state, each part a small object with its
own module: packet number spaces and loss recovery (:mod:`~quicnet.quic.
recovery`), CRYPTO streams and handshake keys (:mod:`~quicnet.quic.
crypto_streams`), 1-RTT key phases (:mod:`~quicnet.quic.key_phases`), paths
(:mod:`~quicnet.quic.paths`), connection IDs (:mod:`~quicnet.quic.cids`),
streams (:mod:`~quicnet.quic.stream_manager`), DATAGRAMs (:mod:`~quicnet.quic.
datagrams`), control frames waiting to go (:mod:`~quicnet.quic.pending`),
closing, draining and their transitions (:mod:`~quicnet.quic.closing`), the
deadlines that end a connection (:mod:`~quicnet.quic.deadlines`) and version
negotiation (:mod:`~quicnet.quic.negotiation`); a client's first flight is
started over by :mod:`~quicnet.quic.restart`. The receive path (:mod:`~quicnet.
quic.receiver`) and the send path (:mod:`~quicnet.quic.sender`, with
:mod:`~quicnet.quic.probes`) are functions over those parts; what this class
adds is the public API, the TLS plumbing and where each datagram belongs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MethodType

from quicnet.crypto import random_bytes
from quicnet.quic import ack_frequency
from quicnet.quic.ack_frequency import AckPolicy
from quicnet.quic.cids import ConnectionIdManager
from quicnet.quic.closing import (
    ClosingState,
    begin_closing,
    begin_draining,
    close_on_error,
    dispose_connection,
    end_connection,
)
from quicnet.quic.compatible_versions import VersionState, starting_versions
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.congestion import CongestionController
from quicnet.quic.crypto_streams import install_initial_keys, new_crypto_spaces
from quicnet.quic.datagrams import DatagramChannel
from quicnet.quic.deadlines import ConnectionDeadlines
from quicnet.quic.ecn import EcnState
from quicnet.quic.errors import QuicUsageError, TransportErrorCode
from quicnet.quic.events import (
    Address,
    ConnectionTerminated,
    DatagramReceived,
    PeerAddressChanged,
    QuicEvent,
    StreamDataReceived,
)
from quicnet.quic.handshake import FinishedTLS, HandshakeDriver
from quicnet.quic.key_phases import OneRttKeys
from quicnet.quic.migration import left_local, release_local, start_migration
from quicnet.quic.negotiation import VersionNegotiation
from quicnet.quic.paths import PathManager, address_key
from quicnet.quic.pending import PendingFrames
from quicnet.quic.preferred_address import PreferredAddressState, offer
from quicnet.quic.protection import PacketKey
from quicnet.quic.qlog import QlogTracer
from quicnet.quic.receiver import PacketReceiver
from quicnet.quic.records import on_delivered
from quicnet.quic.recovery import Recovery
from quicnet.quic.restart import on_version_negotiation
from quicnet.quic.sender import PacketSender
from quicnet.quic.states import (
    CLOSING,
    CONNECTED,
    DRAINING,
    HANDSHAKE,
    TERMINATED,
    ConnectionState,
)
from quicnet.quic.stats import ConnectionStats, TrafficCounters, connection_stats
from quicnet.quic.stream_manager import StreamManager
from quicnet.quic.timers import TimerDriver
from quicnet.quic.tls_setup import (
    local_transport_parameters,
    make_tls,
)
from quicnet.quic.transport_params import TransportParameters
from quicnet.quic.zero_rtt import ZeroRtt
from quicnet.tls import (
    Epoch,
    TLSClient,
    TLSServer,
)
from quicnet.tls.events import INITIAL_EPOCH
from quicnet.tls.tickets import TicketReceiver

__all__ = ["ConnectionState", "QuicConnection"]


_ENDING = (ConnectionState.CLOSING, ConnectionState.DRAINING, ConnectionState.TERMINATED)


class QuicConnection:
    """One QUIC connection, client or server."""

    __slots__ = (
        "__weakref__",
        "_first_path_validated",
        "acks",
        "alpn_protocol",
        "cid_length",
        "cids",
        "closing",
        "configuration",
        "datagram_address",
        "datagram_authenticated",
        "datagram_local",
        "datagram_queue",
        "datagrams",
        "deadlines",
        "disposed",
        "ecn",
        "ecn_marked",
        "event_queue",
        "handshake",
        "handshake_complete",
        "handshake_confirmed",
        "host_cid",
        "is_client",
        "keys",
        "local_params",
        "negotiation",
        "original_destination_cid",
        "paths",
        "peer_initial_source_cid",
        "pending",
        "preferred",
        "received_first_packet",
        "receiver",
        "recovery",
        "remote_params",
        "retry_happened",
        "retry_source_cid",
        "retry_token",
        "sender",
        "spaces",
        "state",
        "streams",
        "termination",
        "timers",
        "tls",
        "tracer",
        "traffic",
        "version",
        "versions",
        "wake",
        "zero_rtt",
        "zero_rtt_recv_key",
        "zero_rtt_send_key",
    )

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        original_destination_cid: bytes | None = None,
        local_cid: bytes | None = None,
        retry_source_cid: bytes | None = None,
        reset_token_for: Callable[[bytes], bytes] | None = None,
        peer_address_validated: bool = False,
        initial_keys: tuple[PacketKey, PacketKey] | None = None,
    ) -> None:
        c = configuration
        self.configuration = c
        self.is_client = c.is_client
        #: Writes the qlog trace (None: tracing off, the configuration's ``qlog_dir``).
        self.tracer: QlogTracer | None = None
        offered, self.version = starting_versions(c)  # RFC 9000 §6, RFC 9369 §5
        #: RFC 9000 §6: the version offered first may be one we do not speak.
        self.negotiation = VersionNegotiation(offered, speaks_offered=offered == self.version)
        self.versions = VersionState(self.version)  # compatible negotiation (RFC 9368)
        self.state = HANDSHAKE
        #: :meth:`dispose` broke its reference cycles (it is TERMINATED).
        self.disposed = False
        #: Events for the application, oldest first (taken with next_event()).
        self.event_queue: list[QuicEvent] = []
        #: Called when the application gives the connection something to send; set by an
        #: endpoint that only looks at connections with something to do.
        self.wake: Callable[[QuicConnection], None] | None = None
        self.pending = PendingFrames()
        self.cid_length = c.connection_id_length
        self.host_cid = local_cid if local_cid is not None else random_bytes(self.cid_length)
        self.cids = ConnectionIdManager(
            self.host_cid,
            cid_length=self.cid_length,
            reset_token_for=reset_token_for,
            active_connection_id_limit=c.active_connection_id_limit,
            pending=self.pending,
        )
        #: The peer's addresses: the current path, a fallback, those being probed (§9).
        self.paths = PathManager(self.cids, pmtu_discovery=c.pmtu_discovery)
        self.traffic = TrafficCounters()
        self.sender = PacketSender(self)
        self.receiver = PacketReceiver(self)
        self.timers = TimerDriver(self)
        self.recovery = self.new_recovery()
        self.ecn = EcnState(c.ecn)  # RFC 9000 §13.4 (quicnet.quic.ecn)
        #: When we acknowledge, and what we ask of the peer (draft-ietf-quic-ack-frequency).
        self.acks = AckPolicy(c.max_ack_delay, c.min_ack_delay_us)
        #: How many of the last ``datagrams_to_send``'s datagrams go out ECT(0) (all or none).
        self.ecn_marked = 0
        #: CRYPTO streams of each epoch, with the Initial and Handshake keys.
        self.spaces = new_crypto_spaces(c.max_crypto_buffer)
        self.keys = OneRttKeys(c.key_update_packets)
        self.zero_rtt_recv_key: PacketKey | None = None
        self.zero_rtt_send_key: PacketKey | None = None
        #: 0-RTT bookkeeping while it lasts (RFC 9001 §4.6); None for most connections.
        self.zero_rtt: ZeroRtt | None = None
        self.handshake_complete = False
        self.handshake_confirmed = False
        # A client validated the server's address by choosing it; a server whose client
        # showed a Retry token validated the client's (§8.1).
        self._first_path_validated = peer_address_validated or self.is_client
        self.received_first_packet = False
        #: Set when a packet of the datagram being processed was authenticated.
        self.datagram_authenticated = False
        #: The address the datagram being processed came from.
        self.datagram_address: Address | None = None
        #: The other local address it reached (a server's preferred one, RFC 9000 §9.6,
        #: a client's left one, §9.3.3); None: the default one.
        self.datagram_local: Address | None = None
        #: A client's token for its Initials: a NEW_TOKEN one (§8.1.3), then a Retry's (§17.2.5.2).
        self.retry_token = c.address_token if self.is_client else b""
        #: A Retry was taken (by this client, or by the endpoint before this server).
        self.retry_happened = retry_source_cid is not None
        self.original_destination_cid = original_destination_cid or random_bytes(8)
        self.retry_source_cid = retry_source_cid
        self.peer_initial_source_cid: bytes | None = None
        self.deadlines = ConnectionDeadlines(c.idle_timeout, c.handshake_timeout)
        self.closing: ClosingState | None = None
        #: Why the connection is ending or ended (also the last event it reports); None
        #: while it is open.
        self.termination: ConnectionTerminated | None = None
        self.local_params = local_transport_parameters(
            c,
            initial_source_cid=self.host_cid,
            original_destination_cid=None if self.is_client else self.original_destination_cid,
            retry_source_cid=self.retry_source_cid,
            stateless_reset_token=None if self.is_client else self.cids.first_reset_token(),
            version=self.version,
            preferred_address=offer(self),
        )
        #: §9.6: a server's offer, or (set by the handshake) a client's move; None: neither.
        self.preferred = PreferredAddressState(c) if self.local_params.preferred_address else None
        self.remote_params: TransportParameters | None = None
        self.streams = StreamManager(
            is_client=self.is_client,
            local=self.local_params,
            events=self.event_queue,
            pending=self.pending,
        )
        #: DATAGRAM payloads the application queued, with their ids (RFC 9221).
        self.datagram_queue: list[tuple[int, bytes]] = []
        self.datagrams = DatagramChannel(
            self.datagram_queue, self.event_queue, c.max_received_datagrams
        )
        self.alpn_protocol: str | None = None
        #: The TLS engine; once a server's handshake is confirmed, only its outcome.
        self.tls: TLSClient | TLSServer | FinishedTLS | TicketReceiver = make_tls(
            c, self.local_params, self.version, self.versions
        )
        self.handshake = HandshakeDriver(self)
        if c.qlog_dir is not None:
            self.tracer = QlogTracer(self, c.qlog_dir)
            self.tracer.attach(self.recovery)
        if not self.is_client:
            if initial_keys is not None:  # derived by the endpoint to check the first packet
                space = self.spaces[INITIAL_EPOCH]
                space.send_key, space.recv_key = initial_keys
            else:
                # The client's Initial after a Retry is keyed by the Retry's source CID.
                install_initial_keys(self, retry_source_cid or self.original_destination_cid)

    def new_recovery(self) -> Recovery:
        """Fresh loss recovery and congestion control (a new connection, or after VN)."""
        recovery = Recovery(
            max_ack_delay=0.025,
            max_datagram_size=1200,
            on_delivered=MethodType(on_delivered, self),
            cc=self.new_controller(),  # the configured kind (no default NewReno made and dropped)
        )
        recovery.large_loss_observer = self.paths  # PMTU black holes
        if self.tracer is not None:
            self.tracer.attach(recovery)
        return recovery

    # Public API -------------------------------------------------------------------------
    def connect(self, address: Address, now: float) -> None:
        """Client: start the handshake toward ``address``."""
        if not self.is_client or self.deadlines.started:
            raise QuicUsageError("connect() is for a new client connection")
        self.paths.start(address, validated=True)
        self.cids.set_initial_peer(self.original_destination_cid)
        self.deadlines.start(now)
        if self.tracer is not None and not self.tracer.connection_started(address, now):
            self.tracer = None  # the trace cannot be written: go on without it
        if self.negotiation.start(now):
            return  # an unknown version first: wait for Version Negotiation
        self.start_tls(now)

    def start_tls(self, now: float) -> None:
        """A client sends its ClientHello."""
        install_initial_keys(self, self.original_destination_cid)
        assert isinstance(self.tls, TLSClient)
        self.tls.start(self.configuration.wall_clock())  # TLS dates tickets: wall clock
        self.drain_tls(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now, with its destination address."""
        if self.state is TERMINATED:  # (and maybe disposed: nothing is asked of the sender)
            self.ecn_marked = 0
            return []
        sender = self.sender
        if sender.nothing_to_send():  # the common answer, before any ECN bookkeeping
            self.ecn_marked = 0
            return []
        marking = self.ecn.begin_batch(self.recovery, self.paths.current)
        out = sender.build_datagrams(now)
        self.ecn_marked = len(out) if marking else 0
        if out:
            traffic = self.traffic
            traffic.datagrams_sent += len(out)
            for data, _ in out:
                traffic.bytes_sent += len(data)
        return out

    def routed_datagrams(self) -> list[tuple[bytes, Address, Address, int]]:
        """Take the ``(data, to, from, ecn)`` datagrams that leave from another local
        address: a server's preferred one (RFC 9000 §9.6), a client's ``old_local`` (its
        PATH_RESPONSEs, §8.2.2); ``ecn``: 2 for ECT(0), or 0. Empty without either."""
        out, self.paths.routed = self.paths.routed, []
        self.traffic.datagrams_sent += len(out)
        self.traffic.bytes_sent += sum(len(d) for d, _, _, _ in out)
        return out

    def stats(self) -> ConnectionStats:
        """The connection's figures now: RTT, jitter, traffic, losses, congestion window."""
        return connection_stats(self)

    def next_event(self) -> QuicEvent | None:
        """The next event, or None. Taking a StreamDataReceived is what consumes its
        data: flow-control credit goes back to the peer only then (RFC 9000 §4)."""
        if not self.event_queue:
            return None
        event = self.event_queue.pop(0)
        if type(event) is StreamDataReceived:
            if event.data:
                self.streams.on_data_consumed(event.stream_id, len(event.data))
                if self.wake is not None and self.pending.credit:
                    self.wake(self)
        elif type(event) is DatagramReceived:
            self.datagrams.queued -= 1
        return event

    @property
    def has_events(self) -> bool:
        """An event waits for :meth:`next_event`."""
        return bool(self.event_queue)

    def create_stream(self, *, bidirectional: bool = True) -> int:
        """Open a stream; returns its id (QuicUsageError when the peer allows no more)."""
        return self.streams.open(bidirectional)

    def streams_available(self, *, bidirectional: bool = True) -> int:
        """How many more streams of that kind the peer lets us open now (RFC 9000 §4.6)."""
        streams = self.streams
        return streams.max_streams_remote[bidirectional] - streams.next_local_index[bidirectional]

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue ``data`` on a stream (and its end with ``end_stream``)."""
        self._check_open()
        self.streams.send(stream_id, data, end_stream)
        if self.wake is not None:
            self.wake(self)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        """Abandon sending on a stream (RESET_STREAM)."""
        self._check_open()
        self.streams.reset(stream_id, error_code)
        if self.wake is not None:
            self.wake(self)

    def stop_stream(self, stream_id: int, error_code: int) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING)."""
        self._check_open()
        self.streams.stop_sending(stream_id, error_code)
        if self.wake is not None:
            self.wake(self)

    @property
    def max_datagram_size(self) -> int | None:
        """The largest DATAGRAM payload the peer accepts now (None: not negotiated)."""
        p = self.remote_params
        if p is None and self.zero_rtt is not None:
            p = self.zero_rtt.remembered  # RFC 9221 §3: in 0-RTT, the remembered limit
        return self.datagrams.payload_limit(p)

    def send_datagram(self, data: bytes) -> int:
        """Queue an unreliable datagram (RFC 9221); returns the id its DatagramAcknowledged
        or DatagramLost event carries (with ``datagram_ack_events``)."""
        if self.state in _ENDING:  # (_check_open, in place)
            raise QuicUsageError("the connection is closed")
        p = self.remote_params
        if p is None and self.zero_rtt is not None:
            p = self.zero_rtt.remembered  # RFC 9221 §3: in 0-RTT, the remembered limit
        datagram_id = self.datagrams.send(data, p)
        if self.wake is not None:
            self.wake(self)
        return datagram_id

    def ping(self) -> None:
        """Send a PING (an ack-eliciting packet) soon."""
        self.pending.queue_ping()
        if self.wake is not None:
            self.wake(self)

    def migrate(
        self, now: float, *, port_only: bool = False, old_local: Address | None = None
    ) -> None:
        """Client: our datagrams leave from a new local address from now on (RFC 9000 §9.2;
        :mod:`~quicnet.quic.migration`); QuicUsageError when it cannot move. ``old_local``:
        the address left, still read (``receive_datagram(..., local=)``) until
        :meth:`release_local`: challenges there are answered from there (§8.2.2)."""
        start_migration(self, now, port_only=port_only, old_local=old_local)
        if self.wake is not None:
            self.wake(self)

    def release_local(self, local: Address) -> None:
        """Client: the driver stopped reading ``local`` (an ``old_local`` of :meth:`migrate`);
        the server CID kept for it is retired (RFC 9000 §5.1.2)."""
        release_local(self, local)

    def request_key_update(self) -> None:
        """Start a 1-RTT key update (RFC 9001 §6.1)."""
        if not self.handshake_confirmed:
            raise QuicUsageError("keys can be updated only after the handshake is confirmed")
        if not self.keys.update_confirmed:
            raise QuicUsageError("the previous key update is not acknowledged yet")
        self.keys.initiate(self.recovery.spaces[2].next_packet_number)
        if self.wake is not None:
            self.wake(self)

    @property
    def key_phase(self) -> int:
        """The key phase bit of the packets we send (RFC 9001 §6)."""
        return self.keys.key_phase

    @property
    def recv_key_phase(self) -> int:
        """The key phase bit of the packets the peer sends."""
        return self.keys.recv_phase

    @property
    def key_updates(self) -> int:
        """How many times our 1-RTT sending keys changed."""
        return self.keys.updates

    @property
    def can_send_early_data(self) -> bool:
        """A client holds 0-RTT keys: what it sends now goes in 0-RTT packets (RFC 9001 §4.6.1)."""
        return self.zero_rtt_send_key is not None

    def close(self, error_code: int = 0, reason: str = "", *, application: bool = True) -> None:
        """Send CONNECTION_CLOSE and enter the closing state (§10.2)."""
        if self.state in _ENDING:
            return
        begin_closing(self, error_code, None if application else 0, reason, application=application)
        if self.wake is not None:
            self.wake(self)

    def dispose(self) -> None:
        """Once TERMINATED, break the reference cycles between the connection and its
        helpers (sender, receiver, timers, handshake driver, qlog tracer, the delivery
        callback of loss recovery) and with its endpoint (the wake callback), so the
        last reference to it going frees it at once by reference counting, with no
        wait for the cyclic garbage collector (and nothing left for it, or out of its
        reach after ``gc.freeze()``). Its state, events, ``termination`` and
        :meth:`stats` stay; it sends and times nothing more. The endpoint disposes of
        a connection when it forgets it. Idempotent."""
        dispose_connection(self)

    def abort(self, reason: str) -> None:
        """End at once, without CONNECTION_CLOSE: for a connection whose own state broke."""
        self.terminate(TransportErrorCode.INTERNAL_ERROR, None, reason, by_peer=False)

    def _check_open(self) -> None:
        if self.state in _ENDING:
            raise QuicUsageError("the connection is closed")

    # Paths --------------------------------------------------------------------------------
    @property
    def peer_address(self) -> Address | None:
        """Where packets go: the current path's peer address."""
        current = self.paths.current
        return None if current is None else current.address

    @property
    def address_validated(self) -> bool:
        """The peer proved it owns the current path's address (RFC 9000 §8)."""
        current = self.paths.current
        return self._first_path_validated if current is None else current.validated

    @property
    def idle_timeout(self) -> float:
        """The idle timeout in effect: the smaller of both sides' (RFC 9000 §10.1)."""
        return self.deadlines.idle_timeout

    @property
    def path_migrations(self) -> int:
        """How many times the connection changed paths (the peer moved, or this client)."""
        return self.paths.migrations

    def on_peer_migrated(self, address: Address, now: float) -> None:
        """RFC 9000 §9.3: the peer's newest non-probing packet came from ``address`` (the
        peer's CIDs each path carries, §9.5: :meth:`PathManager.migrate
        <quicnet.quic.paths.PathManager.migrate>`)."""
        old, new = self.paths.migrate(
            address, now, self.recovery, self.new_controller, self.datagram_local
        )
        self.on_peer_address_changed(old.address, new.address)
        ack_frequency.on_path_confirmed(self)  # a path validated before: confirmed now

    # Receiving ---------------------------------------------------------------------------
    def receive_datagram(
        self, data: bytes, address: Address, now: float, ecn: int = 0, local: Address | None = None
    ) -> None:
        """Process one UDP datagram from ``address`` (``ecn``: its IP ECN codepoint;
        ``local``: where it arrived, needed only at a preferred address, §9.6, or at an
        address a client left, :meth:`migrate`)."""
        state = self.state
        current = self.paths.current
        via = None
        if (  # the common case: connected, from the current path's address, no §9.6
            state is CONNECTED
            and local is None
            and current is not None
            and address == current.address
            and self.preferred is None
        ):
            on_current = True
        else:
            if state is TERMINATED:
                return
            if current is None:  # a server's first datagram: the handshake's path
                current = self.paths.start(address, validated=self._first_path_validated)
                if self.tracer is not None and not self.tracer.connection_started(address, now):
                    self.tracer = None
            on_current = address == current.address or address_key(address) == current.key
            if local is not None and self.is_client:  # at an address it left (§9.3.3, §8.2.2)
                via = left_local(self, address, local)
                on_current = on_current and via is None
            elif self.preferred is not None:  # §9.6: which of our addresses it reached counts
                via, on_current = self.preferred.locate(current, address, local, on_current)
            if state is CLOSING or state is DRAINING:
                closing = self.closing
                if closing is not None and on_current:
                    # §10.2.1: only the peer's address, at a falling rate, within the 3x limit.
                    current.bytes_received += len(data)
                    closing.on_packet_received()
                return
        if not data or (self.is_client and not on_current and not self.paths.get(address)):
            return  # §9, §9.6: a client discards packets from an unknown server address
        if self.is_client and data[0] & 0x80 and data[1:5] == b"\x00\x00\x00\x00":
            on_version_negotiation(self, data, now)
            return
        self.datagram_authenticated = False
        self.datagram_address, self.datagram_local = address, via
        try:
            if data[0] & 0x80:
                self.receiver.receive_packets(data, address, now, ecn & 3)
            else:  # one 1-RTT packet: the common case
                self.receiver.receive_short(data, 0, address, now, ecn & 3)
        except Exception as exc:  # closes this connection, never its server
            close_on_error(self, exc)
        if self.datagram_authenticated:  # §8: what earns a path its 3x budget
            traffic = self.traffic
            traffic.datagrams_received += 1
            traffic.bytes_received += len(data)
            if on_current:
                current.bytes_received += len(data)
            else:
                path = self.paths.on_authenticated(address, len(data), via)
                if via is not None and self.preferred is not None:
                    self.preferred.on_arrival(self, path, now)

    def on_peer_address_changed(self, old_address: Address, new_address: Address) -> None:
        """Packets now go to ``new_address`` (migration, or a fall back): tell the application."""
        self.event_queue.append(PeerAddressChanged(old_address, new_address))

    def end_by_stateless_reset(self) -> None:
        """RFC 9000 §10.3.1: the datagram ended with a reset token the peer gave us."""
        self.terminate(0, None, "stateless reset", by_peer=True, stateless_reset=True)

    @property
    def offered_version(self) -> int:
        """The version the client offered first (maybe one it does not speak, §6)."""
        return self.negotiation.offered

    @property
    def version_probing(self) -> bool:
        """A client still probes in an offered version it does not speak, waiting for
        Version Negotiation (RFC 9000 §6)."""
        return self.negotiation.probing

    # Keys: quicnet.quic.crypto_streams (send_key, recv_key, install_initial_keys) ----------
    @property
    def can_send(self) -> bool:
        """Not draining and not terminated: packets may still go out (§10.2)."""
        state = self.state
        return state is not TERMINATED and state is not DRAINING

    # The handshake ------------------------------------------------------------------------------
    def drain_tls(self, now: float) -> None:
        """Act on what TLS produced (keys, completion, tickets, CRYPTO data)."""
        self.handshake.drain(now)

    def on_handshake_complete(self, alpn_protocol: str | None) -> None:
        """RFC 9001 §4.1.1: TLS completed the handshake; the connection is CONNECTED."""
        self.handshake_complete = True
        self.alpn_protocol = alpn_protocol
        self.state = CONNECTED
        if self.tracer is not None:
            self.tracer.handshake_completed(alpn_protocol, None)

    def confirm_handshake(self) -> None:
        """RFC 9001 §4.1.2: the handshake is confirmed."""
        self.handshake.confirm()

    def discard_epoch(self, epoch: Epoch) -> None:
        """RFC 9001 §4.9: drop keys and recovery state of a finished epoch."""
        self.handshake.discard_epoch(epoch)

    # Closing (quicnet.quic.closing) ------------------------------------------------------
    def enter_draining(
        self, error_code: int, frame_type: int | None, reason: str, application: bool, now: float
    ) -> None:
        """§10.2.2: the peer sent CONNECTION_CLOSE; wait out the draining period."""
        begin_draining(self, error_code, frame_type, reason, application, now)

    def terminate(
        self,
        error_code: int,
        frame_type: int | None,
        reason: str,
        *,
        by_peer: bool,
        stateless_reset: bool = False,
        now: float | None = None,
    ) -> None:
        """End now, silently (:func:`quicnet.quic.closing.end_connection`)."""
        end_connection(
            self,
            error_code,
            frame_type,
            reason,
            by_peer=by_peer,
            stateless_reset=stateless_reset,
            now=now,
        )

    # Timers ---------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` must run, or None."""
        if self.state is TERMINATED:
            return None
        return self.timers.next_timer()

    def handle_timer(self, now: float) -> None:
        """Run whatever timer is due at ``now`` (loss, probe, ACK delay, idle, paths, ...)."""
        if self.state is not TERMINATED:
            self.timers.handle_timer(now)

    def start_idle_timer(self, now: float, *, half_open_timeout: float | None = None) -> None:
        """Arm the idle and handshake timers from ``now`` (a server, its first datagram).

        With ``half_open_timeout`` a server connection whose client has not proved
        its address by then (no Handshake packet yet) is dropped sooner than the
        handshake timeout: a spoofed Initial holds its slot only that long.
        """
        self.deadlines.start(
            now, half_open_timeout=None if self.address_validated else half_open_timeout
        )

    def new_controller(self) -> CongestionController:
        """A fresh congestion controller of the configured kind (a new path, a restart)."""
        return self.configuration.new_congestion_controller(1200)
