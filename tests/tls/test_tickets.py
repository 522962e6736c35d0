"""What a QUIC client's TLS keeps after the handshake: the TicketReceiver.

The receiver must turn a NewSessionTicket into the same SessionTicket the full
engine would (same PSK, same fields), refuse every other message and epoch
with unexpected_message, and never raise anything but the project's TLS
errors on arbitrary bytes.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic import QuicConnection
from quicnet.quic.packets import parse_long_header
from quicnet.tls import (
    AlertDescription,
    Epoch,
    ProtocolViolation,
    SessionTicket,
    TLSClient,
    TLSError,
)
from quicnet.tls.events import SessionTicketReceived
from quicnet.tls.extensions import (
    ExtensionType,
    encode_early_data_ticket,
    encode_ticket_extensions,
)
from quicnet.tls.messages import (
    Extension,
    Finished,
    KeyUpdate,
    NewSessionTicket,
    decode_message,
    encode_extensions,
    encode_message,
    new_session_ticket_message,
)
from quicnet.tls.session import TicketState, encode_ticket_state
from quicnet.tls.tickets import TicketReceiver
from tests.quic.simnet import client_config, deep_size, server_config

NOW = 1.0


def _pair_until(done: str) -> tuple[QuicConnection, QuicConnection]:
    """A client and a server connection in memory, exchanged until ``client.<done>``."""
    client = QuicConnection(client_config())
    client.connect(("s", 1), NOW)
    server: QuicConnection | None = None
    for _ in range(20):
        if getattr(client, done):
            break
        for data, _ in client.datagrams_to_send(NOW):
            if server is None:
                server = QuicConnection(
                    server_config(),
                    original_destination_cid=parse_long_header(data).destination_cid,
                )
            server.receive_datagram(data, ("c", 2), NOW)
        assert server is not None
        for data, _ in server.datagrams_to_send(NOW):
            client.receive_datagram(data, ("s", 1), NOW)
    assert getattr(client, done) and server is not None
    return client, server


def _engine_and_receiver() -> tuple[TLSClient, TicketReceiver]:
    """A real client engine whose handshake completed, and the receiver it hands over."""
    client, _server = _pair_until("handshake_complete")
    engine = client.tls
    assert isinstance(engine, TLSClient)
    return engine, engine.ticket_receiver()


def _ticket_message(
    nonce: bytes = b"\x01", lifetime: int = 3600, early: int | None = None
) -> bytes:
    extensions = ()
    if early is not None:
        extensions = (Extension(ExtensionType.early_data, encode_early_data_ticket(early)),)
    return encode_message(NewSessionTicket(lifetime, 0x1234, nonce, b"opaque ticket", extensions))


def _tickets(tls: TLSClient | TicketReceiver) -> list[SessionTicketReceived]:
    out = []
    while (event := tls.next_event()) is not None:
        if isinstance(event, SessionTicketReceived):
            out.append(event)
    return out


def test_a_confirmed_quic_client_keeps_a_ticket_receiver_not_the_engine() -> None:
    client, _server = _pair_until("handshake_confirmed")
    receiver = client.tls
    assert isinstance(receiver, TicketReceiver)
    assert receiver.alpn_protocol == client.configuration.alpn_protocols[0]
    assert receiver.peer_certificates[0].to_der() == server_config().certificate_chain[0].to_der()
    # A few hundred bytes, not the engine's several kilobytes.
    assert deep_size(receiver, shared=(Epoch.ONE_RTT,)) < 2000


@pytest.mark.parametrize("early", [None, 0xFFFFFFFF])
def test_the_receiver_makes_the_ticket_the_engine_would(early: int | None) -> None:
    engine, receiver = _engine_and_receiver()
    _tickets(engine)
    message = _ticket_message(b"\x07\x08", early=early)
    engine.receive(Epoch.ONE_RTT, message, NOW + 5)
    receiver.receive(Epoch.ONE_RTT, message, NOW + 5)
    [from_engine] = _tickets(engine)
    [from_receiver] = _tickets(receiver)
    assert from_receiver == from_engine
    assert from_receiver.ticket.resumption_psk == from_engine.ticket.resumption_psk
    assert from_receiver.ticket.max_early_data_size == (early or 0)
    # RFC 9369 §5: both made it for the connection's QUIC version, set at completion.
    assert from_engine.ticket.quic_version == client_config().version


def test_tickets_split_across_crypto_frames_are_reassembled() -> None:
    _engine, receiver = _engine_and_receiver()
    both = _ticket_message(b"\x01") + _ticket_message(b"\x02")
    for i in range(0, len(both), 7):
        receiver.receive(Epoch.ONE_RTT, both[i : i + 7], NOW)
    tickets = _tickets(receiver)
    assert len(tickets) == 2
    assert tickets[0].ticket.resumption_psk != tickets[1].ticket.resumption_psk
    assert receiver.data_to_send() == []


def test_a_ticket_cut_by_the_hand_over_is_completed_by_the_receiver() -> None:
    """The engine may have read the start of a ticket when the connection swaps it for
    the receiver (confirmation arrives in the same datagram): the receiver takes those
    bytes over, so the rest completes the ticket instead of being read as a header."""
    client, _server = _pair_until("handshake_complete")
    engine = client.tls
    assert isinstance(engine, TLSClient)
    _tickets(engine)
    first, second = _ticket_message(b"\x01"), _ticket_message(b"\x02")
    engine.receive(Epoch.ONE_RTT, first + second[:9], NOW)  # one ticket and a bit
    [from_engine] = _tickets(engine)  # the first, whole, from the engine itself
    receiver = engine.ticket_receiver()
    receiver.receive(Epoch.ONE_RTT, second[9:], NOW)
    [from_receiver] = _tickets(receiver)  # the one the engine had begun, completed
    assert from_receiver.ticket.ticket == b"opaque ticket"
    # A different nonce: the second ticket, not the first one again (RFC 8446 §4.6.1).
    assert from_receiver.ticket.resumption_psk != from_engine.ticket.resumption_psk


@pytest.mark.parametrize(
    "message",
    [encode_message(KeyUpdate(False)), encode_message(Finished(bytes(32)))],
    ids=["KeyUpdate", "Finished"],
)
def test_any_other_message_is_unexpected_message(message: bytes) -> None:
    _engine, receiver = _engine_and_receiver()
    with pytest.raises(ProtocolViolation) as info:
        receiver.receive(Epoch.ONE_RTT, message, NOW)
    assert info.value.alert == AlertDescription.unexpected_message


@pytest.mark.parametrize("epoch", [Epoch.INITIAL, Epoch.HANDSHAKE])
def test_a_ticket_at_another_epoch_is_unexpected_message(epoch: Epoch) -> None:
    _engine, receiver = _engine_and_receiver()
    with pytest.raises(ProtocolViolation) as info:
        receiver.receive(epoch, _ticket_message(), NOW)
    assert info.value.alert == AlertDescription.unexpected_message


def test_a_lifetime_over_seven_days_is_illegal_parameter() -> None:
    _engine, receiver = _engine_and_receiver()
    with pytest.raises(ProtocolViolation) as info:
        receiver.receive(Epoch.ONE_RTT, _ticket_message(lifetime=7 * 86400 + 1), NOW)
    assert info.value.alert == AlertDescription.illegal_parameter


def test_only_a_quic_engine_that_completed_hands_over() -> None:
    client = QuicConnection(client_config())
    client.connect(("s", 1), NOW)
    assert isinstance(client.tls, TLSClient)
    with pytest.raises(TLSError):
        client.tls.ticket_receiver()


_ENGINE = _engine_and_receiver()[0]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.builds(_ticket_message, st.binary(max_size=8), st.integers(0, 8 * 86400)),
        ),
        max_size=6,
    )
)
def test_arbitrary_bytes_give_a_tls_error_or_tickets(chunks: list[bytes]) -> None:
    receiver = _ENGINE.ticket_receiver()  # a fresh one per example, from one handshake
    try:
        for chunk in chunks:
            receiver.receive(Epoch.ONE_RTT, chunk, NOW)
    except TLSError as exc:
        # a typed error that names the alert a peer would be sent, never internal_error
        assert exc.alert != AlertDescription.internal_error
    for event in _tickets(receiver):
        # only whole, well-formed tickets within the 7-day cap reach the application
        assert event.ticket.ticket == b"opaque ticket"
        assert event.ticket.ticket_lifetime <= 7 * 86400


def test_for_quic_version_carries_every_other_field() -> None:
    """``SessionTicket.for_quic_version`` lists the fields by position: a field added to
    the class and left out there would be dropped (here, its value would differ)."""
    values: dict[str, object] = {}
    for i, f in enumerate(dataclasses.fields(SessionTicket)):
        values[f.name] = f"value {i}"  # distinct from every default and from each other
    ticket = SessionTicket(**values)  # type: ignore[arg-type]
    moved = ticket.for_quic_version(0x6B3343CF)
    assert moved == dataclasses.replace(ticket, quic_version=0x6B3343CF)


# The server's ticket, written without objects: the same bytes as the general encoders --


def test_a_new_session_ticket_is_laid_out_as_rfc_8446_says() -> None:
    # §4.6.1: lifetime, age_add, nonce<0..255>, ticket<1..2^16-1>, extensions<0..2^16-2>,
    # behind the handshake header (§4): type 4, uint24 length. Bytes from the Writer-based
    # encoder this one replaced.
    extensions = (Extension(ExtensionType.early_data, b"\xff\xff\xff\xff"),)
    message = new_session_ticket_message(
        7200, 0xDEADBEEF, bytes(8), b"opaque-ticket", encode_extensions(extensions)
    )
    assert message.hex() == (
        "0400002a00001c20deadbeef0800000000000000000"
        "00d6f70617175652d7469636b65740008002a0004ffffffff"
    )
    ticket = NewSessionTicket(7200, 0xDEADBEEF, bytes(8), b"opaque-ticket", extensions)
    assert decode_message(message) == ticket
    assert encode_message(ticket) == message
    assert new_session_ticket_message(60, 1, b"", b"t", encode_extensions(())).hex() == (
        "0400000e0000003c00000001000001740000"
    )
    # A server's block: early_data alone, or nothing.
    assert encode_ticket_extensions(0xFFFFFFFF) == encode_extensions(extensions)
    assert encode_ticket_extensions(0) == encode_extensions(())


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=255),
    st.binary(min_size=1, max_size=300),
    st.lists(
        st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=8)),
        max_size=3,
        unique_by=lambda e: e[0],
    ),
)
def test_a_new_session_ticket_decodes_to_its_fields(
    lifetime: int, age_add: int, nonce: bytes, ticket: bytes, pairs: list[tuple[int, bytes]]
) -> None:
    extensions = tuple(Extension(t, d) for t, d in pairs)
    message = new_session_ticket_message(
        lifetime, age_add, nonce, ticket, encode_extensions(extensions)
    )
    assert decode_message(message) == NewSessionTicket(lifetime, age_add, nonce, ticket, extensions)


def test_an_oversized_nonce_or_ticket_is_refused() -> None:
    with pytest.raises(ValueError):
        new_session_ticket_message(60, 1, bytes(256), b"t", b"\x00\x00")
    with pytest.raises(ValueError):
        new_session_ticket_message(60, 1, b"", bytes(0x10000), b"\x00\x00")
    with pytest.raises(ValueError):
        new_session_ticket_message(2**32, 1, b"", b"t", b"\x00\x00")


def test_a_ticket_state_is_encoded_as_before_field_by_field() -> None:
    # Bytes from the Writer-based TicketState.encode this one replaced (ticket version 4).
    fields = (
        0x1301,
        bytes(range(32)),
        1700000000.25,
        7200,
        0xDEADBEEF,
        0xFFFFFFFF,
        "h3",
        "example.com",
        (b"\x30\x01\x02", b"\x30"),
        b"ctx",
        b"\x00\x00\x00\x01",
    )
    expected = (
        "04130120000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0000018bcfe568fa"
        "00001c20deadbeefffffffff00026833000b6578616d706c652e636f6d00000a000003300102000001300003"
        "6374780400000001"
    )
    assert encode_ticket_state(*fields).hex() == expected
    assert TicketState(*fields).encode().hex() == expected
    assert TicketState.decode(bytes.fromhex(expected)).encode().hex() == expected
    with pytest.raises(ValueError):  # psk<32..255>
        encode_ticket_state(0x1301, bytes(256), 1.0, 60, 0, 0, None, None, (), b"", b"")
