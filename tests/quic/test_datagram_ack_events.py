"""DATAGRAM fates (DatagramAcknowledged / DatagramLost) are reported only on request.

``QuicConfiguration.datagram_ack_events`` is off by default: an application that
does not ask gets no event object per datagram sent (the real-time layer, like
most users of DATAGRAM, has no use for them); the datagrams themselves must flow
exactly as before, acknowledged or lost as the path decides. The simulator's
configurations turn them on, so its invariant checker sees every fate.
"""

from __future__ import annotations

from simnet import LinkConfig, handshake, make_pair

from quicnet.quic import (
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    QuicConfiguration,
)


def test_no_ack_or_loss_events_but_the_datagrams_flow() -> None:
    lossy = LinkConfig(latency=0.01, loss=0.2)
    default = QuicConfiguration(is_client=True).datagram_ack_events
    assert default is False
    sim = make_pair(seed=3, c2s=lossy, s2c=lossy, client={"datagram_ack_events": default})
    loss = sim.c2s.config.loss
    sim.c2s.config.loss = sim.s2c.config.loss = 0.0
    handshake(sim)
    sim.c2s.config.loss = sim.s2c.config.loss = loss
    client = sim.client.connection
    sent = [i.to_bytes(4, "big") * 8 for i in range(200)]
    for i in range(0, len(sent), 10):
        for payload in sent[i : i + 10]:
            client.send_datagram(payload)
        sim.run_for(0.05)
    sim.run_for(5.0)  # quiet: every packet acknowledged or declared lost
    received = [e.data for e in sim.server.events if isinstance(e, DatagramReceived)]
    assert 100 < len(received) < len(sent), "a fifth lost on the way, the rest arrived"
    assert set(received) <= set(sent)
    assert sim.client.connection.stats().packets_lost > 0, "recovery did declare losses"
    assert not sim.client.events_of(DatagramAcknowledged)
    assert not sim.client.events_of(DatagramLost)
    # The server asked for them (as every simulated endpoint does): they are reported.
    server = sim.server.connection
    datagram_id = server.send_datagram(b"down")
    sim.run_for(1.0)
    fate = [
        e.datagram_id
        for e in sim.server.events
        if isinstance(e, DatagramAcknowledged | DatagramLost)
    ]
    assert fate == [datagram_id]
