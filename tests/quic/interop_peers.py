"""Harnesses for the QUIC interop tests: quicnet against aioquic and qh3.

Everything runs in the test process on 127.0.0.1 with port 0:

- the peer stack (aioquic or qh3) runs on its own asyncio loop in a thread
  (:class:`PeerLoop`), with the ``PeerProtocol`` of :func:`protocol_class` as
  the application on both the client and the server side;
- quicnet runs in the test's thread through its tick-driven drivers
  (:class:`QuicnetServer` over ``UdpServer``, :class:`QuicnetClient` over
  ``UdpClient``), polled by :func:`pump`;
- :class:`UdpRelay` sits between the two when a test needs to drop datagrams
  or to look at the wire.

The application protocol is hq-interop (HTTP/0.9): a client sends
``GET /name\\r\\n`` on a bidirectional stream and the server answers with the
file and FIN. A stream whose first bytes are not ``GET `` is echoed back.
DATAGRAM frames are recorded. (test_interop_cli runs quicnet's CLI verbs as
subprocesses instead.)

Every blocking wait has a deadline, and the :func:`hard_timeout` fixture
interrupts the test's thread after ``HARD_TIMEOUT`` seconds whatever it is
doing, so teardown (``finally`` blocks and fixtures) always runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import random
import select
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from quicnet.crypto import Certificate, PrivateKey, dev_identity
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import (
    ConnectionTerminated,
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    PathValidated,
    PeerAddressChanged,
    QuicConfiguration,
    QuicConnection,
    QuicUsageError,
    StreamDataReceived,
    StreamReset,
)

T = TypeVar("T")

STACKS = ("aioquic", "qh3")
ALPN = "hq-interop"
#: The whole test, teardown included, is interrupted after this many seconds.
HARD_TIMEOUT = 60
#: What one phase of a test (a handshake, a transfer) may take before it fails.
PHASE_TIMEOUT = 40.0


# Hard timeout ---------------------------------------------------------------------------------
class HardTimeout(Exception):
    """The test ran past ``HARD_TIMEOUT``."""


#: Which side quicnet plays in a parametrized interop test.
ROLES = ("quicnet_server", "quicnet_client")


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def hard_timeout() -> Iterator[None]:
    """Interrupt the test (in its own thread) after HARD_TIMEOUT seconds."""

    def expire(signum: int, frame: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        raise HardTimeout(f"the test ran past its hard timeout of {HARD_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, HARD_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Data -----------------------------------------------------------------------------------------
def payload(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Identities -------------------------------------------------------------------------------------
@dataclass
class Identity:
    """A server identity for both stacks: quicnet objects and PEM files."""

    chain: tuple[Certificate, ...]
    key: PrivateKey
    root: Certificate
    cert_path: Path
    key_path: Path
    ca_path: Path

    @property
    def chain_size(self) -> int:
        return sum(len(c.to_der()) for c in self.chain)


def make_identity(directory: Path, *, padding_names: int = 0) -> Identity:
    """A dev identity for "localhost"; ``padding_names`` extra SANs make the leaf big."""
    names = ["localhost", "127.0.0.1", *(f"padding-{i:04d}.invalid" for i in range(padding_names))]
    ident = dev_identity(names)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    ca_path = directory / "ca.pem"
    cert_path.write_bytes(b"".join(c.to_pem() for c in ident.certificate_chain))
    key_path.write_bytes(ident.private_key.to_pem())
    ca_path.write_bytes(ident.trust_root.to_pem())
    return Identity(
        tuple(ident.certificate_chain),
        ident.private_key,
        ident.trust_root,
        cert_path,
        key_path,
        ca_path,
    )


def quicnet_server_config(ident: Identity, **options: Any) -> QuicConfiguration:
    options.setdefault("alpn_protocols", (ALPN,))
    options.setdefault("datagram_ack_events", True)  # the records note each DATAGRAM's fate
    return QuicConfiguration(
        is_client=False, certificate_chain=ident.chain, private_key=ident.key, **options
    )


def quicnet_client_config(ident: Identity, **options: Any) -> QuicConfiguration:
    options.setdefault("alpn_protocols", (ALPN,))
    options.setdefault("datagram_ack_events", True)
    return QuicConfiguration(
        is_client=True, server_name="localhost", trust_roots=(ident.root,), **options
    )


# Peer stacks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stack:
    """The parts of aioquic or qh3 the harness uses (their APIs are alike)."""

    name: str
    QuicConfiguration: type
    QuicConnection: type
    QuicConnectionProtocol: type
    serve: Callable[..., Awaitable[Any]]
    events: ModuleType
    QuicProtocolVersion: Any
    CipherSuite: Any


def load_stack(name: str) -> Stack:
    if name == "aioquic":
        import aioquic.asyncio as aio
        import aioquic.quic.configuration as cfg
        import aioquic.quic.connection as con
        import aioquic.quic.events as ev
        import aioquic.quic.packet as pkt
        import aioquic.tls as tls
    elif name == "qh3":
        import qh3.asyncio as aio  # type: ignore[no-redef]
        import qh3.quic.configuration as cfg  # type: ignore[no-redef]
        import qh3.quic.connection as con  # type: ignore[no-redef]
        import qh3.quic.events as ev  # type: ignore[no-redef]
        import qh3.quic.packet as pkt  # type: ignore[no-redef]
        import qh3.tls as tls  # type: ignore[no-redef]
    else:  # pragma: no cover
        raise ValueError(name)
    return Stack(
        name,
        cfg.QuicConfiguration,
        con.QuicConnection,
        aio.QuicConnectionProtocol,
        aio.serve,
        ev,
        pkt.QuicProtocolVersion,
        tls.CipherSuite,
    )


def peer_config(stack: Stack, ident: Identity, *, is_client: bool, **options: Any) -> Any:
    """A peer configuration speaking hq-interop with DATAGRAM support (RFC 9221)."""
    options.setdefault("alpn_protocols", [ALPN])
    options.setdefault("max_datagram_frame_size", 65536)
    config = stack.QuicConfiguration(is_client=is_client, **options)
    if is_client:
        config.server_name = "localhost"
        config.load_verify_locations(cafile=str(ident.ca_path))
    else:
        config.load_cert_chain(str(ident.cert_path), str(ident.key_path))
    return config


@dataclass
class PeerApp:
    """What the peer application serves and does, shared by its connections."""

    files: dict[str, bytes] = field(default_factory=dict)
    #: Call the stack's request_key_update() once this many stream bytes have arrived.
    key_update_at: int | None = None
    protocols: list[Any] = field(default_factory=list)


_protocol_classes: dict[str, type] = {}


def protocol_class(stack: Stack) -> type:
    """A QuicConnectionProtocol subclass of ``stack`` running the test application."""
    cached = _protocol_classes.get(stack.name)
    if cached is not None:
        return cached
    ev = stack.events

    class PeerProtocol(stack.QuicConnectionProtocol):  # type: ignore[misc,name-defined]
        def __init__(self, quic: Any, stream_handler: Any = None, *, app: PeerApp) -> None:
            super().__init__(quic, stream_handler=stream_handler)
            self.app = app
            self.is_client = quic.configuration.is_client
            self.alpn: str | None = None
            self.handshake_done = False
            self.buffers: dict[int, bytearray] = {}
            self.modes: dict[int, str] = {}
            self.responses: dict[int, bytes] = {}  # client: complete answers by stream
            self.resets: dict[int, int] = {}
            self.datagrams: list[bytes] = []
            self.stream_bytes = 0
            self.key_updates_requested = 0
            #: From the peer's HandshakeCompleted; stream bytes that came before it (0-RTT).
            self.session_resumed = False
            self.early_data_accepted = False
            self.early_stream_bytes = 0
            self.terminated: Any = None
            self._queued: list[tuple[bytes, list[int]]] = []
            self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
            app.protocols.append(self)

        # Events -----------------------------------------------------------------------------
        def quic_event_received(self, event: Any) -> None:
            # The base class would also feed asyncio stream readers nobody reads: skip it.
            if isinstance(event, ev.HandshakeCompleted):
                self.alpn = event.alpn_protocol
                self.handshake_done = True
                self.session_resumed = event.session_resumed
                self.early_data_accepted = event.early_data_accepted
            elif isinstance(event, ev.StreamDataReceived):
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
            elif isinstance(event, ev.StreamReset):
                self.resets[event.stream_id] = event.error_code
            elif isinstance(event, ev.DatagramFrameReceived):
                self.datagrams.append(event.data)
            elif isinstance(event, ev.ConnectionTerminated):
                self.terminated = event
            self._check_waiters()

        def _on_stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
            self.stream_bytes += len(data)
            if not self.handshake_done:
                self.early_stream_bytes += len(data)
            app = self.app
            if (
                app.key_update_at is not None
                and not self.key_updates_requested
                and self.stream_bytes >= app.key_update_at
            ):
                self._quic.request_key_update()
                self.key_updates_requested += 1
            buf = self.buffers.setdefault(stream_id, bytearray())
            peer_opened = bool(stream_id & 1) == self.is_client
            if not peer_opened:  # an answer on a stream we opened
                buf += data
                if end:
                    self.responses[stream_id] = bytes(self.buffers.pop(stream_id))
                return
            mode = self.modes.get(stream_id)
            if mode is None:
                buf += data
                if len(buf) < 4 and not end:
                    return
                mode = self.modes[stream_id] = "get" if buf.startswith(b"GET ") else "echo"
                data = bytes(buf)
                buf.clear()
            if mode == "echo":
                self._quic.send_stream_data(stream_id, data, end)
                return
            if mode == "done":
                return  # the request is answered; a late FIN changes nothing
            buf += data
            if b"\n" in buf or end:
                line = bytes(buf).split(b"\n", 1)[0].strip()
                name = line[4:].decode("latin-1").split(" ", 1)[0]
                body = app.files.get(name)
                if body is None:
                    self._quic.reset_stream(stream_id, 0x104)
                else:
                    self._quic.send_stream_data(stream_id, body, True)
                self.modes[stream_id] = "done"

        # Waiting ----------------------------------------------------------------------------
        def _check_waiters(self) -> None:
            for item in list(self._waiters):
                predicate, future = item
                if future.done():
                    self._waiters.remove(item)
                elif predicate():
                    future.set_result(None)
                    self._waiters.remove(item)
                elif self.terminated is not None:
                    future.set_exception(
                        ConnectionError(f"{stack.name} connection ended: {self.terminated}")
                    )
                    self._waiters.remove(item)

        async def wait_until(self, predicate: Callable[[], bool]) -> None:
            if predicate():
                return
            if self.terminated is not None:
                raise ConnectionError(f"{stack.name} connection ended: {self.terminated}")
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((predicate, future))
            await future

        async def wait_terminated(self) -> Any:
            await self.wait_until(lambda: self.terminated is not None)
            return self.terminated

        # Client actions ---------------------------------------------------------------------
        def _can_open_bidi(self) -> bool:
            # qh3 raises past the peer's MAX_STREAMS (and tells the limit); aioquic queues.
            limit = getattr(self._quic, "max_concurrent_bidi_streams", None)
            if limit is None:
                return True
            return bool(self._quic.get_next_available_stream_id() >> 2 < limit)

        def _open_queued(self) -> None:
            opened = False
            while self._queued and self._can_open_bidi():
                data, slot = self._queued.pop(0)
                stream_id = self._quic.get_next_available_stream_id()
                self._quic.send_stream_data(stream_id, data, True)
                slot.append(stream_id)
                opened = True
            if opened:
                self.transmit()

        def datagram_received(self, data: Any, addr: Any) -> None:
            super().datagram_received(data, addr)
            self._open_queued()

        def datagrams_received(self, data: Any, addr: Any) -> None:  # qh3's batched path
            super().datagrams_received(data, addr)
            self._open_queued()

        def open_request(self, data: bytes) -> list[int]:
            """Send ``data`` with FIN on a new stream, now or once the peer allows one."""
            slot: list[int] = []
            self._queued.append((data, slot))
            self._open_queued()
            return slot

        def _answered(self, slot: list[int]) -> bool:
            return bool(slot) and (slot[0] in self.responses or slot[0] in self.resets)

        async def get(self, name: str) -> bytes:
            slot = self.open_request(f"GET {name}\r\n".encode())
            await self.wait_until(lambda: self._answered(slot))
            if slot[0] in self.resets:
                raise ConnectionError(f"GET {name} was reset ({self.resets[slot[0]]})")
            return self.responses[slot[0]]

        async def get_many(self, names: list[str]) -> dict[int, tuple[str, bytes]]:
            slots = [(self.open_request(f"GET {n}\r\n".encode()), n) for n in names]
            await self.wait_until(lambda: all(self._answered(s) for s, _ in slots))
            return {s[0]: (n, self.responses[s[0]]) for s, n in slots}

        async def echo(self, data: bytes) -> bytes:
            slot = self.open_request(data)
            await self.wait_until(lambda: self._answered(slot))
            return self.responses[slot[0]]

        def send_datagrams(self, items: list[bytes]) -> None:
            for item in items:
                self._quic.send_datagram_frame(item)
            self.transmit()

    _protocol_classes[stack.name] = PeerProtocol
    return PeerProtocol


# The peer's event loop ------------------------------------------------------------------------
class PeerLoop:
    """An asyncio loop in a daemon thread, for the peer stack."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="peer-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = PHASE_TIMEOUT) -> T:
        return self.submit(coro).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` in the loop's thread (peer objects are not thread-safe)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            with contextlib.suppress(Exception):
                self.submit(cancel_all()).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


@pytest.fixture
def peer_loop() -> Iterator[PeerLoop]:
    loop = PeerLoop()
    try:
        yield loop
    finally:
        loop.close()


@dataclass
class PeerServer:
    stack: Stack
    server: Any
    app: PeerApp
    address: tuple[str, int]


async def start_peer_server(
    stack: Stack, config: Any, app: PeerApp, *, retry: bool = False, **serve_options: Any
) -> PeerServer:
    cls = protocol_class(stack)

    def create_protocol(quic: Any, stream_handler: Any = None) -> Any:
        return cls(quic, stream_handler=stream_handler, app=app)

    server = await stack.serve(
        "127.0.0.1",
        0,
        configuration=config,
        create_protocol=create_protocol,
        retry=retry,
        **serve_options,
    )
    # Neither stack exposes the bound address publicly: ask its transport.
    address = server._transport.get_extra_info("sockname")[:2]
    return PeerServer(stack, server, app, address)


async def stop_peer_server(peer: PeerServer) -> None:
    peer.server.close()


@contextlib.contextmanager
def peer_server(
    loop: PeerLoop,
    stack: Stack,
    config: Any,
    app: PeerApp,
    *,
    retry: bool = False,
    **serve_options: Any,
) -> Iterator[PeerServer]:
    server = loop.run(start_peer_server(stack, config, app, retry=retry, **serve_options), 10)
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            loop.run(stop_peer_server(server), 5)


async def run_peer_client(
    stack: Stack,
    config: Any,
    address: tuple[str, int],
    scenario: Callable[[Any], Awaitable[T]],
    *,
    app: PeerApp | None = None,
    timeout: float = PHASE_TIMEOUT,
    close: bool = True,
    before_handshake: Callable[[Any], object] | None = None,
    **connection_options: Any,
) -> T:
    """Connect a peer client from a fresh 127.0.0.1 socket, run ``scenario(protocol)``.

    ``before_handshake(protocol)`` runs right after connecting (what it sends goes in
    0-RTT when the configuration's session ticket allows); ``connection_options`` go to
    the stack's QuicConnection (``session_ticket_handler``, ...).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    cls = protocol_class(stack)
    quic = stack.QuicConnection(configuration=config, **connection_options)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: cls(quic, app=app or PeerApp()), sock=sock
    )
    try:
        protocol.connect(address)
        if before_handshake is not None:
            before_handshake(protocol)
        await asyncio.wait_for(protocol.wait_until(lambda: protocol.handshake_done), timeout)
        return await asyncio.wait_for(scenario(protocol), timeout)
    finally:
        if close and protocol.terminated is None:
            protocol.close()
            with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
                await asyncio.wait_for(protocol.wait_closed(), 2.0)
        transport.close()


# quicnet in the test's thread -------------------------------------------------------------------
def pump(*drivers: Any, until: Callable[[], bool], timeout: float = PHASE_TIMEOUT) -> None:
    """Poll quicnet drivers until ``until()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    step = 0.02 / max(1, len(drivers))
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        for d in drivers:
            d.poll(step)


def wait_future(
    future: concurrent.futures.Future[T], *drivers: Any, timeout: float = PHASE_TIMEOUT
) -> T:
    """Poll quicnet drivers until the peer's ``future`` is done; its result."""
    pump(*drivers, until=future.done, timeout=timeout)
    return future.result(0)


@dataclass
class ConnRecord:
    """What one quicnet connection saw."""

    conn: QuicConnection
    buffers: dict[int, bytearray] = field(default_factory=dict)
    modes: dict[int, str] = field(default_factory=dict)
    responses: dict[int, bytes] = field(default_factory=dict)
    resets: dict[int, int] = field(default_factory=dict)
    datagrams: list[bytes] = field(default_factory=list)
    datagrams_acked: set[int] = field(default_factory=set)
    datagrams_lost: set[int] = field(default_factory=set)
    stream_bytes: int = 0
    key_updates_requested: int = 0
    handshake: HandshakeCompleted | None = None
    terminated: ConnectionTerminated | None = None
    #: (old, new) from each PeerAddressChanged; each address a PathValidated confirmed.
    address_changes: list[tuple[Any, Any]] = field(default_factory=list)
    validated: list[Any] = field(default_factory=list)


class _QuicnetApp:
    """The test application on quicnet connections (client or server side)."""

    def __init__(
        self,
        files: dict[str, bytes] | None = None,
        *,
        key_update_at: int | None = None,
    ) -> None:
        self.files = files or {}
        self.key_update_at = key_update_at

    def handle(self, rec: ConnRecord, event: Any) -> None:
        conn = rec.conn
        if conn.state.value in ("closing", "draining", "terminated"):
            # Events already queued when the connection closed: record, do not answer.
            if isinstance(event, ConnectionTerminated):
                rec.terminated = event
            return
        if isinstance(event, HandshakeCompleted):
            rec.handshake = event
        elif isinstance(event, StreamDataReceived):
            self._on_stream_data(rec, event.stream_id, event.data, event.end_stream)
        elif isinstance(event, StreamReset):
            rec.resets[event.stream_id] = event.error_code
        elif isinstance(event, DatagramReceived):
            rec.datagrams.append(event.data)
        elif isinstance(event, DatagramAcknowledged):
            rec.datagrams_acked.add(event.datagram_id)
        elif isinstance(event, DatagramLost):
            rec.datagrams_lost.add(event.datagram_id)
        elif isinstance(event, PeerAddressChanged):
            rec.address_changes.append((event.old_address, event.new_address))
        elif isinstance(event, PathValidated):
            rec.validated.append(event.address)
        elif isinstance(event, ConnectionTerminated):
            rec.terminated = event

    def _on_stream_data(self, rec: ConnRecord, stream_id: int, data: bytes, end: bool) -> None:
        conn = rec.conn
        rec.stream_bytes += len(data)
        if (
            self.key_update_at is not None
            and not rec.key_updates_requested
            and rec.stream_bytes >= self.key_update_at
        ):
            conn.request_key_update()
            rec.key_updates_requested += 1
        buf = rec.buffers.setdefault(stream_id, bytearray())
        peer_opened = bool(stream_id & 1) == conn.is_client
        if not peer_opened:
            buf += data
            if end:
                rec.responses[stream_id] = bytes(rec.buffers.pop(stream_id))
            return
        mode = rec.modes.get(stream_id)
        if mode is None:
            buf += data
            if len(buf) < 4 and not end:
                return
            mode = rec.modes[stream_id] = "get" if buf.startswith(b"GET ") else "echo"
            data = bytes(buf)
            buf.clear()
        if mode == "echo":
            conn.send_stream_data(stream_id, data, end)
            return
        if mode == "done":
            return  # the request is answered; a late FIN changes nothing
        buf += data
        if b"\n" in buf or end:
            line = bytes(buf).split(b"\n", 1)[0].strip()
            name = line[4:].decode("latin-1").split(" ", 1)[0]
            body = self.files.get(name)
            if body is None:
                conn.reset_stream(stream_id, 0x104)
            else:
                conn.send_stream_data(stream_id, body, True)
            rec.modes[stream_id] = "done"


class QuicnetServer(_QuicnetApp):
    """quicnet's UdpServer on 127.0.0.1:port running the test application."""

    def __init__(
        self,
        config: QuicConfiguration,
        files: dict[str, bytes] | None = None,
        *,
        port: int = 0,
        key_update_at: int | None = None,
        **endpoint_options: Any,
    ) -> None:
        super().__init__(files, key_update_at=key_update_at)
        self.driver = UdpServer(config, "127.0.0.1", port, **endpoint_options)
        self.endpoint = self.driver.endpoint
        self.address: tuple[str, int] = tuple(self.driver.local_address[:2])  # type: ignore[assignment]
        self.records: dict[int, ConnRecord] = {}
        self._closed = False

    def record(self, conn: QuicConnection) -> ConnRecord:
        rec = self.records.get(id(conn))
        if rec is None:
            rec = self.records[id(conn)] = ConnRecord(conn)
        return rec

    @property
    def connections(self) -> list[ConnRecord]:
        return list(self.records.values())

    def poll(self, timeout: float) -> None:
        for conn, event in self.driver.poll(timeout):
            self.handle(self.record(conn), event)
        self.driver.flush()

    def crash(self) -> None:
        """Stop without a word to anyone: the socket just closes."""
        if not self._closed:
            self._closed = True
            self.driver.close_socket()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self.endpoint.close()
                self.driver.flush()
            self.driver.close_socket()


class QuicnetClient(_QuicnetApp):
    """quicnet's UdpClient from 127.0.0.1 running the test application."""

    def __init__(
        self,
        config: QuicConfiguration,
        address: tuple[str, int],
        *,
        key_update_at: int | None = None,
    ) -> None:
        super().__init__(key_update_at=key_update_at)
        self.driver = UdpClient(config, address, local_host="127.0.0.1")
        self.conn = self.driver.connection
        self.rec = ConnRecord(self.conn)
        self._queued: list[tuple[bytes, list[int]]] = []  # requests waiting for stream credit
        self._closed = False

    def poll(self, timeout: float) -> None:
        for event in self.driver.poll(timeout):
            self.handle(self.rec, event)
        self._open_queued()
        self.driver.flush()

    @property
    def connected(self) -> bool:
        if self.rec.terminated is not None:
            raise ConnectionError(f"quicnet connection ended: {self.rec.terminated}")
        return self.rec.handshake is not None

    def handshake(self, timeout: float = PHASE_TIMEOUT) -> HandshakeCompleted:
        pump(self, until=lambda: self.connected, timeout=timeout)
        assert self.rec.handshake is not None
        return self.rec.handshake

    def request(self, data: bytes) -> list[int]:
        """Send ``data`` (with FIN) on a new stream, now or once the peer allows one."""
        slot: list[int] = []
        self._queued.append((data, slot))
        self._open_queued()
        self.driver.flush()
        return slot

    def _open_queued(self) -> None:
        while self._queued and self.rec.handshake is not None and self.rec.terminated is None:
            data, slot = self._queued[0]
            try:
                stream_id = self.conn.create_stream()
            except QuicUsageError:
                return  # the peer's MAX_STREAMS: wait for more credit
            self._queued.pop(0)
            self.conn.send_stream_data(stream_id, data, end_stream=True)
            slot.append(stream_id)

    def response(self, slot: list[int]) -> bytes | None:
        if self.rec.terminated is not None:
            raise ConnectionError(f"quicnet connection ended: {self.rec.terminated}")
        if not slot:
            return None
        if slot[0] in self.rec.resets:
            raise ConnectionError(f"stream {slot[0]} was reset ({self.rec.resets[slot[0]]})")
        return self.rec.responses.get(slot[0])

    def get(self, name: str, timeout: float = PHASE_TIMEOUT) -> bytes:
        slot = self.request(f"GET {name}\r\n".encode())
        pump(self, until=lambda: self.response(slot) is not None, timeout=timeout)
        body = self.response(slot)
        assert body is not None
        return body

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError, QuicUsageError):
                self.conn.close()
                self.driver.flush()
            self.driver.close_socket()


# The wire -------------------------------------------------------------------------------------
#: Long-header packet types by version: Initial, 0-RTT, Handshake, Retry (RFC 9000, RFC 9369).
_LONG_TYPES = {
    0x00000001: {0: "initial", 1: "0rtt", 2: "handshake", 3: "retry"},
    0x6B3343CF: {1: "initial", 2: "0rtt", 3: "handshake", 0: "retry"},
}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    length = 1 << (first >> 6)
    value = first & 0x3F
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, pos + length


def packet_types(datagram: bytes, versions: set[tuple[str, int]] | None = None) -> list[str]:
    """The packets coalesced in a datagram, by type ("1rtt" for a short header); adds
    each long header's ``(type, version)`` to ``versions`` when given."""
    out: list[str] = []
    pos = 0
    try:
        while pos < len(datagram):
            first = datagram[pos]
            if not first & 0x80:
                out.append("1rtt")
                break
            version = int.from_bytes(datagram[pos + 1 : pos + 5], "big")
            if version == 0:
                out.append("vn")
                break
            kind = _LONG_TYPES.get(version, {}).get((first >> 4) & 0x03, "unknown")
            out.append(kind)
            if versions is not None:
                versions.add((kind, version))
            if kind in ("retry", "unknown"):
                break
            p = pos + 5
            p += 1 + datagram[p]  # DCID
            p += 1 + datagram[p]  # SCID
            if kind == "initial":
                token_length, p = _varint(datagram, p)
                p += token_length
            length, p = _varint(datagram, p)
            pos = p + length
    except IndexError:
        out.append("truncated")
    return out


#: What a policy returns to keep a datagram back: it goes just before the next datagram of
#: its direction that the policy forwards (a late datagram, overtaken by none but that one).
HOLD = "hold"

Policy = Callable[[str, int, bytes], bool | str]


def drop_first(count: int, rate: float, seed: int) -> Policy:
    """Drop each of the first ``count`` datagrams of each direction with probability ``rate``."""
    rngs = {"c2s": random.Random(seed), "s2c": random.Random(seed + 1)}

    def policy(direction: str, index: int, data: bytes) -> bool:
        if index >= count:
            return True
        return rngs[direction].random() >= rate

    return policy


def drop_after(skip: int, rate: float, seed: int) -> Policy:
    """Spare the first ``skip`` datagrams of each direction, then drop with ``rate``."""
    rngs = {"c2s": random.Random(seed), "s2c": random.Random(seed + 1)}

    def policy(direction: str, index: int, data: bytes) -> bool:
        if index < skip:
            return True
        return rngs[direction].random() >= rate

    return policy


class UdpRelay:
    """A UDP relay on 127.0.0.1 between one client and ``target``, in its own thread.

    ``policy(direction, index, datagram)`` says whether to forward
    (directions "c2s" and "s2c"; ``index`` counts per direction), or HOLD to
    forward it just before the next datagram of its direction that goes. It counts
    what passes, notes the packet types, and watches the server's bytes
    against the 3x amplification limit until the client's first Handshake
    packet goes by.
    """

    def __init__(
        self, target: tuple[str, int], policy: Policy | None = None, *, capture: bool = False
    ) -> None:
        self.target = target
        self.policy = policy
        #: With ``capture``: every datagram seen, as (direction, bytes), in order.
        self.captured: list[tuple[str, bytes]] | None = [] if capture else None
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        for s in (self.front, self.back):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            s.setblocking(False)
        self.address: tuple[str, int] = self.front.getsockname()
        self.client: Any = None
        self.lock = threading.Lock()
        self.seen = {"c2s": 0, "s2c": 0}
        self.passed = {"c2s": 0, "s2c": 0}
        self.dropped = {"c2s": 0, "s2c": 0}
        #: Datagrams the policy held back (HOLD), each way, not yet forwarded.
        self.held: dict[str, list[bytes]] = {"c2s": [], "s2c": []}
        self.bytes = {"c2s": 0, "s2c": 0}
        self.types: dict[str, dict[str, int]] = {"c2s": {}, "s2c": {}}
        #: (long-header packet type, QUIC version) seen each way.
        self.versions: dict[str, set[tuple[str, int]]] = {"c2s": set(), "s2c": set()}
        # Amplification accounting, up to the client's first Handshake packet.
        self.validated = False
        self.pre_validation = {"c2s": 0, "s2c": 0}
        self.worst_excess = 0  # max(server bytes - 3 * client bytes) before validation
        self._stop = threading.Event()
        #: A socket to forward the client's datagrams from instead of ``back`` (rebind()).
        self._new_back: socket.socket | None = None
        self._linger = 0.0
        #: Server datagrams that came to the new port since the last rebind(): the server
        #: followed the client there.
        self.rebound_s2c = 0
        self._rebinds = 0
        #: Replaced ``back`` sockets still read until their deadline (a NAT's old mapping).
        self._old_backs: list[tuple[socket.socket, float]] = []
        self._rebound = threading.Event()
        self._synced = threading.Event()
        self._sync_sock: socket.socket | None = None
        self.thread = threading.Thread(target=self._run, name="udp-relay", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._new_back is not None:  # swapped here: select() never sees a closed socket
                self._rebinds += 1
                self._old_backs.append((self.back, time.monotonic() + self._linger))
                self.back, self._new_back = self._new_back, None
                self._rebound.set()
            while self._old_backs and self._old_backs[0][1] <= time.monotonic():
                self._old_backs.pop(0)[0].close()
            old = [sock for sock, _ in self._old_backs]
            try:
                readable, _, _ = select.select([self.front, self.back, *old], [], [], 0.05)
            except (OSError, ValueError):
                return
            for sock in readable:
                for _ in range(64):
                    try:
                        data, addr = sock.recvfrom(65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue
                    if self._sync_sock is not None and addr == self._sync_sock.getsockname():
                        self._synced.set()  # everything queued before the marker is handled
                        continue
                    if sock is self.front:
                        self.client = addr
                        self._forward("c2s", data, self.back, self.target)
                    elif self.client is not None:
                        if sock is self.back and self._rebinds:
                            self.rebound_s2c += 1
                        self._forward("s2c", data, self.front, self.client)

    def _forward(self, direction: str, data: bytes, out: socket.socket, to: Any) -> None:
        with self.lock:
            index = self.seen[direction]
            self.seen[direction] += 1
            kinds = packet_types(data, self.versions[direction])
            if self.captured is not None:
                self.captured.append((direction, data))
            for kind in kinds:
                self.types[direction][kind] = self.types[direction].get(kind, 0) + 1
            verdict = True if self.policy is None else self.policy(direction, index, data)
            if verdict == HOLD:
                self.held[direction].append(data)
                return
            if not verdict:
                self.dropped[direction] += 1
                return
            held, self.held[direction] = self.held[direction], []
            size = len(data) + sum(map(len, held))
            if not self.validated:
                if direction == "c2s" and "handshake" in kinds:
                    self.validated = True
                else:
                    self.pre_validation[direction] += size
                    excess = self.pre_validation["s2c"] - 3 * self.pre_validation["c2s"]
                    self.worst_excess = max(self.worst_excess, excess)
            self.passed[direction] += 1 + len(held)
            self.bytes[direction] += size
        with contextlib.suppress(OSError):
            for late in held:
                out.sendto(late, to)
            out.sendto(data, to)

    def rebind(
        self, host: str = "127.0.0.1", *, linger: float = 0.5, timeout: float = 5.0
    ) -> tuple[str, int]:
        """NAT rebinding: the client's datagrams reach the server from a new port (on
        ``host``, another loopback address for rebind-addr) from now on. What the server
        sends to the old port still reaches the client for ``linger`` seconds, as through
        a NAT's old mapping (else a client with nothing to send, its last ACKs gone out
        before the move, would never show the server its new address); then the old
        port closes, and a server that has not followed strands the transfer."""
        new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        new.bind((host, 0))
        new.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        new.setblocking(False)
        self._rebound.clear()
        self.rebound_s2c = 0
        self._linger = linger
        self._new_back = new
        if not self._rebound.wait(timeout):
            raise TimeoutError("the relay did not rebind")
        address: tuple[str, int] = new.getsockname()
        return address

    def sync(self, timeout: float = 5.0) -> None:
        """Return once the relay has handled every datagram already queued to it."""
        marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        marker.bind(("127.0.0.1", 0))
        try:
            self._synced.clear()
            self._sync_sock = marker
            for sock in (self.front, self.back):
                marker.sendto(b"sync", sock.getsockname())
                if not self._synced.wait(timeout):
                    raise TimeoutError("the relay did not catch up")
                self._synced.clear()
        finally:
            self._sync_sock = None
            marker.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.front.close()
        self.back.close()
        for sock, _ in self._old_backs:
            sock.close()


@contextlib.contextmanager
def relay(
    target: tuple[str, int], policy: Policy | None = None, *, capture: bool = False
) -> Iterator[UdpRelay]:
    r = UdpRelay(target, policy, capture=capture)
    try:
        yield r
    finally:
        r.close()


@contextlib.contextmanager
def closing(*things: Any) -> Iterator[None]:
    """Close quicnet drivers (in reverse order) whatever happens."""
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                thing.close()


# Fixtures shared by the test modules (import them by name) -------------------------------------
@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Stack:
    return load_stack(request.param)


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return make_identity(tmp_path / "identity")


class Gate:
    """An asyncio.Event on the peer loop that the test's thread opens."""

    def __init__(self, loop: PeerLoop) -> None:
        self._loop = loop
        self.event = asyncio.Event()

    def open(self) -> None:
        self._loop.loop.call_soon_threadsafe(self.event.set)

    async def wait(self) -> None:
        await self.event.wait()
