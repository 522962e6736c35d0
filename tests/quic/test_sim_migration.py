"""A client that moves its connection to a new local address (RFC 9000 §9.2-§9.5).

The simulated client changes address with ``sim.rebind_client`` (datagrams on
their way to the old address are lost, as when a socket is closed) and tells
its connection with ``migrate``; the server is the endpoint of every other
simulation, which follows a migrating peer (§9.3). Every payload is checked
byte for byte.
"""

from __future__ import annotations

import pytest
from simnet import (
    LinkConfig,
    Simulation,
    StreamCollector,
    answer_requests,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.quic import (
    ConnectionState,
    DatagramReceived,
    QuicConnection,
    QuicUsageError,
    TransportErrorCode,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.migration import migration_refused
from quicnet.quic.tls_setup import make_tls
from quicnet.quic.transport_params import PreferredAddress


def _lossy(loss: float) -> LinkConfig:
    return LinkConfig(latency=0.02, jitter=0.004, loss=loss, reorder=0.02, reorder_delay=0.01)


def _move(sim: Simulation, index: int, *, port_only: bool) -> None:
    """The client's datagrams leave from another address from now on."""
    host, port = sim.client.address
    if port_only:
        sim.rebind_client((host, port + 1))  # a new socket on the same host
    else:
        sim.rebind_client((f"10.0.{index + 1}.1", 50000))  # another network
    sim.client.connection.migrate(sim.now, port_only=port_only)


def _server_routes(sim: Simulation, cid: bytes) -> bool:
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    return cid in endpoint.connections


def test_thirty_seconds_with_a_move_every_two_seconds_at_five_percent_loss() -> None:
    """Streams both ways and datagrams go on across 14 moves; every byte arrives in order,
    each move uses a new server CID and retires the old one (§9.5), and the server
    follows each move (§9.3) after validating the new path."""
    sim = make_pair(seed=90, c2s=_lossy(0.05), s2c=_lossy(0.05))
    sim.s2c.config.bandwidth = 150_000  # the download takes the whole 30 seconds
    body = payloads(91, [4_000_000])[0]
    serve = answer_requests(body)

    up = StreamCollector()

    def server_events(node, conn, event) -> None:  # type: ignore[no-untyped-def]
        up(node, conn, event)
        serve(node, conn, event)

    sim.server.on_event = server_events
    down = StreamCollector()
    sim.client.on_event = down
    sim.c2s.config.loss = sim.s2c.config.loss = 0.0
    handshake(sim)
    sim.c2s.config.loss = sim.s2c.config.loss = 0.05
    client = sim.client.connection
    sent = send_on_new_streams(client, payloads(92, [300_000]))
    server = sim.server.connection
    cids = [client.cids.current_peer_cid]
    next_datagram = 0
    received_per_move: list[int] = []
    moves = 14
    for i in range(moves + 1):
        start = len(sim.server.events_of(DatagramReceived))
        for _ in range(20):  # a datagram every 100 ms
            client.send_datagram(next_datagram.to_bytes(4, "big"))
            next_datagram += 1
            sim.run_for(0.1)
        received_per_move.append(len(sim.server.events_of(DatagramReceived)) - start)
        if i == moves:
            break
        assert not down.complete(sent), "the download must outlast the moves"
        controller = client.recovery.cc
        port_only = i % 2 == 0
        _move(sim, i, port_only=port_only)
        cids.append(client.cids.current_peer_cid)
        assert cids[-1] not in cids[:-1]  # §9.5: never a CID used on another path
        assert (client.recovery.cc is controller) == port_only  # §9.4
    sim.run_until(lambda: down.complete(sent) and up.complete(sent), timeout=120.0)
    [(sid, request)] = sent.items()
    assert bytes(up.data[sid]) == request
    assert bytes(down.data[sid]) == body  # every byte, in order, exactly once
    # Datagrams kept flowing after every move (unreliable: most, not all, arrive).
    assert all(n >= 10 for n in received_per_move), received_per_move
    got = [int.from_bytes(e.data, "big") for e in sim.server.events_of(DatagramReceived)]
    assert len(got) == len(set(got)) and set(got) <= set(range(next_datagram))
    sim.run_for(1.0)
    assert client.state == server.state == ConnectionState.CONNECTED
    assert server.peer_address == sim.client.address and server.address_validated
    assert server.path_migrations == client.path_migrations == moves
    assert client.stats().path_migrations == moves
    # The old CIDs were retired: the server routes none of them any more.
    assert _server_routes(sim, cids[-1])
    assert not any(_server_routes(sim, cid) for cid in cids[:-1])
    for link in (sim.c2s, sim.s2c):  # the loss really happened
        assert link.stats.dropped > 0.03 * link.stats.datagrams > 30


def test_a_move_validates_the_new_path_and_the_server_follows() -> None:
    """§9.2: a PATH_CHALLENGE goes out from the new address at once, padded to 1200
    bytes (§8.2.1); the server answers it and moves its packets to the new address."""
    sim = make_pair(seed=93)
    handshake(sim)
    sim.run_for(0.5)  # the server's NEW_CONNECTION_IDs have arrived
    client = sim.client.connection
    server = sim.server.connection
    old_address = sim.client.address
    _move(sim, 0, port_only=False)
    path = client.paths.current
    assert path is not None and path.validating
    sizes: list[int] = []
    sim.c2s.taps.append(lambda data, now: sizes.append(len(data)))
    sim.run_for(1.0)
    assert sizes and sizes[0] == 1200  # the challenge, expanded, first
    assert not path.validating and path.challenges == []  # the response came back
    assert server.peer_address == sim.client.address != old_address
    assert server.path_migrations == 1 and server.address_validated
    sent = send_on_new_streams(client, payloads(93, [50_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), timeout=10.0)
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))


def test_no_move_before_the_handshake_is_confirmed() -> None:
    """RFC 9000 §9: MUST NOT initiate migration before the handshake is confirmed."""
    sim = make_pair(seed=94)
    handshake(sim, confirmed=False)  # complete; HANDSHAKE_DONE is a round trip away
    client = sim.client.connection
    assert client.handshake_complete and not client.handshake_confirmed
    assert "confirmed" in (migration_refused(client) or "")
    cid = client.cids.current_peer_cid
    with pytest.raises(QuicUsageError, match="confirmed"):
        client.migrate(sim.now)
    assert client.cids.current_peer_cid == cid and client.path_migrations == 0
    sim.run_until(lambda: client.handshake_confirmed)
    sim.run_for(0.1)
    client.migrate(sim.now)  # now it may
    assert client.cids.current_peer_cid != cid and client.path_migrations == 1


def test_disable_active_migration_is_honoured() -> None:
    """§18.2: a server that sent disable_active_migration is never migrated away from."""
    sim = make_pair(seed=95, server={"disable_active_migration": True})
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    assert client.remote_params is not None and client.remote_params.disable_active_migration
    with pytest.raises(QuicUsageError, match="disable_active_migration"):
        client.migrate(sim.now)
    assert client.path_migrations == 0 and not client.paths.active


def test_a_server_does_not_migrate() -> None:
    sim = make_pair(seed=96)
    handshake(sim)
    with pytest.raises(QuicUsageError, match="only a client"):
        sim.server.connection.migrate(sim.now)


def test_a_move_waits_for_a_spare_connection_id() -> None:
    """§5.1.1, §9.5: with no unused server CID the client cannot move; once the server
    issued a new one (for the CID the move retired) it can move again."""
    sim = make_pair(seed=97, client={"active_connection_id_limit": 2})
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    assert len(client.cids.peer) == 2  # the handshake's CID and one spare
    _move(sim, 0, port_only=True)
    with pytest.raises(QuicUsageError, match="spare connection ID"):
        client.migrate(sim.now)
    assert client.path_migrations == 1
    sim.run_for(0.5)  # RETIRE_CONNECTION_ID out, NEW_CONNECTION_ID back
    _move(sim, 1, port_only=False)
    sim.run_for(1.0)
    server = sim.server.connection
    assert server.path_migrations == 2 and server.peer_address == sim.client.address


def test_key_update_under_migration() -> None:
    """A key update started on one path completes on the next; data goes on."""
    sim = make_pair(seed=98, c2s=_lossy(0.03), s2c=_lossy(0.03))
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    sent = send_on_new_streams(client, payloads(98, [600_000]))
    sim.run_for(0.5)
    for i in range(3):
        if client.keys.update_confirmed:
            client.request_key_update()
            sim.flush()  # the first packets of the new phase leave from the old address
        _move(sim, i, port_only=i == 1)
        sim.run_for(1.0)
    sim.run_until(lambda: collector.complete(sent), timeout=60.0)
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))
    assert client.key_updates >= 2 and client.key_phase == server.recv_key_phase
    assert server.path_migrations == 3 and server.peer_address == sim.client.address


