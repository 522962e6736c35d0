"""The handshake deadline (``QuicConfiguration.handshake_timeout``), on a simulated clock.

A client whose server never answers gives up when the handshake deadline
passes (default 10 s), not at the idle timeout (30 s); so does a server
connection whose client went away mid-handshake. A completed handshake is
never touched by the deadline. Time only moves in the simulation: the
connection reads it from ``now`` and reports the deadline in ``next_timer()``.
"""

from __future__ import annotations

from typing import Any

from simnet import LinkConfig, make_pair

from quicnet.quic import ConnectionState, ConnectionTerminated, QuicConfiguration, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint

START = 1.0


def _terminated(node: Any) -> ConnectionTerminated:
    [event] = node.events_of(ConnectionTerminated)
    assert isinstance(event, ConnectionTerminated)
    return event


def test_default_handshake_timeout_is_ten_seconds() -> None:
    assert QuicConfiguration().handshake_timeout == 10.0


def test_client_gives_up_when_the_server_never_answers() -> None:
    """Every datagram to the server is lost: the client stops at 10 s, before its 30 s idle timeout."""
    sim = make_pair(c2s=LinkConfig(loss=1.0), start=START)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.idle_timeout == 30.0
    sim.connect()
    # The deadline is one of the connection's timers from the start.
    timer = client.next_timer()
    assert timer is not None and timer <= START + 10.0
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=60.0)
    event = _terminated(sim.client)
    assert not event.by_peer
    assert "handshake timeout" in event.reason and "10 s" in event.reason
    assert sim.client.time_of(ConnectionTerminated) == START + 10.0
    assert client.next_timer() is None  # nothing left to wake up for
    assert sim.c2s.stats.datagrams >= 2  # it retried its Initial before giving up


def test_handshake_timeout_is_configurable() -> None:
    sim = make_pair(c2s=LinkConfig(loss=1.0), client={"handshake_timeout": 2.5}, start=START)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.connect()
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=60.0)
    assert "2.5 s" in _terminated(sim.client).reason
    assert sim.client.time_of(ConnectionTerminated) == START + 2.5


def test_without_a_handshake_timeout_the_idle_timeout_still_applies() -> None:
    sim = make_pair(c2s=LinkConfig(loss=1.0), client={"handshake_timeout": None}, start=START)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.connect()
    sim.run_until(lambda: client.state == ConnectionState.TERMINATED, timeout=120.0)
    assert _terminated(sim.client).reason == "idle timeout"
    assert sim.client.time_of(ConnectionTerminated) >= START + 30.0


def test_a_completed_handshake_outlives_the_deadline() -> None:
    """After the handshake, only the idle timeout counts (here kept alive by pings)."""
    sim = make_pair(client={"handshake_timeout": 1.0}, server={"handshake_timeout": 1.0})
    sim.connect()
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.run_until(lambda: client.handshake_confirmed, timeout=1.0)
    for _ in range(5):  # 5 s of pings, five times the handshake timeout
        client.ping()
        sim.run_for(1.0)
    assert client.state == ConnectionState.CONNECTED
    assert sim.server.connection.state == ConnectionState.CONNECTED
    assert not sim.client.events_of(ConnectionTerminated)
    assert not sim.server.events_of(ConnectionTerminated)


def test_server_drops_a_handshake_whose_client_went_away() -> None:
    """The client's first flight arrives, then nothing: the endpoint reaps the half-open
    connection at the server's handshake deadline instead of holding it for the idle timeout."""
    sim = make_pair(server={"handshake_timeout": 3.0}, start=START)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    sim.connect()
    sim.c2s.config.blackholes.append((START + 0.001, START + 1000.0))
    sim.run_until(lambda: endpoint.stats.connections_accepted == 1, timeout=1.0)
    sim.run_until(lambda: not endpoint._all, timeout=60.0, what="server connection reaped")
    event = _terminated(sim.server)
    assert "handshake timeout" in event.reason and not event.by_peer
    assert sim.server.time_of(ConnectionTerminated) == START + 0.020 + 3.0  # arrival + 3 s
