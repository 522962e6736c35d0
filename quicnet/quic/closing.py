"""How a connection ends (RFC 9000 §10): closing, draining, terminated.

After sending CONNECTION_CLOSE a connection only answers packets with that
frame again, and never freely: anyone who can reach the connection's CID (or
spoof its peer's address) could otherwise make it send on demand. The answers
back off exponentially (the 1st, 2nd, 4th, 8th ... packet received gets one) and
the connection sends them only to its peer's address, within the path's
anti-amplification budget. :func:`close_datagrams` builds that datagram: the
frame in a packet of every epoch the peer may still be reading.

The transitions are functions of the connection: :func:`begin_closing` (we
close: §10.2.1, also :func:`close_on_error` for an error met processing a
datagram), :func:`begin_draining` (the peer closed: §10.2.2) and
:func:`end_connection` (silently, now: idle timeout §10.1, the end of the
closing or draining period, a stateless reset §10.3). Each records why the
connection ended (``termination``) and the event the application is told.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from quicnet.quic.crypto_streams import send_key
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.events import Address, ConnectionTerminated
from quicnet.quic.frames import encode_connection_close
from quicnet.quic.states import ConnectionState
from quicnet.tls import Epoch, ProtocolViolation, TLSError

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.paths import Path
    from quicnet.quic.sender import PacketSender

__all__ = [
    "ClosingState",
    "begin_closing",
    "begin_draining",
    "close_datagrams",
    "close_on_error",
    "dispose_connection",
    "end_connection",
]

_log = logging.getLogger("quicnet.quic")


class ClosingState:
    """The CONNECTION_CLOSE frame to repeat and when it is due again."""

    __slots__ = ("_answered_at", "_received", "application", "event", "frame", "send_due")

    def __init__(self, frame: bytes, application: bool, event: ConnectionTerminated) -> None:
        self.frame = frame
        #: An application close (0x1d), which becomes APPLICATION_ERROR before 1-RTT.
        self.application = application
        #: What the application is told once the closing period ends.
        self.event = event
        self.send_due = True  # the first CONNECTION_CLOSE goes at once
        self._received = 0
        self._answered_at = 1

    @classmethod
    def for_close(
        cls, error_code: int, frame_type: int | None, reason: str, application: bool
    ) -> ClosingState:
        """Closing with ``error_code``: the frame to send and the event to report."""
        frame = encode_connection_close(
            error_code, None if application else (frame_type or 0), reason.encode()[:200]
        )
        event = ConnectionTerminated(
            error_code, frame_type, reason, by_peer=False, is_application=application
        )
        return cls(frame, application, event)

    def on_packet_received(self) -> None:
        """§10.2.1: answer again only after exponentially more packets arrived."""
        self._received += 1
        if self._received >= self._answered_at:
            self._answered_at *= 2
            self.send_due = True


def close_datagrams(sender: PacketSender, path: Path, now: float) -> list[tuple[bytes, Address]]:
    """The CONNECTION_CLOSE datagram when one is due (§10.2.1), toward ``path``: its
    packets coalesced, one per epoch with keys; a datagram leaving from a server's
    preferred address goes to the connection's routed list instead (§9.6.2)."""
    c = sender.c
    closing = c.closing
    if closing is None or not closing.send_due:
        return []
    closing.send_due = False
    if c.deadlines.closing_ends is None:
        c.deadlines.closing_ends = now + 3 * c.recovery.pto_duration(2)
    buf = bytearray()
    for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT):
        if send_key(c, epoch) is None:
            continue
        frame = closing.frame
        if epoch != Epoch.ONE_RTT and closing.application and frame[0] == 0x1D:
            # §10.2.3: before 1-RTT an application close becomes APPLICATION_ERROR.
            frame = encode_connection_close(0x0C, 0, b"")
        packet = sender.new_packet(epoch)
        packet.payload += frame
        buf += sender.seal(packet, now, record=False)
    if not buf or len(buf) > path.budget():  # §10.2.1: within the 3x limit
        return []
    path.bytes_sent += len(buf)
    if path.local is not None:  # RFC 9000 §9.6.2
        c.paths.routed.append((bytes(buf), path.address, path.local, 0))
        return []
    return [(bytes(buf), path.address)]


