"""The real-time server and client on asyncio (uvloop when :func:`quicnet.io.aio.run`
starts the loop and it is installed)::

    server = await quicnet.serve(("127.0.0.1", 7777), identity=identity)
    client = await quicnet.connect(("127.0.0.1", 7777), pin=identity.fingerprint)
    client.send(0, b"hello")
    async for event in server.events():
        ...

The same ``send``/``broadcast``/``disconnect``/``stats``/``close`` as the
tick-driven :class:`~quicnet.io.realtime.Server` and
:class:`~quicnet.io.realtime.Client`; a message sent leaves at once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from quicnet.crypto import Certificate
from quicnet.io.aio import Transporter
from quicnet.io.realtime_api import (
    ClientCalls,
    Identity,
    ServerCalls,
    make_settings,
    new_server_core,
    trust_roots_from,
)
from quicnet.io.udp import local_host_for, open_udp_socket
from quicnet.realtime import (
    AcceptHook,
    ClientCore,
    Delivery,
    Disconnected,
    RealtimeEvent,
    ServerCore,
    Settings,
    client_configuration,
)
from quicnet.tls import SessionTicket

__all__ = ["AsyncClient", "AsyncServer", "connect", "serve"]


class _Events:
    """A core's events, waited for on the loop."""

    def __init__(self) -> None:
        self._ready = asyncio.Event()
        self._queue: list[RealtimeEvent] = []
        self._position = 0
        self._ended = False

    def push_from(self, source: ServerCore | ClientCore) -> None:
        while (event := source.next_event()) is not None:
            self._queue.append(event)
        if self._position < len(self._queue):
            self._ready.set()

    def end(self) -> None:
        """No event comes after those queued: :meth:`next_or_end` returns None then."""
        self._ended = True
        self._ready.set()

    async def next_or_end(self) -> RealtimeEvent | None:
        """The next event, or None once every event is taken and :meth:`end` was called."""
        while self._position >= len(self._queue):
            if self._ended:
                return None
            self._ready.clear()
            self._queue.clear()
            self._position = 0
            await self._ready.wait()
        event = self._queue[self._position]
        self._position += 1
        return event

    async def next(self) -> RealtimeEvent:
        while (event := await self.next_or_end()) is None:
            self._ready.clear()  # ended: wait as before, for an event that may never come
            await self._ready.wait()
        return event


_Core = TypeVar("_Core", ServerCore, ClientCore)


class _OnLoop(Transporter, Generic[_Core]):
    """A core on the event loop: datagrams and timers in, its events queued for
    ``next_event()``; what the application sends leaves at once."""

    def __init__(self, core: _Core) -> None:
        super().__init__(core)
        self.core: _Core = core
        self.want_ecn = core.ecn  # read the marks and send ECT(0) (RFC 9000 §13.4)
        self._events = _Events()
        self._closed = False

    # Transporter's hook.
    def _dispatch(self) -> None:
        self._events.push_from(self.core)

    def _sent(self) -> None:
        self.transmit()

    def _end(self, reason: str) -> bool:
        """Close the core, send its closes, leave the loop; False if already done."""
        if self._closed:
            return False
        self.core.close(reason)
        self.transmit()
        self._closed = True
        self.detach()
        self._events.push_from(self.core)
        return True

    async def next_event(self) -> RealtimeEvent:
        """The next event."""
        return await self._events.next()


class AsyncServer(_OnLoop[ServerCore], ServerCalls):
    """A real-time server on the event loop (made by :func:`serve`)."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        assert self.sock is not None
        name = self.sock.getsockname()
        return (str(name[0]), int(name[1]))

    async def events(self) -> AsyncIterator[RealtimeEvent]:
        """Every event, until the server is closed (its sessions' PeerDisconnected last)."""
        while (event := await self._events.next_or_end()) is not None:
            yield event

    def close(self, reason: str = "server shutdown") -> None:
        """End every session (SERVER_SHUTDOWN), send the closes and close the socket."""
        if self._end(reason):
            self._events.end()


class AsyncClient(_OnLoop[ClientCore], ClientCalls):
    """A real-time client on the event loop (made by :func:`connect`)."""

    def __init__(self, core: ClientCore) -> None:
        super().__init__(core)
        self._outcome: asyncio.Future[None] = self.loop.create_future()

    def _dispatch(self) -> None:
        super()._dispatch()
        core = self.core
        if not self._outcome.done():
            if core.connected:
                self._outcome.set_result(None)
            elif core.ended:
                self._outcome.set_exception(ConnectionError("the session ended before it began"))
        if core.ended and not self._closed:
            self._closed = True
            self.detach()

    async def wait_connected(self) -> None:
        """Wait for the server's admission; ConnectionError if the session ended first."""
        await self._outcome

    async def events(self) -> AsyncIterator[RealtimeEvent]:
        """Every event, the Disconnected last."""
        while True:
            event = await self._events.next()
            yield event
            if isinstance(event, Disconnected):
                return

    def close(self, reason: str = "closed") -> None:
        """End the session (the server sees ``reason``), send the close, close the socket."""
        self._end(reason)


async def serve(
    address: tuple[str, int] = ("127.0.0.1", 0),
    *,
    identity: Identity,
    channels: Mapping[int, Delivery] | None = None,
    accept: AcceptHook | None = None,
    settings: Settings | None = None,
    max_connections: int = 4096,
    qlog: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AsyncServer:
    """Start a real-time server (the arguments of :class:`~quicnet.io.realtime.Server`)."""
    resolved = make_settings(settings, channels, options)
    core = new_server_core(
        identity, resolved, accept=accept, max_connections=max_connections, qlog=qlog
    )
    server = AsyncServer(core)
    server.attach(open_udp_socket(address[0], address[1]))
    return server


async def connect(
    address: tuple[str, int],
    *,
    pin: bytes | str | Sequence[bytes | str] | None = None,
    server_name: str | None = None,
    cafile: str | Path | None = None,
    trust_roots: Sequence[Certificate] = (),
    insecure_skip_verify: bool = False,
    token: bytes = b"",
    channels: Mapping[int, Delivery] | None = None,
    settings: Settings | None = None,
    wait_connected: bool = True,
    session: SessionTicket | bytes | None = None,
    qlog: str | os.PathLike[str] | None = None,
    **options: Any,
) -> AsyncClient:
    """Open a session (the arguments of :class:`~quicnet.io.realtime.Client`); by default
    returns once the server admitted us (``ConnectionError`` if it did not: the first
    event, a Disconnected, says why). With ``session=`` and ``wait_connected=False``,
    what is sent before the handshake completes goes in 0-RTT."""
    loop = asyncio.get_running_loop()
    resolved = make_settings(settings, channels, options)
    configuration = client_configuration(
        address[0],
        resolved,
        pin=pin,
        server_name=server_name,
        trust_roots=trust_roots_from(cafile, trust_roots),
        insecure_skip_verify=insecure_skip_verify,
        session=session,
        qlog=qlog,
    )
    infos = await loop.getaddrinfo(address[0], address[1], type=socket.SOCK_DGRAM)
    remote = (str(infos[0][4][0]), int(infos[0][4][1]))
    core = ClientCore(configuration, remote, resolved, time.monotonic(), token=token)
    client = AsyncClient(core)
    client.attach(open_udp_socket(local_host_for(remote[0]), 0))
    client.transmit()
    if wait_connected:
        await client.wait_connected()
    return client
