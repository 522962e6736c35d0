"""The invariants every simulated run checks (siminvariants.py) catch what they claim.

Each test makes one of them break for real (a packet sealed with a peer's keys
plays the attacker who got what no attacker gets) and expects the simulation
to stop with :class:`~simnet.InvariantViolation`; a waived invariant lets the
same run through.
"""

from __future__ import annotations

import pytest
from adversary import seal_one_rtt
from siminvariants import MAX_QUEUED_FRAMES
from simnet import CLIENT_ADDR, SERVER_ADDR, InvariantViolation, Simulation, handshake, make_pair

from quicnet.quic import ConnectionState, DatagramReceived, StreamDataReceived
from quicnet.quic.buffer import encode_varint
from quicnet.quic.frames import encode_stream


def _connected(seed: int) -> Simulation:
    sim = make_pair(seed=seed)
    handshake(sim)
    return sim


def _datagram_frame(data: bytes) -> bytes:
    return b"\x31" + encode_varint(len(data)) + data


def test_a_datagram_delivered_twice_is_a_violation() -> None:
    """RFC 9000 §12.3, RFC 9221 §5: the application sent it once."""
    sim = _connected(61)
    client = sim.client.connection
    client.send_datagram(b"once")
    sim.run_for(0.1)
    assert [e.data for e in sim.server.events_of(DatagramReceived)] == [b"once"]
    # The same payload again in a packet that authenticates: what a replay accepted does.
    sim.inject(seal_one_rtt(client, _datagram_frame(b"once")), CLIENT_ADDR, SERVER_ADDR)
    with pytest.raises(InvariantViolation, match=r"delivered 2 times, sent 1"):
        sim.run_for(0.1)


def test_a_datagram_no_application_sent_is_a_violation_unless_waived() -> None:
    sim = _connected(62)
    client = sim.client.connection
    sim.inject(seal_one_rtt(client, _datagram_frame(b"forged")), CLIENT_ADDR, SERVER_ADDR)
    with pytest.raises(InvariantViolation, match=r"delivered 1 times, sent 0"):
        sim.run_for(0.1)

    sim = _connected(62)
    sim.waive("delivery", reason="this test seals the DATAGRAM by hand")
    client = sim.client.connection
    sim.inject(seal_one_rtt(client, _datagram_frame(b"forged")), CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.1)
    assert [e.data for e in sim.server.events_of(DatagramReceived)] == [b"forged"]


@pytest.mark.parametrize(
    ("offset", "data", "message"),
    [
        (0, b"hellX", "not the bytes the peer wrote"),  # altered
        (5, b"world", "not the bytes the peer wrote"),  # beyond what was written
    ],
)
def test_stream_bytes_the_peer_never_wrote_are_a_violation(
    offset: int, data: bytes, message: str
) -> None:
    """RFC 9000 §2.2: stream bytes arrive as written, once, in order."""
    sim = _connected(63)
    client = sim.client.connection
    sid = client.create_stream()
    if offset == 0:
        # Authentic bytes that differ from what the application queued, sent first.
        sim.inject(
            seal_one_rtt(client, encode_stream(sid, 0, data, False)), CLIENT_ADDR, SERVER_ADDR
        )
        client.send_stream_data(sid, b"hello")
    else:
        client.send_stream_data(sid, b"hello")
        sim.run_for(0.1)
        sim.inject(
            seal_one_rtt(client, encode_stream(sid, offset, data, False)), CLIENT_ADDR, SERVER_ADDR
        )
    with pytest.raises(InvariantViolation, match=message):
        sim.run_for(0.1)


def test_an_end_where_the_peer_did_not_end_is_a_violation() -> None:
    sim = _connected(64)
    client = sim.client.connection
    sid = client.create_stream()
    client.send_stream_data(sid, b"not the end")
    sim.run_for(0.1)
    assert sim.server.events_of(StreamDataReceived)
    sim.inject(seal_one_rtt(client, encode_stream(sid, 11, b"", True)), CLIENT_ADDR, SERVER_ADDR)
    with pytest.raises(
        InvariantViolation, match=r"ended at 11; the peer wrote 11 bytes and did not"
    ):
        sim.run_for(0.1)


def test_a_connection_closing_itself_with_a_transport_error_is_a_violation() -> None:
    """A server that closes itself on an authenticated packet breaking a rule (data on
    a stream only it may send on, RFC 9000 §19.8): between honest peers that is a
    packet accepted that should not have been; a test that means it waives it."""
    sim = _connected(65)
    client = sim.client.connection
    frame = encode_stream(3, 0, b"x", False)  # the server's unidirectional stream
    sim.inject(seal_one_rtt(client, frame), CLIENT_ADDR, SERVER_ADDR)
    with pytest.raises(InvariantViolation, match=r"closed itself with transport error 0x5"):
        sim.run_for(0.2)

    sim = _connected(65)
    sim.waive("protocol errors", reason="the client's frame breaks §19.8 on purpose")
    sim.inject(seal_one_rtt(sim.client.connection, frame), CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.2)
    assert sim.server.connection.state != ConnectionState.CONNECTED


def test_unbounded_connection_state_is_a_violation() -> None:
    """RFC 9000 §21.9: a queue past its fixed bound (here filled by hand, as a missing
    bound would let a peer fill it) stops the run."""
    sim = _connected(66)
    server = sim.server.connection
    server.pending.retire_connection_ids = list(range(MAX_QUEUED_FRAMES + 1))
    with pytest.raises(InvariantViolation, match=r"state unbounded .* RETIRE_CONNECTION_ID"):
        sim.run_for(0.2)