def test_a_path_that_never_answers_ends_the_connection() -> None:
    """§8.2.4: validation from the new address is abandoned after three PTOs; a client
    has no other address to fall back to (its old socket is gone), so it ends."""
    sim = make_pair(seed=99)
    handshake(sim)
    sim.run_for(0.5)
    client: QuicConnection = sim.client.connection
    _move(sim, 0, port_only=False)
    sim.c2s.filter = lambda data, now: False  # the new path carries nothing
    sim.run_for(10.0)
    assert client.state == ConnectionState.TERMINATED
    assert client.termination is not None
    assert "path validation failed" in client.termination.reason


def test_a_replayed_packet_from_the_old_address_does_not_pull_the_server_back() -> None:
    """§9.3, §12.3: after the client moved, an attacker replays one of its packets from
    the old address. Its CID was retired with the move, so the endpoint answers at most
    with a stateless reset shorter than the replay (§10.3), which ends nothing: the
    server stays on the new path and the client's connection goes on."""
    sim = make_pair(seed=100)
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    server = sim.server.connection
    captured: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: captured.append(data))
    client.send_datagram(b"before the move")
    sim.run_for(0.2)
    old_address = sim.client.address
    replay = captured[-1]
    _move(sim, 0, port_only=False)
    sent = send_on_new_streams(client, payloads(100, [100_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_for(0.3)
    assert server.peer_address == sim.client.address
    migrations = server.path_migrations
    before = len(sim.sent_elsewhere)  # what the server sent there before it saw the move
    for _ in range(3):
        sim.inject(replay, old_address, sim.server.address)
        sim.run_for(0.05)
    sim.run_until(lambda: collector.complete(sent), timeout=20.0)
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))
    assert server.peer_address == sim.client.address  # not pulled back
    assert server.path_migrations == migrations == 1
    answers = [d for _src, dst, d in sim.sent_elsewhere[before:] if dst == old_address]
    assert len(answers) <= 3 and all(len(d) < len(replay) for d in answers)
    assert client.state == server.state == ConnectionState.CONNECTED


def _offer_preferred_address(sim: Simulation) -> bytes:
    """Make the (bare) server connection offer a preferred_address whose CID is its own
    sequence 1 (RFC 9000 §5.1.1), also announced by NEW_CONNECTION_ID: the test puts
    the parameter in the TLS engine's transport parameters by hand (what the server's
    ``preferred_address_v4`` option does is in test_sim_preferred_address.py)."""
    server = sim.server.impl
    assert isinstance(server, QuicConnection)
    cid, token = b"\x01" * 8, bytes(16)
    if server.cid_length:
        server.cids.issue(1)  # also announced by NEW_CONNECTION_ID: the same CID, seq 1
        cid, token = server.cids.local[1].cid, server.cids.local[1].stateless_reset_token
    preferred = PreferredAddress(bytes((10, 0, 0, 3)), 4433, bytes(16), 0, cid, token)
    server.local_params = server.local_params.replace(preferred_address=preferred)
    server.tls = make_tls(server.configuration, server.local_params)
    return preferred.connection_id


def test_the_cid_of_a_preferred_address_is_a_spare_for_migration() -> None:
    """§9.6.3: the CID in a server's preferred_address may be used on any path; a quicnet
    client takes it as the server's sequence 1 (here it does not move to the address:
    ``use_preferred_address=False``; test_sim_preferred_address.py moves)."""
    sim = make_pair(
        seed=101,
        use_endpoint=False,
        client={"active_connection_id_limit": 9, "use_preferred_address": False},
    )
    cid = _offer_preferred_address(sim)
    handshake(sim, confirmed=False)
    client = sim.client.connection
    assert client.cids.peer[1].cid == cid
    sim.run_until(lambda: client.handshake_confirmed)
    _move(sim, 0, port_only=True)
    assert client.cids.current_peer_cid == cid  # the lowest spare sequence number
    sent = send_on_new_streams(client, payloads(101, [20_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), timeout=10.0)
    server = sim.server.connection
    assert server.peer_address == sim.client.address and server.path_migrations == 1
    assert client.paths.current is not None and not client.paths.current.validating


def test_a_preferred_address_with_zero_length_cids_is_refused() -> None:
    """§18.2: a server that chose a zero-length CID MUST NOT send preferred_address."""
    sim = make_pair(seed=102, use_endpoint=False, server={"connection_id_length": 0})
    _offer_preferred_address(sim)
    sim.connect()
    client = sim.client.connection
    sim.run_until(lambda: client.state != ConnectionState.HANDSHAKE, timeout=10.0)
    assert client.termination is not None
    assert client.termination.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR
