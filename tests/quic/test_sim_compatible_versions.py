"""Compatible version negotiation (RFC 9368) between v1 and v2 (RFC 9369 §4), simulated.

A client that prefers v2 starts in v1 and lists (v2, v1) in version_information;
a server that speaks v2 switches at once (its Initial, Handshake and 1-RTT
packets in v2), one that does not stays in v1. A Version Negotiation packet
forged to push a client off a version both speak is caught by the downgrade
check (RFC 9368 §4: VERSION_NEGOTIATION_ERROR).
"""

from __future__ import annotations

import pytest
from adversary import seal_initial
from hypothesis import given
from hypothesis import strategies as st
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
    server_config,
)

from quicnet.crypto import NamedGroup
from quicnet.quic import (
    HandshakeCompleted,
    QuicConnection,
    QuicEndpoint,
    QuicVersion,
    SessionTicketReceived,
    compatible_versions,
)
from quicnet.quic.compatible_versions import (
    VersionInformation,
    check_server_parameters,
    local_version_information,
    other_version_key,
    server_parameters_for,
)
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.packets import (
    PacketType,
    build_retry,
    build_version_negotiation,
    parse_long_header,
)
from quicnet.quic.transport_params import TransportParameters
from quicnet.tls import Epoch

V1, V2 = QuicVersion.V1, QuicVersion.V2
PREFERS_V2 = {"version": V1, "supported_versions": (V2, V1)}


def _long_headers(sim: Simulation) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(packet type, version) of every long-header packet each way, first packets first."""
    c2s: list[tuple[int, int]] = []
    s2c: list[tuple[int, int]] = []

    def tap(out: list[tuple[int, int]]) -> object:
        def record(data: bytes, now: float) -> None:
            start = 0
            while start < len(data) and data[start] & 0x80:
                header = parse_long_header(data, start)
                out.append((header.packet_type, header.version))
                start = header.end
                if header.packet_type == PacketType.RETRY:
                    break

        return record

    sim.c2s.taps.append(tap(c2s))  # type: ignore[arg-type]
    sim.s2c.taps.append(tap(s2c))  # type: ignore[arg-type]
    return c2s, s2c


def _handshake_in(
    sim: Simulation, version: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Run the handshake; both ends must end in ``version``. The long-header packets
    each way, as :func:`_long_headers` records them."""
    c2s, s2c = _long_headers(sim)
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == version and sim.server.connection.version == version
    return c2s, s2c


def _transfer(sim: Simulation, size: int = 50_000) -> None:
    collector = StreamCollector()
    sim.server.on_event = collector
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sent = send_on_new_streams(client, payloads(5, [size]))
    sim.run_until(lambda: collector.complete(sent), what="transfer")


def test_client_preferring_v2_switches_a_v2_server_compatibly() -> None:
    sim = make_pair(seed=11, client=PREFERS_V2)
    c2s, s2c = _handshake_in(sim, V2)
    # The client's first Initial is v1 (the original version); everything the server
    # sends is in v2, starting with its first Initial: one round trip, no VN.
    assert c2s[0] == (PacketType.INITIAL, V1)
    assert s2c[0] == (PacketType.INITIAL, V2)
    assert all(version == V2 for _, version in s2c)
    assert (PacketType.HANDSHAKE, V2) in s2c and (PacketType.HANDSHAKE, V2) in c2s
    assert not [p for p in c2s if p == (PacketType.HANDSHAKE, V1)]
    assert sim.server.impl.stats.version_negotiations_sent == 0  # type: ignore[union-attr]
    _transfer(sim)


def test_v1_only_server_stays_in_v1() -> None:
    sim = make_pair(seed=12, client=PREFERS_V2, server={"supported_versions": (V1,)})
    c2s, s2c = _handshake_in(sim, V1)
    assert all(version == V1 for _, version in c2s + s2c)
    _transfer(sim)


def test_default_client_stays_in_its_version() -> None:
    sim = make_pair(seed=13)
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == V1 and sim.server.connection.version == V1
    # Both sent version_information: (v1 chosen; v1 then v2 available).
    assert client.remote_params is not None
    info = VersionInformation.of(client.remote_params)
    assert info is not None and info.chosen == V1 and info.available == (V1, V2)


