"""An ACK or ACK_ECN frame for a packet never sent closes the connection with
PROTOCOL_VIOLATION (RFC 9000 §13.1), and the close names the frame type that
carried it (§19.19): 0x02 for ACK, 0x03 for ACK_ECN."""

from __future__ import annotations

import pytest
from adversary import seal_one_rtt
from simnet import CLIENT_ADDR, SERVER_ADDR, handshake, make_pair

from quicnet.quic.buffer import encode_varint
from quicnet.quic.errors import TransportErrorCode


@pytest.mark.parametrize("frame_type", [0x02, 0x03])
def test_an_ack_for_a_packet_never_sent_names_its_frame(frame_type: int) -> None:
    sim = make_pair()
    handshake(sim)
    sim.run_for(0.1)
    client = sim.client.connection
    server = sim.server.connection
    never_sent = server.recovery.spaces[2].next_packet_number + 100
    frame = (
        bytes((frame_type,))
        + encode_varint(never_sent)  # Largest Acknowledged
        + encode_varint(0)  # ACK Delay
        + encode_varint(0)  # ACK Range Count
        + encode_varint(0)  # First ACK Range
    )
    if frame_type == 0x03:
        frame += encode_varint(0) * 3  # ECT(0), ECT(1), ECN-CE counts
    sim.waive("protocol errors", reason="the client acknowledges a packet never sent on purpose")
    sim.inject(seal_one_rtt(client, frame), CLIENT_ADDR, SERVER_ADDR)
    sim.run_for(0.01)
    termination = server.termination
    assert termination is not None
    assert termination.error_code == TransportErrorCode.PROTOCOL_VIOLATION
    assert termination.frame_type == frame_type
