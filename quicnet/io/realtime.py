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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from quicnet.crypto import Certificate, PrivateKey, load_certificates
from quicnet.io.udp import (
    MIGRATION_LINGER,
    DatagramSender,
    SocketDriver,
    local_host_for,
    open_udp_socket,
)
from quicnet.quic import Address
from quicnet.realtime import (
    AcceptHook,
    ClientCore,
    Delivery,
    PeerStats,
    RealtimeEvent,
    ServerCore,
    Settings,
    client_configuration,
    server_configuration,
)
from quicnet.tls import SessionTicket

__all__ = ["Client", "Identity", "Server", "make_settings", "resolve", "trust_roots_from"]


class Identity(Protocol):
    """A server's certificate chain and private key (``quicnet.dev_identity()`` is one)."""

    @property
    def certificate_chain(self) -> Sequence[Certificate]: ...

    @property
    def private_key(self) -> PrivateKey: ...


def make_settings(
    settings: Settings | None, channels: Mapping[int, Delivery] | None, options: dict[str, Any]
) -> Settings:
    """The settings from a ready object, or from ``channels`` and keyword options."""
    if settings is not None:
        if channels is not None or options:
            raise TypeError("give settings= or channels= and options, not both")
        return settings
    if channels is not None:
        options["channels"] = channels
    return Settings(**options)


def resolve(address: tuple[str, int]) -> Address:
    """A host name and port as a socket address (the first the resolver gives)."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    resolved = infos[0][4]
    return (str(resolved[0]), int(resolved[1]))


def trust_roots_from(
    cafile: str | Path | None, trust_roots: Sequence[Certificate]
) -> list[Certificate]:
    """``trust_roots`` and the certificates of the PEM file ``cafile``."""
    roots = list(trust_roots)
    if cafile is not None:
        roots += load_certificates(Path(cafile).read_bytes())
    return roots


class _Batching:
    """Sends leave at once, or at the end of the outermost ``batch()`` block."""

    _depth = 0

    def _flush(self) -> None:
        raise NotImplementedError

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


class Server(_Batching, SocketDriver):
    """A real-time server on one UDP socket.

    ``identity`` is its certificate chain and key (``quicnet.dev_identity()``
    for local play). ``channels`` maps channel ids to delivery modes (the
    default table if omitted; clients must use the same). ``accept`` decides
    on each client before it is connected: it gets a
    :class:`~quicnet.realtime.ConnectRequest` (the would-be peer id, the
    address, the client's token) and returns True to admit, False or a reason
    to refuse. ``qlog`` is a directory for one qlog trace per connection
    (default: the ``QLOGDIR`` environment variable). Other keywords are
    :class:`~quicnet.realtime.Settings` fields (``early_data=False`` turns
    0-RTT off).
    """

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
        **options: Any,
    ) -> None:
        self.settings = make_settings(settings, channels, options)
        configuration = server_configuration(
            identity.certificate_chain, identity.private_key, self.settings, qlog=qlog
        )
        self.core = ServerCore(
            configuration, self.settings, accept=accept, max_connections=max_connections
        )
        self.sock = open_udp_socket(address[0], address[1])
        self.sender = DatagramSender(self.sock)
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port): the port the system picked when 0 was asked."""
        name = self.sock.getsockname()
        return (str(name[0]), int(name[1]))

    @property
    def peers(self) -> list[int]:
        """The ids of the connected peers."""
        return self.core.peers

    def poll(self, timeout: float = 0.0) -> list[RealtimeEvent]:
        """Send what is due, wait up to ``timeout`` seconds for datagrams, process them and
        the timers; return the events (PeerConnected, MessageReceived, ...)."""
        core = self.core
        self.cycle(core, timeout)
        events = []
        while (event := core.next_event()) is not None:
            events.append(event)
        return events

    def send(self, peer: int, channel: int, data: bytes) -> None:
        """Send ``data`` to ``peer`` on ``channel`` (UnknownPeerError, UnknownChannelError,
        MessageTooLargeError)."""
        self.core.send(peer, channel, data)
        self._sent()

    def broadcast(self, channel: int, data: bytes, *, exclude: int | Iterable[int] = ()) -> None:
        """Send ``data`` on ``channel`` to every connected peer but ``exclude``."""
        self.core.broadcast(channel, data, exclude=exclude)
        self._sent()

    def disconnect(self, peer: int, reason: str = "kicked") -> None:
        """End ``peer``'s session (it sees KICKED and ``reason``)."""
        self.core.disconnect(peer, reason)
        self._sent()

    def stats(self, peer: int) -> PeerStats:
        """``peer``'s RTT, jitter, loss, bytes and packets each way, congestion window."""
        return self.core.stats(peer)

    def address_of(self, peer: int) -> Address:
        """Where ``peer``'s packets come from now."""
        return self.core.address_of(peer)

    def _flush(self) -> None:
        if not self._closed:
            self.transmit(self.core.datagrams_to_send(time.monotonic()))

    def flush(self) -> None:
        """Send everything queued now (inside ``batch()``, before its end)."""
        self._flush()

    def close(self, reason: str = "server shutdown") -> None:
        """End every session (SERVER_SHUTDOWN), send the closes and close the socket."""
        if self._closed:
            return
        self.core.close(reason)
        self._flush()
        self._closed = True
        self.close_socket()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client(_Batching, SocketDriver):
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
        self.sender = DatagramSender(self.sock)
        self._closed = False
        self.core = ClientCore(configuration, remote, self.settings, time.monotonic(), token=token)
        self._flush()

    @property
    def connected(self) -> bool:
        """The server admitted us and the session goes on."""
        return self.core.connected

    @property
    def client_id(self) -> int | None:
        """The id the server gave us (None until Connected)."""
        return self.core.client_id

    @property
    def session(self) -> SessionTicket | None:
        """The latest session ticket the server sent (None until one came, shortly after
        Connected): give it, or its ``to_bytes()``, as ``session=`` to a later client to
        resume. It holds a secret key: keep it as private as a password."""
        return self.core.session_ticket

    @property
    def early_data_accepted(self) -> bool | None:
        """Whether the server accepted our 0-RTT (None until the handshake completes)."""
        return self.core.early_data_accepted

    def poll(self, timeout: float = 0.0) -> list[RealtimeEvent]:
        """Send what is due, wait up to ``timeout`` seconds for datagrams, process them and
        the timers; return the events (Connected, MessageReceived, Disconnected)."""
        core = self.core
        if not self._closed:
            self.cycle(core, timeout)
        events = []
        while (event := core.next_event()) is not None:
            events.append(event)
        return events

    def send(self, channel: int, data: bytes) -> None:
        """Send ``data`` on ``channel`` (before Connected, it waits and goes then)."""
        self.core.send(channel, data)
        self._sent()

    def stats(self) -> PeerStats:
        """The session's RTT, jitter, loss, bytes and packets each way, congestion window."""
        return self.core.stats()

    def _flush(self) -> None:
        if not self._closed:
            self.transmit(self.core.datagrams_to_send(time.monotonic()))

    def flush(self) -> None:
        """Send everything queued now (inside ``batch()``, before its end)."""
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
        if self._closed:
            return
        self.core.close(reason)
        self._flush()
        self._closed = True
        self.close_socket()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