def test_0rtt_stays_in_the_original_version_and_is_accepted_after_the_switch() -> None:
    # A v1 ticket (the first client speaks only v1): the next connection starts in v1.
    v1_only = {"supported_versions": (V1,)}
    sim1 = make_pair(seed=14, client=v1_only, server={"enable_early_data": True})
    handshake(sim1)
    sim1.run_for(0.5)
    ticket = sim1.client.events_of(SessionTicketReceived)[0].ticket
    assert ticket.quic_version == V1
    endpoint = sim1.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    client = QuicConnection(
        client_config(session_ticket=ticket, enable_early_data=True, **PREFERS_V2)
    )
    sim = Simulation(client, endpoint, seed=15, start=sim1.now + 1, client_address=("10.0.0.3", 1))
    c2s, s2c = _long_headers(sim)
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.connect()
    sent = send_on_new_streams(client, payloads(6, [3000]))
    sim.run_until(
        lambda: collector.complete(sent) and bool(sim.client.events_of(HandshakeCompleted)),
        what="resumed handshake",
    )
    [done] = sim.client.events_of(HandshakeCompleted)
    assert done.early_data_accepted and client.version == V2
    zero_rtt = [version for kind, version in c2s if kind == PacketType.ZERO_RTT]
    assert zero_rtt and set(zero_rtt) == {V1}  # RFC 9369 §4.1: never in the negotiated one
    assert s2c[0] == (PacketType.INITIAL, V2)


def test_forged_version_negotiation_downgrade_is_refused() -> None:
    """An attacker answers a v2 client's Initial with a VN listing only v1, though the
    server speaks v2: the server's available versions give it away (RFC 9368 §4)."""
    sim = make_pair(seed=16, client={"version": V2})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.connect()
    forged = build_version_negotiation(client.host_cid, client.original_destination_cid, [V1])
    client.receive_datagram(forged, sim.server.address, sim.now)
    assert client.version == V1  # it restarted in v1, as told
    sim.run_until(lambda: client.termination is not None, what="downgrade detected")
    assert client.termination is not None
    assert client.termination.error_code == TransportErrorCode.VERSION_NEGOTIATION_ERROR
    assert not sim.client.events_of(HandshakeCompleted)


def test_server_chosen_version_must_be_the_one_in_use() -> None:
    client = QuicConnection(client_config())
    lying = TransportParameters(version_information=VersionInformation(V2, (V1, V2)).encode())
    with pytest.raises(TransportError) as caught:
        check_server_parameters(client, lying)
    assert caught.value.error_code == TransportErrorCode.VERSION_NEGOTIATION_ERROR
    check_server_parameters(client, TransportParameters())  # v1 without VN: may be absent


def test_server_refuses_a_client_chosen_version_that_is_not_its_initials() -> None:
    encode = server_parameters_for(TransportParameters(), V1, (V1, V2))
    client = TransportParameters(version_information=VersionInformation(V2, (V2, V1)).encode())
    with pytest.raises(TransportError) as caught:
        encode(client.encode())
    assert caught.value.error_code == TransportErrorCode.VERSION_NEGOTIATION_ERROR
    honest = TransportParameters(version_information=VersionInformation(V1, (V2, V1)).encode())
    ours = TransportParameters.decode(encode(honest.encode()), from_server=True)
    info = VersionInformation.of(ours)
    assert info is not None and info.chosen == V2


def test_server_parameters_reuse_the_encoding_only_for_the_same_version() -> None:
    """The parameters encoded for the original version are sent as they are when the
    client stays in it, and re-encoded with the new version_information when it moves."""
    params = TransportParameters(version_information=local_version_information(V1, (V1, V2)))
    encoded = params.encode()
    encode = server_parameters_for(params, V1, (V1, V2), encoded)
    stays = TransportParameters(version_information=VersionInformation(V1, (V1,)).encode())
    assert encode(stays.encode()) is encoded
    moves = TransportParameters(version_information=VersionInformation(V1, (V2, V1)).encode())
    info = VersionInformation.of(
        TransportParameters.decode(encode(moves.encode()), from_server=True)
    )
    assert info is not None and info.chosen == V2


def test_server_configuration_lists_its_versions() -> None:
    assert server_config().supported_versions == (V1, V2)
    assert client_config(version=V2).supported_versions == (V2, V1)


@given(st.binary(max_size=40))
def test_version_information_parsing(body: bytes) -> None:
    """Parsed twice (the second time from the remembered versions), the same answer: a
    malformed value fails each time, a good one gives equal, separate objects."""
    results = []
    for _ in range(2):
        try:
            info = VersionInformation.decode(body)
        except TransportError as exc:
            assert exc.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR
            results.append(None)
            continue
        assert info.encode() == body and info.chosen != 0 and 0 not in info.available
        results.append(info)
    first, second = results
    if first is None or second is None:
        assert first is second is None
        return
    assert first is not second
    assert (first.chosen, first.available) == (second.chosen, second.available)


