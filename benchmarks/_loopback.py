"""quic_bench.py's loopback measurements: the client ends, against servers in _peers.py.

Every measurement starts its own server process (``_peers.py server``) and
runs the client here, in another process: 64-byte echo round trips and
one-stream bulk goodput, per stack, with the same I/O model at both ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from _common import Peer, machine_busy_seconds
from _peers import ALPN, client_configuration, input_waiting, other_stack, run_loop

from quicnet.quic import DatagramReceived

HERE = Path(__file__).resolve().parent
PAYLOAD = 64
CHUNK = 1 << 16
#: A round trip without an answer after this long counts as lost; this many end the run.
#: The asyncio clients all wait under ``asyncio.timeout``, in their own task: none pays
#: for a Task per round (``asyncio.wait_for`` on a coroutine would make one, on a future not).
ROUND_TIMEOUT = 1.0
MAX_LOST_ROUNDS = 10


def start_server(stack: str, mode: str, certdir: Path) -> tuple[Peer, int]:
    peer = Peer(
        [
            str(HERE / "_peers.py"),
            "server",
            "--stack",
            stack,
            "--mode",
            mode,
            "--certdir",
            str(certdir),
        ],
        f"{stack} server",
    )
    try:
        port = int(peer.expect("port", 30))
    except BaseException:
        peer.close()
        raise
    return peer, port


# Echo round trips ------------------------------------------------------------------------------


class Rounds:
    """Round-trip samples after the warm-up, and the rounds that got no answer."""

    def __init__(self, warmup: int, rounds: int) -> None:
        self.warmup = warmup
        self.total = warmup + rounds
        self.samples: list[float] = []
        self.lost = 0

    def record(self, index: int, seconds: float | None) -> None:
        if seconds is None:
            self.lost += 1
            if self.lost > MAX_LOST_ROUNDS:
                raise RuntimeError(f"{self.lost} echoes got no answer within {ROUND_TIMEOUT} s")
        elif index >= self.warmup:
            self.samples.append(seconds)

    def result(self) -> dict[str, Any]:
        return {"samples": self.samples, "lost": self.lost}


def rtt_raw_blocking(port: int, rounds: Rounds) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(ROUND_TIMEOUT)
    server = ("127.0.0.1", port)
    payload = os.urandom(PAYLOAD)
    perf = time.perf_counter
    try:
        for i in range(rounds.total):
            t0 = perf()
            sock.sendto(payload, server)
            try:
                sock.recvfrom(65536)
            except TimeoutError:
                rounds.record(i, None)
                continue
            rounds.record(i, perf() - t0)
    finally:
        sock.close()


def rtt_raw_select(port: int, rounds: Rounds) -> None:
    """As quicnet.io.udp: non-blocking socket, select() with a timeout per poll."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    waiting = input_waiting(sock)
    server = ("127.0.0.1", port)
    payload = os.urandom(PAYLOAD)
    perf = time.perf_counter
    try:
        for i in range(rounds.total):
            t0 = perf()
            sock.sendto(payload, server)
            got = False
            while not got and perf() - t0 < ROUND_TIMEOUT:
                readable, _, _ = select.select([sock], [], [], 0.01)
                if not readable:
                    continue
                while True:
                    try:
                        sock.recvfrom(65536)
                    except BlockingIOError:
                        break
                    got = True
                    if not waiting(0):
                        break
            rounds.record(i, perf() - t0 if got else None)
    finally:
        sock.close()


