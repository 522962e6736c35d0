"""The far ends of quic_bench.py's loopback measurements, one stack per process.

    python benchmarks/_peers.py server --stack STACK --mode echo|bulk|capacity --certdir DIR
    python benchmarks/_peers.py clients --port PORT --certdir DIR --clients N --seconds S

``server`` binds 127.0.0.1 port 0, prints ``port N`` and serves until its stdin
closes; a ``stats`` line on stdin is answered with ``stats {json}`` (the
process's CPU seconds and counters). Every mode echoes what arrives (raw
stacks: each datagram; QUIC stacks: each DATAGRAM frame); ``bulk`` also counts
stream bytes and prints ``done BYTES MONOTONIC`` when a stream ends;
``capacity`` answers each input with a 300-byte snapshot that starts with the
input's first 16 bytes.

``clients`` is the load generator of the capacity test: N client connections
(sans-I/O, quicnet's or with ``--generator qh3`` qh3's), each on its own
UDP socket, each sending a 100-byte input at
30 Hz (phases spread over the tick) and timing the snapshot that answers it.
It prints ``measuring`` and ``measured`` around the measured window (after a
warm-up) and then ``result {json}``.

DIR holds ``ca.pem``, ``cert.pem`` and ``key.pem`` (the server's identity and
the CA every client trusts).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import heapq
import importlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from _common import SERVER_STACKS

from quicnet.crypto import load_certificate, load_certificates, load_private_key
from quicnet.quic import (
    AckFrequencyRequest,
    ConnectionTerminated,
    DatagramLost,
    DatagramReceived,
    QuicConfiguration,
    QuicConnection,
    QuicUsageError,
    StreamDataReceived,
)

ALPN = "bench"
#: The loop kind of each stack name's suffix.
LOOPS = ("asyncio", "uvloop")
INPUT_SIZE = 100
SNAPSHOT_SIZE = 300
_READS = 256
#: What the capacity server asks its clients (draft-ietf-quic-ack-frequency): a 30 Hz
#: client's ACK may wait a little over one tick, so it rides on the next input instead
#: of costing the server a datagram of its own (clients that do not offer the extension,
#: such as qh3's, keep acknowledging as RFC 9000 says).
GAME_ACK_FREQUENCY = AckFrequencyRequest(max_ack_delay=0.05)
_MAX_DATAGRAM = 65536

_out_lock = threading.Lock()


def emit(line: str) -> None:
    """One line on stdout, whole, flushed (the control thread writes too)."""
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def run_loop(stack: str, main: Coroutine[Any, Any, Any]) -> Any:
    """Run ``main`` on the event loop the stack name asks for (``...-uvloop`` or asyncio)."""
    if stack.endswith("-uvloop"):
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def server_configuration(certdir: Path, mode: str = "echo") -> QuicConfiguration:
    """The server's identity from ``certdir``; a ``capacity`` server also asks its
    clients for fewer ACKs (GAME_ACK_FREQUENCY). No server asks for DATAGRAM fates
    (``datagram_ack_events``, off by default)."""
    return QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        certificate_chain=load_certificates((certdir / "cert.pem").read_bytes()),
        private_key=load_private_key((certdir / "key.pem").read_bytes()),
        ack_frequency=GAME_ACK_FREQUENCY if mode == "capacity" else None,
    )


def client_configuration(certdir: Path) -> QuicConfiguration:
    """Verification on: the dev CA is the only trust root, the name must match."""
    return QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        trust_roots=[load_certificate((certdir / "ca.pem").read_bytes())],
    )


class GcPauses:
    """Full (generation 2) garbage collections in this process: how many, the longest."""

    def __init__(self) -> None:
        self.full = 0
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.full += 1
            self.longest = max(self.longest, time.perf_counter() - self._started)


class Server:
    """What every server stack shares: the answer to an input, counters, control."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.counters = {"datagrams": 0, "stream_bytes": 0, "errors": 0}
        self._pad = bytes(SNAPSHOT_SIZE - 16)
        self.gc = GcPauses()

    def answer(self, data: bytes) -> bytes:
        self.counters["datagrams"] += 1
        if self.mode == "capacity":
            return data[:16] + self._pad
        return data

    def stream_data(self, length: int, end: bool) -> None:
        self.counters["stream_bytes"] += length
        if end:
            emit(f"done {self.counters['stream_bytes']} {time.monotonic()!r}")

    def start_control(self) -> None:
        """Answer ``stats`` lines on stdin; end the process when stdin closes."""

        def control() -> None:
            for line in sys.stdin:
                if line.strip() == "stats":
                    # (the longest since the previous stats line)
                    gc_figures = {"full_gc": self.gc.full, "longest_full_gc": self.gc.longest}
                    self.gc.longest = 0.0
                    t = os.times()
                    figures = {
                        "cpu": time.process_time(),
                        "user": t.user,
                        "sys": t.system,
                        **self.counters,
                        **gc_figures,
                    }
                    emit("stats " + json.dumps(figures))
            sys.stdout.flush()
            os._exit(0)

        threading.Thread(target=control, daemon=True).start()