def begin_closing(
    c: QuicConnection, error_code: int, frame_type: int | None, reason: str, *, application: bool
) -> None:
    """§10.2.1: enter the closing state; the CONNECTION_CLOSE goes with the next datagrams."""
    closing = c.closing = ClosingState.for_close(error_code, frame_type, reason, application)
    c.termination = closing.event
    c.state = ConnectionState.CLOSING
    c.deadlines.closing_ends = None  # set when the close frame is sent
    if c.tracer is not None:
        c.tracer.connection_ending("closing", closing.event, None)


def close_on_error(c: QuicConnection, exc: Exception) -> None:
    """Close for ``exc``, raised processing a datagram: a transport error with its code,
    a TLS alert as CRYPTO_ERROR (RFC 9001 §4.8), anything else (a bug in quicnet) as
    INTERNAL_ERROR, logged: it ends this connection, never its server."""
    if isinstance(exc, TransportError):
        begin_closing(c, exc.error_code, exc.frame_type or 0, exc.reason, application=False)
    elif isinstance(exc, TLSError):
        alert = exc.alert if isinstance(exc, ProtocolViolation) else 80
        code = TransportErrorCode.CRYPTO_ERROR + int(alert)
        begin_closing(c, code, 0x06, str(exc), application=False)
    else:
        _log.error("internal error processing a datagram; closing the connection", exc_info=exc)
        begin_closing(c, TransportErrorCode.INTERNAL_ERROR, 0, "internal error", application=False)


def begin_draining(
    c: QuicConnection,
    error_code: int,
    frame_type: int | None,
    reason: str,
    application: bool,
    now: float,
) -> None:
    """§10.2.2: the peer sent CONNECTION_CLOSE; wait out the draining period."""
    if c.state in (ConnectionState.DRAINING, ConnectionState.TERMINATED):
        return
    c.state = ConnectionState.DRAINING
    c.deadlines.closing_ends = now + 3 * c.recovery.pto_duration(2)
    c.termination = event = ConnectionTerminated(
        error_code, frame_type, reason, by_peer=True, is_application=application
    )
    c.event_queue.append(event)
    c.closing = None
    if c.tracer is not None:
        c.tracer.connection_ending("draining", event, now)


def end_connection(
    c: QuicConnection,
    error_code: int,
    frame_type: int | None,
    reason: str,
    *,
    by_peer: bool,
    stateless_reset: bool = False,
    now: float | None = None,
) -> None:
    """End now, silently; report why (once) unless the draining event already did.
    ``now``, when the caller has it, dates the end in the qlog trace."""
    if c.state == ConnectionState.TERMINATED:
        return
    previous = c.state
    c.state = ConnectionState.TERMINATED
    if previous == ConnectionState.CLOSING and c.closing is not None:
        c.event_queue.append(c.closing.event)
    elif previous != ConnectionState.DRAINING:
        c.termination = ConnectionTerminated(
            error_code, frame_type, reason, by_peer=by_peer, stateless_reset=stateless_reset
        )
        c.event_queue.append(c.termination)
    if c.tracer is not None:
        c.tracer.connection_terminated(c.termination, now)


def _delivered_nowhere(frames: object, acked: bool) -> None:
    """Loss recovery's delivery callback once the connection is disposed of."""


def dispose_connection(c: QuicConnection) -> None:
    """After the end (:meth:`QuicConnection.dispose`): break the cycles through the
    connection's helpers, its recovery's delivery callback and its endpoint's wake
    callback, so reference counting frees it; its closed qlog tracer stays readable."""
    if c.state != ConnectionState.TERMINATED:
        raise QuicUsageError("only a terminated connection can be disposed of")
    if c.disposed:
        return
    c.disposed = True
    c.wake = None  # the endpoint's: it forgets the connection, and this the endpoint
    c.recovery.on_delivered = _delivered_nowhere
    c.sender.detach()
    c.receiver.detach()
    c.timers.detach()
    c.handshake.detach()
    if c.tracer is not None:  # closed when the connection terminated
        c.tracer.detach()
