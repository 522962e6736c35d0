"""What an attacker (or a peer that breaks the rules) can do to a QUIC connection, and
what must hold anyway: each test names the rule and fails if the defence is removed.

Packets a peer authenticates are crafted with the peer's own keys
(``adversary.seal_one_rtt``); everything else comes from the simulated network
(``simnet``). The hypothesis-driven attacker is in ``test_adversary.py``.
"""

from __future__ import annotations

import logging
import random
import sys
from collections import Counter

import pytest
from adversary import seal_one_rtt
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    check_cid_uses,
    cid_uses,
    client_config,
    handshake,
    make_pair,
    one_rtt_frame_types,
    packet_types,
    payloads,
    send_on_new_streams,
    serve_download,
    server_config,
)

from quicnet.crypto import NamedGroup, dev_identity
from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    DatagramReceived,
    QuicConnection,
    QuicVersion,
    SessionTicketReceived,
    StreamDataReceived,
    TransportErrorCode,
)
from quicnet.quic.buffer import encode_varint
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.handshake import MAX_SESSION_TICKETS
from quicnet.quic.packets import PacketType
from quicnet.tls.server import TLSServer

# RFC 9000 §12.3, §13.2.3: a packet number below the tracked floor is never accepted again.


def test_replayed_datagram_packet_is_dropped_after_many_gaps() -> None:
    sim = make_pair(seed=31)
    handshake(sim)
    client = sim.client.connection
    captured: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: captured.append(data) if not data[0] & 0x80 else None)
    client.send_datagram(b"pay me once")
    sim.run_for(0.1)
    # Every other client datagram is lost: the server sees far more than 64 gaps.
    count = [0]

    def every_other(data: bytes, now: float) -> bool:
        count[0] += 1
        return count[0] % 2 == 0

    sim.c2s.filter = every_other
    for i in range(150):
        client.send_datagram(i.to_bytes(4, "big"))
        sim.run_for(0.002)
    sim.c2s.filter = None
    sim.run_for(0.5)
    # Replay every captured datagram: those whose packet number still decodes near the
    # largest received but fell below the trimmed ACK ranges must be dropped as well.
    for data in captured:
        sim.inject(data, CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.5)
    received = Counter(e.data for e in sim.server.events_of(DatagramReceived))
    assert received[b"pay me once"] == 1
    assert max(received.values()) == 1, [d for d, n in received.items() if n > 1][:5]


# RFC 9001 §6.2-6.3: a flipped key phase is only a key update if the packet decrypts.


def test_forged_key_phase_does_not_kill_a_client_mid_handshake() -> None:
    sim = make_pair(seed=32)
    handshake(sim, confirmed=False)
    client = sim.client.connection
    assert client.handshake_complete and not client.handshake_confirmed
    rng = random.Random("forged key phase")
    # Header protection masks the key-phase bit with a pseudo-random value per packet:
    # among 32 forgeries some unmask to the other phase.
    for _ in range(32):
        body = rng.randbytes(60)
        sim.inject(b"\x44" + client.host_cid + body, SERVER_ADDR, CLIENT_ADDR)
    sim.run_for(0.001)
    assert client.state == ConnectionState.HANDSHAKE or client.state == ConnectionState.CONNECTED
    assert not sim.client.events_of(ConnectionTerminated)
    sim.run_until(lambda: client.handshake_confirmed, what="confirmation")


# RFC 8446 §4.1.4 in QUIC (RFC 9001 §4.7 is silent: HelloRetryRequest works as in TLS).


