"""A connection that ended leaves no reference cycle: it is freed by reference counting.

Its helpers (sender, receiver, timers, handshake driver, qlog tracer) and loss
recovery's delivery callback point back at it; `QuicConnection.dispose()` breaks
those links once it is TERMINATED, and the endpoint does so when it forgets one.
Without that, every closed connection waited for a full cyclic collection, and a
server that keeps its connections out of the collector (``gc.freeze()``, the way to
spare a game server 50-100 ms pauses at a thousand connections) would leak them.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from simnet import CLIENT_ADDR, SERVER_ADDR, client_config, identity, server_config

import quicnet
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import ConnectionTerminated, QuicConnection, QuicUsageError
from quicnet.quic.endpoint import QuicEndpoint


@pytest.fixture
def saved_garbage() -> Iterator[list[object]]:
    """Cyclic garbage found by the collector is kept in ``gc.garbage`` for the test (and
    automatic collection is off, so only the test's own ``gc.collect()`` runs)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


def _connected(endpoint: QuicEndpoint, count: int, **client: object) -> list[QuicConnection]:
    clients = [QuicConnection(client_config(**client)) for _ in range(count)]
    now = 1.0
    for client in clients:
        client.connect(SERVER_ADDR, now)
    _exchange(endpoint, clients, now, rounds=10)
    assert all(c.handshake_confirmed for c in clients)
    return clients


def _exchange(
    endpoint: QuicEndpoint, clients: list[QuicConnection], now: float, rounds: int
) -> float:
    addresses = {(CLIENT_ADDR[0], 30000 + i): c for i, c in enumerate(clients)}
    for _ in range(rounds):
        now += 0.05
        for address, client in addresses.items():
            if (t := client.next_timer()) is not None and t <= now:
                client.handle_timer(now)
            for data, _ in client.datagrams_to_send(now):
                endpoint.receive_datagram(data, address, now)
        if (t := endpoint.next_timer()) is not None and t <= now:
            endpoint.handle_timer(now)
        for data, to in endpoint.datagrams_to_send(now):
            addresses[to].receive_datagram(data, SERVER_ADDR, now)
        while endpoint.next_event() is not None:
            pass
    return now


def _connection_garbage(garbage: list[object], ours: set[int] | None = None) -> list[str]:
    """The connection classes among the cyclic garbage; with ``ours`` (ids), only those
    connections, which the caller holds until it lets them go."""
    if ours is not None:
        return sorted({type(o).__name__ for o in garbage if id(o) in ours})
    names = {"QuicConnection", "PacketSender", "PacketReceiver", "TimerDriver", "Recovery"}
    return sorted({type(o).__name__ for o in garbage} & names)


def test_connections_the_endpoint_forgets_leave_no_cycle(
    saved_garbage: list[object], tmp_path: Path
) -> None:
    endpoint = QuicEndpoint(server_config(qlog_dir=str(tmp_path)))  # the tracer links too
    clients = _connected(endpoint, 3)
    server_side = [c for c in set(endpoint.connections.values())]
    assert len(server_side) == 3
    for client in clients:
        client.close()
    _exchange(endpoint, clients, 2.0, rounds=40)  # closing, draining, the end
    assert not endpoint.connections
    assert all(c.state.value == "terminated" and c.disposed for c in server_side)
    for client in clients:
        client.dispose()
    # This test's own connections only: another test's garbage the collector meets (a
    # thread's, say) is not counted. (Weak references would not tell: the collector
    # clears them before saving a cycle in gc.garbage.)
    ours = {id(c) for c in [*server_side, *clients]}
    del server_side, clients, client
    gc.collect()
    assert _connection_garbage(saved_garbage, ours) == []
    assert len(list(tmp_path.iterdir())) == 3  # the server connections were traced


def test_without_dispose_an_ended_connection_is_a_cycle(saved_garbage: list[object]) -> None:
    """The control: what dispose() is for (a client connection left as it ended)."""
    endpoint = QuicEndpoint(server_config())
    clients = _connected(endpoint, 1)
    clients[0].close()
    _exchange(endpoint, clients, 2.0, rounds=40)
    assert clients[0].state.value == "terminated" and not clients[0].disposed
    del clients
    gc.collect()
    assert "QuicConnection" in _connection_garbage(saved_garbage)


def test_a_disposed_connection_keeps_its_outcome_and_does_nothing_more() -> None:
    endpoint = QuicEndpoint(server_config())
    (client,) = _connected(endpoint, 1)
    with pytest.raises(QuicUsageError):
        client.dispose()  # still open
    client.close(0, "bye")
    now = _exchange(endpoint, [client], 2.0, rounds=40)
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    client.dispose()
    client.dispose()  # idempotent
    assert isinstance(events[-1], ConnectionTerminated)
    assert client.termination is not None and client.termination.reason == "bye"
    assert client.datagrams_to_send(now + 10) == [] and client.ecn_marked == 0
    assert client.next_timer() is None
    client.handle_timer(now + 10)
    client.receive_datagram(b"\x40" + bytes(40), SERVER_ADDR, now + 10)
    assert client.stats().packets_sent > 0
    with pytest.raises(QuicUsageError):
        client.send_datagram(b"late")


def test_a_server_that_freezes_the_collector_frees_connections_that_close(
    saved_garbage: list[object],
) -> None:
    """UdpServer(gc_freeze_interval=...) moves what lives (its connections among it) out
    of the collector's reach with gc.freeze(), so full collections stop traversing every
    connection. A connection frozen that way and closed later is still freed, by
    reference counting: after gc.unfreeze(), none of it is left as cyclic garbage."""
    with pytest.raises(ValueError):
        UdpServer(server_config(), gc_freeze_interval=0)
    server = UdpServer(server_config(), gc_freeze_interval=1e-3)
    client = UdpClient(client_config(), server.local_address)
    try:
        deadline = time.monotonic() + 20
        while not client.connection.handshake_confirmed and time.monotonic() < deadline:
            server.poll(0.005)
            client.poll(0.005)
        assert client.connection.handshake_confirmed
        assert gc.get_freeze_count() > 0  # the server's connection is frozen
        ours = {id(c) for c in server.endpoint.connections.values()}
        client.connection.close()
        while server.endpoint.connections and time.monotonic() < deadline:
            server.poll(0.005)
            client.poll(0.005)
        assert not server.endpoint.connections  # closed, drained, forgotten (disposed)
        server.poll(0)  # (its last event taken)
        gc.unfreeze()
        gc.collect()
        assert _connection_garbage(saved_garbage, ours) == []
        assert client.connection.state.value == "terminated"  # (the client's own, held)
    finally:
        gc.unfreeze()
        client.close_socket()
        server.close_socket()


def test_the_client_drivers_dispose_of_their_connection_when_it_ends() -> None:
    """UdpClient and the real-time client dispose of their connection once it has ended,
    as the endpoint does on the server side (events and stats stay readable)."""
    ident = identity()
    server = UdpServer(server_config())
    client = UdpClient(client_config(), server.local_address)
    rt_server = quicnet.Server(("127.0.0.1", 0), identity=ident)
    rt_client = quicnet.Client(rt_server.address, pin=ident.fingerprint)
    deadline = time.monotonic() + 20

    def poll_all() -> None:
        assert time.monotonic() < deadline
        server.poll(0.002)
        client.poll(0.002)
        rt_server.poll(0.0)
        rt_client.poll(0.002)

    try:
        while not (client.connection.handshake_confirmed and rt_client.connected):
            poll_all()
        client.connection.close()
        rt_server.disconnect(rt_client.client_id, "bye")
        conn, rt_conn = client.connection, rt_client.core.connection
        while conn.state.value != "terminated" or rt_conn.state.value != "terminated":
            poll_all()
        poll_all()
        assert conn.disposed and rt_conn.disposed
        assert conn.termination is not None and conn.stats().packets_sent > 0
    finally:
        client.close_socket()
        server.close_socket()
        rt_client.close()
        rt_server.close()
