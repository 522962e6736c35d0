"""Negative tests of the TLS 1.3 record layer (RFC 8446 §5, §6; RFC 8449).

Most tests run on both sides: the connection under test is a quicnet
:class:`TLSConnection` (client or server) that completed a handshake with a
:class:`Puppet` peer, which then sends records the test builds (oversized,
forged, truncated, misplaced) with the genuine traffic keys.
"""

from __future__ import annotations

import random

import pytest
from test_negative_helpers import (
    ALERT,
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    NOW,
    Puppet,
    alert_bytes,
    assert_dead,
    client_config,
    connected_pair,
    drain,
    expect_violation,
    record,
    server_config,
    split_records,
    start_client,
)

from quicnet.tls import (
    AlertDescription,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Epoch,
    ProtocolViolation,
    TLSConnection,
)
from quicnet.tls.key_schedule import CIPHER_SUITES, next_traffic_secret, traffic_aead
from quicnet.tls.messages import HandshakeType, KeyUpdate, encode_message

A = AlertDescription
MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256


# Connections under test -----------------------------------------------------------------------
def client_under_test(cc=None, sc=None) -> tuple[TLSConnection, Puppet]:
    client, _, ch = start_client(cc)
    server = Puppet.server(sc)
    server.receive(ch)
    client.receive_data(server.records(server.flight()), NOW)
    server.receive(client.data_to_send())
    assert client.handshake_complete and server.engine.handshake_complete
    drain(client)
    return client, server


def server_under_test(cc=None, sc=None) -> tuple[TLSConnection, Puppet]:
    server = TLSConnection.server(sc or server_config())
    client = Puppet.client(cc)
    server.receive_data(client.records(client.flight()), NOW)
    client.receive(server.data_to_send())
    server.receive_data(client.records(client.flight()), NOW)
    client.receive(server.data_to_send())  # the session tickets
    assert server.handshake_complete and client.engine.handshake_complete
    drain(server)
    return server, client


def under_test(side: str, cc=None, sc=None) -> tuple[TLSConnection, Puppet]:
    return client_under_test(cc, sc) if side == "client" else server_under_test(cc, sc)


sides = pytest.mark.parametrize("side", ["client", "server"])


def app(peer: Puppet, data: bytes, *, padding: int = 0) -> bytes:
    return peer.protect(Epoch.ONE_RTT, APPLICATION_DATA, data, padding=padding)


def delivered(conn: TLSConnection) -> bytes:
    return b"".join(e.data for e in drain(conn) if isinstance(e, ApplicationData))


def flip(data: bytes, index: int) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x80
    return bytes(b)


@sides
def test_control_application_data_round_trip(side):
    conn, peer = under_test(side)
    conn.receive_data(app(peer, b"hello") + app(peer, b"", padding=30) + app(peer, b"!"), NOW)
    assert delivered(conn) == b"hello!"
    conn.send(b"back")
    assert peer.receive(conn.data_to_send()) == [(APPLICATION_DATA, b"back")]


# Sizes --------------------------------------------------------------------------------------------
@sides
def test_record_longer_than_2_14_plus_256_is_record_overflow(side):
    conn, peer = under_test(side)
    header = b"\x17\x03\x03" + (MAX_CIPHERTEXT + 1).to_bytes(2, "big")
    expect_violation(conn, header, A.record_overflow, peer=peer)


@sides
def test_record_of_exactly_2_14_plus_256_is_only_checked_for_its_mac(side):
    conn, peer = under_test(side)
    garbage = record(APPLICATION_DATA, random.Random(1).randbytes(MAX_CIPHERTEXT))
    expect_violation(conn, garbage, A.bad_record_mac, peer=peer)


def test_unprotected_record_longer_than_2_14_is_record_overflow():
    server = TLSConnection.server(server_config())
    expect_violation(
        server, b"\x16\x03\x01" + (MAX_PLAINTEXT + 1).to_bytes(2, "big"), A.record_overflow
    )


def test_unprotected_record_of_2_14_bytes_waits_for_its_body():
    server = TLSConnection.server(server_config())
    server.receive_data(b"\x16\x03\x01" + MAX_PLAINTEXT.to_bytes(2, "big") + bytes(100), NOW)
    assert not server.closed and server.data_to_send() == b""