@pytest.mark.parametrize("version", [QuicVersion.V1, QuicVersion.V2], ids=["v1", "v2"])
@pytest.mark.parametrize("retry", [False, True], ids=["no-retry", "retry"])
def test_hello_retry_request_in_quic(version: int, retry: bool) -> None:
    """The client's only key share is for a group the server does not accept."""
    sim = make_pair(
        seed=33,
        client={"groups": (NamedGroup.secp256r1, NamedGroup.x25519), "version": version},
        server={"groups": (NamedGroup.x25519,)},
        endpoint={"require_retry": retry},
    )
    client = sim.client.connection
    flights: list[list[PacketType]] = []
    sim.s2c.taps.append(lambda data, now: flights.append(packet_types(data)))
    handshake(sim)
    # The HelloRetryRequest travels alone: no Handshake packet until the second ClientHello.
    answers = [types for types in flights if PacketType.RETRY not in types]
    assert answers[0] == [PacketType.INITIAL]
    assert PacketType.HANDSHAKE in answers[1]
    assert client.state == ConnectionState.CONNECTED and client.version == version
    assert client.tls.group == NamedGroup.x25519
    assert not sim.server.events_of(ConnectionTerminated)
    sent = send_on_new_streams(client, [b"after a retry request"])
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), what="transfer")


# RFC 9000 §8.1, §14.1: padding an Initial to 1200 bytes never breaks the 3x limit.


@pytest.mark.parametrize("extra_names", [0, 12, 25, 40, 70])
def test_padding_never_exceeds_the_amplification_limit(extra_names: int) -> None:
    """Only the client's first datagram arrives; the server probes until it gives up.

    Certificates of several sizes leave different remainders of the 3x budget after the
    first flight: a probe that would need padding beyond the remainder must wait.
    """
    names = ("localhost", *(f"name-{i}.padding.example" for i in range(extra_names)))
    ident = dev_identity(names)
    sim = make_pair(
        seed=34,
        client={"trust_roots": (ident.trust_root,)},
        server={"certificate_chain": ident.certificate_chain, "private_key": ident.private_key},
    )
    first: list[bytes] = []
    sim.c2s.filter = lambda data, now: not first and not first.append(data)  # type: ignore[func-returns-value]
    highest = [0]
    sim.s2c.taps.append(lambda data, now: highest.__setitem__(0, sim.s2c.stats.bytes))
    sim.connect()
    sim.run_for(40.0)
    received = sim.c2s.stats.delivered_bytes
    assert received == 1200
    assert sim.s2c.stats.bytes > 1200  # the server did answer (and probe)
    assert highest[0] <= 3 * received


# RFC 9000 §9.3, §9.3.1-9.3.3, §9.4, §8.2: migration toward an address nobody validated.

VICTIM = ("10.66.6.6", 6666)


def _download(sim: Simulation, size: int, seed: int) -> tuple[StreamCollector, dict[int, bytes]]:
    """The client asks, the server sends ``size`` bytes back on the same stream."""
    body = payloads(seed, [size])[0]
    collector = serve_download(sim, body)
    asked = send_on_new_streams(sim.client.connection, [b"GET"])
    return collector, {sid: body for sid in asked}


def _sent_to(sim: Simulation, address: tuple[str, int]) -> int:
    return sum(len(d) for _src, dst, d in sim.sent_elsewhere if dst == address)


def test_a_forwarded_packet_cannot_pull_a_download_to_another_address() -> None:
    sim = make_pair(seed=35)
    handshake(sim)
    uses = cid_uses(sim)
    collector, expected = _download(sim, 2_000_000, 35)
    sim.run_for(0.3)  # the download is under way
    # An on-path attacker forwards one client packet from the victim's address, ahead
    # of the original (which it drops): it now carries the newest packet number.
    forwarded: list[bytes] = []

    def steal(data: bytes, now: float) -> bool:
        if forwarded or data[0] & 0x80:
            return True
        forwarded.append(data)
        sim.inject(data, VICTIM, SERVER_ADDR)
        return False

    sim.c2s.filter = steal
    sim.run_until(lambda: bool(forwarded), what="a client packet to forward")
    sim.c2s.filter = None
    sim.run_until(lambda: collector.complete(expected), timeout=60.0, what="download")
    assert bytes(collector.data[next(iter(expected))]) == next(iter(expected.values()))
    # §9.3.1: the victim saw at most three times what "it" sent (one forwarded datagram).
    assert 0 < _sent_to(sim, VICTIM) <= 3 * len(forwarded[0])
    server = sim.server.connection
    assert server.peer_address == CLIENT_ADDR  # reverted (§9.3.2) or moved back (§9.3.3)
    assert server.state == ConnectionState.CONNECTED
    check_cid_uses(uses)  # §9.5: the victim got a client CID of its own


