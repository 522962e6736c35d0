"""The real-time server and client on UDP sockets, driven by ``poll()`` once a tick.

::

    identity = quicnet.dev_identity()
    server = quicnet.Server(("127.0.0.1", 7777), identity=identity)
    client = quicnet.Client(("127.0.0.1", 7777), pin=identity.fingerprint)
    client.send(1, b"state")
    for event in server.poll(timeout=0.0): ...

Nothing runs between calls. A message sent leaves on the wire in the same
call; inside ``with x.batch():`` the sends of the block leave together at
its end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from quicnet.crypto import Certificate
from quicnet.io.realtime_api import (
    ClientCalls,
    Identity,
    ServerCalls,
    make_settings,
    new_server_core,
    trust_roots_from,
)
from quicnet.io.udp import (
    MIGRATION_LINGER,
    GcFreezer,
    SocketDriver,
    local_host_for,
    open_udp_socket,
)
from quicnet.quic import Address
from quicnet.realtime import (
    AcceptHook,
    ClientCore,
    Delivery,
    RealtimeEvent,
    ServerCore,
    Settings,
    client_configuration,
)
from quicnet.tls import SessionTicket

__all__ = ["Client", "Server", "resolve"]


def resolve(address: tuple[str, int]) -> Address:
    """A host name and port as a socket address (the first the resolver gives)."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    resolved = infos[0][4]
    return (str(resolved[0]), int(resolved[1]))


_Core = TypeVar("_Core", ServerCore, ClientCore)


class _Ticking(SocketDriver, Generic[_Core]):
    """A core on a UDP socket, driven by :meth:`poll`; sends leave at once, or at the end
    of the outermost ``batch()`` block."""

    core: _Core
    _closed: bool
    _close_reason: str  # what leaving a ``with`` block tells the other side
    _depth = 0

    def poll(self, timeout: float = 0.0) -> list[RealtimeEvent]:
        """Send what is due, wait up to ``timeout`` seconds for datagrams, process them and
        the timers; return the events. After ``close()`` it returns what is left (the
        sessions' disconnect events)."""
        core = self.core
        if not self._closed:
            self.cycle(core, timeout)
        events = []
        while (event := core.next_event()) is not None:
            events.append(event)
        self._after_poll()
        return events

    def _after_poll(self) -> None:
        """What a driver does at the end of each poll (the server: its GC freezes)."""

    def _flush(self) -> None:
        if not self._closed:
            core = self.core
            self.transmit(core.datagrams_to_send(time.monotonic()), core.ecn_marked)
            if self.lingering:  # a response from a socket a migration left (RFC 9000 §8.2.2)
                self._transmit_routed(core)

    def flush(self) -> None:
        """Send everything queued now (inside ``batch()``, before its end)."""
        self._flush()

    def _sent(self) -> None:
        if not self._depth:
            self._flush()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the sends of the block and send them together at its end."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth:
                self._flush()

    def _end(self, reason: str) -> None:
        if self._closed:
            return
        self.core.close(reason)
        self._flush()
        self._closed = True
        self.close_socket()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end(self._close_reason)


