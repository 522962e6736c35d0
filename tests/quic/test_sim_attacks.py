"""What an attacker (or a peer that breaks the rules) can do to a QUIC connection, and
what must hold anyway: each test names the rule and fails if the defence is removed.

Packets a peer authenticates are crafted with the peer's own keys (``seal_one_rtt``);
everything else comes from the simulated network (``simnet``).
"""

from __future__ import annotations

import random
from collections import Counter

from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Simulation,
    handshake,
    make_pair,
)

from quicnet.quic import ConnectionState, ConnectionTerminated, DatagramReceived, QuicConnection


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