def test_failed_validation_reverts_to_the_last_validated_address() -> None:
    """The real client goes quiet after the forged migration: validation times out. The
    CID the victim's probes carried stays there (§9.5): the server sends with another
    one once it is back."""
    sim = make_pair(seed=36)
    handshake(sim)
    uses = cid_uses(sim)
    client = sim.client.connection
    sim.run_for(0.1)
    client.send_datagram(b"x")
    captured: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: captured.append(data))
    sim.c2s.filter = lambda data, now: False  # the client's packets stop arriving
    sim.flush()
    assert captured
    sim.inject(captured[-1], VICTIM, SERVER_ADDR)
    sim.run_for(0.01)
    server = sim.server.connection
    assert server.peer_address == VICTIM  # §9.3: it moves, limited by 3x until validated
    sim.run_for(5.0)  # three PTOs and more
    assert server.peer_address == CLIENT_ADDR
    assert _sent_to(sim, VICTIM) <= 3 * len(captured[-1])
    sim.c2s.filter = None
    client.send_datagram(b"still here")
    sim.run_for(0.5)
    assert server.state == ConnectionState.CONNECTED
    assert b"still here" in [e.data for e in sim.server.events_of(DatagramReceived)]
    check_cid_uses(uses)


PATH_CHALLENGE, PATH_RESPONSE = 0x1A, 0x1B


@pytest.mark.parametrize("how", ["nat-rebinding", "new-address-and-cid"])
def test_peer_migration_is_validated_with_expanded_probes(how: str) -> None:
    """§8.2.1-8.2.2: challenge and response datagrams are 1200 bytes; §9.4: a new IP
    resets congestion control, a new port keeps it; §9.5: the server moves to a new CID
    of the client's either way (the CID the client kept after its NAT rebinding binds
    none of the server's), the old one staying with the old path's re-validation."""
    sim = make_pair(seed=37)
    handshake(sim)
    client = sim.client.connection
    sim.run_for(0.5)  # NEW_CONNECTION_ID frames have arrived on both sides
    server = sim.server.connection
    controller_before = server.recovery.cc
    server_cid_before = server.cids.current_peer_cid
    challenges: list[int] = []
    responses: list[int] = []
    sim.s2c.taps.append(
        lambda d, now: (
            challenges.append(len(d)) if PATH_CHALLENGE in one_rtt_frame_types(d, client) else None
        )
    )
    sim.c2s.taps.append(
        lambda d, now: (
            responses.append(len(d)) if PATH_RESPONSE in one_rtt_frame_types(d, server) else None
        )
    )
    if how == "nat-rebinding":
        sim.rebind_client(("10.0.0.1", 50001))
    else:
        sim.rebind_client(("10.0.0.9", 50000))
        assert client.cids.switch_peer_cid()  # what an actively migrating client does
    sent = send_on_new_streams(client, payloads(37, [30_000]))
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.run_until(lambda: collector.complete(sent), what="transfer after migrating")
    sim.run_for(1.0)
    assert server.peer_address == sim.client.address and server.address_validated
    assert server.path_migrations == 1
    assert challenges and all(size == 1200 for size in challenges)
    assert responses and all(size == 1200 for size in responses)
    assert server.cids.current_peer_cid != server_cid_before
    if how == "nat-rebinding":
        assert server.recovery.cc is controller_before
    else:
        assert server.recovery.cc is not controller_before  # slow start on the new path


# RFC 9000 §10.2.1: a closing connection answers only its peer, at a falling rate.