class Server(_Ticking[ServerCore], ServerCalls):
    """A real-time server on one UDP socket.

    ``identity`` is its certificate chain and key (``quicnet.dev_identity()``
    for local play). ``channels`` maps channel ids to delivery modes (the
    default table if omitted; clients must use the same). ``accept`` decides
    on each client before it is connected: it gets a
    :class:`~quicnet.realtime.ConnectRequest` (the would-be peer id, the
    address, the client's token) and returns True to admit, False or a reason
    to refuse. ``qlog`` is a directory for one qlog trace per connection
    (default: the ``QLOGDIR`` environment variable). ``gc_freeze_interval``:
    ``gc.freeze()`` from :meth:`poll` that often (seconds; off by default), so
    the garbage collector's full collections stop traversing every connection
    (:class:`~quicnet.io.udp.GcFreezer`). Other keywords are
    :class:`~quicnet.realtime.Settings` fields (``early_data=False`` turns
    0-RTT off).
    """

    _close_reason = "server shutdown"

    def __init__(
        self,
        address: tuple[str, int] = ("127.0.0.1", 0),
        *,
        identity: Identity,
        channels: Mapping[int, Delivery] | None = None,
        accept: AcceptHook | None = None,
        settings: Settings | None = None,
        max_connections: int = 4096,
        qlog: str | os.PathLike[str] | None = None,
        gc_freeze_interval: float | None = None,
        **options: Any,
    ) -> None:
        self.gc_freezer = GcFreezer(gc_freeze_interval)
        self.settings = make_settings(settings, channels, options)
        self.core = new_server_core(
            identity, self.settings, accept=accept, max_connections=max_connections, qlog=qlog
        )
        self.sock = open_udp_socket(address[0], address[1])
        self._use_ecn(self.core.endpoint.configuration)  # marks read and sent (§13.4)
        self._closed = False

    def _after_poll(self) -> None:
        self.gc_freezer.poll()

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the port the system picked when 0 was asked."""
        name = self.sock.getsockname()
        return (str(name[0]), int(name[1]))

    def close(self, reason: str = "server shutdown") -> None:
        """End every session (SERVER_SHUTDOWN), send the closes and close the socket; a
        last :meth:`poll` returns the PeerDisconnected events."""
        self._end(reason)


class Client(_Ticking[ClientCore], ClientCalls):
    """A real-time client: one session with a server, on a UDP socket of its own.

    The server is verified by ``pin`` (its certificate's SHA-256 fingerprint,
    bytes or hex text) or by its chain to ``cafile``/``trust_roots`` and its
    name (``server_name``, else the host); ``insecure_skip_verify=True`` is the
    only way to skip that. The constructor returns at once: ``Connected``
    arrives through :meth:`poll`, and what is sent before waits until then.
    ``token`` goes to the server's admission hook.

    ``session`` resumes an earlier session: :attr:`session` of a client that
    was connected to the same server, or its ``to_bytes()``. What is sent
    before the handshake completes (the HELLO, then messages) goes in 0-RTT
    when the ticket allows; if the server rejects 0-RTT, the reliable
    messages go again in 1-RTT and the unreliable ones sent in 0-RTT are lost.
    ``qlog`` is a directory for a qlog trace (default: ``QLOGDIR``).
    """

    _close_reason = "closed"

    def __init__(
        self,
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
        local_host: str | None = None,
        session: SessionTicket | bytes | None = None,
        qlog: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.settings = make_settings(settings, channels, options)
        configuration = client_configuration(
            address[0],
            self.settings,
            pin=pin,
            server_name=server_name,
            trust_roots=trust_roots_from(cafile, trust_roots),
            insecure_skip_verify=insecure_skip_verify,
            session=session,
            qlog=qlog,
        )
        remote = resolve(address)
        host = local_host or local_host_for(remote[0])
        self.sock = open_udp_socket(host, 0)
        self._use_ecn(configuration)  # marks read and sent (RFC 9000 §13.4)
        self._closed = False
        self.core = ClientCore(configuration, remote, self.settings, time.monotonic(), token=token)
        self._flush()

    def migrate(
        self, local_host: str | None = None, *, linger: float = MIGRATION_LINGER
    ) -> tuple[str, int]:
        """Move the session to a new UDP socket, as :meth:`quicnet.io.udp.UdpClient.migrate`
        does (QuicUsageError when the connection cannot move now)."""
        address = self.switch_socket(self.core.connection, local_host, linger)
        self._flush()
        return (str(address[0]), int(address[1]))

    def close(self, reason: str = "closed") -> None:
        """End the session (the server sees CLOSED_BY_PEER and ``reason``) and close the
        socket; a last :meth:`poll` returns the Disconnected."""
        self._end(reason)