def _udp_socket(blocking: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 21)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(blocking)
    return sock


# Raw UDP, one per I/O model ------------------------------------------------------------------


def serve_raw_blocking(server: Server) -> None:
    sock = _udp_socket(blocking=True)
    emit(f"port {sock.getsockname()[1]}")
    while True:
        data, address = sock.recvfrom(_MAX_DATAGRAM)
        sock.sendto(server.answer(data), address)


def input_waiting(sock: socket.socket) -> Callable[[int], list[tuple[int, int]]]:
    """``poll`` of a ``select.poll`` on ``sock``: ``poll(0)`` is non-empty while a
    datagram waits. The raw loops drain as quicnet's drivers do (quicnet.io.udp's
    ``input_poller``): after the first datagram of a wakeup they ask this instead of
    reading until a read fails with EAGAIN, so both sides use the cheaper check."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return poller.poll


def _drain_and_answer(
    sock: socket.socket, server: Server, waiting: Callable[[int], list[tuple[int, int]]]
) -> None:
    for _ in range(_READS):
        try:
            data, address = sock.recvfrom(_MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return
        sock.sendto(server.answer(data), address)
        if not waiting(0):
            return


def serve_raw_select(server: Server) -> None:
    """As quicnet.io.udp: select() with a timeout, then drain the socket."""
    sock = _udp_socket(blocking=False)
    waiting = input_waiting(sock)
    emit(f"port {sock.getsockname()[1]}")
    while True:
        readable, _, _ = select.select([sock], [], [], 0.01)
        if readable:
            _drain_and_answer(sock, server, waiting)


async def serve_raw_asyncio(server: Server) -> None:
    """As quicnet.io.aio: loop.add_reader, then drain the socket per wakeup."""
    loop = asyncio.get_running_loop()
    sock = _udp_socket(blocking=False)
    loop.add_reader(sock.fileno(), _drain_and_answer, sock, server, input_waiting(sock))
    emit(f"port {sock.getsockname()[1]}")
    await loop.create_future()


# quicnet ---------------------------------------------------------------------------------------


def serve_quicnet_tick(server: Server, certdir: Path) -> None:
    """A tick-driven loop: poll with a timeout, answer the events, flush."""
    from quicnet.io.udp import UdpServer

    udp = UdpServer(server_configuration(certdir, server.mode), "127.0.0.1", 0)
    emit(f"port {udp.local_address[1]}")
    while True:
        events = udp.poll(0.01)
        if not events:
            continue
        for conn, event in events:
            if isinstance(event, DatagramReceived):
                try:
                    conn.send_datagram(server.answer(event.data))
                except QuicUsageError:
                    server.counters["errors"] += 1
            elif isinstance(event, StreamDataReceived):
                server.stream_data(len(event.data), event.end_stream)
        udp.flush()


async def serve_quicnet_aio(server: Server, certdir: Path) -> None:
    from quicnet.io.aio import serve

    def handler(conn: QuicConnection, event: Any) -> None:
        if isinstance(event, DatagramReceived):
            try:
                conn.send_datagram(server.answer(event.data))
            except QuicUsageError:
                server.counters["errors"] += 1
        elif isinstance(event, StreamDataReceived):
            server.stream_data(len(event.data), event.end_stream)

    quic = await serve("127.0.0.1", 0, server_configuration(certdir, server.mode), handler)
    emit(f"port {quic.local_address[1]}")
    await asyncio.get_running_loop().create_future()


# aioquic and qh3 -----------------------------------------------------------------------------


def other_stack(name: str) -> dict[str, Any]:
    """aioquic's or qh3's asyncio API and events, by name (qh3 began as aioquic's fork)."""
    package = importlib.import_module(name)
    aio = importlib.import_module(f"{name}.asyncio")
    events = importlib.import_module(f"{name}.quic.events")
    return {
        "Protocol": aio.QuicConnectionProtocol,
        "connect": aio.connect,
        "serve": aio.serve,
        "Config": importlib.import_module(f"{name}.quic.configuration").QuicConfiguration,
        "Connection": importlib.import_module(f"{name}.quic.connection").QuicConnection,
        "Datagram": events.DatagramFrameReceived,
        "StreamData": events.StreamDataReceived,
        "HandshakeCompleted": events.HandshakeCompleted,
        "version": getattr(package, "__version__", None),
    }


async def serve_other(server: Server, name: str, certdir: Path) -> None:
    api = other_stack(name)
    datagram, stream_data = api["Datagram"], api["StreamData"]

    base: Any = api["Protocol"]

    class Protocol(base):  # type: ignore[misc]
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, datagram):
                self._quic.send_datagram_frame(server.answer(event.data))
                self.transmit()
            elif isinstance(event, stream_data):
                server.stream_data(len(event.data), event.end_stream)

    config = api["Config"](is_client=False, alpn_protocols=[ALPN], max_datagram_frame_size=65536)
    config.load_cert_chain(str(certdir / "cert.pem"), str(certdir / "key.pem"))
    quic = await api["serve"]("127.0.0.1", 0, configuration=config, create_protocol=Protocol)
    emit(f"port {quic._transport.get_extra_info('sockname')[1]}")
    await asyncio.get_running_loop().create_future()


