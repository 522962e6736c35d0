"""NEW_CONNECTION_ID in a 1-RTT packet (RFC 9000 §19.15), which the receiver reads in
place: the fields land where they belong, and each malformation closes the connection
with its error code."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from adversary import seal_one_rtt, server_ends_on
from simnet import CLIENT_ADDR, Simulation, client_config, handshake, make_pair, server_config

from quicnet.quic import QuicConnection
from quicnet.quic.buffer import encode_varint
from quicnet.quic.cids import ConnectionIdManager
from quicnet.quic.errors import TransportErrorCode

FEE = TransportErrorCode.FRAME_ENCODING_ERROR
PV = TransportErrorCode.PROTOCOL_VIOLATION
TOKEN = bytes(range(16))


def _frame(sequence: int, retire_prior_to: int, cid: bytes, token: bytes = TOKEN) -> bytes:
    return (
        b"\x18"
        + encode_varint(sequence)
        + encode_varint(retire_prior_to)
        + bytes((len(cid),))
        + cid
        + token
    )


def _pair(**client: object) -> tuple[Simulation, QuicConnection, QuicConnection]:
    sim = make_pair(client=dict(client))
    handshake(sim)
    sim.run_for(0.1)  # the NEW_CONNECTION_IDs of the handshake have arrived
    return sim, sim.client.connection, sim.server.connection


def _close_after(frames: bytes, code: int, **client: object) -> None:
    sim, client_conn, server = _pair(**client)
    termination = server_ends_on(
        sim,
        server,
        seal_one_rtt(client_conn, frames),
        "the client sends a malformed frame on purpose",
    )
    assert termination.error_code == code
    if code == FEE:
        assert termination.frame_type == 0x18


def test_two_frames_in_one_packet_are_read_field_by_field() -> None:
    sim, client, server = _pair()
    first = max(server.cids.peer) + 1
    frames = _frame(first, first, b"\xaa" * 20) + _frame(first + 1, first, b"\xbb", TOKEN[::-1])
    server.receive_datagram(seal_one_rtt(client, frames), CLIENT_ADDR, sim.now)
    assert server.termination is None
    peer = server.cids.peer
    assert sorted(peer) == [first, first + 1]  # retire_prior_to retired the rest
    assert (peer[first].cid, peer[first].stateless_reset_token) == (b"\xaa" * 20, TOKEN)
    assert (peer[first + 1].cid, peer[first + 1].stateless_reset_token) == (b"\xbb", TOKEN[::-1])
    assert server.cids.current_peer_cid == b"\xaa" * 20


@pytest.mark.parametrize(
    "frames",
    [
        _frame(9, 0, b""),  # §19.15: length 1..20
        _frame(9, 0, b"x" * 21),
        _frame(9, 10, b"cid"),  # retire_prior_to above the sequence number
        _frame(9, 0, b"cid", TOKEN[:15]),  # the token cut short
        _frame(9, 0, b"cid", b"")[:-2],  # the connection ID cut short
        b"\x18\x09",  # no retire_prior_to
        b"\x18\x49",  # a two-byte sequence number cut short
    ],
)
def test_a_malformed_frame_is_a_frame_encoding_error(frames: bytes) -> None:
    _close_after(frames, FEE)


def test_a_close_for_the_state_it_breaks_names_the_frame() -> None:
    """§19.15: a sequence number issued before with another CID is a PROTOCOL_VIOLATION;
    the connection manager that finds it does not know the frame, the frame loop does,
    and the CONNECTION_CLOSE names it (§19.19), as the encoding errors' do."""
    sim, client, server = _pair()
    taken = max(server.cids.peer)
    server.receive_datagram(
        seal_one_rtt(client, _frame(taken, 0, b"\xcc" * 8)), CLIENT_ADDR, sim.now
    )
    termination = server.termination
    assert termination is not None
    assert (termination.error_code, termination.frame_type) == (PV, 0x18)


def test_from_a_peer_with_zero_length_connection_ids_it_is_a_protocol_violation() -> None:
    _close_after(_frame(1, 0, b"cid"), PV, connection_id_length=0)


def test_a_forced_move_off_a_retired_cid_avoids_one_a_path_holds() -> None:
    """§5.1.2, §9.5: when Retire Prior To retires the CID in use, the new one is not a
    CID another path holds (it has gone towards that path's address only)."""
    cids = ConnectionIdManager(
        b"\x01" * 8, cid_length=8, reset_token_for=None, active_connection_id_limit=8
    )
    cids.set_initial_peer(b"\x10" * 8)
    for seq in (1, 2, 3):
        cids.on_new_connection_id(seq, 0, bytes([seq]) * 8, TOKEN, peer_uses_empty_cid=False)
    cids.on_new_connection_id(4, 1, b"\x04" * 8, TOKEN, peer_uses_empty_cid=False, taken=(1,))
    assert cids.current_peer_sequence == 2  # the lowest one no path holds
    assert 1 in cids.peer  # still the other path's
    # With every remaining CID held, the lowest: a CID is needed to send at all.
    cids.on_new_connection_id(5, 4, b"\x05" * 8, TOKEN, peer_uses_empty_cid=False, taken=(4, 5))
    assert cids.current_peer_sequence == 4


def test_reset_tokens_made_only_for_the_cids_sent_with_one() -> None:
    """A stateless reset token is made for each CID that goes out with one: a server's
    first (its stateless_reset_token transport parameter, RFC 9000 §18.2) and every
    NEW_CONNECTION_ID's; a client's first CID is never sent with one (§5.1.1), so none
    is made for it."""
    asked: list[tuple[str, bytes]] = []

    def counting(side: str) -> Callable[[bytes], bytes]:
        return lambda cid: asked.append((side, cid)) or bytes(16 - len(side)) + side.encode()

    client = QuicConnection(client_config(), reset_token_for=counting("c"))
    assert asked == []  # the client's first CID has no token
    assert client.local_params.stateless_reset_token is None
    server = QuicConnection(
        server_config(), original_destination_cid=b"\x01" * 8, reset_token_for=counting("s")
    )
    assert asked == [("s", server.host_cid)]
    assert server.local_params.stateless_reset_token == bytes(15) + b"s"
    server.cids.issue(2)
    assert [side for side, _ in asked] == ["s", "s", "s"]
    assert server.cids.first_reset_token() == bytes(15) + b"s"  # made once
    assert len(asked) == 3
    client.cids.issue(1)
    assert asked[-1] == ("c", client.cids.local[1].cid)
    assert client.cids.local[1].stateless_reset_token == bytes(15) + b"c"
