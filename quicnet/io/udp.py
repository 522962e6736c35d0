"""A non-blocking UDP driver for tick-driven loops (games, fixed-rate servers).

Nothing runs between calls: each :meth:`poll` sends what is due, waits at
most ``timeout`` seconds for datagrams, processes them and the timers, and
returns the events. Call it once a frame::

    client = UdpClient(QuicConfiguration(...), ("127.0.0.1", 4433))
    while running:
        for event in client.poll(0.0):
            ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import ipaddress
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from quicnet.io.udp_send import (
    ECN_PLATFORM,
    GSO_MAX_BYTES,
    GSO_MAX_SEGMENTS,
    DatagramSender,
    gso_batches,
)
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import QuicConnection
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.events import Address, QuicEvent
from quicnet.quic.sender import MAX_DATAGRAMS_PER_CALL
from quicnet.quic.states import TERMINATED

__all__ = [
    "GcFreezer",
    "ECN_PLATFORM",
    "GSO_MAX_BYTES",
    "GSO_MAX_SEGMENTS",
    "MIGRATION_LINGER",
    "DatagramSender",
    "SansIoCore",
    "SocketDriver",
    "UdpClient",
    "UdpServer",
    "bound_address",
    "enable_ecn",
    "gso_batches",
    "LOOPBACK_MAX_UDP_PAYLOAD",
    "local_host_for",
    "loopback_configuration",
    "open_preferred_sockets",
    "open_udp_socket",
    "read_socket",
    "read_socket_ecn",
    "deliver_socket_ecn",
    "input_poller",
    "set_dont_fragment",
]


class SansIoCore(Protocol):
    """What a driver needs of a core: datagrams and time in, datagrams and a deadline out."""

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        """Process one datagram from ``address``."""

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        """What is ready to go now."""

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must run next."""

    def handle_timer(self, now: float) -> None:
        """Run what is due."""


class _RoutingCore(Protocol):
    def receive_datagram(
        self, data: bytes, address: Address, now: float, ecn: int = 0, local: Address | None = None
    ) -> None: ...

    def routed_datagrams(self) -> list[tuple[bytes, Address, Address, int]]: ...


class _EcnCore(Protocol):
    def receive_datagram(self, data: bytes, address: Address, now: float, ecn: int) -> None:
        """Process one datagram from ``address`` that arrived with ECN codepoint ``ecn``."""


_MAX_DATAGRAM = 65536
_READS_PER_POLL = 256
#: Seconds a client keeps reading the socket it moved away from (RFC 9000 §9.2):
#: the server's packets already on their way there still arrive.
MIGRATION_LINGER = 2.0


def bound_address(sock: socket.socket) -> Address:
    """The host and port ``sock`` is bound to: how a connection knows that local address
    (``receive_datagram(..., local=)``, ``routed_datagrams()``)."""
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))


def local_host_for(remote_host: str) -> str:
    """The address a client socket binds to reach ``remote_host``: the same loopback
    address for a loopback peer (nothing listens beyond the machine), else any address
    of the peer's family."""
    try:
        remote = ipaddress.ip_address(remote_host.split("%", 1)[0])
    except ValueError:
        return "0.0.0.0"
    if remote.is_loopback:
        return "::1" if remote.version == 6 else "127.0.0.1"
    return "::" if remote.version == 6 else "0.0.0.0"


# Linux's path MTU discovery modes (<linux/in.h>, <linux/in6.h>); Python's socket
# module lacks the constants. PMTUDISC_DO: set DF, never fragment, and fail a send
# larger than the known path MTU with EMSGSIZE.
_IP_MTU_DISCOVER = 10
_IPV6_MTU_DISCOVER = 23
_PMTUDISC_DO = 2


def set_dont_fragment(sock: socket.socket) -> bool:
    """Ask the kernel never to fragment this socket's datagrams (the DF bit).

    RFC 9000 §14: QUIC's UDP datagrams must not be fragmented at the IP layer,
    and a PMTU probe (:mod:`quicnet.quic.pmtu`) too big for the path must be
    dropped, not cut into pieces that would pass. Linux only (IP_MTU_DISCOVER =
    IP_PMTUDISC_DO); False where the option is unknown, and the socket keeps the
    system's default. A datagram the kernel then refuses (EMSGSIZE) is dropped by
    :class:`DatagramSender` and recovery treats it as lost.
    """
    if not sys.platform.startswith("linux"):
        return False
    options = [(socket.IPPROTO_IP, _IP_MTU_DISCOVER)]
    if sock.family == socket.AF_INET6:  # the IPv6 option, and IPv4's for mapped addresses
        options.insert(0, (socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER))
    done = False
    for level, option in options:
        try:
            sock.setsockopt(level, option, _PMTUDISC_DO)
        except OSError:
            continue
        done = True
    return done


