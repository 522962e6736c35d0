"""What an attacker (or a peer that breaks the rules) can do to a QUIC connection, and
what must hold anyway: each test names the rule and fails if the defence is removed.

Packets a peer authenticates are crafted with the peer's own keys (``seal_one_rtt``);
everything else comes from the simulated network (``simnet``).
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Simulation,
    StreamCollector,
    handshake,
    make_pair,
    packet_types,
    send_on_new_streams,
)

from quicnet.crypto import NamedGroup, dev_identity
from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    DatagramReceived,
    QuicConnection,
    QuicVersion,
)
from quicnet.quic.packets import PacketType


def _client(sim: Simulation) -> QuicConnection:
    conn = sim.client.impl
    assert isinstance(conn, QuicConnection)
    return conn


# RFC 9000 §12.3, §13.2.3: a packet number below the tracked floor is never accepted again.


def test_replayed_datagram_packet_is_dropped_after_many_gaps() -> None:
    sim = make_pair(seed=31)
    handshake(sim)
    client = _client(sim)
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
    client = _client(sim)
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
    client = _client(sim)
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
