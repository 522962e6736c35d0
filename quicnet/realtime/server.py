"""The real-time server's sans-I/O core: a QUIC endpoint, its sessions, and the peers.

:class:`ServerCore` has the sans-I/O interface of a QUIC endpoint
(``receive_datagram``, ``datagrams_to_send``, ``next_timer``,
``handle_timer``), so the drivers in :mod:`quicnet.io` run it; and the
application's: ``send``, ``broadcast``, ``disconnect``, ``stats``, events.
"""

from __future__ import annotations

import heapq
import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from quicnet.crypto import Certificate, PrivateKey
from quicnet.quic import (
    AckFrequencyRequest,
    Address,
    ConnectionState,
    QuicConfiguration,
    QuicConnection,
    QuicEndpoint,
)
from quicnet.realtime.errors import UnknownPeerError
from quicnet.realtime.events import DisconnectReason, RealtimeEvent
from quicnet.realtime.session import Session
from quicnet.realtime.settings import Settings
from quicnet.realtime.stats import PeerStats, peer_stats
from quicnet.realtime.wire import ALPN, PROTOCOL_VERSION, CloseCode, Hello

__all__ = ["ConnectRequest", "ServerCore", "server_configuration"]


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """What the admission hook sees of a client: the id it would get, where it is, its
    token, and whether its HELLO came in 0-RTT (``early_data``: before the handshake
    completed, so possibly a replay to a server that does not share this one's strike
    register; docs/realtime.md)."""

    peer: int
    address: Address
    token: bytes
    early_data: bool = False


#: The admission hook: True admits; False refuses ("refused"); a string refuses with it.
AcceptHook = Callable[[ConnectRequest], bool | str]


def server_configuration(
    certificate_chain: Sequence[Certificate],
    private_key: PrivateKey,
    settings: Settings,
    *,
    qlog: str | os.PathLike[str] | None = None,
    **quic: Any,
) -> QuicConfiguration:
    """The QUIC configuration of a real-time server (ALPN, limits, keepalive, key updates,
    0-RTT when ``settings.early_data``); ``qlog`` is a directory for one qlog trace per
    connection (default: the ``QLOGDIR`` environment variable)."""
    if qlog is not None:
        quic.setdefault("qlog_dir", os.fspath(qlog))
    # RFC 9001 §4.6: tickets allow 0-RTT, accepted once per ticket (the configuration's
    # strike register, RFC 8446 §8).
    quic.setdefault("enable_early_data", settings.early_data)
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=(ALPN,),
        certificate_chain=certificate_chain,
        private_key=private_key,
        idle_timeout=settings.idle_timeout,
        keepalive_interval=settings.keepalive_interval,
        key_update_packets=settings.key_update_packets,
        key_update_interval=settings.key_update_interval,
        initial_max_streams_uni=settings.max_streams,
        initial_max_streams_bidi=1,  # the control stream
        max_datagram_frame_size=65535,
        datagram_ack_events=False,  # the real-time layer reports no per-datagram fate
        ack_frequency=(
            None
            if settings.client_ack_delay is None
            else AckFrequencyRequest(settings.client_ack_delay)
        ),
        **{"handshake_timeout": settings.handshake_timeout, **quic},
    )


#: How many ended peers keep their last figures for :meth:`ServerCore.stats`.
_FINAL_STATS_KEPT = 1024