async def rtt_raw_asyncio(port: int, rounds: Rounds) -> None:
    """As quicnet.io.aio: loop.add_reader, drain the socket per wakeup."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    waiting = input_waiting(sock)
    waiter: list[asyncio.Future[None]] = []

    def readable() -> None:
        got = False
        while True:
            try:
                sock.recvfrom(65536)
            except BlockingIOError:
                break
            got = True
            if not waiting(0):
                break
        if got and waiter and not waiter[0].done():
            waiter[0].set_result(None)

    loop.add_reader(sock.fileno(), readable)
    server = ("127.0.0.1", port)
    payload = os.urandom(PAYLOAD)
    perf = time.perf_counter
    try:
        for i in range(rounds.total):
            waiter[:] = [loop.create_future()]
            t0 = perf()
            sock.sendto(payload, server)
            try:
                async with asyncio.timeout(ROUND_TIMEOUT):
                    await waiter[0]
            except TimeoutError:
                rounds.record(i, None)
                continue
            rounds.record(i, perf() - t0)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()


def rtt_quicnet_tick(port: int, rounds: Rounds, certdir: Path) -> None:
    """A game loop: send, flush, poll(timeout) until the echo is among the events."""
    from quicnet.io.udp import UdpClient

    client = UdpClient(client_configuration(certdir), ("127.0.0.1", port))
    try:
        tick_handshake(client)
        payload = os.urandom(PAYLOAD)
        perf = time.perf_counter
        conn = client.connection
        for i in range(rounds.total):
            t0 = perf()
            conn.send_datagram(payload)
            client.flush()
            got = False
            while not got and perf() - t0 < ROUND_TIMEOUT:
                for event in client.poll(0.01):
                    if type(event) is DatagramReceived:
                        got = True
            rounds.record(i, perf() - t0 if got else None)
    finally:
        client.close_socket()


def tick_handshake(client: Any) -> None:
    deadline = time.monotonic() + 10
    while not client.connection.handshake_complete:
        if time.monotonic() > deadline or client.connection.termination is not None:
            raise RuntimeError(f"handshake failed: {client.connection.termination}")
        client.poll(0.01)


async def rtt_quicnet_aio(port: int, rounds: Rounds, certdir: Path) -> None:
    from quicnet.io.aio import connect

    client = await asyncio.wait_for(connect("127.0.0.1", port, client_configuration(certdir)), 10)
    payload = os.urandom(PAYLOAD)
    perf = time.perf_counter

    async def echo() -> None:
        while type(await client.next_event()) is not DatagramReceived:
            pass

    try:
        for i in range(rounds.total):
            t0 = perf()
            client.send_datagram(payload)
            try:
                async with asyncio.timeout(ROUND_TIMEOUT):
                    await echo()
            except TimeoutError:
                rounds.record(i, None)
                continue
            rounds.record(i, perf() - t0)
    finally:
        await client.close()


def _other_client_config(name: str, certdir: Path) -> tuple[dict[str, Any], Any]:
    api = other_stack(name)
    config = api["Config"](
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        max_datagram_frame_size=65536,
    )
    config.load_verify_locations(str(certdir / "ca.pem"))
    return api, config


async def rtt_other(name: str, port: int, rounds: Rounds, certdir: Path) -> None:
    api, config = _other_client_config(name, certdir)
    echoes: asyncio.Queue[bytes] = asyncio.Queue()
    datagram = api["Datagram"]

    base: Any = api["Protocol"]

    class Protocol(base):  # type: ignore[misc]
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, datagram):
                echoes.put_nowait(event.data)

    payload = os.urandom(PAYLOAD)
    perf = time.perf_counter
    async with api["connect"](
        "127.0.0.1", port, configuration=config, create_protocol=Protocol
    ) as client:
        for i in range(rounds.total):
            t0 = perf()
            client._quic.send_datagram_frame(payload)
            client.transmit()
            try:
                async with asyncio.timeout(ROUND_TIMEOUT):
                    await echoes.get()
            except TimeoutError:
                rounds.record(i, None)
                continue
            rounds.record(i, perf() - t0)


def measure_rtt(stack: str, certdir: Path, rounds: int, warmup: int) -> dict[str, Any]:
    """``rounds`` 64-byte echoes (after ``warmup``) against a server process of ``stack``."""
    peer, port = start_server(stack, "echo", certdir)
    record = Rounds(warmup, rounds)
    try:
        family = stack.partition("-")[0]
        if stack == "raw-blocking":
            rtt_raw_blocking(port, record)
        elif stack == "raw-select":
            rtt_raw_select(port, record)
        elif family == "raw":
            run_loop(stack, rtt_raw_asyncio(port, record))
        elif stack == "quicnet-tick":
            rtt_quicnet_tick(port, record, certdir)
        elif family == "quicnet":
            run_loop(stack, rtt_quicnet_aio(port, record, certdir))
        else:
            run_loop(stack, rtt_other(family, port, record, certdir))
    finally:
        peer.close()
    return record.result()


# Bulk goodput ----------------------------------------------------------------------------------


def _goodput(done: str, size: int, started: float) -> dict[str, Any]:
    received, at = done.split()
    if int(received) != size:
        raise RuntimeError(f"the server saw {received} bytes of {size}")
    seconds = float(at) - started
    return {"bytes": size, "seconds": seconds, "MBps": size / seconds / 1e6}


def bulk_quicnet_tick(peer: Peer, port: int, size: int, certdir: Path, limit: float) -> Any:
    """A game loop writing one 64 KB chunk per poll until done, then polling until the end."""
    from quicnet.io.udp import UdpClient

    client = UdpClient(client_configuration(certdir), ("127.0.0.1", port))
    try:
        tick_handshake(client)
        conn = client.connection
        stream = conn.create_stream()
        chunk = os.urandom(CHUNK)
        chunks = size // CHUNK
        started = time.monotonic()
        give_up = started + limit
        for i in range(chunks):
            conn.send_stream_data(stream, chunk, end_stream=i == chunks - 1)
            client.poll(0.0)
        while (done := peer.poll_line("done")) is None:
            if time.monotonic() > give_up:
                raise RuntimeError(f"not finished within {limit:.0f} s")
            client.poll(0.01)
        return _goodput(done, chunks * CHUNK, started)
    finally:
        client.close_socket()


async def _await_done(peer: Peer, limit: float) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, peer.expect, "done", limit)


async def bulk_quicnet_aio(peer: Peer, port: int, size: int, certdir: Path, limit: float) -> Any:
    from quicnet.io.aio import connect

    client = await asyncio.wait_for(connect("127.0.0.1", port, client_configuration(certdir)), 10)
    try:
        stream = client.connection.create_stream()
        chunk = os.urandom(CHUNK)
        chunks = size // CHUNK
        started = time.monotonic()
        for i in range(chunks):
            client.send_stream_data(stream, chunk, end_stream=i == chunks - 1)
            await asyncio.sleep(0)
        return _goodput(await _await_done(peer, limit), chunks * CHUNK, started)
    finally:
        await client.close()


async def bulk_other(
    name: str, peer: Peer, port: int, size: int, certdir: Path, limit: float
) -> Any:
    api, config = _other_client_config(name, certdir)
    async with api["connect"]("127.0.0.1", port, configuration=config) as client:
        stream = client._quic.get_next_available_stream_id()
        chunk = os.urandom(CHUNK)
        chunks = size // CHUNK
        started = time.monotonic()
        for i in range(chunks):
            client._quic.send_stream_data(stream, chunk, end_stream=i == chunks - 1)
            client.transmit()
            await asyncio.sleep(0)
        return _goodput(await _await_done(peer, limit), chunks * CHUNK, started)


def measure_bulk(stack: str, certdir: Path, size: int, limit: float = 180) -> dict[str, Any]:
    """One stream of ``size`` bytes client -> server; goodput until the server saw its end."""
    peer, port = start_server(stack, "bulk", certdir)
    try:
        family = stack.partition("-")[0]
        if stack == "quicnet-tick":
            return bulk_quicnet_tick(peer, port, size, certdir, limit)  # type: ignore[no-any-return]
        coro: Coroutine[Any, Any, Any]
        if family == "quicnet":
            coro = bulk_quicnet_aio(peer, port, size, certdir, limit)
        else:
            coro = bulk_other(family, peer, port, size, certdir, limit)
        return run_loop(stack, asyncio.wait_for(coro, limit + 15))  # type: ignore[no-any-return]
    finally:
        peer.close()


# Server capacity ------------------------------------------------------------------------------


def capacity_step(
    certdir: Path,
    clients: int,
    seconds: float,
    warmup: float,
    generator: str = "quicnet",
    rate: float = 30.0,
) -> dict[str, Any]:
    """One tick-driven quicnet server process against one generator process of ``clients``."""
    server, port = start_server("quicnet-tick", "capacity", certdir)
    try:
        args = [str(HERE / "_peers.py"), "clients", "--port", str(port), "--certdir"]
        args += [str(certdir), "--clients", str(clients), "--seconds", str(seconds)]
        args += ["--warmup", str(warmup), "--rate", str(rate), "--generator", generator]
        with Peer(args, f"{generator} client generator") as clients_peer:
            clients_peer.expect("measuring", 60 + clients * 0.05 + warmup)
            server.send("stats")
            before, wall_before = json.loads(server.expect("stats", 10)), time.monotonic()
            busy_before = machine_busy_seconds()
            clients_peer.expect("measured", seconds + 30)
            server.send("stats")
            after, wall_after = json.loads(server.expect("stats", 10)), time.monotonic()
            busy_after = machine_busy_seconds()
            result: dict[str, Any] = json.loads(clients_peer.expect("result", 30))
    finally:
        server.close()
    wall = wall_after - wall_before
    cpu = after["cpu"] - before["cpu"]
    result["server_cpu_fraction"] = cpu / wall
    # The kernel's share: on loopback each sendto delivers into the client's socket.
    result["server_sys_fraction"] = (after["sys"] - before["sys"]) / wall
    # Full garbage collections in the server while measuring (each traverses every
    # connection's objects: tens of ms at a thousand connections).
    result["server_full_gc"] = after["full_gc"] - before["full_gc"]
    result["server_longest_full_gc_ms"] = after["longest_full_gc"] * 1e3
    answered = after["datagrams"] - before["datagrams"]
    result["server_cpu_per_client_tick_us"] = cpu / answered * 1e6 if answered else None
    others = None
    if busy_before is not None and busy_after is not None:
        busy = (busy_after - busy_before) / wall
        others = max(
            0.0, busy - result["server_cpu_fraction"] - (result["generator_cpu_fraction"] or 0)
        )
    result["other_processes_cores"] = others
    p99 = result["latency_p99_us"]
    result["holds"] = (
        p99 is not None
        and p99 < 5000
        and result["lost"] == 0
        and result["handshake_failures"] == 0
        and result["inputs_sent"] > 0
    )
    result["limited_by"] = None if result["holds"] else limited_by(result)
    return result


def limited_by(step: dict[str, Any]) -> str:
    """Why a step failed, as far as the CPU figures tell: who ran out of CPU first."""
    if (step.get("other_processes_cores") or 0) > 0.3:
        return "other processes (the machine was busy)"
    generator = step.get("generator_cpu_fraction") or 0.0
    server = step["server_cpu_fraction"]
    if max(generator, server) >= 0.8:
        who = "the client generator" if generator > server else "the server"
        return f"{who} ({max(generator, server):.0%} of a core)"
    return "neither process near a full core (latency, not CPU)"


def measure_capacity(
    certdir: Path, counts: list[int], seconds: float, warmup: float, generator: str = "quicnet"
) -> dict[str, Any]:
    """Ramp the client count until p99 latency passes 5 ms or anything is lost."""
    steps: list[dict[str, Any]] = []
    held = 0
    for count in counts:
        busy_attempts: list[dict[str, Any]] = []
        while True:
            try:
                step = capacity_step(certdir, count, seconds, warmup, generator)
            except Exception as exc:
                step = {"clients": count, "holds": False, "error": f"{type(exc).__name__}: {exc}"}
                print(f"  capacity N={count}: {step['error']}", flush=True)
                break
            print(
                f"  capacity ({generator} clients) N={count:5}:"
                f" p99 {step['latency_p99_us'] or 0:8.0f} us, lost {step['lost']},"
                f" server CPU {step['server_cpu_fraction']:.0%},"
                f" generator CPU {step['generator_cpu_fraction'] or 0:.0%},"
                f" others {step['other_processes_cores'] or 0:.1f} cores"
                f"{' HOLDS' if step['holds'] else ''}",
                flush=True,
            )
            # A step that failed while other processes held a core says nothing about
            # the server: try again (twice at most), and keep the attempt on record.
            if step["holds"] or not step["limited_by"].startswith("other"):
                break
            if len(busy_attempts) == 2:
                break
            busy_attempts.append(step)
            time.sleep(2)
        if busy_attempts:
            step["failed_attempts_while_busy"] = busy_attempts
        steps.append(step)
        if not step["holds"]:
            break
        held = count
    failed = next((s for s in steps if not s["holds"]), None)
    return {
        "generator": generator,
        "steps": steps,
        "largest_clients_held": held,
        "first_failure": failed["clients"] if failed else None,
        "first_failure_limited_by": failed.get("limited_by") if failed else None,
    }
