"""The real-time client's sans-I/O core: one QUIC connection and its session.

:class:`ClientCore` has the sans-I/O interface of a QUIC connection
(``receive_datagram``, ``datagrams_to_send``, ``next_timer``,
``handle_timer``), so the drivers in :mod:`quicnet.io` run it; and the
application's: ``send``, ``stats``, ``close``, events.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from typing import Any

from quicnet.crypto import Certificate
from quicnet.quic import (
    Address,
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    SessionTicketReceived,
)
from quicnet.quic.states import TERMINATED
from quicnet.realtime.errors import RealtimeUsageError
from quicnet.realtime.events import DisconnectReason, RealtimeEvent
from quicnet.realtime.session import Session
from quicnet.realtime.settings import Settings
from quicnet.realtime.stats import PeerStats, peer_stats
from quicnet.realtime.wire import ALPN, MAX_TOKEN, CloseCode
from quicnet.tls import DecodeError, SessionTicket

__all__ = ["ClientCore", "client_configuration", "parse_pin", "parse_session"]


def parse_pin(pin: bytes | str) -> bytes:
    """A certificate fingerprint to pin: 32 raw bytes (``identity.fingerprint``) or hex
    text, with or without colons (``AB:CD:...``, as ``identity.fingerprint_text``)."""
    if isinstance(pin, str):
        try:
            pin = bytes.fromhex(pin.replace(":", "").strip())
        except ValueError:
            raise RealtimeUsageError(f"pin {pin!r} is not hexadecimal") from None
    if len(pin) != 32:
        raise RealtimeUsageError(f"a pin is a 32-byte SHA-256 fingerprint, not {len(pin)} bytes")
    return bytes(pin)


def parse_session(session: SessionTicket | bytes | None) -> SessionTicket | None:
    """A saved session: a :class:`~quicnet.tls.SessionTicket`, or its ``to_bytes()``
    (RealtimeUsageError if those bytes are not one)."""
    if session is None or isinstance(session, SessionTicket):
        return session
    try:
        return SessionTicket.from_bytes(bytes(session))
    except DecodeError as exc:
        raise RealtimeUsageError(f"session= is not a saved session: {exc}") from None


def client_configuration(
    host: str,
    settings: Settings,
    *,
    pin: bytes | str | Sequence[bytes | str] | None = None,
    server_name: str | None = None,
    trust_roots: Sequence[Certificate] = (),
    insecure_skip_verify: bool = False,
    session: SessionTicket | bytes | None = None,
    qlog: str | os.PathLike[str] | None = None,
    **quic: Any,
) -> QuicConfiguration:
    """The QUIC configuration of a real-time client.

    The server is verified: by ``pin`` (its certificate's SHA-256 fingerprint,
    or several), or by its chain to ``trust_roots`` and its name
    (``server_name``, else ``host``). ``insecure_skip_verify=True`` is the only
    way to skip that, and says so.

    ``session`` (a ticket an earlier session received, or its bytes) resumes
    that session: no certificate is sent again, the ticket's key stands for
    the check made then (RFC 8446 §2.2), and, when ``settings.early_data``
    and the ticket allow, the HELLO and the first messages go in 0-RTT. A
    ticket that no longer fits (expired, another server name) is not offered
    and the handshake is a full one. ``qlog`` is a directory for one qlog
    trace per connection (default: the ``QLOGDIR`` environment variable).
    """
    pins: list[bytes] = []
    if isinstance(pin, bytes | str):
        pins = [parse_pin(pin)]
    elif pin is not None:
        pins = [parse_pin(p) for p in pin]
    if not (pins or trust_roots or insecure_skip_verify):
        raise RealtimeUsageError(
            "the server cannot be verified: give pin= (its certificate's fingerprint), "
            "cafile= or trust_roots=, or insecure_skip_verify=True"
        )
    if qlog is not None:
        quic.setdefault("qlog_dir", os.fspath(qlog))
    quic.setdefault("enable_early_data", settings.early_data)
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=(ALPN,),
        server_name=server_name or host,
        trust_roots=trust_roots,
        pinned_fingerprints=pins,
        insecure_skip_verify=insecure_skip_verify,
        idle_timeout=settings.idle_timeout,
        keepalive_interval=settings.keepalive_interval,
        key_update_packets=settings.key_update_packets,
        key_update_interval=settings.key_update_interval,
        initial_max_streams_uni=settings.max_streams,
        initial_max_streams_bidi=0,  # the server opens no bidirectional stream
        max_datagram_frame_size=65535,
        session_ticket=parse_session(session),
        datagram_ack_events=False,  # the real-time layer reports no per-datagram fate
        **{"handshake_timeout": settings.handshake_timeout, **quic},
    )


class ClientCore:
    """One session with a real-time server."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        address: Address,
        settings: Settings,
        now: float,
        *,
        token: bytes = b"",
    ) -> None:
        if len(token) > MAX_TOKEN:
            raise RealtimeUsageError(f"a connect token is at most {MAX_TOKEN} bytes")
        self.settings = settings
        self._events: deque[RealtimeEvent] = deque()
        self.connection = QuicConnection(configuration)
        self.session = Session(
            self.connection, 0, settings, self._events, is_client=True, token=token
        )
        #: The latest session ticket the server sent on this connection (None until one
        #: came): pass it (or its ``to_bytes()``) as ``session=`` to resume.
        self.session_ticket: SessionTicket | None = None
        #: Whether the server accepted our 0-RTT (None until the handshake completes).
        self.early_data_accepted: bool | None = None
        #: Whether the handshake resumed a saved session (None until it completes).
        self.resumed: bool | None = None
        self._welcome_by: float | None = None  # the server's WELCOME is due by then
        self.connection.connect(address, now)
        if self.connection.can_send_early_data:
            # RFC 9001 §4.6.1: 0-RTT keys from the ticket: the HELLO and what was
            # sent so far go in 0-RTT packets with the ClientHello.
            self.session.start_early()

    @property
    def early_data(self) -> bool:
        """This connection offered 0-RTT (a saved session that allows it)."""
        return self.session.early

    # The sans-I/O interface ----------------------------------------------------------------
    def receive_datagram(
        self, data: bytes, address: Address, now: float, ecn: int = 0, local: Address | None = None
    ) -> None:
        """One UDP datagram from ``address`` (``ecn``: its IP ECN codepoint, RFC 9000 §13.4;
        ``local``: an address the client left and still reads, ``QuicConnection.migrate``)."""
        self.connection.receive_datagram(data, address, now, ecn, local)
        self._drain(now)

    @property
    def ecn(self) -> bool:
        """The configuration asks for ECN: a driver reads the marks and applies them."""
        return self.connection.configuration.ecn

    @property
    def ecn_marked(self) -> int:
        """How many of the datagrams the last :meth:`datagrams_to_send` returned go out
        ECT(0) (the first ones)."""
        return self.connection.ecn_marked

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """Every datagram ready to go now."""
        session = self.session
        if session.waiting:
            session.pump()
        return self.connection.datagrams_to_send(now)

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next, or None."""
        when = self.connection.next_timer()
        welcome_by = self._welcome_by
        if welcome_by is not None and self.session.admitted:
            welcome_by = self._welcome_by = None
        if welcome_by is not None and (when is None or welcome_by < when):
            return welcome_by
        return when

    def handle_timer(self, now: float) -> None:
        """Run what is due."""
        self.connection.handle_timer(now)
        self._drain(now)
        welcome_by = self._welcome_by
        if welcome_by is not None and now >= welcome_by:
            self._welcome_by = None
            if not self.session.admitted and not self.session.ended:
                self.session.close(
                    CloseCode.CLOSED, "no WELCOME", DisconnectReason.CONNECTION_FAILED
                )

    def next_event(self) -> RealtimeEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def _drain(self, now: float) -> None:
        conn = self.connection
        session = self.session
        while (event := conn.next_event()) is not None:
            kind = type(event)
            if kind is SessionTicketReceived:
                assert isinstance(event, SessionTicketReceived)
                self.session_ticket = event.ticket
                continue
            if kind is HandshakeCompleted:
                assert isinstance(event, HandshakeCompleted)
                self.resumed = event.session_resumed
                self.early_data_accepted = event.early_data_accepted
                self._welcome_by = now + self.settings.hello_timeout
            session.on_event(event, now)
        if conn.state is TERMINATED:
            conn.dispose()  # freed by reference counting once the application lets go

    # The application's interface -------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """The server admitted us and the session has not ended."""
        return self.session.admitted and not self.session.ended

    @property
    def ended(self) -> bool:
        """The session has ended (Disconnected was reported)."""
        return self.session.ended

    @property
    def client_id(self) -> int | None:
        """The id the server gave us (None until Connected)."""
        return self.session.client_id

    def send(self, channel: int, data: bytes) -> None:
        """Send ``data`` on ``channel``; before the session is up it waits and goes then."""
        self.session.send(channel, data)

    def stats(self) -> PeerStats:
        """The session's figures now: RTT, jitter, loss, traffic, congestion window."""
        return peer_stats(self.session)

    def close(self, reason: str = "closed") -> None:
        """End the session (CONNECTION_CLOSE with CLOSED); the server sees ``reason``."""
        if not self.session.ended:
            self.session.close(CloseCode.CLOSED, reason, DisconnectReason.CLOSED)
