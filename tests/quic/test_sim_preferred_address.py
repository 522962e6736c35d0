"""A server's preferred address (RFC 9000 §9.6), in the simulator.

The server endpoint offers ``PREFERRED`` (another local address of its node:
``sim.add_server_address``); the client moves there once the handshake is
confirmed and the path validated. Every payload is checked byte for byte, and
the simulator checks the 3x amplification limit on every step.
"""

from __future__ import annotations

from typing import Any

import pytest
from simnet import (
    SERVER_ADDR,
    Address,
    CidUses,
    Simulation,
    StreamCollector,
    check_cid_uses,
    cid_uses,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
    serve_download,
    server_config,
)

from quicnet.quic import (
    DatagramReceived,
    PeerAddressChanged,
    QuicUsageError,
)
from quicnet.quic.ecn import EcnValidation
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.migration import migration_refused
from quicnet.quic.preferred_address import chosen_address
from quicnet.quic.transport_params import PreferredAddress

PREFERRED: Address = ("10.0.0.3", 4444)


def _pair(seed: int, *, client: dict[str, Any] | None = None, reachable: bool = True) -> Simulation:
    sim = make_pair(seed=seed, client=client, server={"preferred_address_v4": PREFERRED})
    if reachable:
        sim.add_server_address(PREFERRED)
    else:  # a black hole: nothing sent there arrives (the client still chose it)
        sim.ledger.initiated.add((sim.client, PREFERRED))
    return sim


def _from(sim: Simulation, source: Address) -> list[int]:
    """Sizes of the datagrams the server sends from ``source`` from now on (a wiretap)."""
    sizes: list[int] = []

    def tap(src: Address, dst: Address, data: bytes, now: float) -> None:
        if src == source:
            sizes.append(len(data))

    sim.wiretaps.append(tap)
    return sizes


def test_the_client_moves_to_the_preferred_address_and_the_transfer_goes_on() -> None:
    """§9.6.1-§9.6.2: a download started on the handshake's address finishes byte for byte
    at the preferred address: the client validates it with the preferred CID, then sends
    everything there; the server follows from its preferred address."""
    sim = _pair(201)
    body = payloads(201, [600_000])[0]
    down = serve_download(sim, body)
    from_preferred = _from(sim, PREFERRED)
    handshake(sim, confirmed=False)
    client = sim.client.connection
    pa = client.remote_params.preferred_address if client.remote_params else None
    assert pa is not None and pa.ipv4_port == PREFERRED[1]
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    server = sim.server.connection
    assert client.peer_address == PREFERRED and client.path_migrations == 1
    assert client.cids.current_peer_cid == pa.connection_id  # §9.6.1: the preferred CID
    assert server.paths.current is not None and server.paths.current.local == PREFERRED
    assert server.path_migrations == 1
    assert len(from_preferred) > 100  # the download came from there
    # ECN (§13.4) survives the move: the datagrams from there are marked as the others.
    assert client.ecn.state == server.ecn.state == EcnValidation.CAPABLE
    assert [e for e in sim.client.events if isinstance(e, PeerAddressChanged)] == [
        PeerAddressChanged(SERVER_ADDR, PREFERRED)
    ]
    # The upload direction too, after the move.
    up = StreamCollector()
    sim.server.on_event = up
    data = payloads(202, [300_000])
    ids = send_on_new_streams(client, data)
    sim.run_until(lambda: up.complete(ids), timeout=30.0)
    assert [bytes(up.data[i]) for i in ids] == data


def test_the_server_sends_only_probes_from_the_preferred_address_until_the_client_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """§9.6.2: the server answers (and sends) PATH_CHALLENGE at the preferred address, but
    its non-probing packets leave from the original address until a non-probing packet
    arrives at the preferred one. The client here validates the path and never moves."""
    from quicnet.quic.preferred_address import PreferredAddressState

    monkeypatch.setattr(PreferredAddressState, "_client_move", lambda self, c, path: None)
    sim = _pair(203)
    body = payloads(203, [400_000])[0]
    down = serve_download(sim, body)
    from_preferred = _from(sim, PREFERRED)
    from_original = _from(sim, SERVER_ADDR)
    handshake(sim)
    client = sim.client.connection
    sim.run_for(0.5)  # the path to the preferred address is validated meanwhile
    path = client.paths.get(PREFERRED)
    assert path is not None and path.validated
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    server = sim.server.connection
    assert server.paths.current is not None and server.paths.current.local is None
    assert 1 <= len(from_preferred) <= 3  # PATH_RESPONSE + PATH_CHALLENGE (maybe again)
    assert len(from_original) > 100
    assert server.path_migrations == 0 and client.peer_address == SERVER_ADDR