def test_closing_connection_reflects_nothing_to_third_parties() -> None:
    sim = make_pair(seed=38)
    handshake(sim)
    server = sim.server.connection
    sim.c2s.filter = lambda data, now: False  # the client's close never comes back
    server.close(0, "bye")
    sim.run_for(0.01)
    assert server.state == ConnectionState.CLOSING
    closes_before = sim.s2c.stats.datagrams
    junk = b"\x40" + server.host_cid  # 9 bytes: a short header for the closing CID
    for i in range(200):
        sim.inject(junk, VICTIM, SERVER_ADDR, delay=i * 1e-4)
        sim.inject(junk, CLIENT_ADDR, SERVER_ADDR, delay=i * 1e-4)  # spoofing the peer
    sim.run_for(0.05)
    assert server.state == ConnectionState.CLOSING
    assert _sent_to(sim, VICTIM) == 0  # not attributed to the connection: silence
    # The peer's address got an answer to the 1st, 2nd, 4th ... 128th packet: 8, not 200.
    assert sim.s2c.stats.datagrams - closes_before == 8


def test_a_closing_server_stays_within_3x_of_an_unvalidated_client() -> None:
    """§10.2.1, §8.1: the CONNECTION_CLOSE answers count toward the 3x budget too.

    A large certificate spends the budget the client's only Initial gave; the server
    then closes, and 1-byte datagrams spoofed from the client's address ask for more
    answers than the 3 bytes each adds to the budget can pay for.
    """
    names = ("localhost", *(f"name-{i}.closing.example" for i in range(100)))
    ident = dev_identity(names)
    sim = make_pair(
        seed=46,
        use_endpoint=False,
        client={"trust_roots": (ident.trust_root,)},
        server={"certificate_chain": ident.certificate_chain, "private_key": ident.private_key},
    )
    first: list[bytes] = []
    sim.c2s.filter = lambda data, now: not first and not first.append(data)  # type: ignore[func-returns-value]
    sim.connect()
    sim.run_for(0.05)
    server = sim.server.impl
    assert isinstance(server, QuicConnection) and not server.address_validated
    key = (sim.server, CLIENT_ADDR)
    assert sim.ledger.received[key] == 1200
    assert sim.ledger.sent[key] > 3 * 1200 - 100  # too little left for a close
    datagrams_before = sim.ledger.sent_datagrams[key]
    server.close(0, "going away")
    for i in range(200):
        sim.inject(b"\x40", CLIENT_ADDR, SERVER_ADDR, delay=0.001 + i * 1e-4)
    sim.run_for(0.05)  # the simulation's amplification invariant watches every step
    assert server.state == ConnectionState.CLOSING
    assert sim.ledger.sent_datagrams[key] > datagrams_before  # it did answer, when it could
    assert sim.ledger.sent[key] <= 3 * sim.ledger.received[key]


# Queues a peer fills (RFC 9000 §8.2.2, §5.1.2, §21.9): each has a bound.


def test_a_flood_of_path_challenges_owes_one_response_per_path() -> None:
    sim = make_pair(seed=39)
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    rng = random.Random("challenges")
    frames = b"".join(b"\x1a" + rng.randbytes(8) for _ in range(120))
    for _ in range(1000):  # 120,000 PATH_CHALLENGE frames, all authenticated
        sim.inject(seal_one_rtt(client, frames), CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.001)
    owed = [p.response for p in server.paths.paths() if p.response is not None]
    assert len(owed) <= 1
    sim.run_for(0.5)
    assert server.state == ConnectionState.CONNECTED
    # Answered at most once per datagram that carried challenges, never per frame.
    assert sim.s2c.stats.datagrams <= 1000 + 50


