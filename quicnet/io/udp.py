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

import dataclasses
import select
import socket
import time

from quicnet.quic.config import QuicConfiguration
from quicnet.quic.connection import Address, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.events import QuicEvent

__all__ = ["UdpClient", "UdpServer", "open_udp_socket"]

_MAX_DATAGRAM = 65536
_READS_PER_POLL = 256


def open_udp_socket(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``host:port`` (port 0 picks one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
        sock.bind((host, port))
    except BaseException:
        sock.close()  # a failed bind (in use, unknown name) leaks no socket
        raise
    sock.setblocking(False)
    return sock


class _Driver:
    sock: socket.socket

    def _send(self, datagrams: list[tuple[bytes, Address]]) -> None:
        for data, address in datagrams:
            try:
                self.sock.sendto(data, address[:2])
            except (BlockingIOError, InterruptedError):
                return  # the kernel buffer is full: recovery treats it as loss
            except OSError:
                continue  # e.g. ICMP unreachable surfaced on send: drop this one

    def _wait(self, timeout: float) -> bool:
        if timeout <= 0:
            readable, _, _ = select.select([self.sock], [], [], 0)
        else:
            readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def _read(self) -> list[tuple[bytes, Address]]:
        out = []
        for _ in range(_READS_PER_POLL):
            try:
                data, address = self.sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue  # ICMP errors surface here on some systems
            out.append((data, address))
        return out

    def _cycle(self, core: QuicConnection | QuicEndpoint, timeout: float) -> None:
        """One tick of a sans-I/O core: send, wait for input or its timer, receive, send."""
        now = time.monotonic()
        self._send(core.datagrams_to_send(now))
        deadline = core.next_timer()
        wait = timeout if deadline is None else max(0.0, min(timeout, deadline - now))
        if self._wait(wait):
            now = time.monotonic()
            for data, address in self._read():
                core.receive_datagram(data, address, now)
        now = time.monotonic()
        deadline = core.next_timer()
        if deadline is not None and deadline <= now:
            core.handle_timer(now)
        self._send(core.datagrams_to_send(now))

    @property
    def local_address(self) -> Address:
        name: Address = self.sock.getsockname()
        return name

    def close_socket(self) -> None:
        self.sock.close()


class UdpClient(_Driver):
    """One QUIC client connection on its own UDP socket."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        address: Address,
        *,
        local_host: str | None = None,
        now: float | None = None,
    ) -> None:
        host = local_host or ("::" if ":" in str(address[0]) else "0.0.0.0")
        if configuration.server_name is None:  # verify the host we connect to, as aio does
            configuration = dataclasses.replace(configuration, server_name=str(address[0]))
        self.sock = open_udp_socket(host, 0)
        self.connection = QuicConnection(configuration)
        self.connection.connect(address, time.monotonic() if now is None else now)
        self._send(self.connection.datagrams_to_send(time.monotonic()))

    def poll(self, timeout: float = 0.0) -> list[QuicEvent]:
        """Send, wait up to ``timeout`` for input, process it and the timers; return events."""
        conn = self.connection
        self._cycle(conn, timeout)
        events = []
        while (event := conn.next_event()) is not None:
            events.append(event)
        return events

    def flush(self) -> None:
        """Send what the connection has queued (e.g. right after send_stream_data)."""
        self._send(self.connection.datagrams_to_send(time.monotonic()))


class UdpServer(_Driver):
    """A QUIC server endpoint on one UDP socket."""

    def __init__(
        self,
        configuration: QuicConfiguration,
        host: str = "127.0.0.1",
        port: int = 0,
        **endpoint_options: object,
    ) -> None:
        self.sock = open_udp_socket(host, port)
        self.endpoint = QuicEndpoint(configuration, **endpoint_options)  # type: ignore[arg-type]

    def poll(self, timeout: float = 0.0) -> list[tuple[QuicConnection, QuicEvent]]:
        """Send, wait up to ``timeout`` for input, process it and the timers; return events."""
        endpoint = self.endpoint
        self._cycle(endpoint, timeout)
        events = []
        while (item := endpoint.next_event()) is not None:
            events.append(item)
        return events

    def flush(self) -> None:
        self._send(self.endpoint.datagrams_to_send(time.monotonic()))
