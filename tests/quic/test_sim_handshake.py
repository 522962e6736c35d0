"""Handshakes over the simulated network: loss, versions, Version Negotiation, Retry.

Every test runs a client :class:`QuicConnection` against a server
:class:`QuicEndpoint` on simulated time; see ``simnet.py``.
"""

from __future__ import annotations

import pytest
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    drop_long_headers,
    handshake,
    make_pair,
    packet_types,
    payloads,
    send_on_new_streams,
    server_config,
)

from quicnet.quic import (
    ConnectionState,
    HandshakeCompleted,
    QuicConnection,
    QuicVersion,
    StreamDataReceived,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.packets import PacketType, build_retry, parse_long_header, retry_is_valid
from quicnet.quic.versions import VERSION_PARAMS


def _echo(node, conn, event) -> None:  # type: ignore[no-untyped-def]
    """Server side: send every stream's bytes back on the same stream."""
    if isinstance(event, StreamDataReceived):
        conn.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)


def _echo_round_trip(sim: Simulation, size: int, seed: int, timeout: float = 60.0) -> None:
    """The client sends ``size`` bytes on a new stream; the server echoes them back."""
    sim.server.on_event = _echo
    back = StreamCollector()
    sim.client.on_event = back
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sent = send_on_new_streams(client, payloads(seed, [size]))
    sim.run_until(lambda: back.complete(sent), timeout=timeout, what="echo")
    for sid, data in sent.items():
        assert bytes(back.data[sid]) == data


def _lossy(loss: float) -> LinkConfig:
    return LinkConfig(latency=0.025, jitter=0.005, loss=loss)


def test_handshake_lossless() -> None:
    sim = make_pair(seed=0)
    took = handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.state == ConnectionState.CONNECTED
    assert client.handshake_confirmed
    assert client.alpn_protocol == "quicnet"
    # Two round trips of 50 ms at most (plus the server's first flight's pacing).
    assert took < 0.2
    [done] = sim.client.events_of(HandshakeCompleted)
    assert done.alpn_protocol == "quicnet" and not done.session_resumed
    [server_done] = sim.server.events_of(HandshakeCompleted)
    assert server_done.alpn_protocol == "quicnet"
    server = sim.server.connection
    assert server.state == ConnectionState.CONNECTED and server.handshake_confirmed
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.stats.connections_accepted == 1
    assert endpoint.stats.retries_sent == endpoint.stats.version_negotiations_sent == 0
    # Nothing was lost, so nothing was sent twice: a handful of datagrams each way.
    assert sim.c2s.stats.datagrams <= 4 and sim.s2c.stats.datagrams <= 5
    _echo_round_trip(sim, 20_000, seed=0)


#: Seeds whose loss pattern drops the server's first HANDSHAKE_DONE, which is never sent
#: again (the bug test_sim_transfer.py::test_lost_handshake_done_is_retransmitted shows):
#: the client never confirms the handshake and never gives up (see the idle-timeout bug).
_HANDSHAKE_DONE_LOST = {(0.3, 0), (0.3, 1), (0.3, 2), (0.3, 3), (0.3, 5)}


def _loss_cases() -> list[object]:
    cases: list[object] = []
    for loss in (0.0, 0.1, 0.3):
        for seed in range(6 if loss else 1):
            marks = () if (loss, seed) in _HANDSHAKE_DONE_LOST else []
            cases.append(pytest.param(loss, seed, marks=marks, id=f"{loss:.0%}-seed{seed}"))
    return cases


@pytest.mark.parametrize(("loss", "seed"), _loss_cases())
def test_handshake_under_loss(loss: float, seed: int) -> None:
    sim = make_pair(seed=seed, c2s=_lossy(loss), s2c=_lossy(loss))
    handshake(sim, timeout=60.0)
    assert sim.server.connection.handshake_confirmed
    _echo_round_trip(sim, 10_000, seed=seed)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.stats.connections_accepted == 1  # retransmitted Initials join it


_FLIGHTS = {
    # name: (direction, which datagram of that direction to drop, 0-based)
    "client Initial": ("c2s", 0),
    "server Initial+Handshake": ("s2c", 0),
    "client Finished": ("c2s", 1),
    "client Initial and its retransmission": ("c2s", (0, 1)),
    "server first flight twice": ("s2c", (0, 1)),
}


@pytest.mark.parametrize("flight", list(_FLIGHTS))
def test_handshake_recovers_a_lost_flight(flight: str) -> None:
    """Scripted loss of specific handshake datagrams; the handshake completes regardless."""
    direction, which = _FLIGHTS[flight]
    indexes = which if isinstance(which, tuple) else (which,)
    sim = make_pair(seed=0)
    seen = [0]
    dropped: list[int] = []

    def drop(data: bytes, now: float) -> bool:
        index = seen[0]
        seen[0] += 1
        if index in indexes:
            dropped.append(len(data))
            return False
        return True

    (sim.c2s if direction == "c2s" else sim.s2c).filter = drop
    took = handshake(sim, timeout=20.0)
    assert len(dropped) == len(indexes)
    baseline = handshake(make_pair(seed=0))
    assert took > baseline + 0.05  # recovery took at least one probe timeout
    _echo_round_trip(sim, 10_000, seed=0)