def test_a_preferred_address_that_never_answers_leaves_the_client_where_it_was() -> None:
    """§9.6.1: if path validation fails the client MUST keep sending to the original
    address; the validation is abandoned after three PTOs (§8.2.4)."""
    sim = _pair(204, reachable=False)
    body = payloads(204, [300_000])[0]
    down = serve_download(sim, body)
    handshake(sim)
    client = sim.client.connection
    assert client.paths.get(PREFERRED) is not None  # being validated
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    sim.run_for(5.0)
    assert bytes(down.data[next(iter(sent))]) == body
    assert client.peer_address == SERVER_ADDR and client.path_migrations == 0
    assert client.paths.get(PREFERRED) is None  # abandoned
    assert migration_refused(client) is None  # and the client may migrate again
    assert not any(isinstance(e, PeerAddressChanged) for e in sim.client.events)
    assert sum(1 for src, dst, _ in sim.sent_elsewhere if dst == PREFERRED) >= 2


def _move_while_validating(sim: Simulation, new: Address) -> tuple[bytes, bytes]:
    """The client moves to ``new`` while it validates the preferred address; returns the
    server CIDs it used from the old address (current, preferred probes)."""
    client = sim.client.connection
    preferred = client.preferred
    assert preferred is not None
    probing = preferred.probing()
    assert probing is not None and probing.peer_cid is not None  # validation under way
    old = (client.cids.current_peer_cid, probing.peer_cid.cid)
    sim.rebind_client(new)
    client.migrate(sim.now)
    # §9.6.3: both server addresses are validated from the new address, concurrently,
    # and §9.5: each path with a CID never used before (the two old ones are retired).
    current = client.paths.current
    assert current is not None and current.address == SERVER_ADDR and current.validating
    assert preferred.probing() is probing and not probing.challenges
    assert probing.peer_cid is not None
    fresh = {client.cids.current_peer_cid, probing.peer_cid.cid}
    assert len(fresh) == 2 and not fresh & set(old)
    assert all(cid not in {p.cid for p in client.cids.peer.values()} for cid in old)
    return old