def test_remembered_version_information_is_bounded() -> None:
    """A peer's list is remembered only when short: a long one (20 versions) parses the
    same each time and is not kept; a short one is."""
    long_list = VersionInformation(V1, [V1, *range(0x1A2A3A4A, 0x1A2A3A4A + 19)]).encode()
    short_list = VersionInformation(V1, (V2, V1)).encode()
    for body in (long_list, short_list):
        first, second = VersionInformation.decode(body), VersionInformation.decode(body)
        assert (first.chosen, first.available) == (second.chosen, second.available)
    assert long_list not in compatible_versions._DECODED
    assert short_list in compatible_versions._DECODED


def test_switch_after_a_retry() -> None:
    """RFC 9369 §4.1: the Retry is in the original version, the client's Initial with the
    token too; the server switches after it, keyed by the Retry's connection ID."""
    sim = make_pair(seed=17, client=PREFERS_V2, endpoint={"require_retry": True})
    c2s, s2c = _handshake_in(sim, V2)
    assert s2c[0] == (PacketType.RETRY, V1)
    assert c2s[:2] == [(PacketType.INITIAL, V1), (PacketType.INITIAL, V1)]
    assert (PacketType.INITIAL, V2) in s2c and (PacketType.HANDSHAKE, V2) in s2c
    _transfer(sim)


def test_retry_in_the_other_version_is_ignored() -> None:
    """RFC 9369 §4.1: a client ignores a Retry in a version other than its original."""
    sim = make_pair(seed=18, client=PREFERS_V2)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.connect()
    retry = build_retry(V2, client.host_cid, b"r" * 8, client.original_destination_cid, b"token")
    client.receive_datagram(retry, sim.server.address, sim.now)
    assert not client.retry_happened and client.retry_token == b""
    sim.run_until(lambda: client.handshake_confirmed, what="handshake")
    assert client.version == V2


@pytest.mark.parametrize("seed", range(6))
def test_switch_survives_loss_and_reordering(seed: int) -> None:
    """Lost and reordered first flights: the client's v1 Initials repeated after the
    server switched still open (its original-version key), and both end in v2."""
    link = LinkConfig(latency=0.02, jitter=0.01, loss=0.25, reorder=0.2)
    sim = make_pair(seed=100 + seed, client=PREFERS_V2, c2s=link, s2c=link)
    handshake(sim, timeout=120)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == V2 and sim.server.connection.version == V2
    sim.c2s.config.loss = sim.s2c.config.loss = 0.02
    _transfer(sim, 20_000)


def test_server_still_opens_the_clients_original_version_initials() -> None:
    """RFC 9369 §4.1: the server's first flights are lost, the client (not switched yet)
    repeats its v1 Initial; the switched server opens it with its original-version key
    (every datagram the client sent counts as authenticated) and both end in v2."""
    s2c = LinkConfig(blackholes=[(1.0, 1.5)])
    sim = make_pair(seed=19, client=PREFERS_V2, s2c=s2c)
    c2s, _s2c = _long_headers(sim)
    handshake(sim, timeout=30)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == V2 and sim.server.connection.version == V2
    assert c2s.count((PacketType.INITIAL, V1)) >= 2  # repeated before the switch
    server = sim.server.connection
    assert server.traffic.datagrams_received == sim.c2s.stats.delivered


#: A ClientHello over two Initial packets (its X25519MLKEM768 key share), as qh3 sends.
SPLIT_HELLO = {**PREFERS_V2, "groups": (NamedGroup.X25519MLKEM768, NamedGroup.x25519)}


def _initial_ping(client: QuicConnection) -> bytes:
    """A datagram of one v1 Initial from ``client``: PING and padding, no CRYPTO data (the
    PTO probe of a client whose ClientHello lost a packet, as qh3 sends it). It takes the
    client's next Initial packet number, which the client thus skips (§12.3)."""
    return seal_initial(client, b"\x01", version=V1, dcid=client.original_destination_cid)