#: The ceiling of PMTU discovery on a loopback interface: its usual MTU, 65536, less the
#: IPv6 and UDP headers (48 bytes), so that IPv4 and IPv6 both carry it unfragmented.
LOOPBACK_MAX_UDP_PAYLOAD = 65487


def loopback_configuration(configuration: QuicConfiguration, host: str) -> QuicConfiguration:
    """``configuration`` for a socket talking to (or bound to) ``host``.

    On a loopback address an unset ``max_udp_payload_size`` (whose default,
    1452 bytes, is Ethernet's) becomes :data:`LOOPBACK_MAX_UDP_PAYLOAD`: every
    packet costs the same Python work whatever its size, so large datagrams
    carry a bulk transfer several times faster (docs/quic.md). Discovery still
    confirms the size (a loopback with a smaller MTU settles lower). A value
    set explicitly is kept, as is the configuration elsewhere.
    """
    if configuration.max_udp_payload_size is not None:
        return configuration
    try:
        loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return configuration
    if not loopback:
        return configuration
    return dataclasses.replace(configuration, max_udp_payload_size=LOOPBACK_MAX_UDP_PAYLOAD)


def open_udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` (port 0 picks one), with the DF
    bit set where the platform allows (:func:`set_dont_fragment`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
        set_dont_fragment(sock)
        sock.bind((host, port))
    except BaseException:
        sock.close()  # a failed bind (in use, unknown name) leaks no socket
        raise
    sock.setblocking(False)
    return sock


def open_preferred_sockets(
    configuration: QuicConfiguration,
) -> tuple[QuicConfiguration, list[tuple[socket.socket, Address]]]:
    """A socket on each preferred address a server configuration offers (RFC 9000 §9.6),
    and the configuration with the ports those sockets got (a port of 0 picks one).

    Each socket comes with the address the endpoint knows it by (``receive_datagram(...,
    local=)``, and the third item of ``routed_datagrams()``)."""
    out: list[tuple[socket.socket, Address]] = []
    changes: dict[str, tuple[str, int]] = {}
    try:
        for name in ("preferred_address_v4", "preferred_address_v6"):
            wanted = getattr(configuration, name)
            if wanted is None:
                continue
            host = ipaddress.ip_address(wanted[0]).compressed
            sock = open_udp_socket(host, int(wanted[1]))
            bound = (host, int(sock.getsockname()[1]))
            out.append((sock, bound))
            changes[name] = bound
    except BaseException:
        for sock, _ in out:
            sock.close()
        raise
    if changes:
        configuration = dataclasses.replace(configuration, **changes)  # type: ignore[arg-type]
    return configuration, out


# ECN on receipt (RFC 9000 §13.4): the TOS byte or traffic class comes with each datagram
# as a control message; marking what is sent is :class:`DatagramSender`'s (udp_send).
_ECN_CMSG_SPACE = socket.CMSG_SPACE(4) * 2 if ECN_PLATFORM else 0
#: Where the low byte of a control message's native int is (a one-byte IP_TOS: index 0).
_LOW_BYTE = 0 if sys.byteorder == "little" else -1


def enable_ecn(sock: socket.socket) -> bool:
    """Ask the kernel for the ECN bits of each datagram ``sock`` receives (Linux); False
    where it cannot, and then :func:`read_socket_ecn` must not be used."""
    if not ECN_PLATFORM:
        return False
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS, 1)
            with contextlib.suppress(OSError):  # IPv4-mapped peers on a dual-stack socket
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    except OSError:
        return False
    return True


def read_socket_ecn(sock: socket.socket) -> list[tuple[bytes, Address, int]]:
    """Every datagram queued on ``sock`` (at most a poll's worth) with its ECN codepoint,
    read with ``recvmsg`` from a socket :func:`enable_ecn` prepared: what
    :func:`deliver_socket_ecn` hands on, as a list."""
    out: list[tuple[bytes, Address, int]] = []

    def collect(data: bytes, address: Address, _now: float, ecn: int) -> None:
        out.append((data, address, ecn))

    deliver_socket_ecn(sock, collect, 0.0)
    return out


def input_poller(sock: socket.socket) -> Callable[[int], list[tuple[int, int]]]:
    """``poll`` of a ``select.poll`` watching ``sock`` for input: ``poll(0)`` is
    non-empty when a datagram waits. A read that finds nothing raises BlockingIOError
    (an exception built with its strerror text, ~6,000 machine instructions), which
    this answers without. Where ``select.poll`` exists (it does wherever
    :data:`ECN_PLATFORM` holds, the only place the drivers use it)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return poller.poll


def deliver_socket_ecn(
    sock: socket.socket,
    receive: Callable[[bytes, Address, float, int], object],
    now: float,
    waiting: Callable[[int], list[tuple[int, int]]] | None = None,
) -> None:
    """Hand every datagram queued on ``sock`` (at most a poll's worth) to ``receive`` as
    ``(data, address, now, ecn)`` as it is read: :func:`read_socket_ecn` without the list
    between (what both drivers do with their main socket at each wakeup).

    ``waiting``: ``sock``'s :func:`input_poller`, asked after the first datagram: a
    wakeup that brought one (an echo, a game tick) then ends without a read that
    finds the socket empty; with more queued, reading goes on until one does."""
    recvmsg = sock.recvmsg
    for i in range(_READS_PER_POLL):
        try:
            data, ancillary, _flags, address = recvmsg(_MAX_DATAGRAM, _ECN_CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            continue  # ICMP errors surface here on some systems
        # IP_TOS (one byte) or IPV6_TCLASS (a native int), the last one if both came:
        # the ECN field is the low 2 bits of its low byte.
        receive(data, address, now, ancillary[-1][2][_LOW_BYTE] & 3 if ancillary else 0)
        if i == 0 and waiting is not None and not waiting(0):
            break


class SocketDriver:
    """Runs a sans-I/O core on a non-blocking UDP socket, one tick at a time.

    The core is anything with ``datagrams_to_send(now)``, ``next_timer()``,
    ``receive_datagram(data, address, now)`` and ``handle_timer(now)``: a
    :class:`~quicnet.quic.QuicConnection`, a :class:`~quicnet.quic.QuicEndpoint`
    or a real-time core. Subclasses set ``sock`` and ``sender``.
    """

    sock: socket.socket
    sender: DatagramSender
    """What went out on the socket: see :class:`DatagramSender` for the counters."""
    #: ``sock``'s :func:`input_poller` (whether more than one datagram waits).
    waiting: Callable[[int], list[tuple[int, int]]] | None = None
    #: Sockets a migrated client still reads until the time beside each (then closed),
    #: each with the address its connection knows it by and its sender (RFC 9000 §8.2.2:
    #: a challenge that reaches one is answered from it).
    lingering: tuple[tuple[socket.socket, float, Address, DatagramSender], ...] = ()
    #: The connection that moved (:meth:`switch_socket`): it says what leaves from a
    #: lingering socket and is told when one closes.
    migrated: QuicConnection | None = None
    #: A server's sockets on its preferred addresses (RFC 9000 §9.6), each with the
    #: address the core knows it by and its sender; the core says what leaves from them.
    preferred: tuple[tuple[socket.socket, Address, DatagramSender], ...] = ()
    #: Read each datagram's ECN codepoint (recvmsg) and hand it to the core, which then
    #: takes ``receive_datagram(data, address, now, ecn)`` (QuicConnection, QuicEndpoint).
    ecn = False

    def transmit(self, datagrams: list[tuple[bytes, Address]], marked: int = 0) -> None:
        """Send ``datagrams`` on the socket (GSO where it can), the first ``marked`` ECT(0)."""
        self.sender.send(datagrams, marked)

    def _use_ecn(self, configuration: QuicConfiguration) -> None:
        """ECN on this driver's socket when configured and the platform has it."""
        self.ecn = configuration.ecn and enable_ecn(self.sock)
        self.sender = DatagramSender(self.sock, ecn=self.ecn)
        self.waiting = input_poller(self.sock) if self.ecn else None  # (Linux: poll there)

    def _wait(self, timeout: float) -> bool:
        socks = [self.sock]
        if self.lingering:
            self._expire_lingering(time.monotonic())
            socks += [s for s, _, _, _ in self.lingering]
        if self.preferred:
            socks += [s for s, _, _ in self.preferred]
        if timeout <= 0:
            readable, _, _ = select.select(socks, [], [], 0)
        else:
            readable, _, _ = select.select(socks, [], [], timeout)
        return bool(readable)

    def _read_at(
        self,
        core: SansIoCore,
        now: float,
        sockets: Sequence[tuple[socket.socket, Address, DatagramSender]],
    ) -> None:
        """Hand the core what reached the sockets of its other local addresses, saying
        which (``local=``): a server's preferred ones, a migrated client's old ones."""
        receive_at = cast(_RoutingCore, core).receive_datagram
        for sock, local, sender in sockets:
            if sender.ecn:
                for data, address, ecn in read_socket_ecn(sock):
                    receive_at(data, address, now, ecn, local)
            else:
                for data, address in read_socket(sock):
                    receive_at(data, address, now, 0, local)

    def _left(self) -> list[tuple[socket.socket, Address, DatagramSender]]:
        return [(sock, local, sender) for sock, _, local, sender in self.lingering]

    def _expire_lingering(self, now: float) -> None:
        """Close the sockets left by a migration whose time is up; the connection retires
        the server CID it kept for each (RFC 9000 §9.5)."""
        for sock, until, local, _ in self.lingering:
            if until <= now:
                sock.close()
                if self.migrated is not None:
                    self.migrated.release_local(local)
        self.lingering = tuple(entry for entry in self.lingering if entry[1] > now)

    def cycle(self, core: SansIoCore, timeout: float, send_first: bool = True) -> int:
        """One tick of a sans-I/O core: send, wait for input or its timer, receive, send.

        Returns how many datagrams the last send took from the core. ``send_first``
        False: the caller knows the core has had nothing new to send since it was last
        asked (and that answer held fewer than ``MAX_DATAGRAMS_PER_CALL``)."""
        clock = time.monotonic
        now = clock()
        routed = self.preferred or self.lingering  # other sockets: a server's, a migration's
        if send_first:
            out = core.datagrams_to_send(now)
            if out:
                self.sender.send(out, getattr(core, "ecn_marked", 0))
        if routed:
            self._transmit_routed(core)
        deadline = core.next_timer()
        wait = timeout
        if deadline is not None:
            wait = deadline - now
            if wait > timeout:
                wait = timeout
            elif wait < 0.0:
                wait = 0.0
        if routed:
            readable = self._wait(wait)
        else:  # one socket: select on it directly
            readable = bool(select.select((self.sock,), (), (), wait)[0])
        if readable:
            now = clock()
            if self.ecn:
                ecn_core: _EcnCore = core  # type: ignore[assignment]  # (no cast() call)
                deliver_socket_ecn(self.sock, ecn_core.receive_datagram, now, self.waiting)
            else:
                receive = core.receive_datagram
                for data, address in read_socket(self.sock):
                    receive(data, address, now)
            if self.preferred:
                self._read_at(core, now, self.preferred)
            if self.lingering:
                self._read_at(core, now, self._left())
        now = clock()
        # The deadline found before waiting: what receiving added is not due yet (an
        # ACK to send now is not a timer), and the next poll sees it.
        if deadline is not None and deadline <= now:
            core.handle_timer(now)
        out = core.datagrams_to_send(now)
        if out:
            self.sender.send(out, getattr(core, "ecn_marked", 0))
        if routed:  # (a lingering socket the reads above closed: nothing to send there)
            self._transmit_routed(core)
        return len(out)

    def _transmit_routed(self, core: SansIoCore) -> None:
        """What the core sends from a preferred address leaves from that socket, and what
        a migrated connection sends from an address it left (its PATH_RESPONSEs, RFC 9000
        §8.2.2) from the lingering socket there."""
        if self.preferred:
            routed = cast(_RoutingCore, core).routed_datagrams()
            if routed:
                send_routed(self.preferred, routed)
        if self.lingering and self.migrated is not None:
            routed = self.migrated.routed_datagrams()
            if routed:
                send_routed(self._left(), routed)

    @property
    def local_address(self) -> Address:
        """The address the current socket is bound to, as ``getsockname`` gives it."""
        name: Address = self.sock.getsockname()
        return name

    def switch_socket(
        self, connection: QuicConnection, local_host: str | None, linger: float
    ) -> Address:
        """A client's move (RFC 9000 §9.2): a new socket on ``local_host`` (default: the
        current host) and a new port, ``connection`` told; the old socket is read for
        ``linger`` more seconds, and a challenge that reaches it is answered from it
        (§8.2.2). Nothing changes if the connection refuses to move."""
        old = bound_address(self.sock)
        host = local_host or old[0]
        sock = open_udp_socket(host, 0)
        try:
            connection.migrate(
                time.monotonic(), port_only=host == old[0], old_local=old if linger > 0 else None
            )
        except BaseException:
            sock.close()
            raise
        if linger > 0:
            self.lingering += ((self.sock, time.monotonic() + linger, old, self.sender),)
            self.migrated = connection
        else:
            self.sock.close()
        self.sock = sock
        self.ecn = self.ecn and enable_ecn(sock)
        self.sender = DatagramSender(sock, ecn=self.ecn)
        self.waiting = input_poller(sock) if self.ecn else None
        return self.local_address

    def close_socket(self) -> None:
        """Close the socket, the preferred addresses' and those a migration left."""
        self.sock.close()
        for sock, _, _ in self.preferred:
            sock.close()
        self.preferred = ()
        for sock, _, _, _ in self.lingering:
            sock.close()
        self.lingering = ()


def send_routed(
    sockets: Sequence[tuple[socket.socket, Address, DatagramSender]],
    routed: list[tuple[bytes, Address, Address, int]],
) -> None:
    """Send each ``(data, to, from, ecn)`` on the socket of its ``from`` address, GSO where
    it can, ECT(0) where ``ecn`` says so and the socket's sender has ECN on."""
    for _, local, sender in sockets:
        marked = [(data, to) for data, to, src, ecn in routed if src == local and ecn]
        plain = [(data, to) for data, to, src, ecn in routed if src == local and not ecn]
        if marked or plain:
            sender.send(marked + plain, len(marked))


def read_socket(sock: socket.socket) -> list[tuple[bytes, Address]]:
    """Every datagram queued on ``sock`` (at most a poll's worth), read with ``recvfrom``
    (no ECN); errors such as ICMP unreachable are skipped, recovery sees a loss."""
    out = []
    for _ in range(_READS_PER_POLL):
        try:
            data, address = sock.recvfrom(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            continue  # ICMP errors surface here on some systems
        out.append((data, address))
    return out


class UdpClient(SocketDriver):
    """One QUIC client connection on its own UDP socket."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        address: Address,
        *,
        local_host: str | None = None,
        now: float | None = None,
    ) -> None:
        host = local_host or local_host_for(str(address[0]))
        if configuration.server_name is None:  # verify the host we connect to, as aio does
            configuration = dataclasses.replace(configuration, server_name=str(address[0]))
        configuration = loopback_configuration(configuration, str(address[0]))
        self.sock = open_udp_socket(host, 0)
        self._use_ecn(configuration)
        self.connection = QuicConnection(configuration)
        # Whether the connection may have something to send that it was not asked for
        # yet: the application gave it something (its wake callback, as an endpoint is
        # told), or the last answer was a full one (MAX_DATAGRAMS_PER_CALL). Else a poll
        # does not ask before it waits: what receiving and the timers queue, the ask
        # after them takes. (A cell, not an attribute: no cycle through the callback.)
        due = self._send_due = [True]

        def wake(_conn: QuicConnection) -> None:
            due[0] = True

        self.connection.wake = wake
        self.connection.connect(address, time.monotonic() if now is None else now)
        self.flush()

    def poll(self, timeout: float = 0.0) -> list[QuicEvent]:
        """Send, wait up to ``timeout`` for input, process it and the timers; return events."""
        conn = self.connection
        due = self._send_due  # (a wake during the cycle comes before its last ask)
        due[0] = self.cycle(conn, timeout, due[0]) >= MAX_DATAGRAMS_PER_CALL
        events = []
        while conn.event_queue:  # (no next_event call for the empty answer)
            event = conn.next_event()
            if event is not None:
                events.append(event)
        if conn.state is TERMINATED:
            conn.dispose()  # freed by reference counting once the application lets go
        return events

    def flush(self) -> None:
        """Send what the connection has queued (e.g. right after send_stream_data)."""
        conn = self.connection
        out = conn.datagrams_to_send(time.monotonic())
        self._send_due[0] = len(out) >= MAX_DATAGRAMS_PER_CALL
        if out:
            self.sender.send(out, conn.ecn_marked)
        if self.lingering:
            self._transmit_routed(conn)

    def migrate(
        self, local_host: str | None = None, *, linger: float = MIGRATION_LINGER
    ) -> Address:
        """Move the connection to a new UDP socket; returns its local address.

        The new socket binds ``local_host`` (default: the current one's host) on a
        new port, and the connection moves with it (:meth:`QuicConnection.migrate
        <quicnet.quic.QuicConnection.migrate>`: a new connection ID, path
        validation, fresh congestion state unless only the port changed). The old
        socket is still read for ``linger`` seconds (0 closes it at once), for the
        packets the server sent before it saw the move and its challenge to the old
        address (RFC 9000 §9.3.3), answered from there (§8.2.2); the server CID used
        there is retired when it closes. Raises QuicUsageError (and
        keeps the old socket) when the connection cannot move now.
        """
        address = self.switch_socket(self.connection, local_host, linger)
        self.flush()  # the PATH_CHALLENGE and the first packet from the new address
        return address


class GcFreezer:
    """Calls ``gc.freeze()`` at most every ``interval`` seconds, when polled (None:
    never). What lives then (a server's connections among it) leaves the cyclic
    collector's generations, so its full collections stop traversing every connection:
    50-100 ms at a thousand. Ended connections are freed by reference counting
    (:meth:`QuicConnection.dispose <quicnet.quic.QuicConnection.dispose>`), frozen or
    not; cyclic garbage of the application's own that gets frozen stays until
    ``gc.unfreeze()``. See docs/quic.md, "Garbage collection in a server"."""

    __slots__ = ("_due", "interval")

    def __init__(self, interval: float | None) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("gc_freeze_interval must be positive (or None)")
        self.interval = interval
        self._due = time.monotonic() + (interval or 0.0)  # (unused without an interval)

    def poll(self) -> None:
        """Freeze if the interval has passed since the last time."""
        interval = self.interval
        if interval is not None and time.monotonic() >= self._due:
            gc.freeze()
            self._due = time.monotonic() + interval


class UdpServer(SocketDriver):
    """A QUIC server endpoint on one UDP socket, and one more on each preferred address
    its configuration offers (``preferred_address_v4``/``_v6``, RFC 9000 §9.6)."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        gc_freeze_interval: float | None = None,
        **endpoint_options: object,
    ) -> None:
        #: ``gc.freeze()`` from :meth:`poll` every ``gc_freeze_interval`` seconds.
        self.gc_freezer = GcFreezer(gc_freeze_interval)
        self.sock = open_udp_socket(host, port)
        self.sender = DatagramSender(self.sock)
        configuration = loopback_configuration(configuration, host)
        try:
            configuration, preferred = open_preferred_sockets(configuration)
        except BaseException:
            self.sock.close()
            raise
        self._use_ecn(configuration)
        self.preferred = tuple(  # ECN there too when the main socket has it
            (s, a, DatagramSender(s, ecn=self.ecn and enable_ecn(s))) for s, a in preferred
        )
        self.endpoint = QuicEndpoint(configuration, **endpoint_options)  # type: ignore[arg-type]

    def poll(self, timeout: float = 0.0) -> list[tuple[QuicConnection, QuicEvent]]:
        """Send, wait up to ``timeout`` for input, process it and the timers; return events."""
        endpoint = self.endpoint
        self.cycle(endpoint, timeout)
        events = endpoint.take_events()
        gc_freezer = self.gc_freezer
        if gc_freezer.interval is not None:  # (no call when it never freezes)
            gc_freezer.poll()
        return events

    def flush(self) -> None:
        """Send what the connections have queued (e.g. right after send_stream_data)."""
        endpoint = self.endpoint
        out = endpoint.datagrams_to_send(time.monotonic())
        if out:
            self.sender.send(out, endpoint.ecn_marked)
        if self.preferred:
            self._transmit_routed(endpoint)
