"""asyncio driver for QUIC: the same sans-I/O core, on the event loop.

::

    client = await connect("127.0.0.1", 4433, QuicConfiguration(...))
    stream_id = client.connection.create_stream()
    client.send_stream_data(stream_id, b"hello", end_stream=True)
    async for event in client.events():
        ...

Uses uvloop when it is installed and :func:`run` starts the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol

from quicnet.io.udp import (
    MIGRATION_LINGER,
    DatagramSender,
    bound_address,
    deliver_socket_ecn,
    enable_ecn,
    input_poller,
    local_host_for,
    loopback_configuration,
    open_preferred_sockets,
    open_udp_socket,
    read_socket,
    read_socket_ecn,
    send_routed,
)
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import QuicConnection
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.errors import TransportErrorCode
from quicnet.quic.events import Address, ConnectionTerminated, QuicEvent, StreamDataReceived
from quicnet.quic.states import TERMINATED
from quicnet.tls import TLSClient

__all__ = [
    "QuicClient",
    "QuicServer",
    "TransportCore",
    "Transporter",
    "connect",
    "describe_termination",
    "run",
    "serve",
]

_log = logging.getLogger("quicnet.io")

#: The core's clock. Not loop.time(): uvloop's advances in whole milliseconds, so a
#: pacing deadline a few microseconds ahead woke the core over and over at the same
#: "now" (148,000 timer wakeups for 16 MB, against 990 on asyncio's loop).
_clock = time.monotonic


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run`` with uvloop when it is installed."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def describe_termination(event: ConnectionTerminated) -> str:
    """How a connection ended, in words: who closed it, the error code and the reason."""
    if event.stateless_reset:
        return "reset by the peer (stateless reset)"
    if not event.by_peer:
        return event.reason or "closed"
    code = event.error_code
    if event.is_application:
        kind = f"application error 0x{code:x}"
    elif 0x100 <= code <= 0x1FF:  # RFC 9001 §4.8: CRYPTO_ERROR carries a TLS alert
        kind = f"CRYPTO_ERROR 0x{code:x} (TLS alert {code - 0x100})"
    else:
        try:
            kind = f"{TransportErrorCode(code).name} 0x{code:x}"
        except ValueError:
            kind = f"transport error 0x{code:x}"
    return f"closed by the peer with {kind}" + (f": {event.reason}" if event.reason else "")


class TransportCore(Protocol):
    """What :class:`Transporter` drives: a :class:`~quicnet.quic.QuicConnection`, a
    :class:`~quicnet.quic.endpoint.QuicEndpoint` or a real-time core."""

    @property
    def ecn_marked(self) -> int:
        """How many of the datagrams the last ``datagrams_to_send`` returned go out
        ECT(0) (the first ones)."""

    def receive_datagram(self, data: bytes, address: Address, now: float, ecn: int = 0) -> None:
        """Process one datagram from ``address`` (``ecn``: its codepoint, RFC 9000 §13.4)."""

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """What is ready to go now."""

    def next_timer(self) -> float | None:
        """When ``handle_timer`` must run next, or None."""

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``."""


