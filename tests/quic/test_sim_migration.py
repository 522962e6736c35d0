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
    SERVER_ADDR,
    Address,
    LinkConfig,
    Simulation,
    StreamCollector,
    answer_requests,
    check_cid_uses,
    cid_uses,
    handshake,
    make_pair,
    one_rtt_frame_types,
    payloads,
    send_on_new_streams,
    serve_download,
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


def _downloading(
    seed: int, **server: object
) -> tuple[Simulation, bytes, StreamCollector, QuicConnection, QuicConnection]:
    """A connected pair whose server answers a request with a 200,000-byte body, once
    the NEW_CONNECTION_ID frames have arrived: ``(sim, body, download, client, server)``."""
    sim = make_pair(seed=seed, server=dict(server) or None)
    body = payloads(seed, [200_000])[0]
    down = serve_download(sim, body)
    handshake(sim)
    sim.run_for(0.5)
    return sim, body, down, sim.client.connection, sim.server.connection


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
    assert not path.validating and path.challenges == ()  # the response came back
    assert server.peer_address == sim.client.address != old_address
    assert server.path_migrations == 1 and server.address_validated
    sent = send_on_new_streams(client, payloads(93, [50_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), timeout=10.0)
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))


def _move_or_rebind(sim: Simulation, how: str) -> None:
    if how == "migrate":
        _move(sim, 0, port_only=False)
    else:  # the NAT's doing: the client's connection never knows (and keeps its CID)
        sim.rebind_client(("10.0.0.1", 50001))


@pytest.mark.parametrize("loss", [0.0, 0.05])
@pytest.mark.parametrize("how", ["migrate", "nat-rebinding"])
def test_the_server_sends_each_client_cid_to_one_client_address(how: str, loss: float) -> None:
    """§9.5: the server never sends one client CID to two client addresses. The old path,
    re-validated (§9.3.3), keeps the CID it had; the new one gets another, even after a
    NAT rebinding where the client kept its CID (ours binds none of the server's); the
    old CID is retired once the re-validation ends (here: fails, the address is gone),
    and a download goes on byte for byte (links with jitter and reordering, and loss)."""
    seed = 110 + int(loss * 100) + (how == "migrate")
    sim = make_pair(seed=seed, c2s=_lossy(0.0), s2c=_lossy(0.0))
    body = payloads(seed, [300_000])[0]
    down = serve_download(sim, body)
    handshake(sim)
    sim.run_for(0.5)  # the NEW_CONNECTION_ID frames have arrived
    sim.c2s.config.loss = sim.s2c.config.loss = loss
    client = sim.client.connection
    server = sim.server.connection
    old_cid = server.cids.current_peer_cid
    old_address = sim.client.address
    uses = cid_uses(sim)
    _move_or_rebind(sim, how)
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=60.0)
    assert bytes(down.data[next(iter(sent))]) == body
    sim.run_for(5.0)  # the old path's re-validation fails (3 PTOs), its CID is retired
    assert client.state == server.state == ConnectionState.CONNECTED
    assert server.peer_address == sim.client.address != old_address
    assert server.path_migrations == 1
    check_cid_uses(uses, rebound=how == "nat-rebinding")
    server_uses = uses[1]
    # The old path was re-validated with the old CID, the new one got one CID only.
    to_old = [d for _src, dst, d in sim.sent_elsewhere if dst == old_address]
    assert to_old and all(d[1:9] == old_cid for d in to_old)
    assert server_uses[old_cid] == {(SERVER_ADDR, old_address)}
    to_new = [
        cid for cid, pairs in server_uses.items() if (SERVER_ADDR, sim.client.address) in pairs
    ]
    assert to_new == [server.cids.current_peer_cid] != [old_cid]
    # Retired: the client got RETIRE_CONNECTION_ID for it (and issued another).
    assert not client.cids.is_local(old_cid)
    assert old_cid not in {p.cid for p in server.cids.peer.values()}
    assert len(client.cids.local) == server.cids.our_limit


def test_a_client_that_still_hears_its_old_address_answers_from_its_new_one() -> None:
    """§9.3.3, §9.5, the client's side: the server's challenge to the client's old address
    reaches it (a driver keeps reading its old socket a while) but the connection is not
    told where it arrived (no ``old_local``, no ``local=``: a driver that does not say).
    The client answers from its new address with the server CID it uses there (it sends
    nothing more from the old one, where the old CID went); the response validates the
    old path (§8.2.3: on any path), whose CID the server then retires."""
    sim, body, down, client, server = _downloading(123)
    old_address, old_cid = sim.client.address, server.cids.current_peer_cid
    heard: list[bytes] = []

    def linger(src: Address, dst: Address, data: bytes, now: float) -> None:
        if dst == old_address:  # the old socket still reads: the client gets it
            heard.append(data)
            sim.inject(data, src, sim.client.address, delay=0.02)

    uses = cid_uses(sim)
    sim.wiretaps.append(linger)
    _move(sim, 0, port_only=False)
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    sim.run_for(1.0)
    assert heard and all(d[1:9] == old_cid for d in heard)
    old = server.paths.get(old_address)
    assert old is not None and old.validated and not old.validating and old.peer_cid is None
    assert not client.cids.is_local(old_cid)  # retired once validated
    assert server.peer_address == sim.client.address != old_address
    check_cid_uses(uses)  # from the client: one server CID per (from, to)