class ServerCore:
    """Sessions over one QUIC endpoint, and the peers it admitted."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        settings: Settings,
        *,
        accept: AcceptHook | None = None,
        **endpoint_options: Any,
    ) -> None:
        self.settings = settings
        self.endpoint = QuicEndpoint(configuration, **endpoint_options)
        self._accept = accept
        self._events: deque[RealtimeEvent] = deque()
        #: The figures of the newest ended peers, oldest first (see :meth:`stats`).
        self._final_stats: dict[int, PeerStats] = {}
        self._sessions: dict[QuicConnection, Session] = {}
        #: Admitted sessions by peer id; ids count up and are never given twice.
        self._peers: dict[int, Session] = {}
        self._next_peer = itertools.count(1)
        #: (deadline, peer, session): sessions that must say HELLO by then.
        self._hello_deadlines: list[tuple[float, int, Session]] = []
        self._waiting: set[Session] = set()  # sessions with a backlog to pump
        #: Ended sessions whose connection still drains (RFC 9000 §10.2.2): dropped once it
        #: terminates, which reports no further event.
        self._draining: set[QuicConnection] = set()

    # The sans-I/O interface ----------------------------------------------------------------
    def receive_datagram(self, data: bytes, address: Address, now: float, ecn: int = 0) -> None:
        """One UDP datagram from ``address`` (``ecn``: its IP ECN codepoint, RFC 9000 §13.4)."""
        self.endpoint.receive_datagram(data, address, now, ecn)
        self._drain(now)

    @property
    def ecn(self) -> bool:
        """The configuration asks for ECN: a driver reads the marks and applies them."""
        return self.endpoint.configuration.ecn

    @property
    def ecn_marked(self) -> int:
        """How many of the datagrams the last :meth:`datagrams_to_send` returned go out
        ECT(0) (the first ones)."""
        return self.endpoint.ecn_marked

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go (what waited for credit goes first, where it can)."""
        if self._waiting:
            for session in list(self._waiting):
                if not session.pump():
                    self._waiting.discard(session)
        return self.endpoint.datagrams_to_send(now)

    def next_timer(self) -> float | None:
        """The earliest deadline: a connection's, or a HELLO that is due."""
        when = self.endpoint.next_timer()
        deadlines = self._hello_deadlines
        while deadlines and deadlines[0][2].hello_received:
            heapq.heappop(deadlines)
        if deadlines and (when is None or deadlines[0][0] < when):
            return deadlines[0][0]
        return when

    def handle_timer(self, now: float) -> None:
        """Run what is due: the connections' timers, and clients late with their HELLO."""
        self.endpoint.handle_timer(now)
        if self._draining:
            for conn in [c for c in self._draining if c.state == ConnectionState.TERMINATED]:
                self._draining.discard(conn)
                self._sessions.pop(conn, None)
        deadlines = self._hello_deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, session = heapq.heappop(deadlines)
            if not session.hello_received and not session.ended:
                session.close(CloseCode.PROTOCOL_ERROR, "no HELLO", DisconnectReason.PROTOCOL_ERROR)
                self._forget(session)
        self._drain(now)

    def next_event(self) -> RealtimeEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def _drain(self, now: float) -> None:
        sessions = self._sessions
        endpoint = self.endpoint
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            session = sessions.get(conn)
            if session is None:
                if conn.termination is not None:
                    continue  # ended before it said anything: nothing to report
                session = Session(
                    conn,
                    next(self._next_peer),
                    self.settings,
                    self._events,
                    is_client=False,
                    admission=self._admit,
                )
                sessions[conn] = session
                heapq.heappush(
                    self._hello_deadlines,
                    (now + self.settings.hello_timeout, session.peer, session),
                )
            session.on_event(event, now)
            if session.ended:
                self._forget(session)
                if conn.state == ConnectionState.TERMINATED:
                    del sessions[conn]
                    self._draining.discard(conn)
                else:
                    self._draining.add(conn)
            elif session.waiting:
                self._waiting.add(session)

    def _forget(self, session: Session) -> None:
        """The session ended: its peer id no longer names anyone; its last figures stay
        readable with :meth:`stats` (for the newest ended peers)."""
        if self._peers.pop(session.peer, None) is not None:
            final = self._final_stats
            final[session.peer] = peer_stats(session)
            if len(final) > _FINAL_STATS_KEPT:
                del final[next(iter(final))]
        self._waiting.discard(session)

    def _admit(self, session: Session, hello: Hello) -> str | None:
        if hello.version != PROTOCOL_VERSION:
            return f"protocol version {hello.version} is not supported"
        if hello.channels != self.settings.channel_table():
            return "the channel tables differ"
        if self._accept is not None:
            address = session.address or session.connection.peer_address
            assert address is not None
            request = ConnectRequest(session.peer, address, hello.token, session.early)
            verdict = self._accept(request)
            if verdict is not True:
                return verdict if isinstance(verdict, str) and verdict else "refused"
        self._peers[session.peer] = session
        return None

    # The application's interface -------------------------------------------------------------
    @property
    def peers(self) -> list[int]:
        """The ids of the connected (admitted) peers."""
        return list(self._peers)

    def _session(self, peer: int) -> Session:
        session = self._peers.get(peer)
        if session is None or session.ended:
            raise UnknownPeerError(f"no connected peer {peer}")
        return session

    def send(self, peer: int, channel: int, data: bytes) -> None:
        """Send ``data`` to ``peer`` on ``channel`` (UnknownPeerError, UnknownChannelError,
        MessageTooLargeError)."""
        session = self._session(peer)
        session.send(channel, data)
        if session.waiting:
            self._waiting.add(session)

    def broadcast(self, channel: int, data: bytes, *, exclude: int | Iterable[int] = ()) -> None:
        """Send ``data`` on ``channel`` to every connected peer but ``exclude``."""
        skip = {exclude} if isinstance(exclude, int) else set(exclude)
        for peer, session in list(self._peers.items()):
            if peer not in skip and not session.ended:
                session.send(channel, data)
                if session.waiting:
                    self._waiting.add(session)

    def disconnect(self, peer: int, reason: str = "kicked") -> None:
        """End ``peer``'s session with KICKED; it sees ``reason``."""
        session = self._session(peer)
        session.close(CloseCode.KICKED, reason, DisconnectReason.KICKED)
        self._forget(session)

    def stats(self, peer: int) -> PeerStats:
        """``peer``'s figures now: RTT, jitter, loss, traffic, congestion window. For a
        peer that has gone, its figures when its session ended (for the newest
        disconnected peers; older ones raise UnknownPeerError like unknown ones)."""
        session = self._peers.get(peer)
        if session is not None and not session.ended:
            return peer_stats(session)
        final = self._final_stats.get(peer)
        if final is None:
            raise UnknownPeerError(f"no peer {peer}")
        return final

    def address_of(self, peer: int) -> Address:
        """Where ``peer``'s packets come from now."""
        session = self._session(peer)
        address = session.address or session.connection.peer_address
        assert address is not None
        return address

    def close(self, reason: str = "server shutdown") -> None:
        """End every session with SERVER_SHUTDOWN (each sends CONNECTION_CLOSE next)."""
        for session in list(self._sessions.values()):
            if not session.ended:
                session.close(CloseCode.SERVER_SHUTDOWN, reason, DisconnectReason.SERVER_SHUTDOWN)
                self._forget(session)