class Transporter:
    """Moves datagrams between a UDP socket and a sans-I/O core; keeps its timer armed.

    It reads the socket itself (``loop.add_reader``) rather than through an
    asyncio DatagramTransport: one readiness callback drains every queued
    datagram before the core builds its answer, where a transport calls back
    once per datagram (measured: twice the loopback throughput).
    """

    sender: DatagramSender
    """What went out on the socket: see :class:`~quicnet.io.udp.DatagramSender`."""
    #: Whether the core takes ECN (RFC 9000 §13.4): set by subclasses from the configuration.
    want_ecn = False
    #: ECN in use on the socket: each datagram read with recvmsg and handed to the core
    #: with its codepoint, what is sent marked as the core's ``ecn_marked`` says (Linux).
    ecn = False

    def __init__(self, core: TransportCore) -> None:
        #: The sans-I/O core whose datagrams and timer this moves (called directly on
        #: the per-packet path, no hook in between).
        self.core = core
        self.sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._waiting: Callable[[int], list[tuple[int, int]]] | None = None
        #: How many times the timer woke the core (a pacing or clock bug shows here).
        self.timer_wakeups = 0
        self.loop = asyncio.get_running_loop()
        #: Sockets left by a migration, still read for a while: the address the core knows
        #: each by, and its sender (RFC 9000 §8.2.2: a challenge there is answered there).
        self._lingering: dict[socket.socket, tuple[Address, DatagramSender]] = {}
        #: A server's sockets on its preferred addresses (RFC 9000 §9.6), with the address
        #: the endpoint knows each by and its sender.
        self._preferred: list[tuple[socket.socket, Address, DatagramSender]] = []

    def attach(self, sock: socket.socket) -> None:
        """Start reading ``sock`` on the event loop and sending through it.

        ECN is turned on for the socket when the core takes it (RFC 9000 §13.4).
        """
        self.sock = sock
        self.ecn = self.want_ecn and enable_ecn(sock)
        # Kept after detach: its counters stay readable.
        self.sender = DatagramSender(sock, ecn=self.ecn)
        self._waiting = input_poller(sock) if self.ecn else None  # (Linux: poll there)
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self, sock: socket.socket | None = None) -> None:
        sock = sock or self.sock
        if sock is None:
            return
        now = _clock()
        receive = self.core.receive_datagram
        try:
            if self.ecn:
                deliver_socket_ecn(sock, receive, now, self._waiting if sock is self.sock else None)
                self._dispatch()
                return
            for data, address in read_socket(sock):
                receive(data, address, now)
            self._dispatch()
        finally:
            self.transmit()  # whatever happened above, what is queued leaves now

    def replace_socket(self, sock: socket.socket, linger: float) -> None:
        """Send from ``sock`` from now on; keep reading the old socket ``linger`` seconds
        (packets already on their way to it), then close it. What is read there reaches
        the core with the old socket's address (:meth:`_receive_left`)."""
        old = self.sock
        if old is not None:
            self.loop.remove_reader(old.fileno())
        if old is not None and linger <= 0:
            old.close()
        elif old is not None:
            local = bound_address(old)
            self._lingering[old] = (local, self.sender)
            self.loop.add_reader(old.fileno(), self._readable_left, old, local)
            self.loop.call_later(linger, self._close_lingering, old)
        self.attach(sock)

    def _readable_left(self, sock: socket.socket, local: Address) -> None:
        entry = self._lingering.get(sock)
        if entry is None:
            return
        now = _clock()
        try:
            if entry[1].ecn:
                for data, address, ecn in read_socket_ecn(sock):
                    self._receive_left(data, address, now, ecn, local)
            else:
                for data, address in read_socket(sock):
                    self._receive_left(data, address, now, 0, local)
            self._dispatch()
        finally:
            self.transmit()

    def _close_lingering(self, sock: socket.socket) -> None:
        entry = self._lingering.pop(sock, None)
        if entry is not None:
            self.loop.remove_reader(sock.fileno())
            sock.close()
            self._left_closed(entry[0])

    def _left_sockets(self) -> list[tuple[socket.socket, Address, DatagramSender]]:
        return [(sock, local, sender) for sock, (local, sender) in self._lingering.items()]

    def detach(self) -> None:
        """Stop the timer and close every socket, the ones a migration left included (the
        connection is over: no CID is released)."""
        self.stop_timer()
        for sock in list(self._lingering):
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self._lingering.clear()
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _receive_left(
        self, data: bytes, address: Any, now: float, ecn: int, local: Address
    ) -> None:
        """A datagram read on a socket a migration left, whose address is ``local``."""
        raise NotImplementedError

    def _left_closed(self, local: Address) -> None:
        """The lingering socket of ``local`` was closed (its time was up)."""

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _on_timer(self, now: float) -> None:
        """The timer fired: run the core's timers, then hand out what they produced."""
        self.core.handle_timer(now)
        self._dispatch()

    def _send_routed(self) -> None:
        """Send what leaves from another local address (a server's preferred address)."""

    def transmit(self) -> None:
        """Send what is due and re-arm the timer."""
        if self.sock is None:
            return  # detached: no more sending, no timers
        core = self.core
        # Runs of equal-size datagrams leave in one GSO sendmsg where Linux offers
        # it; a full kernel buffer drops the rest (recovery treats it as loss).
        now = _clock()
        out = core.datagrams_to_send(now)
        if out:
            self.sender.send(out, core.ecn_marked)
        if self._lingering or self._preferred:
            self._send_routed()
        deadline = core.next_timer()
        # Re-arm only for an earlier deadline: a timer that fires early is harmless
        # (the core checks its own deadlines and hands back the next one), while
        # cancelling and re-creating a handle per datagram costs more than the packet.
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(max(deadline - now, 0.0), self._fire)
            self._timer_at = deadline

    def _fire(self) -> None:
        self.timer_wakeups += 1
        self._timer = None
        self._timer_at = None
        try:
            self._on_timer(_clock())
        finally:
            self.transmit()

    def stop_timer(self) -> None:
        """Cancel the pending timer wake-up, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None


class QuicClient(Transporter):
    """A client connection on the event loop."""

    def __init__(self, connection: QuicConnection) -> None:
        super().__init__(connection)
        self.connection = connection
        self.want_ecn = connection.configuration.ecn
        # Events stay in the connection until the application asks for them: taking a
        # StreamDataReceived is what returns flow-control credit to the peer, so a
        # reader that falls behind holds the sender at one window (RFC 9000 §4).
        # The futures of next_event calls waiting for one (an asyncio.Event's waiters,
        # without its flag: next_event asks the connection first).
        self._waiters: list[asyncio.Future[None]] = []
        self._connected = self.loop.create_future()
        self._closed = self.loop.create_future()

    def _receive_left(
        self, data: bytes, address: Any, now: float, ecn: int, local: Address
    ) -> None:
        self.connection.receive_datagram(data, address, now, ecn, local)

    def _left_closed(self, local: Address) -> None:
        self.connection.release_local(local)  # the server CID kept there is retired
        self.transmit()

    def _send_routed(self) -> None:
        """A PATH_RESPONSE to a challenge that reached a lingering socket leaves from it
        (RFC 9000 §8.2.2)."""
        if self._lingering:
            routed = self.connection.routed_datagrams()
            if routed:
                send_routed(self._left_sockets(), routed)

    def _dispatch(self) -> None:
        conn = self.connection
        if not self._connected.done():
            if conn.handshake_complete:
                self._connected.set_result(None)
            elif conn.termination is not None:
                tls = conn.tls  # an ECH rejection carries the configs to retry with
                rejection = tls.ech_rejection if isinstance(tls, TLSClient) else None
                self._connected.set_exception(
                    rejection
                    or ConnectionError(
                        f"connection failed: {describe_termination(conn.termination)}"
                    )
                )
        if conn.state is TERMINATED and not self._closed.done():
            conn.dispose()  # freed by reference counting once the application lets go
            self._closed.set_result(None)
        if conn.event_queue and self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_connected(self) -> None:
        """Wait until the handshake completed; ConnectionError if the connection ended first."""
        await self._connected

    async def next_event(self) -> QuicEvent:
        """The next event; stream data taken here is consumed (its credit goes back)."""
        conn = self.connection
        while True:
            event = conn.next_event()
            if event is not None:
                if type(event) is StreamDataReceived and conn.pending.credit:
                    self.transmit()  # MAX_DATA / MAX_STREAM_DATA now, not with the next packet
                return event
            waiter = self.loop.create_future()
            waiters = self._waiters
            waiters.append(waiter)
            try:
                await waiter
            finally:
                waiters.remove(waiter)

    async def events(self) -> AsyncIterator[QuicEvent]:
        """Every event until the connection ends (the ConnectionTerminated included)."""
        while True:
            event = await self.next_event()
            yield event
            if isinstance(event, ConnectionTerminated):
                return

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Queue data on a stream (:meth:`QuicConnection.send_stream_data`) and send now."""
        self.connection.send_stream_data(stream_id, data, end_stream)
        self.transmit()

    def send_datagram(self, data: bytes) -> int:
        """Queue an unreliable datagram (RFC 9221) and send now; returns its id for the
        DatagramAcknowledged / DatagramLost event (with ``datagram_ack_events``)."""
        datagram_id = self.connection.send_datagram(data)
        self.transmit()
        return datagram_id

    def migrate(
        self, local_host: str | None = None, *, linger: float = MIGRATION_LINGER
    ) -> Address:
        """Move the connection to a new UDP socket; returns its local address.

        As :meth:`quicnet.io.udp.UdpClient.migrate`: the new socket binds
        ``local_host`` (default: the current host) on a new port, the connection
        moves (:meth:`QuicConnection.migrate`), and the old socket is read for
        ``linger`` more seconds (default :data:`~quicnet.io.udp.MIGRATION_LINGER`; 0
        closes it at once), a challenge there answered from there (RFC 9000 §8.2.2).
        QuicUsageError (nothing changed) when the connection cannot move now.
        """
        assert self.sock is not None, "the client is closed"
        old = bound_address(self.sock)
        host = local_host or old[0]
        sock = open_udp_socket(host, 0)
        try:
            self.connection.migrate(
                _clock(), port_only=host == old[0], old_local=old if linger > 0 else None
            )
        except BaseException:
            sock.close()
            raise
        self.replace_socket(sock, linger)
        self.transmit()  # the PATH_CHALLENGE and the first packet from the new address
        return self.local_address

    @property
    def local_address(self) -> Address:
        """The address the client's socket is bound to."""
        assert self.sock is not None
        name: Address = self.sock.getsockname()
        return name

    async def close(self, error_code: int = 0, reason: str = "") -> None:
        """Close and wait until the connection has terminated (closing period included)."""
        self.connection.close(error_code, reason)
        self.transmit()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), 5.0)
        self.detach()