PATH_CHALLENGE, PATH_RESPONSE = 0x1A, 0x1B


def _move_keeping(sim: Simulation, address: Address) -> Address:
    """The client moves to ``address`` and its driver still reads the old one (a lingering
    socket): what reaches it there comes with ``local=old``. Returns the old address."""
    old = sim.client.address
    sim.rebind_client(address)
    sim.keep_client_address(old)
    sim.client.connection.migrate(sim.now, old_local=old)
    return old


def _release(sim: Simulation, old: Address) -> None:
    """The driver stops reading ``old`` (the linger is over) and tells the connection."""
    sim.drop_client_address(old)
    sim.client.connection.release_local(old)


def _sent_from(sim: Simulation, src: Address) -> list[tuple[bytes, list[int]]]:
    """From now on: each 1-RTT datagram the client sends from ``src``, with its frame types."""
    out: list[tuple[bytes, list[int]]] = []
    server = sim.server.connection

    def tap(source: Address, dst: Address, data: bytes, now: float) -> None:
        if source == src and dst == SERVER_ADDR:
            out.append((data, one_rtt_frame_types(data, server)))

    sim.wiretaps.append(tap)
    return out


def _challenges_to(sim: Simulation, dst: Address) -> list[bytes]:
    """From now on: each datagram with a PATH_CHALLENGE the server sends to ``dst``."""
    out: list[bytes] = []
    client = sim.client.connection

    def tap(src: Address, to: Address, data: bytes, now: float) -> None:
        if to == dst and PATH_CHALLENGE in one_rtt_frame_types(data, client):
            out.append(data)

    sim.wiretaps.append(tap)
    return out


def test_a_client_that_still_reads_its_old_address_answers_from_there() -> None:
    """§8.2.2: a PATH_RESPONSE goes on the path its PATH_CHALLENGE came on. A client that
    moved and still reads its old address (``migrate(old_local=)``) answers the server's
    re-validation of that address (§9.3.3) from there, with the server CID it used there
    (§9.5: it leaves from nowhere else), padded to 1200 bytes; nothing else leaves from
    there. The CID is kept until the client stops reading there, then retired."""
    sim, body, down, client, server = _downloading(124)
    old_cid, old_seq = client.cids.current_peer_cid, client.cids.current_peer_sequence
    uses = cid_uses(sim)
    old_address = sim.client.address
    from_old = _sent_from(sim, old_address)
    challenged = _challenges_to(sim, old_address)
    _move_keeping(sim, ("10.0.1.1", 50000))
    assert client.cids.current_peer_cid != old_cid and old_seq in client.cids.peer
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    sim.run_for(1.0)
    assert server.peer_address == sim.client.address != old_address
    old = server.paths.get(old_address)
    assert old is not None and old.validated and not old.validating  # §9.3.3 done
    assert challenged and 1 <= len(from_old) <= len(challenged)
    for data, frames in from_old:
        assert frames == [PATH_RESPONSE] and data[1:9] == old_cid and len(data) >= 1200
    # Kept while the old address is read: the client has not retired it, nor used it.
    assert old_seq in client.cids.peer and _server_routes(sim, old_cid)
    assert client.paths.get(SERVER_ADDR, old_address) is not None
    _release(sim, old_address)
    sim.run_for(1.0)
    assert old_seq not in client.cids.peer and not _server_routes(sim, old_cid)
    assert client.paths.get(SERVER_ADDR, old_address) is None
    assert client.state == server.state == ConnectionState.CONNECTED
    check_cid_uses(uses)  # from the client: one server CID per (from, to), and back