def test_retirements_the_peer_forces_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """NEW_CONNECTION_ID frames that retire everything before them, never acknowledged."""
    caplog.set_level(logging.WARNING, logger="quicnet")
    sim = make_pair(seed=40)
    sim.waive("protocol errors", reason="the client's sealed frames retire every CID on purpose")
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    sim.s2c.filter = lambda data, now: False  # the server's RETIRE frames never arrive
    rng = random.Random("retire")
    for seq in range(1, 200):
        frame = (
            b"\x18"
            + encode_varint(100 + seq)
            + encode_varint(100 + seq)  # retire_prior_to: everything older
            + bytes((8,))
            + rng.randbytes(8)
            + rng.randbytes(16)
        )
        sim.inject(seal_one_rtt(client, frame), CLIENT_ADDR, SERVER_ADDR)
        sim.run_for(0.001)
        assert server.cids.retirements_outstanding <= 8
        if server.state != ConnectionState.CONNECTED:
            break
    assert server.state in (ConnectionState.CLOSING, ConnectionState.TERMINATED)
    # The server closes with CONNECTION_ID_LIMIT_ERROR and says so on the wire (the close
    # needs a CID the retirements left: it was once lost to an internal KeyError).
    termination = server.termination
    assert termination is not None
    assert termination.error_code == TransportErrorCode.CONNECTION_ID_LIMIT_ERROR
    assert server.closing is not None and b"retire" in server.closing.frame
    assert not [r for r in caplog.records if "internal error" in r.getMessage()]


# RFC 9000 §8.1.2, §21.1: spoofed Initials do not lock real clients out.


def _spoofed_initials(count: int) -> list[bytes]:
    """First datagrams of ``count`` real clients that will never answer (valid Initials)."""
    out = []
    for _ in range(count):
        conn = QuicConnection(client_config())
        conn.connect(SERVER_ADDR, 1.0)
        out.append(conn.datagrams_to_send(1.0)[0][0])
    return out


def test_spoofed_initials_do_not_lock_out_a_real_client() -> None:
    sim = make_pair(seed=41, endpoint={"max_handshakes": 40})
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    assert endpoint.retry_threshold == 10
    for i, initial in enumerate(_spoofed_initials(200)):
        sim.inject(initial, (f"10.77.{i // 250}.{i % 250}", 4000 + i), SERVER_ADDR)
    sim.run_for(0.01)
    # Past the threshold the endpoint answers with Retry and keeps no state.
    assert len(endpoint._handshaking) == 10
    assert endpoint.stats.retries_sent == 190
    took = handshake(sim, timeout=5.0)
    assert took < 1.0  # one extra round trip for the Retry, not a lockout
    assert sim.client.connection.state == ConnectionState.CONNECTED


def test_half_open_handshakes_expire_quickly() -> None:
    """Below the Retry threshold spoofed Initials hold slots only for half_open_timeout."""
    sim = make_pair(seed=43, endpoint={"max_handshakes": 40, "half_open_timeout": 3.0})
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    for i, initial in enumerate(_spoofed_initials(8)):
        sim.inject(initial, ("10.78.0.1", 4000 + i), SERVER_ADDR)
    sim.run_for(0.01)
    assert len(endpoint._handshaking) == 8
    handshake(sim)  # a real client meanwhile proves its address and gets in
    sim.run_for(3.0)
    assert len(endpoint._handshaking) == 0 and len(endpoint._all) == 1
    assert sim.client.connection.state == ConnectionState.CONNECTED


def test_a_slow_but_real_client_outlives_the_half_open_limit() -> None:
    """Its Handshake packet proves the address: the full handshake timeout applies."""
    sim = make_pair(seed=44, c2s=LinkConfig(latency=1.2), s2c=LinkConfig(latency=1.2))
    took = handshake(sim, timeout=20.0)
    assert took > 3.0 and sim.client.connection.state == ConnectionState.CONNECTED