def _download_across_the_move(sim: Simulation, seed: int, new: Address) -> tuple[CidUses, CidUses]:
    """Handshake, move the client to ``new`` while it validates the preferred address,
    then download a 300,000-byte body byte for byte; the CIDs used on the way."""
    body = payloads(seed, [300_000])[0]
    down = serve_download(sim, body)
    uses = cid_uses(sim)
    handshake(sim)
    _move_while_validating(sim, new)
    sent = send_on_new_streams(sim.client.connection, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    return uses


def test_a_client_that_moves_while_validating_ends_at_the_preferred_address() -> None:
    """§9.6.3: a client that migrates while it validates the preferred address validates
    both server addresses from its new one; the preferred one answers, so the connection
    ends up there, and a download goes on byte for byte."""
    sim = _pair(206)
    new = ("10.0.7.1", 50000)
    uses = _download_across_the_move(sim, 206, new)
    client = sim.client.connection
    assert {dst for src, dst in set().union(*uses[0].values()) if src == new} == {
        SERVER_ADDR,
        PREFERRED,
    }
    assert client.peer_address == PREFERRED and client.path_migrations == 2
    server = sim.server.connection
    current = server.paths.current
    assert current is not None and current.local == PREFERRED and current.address == new
    check_cid_uses(uses)


def test_a_client_that_moves_while_validating_stays_if_only_the_original_answers() -> None:
    """§9.6.3, §9.6.1: the preferred address is a black hole; validated from the new
    address as well, it fails, and the client stays at the original address, which its
    new address validated."""
    sim = _pair(207, reachable=False)
    new = ("10.0.8.1", 50000)
    uses = _download_across_the_move(sim, 207, new)
    client = sim.client.connection
    sim.run_for(5.0)
    assert any(src == new and dst == PREFERRED for src, dst, _ in sim.sent_elsewhere)
    assert client.peer_address == SERVER_ADDR and client.path_migrations == 1
    assert client.paths.get(PREFERRED) is None  # abandoned (§8.2.4)
    assert client.preferred is not None and client.preferred.probing() is None
    server = sim.server.connection
    assert server.peer_address == new and server.path_migrations == 1
    check_cid_uses(uses)


def test_a_move_while_validating_waits_for_two_spare_connection_ids() -> None:
    """§9.5, §9.6.3: the two server addresses need a fresh CID each; with the preferred
    address's CID and one spare only, the client cannot move yet."""
    sim = _pair(208, client={"active_connection_id_limit": 3}, reachable=False)
    handshake(sim)
    sim.run_for(0.05)  # the server's one NEW_CONNECTION_ID
    client = sim.client.connection
    assert len(client.cids.peer) == 3 and client.preferred is not None
    assert client.preferred.probing() is not None
    with pytest.raises(QuicUsageError, match="two spare connection IDs"):
        client.migrate(sim.now)


def test_a_client_that_opts_out_stays() -> None:
    """``use_preferred_address=False``: the client never probes the preferred address."""
    sim = _pair(205, client={"use_preferred_address": False})
    from_preferred = _from(sim, PREFERRED)
    handshake(sim)
    sim.run_for(2.0)
    client = sim.client.connection
    assert client.remote_params is not None and client.remote_params.preferred_address
    assert client.paths.get(PREFERRED) is None and client.peer_address == SERVER_ADDR
    assert from_preferred == []


def test_disable_active_migration_does_not_hold_back_the_preferred_address() -> None:
    """§18.2: disable_active_migration concerns the handshake's address. The client still
    moves to the preferred address, and may migrate once it is there."""
    sim = make_pair(
        seed=206,
        server={"preferred_address_v4": PREFERRED, "disable_active_migration": True},
    )
    sim.add_server_address(PREFERRED)
    handshake(sim, confirmed=False)
    client = sim.client.connection
    with pytest.raises(QuicUsageError):  # not confirmed yet, then validating
        client.migrate(sim.now)
    sim.run_until(lambda: client.peer_address == PREFERRED, timeout=5.0)
    sim.run_for(0.5)  # a spare CID arrives
    host, port = sim.client.address
    sim.rebind_client((host, port + 1))
    client.migrate(sim.now, port_only=True)
    collector = StreamCollector()
    sim.server.on_event = collector
    data = payloads(206, [50_000])
    ids = send_on_new_streams(client, data)
    sim.run_until(lambda: collector.complete(ids), timeout=10.0)
    assert [bytes(collector.data[i]) for i in ids] == data
    assert client.path_migrations == 2


def test_packets_from_another_new_server_address_are_still_refused() -> None:
    """§9.6: the client accepts the preferred address once it probes it, and still
    discards packets from any other server address (copies of real ones, here)."""
    sim = _pair(207)
    handshake(sim)
    sim.run_until(lambda: sim.client.connection.peer_address == PREFERRED, timeout=5.0)
    client = sim.client.connection
    seen: list[bytes] = []

    def tap(src: Address, dst: Address, data: bytes, now: float) -> None:
        if src == PREFERRED and dst == sim.client.address:
            seen.append(data)

    sim.wiretaps.append(tap)
    client.ping()
    sim.run_for(0.3)
    assert seen
    before = client.traffic.datagrams_received
    for data in seen:
        sim.inject(data, ("10.0.0.9", 4433), sim.client.address)
    sim.run_for(0.3)
    assert client.traffic.datagrams_received == before
    assert client.paths.get(("10.0.0.9", 4433)) is None


def test_the_address_of_the_servers_family_is_chosen() -> None:
    """§9.6.3: a client stays in its family; an all-zero address means none offered."""
    v6 = bytes.fromhex("20010db8000000000000000000000001")  # 2001:db8::1
    both = PreferredAddress(bytes((192, 0, 2, 1)), 443, v6, 8443, b"\x01" * 8, bytes(16))
    assert chosen_address(both, ("198.51.100.7", 443)) == ("192.0.2.1", 443)
    assert chosen_address(both, ("2001:db8::7", 443)) == ("2001:db8::1", 8443)
    assert chosen_address(both, ("::ffff:198.51.100.7", 443)) == ("::ffff:192.0.2.1", 443)
    v6_only = PreferredAddress(bytes(4), 0, v6, 8443, b"\x01" * 8, bytes(16))
    assert chosen_address(v6_only, ("198.51.100.7", 443)) is None


@pytest.mark.parametrize(
    ("offered", "server"),
    [
        (bytes((127, 0, 0, 1)), "198.51.100.7"),  # loopback from a server that is not
        (bytes((224, 0, 0, 1)), "198.51.100.7"),  # multicast
        (bytes((255, 255, 255, 255)), "198.51.100.7"),  # broadcast
    ],
)
def test_addresses_that_could_forge_requests_are_not_chosen(offered: bytes, server: str) -> None:
    """§21.5.6: no move to a loopback address offered by a server that is not on the
    loopback, nor to an address that is not unicast."""
    preferred = PreferredAddress(offered, 443, bytes(16), 0, b"\x01" * 8, bytes(16))
    assert chosen_address(preferred, (server, 443)) is None
    assert chosen_address(preferred, ("192.0.2.200", 443)) is None
    on_loopback = PreferredAddress(bytes((127, 0, 0, 2)), 443, bytes(16), 0, b"\x01" * 8, bytes(16))
    assert chosen_address(on_loopback, ("127.0.0.1", 443)) == ("127.0.0.2", 443)


def test_packets_raced_to_the_preferred_address_from_a_spoofed_source_move_nothing() -> None:
    """§9.6.3 (and §9.3.1-§9.3.2): an on-path attacker copies the client's packets to the
    preferred address from a victim's address, ahead of the originals. The server
    probes the victim from its preferred address within the 3x limit (the simulator
    checks it on every step), never moves there, and the transfer is intact."""
    sim = _pair(208)
    victim: Address = ("10.9.9.9", 7777)
    handshake(sim)
    client = sim.client.connection
    sim.run_until(lambda: client.peer_address == PREFERRED, timeout=5.0)
    raced = 0

    def race(src: Address, dst: Address, data: bytes, now: float) -> None:
        nonlocal raced
        if src == sim.client.address and dst == PREFERRED and raced < 20 and not data[0] & 0x80:
            raced += 1
            sim.inject(data, victim, PREFERRED)  # arrives first: the link takes 20 ms

    sim.wiretaps.append(race)
    collector = StreamCollector()
    sim.server.on_event = collector
    data = payloads(208, [200_000])
    ids = send_on_new_streams(client, data)
    sim.run_until(lambda: collector.complete(ids), timeout=30.0)
    sim.run_for(3.0)
    assert raced == 20
    assert [bytes(collector.data[i]) for i in ids] == data
    server = sim.server.connection
    assert server.paths.current is not None and server.paths.current.address == sim.client.address
    assert server.paths.current.local == PREFERRED
    to_victim = [d for s, d, _ in sim.sent_elsewhere if d == victim]
    sent = sum(len(x) for s, d, x in sim.sent_elsewhere if d == victim)
    received = sim.ledger.received.get((sim.server, victim), 0)
    assert to_victim and sent <= 3 * received  # it probed, within the budget


def test_the_server_waits_for_validation_when_data_arrives_first() -> None:
    """§9.6.2: the client's answer to the server's PATH_CHALLENGE is lost, so non-probing
    packets reach the preferred address before the server validated that path: it keeps
    sending from the original address, challenges again, and moves once validated."""
    sim = _pair(209)
    body = payloads(209, [300_000])[0]
    down = serve_download(sim, body)
    client = sim.client.connection
    dropped: list[int] = []
    drop_next = False

    def tap(src: Address, dst: Address, data: bytes, now: float) -> None:
        nonlocal drop_next
        pref = client.preferred
        moved = pref is not None and pref.moved
        if dst == PREFERRED and moved and len(data) >= 1200 and not dropped:
            drop_next = True  # the first padded probe after the move: the PATH_RESPONSE

    def keep(data: bytes, now: float) -> bool:
        nonlocal drop_next
        if drop_next:
            drop_next = False
            dropped.append(len(data))
            return False
        return True

    sim.wiretaps.append(tap)
    sim.c2s.filter = keep
    waited: list[bool] = []

    def watch(sim: Simulation) -> None:
        server = sim.server.live_connections()[0] if sim.server.live_connections() else None
        if server is not None and server.preferred is not None and server.preferred.pending:
            current = server.paths.current
            waited.append(current is not None and current.local is None)

    sim.checks.append(watch)
    handshake(sim)
    sim.run_until(lambda: client.peer_address == PREFERRED, timeout=5.0)
    sent = send_on_new_streams(client, [b"GET /"])
    sim.run_until(lambda: down.complete(sent), timeout=30.0)
    assert bytes(down.data[next(iter(sent))]) == body
    assert dropped and waited and all(waited)  # pending, still sending from home
    server = sim.server.connection
    assert server.paths.current is not None and server.paths.current.local == PREFERRED


def test_a_restarted_server_resets_a_client_at_its_preferred_address() -> None:
    """§10.3: a server that lost its state answers a packet that reached its preferred
    address with a stateless reset from there, and the client (which moved there) ends."""
    key = bytes(range(32))
    sim = make_pair(
        seed=210,
        server={"preferred_address_v4": PREFERRED},
        endpoint={"stateless_reset_key": key},
    )
    sim.add_server_address(PREFERRED)
    handshake(sim)
    client = sim.client.connection
    sim.run_until(lambda: client.peer_address == PREFERRED, timeout=5.0)
    fresh = QuicEndpoint(server_config(preferred_address_v4=PREFERRED), stateless_reset_key=key)
    sim.replace_server(fresh)
    resets: list[Address] = []

    def tap(src: Address, dst: Address, data: bytes, now: float) -> None:
        if dst == sim.client.address:
            resets.append(src)

    sim.wiretaps.append(tap)
    client.ping()
    sim.run_until(lambda: client.termination is not None, timeout=5.0)
    assert client.termination is not None and client.termination.stateless_reset
    assert fresh.stats.stateless_resets_sent >= 1 and resets[0] == PREFERRED


def test_a_server_that_moved_drops_newer_packets_at_its_original_address() -> None:
    """§9.6.2: once the server sends from its preferred address, a newer packet that still
    reaches the original address is dropped (here: the client's DATAGRAM, diverted there
    by the network); what reaches the preferred address goes on being processed."""
    config = {"max_datagram_frame_size": 1200}
    sim = make_pair(seed=212, client=config, server={**config, "preferred_address_v4": PREFERRED})
    sim.add_server_address(PREFERRED)
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    sim.run_until(
        lambda: (
            client.peer_address == PREFERRED
            and server.paths.current is not None
            and server.paths.current.local == PREFERRED
        ),
        timeout=5.0,
    )
    sim.run_for(0.2)
    diverted: list[bytes] = []

    def divert(data: bytes, now: float) -> bool:
        if diverted:
            return True
        diverted.append(data)  # the next datagram goes to the old address instead
        sim.inject(data, sim.client.address, SERVER_ADDR)
        return False

    sim.c2s.filter = divert
    client.send_datagram(b"diverted to the old address")
    sim.run_for(0.2)
    sim.c2s.filter = None
    client.send_datagram(b"at the preferred address")
    sim.run_for(0.2)
    got = [e.data for e in sim.server.events if isinstance(e, DatagramReceived)]
    assert diverted and b"at the preferred address" in got
    assert b"diverted to the old address" not in got
    assert server.paths.current is not None and server.paths.current.local == PREFERRED