def test_handshake_survives_reordering_duplication_and_corruption() -> None:
    link = LinkConfig(latency=0.02, jitter=0.01, duplicate=0.2, reorder=0.2)
    for seed in range(3):
        sim = make_pair(seed=seed, c2s=link, s2c=link)
        handshake(sim)
        # Corruption only once the server knows the connection: see
        # test_fuzz_endpoint_undecryptable_initial for what a corrupted first Initial does.
        sim.c2s.config.corrupt = sim.s2c.config.corrupt = 0.2
        _echo_round_trip(sim, 30_000, seed=seed)
        assert sim.c2s.stats.corrupted + sim.s2c.stats.corrupted > 0


def test_version_2_handshake_and_transfer() -> None:
    v2 = {"version": QuicVersion.V2}
    sim = make_pair(seed=3, client=v2, server=v2, c2s=_lossy(0.05), s2c=_lossy(0.05))
    first_bytes: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: first_bytes.append(data[:5]))
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == QuicVersion.V2
    assert sim.server.connection.version == QuicVersion.V2
    # RFC 9369 §3.2: the v2 Initial's long-header type bits are 0b01, and the version is v2.
    first = first_bytes[0]
    assert first[1:5] == QuicVersion.V2.to_bytes(4, "big")
    assert (first[0] >> 4) & 0x03 == VERSION_PARAMS[QuicVersion.V2].initial_type == 1
    _echo_round_trip(sim, 200_000, seed=3)


def test_version_negotiation_to_a_common_version() -> None:
    """A v2 client meets a v1-only server: Version Negotiation, then a v1 handshake."""
    sim = make_pair(
        seed=1,
        client={"version": QuicVersion.V2},
        server={"supported_versions": (QuicVersion.V1,)},
    )
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == QuicVersion.V1
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.stats.version_negotiations_sent == 1
    assert endpoint.stats.connections_accepted == 1
    _echo_round_trip(sim, 5_000, seed=1)


# Retry ------------------------------------------------------------------------------


def test_retry_handshake() -> None:
    sim = make_pair(seed=2, endpoint={"require_retry": True})
    initials: list[bytes] = []
    sim.c2s.taps.append(
        lambda data, now: (
            initials.append(data) if PacketType.INITIAL in packet_types(data) else None
        )
    )
    handshake(sim)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.stats.retries_sent == 1
    assert endpoint.stats.connections_accepted == 1
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    # The server's transport parameters authenticate the Retry (RFC 9000 §7.3).
    assert client.remote_params is not None
    assert client.remote_params.retry_source_connection_id is not None
    assert (
        client.remote_params.original_destination_connection_id == client.original_destination_cid
    )
    first, second = (parse_long_header(d) for d in initials[:2])
    assert first.token == b"" and second.token != b""
    assert second.destination_cid == client.remote_params.retry_source_connection_id
    _echo_round_trip(sim, 10_000, seed=2)


@pytest.mark.parametrize("seed", range(4))
def test_retry_handshake_under_loss(seed: int) -> None:
    """20% loss of long-header datagrams (Initial, Retry, Handshake) both ways."""
    sim = make_pair(seed=seed, endpoint={"require_retry": True})
    sim.c2s.filter = drop_long_headers(0.2, (seed, "c2s"))
    sim.s2c.filter = drop_long_headers(0.2, (seed, "s2c"))
    handshake(sim)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.stats.retries_sent >= 1
    assert endpoint.stats.connections_accepted == 1
    _echo_round_trip(sim, 10_000, seed=seed)


def _initial_with_token(secret: bytes) -> bytes:
    """The client's second Initial (the one carrying the Retry token) of a real handshake."""
    sim = make_pair(seed=5, endpoint={"require_retry": True, "retry_secret": secret})
    captured: list[bytes] = []

    def tap(data: bytes, now: float) -> None:
        if (
            data[0] & 0x80
            and PacketType.INITIAL in packet_types(data)
            and parse_long_header(data).token
        ):
            captured.append(data)

    sim.c2s.taps.append(tap)
    handshake(sim)
    return captured[0]


def test_retry_token_replayed_from_another_address_is_dropped() -> None:
    secret = bytes(range(32))
    datagram = _initial_with_token(secret)
    endpoint = QuicEndpoint(server_config(), require_retry=True, retry_secret=secret)
    endpoint.receive_datagram(datagram, ("10.6.6.6", 50000), 1.5)
    assert endpoint.stats.connections_accepted == 0
    assert endpoint.stats.datagrams_dropped == 1
    assert endpoint.datagrams_to_send(1.5) == []  # not even another Retry
    # The same datagram from the address the token was issued to is accepted.
    endpoint.receive_datagram(datagram, CLIENT_ADDR, 1.5)
    assert endpoint.stats.connections_accepted == 1
    assert endpoint.datagrams_to_send(1.5)


