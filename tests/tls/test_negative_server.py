"""Negative tests of the TLS 1.3 *server*: a client that breaks RFC 8446.

ClientHellos are built by hand with :mod:`quicnet.tls.messages`, each one
field away from a valid control hello; later client messages come from a
genuine quicnet :class:`TLSClient` engine behind the test's own record layer
(:class:`Puppet`), changed before they are protected.
"""

from __future__ import annotations

import dataclasses

import pytest
from test_negative_helpers import (
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    NOW,
    Msg,
    Puppet,
    alert_bytes,
    assert_dead,
    client_config,
    client_hello,
    drain,
    expect_violation,
    hello_record,
    identity,
    pump,
    record,
    rsa_identity,
    server_config,
    split_records,
    with_extension,
    without_extension,
    x400_san_certificate,
)

from quicnet.crypto import (
    KeyShare,
    NamedGroup,
    SignatureScheme,
    digest,
    generate_private_key,
    make_ca,
)
from quicnet.tls import (
    AlertDescription,
    AlertReceived,
    ApplicationData,
    ClientAuth,
    Epoch,
    HandshakeComplete,
    ProtocolViolation,
    SessionTicketReceived,
    StrikeRegister,
    TicketKeys,
    TLSClient,
    TLSConnection,
)
from quicnet.tls import extensions as ext
from quicnet.tls.auth import certificate_verify_content
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.fixed import FixedInputs
from quicnet.tls.messages import (
    Certificate,
    CertificateEntry,
    CertificateVerify,
    ClientHello,
    EndOfEarlyData,
    Extension,
    Finished,
    NewSessionTicket,
    ServerHello,
    decode_message,
    encode_message,
)

A = AlertDescription


def fresh_server(**kwargs) -> TLSConnection:
    return TLSConnection.server(server_config(**kwargs))


def answer(server: TLSConnection, hello: ClientHello) -> ServerHello:
    """Feed ``hello``; the server must answer with a ServerHello (or HRR) record first."""
    server.receive_data(hello_record(hello), NOW)
    (content_type, _, payload), *_ = split_records(server.data_to_send())
    assert content_type == HANDSHAKE
    sh = decode_message(payload[: 4 + int.from_bytes(payload[1:4], "big")])
    assert isinstance(sh, ServerHello)
    return sh


def replace_ext(hello: ClientHello, ext_type: int, data: bytes) -> ClientHello:
    return with_extension(hello, Extension(ext_type, data))


def flip(data: bytes, index: int = -1) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def x25519_share() -> ext.KeyShareEntry:
    return ext.KeyShareEntry(NamedGroup.x25519, KeyShare(NamedGroup.x25519).key_exchange)


# Controls ----------------------------------------------------------------------------------------
def test_control_hand_built_client_hello_gets_a_server_hello():
    sh = answer(fresh_server(), client_hello())
    assert not sh.is_hello_retry_request
    assert sh.cipher_suite == 0x1301
    assert sh.legacy_session_id_echo == bytes(range(32))


def test_unknown_extensions_suites_groups_and_schemes_in_a_hand_built_hello_are_ignored():
    hello = client_hello(suites=(0x0A0A, 0xC02F, 0x1301))
    hello = replace_ext(
        hello, ET.supported_groups, ext.encode_u16_list([0x2A2A, 0x0100, NamedGroup.x25519])
    )
    hello = replace_ext(
        hello,
        ET.key_share,
        ext.encode_key_share_client([ext.KeyShareEntry(0x2A2A, b"\x00"), x25519_share()]),
    )
    hello = replace_ext(
        hello, ET.signature_algorithms, ext.encode_u16_list([0x0A0A, 0x0403, 0x0807])
    )
    for unknown in (0xFAFA, 0x0A0A, 0xFF00, 0x1234):
        hello = with_extension(hello, Extension(unknown, b"\x00" * (unknown % 5)))
    sh = answer(fresh_server(), hello)
    assert sh.cipher_suite == 0x1301
    assert ext.decode_key_share_server(sh.extension(ET.key_share)).group == NamedGroup.x25519


def grease_hook(kind, items):
    """Add unknown extensions and a key share for an unknown group to the ClientHello."""
    out = []
    for item in items:
        if item.type == ET.key_share:
            entries = ext.decode_key_share_client(item.data)
            item = Extension(
                ET.key_share,
                ext.encode_key_share_client([ext.KeyShareEntry(0x3A3A, b"\x07"), *entries]),
            )
        out.append(item)
    return [Extension(0x1A1A, b""), *out, Extension(0xDADA, b"\x00\x01\x02")]