def run_server(stack: str, mode: str, certdir: Path) -> None:
    server = Server(mode)
    server.start_control()
    family, _, _loop = stack.partition("-")
    if stack == "raw-blocking":
        serve_raw_blocking(server)
    elif stack == "raw-select":
        serve_raw_select(server)
    elif family == "raw":
        run_loop(stack, serve_raw_asyncio(server))
    elif stack == "quicnet-tick":
        serve_quicnet_tick(server, certdir)
    elif family == "quicnet":
        run_loop(stack, serve_quicnet_aio(server, certdir))
    elif family in ("aioquic", "qh3"):
        run_loop(stack, serve_other(server, family, certdir))
    else:
        raise SystemExit(f"unknown stack {stack}")


# The capacity test's load generator -----------------------------------------------------------

#: Input header (16 bytes, copied into the snapshot): client index, sequence number
#: (mod 2**16), 1 if inside the measured window, send time (perf_counter).
_INPUT = struct.Struct("!IHHd")


class Qh3Client:
    """A qh3 client connection behind the few quicnet-shaped calls ClientFleet makes.

    qh3's packet path is in Rust: as the load generator it leaves more of the
    machine's two cores to the quicnet server under test.
    """

    def __init__(self, config: Any) -> None:
        from qh3.quic.connection import QuicConnection as Connection

        self._conn: Any = Connection(configuration=config)
        self.host_cid: bytes = self._conn.host_cid
        self.handshake_complete = False
        self.termination: Any = None

    def connect(self, address: tuple[str, int], now: float) -> None:
        self._conn.connect(address, now=now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        sent: list[tuple[bytes, Any]] = self._conn.datagrams_to_send(now=now)
        return sent

    def receive_datagram(self, data: bytes, address: Any, now: float) -> None:
        self._conn.receive_datagram(data, address, now=now)

    def next_timer(self) -> float | None:
        deadline: float | None = self._conn.get_timer()
        return deadline

    def handle_timer(self, now: float) -> None:
        self._conn.handle_timer(now=now)

    def send_datagram(self, data: bytes) -> None:
        self._conn.send_datagram_frame(data)

    def next_event(self) -> Any:
        while (event := self._conn.next_event()) is not None:
            name = type(event).__name__
            if name == "DatagramFrameReceived":
                return DatagramReceived(event.data)
            if name == "HandshakeCompleted":
                self.handshake_complete = True
            elif name == "ConnectionTerminated":
                self.termination = ConnectionTerminated(
                    event.error_code, event.frame_type, event.reason_phrase, by_peer=True
                )
                return self.termination
        return None


class ClientFleet:
    """Many sans-I/O client connections in one process, each on a UDP socket of its own.

    Each client has its own port, as real clients have their own addresses (a
    server must not be able to batch, say, GSO sends to many clients because
    they share an address); one epoll waits on all of them.
    """

    def __init__(self, config: Any, server: tuple[str, int], *, qh3: bool = False) -> None:
        self.config = config
        self.qh3 = qh3
        self.server = server
        # One level-triggered epoll over every client's socket (select.epoll directly:
        # the selectors module's per-event Python was a sixth of the generator's CPU).
        self.poller = select.epoll()
        self.index_of: dict[int, int] = {}  # socket fd -> client index
        self.socks: list[socket.socket] = []
        self.conns: list[Any] = []  # QuicConnection or Qh3Client
        self.timers: list[tuple[float, int]] = []
        #: Each connection's deadline as last put on ``timers``; an entry that differs
        #: is stale and dropped when it comes up (as QuicEndpoint keeps its heap).
        self.deadlines: list[float | None] = []
        self.send_failures = 0
        self.on_event: Callable[[int, Any, float], None] = lambda i, event, now: None

    def add(self, now: float) -> int:
        conn = Qh3Client(self.config) if self.qh3 else QuicConnection(self.config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        index = len(self.conns)
        self.conns.append(conn)
        self.socks.append(sock)
        self.deadlines.append(None)
        self.poller.register(sock.fileno(), select.EPOLLIN)
        self.index_of[sock.fileno()] = index
        conn.connect(self.server, now)
        self.flush(index, now)
        return index

    def close(self) -> None:
        for sock in self.socks:
            self.poller.unregister(sock.fileno())
            sock.close()
        self.poller.close()

    def flush(self, index: int, now: float) -> None:
        conn = self.conns[index]
        sock, server = self.socks[index], self.server
        for data, _ in conn.datagrams_to_send(now):
            try:
                sock.sendto(data, server)
            except OSError:
                self.send_failures += 1
        deadline = conn.next_timer()
        if deadline is not None and deadline != self.deadlines[index]:
            heapq.heappush(self.timers, (deadline, index))
        self.deadlines[index] = deadline

    def _events(self, index: int, now: float) -> None:
        conn = self.conns[index]
        on_event = self.on_event
        while (event := conn.next_event()) is not None:
            on_event(index, event, now)

    def run_timers(self, now: float) -> None:
        timers = self.timers
        deadlines = self.deadlines
        while timers and timers[0][0] <= now:
            when, index = heapq.heappop(timers)
            if deadlines[index] != when:
                continue  # stale: the connection's deadline moved since
            deadlines[index] = None
            conn = self.conns[index]
            deadline = conn.next_timer()
            if deadline is not None and deadline <= now:
                conn.handle_timer(now)
                self._events(index, now)
            self.flush(index, now)

    def next_deadline(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    def receive(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for datagrams; one from each socket that has some
        (the epoll is level-triggered: a socket with more is reported again at once, and
        no read ends in an EAGAIN exception)."""
        ready = self.poller.poll(max(0.0, wait))
        if not ready:
            return
        now = time.perf_counter()
        conns, socks, index_of = self.conns, self.socks, self.index_of
        for fd, _ in ready:
            index = index_of[fd]
            conn = conns[index]
            try:
                data, address = socks[index].recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                continue
            conn.receive_datagram(data, address, now)
            self._events(index, now)
            self.flush(index, now)


def qh3_client_configuration(certdir: Path) -> Any:
    from qh3.quic.configuration import QuicConfiguration as Config

    config = Config(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        max_datagram_frame_size=65536,
    )
    config.load_verify_locations(str(certdir / "ca.pem"))
    return config


def run_clients(
    port: int,
    certdir: Path,
    count: int,
    seconds: float,
    warmup: float,
    rate: float,
    generator: str = "quicnet",
) -> dict[str, Any]:
    server = ("127.0.0.1", port)
    if generator == "qh3":
        fleet = ClientFleet(qh3_client_configuration(certdir), server, qh3=True)
    else:
        fleet = ClientFleet(client_configuration(certdir), server)
    # Handshakes, in batches below the server's Retry threshold.
    setup_start = time.perf_counter()
    failed = 0
    for start in range(0, count, 100):
        batch = [fleet.add(time.perf_counter()) for _ in range(start, min(count, start + 100))]
        give_up = time.perf_counter() + 20
        pending = set(batch)
        while pending and time.perf_counter() < give_up:
            fleet.receive(0.005)
            fleet.run_timers(time.perf_counter())
            pending = {
                i
                for i in pending
                if not fleet.conns[i].handshake_complete and fleet.conns[i].termination is None
            }
        failed += sum(1 for i in batch if not fleet.conns[i].handshake_complete)
    setup_seconds = time.perf_counter() - setup_start
    # The generator is the test rig, not the system under test: its connections' objects
    # go to the permanent generation, so no collection of them pauses it mid-run (a full
    # collection over hundreds of client connections took ~10 ms and showed as latency).
    gc.collect()
    gc.freeze()

    latencies: list[float] = []
    counts = {"received": 0, "lost_events": 0, "terminated": 0}

    def on_event(index: int, event: Any, now: float) -> None:
        kind = type(event)
        if kind is DatagramReceived:
            _, _, measured, sent = _INPUT.unpack_from(event.data)
            if measured:
                latencies.append(time.perf_counter() - sent)
                counts["received"] += 1
        elif kind is DatagramLost:
            counts["lost_events"] += 1
        elif kind is ConnectionTerminated:
            counts["terminated"] += 1

    fleet.on_event = on_event
    period = 1.0 / rate
    live = [i for i, c in enumerate(fleet.conns) if c.handshake_complete]
    begin = time.perf_counter() + 0.05
    measure_from = begin + warmup
    measure_to = measure_from + seconds
    schedule = [(begin + period * k / max(1, len(live)), i) for k, i in enumerate(live)]
    heapq.heapify(schedule)
    seq = [0] * len(fleet.conns)
    pad = bytes(INPUT_SIZE - _INPUT.size)
    sent = 0
    lateness: list[float] = []
    usage_errors = 0
    started = stopped = False
    cpu_start = wall_start = 0.0
    cpu_used = wall_used = 0.0
    while True:
        now = time.perf_counter()
        if not started and now >= measure_from:
            started = True
            emit("measuring")
            cpu_start, wall_start = time.process_time(), now
        if started and not stopped and now >= measure_to:
            stopped = True
            cpu_used, wall_used = time.process_time() - cpu_start, now - wall_start
            emit("measured")
        while schedule and schedule[0][0] <= now:
            due, index = heapq.heappop(schedule)
            if due >= measure_to:
                continue  # this client is done
            measured = due >= measure_from
            seq[index] += 1
            payload = _INPUT.pack(index, seq[index] & 0xFFFF, measured, time.perf_counter()) + pad
            try:
                fleet.conns[index].send_datagram(payload)
            except QuicUsageError:
                usage_errors += 1
            else:
                if measured:
                    sent += 1
                    lateness.append(now - due)
            fleet.flush(index, now)
            heapq.heappush(schedule, (due + period, index))
        fleet.run_timers(now)
        if not schedule and now >= measure_to + 0.5:
            break  # the last answers had half a second to arrive
        wake = [measure_to + 0.5]
        if schedule:
            wake.append(schedule[0][0])
        deadline = fleet.next_deadline()
        if deadline is not None:
            wake.append(deadline)
        fleet.receive(min(wake) - time.perf_counter())
    fleet.close()

    latencies.sort()
    lateness.sort()

    def pick(values: list[float], q: float) -> float | None:
        if not values:
            return None
        return values[min(len(values) - 1, round(q * (len(values) - 1)))] * 1e6

    return {
        "clients": count,
        "generator": generator,
        "handshake_failures": failed,
        "setup_seconds": setup_seconds,
        "seconds": seconds,
        "inputs_sent": sent,
        "snapshots_received": counts["received"],
        "lost": sent - counts["received"],
        "datagram_lost_events": counts["lost_events"],
        "terminated": counts["terminated"],
        "send_usage_errors": usage_errors,
        "send_failures": fleet.send_failures,
        "latency_p50_us": pick(latencies, 0.5),
        "latency_p99_us": pick(latencies, 0.99),
        "latency_p999_us": pick(latencies, 0.999),
        "latency_max_us": pick(latencies, 1.0),
        "send_lateness_p99_us": pick(lateness, 0.99),
        "generator_cpu_fraction": cpu_used / wall_used if wall_used else None,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("server")
    s.add_argument("--stack", required=True, choices=SERVER_STACKS)
    s.add_argument("--mode", default="echo", choices=("echo", "bulk", "capacity"))
    s.add_argument("--certdir", type=Path, required=True)
    c = sub.add_parser("clients")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--certdir", type=Path, required=True)
    c.add_argument("--clients", type=int, required=True)
    c.add_argument("--seconds", type=float, default=5.0)
    c.add_argument("--warmup", type=float, default=1.0)
    c.add_argument("--rate", type=float, default=30.0)
    c.add_argument("--generator", default="quicnet", choices=("quicnet", "qh3"))
    args = parser.parse_args(argv)
    if args.command == "server":
        run_server(args.stack, args.mode, args.certdir)
    else:
        result = run_clients(
            args.port,
            args.certdir,
            args.clients,
            args.seconds,
            args.warmup,
            args.rate,
            args.generator,
        )
        emit("result " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
