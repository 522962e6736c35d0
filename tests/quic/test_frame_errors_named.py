"""A close names the frame type that caused it (RFC 9000 §19.19).

An ACK or ACK_ECN frame for a packet never sent closes the connection with
PROTOCOL_VIOLATION (§13.1), naming 0x02 for ACK and 0x03 for ACK_ECN; in an
Initial packet, whose frames take the handshake's loop, an ACK never sent and a
CRYPTO frame beyond the buffer (CRYPTO_BUFFER_EXCEEDED, §7.5) name theirs too."""

from __future__ import annotations

import pytest
from adversary import seal_initial, seal_one_rtt, server_ends_on
from simnet import handshake, make_pair

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
    termination = server_ends_on(
        sim,
        server,
        seal_one_rtt(client, frame),
        "the client acknowledges a packet never sent on purpose",
    )
    assert termination.error_code == TransportErrorCode.PROTOCOL_VIOLATION
    assert termination.frame_type == frame_type


@pytest.mark.parametrize(
    ("frame_type", "error_code"),
    [
        (0x02, TransportErrorCode.PROTOCOL_VIOLATION),  # an ACK for a packet never sent
        (0x06, TransportErrorCode.CRYPTO_BUFFER_EXCEEDED),  # CRYPTO beyond the buffer
    ],
)
def test_an_initial_frame_error_names_its_frame(
    frame_type: int, error_code: TransportErrorCode
) -> None:
    """An error caused by a frame of an Initial packet, whose frames take the handshake's
    loop, closes naming that frame (§19.19), not frame type 0."""
    sim = make_pair()
    sim.connect()
    client = sim.client.connection

    # Until the server's first flight is sent: its Initial space has a packet, the
    # client still holds its Initial keys.
    def first_flight_sent() -> bool:
        held = sim.server.live_connections()
        return bool(held) and held[0].recovery.spaces[0].next_packet_number > 0

    sim.run_until(first_flight_sent, timeout=1.0, what="the server's first flight")
    (server,) = sim.server.live_connections()
    if frame_type == 0x02:
        never_sent = server.recovery.spaces[0].next_packet_number + 100
        frame = b"\x02" + encode_varint(never_sent) + bytes(3)  # delay, count, range: 0
    else:
        beyond = server.configuration.max_crypto_buffer + 1000  # RFC 9000 §7.5
        frame = b"\x06" + encode_varint(beyond) + encode_varint(4) + b"late"
    termination = server_ends_on(
        sim,
        server,
        seal_initial(client, frame),
        "the client breaks a rule in its Initial on purpose",
    )
    assert termination.error_code == error_code
    assert termination.frame_type == frame_type