@sides
def test_plaintext_longer_than_2_14_is_record_overflow(side):
    conn, peer = under_test(side)
    conn.receive_data(app(peer, bytes(MAX_PLAINTEXT)), NOW)  # the largest allowed
    assert len(delivered(conn)) == MAX_PLAINTEXT
    expect_violation(conn, app(peer, bytes(MAX_PLAINTEXT + 1)), A.record_overflow, peer=peer)


@sides
def test_padding_up_to_2_14_plus_1_is_accepted(side):
    conn, peer = under_test(side)
    conn.receive_data(app(peer, b"x" * 100, padding=MAX_PLAINTEXT - 100), NOW)
    assert delivered(conn) == b"x" * 100


@sides
def test_padding_beyond_2_14_plus_1_is_record_overflow(side):
    conn, peer = under_test(side)
    data = app(peer, b"x" * 100, padding=MAX_PLAINTEXT - 99)  # inner plaintext 2^14 + 2
    assert len(data) - 5 <= MAX_CIPHERTEXT
    expect_violation(conn, data, A.record_overflow, peer=peer)


def negotiated_limits(side: str):
    """Both sides advertise record_size_limit: 512 for the client, 1024 for the server."""
    cc = client_config(record_size_limit=512)
    sc = server_config(record_size_limit=1024)
    conn, peer = under_test(side, cc, sc)
    limit = 512 if side == "client" else 1024
    assert peer.engine.peer_record_size_limit == limit
    return conn, peer, limit


@sides
def test_record_over_the_negotiated_record_size_limit_is_record_overflow(side):
    conn, peer, limit = negotiated_limits(side)
    conn.receive_data(app(peer, bytes(limit - 1)), NOW)  # inner plaintext == limit
    assert len(delivered(conn)) == limit - 1
    expect_violation(conn, app(peer, bytes(limit)), A.record_overflow, peer=peer)


@sides
def test_padding_over_the_negotiated_record_size_limit_is_record_overflow(side):
    conn, peer, limit = negotiated_limits(side)
    expect_violation(conn, app(peer, b"x", padding=limit), A.record_overflow, peer=peer)


@sides
def test_quicnet_respects_the_limit_the_peer_advertised(side):
    conn, _, _ = negotiated_limits(side)
    conn.send(bytes(5000))
    limit = 1024 if side == "client" else 512
    records = split_records(conn.data_to_send())
    assert all(len(fragment) - 16 <= limit for _, _, fragment in records)


def test_server_limit_not_advertised_is_not_enforced():
    server, client = server_under_test(sc=server_config(record_size_limit=1024))
    assert client.engine.peer_record_size_limit is None  # never advertised to the client
    server.receive_data(app(client, bytes(4000)), NOW)
    assert len(delivered(server)) == 4000


def test_client_limit_the_server_did_not_acknowledge_is_not_enforced():
    client, server = client_under_test(cc=client_config(record_size_limit=1024))
    client.receive_data(app(server, bytes(4000)), NOW)
    assert len(delivered(client)) == 4000


# Truncated records --------------------------------------------------------------------------
@sides
def test_truncated_record_waits_and_delivers_nothing(side):
    conn, peer = under_test(side)
    whole = app(peer, b"complete") + app(peer, b"truncated")
    first_len = 5 + int.from_bytes(whole[3:5], "big")
    conn.receive_data(whole[: first_len + 9], NOW)  # EOF would come here
    assert delivered(conn) == b"complete"
    assert not conn.closed and conn.data_to_send() == b""
    conn.receive_data(whole[first_len + 9 :], NOW)
    assert delivered(conn) == b"truncated"


@sides
def test_record_fed_one_byte_at_a_time_is_delivered_once(side):
    conn, peer = under_test(side)
    data = app(peer, b"drip")
    for i in range(len(data) - 1):
        conn.receive_data(data[i : i + 1], NOW)
        assert drain(conn) == []
    conn.receive_data(data[-1:], NOW)
    assert delivered(conn) == b"drip"


# Forged records ------------------------------------------------------------------------------
@sides
@pytest.mark.parametrize("where", [5, 6, -17, -1], ids=["first", "second", "tag-first", "tag-last"])
def test_tampered_ciphertext_byte_is_bad_record_mac(side, where):
    conn, peer = under_test(side)
    expect_violation(conn, flip(app(peer, b"attack at dawn"), where), A.bad_record_mac, peer=peer)