async def connect(
    host: str, port: int, configuration: QuicConfiguration, *, wait_connected: bool = True
) -> QuicClient:
    """Open a client connection; by default returns once the handshake completed."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    address = infos[0][4]
    if configuration.server_name is None:  # verify the host we connect to
        configuration = dataclasses.replace(configuration, server_name=host)
    connection = QuicConnection(loopback_configuration(configuration, str(address[0])))
    protocol = QuicClient(connection)
    protocol.attach(open_udp_socket(local_host_for(str(address[0])), 0))
    connection.connect((str(address[0]), int(address[1])), _clock())
    protocol.transmit()
    if wait_connected:
        await protocol.wait_connected()
    return protocol


Handler = Callable[[QuicConnection, QuicEvent], Awaitable[None] | None]


class QuicServer(Transporter):
    """A server endpoint on the event loop; ``handler`` sees every connection's events."""

    def __init__(self, endpoint: QuicEndpoint, handler: Handler) -> None:
        super().__init__(endpoint)
        self.endpoint = endpoint
        self.want_ecn = endpoint.configuration.ecn
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()

    def attach_preferred(self, sock: socket.socket, local: Address) -> None:
        """Read and send on ``sock``, the socket of the preferred address ``local`` (with
        ECN when the configuration wants it and the platform has it)."""
        ecn = self.want_ecn and enable_ecn(sock)
        self._preferred.append((sock, local, DatagramSender(sock, ecn=ecn)))
        self.loop.add_reader(sock.fileno(), self._readable_at, sock, local, ecn)

    def _readable_at(self, sock: socket.socket, local: Address, ecn: bool) -> None:
        now = _clock()
        receive = self.endpoint.receive_datagram
        try:
            if ecn:
                for data, address, codepoint in read_socket_ecn(sock):
                    receive(data, address, now, codepoint, local)
                self._dispatch()
                return
            for data, address in read_socket(sock):
                receive(data, address, now, 0, local)
            self._dispatch()
        finally:
            self.transmit()

    def _send_routed(self) -> None:
        if self._preferred:
            routed = self.endpoint.routed_datagrams()
            if routed:
                send_routed(self._preferred, routed)

    @property
    def preferred_addresses(self) -> list[Address]:
        """The preferred addresses this server offers and has sockets on (with ports)."""
        return [local for _, local, _ in self._preferred]

    def detach(self) -> None:
        """Close the preferred-address sockets (RFC 9000 §9.6), then every other socket."""
        for sock, _, _ in self._preferred:
            self.loop.remove_reader(sock.fileno())
            sock.close()
        self._preferred = []
        super().detach()

    def _dispatch(self) -> None:
        while (item := self.endpoint.next_event()) is not None:
            conn, event = item
            try:
                result = self._handler(conn, event)
            except Exception as exc:
                self._handler_failed(conn, event, exc)
                continue
            if result is not None and asyncio.iscoroutine(result):  # (a plain handler: None)
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, conn, event))

    def _handler_failed(self, conn: QuicConnection, event: QuicEvent, exc: BaseException) -> None:
        """A handler bug ends its own connection, never the server or the loop."""
        name = type(event).__name__
        _log.error("the handler failed on %s; closing its connection", name, exc_info=exc)
        # RFC 9000 §20.1: INTERNAL_ERROR, without the details (they are in the log).
        conn.close(TransportErrorCode.INTERNAL_ERROR, "internal error", application=False)

    def _done(self, conn: QuicConnection, event: QuicEvent, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._handler_failed(conn, event, exc)
        self.transmit()

    @property
    def local_address(self) -> Address:
        """The address the socket is bound to (with the port picked when 0 was asked)."""
        assert self.sock is not None
        name: Address = self.sock.getsockname()
        return name

    async def close(self) -> None:
        """Close every connection, send their CONNECTION_CLOSE once and close the socket
        (no closing period is waited out)."""
        self.endpoint.close()
        self.transmit()
        self.detach()


async def serve(
    host: str,
    port: int,
    configuration: QuicConfiguration,
    handler: Handler,
    **endpoint_options: Any,
) -> QuicServer:
    """Start a server endpoint; ``handler(connection, event)`` runs for every event. A
    preferred address in the configuration (RFC 9000 §9.6) gets a socket of its own."""
    asyncio.get_running_loop()  # must be called from a running loop
    sock = open_udp_socket(host, port)
    try:
        configuration, preferred = open_preferred_sockets(
            loopback_configuration(configuration, host)
        )
    except BaseException:
        sock.close()
        raise
    endpoint = QuicEndpoint(configuration, **endpoint_options)
    protocol = QuicServer(endpoint, handler)
    protocol.attach(sock)
    for extra, local in preferred:  # RFC 9000 §9.6: a socket per preferred address
        protocol.attach_preferred(extra, local)
    return protocol
