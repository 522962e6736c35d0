"""asyncio streams over quicnet's TLS 1.3: ``open_connection`` and ``start_server``.

They mirror :func:`asyncio.open_connection` / :func:`asyncio.start_server`,
giving an :class:`asyncio.StreamReader` and a :class:`TLSStreamWriter`::

    reader, writer = await open_connection("example.com", 443, ClientConfig(...))
    writer.write(b"GET / HTTP/1.0\\r\\n\\r\\n")
    await writer.drain()
    page = await reader.read()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from quicnet.tls.config import ClientConfig, ServerConfig
from quicnet.tls.errors import TLSError, UsageError
from quicnet.tls.events import HandshakeComplete, SessionTicketReceived
from quicnet.tls.record import ApplicationData, ConnectionClosed, TLSConnection
from quicnet.tls.session import SessionTicket

__all__ = ["TLSStreamWriter", "open_connection", "start_server"]

_READ_SIZE = 1 << 16
#: asyncio's default: the reader stops reading the socket above twice this many bytes.
DEFAULT_LIMIT = 1 << 16


class _ReadGate(asyncio.ReadTransport):
    """The transport the application's StreamReader sees.

    asyncio.StreamReader pauses its transport when more than 2 x ``limit`` bytes
    are buffered and resumes it once the application has read below ``limit``;
    here that stops and restarts the record pump, so TCP flow control slows the
    peer instead of the buffer growing without bound.
    """

    def __init__(self) -> None:
        super().__init__()
        self._open = asyncio.Event()
        self._open.set()

    def pause_reading(self) -> None:
        self._open.clear()

    def resume_reading(self) -> None:
        self._open.set()

    def is_reading(self) -> bool:
        return self._open.is_set()

    async def wait_open(self) -> None:
        await self._open.wait()


def _app_reader(limit: int) -> tuple[asyncio.StreamReader, _ReadGate]:
    reader = asyncio.StreamReader(limit=limit)
    gate = _ReadGate()
    reader.set_transport(gate)
    return reader, gate


class TLSStreamWriter:
    """The sending half of a TLS stream, shaped like :class:`asyncio.StreamWriter`."""

    def __init__(self, conn: TLSConnection, raw_writer: asyncio.StreamWriter) -> None:
        self.connection = conn
        self._raw = raw_writer
        #: What the handshake negotiated.
        self.handshake: HandshakeComplete | None = None
        #: Session tickets received so far (client side), newest last.
        self.session_tickets: list[SessionTicket] = []
        self._pump: asyncio.Task[None] | None = None
        self._ticket_arrived = asyncio.Event()
        self._gate: _ReadGate | None = None
        self.error: BaseException | None = None

    @property
    def transport(self) -> asyncio.BaseTransport:
        """The TCP transport underneath, as :attr:`asyncio.StreamWriter.transport`."""
        return self._raw.transport

    @property
    def reading_paused(self) -> bool:
        """True while the reader holds more than its limit allows: nothing is read then."""
        return self._gate is not None and not self._gate.is_reading()

    async def wait_session_ticket(self) -> SessionTicket:
        """The first session ticket, waiting for the server to send one."""
        await self._ticket_arrived.wait()
        return self.session_tickets[0]

    def _flush(self) -> None:
        data = self.connection.data_to_send()
        if data and not self._raw.is_closing():
            self._raw.write(data)

    def write(self, data: bytes) -> None:
        """Send ``data`` as TLS application data records (RFC 8446 §5.2).

        Raises the stream's error if the connection has failed.
        """
        if self.error is not None:
            raise self.error
        self.connection.send(bytes(data))
        self._flush()

    def writelines(self, lines: list[bytes]) -> None:
        """Send the concatenation of ``lines``, as :meth:`write`."""
        self.write(b"".join(lines))

    async def drain(self) -> None:
        """Wait until the TCP write buffer has room, as :meth:`asyncio.StreamWriter.drain`."""
        await self._raw.drain()

    def key_update(self, *, request_peer: bool = True) -> None:
        """Switch to new traffic keys (TLS KeyUpdate), asking the peer to do the same."""
        self.connection.key_update(request_peer=request_peer)
        self._flush()

    def export_keying_material(self, label: bytes, context: bytes, length: int) -> bytes:
        """``length`` bytes of the TLS exporter for ``label`` and ``context`` (RFC 8446 §7.5).

        Raises :class:`~quicnet.tls.errors.UsageError` before the handshake is complete.
        """
        return self.connection.export_keying_material(label, context, length)

    def can_write_eof(self) -> bool:
        """True: :meth:`write_eof` sends close_notify (RFC 8446 §6.1)."""
        return True

    def write_eof(self) -> None:
        """Send close_notify; the peer's data can still be read."""
        self.connection.close()
        self._flush()

    def is_closing(self) -> bool:
        """Whether the TCP transport underneath is closing or closed."""
        return self._raw.is_closing()

    def close(self) -> None:
        """Send close_notify if still possible (RFC 8446 §6.1), then close the TCP transport."""
        with contextlib.suppress(TLSError):
            self.connection.close()
            self._flush()
        self._raw.close()
        if self._gate is not None:
            self._gate.resume_reading()  # let the pump see the end instead of waiting

    async def wait_closed(self) -> None:
        """Wait until the TCP transport has closed and the reading task has ended."""
        with contextlib.suppress(ConnectionError):
            await self._raw.wait_closed()
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport information, as :meth:`asyncio.StreamWriter.get_extra_info`.

        ``"tls_handshake"`` gives the :class:`~quicnet.tls.events.HandshakeComplete`
        (None before it); ``"peercert"`` the peer's leaf
        :class:`~quicnet.crypto.Certificate` (``default`` if none); other names go
        to the TCP transport.
        """
        if name == "tls_handshake":
            return self.handshake
        if name == "peercert":
            return (
                self.handshake.peer_certificates[0]
                if self.handshake and self.handshake.peer_certificates
                else default
            )
        return self._raw.get_extra_info(name, default)


def _deliver(conn: TLSConnection, writer: TLSStreamWriter, reader: asyncio.StreamReader) -> bool:
    """Move events to the app; True once the peer closed."""
    closed = False
    while (event := conn.next_event()) is not None:
        if isinstance(event, ApplicationData):
            reader.feed_data(event.data)
        elif isinstance(event, HandshakeComplete):
            writer.handshake = event
        elif isinstance(event, SessionTicketReceived):
            writer.session_tickets.append(event.ticket)
            writer._ticket_arrived.set()
        elif isinstance(event, ConnectionClosed):
            closed = True
    return closed


async def _handshake(
    conn: TLSConnection,
    raw_reader: asyncio.StreamReader,
    writer: TLSStreamWriter,
    reader: asyncio.StreamReader,
) -> None:
    writer._flush()
    while not conn.handshake_complete:
        data = await raw_reader.read(_READ_SIZE)
        if not data:
            raise ConnectionResetError("the peer closed the connection during the handshake")
        try:
            conn.receive_data(data, time.time())
        finally:
            writer._flush()
        _deliver(conn, writer, reader)


async def _pump(
    conn: TLSConnection,
    raw_reader: asyncio.StreamReader,
    writer: TLSStreamWriter,
    reader: asyncio.StreamReader,
) -> None:
    """Read records until EOF, close_notify or an error; feed the app's reader."""
    gate = writer._gate
    try:
        while True:
            # The peer may have closed in the same read that finished the handshake.
            if _deliver(conn, writer, reader) or conn.peer_closed:
                break
            if gate is not None:
                await gate.wait_open()  # backpressure: the application is behind
            data = await raw_reader.read(_READ_SIZE)
            if not data:
                break  # truncation without close_notify: the app sees EOF
            try:
                conn.receive_data(data, time.time())
            finally:
                writer._flush()
        reader.feed_eof()
    except TLSError as exc:
        _deliver(conn, writer, reader)  # authenticated data that came before the failure
        writer.error = exc
        reader.set_exception(exc)
    except (ConnectionError, OSError) as exc:
        writer.error = exc
        reader.set_exception(exc)