def test_an_undecryptable_initial_builds_no_connection() -> None:
    """RFC 9001 §5.2: decrypt the first packet before allocating anything for it."""
    endpoint = QuicEndpoint(server_config())
    good = _spoofed_initials(1)[0]
    forged = bytearray(good)
    forged[-1] ^= 0x01  # the AEAD tag no longer verifies
    constructed: list[str] = []
    init_code = QuicConnection.__init__.__code__

    def watch(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code is init_code:
            constructed.append("QuicConnection")

    sys.setprofile(watch)
    try:
        endpoint.receive_datagram(bytes(forged), CLIENT_ADDR, 1.0)
        forged_calls = len(constructed)
        endpoint.receive_datagram(good, CLIENT_ADDR, 1.0)
    finally:
        sys.setprofile(None)
    assert forged_calls == 0
    assert len(constructed) == 1 and endpoint.stats.connections_accepted == 1


# RFC 9000 §4: credit goes back when the application consumes data, not when it is queued.


def _exchange(a: QuicConnection, b: QuicConnection, now: float, rounds: int) -> float:
    """Move datagrams both ways (lossless, 1 ms apart) without taking any events."""
    addr = {id(a): CLIENT_ADDR, id(b): SERVER_ADDR}
    for _ in range(rounds):
        now += 0.001
        for src, dst in ((a, b), (b, a)):
            for data, _to in src.datagrams_to_send(now):
                dst.receive_datagram(data, addr[id(src)], now)
        for conn in (a, b):
            if (t := conn.next_timer()) is not None and t <= now:
                conn.handle_timer(now)
    return now


def test_unread_stream_data_stops_the_sender_at_the_window() -> None:
    client = QuicConnection(client_config())
    server = QuicConnection(
        server_config(), original_destination_cid=client.original_destination_cid
    )
    client.connect(SERVER_ADDR, 1.0)
    now = _exchange(client, server, 1.0, 20)
    assert client.handshake_complete and server.handshake_complete
    while server.next_event() is not None:  # the handshake's events
        pass
    stream_id = client.create_stream()
    client.send_stream_data(stream_id, bytes(16 << 20), end_stream=True)
    now = _exchange(client, server, now, 2000)  # the server's application reads nothing
    window = server.configuration.initial_max_stream_data
    queued = [e for e in server.event_queue if isinstance(e, StreamDataReceived)]
    assert sum(len(e.data) for e in queued) == window  # exactly one window, no more
    assert server.streams.max_data_local == server.configuration.initial_max_data
    # The application reads: credit flows again and the transfer completes.
    got = 0
    for _ in range(3000):
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                got += len(event.data)
        if got == 16 << 20:
            break
        now = _exchange(client, server, now, 5)
    assert got == 16 << 20


def test_unread_datagrams_are_bounded() -> None:
    sim = make_pair(seed=42, server={"max_received_datagrams": 50})
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    sim.server.drain = lambda: None  # type: ignore[method-assign]  # an application that stopped reading
    for i in range(300):
        client.send_datagram(i.to_bytes(4, "big"))
        sim.run_for(0.001)
    sim.run_for(0.2)
    assert server.datagrams.queued == 50 and server.datagrams.dropped == 250
    got = [e.data for e in iter(server.next_event, None) if isinstance(e, DatagramReceived)]
    assert got == [i.to_bytes(4, "big") for i in range(50)]


def test_session_tickets_a_server_floods_are_bounded() -> None:
    """RFC 8446 §4.6.1 lets a server send any number of NewSessionTicket messages: a
    client hands the application at most MAX_SESSION_TICKETS of them and goes on."""
    sim = make_pair(seed=47, use_endpoint=False)
    server = sim.server.impl
    assert isinstance(server, QuicConnection) and isinstance(server.tls, TLSServer)
    server.tls.config.tickets_to_send = 60  # a server that never stops issuing tickets
    handshake(sim)
    sim.run_for(0.5)
    client = sim.client.connection
    assert len(sim.client.events_of(SessionTicketReceived)) == MAX_SESSION_TICKETS
    client.send_datagram(b"still fine")
    sim.run_for(0.1)
    assert client.state == ConnectionState.CONNECTED
    assert b"still fine" in [e.data for e in sim.server.events_of(DatagramReceived)]


def test_a_late_copy_of_the_first_initial_opens_no_second_connection() -> None:
    """A duplicated first Initial arriving after the handshake is routed to the
    connection by its DCID (and dropped there), never accepted as a new client."""
    sim = make_pair(seed=45)
    first: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: first.append(data) if not first else None)
    handshake(sim)
    sim.run_for(1.0)
    endpoint = sim.server.impl
    assert isinstance(endpoint, QuicEndpoint)
    sim.inject(first[0], CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(5.0)
    assert endpoint.stats.connections_accepted == 1 and len(endpoint._all) == 1
    assert sim.client.connection.state == ConnectionState.CONNECTED
