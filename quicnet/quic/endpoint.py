"""The server endpoint: one socket's worth of connections (RFC 9000 §5.2, §6, §8, §10.3).

It owns no socket. It parses only the version-independent invariants of each
datagram (RFC 8999), routes by destination connection ID to a connection,
accepts new connections on Initial packets of at least 1200 bytes, answers
unknown versions with Version Negotiation and unknown short-header CIDs with
stateless resets, can demand address validation with Retry, and caps
connections and handshakes in progress. Closed connections are reaped.

After each handshake it gives the client a NEW_TOKEN token (RFC 9000 §8.1.3):
a client that comes back with it has its address validated at once, and is
not sent a Retry.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass, replace

from quicnet.crypto import DecryptError, HmacKey, random_bytes
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import QuicConnection
from quicnet.quic.errors import QuicUsageError, TransportError
from quicnet.quic.events import Address, QuicEvent
from quicnet.quic.packets import (
    MIN_INITIAL_DATAGRAM,
    LongHeader,
    PacketType,
    build_retry,
    build_version_negotiation,
    decode_packet_number,
    parse_invariant_header,
    parse_long_header,
)
from quicnet.quic.protection import PacketKey, initial_keys
from quicnet.quic.receiver import OpenedInitial
from quicnet.quic.sender import MAX_DATAGRAMS_PER_CALL
from quicnet.quic.states import CONNECTED, HANDSHAKE, TERMINATED
from quicnet.quic.tokens import NEW_TOKEN_KIND, AddressTokenManager, RetryTokenManager
from quicnet.quic.versions import VERSION_PARAMS

__all__ = ["EndpointStats", "QuicEndpoint"]

_log = logging.getLogger("quicnet.quic")

#: Smallest stateless reset we send (RFC 9000 §10.3: at least 21 bytes to look like a packet).
MIN_STATELESS_RESET = 21


@dataclass
class EndpointStats:
    """What an endpoint did with datagrams and connections: counters for tests and metrics."""

    datagrams_received: int = 0
    datagrams_dropped: int = 0
    version_negotiations_sent: int = 0
    retries_sent: int = 0
    #: NEW_TOKEN tokens given to clients, and how many came back valid (RFC 9000 §8.1.3).
    new_tokens_sent: int = 0
    new_tokens_accepted: int = 0
    stateless_resets_sent: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    #: Connections visited by datagrams_to_send, next_timer and handle_timer together:
    #: it grows with the connections that had something to do, never with idle ones.
    connections_visited: int = 0


class QuicEndpoint:
    """A QUIC server endpoint (sans-I/O)."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        *,
        stateless_reset_key: bytes | None = None,
        require_retry: bool = False,
        retry_secret: bytes | None = None,
        max_connections: int = 10_000,
        max_handshakes: int = 1_000,
        retry_threshold: int | None = None,
        half_open_timeout: float | None = 3.0,
        max_stateless_resets_per_second: int = 100,
        address_token_secret: bytes | None = None,
        address_token_lifetime: float = 86400.0,
        send_address_tokens: bool = True,
    ) -> None:
        if configuration.is_client:
            raise QuicUsageError("an endpoint serves: give it a server configuration")
        self.configuration = configuration
        #: Persist this to reset connections of a previous run after a restart.
        self.stateless_reset_key = stateless_reset_key or random_bytes(32)
        #: ``stateless_reset_key`` keyed once (``reset_token`` runs for every CID issued),
        #: and the key it was keyed with.
        self._reset_mac = (self.stateless_reset_key, HmacKey("sha256", self.stateless_reset_key))
        self.require_retry = require_retry
        self._tokens = RetryTokenManager(retry_secret)
        #: NEW_TOKEN tokens (§8.1.3), dated by the configuration's wall clock; keep
        #: ``address_token_secret`` across restarts and returning clients skip Retry.
        self.address_tokens = AddressTokenManager(address_token_secret, address_token_lifetime)
        self.send_address_tokens = send_address_tokens
        self.max_connections = max_connections
        self.max_handshakes = max_handshakes
        #: With this many handshakes in progress, new clients must first answer a Retry
        #: (require_retry: always). Spoofed Initials then cannot hold handshake slots.
        self.retry_threshold = (
            0
            if require_retry
            else max(1, max_handshakes // 4)
            if retry_threshold is None
            else retry_threshold
        )
        #: A handshake whose client has not proved its address (no Handshake packet, no
        #: Retry token) within this many seconds is dropped; its client, if real, is
        #: still sending Initials to the same CID and simply starts a fresh one.
        self.half_open_timeout = half_open_timeout
        self._reset_budget = max_stateless_resets_per_second
        self._reset_tokens = float(max_stateless_resets_per_second)
        self._reset_refill_at = 0.0
        self.connections: dict[bytes, QuicConnection] = {}  # every routable CID -> connection
        self._cids_of: dict[QuicConnection, list[bytes]] = {}
        self._all: set[QuicConnection] = set()
        self._handshaking: set[QuicConnection] = set()
        # The work per wakeup follows the connections that have something to do:
        # those that may have datagrams to send, and a heap of timers (stale entries,
        # whose time is no longer the connection's, are skipped when they surface).
        self._send_ready: dict[QuicConnection, None] = {}
        #: Connections that received or ran a timer with nothing to send: only their
        #: timers changed, and next_timer puts them on the heap.
        self._timer_changed: dict[QuicConnection, None] = {}
        self._timers: list[tuple[float, int, QuicConnection]] = []
        self._timers_limit = 64  # rebuilt (stale entries dropped) beyond this size
        self._timer_of: dict[QuicConnection, float] = {}
        self._timer_seq = itertools.count()
        self._outgoing: deque[tuple[bytes, Address]] = deque()
        #: Datagrams that leave from a preferred address (RFC 9000 §9.6): (data, to, from, ecn).
        self._routed: list[tuple[bytes, Address, Address, int]] = []
        #: How many of the last ``datagrams_to_send``'s datagrams (the first ones) go out
        #: ECT(0) (RFC 9000 §13.4): the driver marks them, and not the rest.
        self.ecn_marked = 0
        #: Connections with events waiting, oldest first. Events stay in their connection
        #: until the application takes them, so stream credit follows what it consumes.
        # (A deque and a set: taking from the front of a dict slows down as the deleted
        # entries it must step over pile up.)
        self._event_ready: deque[QuicConnection] = deque()
        self._event_ready_set: set[QuicConnection] = set()
        self.stats = EndpointStats()

    def reset_token(self, cid: bytes) -> bytes:
        """The stateless reset token for one of our CIDs (a keyed hash: survives restarts)."""
        key, mac = self._reset_mac
        if key is not self.stateless_reset_key:  # the attribute was set since
            key = self.stateless_reset_key
            mac = HmacKey("sha256", key)
            self._reset_mac = (key, mac)
        return mac.digest(b"quicnet reset" + cid)[:16]

    # Datagrams in ---------------------------------------------------------------------
    def receive_datagram(
        self, data: bytes, address: Address, now: float, ecn: int = 0, local: Address | None = None
    ) -> None:
        """Route one UDP datagram by its destination CID (RFC 8999): to its connection, to a
        new one (a client's first Initial), or answer it with Version Negotiation, a Retry
        or a stateless reset; anything else is dropped. ``ecn``: its IP ECN codepoint;
        ``local``: the preferred address it reached (RFC 9000 §9.6), None for the default.
        At a preferred address no connection starts (no Version Negotiation or Retry
        either); an unknown short-header CID gets its stateless reset from there."""
        self.stats.datagrams_received += 1
        cid_length = self.configuration.connection_id_length
        if data and not data[0] & 0x80:  # a short header (RFC 8999 §5.2): the common case
            conn = self.connections.get(data[1 : 1 + cid_length])
            if conn is not None:
                conn.receive_datagram(data, address, now, ecn, local)
                self._after(conn)
                return
        try:
            header = parse_invariant_header(data, cid_length)
        except TransportError:
            self.stats.datagrams_dropped += 1
            return
        conn = self.connections.get(header.destination_cid)
        if conn is not None:
            conn.receive_datagram(data, address, now, ecn, local)
            self._after(conn)
            return
        if not header.is_long:  # a reset leaves from where its trigger arrived
            self._maybe_stateless_reset(data, header.destination_cid, address, now, local)
            return
        if local is not None:
            self.stats.datagrams_dropped += 1  # §9.6: connections start at the main address
            return
        version = header.version
        assert version is not None
        if version not in self.configuration.supported_versions or version not in VERSION_PARAMS:
            if version != 0 and len(data) >= MIN_INITIAL_DATAGRAM:
                self._send_version_negotiation(
                    header.source_cid or b"", header.destination_cid, address, version
                )
            else:
                self.stats.datagrams_dropped += 1
            return
        self._maybe_accept(data, address, version, now, ecn)

    def _maybe_accept(
        self, data: bytes, address: Address, version: int, now: float, ecn: int
    ) -> None:
        try:
            long = parse_long_header(data)
        except TransportError:
            self.stats.datagrams_dropped += 1
            return
        # §14.1: only an Initial in a full-size datagram may open a connection.
        if long.packet_type != PacketType.INITIAL or len(data) < MIN_INITIAL_DATAGRAM:
            self.stats.datagrams_dropped += 1
            return
        if len(long.destination_cid) < 8:  # §7.2: the client's first DCID is at least 8 bytes
            self.stats.datagrams_dropped += 1
            return
        original_dcid = long.destination_cid
        retry_scid: bytes | None = None
        validated = False
        if long.token and long.token[0] == NEW_TOKEN_KIND:
            # §8.1.3: an invalid one counts as no token (the client may get a Retry).
            validated = self.address_tokens.validate(
                long.token, address, self.configuration.wall_clock(), version
            )
            self.stats.new_tokens_accepted += validated
        elif long.token:
            token = self._tokens.validate(long.token, address, now)
            if token is None or token.retry_source_cid != long.destination_cid:
                self.stats.datagrams_dropped += 1  # forged, stale or replayed elsewhere
                return
            original_dcid, retry_scid, validated = (
                token.original_destination_cid,
                token.retry_source_cid,
                True,
            )
        opened = _open_client_initial(data, long)
        if opened is None:
            # Forged or corrupted: decrypt before building anything (RFC 9001 §5.2 keys
            # are public, but a packet that does not open costs one AEAD call, no state).
            self.stats.datagrams_dropped += 1
            return
        handshaking = len(self._handshaking)
        if not validated and handshaking >= self.retry_threshold:
            # Under load, prove the address first: spoofed Initials never come back.
            self._send_retry(long.source_cid, long.destination_cid, version, address, now)
            return
        if len(self._all) >= self.max_connections or handshaking >= self.max_handshakes:
            self.stats.connections_refused += 1
            return
        config = self.configuration
        if config.version != version:
            config = replace(config, version=version)
        conn = QuicConnection(
            config,
            original_destination_cid=original_dcid,
            retry_source_cid=retry_scid,
            reset_token_for=self.reset_token,
            peer_address_validated=validated,
            initial_keys=(opened[0], opened[1]),
        )
        self._all.add(conn)
        self._handshaking.add(conn)
        self._cids_of[conn] = []
        self._route(conn, conn.host_cid)
        self._route(conn, long.destination_cid)  # until the client switches to ours
        conn.wake = self._wake
        conn.start_idle_timer(now, half_open_timeout=self.half_open_timeout)
        # The first Initial is not opened a second time (the receiver takes it as opened).
        conn.receiver.opened_first = opened[2]
        try:
            conn.receive_datagram(data, address, now, ecn)
        finally:
            conn.receiver.opened_first = None
        self.stats.connections_accepted += 1
        self._after(conn)

    def _send_version_negotiation(
        self, client_scid: bytes, client_dcid: bytes, address: Address, client_version: int
    ) -> None:
        # §6.3: a reserved version, never the one the client just tried.
        grease = (int.from_bytes(random_bytes(4), "big") & 0xF0F0F0F0) | 0x0A0A0A0A
        if grease == client_version:
            grease ^= 0x10000000
        versions = [grease, *self.configuration.supported_versions]
        unused = random_bytes(1)[0]
        self._outgoing.append(
            (build_version_negotiation(client_scid, client_dcid, versions, unused), address)
        )
        self.stats.version_negotiations_sent += 1

    def _send_retry(
        self, client_scid: bytes, client_dcid: bytes, version: int, address: Address, now: float
    ) -> None:
        new_scid = random_bytes(self.configuration.connection_id_length)
        token = self._tokens.create(address, client_dcid, new_scid, now)
        self._outgoing.append(
            (build_retry(version, client_scid, new_scid, client_dcid, token), address)
        )
        self.stats.retries_sent += 1

    def _maybe_stateless_reset(
        self, data: bytes, dcid: bytes, address: Address, now: float, local: Address | None
    ) -> None:
        """§10.3: a reset is always shorter than its trigger, never below 21 bytes, rate-limited."""
        size = min(len(data) - 1, 43)
        if size < MIN_STATELESS_RESET or not dcid:
            self.stats.datagrams_dropped += 1
            return
        elapsed = now - self._reset_refill_at
        self._reset_refill_at = now
        self._reset_tokens = min(
            float(self._reset_budget), self._reset_tokens + elapsed * self._reset_budget
        )
        if self._reset_tokens < 1:
            self.stats.datagrams_dropped += 1
            return
        self._reset_tokens -= 1
        filler = bytearray(random_bytes(size - 16))
        filler[0] = 0x40 | (filler[0] & 0x3F)  # looks like a short header
        reset = bytes(filler) + self.reset_token(dcid)
        config = self.configuration
        if local is None or not (config.preferred_address_v4 or config.preferred_address_v6):
            self._outgoing.append((reset, address))
        else:  # at a preferred address (RFC 9000 §9.6): the reset goes from there
            self._routed.append((reset, address, local, 0))
        self.stats.stateless_resets_sent += 1

    # Bookkeeping --------------------------------------------------------------------------
    def _route(self, conn: QuicConnection, cid: bytes) -> None:
        self.connections[cid] = conn
        self._cids_of[conn].append(cid)

    def _wake(self, conn: QuicConnection) -> None:
        """The application gave ``conn`` something to send (or to acknowledge)."""
        self._send_ready[conn] = None
        self._timer_changed.pop(conn, None)  # scheduled when it has sent

    def _after(self, conn: QuicConnection) -> None:
        """Bookkeeping after a connection did something: routes, events, timer, sending."""
        changes = conn.cids.routing_changes
        if changes:
            for cid, added in changes:
                if added:
                    self._route(conn, cid)
                elif self.connections.get(cid) is conn:
                    del self.connections[cid]
                    self._cids_of[conn].remove(cid)
            conn.cids.routing_changes = ()
        state = conn.state
        if state is not HANDSHAKE and conn in self._handshaking:
            # (The client's first DCID keeps routing to the connection: a late copy of
            # its first Initial must not open a second one.)
            self._handshaking.discard(conn)
            address = conn.peer_address
            if state is CONNECTED and self.send_address_tokens and address:
                # §8.1.3: a token for the client's next connection, after the handshake.
                wall_now = self.configuration.wall_clock()
                # RFC 9369 §5: for the negotiated version, after compatible negotiation.
                token = self.address_tokens.create(address, wall_now, conn.version)
                conn.pending.queue_new_token(token)
                self.stats.new_tokens_sent += 1
        if conn.event_queue and conn not in self._event_ready_set:
            self._event_ready_set.add(conn)
            self._event_ready.append(conn)
        if state is TERMINATED:
            self._reap(conn)
            return
        # Its timer is put on the heap when it has sent (or in next_timer, whichever
        # comes first): sending changes the timers anyway. One with nothing to send
        # (an input to answer, an ACK to delay) is not visited by datagrams_to_send.
        if conn.sender.nothing_to_send():
            self._timer_changed[conn] = None
        else:
            self._send_ready[conn] = None
            self._timer_changed.pop(conn, None)

    def _schedule(self, conn: QuicConnection) -> None:
        """Put the connection's next timer on the heap (if it changed)."""
        # (QuicConnection.next_timer without its call: it asks only a live connection)
        when = None if conn.state is TERMINATED else conn.timers.next_timer()
        if when is None:
            self._timer_of.pop(conn, None)
        elif self._timer_of.get(conn) != when:
            self._timer_of[conn] = when
            heapq.heappush(self._timers, (when, next(self._timer_seq), conn))
            if len(self._timers) > self._timers_limit:  # mostly stale entries
                self._rebuild_timers()

    def _rebuild_timers(self) -> None:
        """Rebuild the heap from the live deadlines only (stale entries pile up as timers
        move); the next rebuild comes when the heap is four times as large again."""
        timer_of = self._timer_of
        self._timers = [(t, next(self._timer_seq), c) for c, t in timer_of.items()]
        heapq.heapify(self._timers)
        self._timers_limit = 4 * len(timer_of) + 64

    def _fail(self, conn: QuicConnection) -> None:
        _log.exception("internal error in a connection; dropping it")
        conn.abort("internal error")
        self._after(conn)
        self._reap(conn)

    def _reap(self, conn: QuicConnection) -> None:
        if conn.state is TERMINATED:  # freed by reference counting once the app lets go
            conn.dispose()
        self._all.discard(conn)
        self._handshaking.discard(conn)
        self._send_ready.pop(conn, None)
        self._timer_changed.pop(conn, None)
        self._timer_of.pop(conn, None)
        for cid in self._cids_of.pop(conn, ()):
            if self.connections.get(cid) is conn:
                del self.connections[cid]

    # Datagrams out, timers, events --------------------------------------------------------------
    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now: each busy connection's, those to mark ECT(0)
        first (``ecn_marked`` says how many), then the rest and the endpoint's own."""
        if not self._send_ready and not self._outgoing:  # a poll with nothing to send
            self.ecn_marked = 0
            return []
        out: list[tuple[bytes, Address]] = []
        outgoing = self._outgoing
        plain: list[tuple[bytes, Address]] = []
        if outgoing:  # (the endpoint's own: Version Negotiation, Retry, resets)
            plain += outgoing
            outgoing.clear()
        ready, self._send_ready = self._send_ready, {}
        self.stats.connections_visited += len(ready)
        for conn in ready:
            try:
                datagrams = conn.datagrams_to_send(now)
            except Exception:  # a bug in one connection never stops the others
                self._fail(conn)
                continue
            if conn.ecn_marked:
                out += datagrams
            else:
                plain += datagrams
            sent = len(datagrams)
            if conn.paths.routed:
                routed = conn.routed_datagrams()
                self._routed += routed
                sent += len(routed)
            if conn.state is TERMINATED:
                self._after(conn)
                continue
            if sent >= MAX_DATAGRAMS_PER_CALL:
                self._send_ready[conn] = None  # more where these came from
            self._schedule(conn)
        self.ecn_marked = len(out)
        if plain:
            out += plain
        return out

    def routed_datagrams(self) -> list[tuple[bytes, Address, Address, int]]:
        """Take the datagrams the last :meth:`datagrams_to_send` left out because they go
        from a preferred address (RFC 9000 §9.6): ``(data, to, from, ecn)``, ``ecn`` the
        codepoint to send with (2, ECT(0), or 0); empty unless the configuration offers
        one."""
        out, self._routed = self._routed, []
        return out

    def next_timer(self) -> float | None:
        """The earliest deadline of any connection (stale heap entries are dropped)."""
        for conn in self._send_ready:  # fed but not sent yet: their timers changed
            self._schedule(conn)
        if self._timer_changed:
            for conn in self._timer_changed:
                self._schedule(conn)
            self._timer_changed.clear()
        timers, timer_of = self._timers, self._timer_of
        while timers:
            when, _, conn = timers[0]
            if timer_of.get(conn) == when:
                return when
            heapq.heappop(timers)
        return None

    def handle_timer(self, now: float) -> None:
        """Run the timers that are due, and only those."""
        timers, timer_of = self._timers, self._timer_of
        due = []
        while timers and timers[0][0] <= now:
            when, _, conn = heapq.heappop(timers)
            if timer_of.get(conn) == when:
                del timer_of[conn]
                due.append(conn)
        # Each once: a connection may ask for the same instant again (it sends first).
        self.stats.connections_visited += len(due)
        for conn in due:
            try:
                conn.handle_timer(now)
            except Exception:  # a bug in one connection never stops the others
                self._fail(conn)
                continue
            self._after(conn)

    def next_event(self) -> tuple[QuicConnection, QuicEvent] | None:
        """The next ``(connection, event)``: a connection's events in order, connections
        in the order they had something to say."""
        ready = self._event_ready
        while ready:
            conn = ready[0]
            if conn.event_queue:  # (read first: no call for the empty answer)
                event = conn.next_event()
                if event is not None:
                    return conn, event
            ready.popleft()
            self._event_ready_set.discard(conn)
        return None

    def take_events(self) -> list[tuple[QuicConnection, QuicEvent]]:
        """Every waiting ``(connection, event)`` at once, in :meth:`next_event`'s order
        and taken as it takes them (what a driver that returns a poll's events does)."""
        out: list[tuple[QuicConnection, QuicEvent]] = []
        ready = self._event_ready
        while ready:
            conn = ready.popleft()
            self._event_ready_set.discard(conn)
            while conn.event_queue:
                event = conn.next_event()
                if event is not None:
                    out.append((conn, event))
        return out

    def close(self, error_code: int = 0, reason: str = "server shutting down") -> None:
        """Close every connection (each sends CONNECTION_CLOSE on the next send)."""
        for conn in list(self._all):
            conn.close(error_code, reason)
            self._after(conn)


def _open_client_initial(
    datagram: bytes, header: LongHeader
) -> tuple[PacketKey, PacketKey, OpenedInitial] | None:
    """The server's Initial keys if the client's first packet authenticates under them,
    with the opened packet (which the new connection then takes as it is)."""
    send, recv = initial_keys(header.version, header.destination_cid, is_client=False)
    packet = datagram[: header.end]
    offset = header.pn_offset
    try:
        first, truncated, pn_len = recv.unprotect_header(packet, offset)
        pn = decode_packet_number(truncated, pn_len, -1)
        aad = bytes((first,)) + packet[1:offset] + truncated.to_bytes(pn_len, "big")
        payload = recv.open(aad, packet[offset + pn_len :], pn)
    except DecryptError:
        return None
    return send, recv, (datagram, recv, header, first, pn, payload)