async def open_connection(
    host: str,
    port: int,
    config: ClientConfig,
    *,
    early_data: bytes | None = None,
    handshake_timeout: float = 30.0,
    limit: int = DEFAULT_LIMIT,
) -> tuple[asyncio.StreamReader, TLSStreamWriter]:
    """Connect over TCP and complete a TLS 1.3 handshake.

    ``config.server_name`` defaults to ``host``. ``early_data`` is sent as 0-RTT
    as far as ``config.session`` allows; whatever the server did not accept (all
    of it if it rejected 0-RTT, the part beyond the ticket's limit otherwise) is
    sent right after the handshake, so it always arrives once. ``limit`` is the
    reader's, as in :func:`asyncio.open_connection`: above twice that much
    unread data, reading from the socket pauses.
    """
    if config.server_name is None:
        config.server_name = host
    raw_reader, raw_writer = await asyncio.open_connection(host, port)
    conn = TLSConnection.client(config)
    reader, gate = _app_reader(limit)
    writer = TLSStreamWriter(conn, raw_writer)
    writer._gate = gate
    try:
        conn.start(time.time())
        sent_early = 0
        if early_data:
            with contextlib.suppress(UsageError):  # no session allowing 0-RTT: sent later
                sent_early = conn.send_early_data(early_data)
        await asyncio.wait_for(_handshake(conn, raw_reader, writer, reader), handshake_timeout)
        if early_data:
            accepted = writer.handshake is not None and writer.handshake.early_data_accepted
            rest = early_data[sent_early:] if accepted else early_data
            if rest:
                writer.write(rest)
    except BaseException:
        raw_writer.close()
        raise
    writer._pump = asyncio.ensure_future(_pump(conn, raw_reader, writer, reader))
    return reader, writer


async def start_server(
    client_connected_cb: Callable[[asyncio.StreamReader, TLSStreamWriter], Awaitable[None] | None],
    host: str | None,
    port: int,
    config: ServerConfig,
    *,
    handshake_timeout: float = 30.0,
    limit: int = DEFAULT_LIMIT,
    **kwargs: Any,
) -> asyncio.Server:
    """Accept TCP connections and call ``client_connected_cb`` after each TLS handshake.

    Handshake failures close that connection and are otherwise ignored (the
    server keeps serving). ``limit`` bounds each reader's buffer as in
    :func:`asyncio.start_server` (reading pauses above twice the limit).
    """

    async def handle(raw_reader: asyncio.StreamReader, raw_writer: asyncio.StreamWriter) -> None:
        conn = TLSConnection.server(config)
        reader, gate = _app_reader(limit)
        writer = TLSStreamWriter(conn, raw_writer)
        writer._gate = gate
        try:
            await asyncio.wait_for(_handshake(conn, raw_reader, writer, reader), handshake_timeout)
        except (TLSError, ConnectionError, OSError, TimeoutError):
            raw_writer.close()
            return
        writer._pump = asyncio.ensure_future(_pump(conn, raw_reader, writer, reader))
        result = client_connected_cb(reader, writer)
        if asyncio.iscoroutine(result):
            await result

    return await asyncio.start_server(handle, host, port, **kwargs)