@sides
def test_tampered_record_header_is_bad_record_mac(side):
    """The header is the AEAD's additional data (§5.2)."""
    conn, peer = under_test(side)
    data = bytearray(app(peer, b"attack at dawn"))
    data[2] = 0x01  # legacy_record_version 0x0301
    expect_violation(conn, bytes(data), A.bad_record_mac, peer=peer)


@sides
def test_record_shorter_than_the_tag_is_bad_record_mac(side):
    conn, peer = under_test(side)
    expect_violation(conn, record(APPLICATION_DATA, bytes(5)), A.bad_record_mac, peer=peer)


@sides
def test_replayed_record_is_bad_record_mac(side):
    conn, peer = under_test(side)
    data = app(peer, b"once")
    conn.receive_data(data, NOW)
    assert delivered(conn) == b"once"
    expect_violation(conn, data, A.bad_record_mac, peer=peer)


@sides
def test_reordered_records_are_bad_record_mac(side):
    conn, peer = under_test(side)
    first, second = app(peer, b"first"), app(peer, b"second")
    expect_violation(conn, second + first, A.bad_record_mac, peer=peer)


@sides
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes_as_a_record_are_bad_record_mac(side, seed):
    conn, peer = under_test(side)
    rng = random.Random(seed)
    garbage = record(APPLICATION_DATA, rng.randbytes(rng.randrange(17, 300)))
    after = app(peer, b"must not be delivered")
    expect_violation(conn, garbage + after, A.bad_record_mac, peer=peer)


@sides
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_bytes_after_the_handshake_deliver_nothing(side, seed):
    """Random bytes (with an impossible first byte): unexpected_message, nothing delivered."""
    conn, peer = under_test(side)
    rng = random.Random(seed)
    garbage = bytes((rng.choice([0, 1, 19, 24, 0x47, 0x80, 0xFF]),)) + rng.randbytes(200)
    expect_violation(conn, garbage + app(peer, b"late"), A.unexpected_message, peer=peer)


@sides
def test_data_before_a_forged_record_is_delivered_and_nothing_after(side):
    conn, peer = under_test(side)
    good, bad, late = app(peer, b"good"), flip(app(peer, b"forged"), 9), app(peer, b"late")
    with pytest.raises(Exception) as info:
        conn.receive_data(good + bad + late, NOW)
    assert getattr(info.value, "alert", None) == A.bad_record_mac
    assert delivered(conn) == b"good"
    assert conn.closed


@sides
@pytest.mark.parametrize("content_type", [0, 19, 24, 255], ids=lambda t: f"type{t}")
def test_unknown_record_type_is_unexpected_message(side, content_type):
    conn, peer = under_test(side)
    expect_violation(conn, record(content_type, b"\x01\x00"), A.unexpected_message, peer=peer)


@sides
def test_protected_record_without_a_content_type_is_unexpected_message(side):
    conn, peer = under_test(side)
    keys = peer.write[Epoch.ONE_RTT]
    header = b"\x17\x03\x03" + (20 + 16).to_bytes(2, "big")
    forged = header + keys.aead.seal(keys.sequence, bytes(20), header)  # all padding
    expect_violation(conn, forged, A.unexpected_message, peer=peer)


def all_zeros(peer: Puppet, epoch: Epoch, length: int) -> bytes:
    """A genuine protected record whose plaintext is only zeros: no content type (§5.4)."""
    keys = peer.write[epoch]
    header = b"\x17\x03\x03" + (length + 16).to_bytes(2, "big")
    sealed = keys.aead.seal(keys.sequence, bytes(length), header)
    keys.sequence += 1
    return header + sealed


@pytest.mark.parametrize("length", [0, 1, MAX_PLAINTEXT + 1], ids=["empty", "1", "max"])
def test_all_zero_plaintext_during_the_handshake_to_a_client_is_unexpected_message(length):
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    data = server.records(server.flight()[:1]) + all_zeros(server, Epoch.HANDSHAKE, length)
    expect_violation(client, data, A.unexpected_message, peer=server)


