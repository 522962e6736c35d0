"""quic_bench.py's in-memory measurements: a QuicEndpoint and its clients, no sockets.

Datagrams are handed from one side to the other in the same thread, on a
simulated clock, so the CPU figures are quicnet's alone (no kernel, no event
loop): handshake CPU with N connections already open on the endpoint,
memory per idle connection per side (tracemalloc), and the server's CPU per
client-tick of a 30 Hz game.
"""

from __future__ import annotations

import datetime
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from _common import percentile
from _peers import ALPN, GAME_ACK_FREQUENCY, INPUT_SIZE, SNAPSHOT_SIZE, other_stack

from quicnet.crypto import (
    Certificate,
    PrivateKey,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.quic import ConnectionState, DatagramReceived, QuicConfiguration, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.packets import parse_long_header

SERVER = ("192.0.2.1", 4433)
#: Long enough that the simulated clock never idles a connection out.
IDLE_TIMEOUT = 3600.0
#: Clients that handshake together when filling an endpoint (below its Retry threshold).
BATCH = 200
#: Simulated seconds that pass when only timers are left (ACK delay is 25 ms).
TIMER_STEP = 0.03


class Identity:
    """A CA and a server certificate issued by it, for ``localhost``."""

    def __init__(self, algorithm: str) -> None:
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
        if algorithm == "Ed25519":
            ca_key, key = generate_private_key("Ed25519"), generate_private_key("Ed25519")
        else:
            ca_key = generate_private_key("EC", curve="P-256")
            key = generate_private_key("EC", curve="P-256")
        self.algorithm = algorithm
        self.ca: Certificate = make_ca(
            ca_key, f"/CN=bench {algorithm} CA", days=2, not_before=start
        )
        csr = make_csr(key, "/CN=localhost", names=["localhost"])
        self.certificate: Certificate = issue_certificate(
            csr, self.ca, ca_key, days=2, not_before=start
        )
        self.key: PrivateKey = key

    def server_config(self, *, game: bool = False) -> QuicConfiguration:
        """The server's configuration; a ``game`` server asks its clients for fewer ACKs
        (the capacity test's GAME_ACK_FREQUENCY). Neither asks for DATAGRAM fates
        (``datagram_ack_events``, off by default)."""
        return QuicConfiguration(
            is_client=False,
            alpn_protocols=[ALPN],
            certificate_chain=[self.certificate],
            private_key=self.key,
            idle_timeout=IDLE_TIMEOUT,
            ack_frequency=GAME_ACK_FREQUENCY if game else None,
        )

    def client_config(self) -> QuicConfiguration:
        return QuicConfiguration(
            is_client=True,
            alpn_protocols=[ALPN],
            server_name="localhost",
            trust_roots=[self.ca],
            idle_timeout=IDLE_TIMEOUT,
        )


class MemoryNet:
    """One endpoint and its clients, each client at its own address, on a simulated clock."""

    def __init__(self, identity: Identity, max_connections: int, *, game: bool = False) -> None:
        self.endpoint = QuicEndpoint(
            identity.server_config(game=game), max_connections=max_connections
        )
        self.client_config = identity.client_config()
        self.clients: dict[Any, QuicConnection] = {}
        self.now = 1.0
        self._next = 0
        self.server_cpu = 0.0  # process CPU spent inside the endpoint while timing it

    def _address(self) -> tuple[str, int]:
        i = self._next
        self._next += 1
        return (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 50000)

    def open(self, count: int, *, keep: bool) -> list[QuicConnection]:
        """Handshake ``count`` new clients (in batches) until everything is acknowledged."""
        made: list[QuicConnection] = []
        while len(made) < count:
            batch = {}
            for _ in range(min(BATCH, count - len(made))):
                client = QuicConnection(self.client_config)
                client.connect(SERVER, self.now)
                batch[self._address()] = client
            self.clients.update(batch)
            self.settle(batch)
            for client in batch.values():
                if not client.handshake_confirmed:
                    raise RuntimeError(f"a handshake did not complete: {client.termination}")
            made.extend(batch.values())
            if not keep:
                for address in batch:
                    del self.clients[address]
        return made

    def pump(self, clients: dict[Any, QuicConnection]) -> int:
        """Move every datagram ready now, both ways, once; the number moved."""
        endpoint, now, moved = self.endpoint, self.now, 0
        for address, client in clients.items():
            for data, _ in client.datagrams_to_send(now):
                endpoint.receive_datagram(data, address, now)
                moved += 1
        for data, address in endpoint.datagrams_to_send(now):
            receiver = self.clients.get(address)
            if receiver is not None:
                receiver.receive_datagram(data, SERVER, now)
                moved += 1
        while endpoint.next_event() is not None:
            pass
        for client in clients.values():
            while client.next_event() is not None:
                pass
        return moved

    def settle(self, clients: dict[Any, QuicConnection], rounds: int = 200) -> None:
        """Pump until quiet, letting the clock run for timers (delayed ACKs) until none is due."""
        for _ in range(rounds):
            if self.pump(clients):
                continue
            horizon = self.now + TIMER_STEP
            due = [
                c for c in clients.values() if (t := c.next_timer()) is not None and t <= horizon
            ]
            server_due = (t := self.endpoint.next_timer()) is not None and t <= horizon
            if not due and not server_due:
                return
            self.now = horizon
            for client in due:
                client.handle_timer(self.now)
            if server_due:
                self.endpoint.handle_timer(self.now)

    def handshake(self) -> tuple[Any, QuicConnection]:
        """One full handshake, client and server: a new client, its datagrams and the
        endpoint's pumped until none moves (what :meth:`timed_handshake` times). The
        client's address and the client; :meth:`finish_handshake` must follow."""
        client = QuicConnection(self.client_config)
        client.connect(SERVER, self.now)
        address = self._address()
        self.clients[address] = client
        one = {address: client}
        while self.pump(one):
            pass
        return address, client

    def timed_handshake(self, *, close: bool = False) -> float:
        """Process CPU of one full handshake (client and server), then settle it untimed;
        with ``close``, the client then closes and the server's side runs until it is
        gone (untimed too), so the endpoint keeps the number of connections it had."""
        clock = time.process_time
        start = clock()
        address, client = self.handshake()
        elapsed = clock() - start
        self.finish_handshake(address, client, close=close)
        return elapsed

    def finish_handshake(
        self, address: Any, client: QuicConnection, *, close: bool = False
    ) -> None:
        """After :meth:`handshake`: check it completed, settle its ACKs and, with
        ``close``, close it until the server's side is gone."""
        one = {address: client}
        if not client.handshake_confirmed:
            raise RuntimeError(f"the handshake did not complete: {client.termination}")
        self.settle(one)
        if close:
            server = self.endpoint.connections.get(client.cids.current_peer_cid)
            client.close()
            self.pump(one)
            for _ in range(100):  # the server drains (RFC 9000 §10.2.2), then is reaped
                if server is None or server.state == ConnectionState.TERMINATED:
                    break
                deadline = self.endpoint.next_timer()
                if deadline is None:
                    break
                self.now = max(self.now, deadline)
                self.endpoint.handle_timer(self.now)
            if server is not None and server.state != ConnectionState.TERMINATED:
                raise RuntimeError("a closed connection did not end on the server")
            # The client's closing period (RFC 9000 §10.2.1) runs out, and it is disposed
            # of, as the drivers do (UdpClient.poll): left closing, its reference cycles
            # were cyclic garbage that a later timed handshake's collection traversed.
            while client.state != ConnectionState.TERMINATED:
                deadline = client.next_timer()
                if deadline is None:
                    raise RuntimeError("a closing client has no timer")
                self.now = max(self.now, deadline)
                client.handle_timer(self.now)
            client.dispose()
        del self.clients[address]


#: Handshakes timed back to back for one N before the next N's turn (handshake_cpu).
HANDSHAKE_BLOCK = 10


class _Endpoints:
    """Where the handshakes for one N happen: an endpoint with N - 1 connections open.
    Each measured connection is closed afterwards (untimed), so N stays put and no
    refill is needed: a refill's thousands of connections would set Python's garbage
    collector off during the other N's samples, which is the harness, not the server."""

    def __init__(self, identity: Identity, n: int, limit: int) -> None:
        self.identity, self.n, self.limit = identity, n, limit
        self.net: MemoryNet | None = None

    def sample(self) -> float:
        if self.net is None:
            self.net = MemoryNet(self.identity, self.limit)
            self.net.open(self.n - 1, keep=False)
            # One handshake more, untimed: the first one after a fill measured ~10%
            # slower than the next ones, whatever N was.
            self.net.timed_handshake(close=True)
        return self.net.timed_handshake(close=True)


def handshake_cpu(
    algorithm: str, open_counts: list[int], samples: int, block: int = HANDSHAKE_BLOCK
) -> dict[str, Any]:
    """Median client+server CPU of a handshake through an endpoint with N connections open.

    The endpoints for every N are filled first; then the samples take turns, a
    block of ``block`` handshakes for each N, round after round, so a slow minute of
    this shared machine falls on every N alike and the ratios between them compare
    like with like. Within a block the handshakes run back to back, as the other
    stacks' are timed (``other_handshake_cpu``) and as a server accepting
    connections runs them; with blocks of one, every sample came right after two
    other endpoints' handshakes and paid for the caches their heaps took (P-256 at
    10 open: 1.54 ms against 1.48 alone in a process). Each measured connection is
    closed after it is timed, so N stays put, as on a server where connections come
    and go.

    What the fills leave is frozen out of the cyclic garbage collector
    (``gc.freeze()``), as ``UdpServer(gc_freeze_interval=...)`` does for a server.
    Otherwise every full collection during a sample traverses all the endpoints of
    the process, and the 10-open sample pays for the 10,000-open endpoint beside
    it (measured: Ed25519 at 10 open 1.68 ms there, 1.58 ms alone in a process,
    1.61 ms frozen).
    """
    identity = Identity(algorithm)
    limit = max(open_counts) * 2 + samples + 1000
    started = time.perf_counter()
    sources = {n: _Endpoints(identity, n, limit) for n in sorted(open_counts)}
    for source in sources.values():
        source.sample()  # fills it (and times one handshake, not kept)
    gc.freeze()  # the open connections, as a server's GcFreezer leaves them
    times: dict[int, list[float]] = {n: [] for n in sources}
    for start in range(0, samples, block):
        for n, source in sources.items():
            for _ in range(min(block, samples - start)):
                times[n].append(source.sample())
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {}
    for n, measured in times.items():
        ordered = sorted(measured)
        entry = {
            "open": n,
            "samples": len(measured),
            "median_ms": statistics.median(ordered) * 1e3,
            "p90_ms": percentile(ordered, 0.9) * 1e3,
            "seconds": seconds,
            "interleaved": True,
            "block": block,
            "gc_frozen_after_fill": True,
        }
        result[str(n)] = entry
        print(
            f"  handshake {algorithm:7} N={n:6}: {entry['median_ms']:.2f} ms"
            f" (p90 {entry['p90_ms']:.2f})",
            flush=True,
        )
    return result


class OtherPair:
    """aioquic's or qh3's client and server connections in memory, no endpoint, as
    ``other_handshake_cpu`` drives them: a server connection is made for the client's
    first Initial, and datagrams go across until none moves. The identity lives in a
    temporary directory (the CA file is read on every handshake, as in an application)
    until :meth:`close`; ``datagrams`` lets both ends send DATAGRAM frames."""

    CLIENT_ADDRESS = ("127.0.0.1", 2)
    SERVER_ADDRESS = ("127.0.0.1", 1)

    def __init__(self, name: str, algorithm: str, *, datagrams: bool = False) -> None:
        import tempfile
        from pathlib import Path

        self.name = name
        self.api = api = other_stack(name)
        identity = Identity(algorithm)
        self._tmp = tempfile.TemporaryDirectory()
        cert, key, ca = (Path(self._tmp.name, f) for f in ("cert.pem", "key.pem", "ca.pem"))
        cert.write_bytes(identity.certificate.to_pem())
        key.write_bytes(identity.key.to_pem())
        ca.write_bytes(identity.ca.to_pem())
        extra = {"max_datagram_frame_size": 65536} if datagrams else {}
        self.client_config = api["Config"](
            is_client=True, alpn_protocols=[ALPN], server_name="localhost", **extra
        )
        self.client_config.load_verify_locations(str(ca))
        self.server_config = api["Config"](is_client=False, alpn_protocols=[ALPN], **extra)
        self.server_config.load_cert_chain(str(cert), str(key))

    def close(self) -> None:
        self._tmp.cleanup()

    def handshake(self, now: float = 1.0) -> tuple[Any, Any]:
        """One full handshake, client and server, until no datagram moves: (client, server)."""
        connection = self.api["Connection"]
        client = connection(configuration=self.client_config)
        client.connect(self.CLIENT_ADDRESS, now=now)
        server = None
        for _ in range(20):
            moved = 0
            for data, _ in client.datagrams_to_send(now=now):
                if server is None:
                    dcid = parse_long_header(data).destination_cid
                    server = connection(
                        configuration=self.server_config, original_destination_connection_id=dcid
                    )
                server.receive_datagram(data, self.SERVER_ADDRESS, now=now)
                moved += 1
            assert server is not None
            for data, _ in server.datagrams_to_send(now=now):
                client.receive_datagram(data, self.CLIENT_ADDRESS, now=now)
                moved += 1
            if not moved:
                break
        return client, server

    def check(self, client: Any) -> None:
        """After :meth:`handshake`: take the client's events; raise if it did not complete."""
        done = False
        while (event := client.next_event()) is not None:
            done = done or isinstance(event, self.api["HandshakeCompleted"])
        if not done:
            why = getattr(client, "_close_event", None)  # both keep the reason there
            reason = getattr(why, "reason_phrase", "")
            raise RuntimeError(f"{self.name}: the handshake did not complete: {reason}")


def other_handshake_cpu(name: str, algorithm: str, samples: int) -> dict[str, Any]:
    """aioquic's or qh3's handshake CPU (client + server pair, no endpoint), for reference."""
    pair = OtherPair(name, algorithm)
    try:

        def once() -> float:
            start = time.process_time()
            client, _ = pair.handshake()
            elapsed = time.process_time() - start
            pair.check(client)
            return elapsed

        for _ in range(5):
            once()
        times = sorted(once() for _ in range(samples))
    finally:
        pair.close()
    return {
        "samples": samples,
        "median_ms": statistics.median(times) * 1e3,
        "p90_ms": percentile(times, 0.9) * 1e3,
        "version": pair.api["version"],
    }


def _top_sites(
    after: tracemalloc.Snapshot, before: tracemalloc.Snapshot, count: int, n: int = 8
) -> list[dict[str, Any]]:
    """Where the bytes of one connection go: the largest allocation sites, per connection."""
    keep = [tracemalloc.Filter(True, "*quicnet*"), tracemalloc.Filter(True, "*cryptography*")]
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    sites = []
    for stat in sorted(diff, key=lambda s: s.size_diff, reverse=True)[:n]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("/quicnet/", 1)[-1]
        sites.append({"site": f"{where}:{frame.lineno}", "bytes": stat.size_diff / count})
    return sites


def memory_per_connection(count: int) -> dict[str, Any]:
    """Bytes per idle connection, client and server side, by tracemalloc after the handshake.

    N handshakes complete (ACKs exchanged, events taken); then the traced
    memory with clients and server connections, and again once the clients
    are dropped: the rest is the endpoint's share, the difference the clients'.
    """
    identity = Identity("P-256")
    net = MemoryNet(identity, max_connections=count * 2 + 100)
    net.open(20, keep=False)  # warm caches, lazy imports, interned strings
    gc.collect()
    tracemalloc.start()
    try:
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        base_snapshot = tracemalloc.take_snapshot()
        clients = net.open(count, keep=True)
        net.clients.clear()  # only ``clients`` holds them now
        gc.collect()
        both = tracemalloc.get_traced_memory()[0] - base
        both_snapshot = tracemalloc.take_snapshot()
        del clients
        gc.collect()
        server = tracemalloc.get_traced_memory()[0] - base
        server_snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    open_now = len({id(c) for c in net.endpoint.connections.values()})
    return {
        "connections": count,
        "server_bytes_per_connection": server / count,
        "client_bytes_per_connection": (both - server) / count,
        "server_connections_open": open_now,
        "server_top_sites": _top_sites(server_snapshot, base_snapshot, count),
        "client_top_sites": _top_sites(both_snapshot, server_snapshot, count),
    }


def capacity_in_memory(
    count: int,
    ticks: int,
    warmup_ticks: int,
    rate: float,
    *,
    measured_call: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Server CPU per client-tick: every client sends a 100-byte input, gets a 300-byte snapshot.

    Only the endpoint's work (receiving, the application's answer, sending,
    timers) is timed; the clients run untimed in the same thread. The server asks
    its clients for GAME_ACK_FREQUENCY, as a game server would. In the measured
    ticks the server's share runs as ``measured_call(serve, inbound, now)`` when
    given (instructions.py counts inside it), else as ``serve(inbound, now)``.
    """
    identity = Identity("P-256")
    net = MemoryNet(identity, max_connections=count * 2 + 100, game=True)
    clients = net.open(count, keep=True)
    by_address = dict(net.clients)
    endpoint = net.endpoint
    period = 1.0 / rate
    payload = bytes(INPUT_SIZE)
    snapshot = bytes(SNAPSHOT_SIZE)
    clock = time.process_time
    server_cpu = 0.0
    received = 0
    sent_measured = 0
    datagrams_in = 0

    def serve(inbound: list[tuple[bytes, Any]], now: float) -> list[tuple[bytes, Any]]:
        """The server's share of a moment: everything in, the answers, timers, everything out."""
        for data, address in inbound:
            endpoint.receive_datagram(data, address, now)
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            if type(event) is DatagramReceived:
                conn.send_datagram(snapshot)
        deadline = endpoint.next_timer()
        if deadline is not None and deadline <= now:
            endpoint.handle_timer(now)
        out: list[tuple[bytes, Any]] = endpoint.datagrams_to_send(now)
        return out

    def deliver(outbound: list[tuple[bytes, Any]], now: float) -> int:
        got = 0
        for data, address in outbound:
            by_address[address].receive_datagram(data, SERVER, now)
        for client in clients:
            while (event := client.next_event()) is not None:
                if type(event) is DatagramReceived:
                    got += 1
        return got

    tick_start = net.now + 1.0
    for tick in range(warmup_ticks + ticks):
        measured = tick >= warmup_ticks
        # The inputs, then (after the clients' ACK delay) their timers.
        for phase in (0.0, 0.026):
            now = tick_start + tick * period + phase
            inbound: list[tuple[bytes, Any]] = []
            for address, client in by_address.items():
                if phase == 0.0:
                    client.send_datagram(payload)
                deadline = client.next_timer()
                if deadline is not None and deadline <= now:
                    client.handle_timer(now)
                for data, _ in client.datagrams_to_send(now):
                    inbound.append((data, address))
            start = clock()
            if measured and measured_call is not None:
                outbound = measured_call(serve, inbound, now)
            else:
                outbound = serve(inbound, now)
            elapsed = clock() - start
            got = deliver(outbound, now)
            if measured:
                server_cpu += elapsed
                datagrams_in += len(inbound)
                received += got
                sent_measured += count if phase == 0.0 else 0
    per_client_tick = server_cpu / (count * ticks)
    return {
        "clients": count,
        "ticks": ticks,
        "rate_hz": rate,
        "server_cpu_per_client_tick_us": per_client_tick * 1e6,
        "server_datagrams_in_per_client_tick": datagrams_in / (count * ticks),
        "snapshots_received": received,
        "inputs_sent": sent_measured,
        "clients_per_core_at_rate": 1.0 / (per_client_tick * rate),
    }