def test_unknown_critical_parameters_in_the_offer_are_ignored_and_the_handshake_completes():
    """GREASE-style unknown code points: extensions, suites, groups, shares, schemes."""
    cc = client_config(
        cipher_suites=(0x0A0A, 0x1301),
        groups=(0x3A3A, NamedGroup.x25519),
        signature_algorithms=(0x0A0A, SignatureScheme.ecdsa_secp256r1_sha256),
    )
    client = TLSConnection(TLSClient(cc, fixed=FixedInputs(extensions=grease_hook)))
    server = fresh_server()
    client.start(NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    client.send(b"ping")
    server.receive_data(client.data_to_send(), NOW)
    assert [e for e in drain(server) if isinstance(e, ApplicationData)] == [
        ApplicationData(b"ping")
    ]


# ClientHello: versions, compression, extensions ----------------------------------------------------
def test_tls12_only_client_hello_is_protocol_version():
    """What a TLS 1.2 client sends: no supported_versions, TLS 1.2 suites."""
    hello = ClientHello(
        random=bytes(range(32)),
        legacy_session_id=b"",
        cipher_suites=(0xC02B, 0xC02F, 0x009E),
        extensions=(
            Extension(ET.server_name, ext.encode_server_name("localhost")),
            Extension(ET.supported_groups, ext.encode_u16_list([0x001D, 0x0017])),
            Extension(0x000B, b"\x01\x00"),  # ec_point_formats
            Extension(ET.signature_algorithms, ext.encode_u16_list([0x0403, 0x0401])),
            Extension(ET.renegotiation_info, b"\x00"),
        ),
    )
    expect_violation(fresh_server(), hello_record(hello), A.protocol_version)


def test_client_hello_without_supported_versions_is_protocol_version():
    hello = without_extension(client_hello(), ET.supported_versions)
    expect_violation(fresh_server(), hello_record(hello), A.protocol_version)


def test_client_hello_without_an_extensions_block_is_protocol_version():
    """An SSL 3.0-style hello ends after the compression methods."""
    raw = encode_message(dataclasses.replace(client_hello(), extensions=()))
    assert raw.endswith(b"\x00\x00")
    body = raw[4:-2]
    bare = bytes((1,)) + len(body).to_bytes(3, "big") + body
    expect_violation(fresh_server(), hello_record(bare), A.protocol_version)


def test_client_hello_with_an_empty_extensions_block_is_decode_error():
    hello = dataclasses.replace(client_hello(), extensions=())
    expect_violation(fresh_server(), hello_record(hello), A.decode_error)


def test_supported_versions_without_tls13_is_protocol_version():
    versions = ext.encode_supported_versions_client((0x0303, 0x0302, 0x7F1C))
    hello = replace_ext(client_hello(), ET.supported_versions, versions)
    expect_violation(fresh_server(), hello_record(hello), A.protocol_version)


@pytest.mark.parametrize("methods", [b"\x00\x01", b"\x01\x00", b"\x01"], ids=lambda m: m.hex())
def test_compression_methods_other_than_null_are_illegal_parameter(methods):
    hello = client_hello(compression=methods)
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_tls12_client_hello_offering_deflate_is_protocol_version():
    hello = without_extension(client_hello(compression=b"\x01\x00"), ET.supported_versions)
    expect_violation(fresh_server(), hello_record(hello), A.protocol_version)


def test_key_share_without_supported_groups_is_missing_extension():
    hello = without_extension(client_hello(), ET.supported_groups)
    expect_violation(fresh_server(), hello_record(hello), A.missing_extension)


def test_supported_groups_without_key_share_is_missing_extension():
    hello = without_extension(client_hello(), ET.key_share)
    expect_violation(fresh_server(), hello_record(hello), A.missing_extension)


def test_key_share_for_a_group_not_in_supported_groups_is_illegal_parameter():
    hello = replace_ext(
        client_hello(), ET.supported_groups, ext.encode_u16_list([NamedGroup.secp256r1])
    )
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_two_key_shares_for_one_group_is_illegal_parameter():
    shares = ext.encode_key_share_client([x25519_share(), x25519_share()])
    hello = replace_ext(client_hello(), ET.key_share, shares)
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


@pytest.mark.parametrize(
    "key_exchange", [bytes(31), bytes(33), bytes(32)], ids=["short", "long", "all-zero"]
)
def test_invalid_x25519_key_share_is_illegal_parameter(key_exchange):
    shares = ext.encode_key_share_client([ext.KeyShareEntry(NamedGroup.x25519, key_exchange)])
    hello = replace_ext(client_hello(), ET.key_share, shares)
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_pre_shared_key_not_last_is_illegal_parameter():
    psk = ext.encode_pre_shared_key_client(
        ext.OfferedPsks((ext.PskIdentity(b"ticket", 0),), (bytes(32),))
    )
    hello = client_hello()
    items = list(hello.extensions)
    items.insert(2, Extension(ET.pre_shared_key, psk))
    hello = dataclasses.replace(hello, extensions=tuple(items))
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_pre_shared_key_without_psk_key_exchange_modes_is_missing_extension():
    psk = ext.encode_pre_shared_key_client(
        ext.OfferedPsks((ext.PskIdentity(b"ticket", 0),), (bytes(32),))
    )
    hello = without_extension(client_hello(), ET.psk_key_exchange_modes)
    hello = with_extension(hello, Extension(ET.pre_shared_key, psk))
    expect_violation(fresh_server(), hello_record(hello), A.missing_extension)


def test_pre_shared_key_with_more_binders_than_identities_is_illegal_parameter():
    psk = ext.encode_identities((ext.PskIdentity(b"ticket", 0),)) + ext.encode_binders(
        (bytes(32), bytes(32))
    )
    hello = with_extension(client_hello(), Extension(ET.pre_shared_key, psk))
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


@pytest.mark.parametrize(
    "ext_type", [ET.supported_groups, ET.key_share, 0xFAFA], ids=["groups", "key_share", "unknown"]
)
def test_duplicate_client_hello_extensions_are_illegal_parameter(ext_type):
    hello = client_hello()
    original = next((e for e in hello.extensions if e.type == ext_type), Extension(ext_type, b""))
    hello = with_extension(hello, original, replace=False)
    hello = with_extension(hello, original, replace=False)
    assert [e.type for e in hello.extensions].count(ext_type) >= 2
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_record_size_limit_below_64_is_illegal_parameter():
    hello = with_extension(client_hello(), Extension(ET.record_size_limit, (63).to_bytes(2, "big")))
    expect_violation(fresh_server(record_size_limit=1024), hello_record(hello), A.illegal_parameter)


def test_no_cipher_suite_in_common_is_handshake_failure():
    hello = client_hello(suites=(0x0A0A, 0xC02F, 0x1304))
    expect_violation(fresh_server(), hello_record(hello), A.handshake_failure)


def test_no_group_in_common_is_handshake_failure():
    hello = replace_ext(client_hello(), ET.supported_groups, ext.encode_u16_list([0x0100]))
    hello = replace_ext(
        hello, ET.key_share, ext.encode_key_share_client([ext.KeyShareEntry(0x0100, b"\x01")])
    )
    expect_violation(fresh_server(), hello_record(hello), A.handshake_failure)


def test_client_hello_without_signature_algorithms_is_missing_extension():
    hello = without_extension(client_hello(), ET.signature_algorithms)
    expect_violation(fresh_server(), hello_record(hello), A.missing_extension)


def test_client_hello_with_trailing_bytes_is_decode_error():
    raw = encode_message(client_hello())
    body = raw[4:] + b"\x00"
    bad = bytes((1,)) + len(body).to_bytes(3, "big") + body
    expect_violation(fresh_server(), hello_record(bad), A.decode_error)


def test_client_hello_with_a_33_byte_session_id_is_decode_error():
    hello = client_hello(session_id=bytes(33))
    expect_violation(fresh_server(), hello_record(hello), A.decode_error)


@pytest.mark.parametrize("msg_type", [0, 3, 99, 254], ids=lambda t: f"type{t}")
def test_unknown_handshake_type_is_unexpected_message(msg_type):
    expect_violation(
        fresh_server(), hello_record(bytes((msg_type, 0, 0, 1, 0))), A.unexpected_message
    )


@pytest.mark.parametrize(
    "message",
    [
        Finished(bytes(32)),
        EndOfEarlyData(),
        NewSessionTicket(60, 0, b"", b"t"),
        ServerHello(
            bytes(32),
            b"",
            0x1301,
            (Extension(ET.supported_versions, ext.encode_supported_versions_server()),),
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_other_message_instead_of_client_hello_is_unexpected_message(message):
    expect_violation(fresh_server(), hello_record(message), A.unexpected_message)


def test_alpn_mismatch_is_no_application_protocol_and_the_client_sees_it():
    client = TLSConnection.client(client_config(alpn_protocols=["http/1.1"]))
    server = fresh_server(alpn_protocols=["h2"])
    client.start(NOW)
    expect_violation(server, client.data_to_send(), A.no_application_protocol)
    with pytest.raises(AlertReceived, match="no_application_protocol"):
        client.receive_data(alert_bytes(A.no_application_protocol), NOW)
    assert client.closed and client.data_to_send() == b""


# PSK binders -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resumable():
    """A server configuration (with its ticket keys) and a ticket it issued."""
    sc = server_config()
    client = TLSConnection.client(client_config())
    server = TLSConnection.server(sc)
    client.start(NOW)
    pump(client, server)
    tickets = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    assert tickets
    return sc, tickets[0]


def resuming_hello(ticket) -> bytes:
    client = TLSConnection.client(client_config(session=ticket))
    client.start(NOW)
    data = client.data_to_send()
    hello = decode_message(split_records(data)[0][2])
    assert hello.extensions[-1].type == ET.pre_shared_key
    return data


def test_control_valid_binder_resumes(resumable):
    sc, ticket = resumable
    server = TLSConnection.server(sc)
    server.receive_data(resuming_hello(ticket), NOW)
    assert server.engine.resumed


def test_bad_psk_binder_is_decrypt_error(resumable):
    sc, ticket = resumable
    data = resuming_hello(ticket)  # the binder is the last bytes of the hello
    expect_violation(TLSConnection.server(sc), flip(data), A.decrypt_error)


def test_unknown_psk_identity_falls_back_to_a_full_handshake(resumable):
    sc, ticket = resumable
    forged = dataclasses.replace(ticket, ticket=flip(ticket.ticket, 5))
    server = TLSConnection.server(sc)
    server.receive_data(resuming_hello(forged), NOW)
    assert not server.engine.resumed and server.engine.state == "WAIT_FINISHED"


# HelloRetryRequest: the second ClientHello -------------------------------------------------------------
def first_hello_without_share() -> ClientHello:
    hello = replace_ext(
        client_hello(),
        ET.supported_groups,
        ext.encode_u16_list([NamedGroup.secp256r1, NamedGroup.x25519]),
    )
    return replace_ext(hello, ET.key_share, ext.encode_key_share_client([]))


def retry_setup():
    server = fresh_server()
    first = first_hello_without_share()
    hrr = answer(server, first)
    assert hrr.is_hello_retry_request
    assert ext.decode_key_share_hrr(hrr.extension(ET.key_share)) == NamedGroup.x25519
    return server, first


def second_hello(first: ClientHello, *entries: ext.KeyShareEntry) -> ClientHello:
    return replace_ext(first, ET.key_share, ext.encode_key_share_client(list(entries)))


def test_control_second_client_hello_with_the_requested_share_gets_a_server_hello():
    server, first = retry_setup()
    server.receive_data(hello_record(second_hello(first, x25519_share()), b"\x03\x03"), NOW)
    assert server.engine.state == "WAIT_FINISHED"


def p256_share() -> ext.KeyShareEntry:
    return ext.KeyShareEntry(NamedGroup.secp256r1, KeyShare(NamedGroup.secp256r1).key_exchange)


@pytest.mark.parametrize(
    "change",
    ["other-group", "no-share", "both-shares", "random", "session-id", "suites", "early-data"],
)
def test_second_client_hello_that_breaks_the_retry_is_illegal_parameter(change):
    server, first = retry_setup()
    hello = second_hello(first, x25519_share())
    if change == "other-group":
        hello = second_hello(first, p256_share())
    elif change == "no-share":
        hello = second_hello(first)
    elif change == "both-shares":
        hello = second_hello(first, p256_share(), x25519_share())
    elif change == "random":
        hello = dataclasses.replace(hello, random=flip(hello.random))
    elif change == "session-id":
        hello = dataclasses.replace(hello, legacy_session_id=b"")
    elif change == "suites":
        hello = dataclasses.replace(hello, cipher_suites=(0x1302, 0x1301))
    elif change == "early-data":
        hello = with_extension(hello, Extension(ET.early_data, b""))
    expect_violation(server, hello_record(hello, b"\x03\x03"), A.illegal_parameter)


# The client's second flight ---------------------------------------------------------------------
def flight_setup(cc=None, sc=None):
    """A server that sent its flight to a puppet client; the puppet's answer (unprotected)."""
    server = TLSConnection.server(sc or server_config())
    client = Puppet.client(cc)
    (hello,) = client.flight()
    server.receive_data(client.records([hello]), NOW)
    client.receive(server.data_to_send())
    return server, client, hello, client.flight()


def msg(message) -> Msg:
    return Msg(Epoch.HANDSHAKE, encode_message(message))


def test_control_genuine_client_finished_completes():
    server, client, _, flight = flight_setup()
    server.receive_data(client.records(flight), NOW)
    assert server.handshake_complete
    assert any(isinstance(e, HandshakeComplete) for e in drain(server))


def test_wrong_client_finished_is_decrypt_error():
    server, client, _, flight = flight_setup()
    (fin,) = flight
    flight = [msg(Finished(flip(fin.message.verify_data, 7)))]
    expect_violation(server, client.records(flight), A.decrypt_error, peer=client)
    assert not server.handshake_complete


@pytest.mark.parametrize("change", ["truncated", "padded"])
def test_client_finished_of_the_wrong_length_is_decode_error(change):
    server, client, _, (fin,) = flight_setup()
    verify_data = fin.message.verify_data
    verify_data = verify_data[:-1] if change == "truncated" else verify_data + b"\x00"
    expect_violation(
        server, client.records([msg(Finished(verify_data))]), A.decode_error, peer=client
    )


def test_client_finished_in_the_clear_is_unexpected_message():
    server, client, _, (fin,) = flight_setup()
    expect_violation(server, record(HANDSHAKE, fin.raw), A.unexpected_message, peer=client)


def test_client_hello_again_after_the_server_flight_is_unexpected_message():
    server, client, hello, _ = flight_setup()
    expect_violation(server, client.records([hello]), A.unexpected_message, peer=client)


def test_application_data_before_client_finished_is_unexpected_message():
    server, client, _, flight = flight_setup()
    early = client.protect(Epoch.HANDSHAKE, APPLICATION_DATA, b"GET / HTTP/1.0\r\n\r\n")
    expect_violation(server, early + client.records(flight), A.unexpected_message, peer=client)
    assert not server.handshake_complete


def test_application_data_in_the_clear_before_the_client_hello_is_unexpected_message():
    expect_violation(
        fresh_server(), record(APPLICATION_DATA, b"GET / HTTP/1.0\r\n\r\n"), A.unexpected_message
    )


@pytest.mark.parametrize(
    "message",
    [NewSessionTicket(60, 0, b"", b"t"), EndOfEarlyData(), Certificate(b"", ())],
    ids=lambda m: type(m).__name__,
)
def test_unexpected_client_message_instead_of_finished_is_unexpected_message(message):
    server, client, _, _ = flight_setup()
    expect_violation(server, client.records([msg(message)]), A.unexpected_message, peer=client)


def test_empty_protected_handshake_record_is_unexpected_message():
    server, client, _, _ = flight_setup()
    empty = client.protect(Epoch.HANDSHAKE, HANDSHAKE, b"")
    expect_violation(server, empty, A.unexpected_message, peer=client)


def test_change_cipher_spec_before_the_client_hello_is_unexpected_message():
    expect_violation(fresh_server(), record(CHANGE_CIPHER_SPEC, b"\x01"), A.unexpected_message)


def test_compat_change_cipher_spec_after_the_client_hello_is_ignored():
    server, client, _, flight = flight_setup()
    server.receive_data(record(CHANGE_CIPHER_SPEC, b"\x01") + client.records(flight), NOW)
    assert server.handshake_complete


def test_plaintext_alert_from_a_client_that_rejected_the_server_hello_is_alert_received():
    """The client had no keys yet when it refused the ServerHello, so its alert is plaintext."""
    server = fresh_server()
    assert not answer(server, client_hello()).is_hello_retry_request
    assert server.data_to_send() == b""
    with pytest.raises(AlertReceived, match="illegal_parameter"):
        server.receive_data(alert_bytes(A.illegal_parameter), NOW)
    assert server.closed and server.data_to_send() == b""


def test_forged_record_when_no_early_data_was_offered_is_bad_record_mac():
    server, client, _, flight = flight_setup(sc=server_config(max_early_data_size=16384))
    forged = flip(client.records(flight), 9)
    expect_violation(server, forged, A.bad_record_mac, peer=client)


# Client authentication ----------------------------------------------------------------------------------
def mtls_setup(client_ident=None, trusted=None, **sc_kwargs):
    client_ident = client_ident or identity("client")
    sc = server_config(
        client_auth=ClientAuth.REQUIRED,
        client_trust_roots=[trusted or client_ident.root],
        **sc_kwargs,
    )
    cc = client_config(certificate_chain=client_ident.chain, private_key=client_ident.key)
    server, client, hello, flight = flight_setup(cc, sc)
    assert [type(m.message).__name__ for m in flight] == [
        "Certificate",
        "CertificateVerify",
        "Finished",
    ]
    return server, client, hello, flight


def test_control_mutual_tls_completes():
    server, client, _, flight = mtls_setup()
    server.receive_data(client.records(flight), NOW)
    assert server.handshake_complete
    assert server.engine.peer_certificates


def mtls_session(client_auth=ClientAuth.REQUIRED, **sc_kwargs):
    """A full mutual-TLS handshake; the server config and a ticket the client got."""
    ident = identity("client")
    sc = server_config(client_auth=client_auth, client_trust_roots=[ident.root], **sc_kwargs)
    cc = client_config(certificate_chain=ident.chain, private_key=ident.key)
    client, server = TLSConnection.client(cc), TLSConnection.server(sc)
    client.start(NOW)
    pump(client, server)
    (done,) = [e for e in drain(server) if isinstance(e, HandshakeComplete)]
    assert done.peer_certificates == ident.chain and not done.resumed
    (ticket, *_) = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    return sc, cc, ticket


def resume(sc, cc, ticket):
    client = TLSConnection.client(dataclasses.replace(cc, session=ticket))
    server = TLSConnection.server(sc)
    client.start(NOW)
    pump(client, server)
    (done,) = [e for e in drain(server) if isinstance(e, HandshakeComplete)]
    tickets = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    return server, done, tickets


def test_resumed_mutual_tls_session_keeps_the_client_certificate_chain():
    sc, cc, ticket = mtls_session()
    server, done, tickets = resume(sc, cc, ticket)
    assert done.resumed
    assert done.peer_certificates == identity("client").chain
    assert server.engine.peer_certificates == identity("client").chain
    # A ticket issued on the resumed connection carries the identity on.
    _, again, _ = resume(sc, cc, tickets[0])
    assert again.resumed and again.peer_certificates == identity("client").chain


def test_session_without_a_client_certificate_does_not_resume_where_one_is_required():
    """A ticket from an OPTIONAL server (no certificate sent) on a REQUIRED one sharing keys."""
    keys = TicketKeys()
    optional = server_config(
        client_auth=ClientAuth.OPTIONAL,
        client_trust_roots=[identity("client").root],
        ticket_keys=keys,
    )
    client, server = TLSConnection.client(client_config()), TLSConnection.server(optional)
    client.start(NOW)
    pump(client, server)
    (ticket, *_) = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    required = dataclasses.replace(optional, client_auth=ClientAuth.REQUIRED)
    server = TLSConnection.server(required)
    client = TLSConnection.client(client_config(session=ticket))
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert not server.engine.resumed and server.engine.state == "WAIT_CERT"


def test_session_whose_client_certificate_is_no_longer_trusted_does_not_resume():
    sc, cc, ticket = mtls_session()
    other_root = make_ca(generate_private_key("EC"), "/CN=another client CA", days=1)
    server = TLSConnection.server(dataclasses.replace(sc, client_trust_roots=[other_root]))
    client = TLSConnection.client(dataclasses.replace(cc, session=ticket))
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    assert not server.engine.resumed and server.engine.state == "WAIT_CERT"


def test_client_certificate_required_but_empty_is_certificate_required():
    server, client, _, flight = flight_setup(
        sc=server_config(client_auth=ClientAuth.REQUIRED, client_trust_roots=[identity().root])
    )
    assert [type(m.message).__name__ for m in flight] == ["Certificate", "Finished"]
    assert flight[0].message.certificate_list == ()
    expect_violation(server, client.records(flight), A.certificate_required, peer=client)


def test_client_certificate_required_the_genuine_client_sees_the_alert():
    sc = server_config(client_auth=ClientAuth.REQUIRED, client_trust_roots=[identity().root])
    client = TLSConnection.client(client_config())
    server = TLSConnection.server(sc)
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    with pytest.raises(ProtocolViolation) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == A.certificate_required
    alert = server.data_to_send()
    assert_dead(server)
    drain(client)
    with pytest.raises(AlertReceived, match="certificate_required"):
        client.receive_data(alert, NOW)
    assert client.closed and client.data_to_send() == b""
    assert not any(isinstance(e, ApplicationData) for e in drain(client))


def test_client_certificate_from_an_unknown_ca_is_unknown_ca():
    other = make_ca(generate_private_key("EC"), "/CN=negative tests client CA", days=30)
    server, client, _, flight = mtls_setup(trusted=other)
    expect_violation(server, client.records(flight), A.unknown_ca, peer=client)


def test_client_certificate_with_an_x400_address_san_is_bad_certificate():
    server, client, _, flight = mtls_setup()
    flight[0] = msg(Certificate(b"", (CertificateEntry(x400_san_certificate(identity("client"))),)))
    expect_violation(server, client.records(flight), A.bad_certificate, peer=client)


def test_client_certificate_with_a_request_context_is_illegal_parameter():
    server, client, _, flight = mtls_setup()
    cert = flight[0].message
    flight[0] = msg(dataclasses.replace(cert, certificate_request_context=b"\x01"))
    expect_violation(server, client.records(flight), A.illegal_parameter, peer=client)


def test_bad_client_certificate_verify_signature_is_decrypt_error():
    server, client, _, flight = mtls_setup()
    cv = flight[1].message
    flight[1] = msg(dataclasses.replace(cv, signature=flip(cv.signature, 12)))
    expect_violation(server, client.records(flight), A.decrypt_error, peer=client)


@pytest.mark.parametrize(
    "scheme", [SignatureScheme.ed25519, 0x0A0A], ids=["ed25519", "grease-0a0a"]
)
def test_client_certificate_verify_with_a_scheme_not_offered_is_illegal_parameter(scheme):
    server, client, _, flight = mtls_setup(
        signature_algorithms=(
            SignatureScheme.ecdsa_secp256r1_sha256,
            SignatureScheme.rsa_pss_rsae_sha256,
        )
    )
    flight[1] = msg(dataclasses.replace(flight[1].message, algorithm=scheme))
    expect_violation(server, client.records(flight), A.illegal_parameter, peer=client)


@pytest.mark.parametrize(
    "scheme",
    [SignatureScheme.rsa_pss_rsae_sha256, SignatureScheme.rsa_pkcs1_sha256],
    ids=["control-pss", "pkcs1"],
)
def test_client_certificate_verify_with_rsa_pkcs1_sha256_is_illegal_parameter(scheme):
    """A valid PKCS#1 v1.5 signature: offered for certificates only, never in CertificateVerify.

    The control re-signs the same content with RSA-PSS, which the server accepts.
    """
    ident = rsa_identity()
    server, client, hello, flight = mtls_setup(client_ident=ident)
    server_messages = b"".join(p for ct, p in client.received if ct == HANDSHAKE)
    transcript = digest("sha256", hello.raw + server_messages + flight[0].raw)
    content = certificate_verify_content(transcript, server=False)
    flight[1] = msg(CertificateVerify(scheme, ident.key.sign(scheme, content)))
    if scheme == SignatureScheme.rsa_pss_rsae_sha256:
        server.receive_data(client.records(flight[:2]), NOW)
        assert server.engine.state == "WAIT_FINISHED"
        return
    expect_violation(server, client.records(flight), A.illegal_parameter, peer=client)


# Strict-peer conformance (RFC 8446 MUSTs a tlsfuzzer-like client checks) ----------------------------
@pytest.mark.parametrize("version", [0x0300, 0x0200, 0x0002], ids=lambda v: f"{v:#06x}")
def test_client_hello_legacy_version_0x0300_or_lower_is_protocol_version(version):
    """Appendix D.5: even with supported_versions offering TLS 1.3."""
    hello = client_hello(legacy_version=version)
    expect_violation(fresh_server(), hello_record(hello), A.protocol_version)


def test_client_hello_legacy_version_0x0301_still_negotiates_tls13():
    sh = answer(fresh_server(), client_hello(legacy_version=0x0301))
    assert not sh.is_hello_retry_request
    assert ext.decode_supported_versions_server(sh.extension(ET.supported_versions)) == 0x0304


@pytest.mark.parametrize("dropped", [ET.key_share, ET.supported_groups], ids=lambda t: f"ext{t}")
def test_second_client_hello_missing_key_share_or_supported_groups_is_missing_extension(dropped):
    """§9.2 holds for the second ClientHello too: never answered with another HRR."""
    server, first = retry_setup()
    hello = without_extension(second_hello(first, x25519_share()), dropped)
    expect_violation(server, hello_record(hello, b"\x03\x03"), A.missing_extension)


def only_unknown_shares_hook(kind, items):
    """Replace the client's P-384 share by shares for two groups no server knows."""
    out = []
    for item in items:
        if item.type == ET.key_share:
            entries = ext.decode_key_share_client(item.data)
            if any(e.group == NamedGroup.secp384r1 for e in entries):
                item = Extension(
                    ET.key_share,
                    ext.encode_key_share_client(
                        [
                            ext.KeyShareEntry(0x3A3A, b"\x07" * 32),
                            ext.KeyShareEntry(0x0101, b"\x01"),
                        ]
                    ),
                )
        out.append(item)
    return out


def test_key_shares_only_for_unknown_groups_get_a_hello_retry_for_a_listed_group():
    cc = client_config(
        groups=(0x3A3A, 0x0101, NamedGroup.x25519, NamedGroup.secp384r1),
        key_share_groups=(NamedGroup.secp384r1,),
    )
    client = TLSConnection(TLSClient(cc, fixed=FixedInputs(extensions=only_unknown_shares_hook)))
    server = fresh_server()
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    out = server.data_to_send()
    hrr = decode_message(split_records(out)[0][2])
    assert hrr.is_hello_retry_request
    assert ext.decode_key_share_hrr(hrr.extension(ET.key_share)) == NamedGroup.x25519
    client.receive_data(out, NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    assert server.engine.group == NamedGroup.x25519


def group_hello(group: int, key_exchange: bytes) -> ClientHello:
    hello = replace_ext(client_hello(), ET.supported_groups, ext.encode_u16_list([group]))
    entry = ext.KeyShareEntry(group, key_exchange)
    return replace_ext(hello, ET.key_share, ext.encode_key_share_client([entry]))


ALL_GROUPS = [
    NamedGroup.x25519,
    NamedGroup.x448,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
    NamedGroup.secp521r1,
]


@pytest.mark.parametrize("group", ALL_GROUPS, ids=lambda g: g.name)
def test_default_server_accepts_every_group(group):
    """P-521 and X448 are accepted by default, like the other groups (§4.2.7)."""
    sh = answer(fresh_server(), group_hello(group, KeyShare(group).key_exchange))
    assert not sh.is_hello_retry_request
    assert ext.decode_key_share_server(sh.extension(ET.key_share)).group == group


def invalid_shares(group: NamedGroup) -> dict[str, bytes]:
    good = KeyShare(group).key_exchange
    if group in (NamedGroup.x25519, NamedGroup.x448):
        # u = 0 is of small order: the shared secret would be all zeros (§7.4.2).
        return {"small-order": bytes(len(good)), "short": good[:-1], "long": good + b"\x09"}
    coordinate = (len(good) - 1) // 2
    off_curve = b"\x04" + (1).to_bytes(coordinate, "big") + (1).to_bytes(coordinate, "big")
    return {
        "not-on-curve": off_curve,
        "infinity": b"\x00",
        "compressed": bytes((2 + (good[-1] & 1),)) + good[1 : 1 + coordinate],
        "short": good[:-1],
        "long": good + b"\x09",
    }


@pytest.mark.parametrize(
    "group, key_exchange",
    [
        pytest.param(g, kx, id=f"{g.name}-{kind}")
        for g in ALL_GROUPS
        for kind, kx in invalid_shares(g).items()
    ],
)
def test_invalid_key_share_is_illegal_parameter(group, key_exchange):
    """§4.2.8.1-2: a share that is no valid public value of its group."""
    hello = group_hello(group, key_exchange)
    expect_violation(fresh_server(), hello_record(hello), A.illegal_parameter)


def test_compat_server_sends_change_cipher_spec_right_after_hello_retry_request_only():
    """Appendix D.4: the dummy CCS follows the first server handshake message, here the HRR."""
    server = fresh_server()
    server.receive_data(hello_record(first_hello_without_share()), NOW)
    out = split_records(server.data_to_send())
    assert [r[0] for r in out] == [HANDSHAKE, CHANGE_CIPHER_SPEC]
    assert decode_message(out[0][2]).is_hello_retry_request
    assert out[1][2] == b"\x01"
    second = second_hello(first_hello_without_share(), x25519_share())
    server.receive_data(hello_record(second, b"\x03\x03"), NOW)
    kinds = [r[0] for r in split_records(server.data_to_send())]
    assert kinds[0] == HANDSHAKE and CHANGE_CIPHER_SPEC not in kinds  # exactly once


def test_compat_client_and_server_complete_after_hello_retry_request():
    cc = client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1))
    client = TLSConnection.client(cc)
    server = fresh_server(groups=[NamedGroup.secp256r1])
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    out = server.data_to_send()
    assert [r[0] for r in split_records(out)] == [HANDSHAKE, CHANGE_CIPHER_SPEC]
    client.receive_data(out, NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete


def test_server_sends_no_change_cipher_spec_to_a_client_outside_compat_mode():
    """An empty legacy_session_id means the client did not ask for middlebox compatibility."""
    hello = dataclasses.replace(first_hello_without_share(), legacy_session_id=b"")
    server = fresh_server()
    server.receive_data(hello_record(hello), NOW)
    assert [r[0] for r in split_records(server.data_to_send())] == [HANDSHAKE]
    second = second_hello(hello, x25519_share())
    server.receive_data(hello_record(second, b"\x03\x03"), NOW)
    assert CHANGE_CIPHER_SPEC not in [r[0] for r in split_records(server.data_to_send())]


# Early data limits (RFC 8446 §4.2.10) ---------------------------------------------------------------
EARLY_LIMIT = 16384
MAX_RECORD = 1 << 14


@pytest.fixture(scope="module")
def early_ticket():
    """A server configuration allowing 16 KiB of 0-RTT, and a ticket it issued."""
    sc = server_config(max_early_data_size=EARLY_LIMIT)
    client = TLSConnection.client(client_config())
    server = TLSConnection.server(sc)
    client.start(NOW)
    pump(client, server)
    (ticket, *_) = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    assert ticket.max_early_data_size == EARLY_LIMIT
    return sc, ticket


def early_records(client: Puppet, total: int, chunk: int) -> list[bytes]:
    return [
        client.protect(Epoch.ZERO_RTT, APPLICATION_DATA, b"e" * min(chunk, total - i))
        for i in range(0, total, chunk)
    ]


def early_setup(early_ticket, *, accept: bool, **sc_changes):
    sc, ticket = early_ticket
    sc = dataclasses.replace(sc, anti_replay=StrikeRegister(capacity=1000 if accept else 0))
    sc = dataclasses.replace(sc, **sc_changes)
    cc = client_config(session=ticket, enable_early_data=True)
    client = Puppet.client(cc)
    server = TLSConnection.server(sc)
    return server, client


def early_bytes(server: TLSConnection) -> int:
    return sum(len(e.data) for e in drain(server) if isinstance(e, ApplicationData) and e.early)


def test_accepted_early_data_up_to_the_ticket_limit_is_delivered(early_ticket):
    server, client = early_setup(early_ticket, accept=True)
    (hello,) = client.flight()
    server.receive_data(
        client.records([hello]) + b"".join(early_records(client, EARLY_LIMIT, 4096)), NOW
    )
    assert server.engine.early_data_accepted
    assert early_bytes(server) == EARLY_LIMIT


@pytest.mark.parametrize("total", [EARLY_LIMIT + 1, 1 << 20], ids=["one-byte-over", "1MiB"])
def test_accepted_early_data_beyond_the_ticket_limit_is_unexpected_message(early_ticket, total):
    server, client = early_setup(early_ticket, accept=True)
    (hello,) = client.flight()
    server.receive_data(client.records([hello]), NOW)
    assert server.engine.early_data_accepted
    client.receive(server.data_to_send())  # the puppet reads the alert under handshake keys
    data = b"".join(early_records(client, total, MAX_RECORD))
    with pytest.raises(ProtocolViolation) as info:
        server.receive_data(data, NOW)
    assert info.value.alert == A.unexpected_message
    assert client.decrypt_alerts(server.data_to_send()) == [bytes((2, A.unexpected_message))]
    assert early_bytes(server) <= EARLY_LIMIT
    assert_dead(server)


def rejected_flight(client: Puppet, early_total: int, chunk: int, *, ccs_between: bool) -> bytes:
    (hello,) = client.flight()
    out = client.records([hello]) + record(CHANGE_CIPHER_SPEC, b"\x01")
    for i, rec in enumerate(early_records(client, early_total, chunk)):
        if ccs_between and i == 1:
            out += record(CHANGE_CIPHER_SPEC, b"\x01")  # §5: a CCS may come any time now
        out += rec
    return out


@pytest.mark.parametrize("chunk", [64, 1024, MAX_RECORD], ids=lambda c: f"records-of-{c}")
def test_rejected_early_data_is_skipped_up_to_the_limit_and_the_handshake_completes(
    early_ticket, chunk
):
    """§4.2.10: the limit counts early data, not the records' overhead."""
    server, client = early_setup(early_ticket, accept=False)
    server.receive_data(rejected_flight(client, EARLY_LIMIT, chunk, ccs_between=True), NOW)
    assert not server.engine.early_data_accepted
    client.receive(server.data_to_send())
    server.receive_data(client.records(client.flight()), NOW)
    assert server.handshake_complete and early_bytes(server) == 0


def test_rejected_early_data_beyond_the_limit_is_unexpected_message(early_ticket):
    server, client = early_setup(early_ticket, accept=False)
    (hello,) = client.flight()
    server.receive_data(client.records([hello]), NOW)
    client.receive(server.data_to_send())
    data = b"".join(early_records(client, EARLY_LIMIT + 1024, 1024))
    expect_violation(server, data, A.unexpected_message, peer=client)


def retry_early_setup(early_ticket):
    """A resuming client with early data whose key share the server does not take: HRR."""
    sc, ticket = early_ticket
    sc = dataclasses.replace(sc, groups=[NamedGroup.secp256r1])
    cc = client_config(
        session=ticket,
        enable_early_data=True,
        groups=(NamedGroup.x25519, NamedGroup.secp256r1),
    )
    return TLSConnection.server(sc), TLSConnection.client(cc)


@pytest.mark.parametrize("chunk", [512, MAX_RECORD], ids=lambda c: f"records-of-{c}")
def test_early_data_before_a_hello_retry_is_skipped_with_ccs_between_records(early_ticket, chunk):
    server, client = retry_early_setup(early_ticket)
    client.start(NOW)
    for _ in range(0, EARLY_LIMIT, chunk):
        assert client.send_early_data(b"r" * chunk) == chunk
    records = split_records(client.data_to_send())
    assert [r[0] for r in records[:3]] == [HANDSHAKE, CHANGE_CIPHER_SPEC, APPLICATION_DATA]
    data = b"".join(h + f for _, h, f in records[:3]) + record(CHANGE_CIPHER_SPEC, b"\x01")
    data += b"".join(h + f for _, h, f in records[3:])
    server.receive_data(data, NOW)
    answer = split_records(server.data_to_send())
    assert [r[0] for r in answer] == [HANDSHAKE, CHANGE_CIPHER_SPEC]  # HRR + dummy CCS
    client.receive_data(b"".join(h + f for _, h, f in answer), NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    assert not server.engine.early_data_accepted and early_bytes(server) == 0
    client.send(b"after the retry")
    server.receive_data(client.data_to_send(), NOW)
    assert drain(server) == [ApplicationData(b"after the retry")]


def test_early_data_before_a_hello_retry_beyond_the_limit_is_unexpected_message(early_ticket):
    server, client = retry_early_setup(early_ticket)
    client.start(NOW)
    hello = client.data_to_send()
    forged = record(APPLICATION_DATA, bytes(1024 + 17))  # undecryptable, like early data
    server.receive_data(hello + forged * (EARLY_LIMIT // 1024), NOW)
    assert server.engine.state == "WAIT_CH2"
    with pytest.raises(ProtocolViolation) as info:
        server.receive_data(forged, NOW)
    assert info.value.alert == A.unexpected_message


def test_undecryptable_record_after_the_second_client_hello_is_bad_record_mac(early_ticket):
    """After an HRR early data can only precede the second ClientHello."""
    server, client = retry_early_setup(early_ticket)
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)
    server.receive_data(client.data_to_send(), NOW)  # the second ClientHello
    assert server.engine.state == "WAIT_FINISHED"
    with pytest.raises(ProtocolViolation) as info:
        server.receive_data(record(APPLICATION_DATA, bytes(100)), NOW)
    assert info.value.alert == A.bad_record_mac


# Resumption after a HelloRetryRequest (RFC 8446 §4.1.4, §4.2.11) ---------------------------------------
AES128, AES256, CHACHA = 0x1301, 0x1302, 0x1303


def ticket_for(sc, suite: int):
    client = TLSConnection.client(client_config(cipher_suites=(suite,)))
    server = TLSConnection.server(sc)
    client.start(NOW)
    pump(client, server)
    (ticket, *_) = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    assert ticket.cipher_suite == suite
    return ticket


def resume_after_retry(sc, ticket):
    cc = client_config(
        session=ticket,
        cipher_suites=(AES128, AES256, CHACHA),
        groups=(NamedGroup.x25519, NamedGroup.secp256r1),
    )
    client = TLSConnection.client(cc)
    server = TLSConnection.server(dataclasses.replace(sc, groups=[NamedGroup.secp256r1]))
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    out = server.data_to_send()
    retry = decode_message(split_records(out)[0][2])
    assert retry.is_hello_retry_request and retry.cipher_suite == AES128
    client.receive_data(out, NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    return client, server


def test_resumption_after_a_retry_keeps_the_retry_suite_with_a_ticket_of_another_suite():
    """The ticket is for ChaCha20 (SHA-256); the HRR chose AES-128 (SHA-256): resume with it."""
    sc = server_config(cipher_suites=[AES128, CHACHA])
    client, server = resume_after_retry(sc, ticket_for(sc, CHACHA))
    assert server.engine.resumed and client.engine.resumed
    assert server.engine.cipher_suite == client.engine.cipher_suite == AES128


def test_resumption_after_a_retry_ignores_a_ticket_of_another_hash():
    """A SHA-384 ticket cannot follow an HRR that fixed SHA-256: a full handshake instead."""
    sc = server_config(cipher_suites=[AES128, AES256])
    client, server = resume_after_retry(sc, ticket_for(sc, AES256))
    assert not server.engine.resumed and not client.engine.resumed
    assert server.engine.cipher_suite == AES128


def test_second_client_hello_still_offering_a_psk_of_another_hash_gets_a_full_handshake():
    """A client that keeps offering its SHA-384 PSK after a SHA-256 HRR: the PSK is ignored
    (its binder, here zeros, is never checked) and the handshake goes on without it."""
    sc = server_config(cipher_suites=[AES128, AES256])
    ticket = ticket_for(sc, AES256)
    server = TLSConnection.server(sc)
    server.receive_data(hello_record(first_hello_without_share()), NOW)
    assert decode_message(split_records(server.data_to_send())[0][2]).cipher_suite == AES128
    identity = ext.PskIdentity(ticket.ticket, ticket.obfuscated_age(NOW))
    psk = ext.encode_pre_shared_key_client(ext.OfferedPsks((identity,), (bytes(48),)))
    second = second_hello(first_hello_without_share(), x25519_share())
    second = with_extension(second, Extension(ET.pre_shared_key, psk))
    server.receive_data(hello_record(second, b"\x03\x03"), NOW)
    assert not server.engine.resumed and server.engine.cipher_suite == AES128
    assert server.engine.state == "WAIT_FINISHED"