@pytest.mark.parametrize("length", [0, 1, MAX_PLAINTEXT + 1], ids=["empty", "1", "max"])
def test_all_zero_plaintext_during_the_handshake_to_a_server_is_unexpected_message(length):
    server = TLSConnection.server(server_config())
    client = Puppet.client()
    server.receive_data(client.records(client.flight()), NOW)
    client.receive(server.data_to_send())
    expect_violation(
        server, all_zeros(client, Epoch.HANDSHAKE, length), A.unexpected_message, peer=client
    )


@sides
def test_all_zero_plaintext_of_the_maximum_size_is_unexpected_message(side):
    conn, peer = under_test(side)
    expect_violation(
        conn, all_zeros(peer, Epoch.ONE_RTT, MAX_PLAINTEXT + 1), A.unexpected_message, peer=peer
    )


@sides
def test_protected_record_with_an_unknown_inner_type_is_unexpected_message(side):
    conn, peer = under_test(side)
    expect_violation(conn, peer.protect(Epoch.ONE_RTT, 99, b"x"), A.unexpected_message, peer=peer)


@sides
def test_unprotected_handshake_record_after_the_handshake_is_unexpected_message(side):
    conn, peer = under_test(side)
    ku = encode_message(KeyUpdate(False))
    expect_violation(conn, record(HANDSHAKE, ku), A.unexpected_message, peer=peer)


@sides
def test_unprotected_application_data_after_the_handshake_is_bad_record_mac(side):
    conn, peer = under_test(side)
    expect_violation(
        conn, record(APPLICATION_DATA, b"GET / HTTP/1.1\r\n\r\n"), A.bad_record_mac, peer=peer
    )


# change_cipher_spec ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body", [b"\x02", b"\x00", b"", b"\x01\x01"], ids=lambda b: b.hex() or "empty"
)
def test_change_cipher_spec_with_a_wrong_body_is_unexpected_message(body):
    client, _, _ = start_client()
    expect_violation(client, record(CHANGE_CIPHER_SPEC, body), A.unexpected_message)


def test_change_cipher_spec_with_a_wrong_body_mid_handshake_is_unexpected_message():
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    flight = server.flight()
    data = server.records(flight[:1]) + record(CHANGE_CIPHER_SPEC, b"\x02")
    expect_violation(client, data + server.records(flight[1:]), A.unexpected_message, peer=server)


@sides
def test_change_cipher_spec_after_the_handshake_is_unexpected_message(side):
    conn, peer = under_test(side)
    expect_violation(conn, record(CHANGE_CIPHER_SPEC, b"\x01"), A.unexpected_message, peer=peer)


@sides
def test_protected_change_cipher_spec_is_unexpected_message(side):
    conn, peer = under_test(side)
    ccs = peer.protect(Epoch.ONE_RTT, CHANGE_CIPHER_SPEC, b"\x01")
    expect_violation(conn, ccs, A.unexpected_message, peer=peer)


def test_protected_change_cipher_spec_during_the_handshake_is_unexpected_message():
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    flight = server.flight()
    ccs = server.protect(Epoch.HANDSHAKE, CHANGE_CIPHER_SPEC, b"\x01")
    expect_violation(client, server.records(flight[:1]) + ccs, A.unexpected_message, peer=server)


def test_compat_change_cipher_spec_during_the_handshake_is_ignored():
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    flight = server.flight()
    ccs = record(CHANGE_CIPHER_SPEC, b"\x01")
    client.receive_data(server.records(flight[:1]) + ccs + ccs + server.records(flight[1:]), NOW)
    assert client.handshake_complete


# Empty records ----------------------------------------------------------------------------------
def test_empty_handshake_record_before_the_handshake_is_unexpected_message():
    server = TLSConnection.server(server_config())
    expect_violation(server, record(HANDSHAKE, b"", b"\x03\x01"), A.unexpected_message)


def test_empty_handshake_record_to_a_client_is_unexpected_message():
    client, _, _ = start_client()
    expect_violation(client, record(HANDSHAKE, b""), A.unexpected_message)


@sides
def test_empty_protected_handshake_record_is_unexpected_message(side):
    conn, peer = under_test(side)
    expect_violation(
        conn, peer.protect(Epoch.ONE_RTT, HANDSHAKE, b""), A.unexpected_message, peer=peer
    )