def test_two_moves_within_the_linger_keep_one_cid_per_old_address() -> None:
    """A client that moves twice while it still reads both old addresses answers each
    re-validation from the address it reached, each with the CID used from there
    (§9.5), and retires each CID when it stops reading that address, not before.
    The CIDs kept are not spares: a move that would need one is refused."""
    sim = make_pair(seed=125)
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    server = sim.server.connection
    uses = cid_uses(sim)
    first, second, third = sim.client.address, ("10.0.1.1", 50000), ("10.0.2.1", 50000)
    cids = [client.cids.current_peer_cid]
    seqs = [client.cids.current_peer_sequence]
    sent_from = [_sent_from(sim, first)]
    _move_keeping(sim, second)
    cids.append(client.cids.current_peer_cid)
    seqs.append(client.cids.current_peer_sequence)
    sim.run_for(1.0)
    sent_from.append(_sent_from(sim, second))  # after the move from there
    assert _move_keeping(sim, third) == second
    sim.run_for(1.0)
    assert server.peer_address == third and server.path_migrations == 2
    for address, cid, sent in zip((first, second), cids, sent_from, strict=True):
        path = server.paths.get(address)
        assert path is not None and path.validated and not path.validating
        assert sent and all(f == [PATH_RESPONSE] and d[1:9] == cid for d, f in sent)
    assert set(seqs) <= set(client.cids.peer)  # both kept
    # The server issued active_connection_id_limit (4) CIDs and replaced none (none was
    # retired): one more move can go, the one after cannot until a CID is retired.
    assert migration_refused(client) is None
    _move_keeping(sim, ("10.0.3.1", 50000))
    sim.run_for(1.0)
    assert migration_refused(client) == (
        "the server has not issued a spare connection ID yet (RFC 9000 §5.1.1)"
    )
    _release(sim, first)
    sim.run_for(1.0)
    assert seqs[0] not in client.cids.peer and seqs[1] in client.cids.peer
    assert not _server_routes(sim, cids[0]) and _server_routes(sim, cids[1])
    assert migration_refused(client) is None  # the server replaced the retired one
    for address in (second, third):
        _release(sim, address)
    sim.run_for(1.0)
    assert seqs[1] not in client.cids.peer and not _server_routes(sim, cids[1])
    assert client.state == server.state == ConnectionState.CONNECTED
    check_cid_uses(uses)


def test_a_probe_answered_before_the_move_keeps_its_cid() -> None:
    """§9.5: the client's PATH_CHALLENGE from its new address arrives alone (the
    non-probing packet after it is lost): the server answers it with a spare CID of the
    client's, not its current one (which went to the old address), and once the client's
    next non-probing packet moves it there, that CID is the current one."""
    sim, body, down, client, server = _downloading(122)
    old_cid = server.cids.current_peer_cid
    uses = cid_uses(sim)
    after: list[bytes] = []

    def lose_the_second(data: bytes, now: float) -> bool:
        after.append(data)
        return len(after) != 2

    sim.c2s.filter = lose_the_second
    _move(sim, 0, port_only=False)
    new_address = sim.client.address
    sim.run_for(0.03)  # the challenge arrived, alone; the response is on its way
    assert server.peer_address != new_address and server.path_migrations == 0
    probed = server.paths.get(new_address)
    assert probed is not None and probed.peer_cid is not None
    lent = probed.peer_cid.cid
    assert lent != old_cid
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    assert server.peer_address == new_address and server.cids.current_peer_cid == lent
    assert [cid for cid, pairs in uses[1].items() if (SERVER_ADDR, new_address) in pairs] == [lent]
    check_cid_uses(uses)


def test_a_client_that_comes_back_gets_the_cid_its_old_path_kept() -> None:
    """§9.3.3, §9.5: the NAT rebinds the client and, while the server re-validates the
    old address, rebinds it back: the old path is current again with the CID it kept;
    the CID the server used meanwhile stays with the other address and is retired
    once that address's validation ends."""
    sim, body, down, client, server = _downloading(120)
    home, away = sim.client.address, ("10.0.0.1", 50001)
    first = server.cids.current_peer_cid
    uses = cid_uses(sim)
    sim.rebind_client(away)
    client.ping()
    sim.run_for(0.1)
    assert server.peer_address == away
    old = server.paths.get(home)
    assert old is not None and old.validating and old.peer_cid is not None
    assert old.peer_cid.cid == first
    second = server.cids.current_peer_cid
    assert second != first
    sim.rebind_client(home)
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    assert server.peer_address == home and server.path_migrations == 2
    assert server.cids.current_peer_cid == first  # the CID the path kept
    sim.run_for(5.0)  # the validation of the address it left fails: its CID is retired
    check_cid_uses(uses, rebound=True)
    assert {dst for _src, dst in uses[1][second]} == {away}
    assert not client.cids.is_local(second) and client.cids.is_local(first)
    assert client.state == server.state == ConnectionState.CONNECTED


def test_without_a_spare_cid_the_server_follows_with_the_current_one() -> None:
    """§9.5: a server holding no spare CID of the client's (two NAT rebindings in quick
    succession, two CIDs per side) keeps its current CID for the new address, which
    §9.5 allows when the client kept its own: linkable, but the connection goes on."""
    sim, body, down, client, server = _downloading(121, active_connection_id_limit=2)
    assert len(server.cids.peer) == 2
    sim.rebind_client(("10.0.0.1", 50001))
    client.ping()
    sim.run_for(0.1)  # the server moved to its spare CID; the old path keeps the other
    current = server.cids.current_peer_cid
    sim.rebind_client(("10.0.0.1", 50002))
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    assert server.peer_address == ("10.0.0.1", 50002) and server.path_migrations == 2
    assert server.cids.current_peer_cid == current  # none spare: the same CID
    sim.run_for(5.0)
    assert client.state == server.state == ConnectionState.CONNECTED


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