@pytest.mark.parametrize("rest", ["late", "lost"])
def test_server_is_silent_until_a_split_client_hello_is_whole(rest: str) -> None:
    """The second half of a split ClientHello comes late, or is lost (the client's PTO
    probe repeats both halves): the server, whose version hangs on the client's
    parameters, sends nothing meanwhile. Its first packet, the ACK with its ServerHello,
    is v2. A v1 ACK of the first half (RFC 9368 §2.3 allows it, and then switching) makes
    a client that takes any v1 packet as the server's choice (qh3) drop every v2 one:
    the handshake stalls."""
    sim = make_pair(seed=20, client=SPLIT_HELLO)
    c2s, s2c = _long_headers(sim)
    times: list[float] = []

    def second_datagram(data: bytes, now: float) -> bool:
        times.append(now)
        if len(times) != 2:
            return True
        if rest == "late":  # after the server has handled the first half
            sim.inject(data, sim.client.address, sim.server.address, delay=0.030)
        return False

    sim.c2s.filter = second_datagram
    handshake(sim, timeout=30)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.version == V2 and sim.server.connection.version == V2
    # The hello went out as two v1 Initial datagrams at once.
    assert times[0] == times[1] and c2s[:2] == [(PacketType.INITIAL, V1)] * 2
    assert s2c[0] == (PacketType.INITIAL, V2)
    assert all(version == V2 for _, version in s2c)


def test_server_acknowledges_a_repeat_of_half_a_hello_and_stays_in_v1() -> None:
    """The second half of the hello is lost and the client's probe repeats nothing new
    (qh3 sends a PING): the server acknowledges at once, in v1, and stays in v1, since a
    client may resend the lost half only once its first half is acknowledged (qh3 does)
    and take that v1 ACK as the server's choice (qh3 does). Staying is always allowed:
    the original version is in the client's list (RFC 9368 §2.3)."""
    sim = make_pair(seed=21, client=SPLIT_HELLO)
    c2s, s2c = _long_headers(sim)
    gate = {"sent": 0, "open": False}

    def lossy(data: bytes, now: float) -> bool:  # all but the first half, until opened
        gate["sent"] += 1
        return gate["sent"] == 1 or gate["open"]

    sim.c2s.filter = lossy
    sim.connect()
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    sim.run_until(lambda: sim.c2s.stats.delivered == 1, what="the first half")
    assert not s2c  # half a hello: the server's version is open, it says nothing
    sim.inject(_initial_ping(client), sim.client.address, sim.server.address)
    sim.run_until(lambda: bool(s2c), what="the server's ACK")
    assert s2c == [(PacketType.INITIAL, V1)]
    gate["open"] = True
    sim.run_until(lambda: client.handshake_confirmed, timeout=30, what="handshake")
    assert client.version == V1 and sim.server.connection.version == V1
    assert all(version == V1 for _, version in s2c + c2s)
    info = VersionInformation.of(client.remote_params)  # type: ignore[arg-type]
    assert info is not None and info.chosen == V1 and V2 in info.available


def test_server_that_sent_a_hello_retry_request_in_v1_stays_in_v1() -> None:
    """RFC 9369 §4.1: CRYPTO data from the server in the original version makes it the
    negotiated one. A HelloRetryRequest goes out before the server has the client's
    parameters (in v1): the ServerHello and the rest stay in v1."""
    sim = make_pair(seed=22, client=PREFERS_V2, server={"groups": (NamedGroup.secp256r1,)})
    c2s, s2c = _handshake_in(sim, V1)
    assert all(version == V1 for _, version in s2c + c2s)


def test_client_keeps_the_original_version_once_the_server_sent_crypto_in_it() -> None:
    """RFC 9369 §4.1: a CRYPTO frame from the server in the original version makes that
    the negotiated version. Here it is a HelloRetryRequest, after which no handshake key
    exists yet: the client no longer opens an Initial of another version (before it, it
    does: that is how it learns of a switch)."""
    client = QuicConnection(client_config(**PREFERS_V2))
    server = QuicEndpoint(server_config(supported_versions=(V1,), groups=(NamedGroup.secp256r1,)))
    now = 1.0
    client.connect(SERVER_ADDR, now)
    assert other_version_key(client, V2, Epoch.INITIAL) is not None  # a switch is possible
    for data, _ in client.datagrams_to_send(now):
        server.receive_datagram(data, CLIENT_ADDR, now)
    retry_request = server.datagrams_to_send(now)
    assert [parse_long_header(d).version for d, _ in retry_request] == [V1]
    for data, _ in retry_request:
        client.receive_datagram(data, SERVER_ADDR, now)
    assert client.spaces[Epoch.HANDSHAKE].recv_key is None  # a HelloRetryRequest, no keys
    assert other_version_key(client, V2, Epoch.INITIAL) is None
    for _ in range(6):  # and the handshake completes in v1
        for data, _ in client.datagrams_to_send(now):
            server.receive_datagram(data, CLIENT_ADDR, now)
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, SERVER_ADDR, now)
    assert client.handshake_complete and client.version == V1