# Handshake messages at key changes ----------------------------------------------------------------
def test_bytes_after_client_finished_in_its_record_are_unexpected_message():
    server = TLSConnection.server(server_config())
    client = Puppet.client()
    server.receive_data(client.records(client.flight()), NOW)
    client.receive(server.data_to_send())
    (fin,) = client.flight()
    data = client.protect(Epoch.HANDSHAKE, HANDSHAKE, fin.raw + b"\x18\x00")
    expect_violation(server, data, A.unexpected_message, peer=client)


def test_a_whole_message_after_client_finished_in_its_record_is_unexpected_message():
    server = TLSConnection.server(server_config())
    client = Puppet.client()
    server.receive_data(client.records(client.flight()), NOW)
    client.receive(server.data_to_send())
    (fin,) = client.flight()
    data = client.protect(Epoch.HANDSHAKE, HANDSHAKE, fin.raw + encode_message(KeyUpdate(False)))
    with pytest.raises(Exception) as info:
        server.receive_data(data, NOW)
    assert getattr(info.value, "alert", None) == A.unexpected_message
    assert server.closed


def test_bytes_after_server_finished_in_its_record_are_unexpected_message():
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    flight = server.flight()
    data = server.records(flight[:-1]) + server.protect(
        Epoch.HANDSHAKE, HANDSHAKE, flight[-1].raw + b"\x04\x00"
    )
    expect_violation(client, data, A.unexpected_message, peer=server)


def test_client_hello_fragmented_over_records_is_accepted():
    client, _, ch = start_client()
    body = ch[5:]
    server = TLSConnection.server(server_config())
    server.receive_data(
        b"".join(record(HANDSHAKE, body[i : i + 50]) for i in range(0, len(body), 50)), NOW
    )
    client.receive_data(server.data_to_send(), NOW)
    assert client.handshake_complete


# KeyUpdate ------------------------------------------------------------------------------------
@sides
def test_record_under_the_key_replaced_by_key_update_is_bad_record_mac(side):
    conn, peer = under_test(side)
    conn.receive_data(peer.protect(Epoch.ONE_RTT, HANDSHAKE, encode_message(KeyUpdate(True))), NOW)
    answer = peer.receive(conn.data_to_send(), feed=False)  # conn updates its keys too
    assert answer == [(HANDSHAKE, encode_message(KeyUpdate(False)))]
    with pytest.raises(ProtocolViolation) as info:
        conn.receive_data(app(peer, b"under the old key"), NOW)
    assert info.value.alert == A.bad_record_mac
    assert len(split_records(conn.data_to_send())) == 1  # the alert, under conn's new key
    assert delivered(conn) == b""
    assert_dead(conn)


@sides
def test_key_update_with_request_update_2_is_illegal_parameter(side):
    conn, peer = under_test(side)
    bad = peer.protect(Epoch.ONE_RTT, HANDSHAKE, b"\x18\x00\x00\x01\x02")
    expect_violation(conn, bad, A.illegal_parameter, peer=peer)


@sides
def test_key_update_not_ending_its_record_is_unexpected_message(side):
    conn, peer = under_test(side)
    data = encode_message(KeyUpdate(False)) + b"\x04\x00"
    expect_violation(
        conn, peer.protect(Epoch.ONE_RTT, HANDSHAKE, data), A.unexpected_message, peer=peer
    )


@sides
def test_key_update_of_the_wrong_length_is_decode_error(side):
    conn, peer = under_test(side)
    bad = peer.protect(Epoch.ONE_RTT, HANDSHAKE, b"\x18\x00\x00\x02\x00\x00")
    expect_violation(conn, bad, A.decode_error, peer=peer)