def test_forged_retry_tokens_are_dropped() -> None:
    secret = bytes(range(32))
    datagram = _initial_with_token(secret)
    header = parse_long_header(datagram)
    token_at = datagram.index(header.token)
    # 1. One flipped bit anywhere in the token.
    for i in (0, 1, len(header.token) // 2, len(header.token) - 1):
        forged = bytearray(datagram)
        forged[token_at + i] ^= 0x01
        endpoint = QuicEndpoint(server_config(), require_retry=True, retry_secret=secret)
        endpoint.receive_datagram(bytes(forged), CLIENT_ADDR, 1.5)
        assert endpoint.stats.connections_accepted == 0, i
        assert endpoint.datagrams_to_send(1.5) == []
    # 2. A genuine token, but from a server with another secret.
    other = QuicEndpoint(server_config(), require_retry=True, retry_secret=bytes(32))
    other.receive_datagram(datagram, CLIENT_ADDR, 1.5)
    assert other.stats.connections_accepted == 0
    # 3. An expired token (tokens live 10 s).
    late = QuicEndpoint(server_config(), require_retry=True, retry_secret=secret)
    late.receive_datagram(datagram, CLIENT_ADDR, 60.0)
    assert late.stats.connections_accepted == 0


def test_client_discards_a_retry_that_repeats_its_destination_cid() -> None:
    sim = make_pair(seed=6)
    sim.connect()
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    odcid = client.original_destination_cid
    retry = build_retry(QuicVersion.V1, client.host_cid, odcid, odcid, b"a token")
    assert retry_is_valid(retry, odcid, QuicVersion.V1)  # integrity is fine; the CID is not
    client.receive_datagram(retry, SERVER_ADDR, sim.now)
    initials: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: initials.append(data))
    sim.run_for(2.0)  # the PTO resends the Initial
    long_headers = [d for d in initials if d[0] & 0x80]  # 1-RTT follows the handshake
    assert long_headers and all(parse_long_header(d).token == b"" for d in long_headers)


def test_client_accepts_one_valid_retry_only() -> None:
    sim = make_pair(seed=7, endpoint={"require_retry": True})
    retries: list[bytes] = []
    sim.s2c.taps.append(lambda data, now: retries.append(data))
    sim.connect()
    sim.run_until(lambda: bool(retries), what="Retry")
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    forged = build_retry(
        QuicVersion.V1, client.host_cid, b"\x99" * 8, client.original_destination_cid, b"other"
    )
    handshake_time = sim.run_until(lambda: client.handshake_complete, what="handshake")
    assert handshake_time < 1.0
    client.receive_datagram(forged, SERVER_ADDR, sim.now)  # a second Retry: ignored
    assert client.state == ConnectionState.CONNECTED
    tampered = bytearray(retries[0])
    tampered[-1] ^= 1
    fresh = make_pair(seed=8)
    fresh.connect()
    fresh_client = fresh.client.impl
    assert isinstance(fresh_client, QuicConnection)
    fresh_client.receive_datagram(bytes(tampered), SERVER_ADDR, fresh.now)  # bad tag: ignored
    initials: list[bytes] = []
    fresh.c2s.taps.append(lambda data, now: initials.append(data))
    fresh.run_for(1.5)
    assert initials and parse_long_header(initials[0]).token == b""


# Amplification limit (RFC 9000 §8.1) ----------------------------------------------------


def test_server_sends_at_most_three_times_what_it_received_before_validation() -> None:
    sim = make_pair(seed=4)
    passed: list[bytes] = []

    def only_the_first(data: bytes, now: float) -> bool:
        if not passed:
            passed.append(data)
            return True
        return False

    sim.c2s.filter = only_the_first
    sim.connect()
    sim.run_for(40.0)
    received = sim.c2s.stats.delivered_bytes
    assert received == len(passed[0]) >= 1200
    sent = sim.s2c.stats.bytes
    assert 0 < sent <= 3 * received
    # The server never heard from the client again: its connection idles out and is reaped.
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.connections == {}


@pytest.mark.parametrize("seed", range(6))
def test_amplification_limit_holds_throughout_a_lossy_handshake(seed: int) -> None:
    """Until a Handshake packet from the client arrives, sent <= 3 x received, at every send."""
    sim = make_pair(seed=seed)
    # The client's datagrams are what earn the server its budget: lose 30% of them.
    sim.c2s.filter = drop_long_headers(0.3, (seed, "c2s"))
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    violations: list[str] = []

    def check(data: bytes, now: float) -> None:
        conns = list(endpoint._all)
        if conns and not conns[0].address_validated:
            received = sim.c2s.stats.delivered_bytes
            if sim.s2c.stats.bytes > 3 * received:
                violations.append(f"t={now}: sent {sim.s2c.stats.bytes} > 3 x {received}")

    sim.s2c.taps.append(check)
    sim.connect()
    sim.run_until(
        lambda: bool(endpoint._all) and next(iter(endpoint._all)).address_validated,
        timeout=60.0,
        what="address validation",
    )
    assert violations == []