class PeerKeys:
    """The puppet's 1-RTT secrets, stepped as KeyUpdate requires (§7.2)."""

    def __init__(self, peer: Puppet) -> None:
        engine = peer.engine
        self.peer = peer
        self.suite = CIPHER_SUITES[engine.cipher_suite]
        mine, theirs = engine.client_application_secret, engine.server_application_secret
        if not engine.is_client:
            mine, theirs = theirs, mine
        self.write_secret, self.read_secret = mine, theirs

    def key_update(self, request: bool) -> bytes:
        """A KeyUpdate record under the current key; later records use the next one."""
        out = self.peer.protect(Epoch.ONE_RTT, HANDSHAKE, encode_message(KeyUpdate(request)))
        self.write_secret = next_traffic_secret(self.suite, self.write_secret)
        self.peer.write[Epoch.ONE_RTT].aead = traffic_aead(self.suite, self.write_secret)
        self.peer.write[Epoch.ONE_RTT].sequence = 0
        return out

    def read(self, data: bytes) -> list[tuple[int, bytes]]:
        """Decrypt what the connection sent, following its KeyUpdates."""
        out = []
        for _, header, fragment in split_records(data):
            ((content_type, payload),) = self.peer.receive(header + fragment, feed=False)
            out.append((content_type, payload))
            if content_type == HANDSHAKE and payload[0] == HandshakeType.key_update:
                self.read_secret = next_traffic_secret(self.suite, self.read_secret)
                self.peer.read.aead = traffic_aead(self.suite, self.read_secret)
                self.peer.read.sequence = 0
        return out


KU_NOT_REQUESTED = (HANDSHAKE, encode_message(KeyUpdate(False)))


@sides
@pytest.mark.parametrize("count", [2, 1000])
def test_several_key_updates_in_one_record_are_unexpected_message(side, count):
    """§5.1: a KeyUpdate precedes a key change, so it must end its record: one per record."""
    conn, peer = under_test(side)
    flood = encode_message(KeyUpdate(True)) * count
    expect_violation(
        conn, peer.protect(Epoch.ONE_RTT, HANDSHAKE, flood), A.unexpected_message, peer=peer
    )


@sides
def test_message_after_a_key_update_in_its_record_is_unexpected_message(side):
    conn, peer = under_test(side)
    data = encode_message(KeyUpdate(False)) + encode_message(KeyUpdate(False))
    expect_violation(
        conn, peer.protect(Epoch.ONE_RTT, HANDSHAKE, data), A.unexpected_message, peer=peer
    )


@sides
def test_key_update_requests_read_together_get_a_single_reply(side):
    """§4.6.3: many requests while we are silent are answered by one KeyUpdate."""
    conn, peer = under_test(side)
    keys = PeerKeys(peer)
    flood = b"".join(keys.key_update(True) for _ in range(200))
    conn.receive_data(flood, NOW)
    conn.receive_data(keys.key_update(True), NOW)  # still not sent: still one reply
    conn.receive_data(app(peer, b"data under the 202nd key"), NOW)
    assert delivered(conn) == b"data under the 202nd key"
    assert keys.read(conn.data_to_send()) == [KU_NOT_REQUESTED]
    conn.send(b"under our next key")
    assert keys.read(conn.data_to_send()) == [(APPLICATION_DATA, b"under our next key")]
    # Once the reply has left, a new request gets a new reply.
    conn.receive_data(keys.key_update(True), NOW)
    assert keys.read(conn.data_to_send()) == [KU_NOT_REQUESTED]


@sides
def test_key_update_request_after_our_data_gets_a_new_reply_before_more_data(side):
    """The reply must precede our next application data (§4.6.3), even when one is queued."""
    conn, peer = under_test(side)
    keys = PeerKeys(peer)
    conn.receive_data(keys.key_update(True), NOW)
    conn.send(b"one")
    conn.receive_data(keys.key_update(True), NOW)
    conn.send(b"two")
    assert keys.read(conn.data_to_send()) == [
        KU_NOT_REQUESTED,
        (APPLICATION_DATA, b"one"),
        KU_NOT_REQUESTED,
        (APPLICATION_DATA, b"two"),
    ]
    conn.receive_data(app(peer, b"still in step"), NOW)
    assert delivered(conn) == b"still in step"


def test_key_update_during_the_handshake_is_unexpected_message():
    client, _, ch = start_client()
    server = Puppet.server()
    server.receive(ch)
    flight = server.flight()
    data = server.records(flight[:2])
    data += server.protect(Epoch.HANDSHAKE, HANDSHAKE, encode_message(KeyUpdate(False)))
    expect_violation(client, data, A.unexpected_message, peer=server)


# Alerts and closure -----------------------------------------------------------------------------
@sides
@pytest.mark.parametrize(
    "level, description",
    [(2, A.handshake_failure), (2, A.internal_error), (2, 255), (1, A.bad_certificate)],
    ids=["handshake_failure", "internal_error", "unknown-255", "warning-bad_certificate"],
)
def test_alert_from_the_peer_raises_alert_received(side, level, description):
    conn, peer = under_test(side)
    data = app(peer, b"before") + peer.protect(Epoch.ONE_RTT, ALERT, bytes((level, description)))
    with pytest.raises(AlertReceived) as info:
        conn.receive_data(data + app(peer, b"after"), NOW)
    name = description.name if isinstance(description, A) else str(description)
    assert name in str(info.value)
    assert conn.data_to_send() == b""  # never answer an alert with an alert
    assert delivered(conn) == b"before"
    assert_dead(conn)


def test_plaintext_alert_before_the_server_hello_raises_alert_received():
    client, _, _ = start_client()
    with pytest.raises(AlertReceived, match="handshake_failure"):
        client.receive_data(alert_bytes(A.handshake_failure), NOW)
    assert client.data_to_send() == b""
    assert_dead(client)


@sides
@pytest.mark.parametrize("body", [b"\x02", b"\x02\x28\x00"], ids=["1-byte", "3-byte"])
def test_alert_of_the_wrong_length_is_decode_error(side, body):
    conn, peer = under_test(side)
    expect_violation(conn, peer.protect(Epoch.ONE_RTT, ALERT, body), A.decode_error, peer=peer)


@sides
def test_empty_protected_alert_record_is_unexpected_message(side):
    """§5.1: an alert record holds exactly one alert; an empty one is no alert at all."""
    conn, peer = under_test(side)
    expect_violation(conn, peer.protect(Epoch.ONE_RTT, ALERT, b""), A.unexpected_message, peer=peer)


def test_empty_plaintext_alert_record_is_unexpected_message():
    client, _, _ = start_client()
    expect_violation(client, record(ALERT, b""), A.unexpected_message)


def test_plaintext_alert_of_the_wrong_length_is_decode_error():
    client, _, _ = start_client()
    expect_violation(client, record(ALERT, b"\x02\x28\x00"), A.decode_error)


@sides
def test_close_notify_gives_connection_closed_and_data_after_it_is_ignored(side):
    conn, peer = under_test(side)
    data = app(peer, b"last words")
    data += peer.protect(Epoch.ONE_RTT, ALERT, b"\x01\x00")
    conn.receive_data(data, NOW)
    events = drain(conn)
    assert events == [ApplicationData(b"last words"), ConnectionClosed()]
    assert conn.peer_closed and not conn.closed
    conn.send(b"still allowed to answer")  # half-closed: we may still send
    assert peer.receive(conn.data_to_send()) == [(APPLICATION_DATA, b"still allowed to answer")]
    # RFC 8446 §6.1: data received after a closure alert MUST be ignored.
    conn.receive_data(app(peer, b"after close_notify"), NOW)
    assert drain(conn) == [] and not conn.closed and conn.data_to_send() == b""


@sides
def test_user_canceled_warning_is_ignored_until_close_notify(side):
    conn, peer = under_test(side)
    canceled = peer.protect(Epoch.ONE_RTT, ALERT, bytes((1, A.user_canceled)))
    close = peer.protect(Epoch.ONE_RTT, ALERT, b"\x01\x00")
    conn.receive_data(canceled, NOW)
    assert not conn.closed and drain(conn) == []
    conn.receive_data(close, NOW)
    assert drain(conn) == [ConnectionClosed()]


def test_both_close_notify_close_the_connection():
    client, server = connected_pair()
    client.close()
    server.receive_data(client.data_to_send(), NOW)
    assert drain(server) == [ConnectionClosed()]
    server.close()
    client.receive_data(server.data_to_send(), NOW)
    assert drain(client) == [ConnectionClosed()]
    assert client.closed
    assert_dead(client)


# Record versions ----------------------------------------------------------------------------------
def test_server_hello_record_version_is_0x0303():
    _, _, ch = start_client()
    assert ch[1:3] == b"\x03\x01"  # allowed for the initial ClientHello
    server = TLSConnection.server(server_config())
    server.receive_data(ch, NOW)
    versions = {header[1:3] for _, header, _ in split_records(server.data_to_send())}
    assert versions == {b"\x03\x03"}
