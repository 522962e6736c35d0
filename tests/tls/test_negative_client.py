"""Negative tests of the TLS 1.3 *client*: a server that breaks RFC 8446.

The server is a genuine quicnet :class:`TLSServer` engine behind the test's
own record layer (:class:`Puppet`), so its messages can be dropped,
reordered, or replaced before they are protected; ServerHello variants are
built from the genuine one with one field changed. Each test checks the
alert RFC 8446 names, that it is the only thing sent, that the connection is
closed and ignores later bytes, and that no application data came out.
"""

from __future__ import annotations

import dataclasses
import datetime

import pytest
from test_negative_helpers import (
    APPLICATION_DATA,
    HANDSHAKE,
    NOW,
    Msg,
    Puppet,
    assert_dead,
    client_config,
    connected_pair,
    drain,
    expect_violation,
    identity,
    record,
    rsa_identity,
    server_config,
    start_client,
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
    ClientConfig,
    ConfigurationError,
    Epoch,
    HandshakeComplete,
    TLSClient,
    TLSConnection,
    UsageError,
)
from quicnet.tls import extensions as ext
from quicnet.tls.auth import certificate_verify_content
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    Extension,
    Finished,
    NewSessionTicket,
    ServerHello,
    encode_message,
)

A = AlertDescription


def setup(cc=None, sc=None):
    """A started client, a puppet server that read its ClientHello, and the server's flight.

    The flight is [ServerHello, EncryptedExtensions, Certificate,
    CertificateVerify, Finished] (plus CertificateRequest with client auth).
    """
    client, _, ch_record = start_client(cc)
    server = Puppet.server(sc)
    server.receive(ch_record)
    return client, server, server.flight()


def sh_record(hello: ServerHello) -> bytes:
    return record(HANDSHAKE, encode_message(hello))


def msg(epoch: Epoch, message) -> Msg:
    return Msg(epoch, encode_message(message))


def share_ext(group: int, key_exchange: bytes | None = None) -> Extension:
    data = key_exchange if key_exchange is not None else KeyShare(group).key_exchange
    return Extension(ET.key_share, ext.encode_key_share_server(ext.KeyShareEntry(group, data)))


def flip(data: bytes, index: int = -1) -> bytes:
    b = bytearray(data)
    b[index] ^= 0x01
    return bytes(b)


def transcript_hash(hello: ClientHello, flight: list[Msg], upto: int) -> bytes:
    return digest("sha256", encode_message(hello) + b"".join(m.raw for m in flight[:upto]))


# Control ---------------------------------------------------------------------------------------
def test_control_genuine_flight_completes_the_handshake():
    client, server, flight = setup()
    client.receive_data(server.records(flight), NOW)
    assert client.handshake_complete
    assert any(isinstance(e, HandshakeComplete) for e in drain(client))
    server.receive(client.data_to_send())
    assert server.engine.handshake_complete


# Finished and CertificateVerify ------------------------------------------------------------------
def test_wrong_server_finished_is_decrypt_error():
    client, server, flight = setup()
    flight[-1] = msg(Epoch.HANDSHAKE, Finished(flip(flight[-1].message.verify_data)))
    expect_violation(client, server.records(flight), A.decrypt_error, peer=server)
    assert not client.handshake_complete


@pytest.mark.parametrize("change", ["truncated", "padded"])
def test_server_finished_of_the_wrong_length_is_decode_error(change):
    client, server, flight = setup()
    verify_data = flight[-1].message.verify_data
    verify_data = verify_data[:-1] if change == "truncated" else verify_data + b"\x00"
    flight[-1] = msg(Epoch.HANDSHAKE, Finished(verify_data))
    expect_violation(client, server.records(flight), A.decode_error, peer=server)


def test_bad_certificate_verify_signature_is_decrypt_error():
    client, server, flight = setup()
    cv = flight[3].message
    assert isinstance(cv, CertificateVerify)
    flight[3] = msg(Epoch.HANDSHAKE, dataclasses.replace(cv, signature=flip(cv.signature, 20)))
    expect_violation(client, server.records(flight), A.decrypt_error, peer=server)


@pytest.mark.parametrize("side", ["control-server", "client"])
def test_certificate_verify_over_the_client_context_is_decrypt_error(side):
    """A valid signature, but on the content of a client CertificateVerify (§4.4.3).

    The control signs the server content the same way: accepted.
    """
    client, hello, ch_record = start_client()
    server = Puppet.server()
    server.receive(ch_record)
    flight = server.flight()
    content = certificate_verify_content(
        transcript_hash(hello, flight, 3), server=side == "control-server"
    )
    scheme = SignatureScheme.ecdsa_secp256r1_sha256
    flight[3] = msg(
        Epoch.HANDSHAKE, CertificateVerify(scheme, identity().key.sign(scheme, content))
    )
    if side == "control-server":
        client.receive_data(server.records(flight[:4]), NOW)
        assert client.engine.state == "WAIT_FINISHED"  # the signature was accepted
        return
    expect_violation(client, server.records(flight), A.decrypt_error, peer=server)


@pytest.mark.parametrize(
    "scheme",
    [SignatureScheme.ed25519, SignatureScheme.ecdsa_secp384r1_sha384, 0x0A0A],
    ids=["ed25519", "ecdsa_secp384r1", "grease-0a0a"],
)
def test_certificate_verify_with_a_scheme_not_offered_is_illegal_parameter(scheme):
    cc = client_config(
        signature_algorithms=(
            SignatureScheme.ecdsa_secp256r1_sha256,
            SignatureScheme.rsa_pss_rsae_sha256,
        )
    )
    client, server, flight = setup(cc)
    cv = flight[3].message
    flight[3] = msg(Epoch.HANDSHAKE, dataclasses.replace(cv, algorithm=scheme))
    expect_violation(client, server.records(flight), A.illegal_parameter, peer=server)


@pytest.mark.parametrize(
    "scheme",
    [SignatureScheme.rsa_pss_rsae_sha384, SignatureScheme.rsa_pkcs1_sha256],
    ids=["control-pss", "pkcs1"],
)
def test_rsa_pkcs1_sha256_in_certificate_verify_is_illegal_parameter(scheme):
    """PKCS#1 v1.5 is offered for certificates only; a *valid* such signature is refused.

    The control re-signs the same content with another RSA-PSS scheme: accepted.
    """
    ident = rsa_identity()
    client, hello, ch_record = start_client(client_config(ident.root))
    server = Puppet.server(server_config(ident))
    server.receive(ch_record)
    flight = server.flight()
    assert flight[3].message.algorithm == SignatureScheme.rsa_pss_rsae_sha256
    content = certificate_verify_content(transcript_hash(hello, flight, 3), server=True)
    flight[3] = msg(Epoch.HANDSHAKE, CertificateVerify(scheme, ident.key.sign(scheme, content)))
    if scheme == SignatureScheme.rsa_pss_rsae_sha384:
        client.receive_data(server.records(flight[:4]), NOW)
        assert client.engine.state == "WAIT_FINISHED"  # the signature was accepted
        return
    expect_violation(client, server.records(flight), A.illegal_parameter, peer=server)


# Message order --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "order",
    [
        ["SH", "EE", "Fin"],
        ["SH", "EE", "CV"],
        ["SH", "Cert"],
        ["SH", "EE", "Cert", "Fin"],
        ["SH", "EE", "Cert", "Cert"],
        ["SH", "EE", "EE"],
        ["SH", "Fin"],
    ],
    ids=lambda order: "-".join(order),
)
def test_out_of_order_server_messages_are_unexpected_message(order):
    client, server, flight = setup()
    by_name = dict(zip(["SH", "EE", "Cert", "CV", "Fin"], flight, strict=True))
    expect_violation(
        client,
        server.records([by_name[n] for n in order]),
        A.unexpected_message,
        peer=server,
    )


def test_server_hello_twice_in_the_clear_is_unexpected_message():
    client, server, flight = setup()
    sh = server.records(flight[:1])
    client.receive_data(sh, NOW)
    expect_violation(client, sh, A.unexpected_message, peer=server)


def test_server_hello_twice_in_one_record_is_unexpected_message():
    client, server, flight = setup()
    both = record(HANDSHAKE, flight[0].raw + flight[0].raw)
    expect_violation(client, both, A.unexpected_message, peer=server)


def test_server_hello_again_under_handshake_keys_is_unexpected_message():
    client, server, flight = setup()
    again = Msg(Epoch.HANDSHAKE, flight[0].raw)
    expect_violation(client, server.records([flight[0], again]), A.unexpected_message, peer=server)


def test_encrypted_extensions_in_the_clear_after_server_hello_is_unexpected_message():
    client, server, flight = setup()
    data = server.records(flight[:1]) + record(HANDSHAKE, flight[1].raw)
    expect_violation(client, data, A.unexpected_message, peer=server)


def test_encrypted_extensions_in_the_same_record_as_server_hello_is_unexpected_message():
    """§5.1: ServerHello must end its record; EE there arrives unprotected."""
    client, server, flight = setup()
    expect_violation(
        client, record(HANDSHAKE, flight[0].raw + flight[1].raw), A.unexpected_message, peer=server
    )


def test_handshake_message_spanning_the_key_change_is_unexpected_message():
    """The first 3 bytes of EncryptedExtensions ride in ServerHello's plaintext record."""
    client, server, flight = setup()
    head, tail = flight[1].raw[:3], flight[1].raw[3:]
    data = record(HANDSHAKE, flight[0].raw + head) + server.protect(
        Epoch.HANDSHAKE, HANDSHAKE, tail
    )
    expect_violation(client, data, A.unexpected_message, peer=server)


def test_encrypted_extensions_before_server_hello_is_unexpected_message():
    client, _, flight = setup()
    expect_violation(client, record(HANDSHAKE, flight[1].raw), A.unexpected_message)


def test_client_hello_sent_to_a_client_is_unexpected_message():
    client, hello, _ = start_client()
    expect_violation(client, record(HANDSHAKE, encode_message(hello)), A.unexpected_message)


def test_application_data_before_the_handshake_is_unexpected_message():
    client, _, _ = setup()
    expect_violation(client, record(APPLICATION_DATA, bytes(range(40))), A.unexpected_message)


def test_application_data_under_handshake_keys_is_unexpected_message():
    client, server, flight = setup()
    data = (
        server.records(flight[:2])
        + server.protect(Epoch.HANDSHAKE, APPLICATION_DATA, b"GET / HTTP/1.0\r\n\r\n")
        + server.records(flight[2:])
    )
    expect_violation(client, data, A.unexpected_message, peer=server)
    assert not client.handshake_complete


def test_new_session_ticket_during_the_handshake_is_unexpected_message():
    client, server, flight = setup()
    ticket = msg(Epoch.HANDSHAKE, NewSessionTicket(3600, 1, b"n", b"ticket"))
    expect_violation(
        client, server.records([*flight[:2], ticket]), A.unexpected_message, peer=server
    )


def test_unknown_handshake_type_is_unexpected_message():
    client, server, flight = setup()
    unknown = Msg(Epoch.HANDSHAKE, bytes((99, 0, 0, 2)) + b"\x00\x00")
    expect_violation(
        client, server.records([*flight[:2], unknown]), A.unexpected_message, peer=server
    )


# HelloRetryRequest -----------------------------------------------------------------------------
def hrr_setup():
    """A client with an x25519 share that also supports P-256; the server wants P-256."""
    cc = client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1))
    sc = server_config(groups=(NamedGroup.secp256r1,))
    client, server, flight = setup(cc, sc)
    assert len(flight) == 1 and flight[0].message.is_hello_retry_request
    return client, server, flight[0]


def hrr(session_id: bytes, *extensions: Extension, suite: int = 0x1301) -> bytes:
    hello = ServerHello(
        HELLO_RETRY_REQUEST_RANDOM,
        session_id,
        suite,
        (Extension(ET.supported_versions, ext.encode_supported_versions_server()), *extensions),
    )
    return sh_record(hello)


def test_control_hello_retry_request_then_server_hello_completes():
    client, server, retry = hrr_setup()
    client.receive_data(server.records([retry]), NOW)
    server.receive(client.data_to_send())
    flight = server.flight()
    client.receive_data(server.records(flight), NOW)
    assert client.handshake_complete
    assert client.engine.group == NamedGroup.secp256r1


def test_second_hello_retry_request_is_unexpected_message():
    client, server, retry = hrr_setup()
    client.receive_data(server.records([retry]), NOW)
    assert client.data_to_send()  # the second ClientHello
    expect_violation(client, server.records([retry]), A.unexpected_message)


def test_hello_retry_request_that_changes_nothing_is_illegal_parameter():
    client, hello, _ = start_client()
    expect_violation(client, hrr(hello.legacy_session_id), A.illegal_parameter)


def test_hello_retry_request_for_the_group_already_sent_is_illegal_parameter():
    client, hello, _ = start_client(client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1)))
    again = Extension(ET.key_share, ext.encode_key_share_hrr(NamedGroup.x25519))
    expect_violation(client, hrr(hello.legacy_session_id, again), A.illegal_parameter)


def test_hello_retry_request_for_a_group_not_offered_is_illegal_parameter():
    client, hello, _ = start_client(client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1)))
    x448 = Extension(ET.key_share, ext.encode_key_share_hrr(NamedGroup.x448))
    expect_violation(client, hrr(hello.legacy_session_id, x448), A.illegal_parameter)


def test_hello_retry_request_with_a_suite_not_offered_is_illegal_parameter():
    client, hello, _ = start_client(
        client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1), cipher_suites=(0x1301,))
    )
    p256 = Extension(ET.key_share, ext.encode_key_share_hrr(NamedGroup.secp256r1))
    expect_violation(client, hrr(hello.legacy_session_id, p256, suite=0x1302), A.illegal_parameter)


def test_hello_retry_request_with_an_unsolicited_extension_is_unsupported_extension():
    client, hello, _ = start_client(client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1)))
    p256 = Extension(ET.key_share, ext.encode_key_share_hrr(NamedGroup.secp256r1))
    expect_violation(
        client,
        hrr(hello.legacy_session_id, p256, Extension(0xFAFA, b"")),
        A.unsupported_extension,
    )


def test_hello_retry_request_with_an_offered_but_forbidden_extension_is_illegal_parameter():
    client, hello, _ = start_client(client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1)))
    p256 = Extension(ET.key_share, ext.encode_key_share_hrr(NamedGroup.secp256r1))
    expect_violation(
        client,
        hrr(hello.legacy_session_id, p256, Extension(ET.server_name, b"")),
        A.illegal_parameter,
    )


def test_server_hello_after_hrr_with_another_suite_is_illegal_parameter():
    client, server, retry = hrr_setup()
    client.receive_data(server.records([retry]), NOW)
    server.receive(client.data_to_send())
    sh = server.flight()[0].message
    assert sh.cipher_suite == 0x1301
    expect_violation(
        client, sh_record(dataclasses.replace(sh, cipher_suite=0x1302)), A.illegal_parameter
    )


def test_server_hello_after_hrr_with_a_share_for_the_old_group_is_illegal_parameter():
    client, server, retry = hrr_setup()
    client.receive_data(server.records([retry]), NOW)
    server.receive(client.data_to_send())
    sh = server.flight()[0].message
    bad = with_extension(sh, share_ext(NamedGroup.x25519))
    expect_violation(client, sh_record(bad), A.illegal_parameter)


# ServerHello ---------------------------------------------------------------------------------
def sh_setup(cc=None):
    client, _, flight = setup(cc)
    sh = flight[0].message
    assert isinstance(sh, ServerHello) and not sh.is_hello_retry_request
    return client, sh


def test_server_hello_with_a_cipher_suite_not_offered_is_illegal_parameter():
    client, sh = sh_setup(client_config(cipher_suites=(0x1301,)))
    expect_violation(
        client, sh_record(dataclasses.replace(sh, cipher_suite=0x1302)), A.illegal_parameter
    )


def test_server_hello_with_a_tls12_cipher_suite_is_illegal_parameter():
    client, sh = sh_setup()
    expect_violation(
        client, sh_record(dataclasses.replace(sh, cipher_suite=0xC02F)), A.illegal_parameter
    )


@pytest.mark.parametrize(
    "group", [NamedGroup.secp256r1, NamedGroup.x448], ids=["offered-no-share", "not-offered"]
)
def test_server_hello_with_a_key_share_for_a_group_not_sent_is_illegal_parameter(group):
    client, sh = sh_setup(client_config(groups=(NamedGroup.x25519, NamedGroup.secp256r1)))
    expect_violation(client, sh_record(with_extension(sh, share_ext(group))), A.illegal_parameter)


def test_server_hello_with_an_invalid_x25519_share_is_illegal_parameter():
    client, sh = sh_setup()
    zero = share_ext(NamedGroup.x25519, bytes(32))  # small order: all-zero shared secret
    expect_violation(client, sh_record(with_extension(sh, zero)), A.illegal_parameter)


def test_server_hello_without_key_share_is_missing_extension():
    client, sh = sh_setup()
    expect_violation(client, sh_record(without_extension(sh, ET.key_share)), A.missing_extension)


def test_server_hello_session_id_echo_mismatch_is_illegal_parameter():
    client, sh = sh_setup()
    wrong = dataclasses.replace(sh, legacy_session_id_echo=flip(sh.legacy_session_id_echo))
    expect_violation(client, sh_record(wrong), A.illegal_parameter)


def test_server_hello_echoing_a_session_id_never_sent_is_illegal_parameter():
    client, sh = sh_setup(client_config(middlebox_compatibility=False))
    assert sh.legacy_session_id_echo == b""
    wrong = dataclasses.replace(sh, legacy_session_id_echo=bytes(32))
    expect_violation(client, sh_record(wrong), A.illegal_parameter)


@pytest.mark.parametrize(
    "ext_type", [0xFAFA, ET.cookie, ET.early_data], ids=["unknown-fafa", "cookie", "early_data"]
)
def test_server_hello_with_an_extension_not_offered_is_unsupported_extension(ext_type):
    client, sh = sh_setup()
    data = b"\x00\x02ab" if ext_type == ET.cookie else b""
    bad = with_extension(sh, Extension(ext_type, data))
    expect_violation(client, sh_record(bad), A.unsupported_extension)


def test_server_hello_with_an_unsolicited_pre_shared_key_is_unsupported_extension():
    client, sh = sh_setup()
    psk = Extension(ET.pre_shared_key, ext.encode_pre_shared_key_server(0))
    expect_violation(client, sh_record(with_extension(sh, psk)), A.unsupported_extension)


@pytest.mark.parametrize(
    "extension",
    [
        Extension(ET.server_name, b""),
        Extension(ET.application_layer_protocol_negotiation, ext.encode_alpn(["h2"])),
        Extension(ET.psk_key_exchange_modes, ext.encode_psk_modes()),
    ],
    ids=["server_name", "alpn", "psk_key_exchange_modes"],
)
def test_server_hello_with_an_offered_extension_not_allowed_there_is_illegal_parameter(extension):
    client, sh = sh_setup(client_config(alpn_protocols=["h2"]))
    expect_violation(client, sh_record(with_extension(sh, extension)), A.illegal_parameter)


def test_server_hello_with_duplicate_extensions_is_illegal_parameter():
    client, sh = sh_setup()
    share = next(e for e in sh.extensions if e.type == ET.key_share)
    twice = with_extension(sh, share, replace=False)
    assert [e.type for e in twice.extensions].count(ET.key_share) == 2
    expect_violation(client, sh_record(twice), A.illegal_parameter)


def tls12_server_hello(random: bytes, session_id: bytes) -> ServerHello:
    """What a TLS 1.2 server answers: no supported_versions, a TLS 1.2 suite."""
    return ServerHello(
        random,
        session_id,
        0xC02B,
        (Extension(ET.renegotiation_info, b"\x00"), Extension(0x000B, b"\x01\x00")),
    )


@pytest.mark.parametrize("sentinel", [b"DOWNGRD\x01", b"DOWNGRD\x00"], ids=["tls12", "tls11"])
def test_downgrade_sentinel_is_illegal_parameter(sentinel):
    client, hello, _ = start_client()
    random = bytes(range(24)) + sentinel
    expect_violation(
        client, sh_record(tls12_server_hello(random, hello.legacy_session_id)), A.illegal_parameter
    )


def test_downgrade_sentinel_with_tls13_server_hello_is_illegal_parameter():
    client, sh = sh_setup()
    downgraded = without_extension(
        dataclasses.replace(sh, random=sh.random[:24] + b"DOWNGRD\x01"), ET.supported_versions
    )
    expect_violation(client, sh_record(downgraded), A.illegal_parameter)


def test_server_hello_without_supported_versions_is_protocol_version():
    client, hello, _ = start_client()
    expect_violation(
        client,
        sh_record(tls12_server_hello(bytes(range(32)), hello.legacy_session_id)),
        A.protocol_version,
    )


def test_server_hello_selecting_tls12_in_supported_versions_is_illegal_parameter():
    client, sh = sh_setup()
    tls12 = Extension(ET.supported_versions, ext.encode_supported_versions_server(0x0303))
    expect_violation(client, sh_record(with_extension(sh, tls12)), A.illegal_parameter)


def test_server_hello_with_a_compression_method_is_illegal_parameter():
    client, sh = sh_setup()
    expect_violation(
        client,
        sh_record(dataclasses.replace(sh, legacy_compression_method=1)),
        A.illegal_parameter,
    )


def test_truncated_server_hello_is_decode_error():
    client, sh = sh_setup()
    raw = encode_message(sh)
    body = raw[4:-3]
    cut = bytes((2,)) + len(body).to_bytes(3, "big") + body
    expect_violation(client, record(HANDSHAKE, cut), A.decode_error)


# EncryptedExtensions, Certificate, CertificateRequest ---------------------------------------------
def replace_and_expect(client, server, flight, index, message, alert):
    flight[index] = msg(Epoch.HANDSHAKE, message)
    expect_violation(client, server.records(flight), alert, peer=server)


def test_encrypted_extensions_with_an_unsolicited_extension_is_unsupported_extension():
    client, server, flight = setup(client_config(alpn_protocols=()))
    alpn = Extension(ET.application_layer_protocol_negotiation, ext.encode_alpn(["h2"]))
    ee = flight[1].message
    replace_and_expect(client, server, flight, 1, with_extension(ee, alpn), A.unsupported_extension)


@pytest.mark.parametrize(
    "extension",
    [
        Extension(ET.supported_versions, ext.encode_supported_versions_server()),
        Extension(ET.key_share, b""),
        Extension(ET.signature_algorithms, ext.encode_u16_list([0x0403])),
    ],
    ids=["supported_versions", "key_share", "signature_algorithms"],
)
def test_encrypted_extensions_with_a_forbidden_extension_is_illegal_parameter(extension):
    client, server, flight = setup()
    replace_and_expect(
        client, server, flight, 1, with_extension(flight[1].message, extension), A.illegal_parameter
    )


def test_encrypted_extensions_choosing_an_alpn_not_offered_is_illegal_parameter():
    client, server, flight = setup(client_config(alpn_protocols=["h2"]))
    alpn = Extension(ET.application_layer_protocol_negotiation, ext.encode_alpn(["spdy/3"]))
    replace_and_expect(
        client, server, flight, 1, with_extension(flight[1].message, alpn), A.illegal_parameter
    )


def test_empty_server_certificate_is_decode_error():
    client, server, flight = setup()
    replace_and_expect(client, server, flight, 2, Certificate(b"", ()), A.decode_error)


def test_server_certificate_with_a_request_context_is_illegal_parameter():
    client, server, flight = setup()
    cert = flight[2].message
    replace_and_expect(
        client,
        server,
        flight,
        2,
        dataclasses.replace(cert, certificate_request_context=b"\x01"),
        A.illegal_parameter,
    )


def test_unparsable_server_certificate_is_bad_certificate():
    client, server, flight = setup()
    junk = Certificate(b"", (CertificateEntry(b"\x30\x03\x02\x01\x00"),))
    replace_and_expect(client, server, flight, 2, junk, A.bad_certificate)


def test_server_certificate_with_an_x400_address_san_is_bad_certificate():
    client, server, flight = setup()
    cert = Certificate(b"", (CertificateEntry(x400_san_certificate()),))
    replace_and_expect(client, server, flight, 2, cert, A.bad_certificate)


def test_certificate_request_with_a_context_is_illegal_parameter():
    sigs = Extension(ET.signature_algorithms, ext.encode_u16_list([0x0403]))
    client, server, flight = setup()
    flight.insert(2, msg(Epoch.HANDSHAKE, CertificateRequest(b"\x07", (sigs,))))
    expect_violation(client, server.records(flight), A.illegal_parameter, peer=server)


def test_certificate_request_without_signature_algorithms_is_missing_extension():
    client, server, flight = setup()
    other = Extension(0xFAFA, b"")  # the block may not be empty (extensions<2..2^16-1>)
    flight.insert(2, msg(Epoch.HANDSHAKE, CertificateRequest(b"", (other,))))
    expect_violation(client, server.records(flight), A.missing_extension, peer=server)


# Server certificates a genuine server presents -----------------------------------------------------
def other_ca():
    """A root that issued nothing the server has (a name of its own)."""
    return make_ca(generate_private_key("EC"), "/CN=negative tests unrelated CA", days=30)


def genuine_handshake_failure(cc, sc, alert):
    """The client must refuse; the genuine server must then see AlertReceived."""
    client = TLSConnection.client(cc)
    server = TLSConnection.server(sc)
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    flight = server.data_to_send()
    with pytest.raises(Exception) as info:
        client.receive_data(flight, NOW)
    assert getattr(info.value, "alert", None) == alert, repr(info.value)
    out = client.data_to_send()
    assert client.closed and not client.handshake_complete
    assert_dead(client)
    with pytest.raises(AlertReceived, match=alert.name):
        server.receive_data(out, NOW)
    assert server.closed and server.data_to_send() == b""
    assert not any(isinstance(e, ApplicationData) for e in drain(server))


def test_expired_server_certificate_is_certificate_expired():
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    ident = identity("expired", days=2, not_before=past)
    genuine_handshake_failure(
        client_config(ident.root), server_config(ident), A.certificate_expired
    )


def test_not_yet_valid_server_certificate_is_certificate_expired():
    future = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=10)
    ident = identity("future", days=30, not_before=future)
    genuine_handshake_failure(
        client_config(ident.root), server_config(ident), A.certificate_expired
    )


def test_wrong_name_server_certificate_is_bad_certificate():
    genuine_handshake_failure(
        client_config(server_name="www.example.com"), server_config(), A.bad_certificate
    )


def test_server_certificate_from_an_unknown_ca_is_unknown_ca():
    genuine_handshake_failure(client_config(other_ca()), server_config(), A.unknown_ca)


def test_server_certificate_from_another_dev_ca_of_the_same_name_is_unknown_ca():
    genuine_handshake_failure(client_config(identity("other").root), server_config(), A.unknown_ca)


def test_server_certificate_matching_no_pin_is_bad_certificate():
    cc = client_config(server_name="localhost")
    cc.trust_roots = ()
    cc.pinned_fingerprints = [bytes(32)]
    genuine_handshake_failure(cc, server_config(), A.bad_certificate)


# The server's name must be checked (RFC 6125; RFC 8446 §4.4.2.2) -----------------------------------
def elsewhere_identity():
    """A certificate for www.elsewhere.example, issued by the root the client trusts."""
    return identity("elsewhere", names=["www.elsewhere.example"])


def test_client_with_roots_but_no_server_name_is_a_configuration_error():
    root = identity().root
    for name in (None, ""):
        with pytest.raises(ConfigurationError, match="server_name"):
            TLSConnection.client(ClientConfig(server_name=name, trust_roots=[root]))


def test_configuration_error_is_a_usage_error_and_sends_nothing():
    with pytest.raises(UsageError):
        TLSClient(ClientConfig(trust_roots=[identity().root]))


def test_without_name_checks_disabled_explicitly_any_trusted_certificate_is_accepted():
    """verify_server_name=False is the documented opt-out: the chain is still checked."""
    ident = elsewhere_identity()
    cc = ClientConfig(trust_roots=[ident.root], verify_server_name=False)
    client, _ = connected_pair(cc, server_config(ident))
    assert client.handshake_complete
    genuine_handshake_failure(
        ClientConfig(trust_roots=[other_ca()], verify_server_name=False),
        server_config(ident),
        A.unknown_ca,
    )


def test_a_certificate_for_another_name_from_a_trusted_root_is_bad_certificate():
    ident = elsewhere_identity()
    genuine_handshake_failure(
        client_config(ident.root, server_name="localhost"), server_config(ident), A.bad_certificate
    )


def test_pinned_client_needs_no_server_name():
    ident = elsewhere_identity()
    cc = ClientConfig(pinned_fingerprints=[ident.chain[0].fingerprint()])
    client, _ = connected_pair(cc, server_config(ident))
    assert client.handshake_complete


def test_pins_and_roots_without_a_name_accept_only_the_pinned_certificate():
    """With no name to check, the roots cannot vouch for an unpinned certificate."""
    ident = elsewhere_identity()
    cc = ClientConfig(trust_roots=[ident.root], pinned_fingerprints=[bytes(32)])
    genuine_handshake_failure(cc, server_config(ident), A.bad_certificate)


@pytest.mark.parametrize(
    "name, accepted",
    [("127.0.0.1", True), ("::1", True), ("127.0.0.2", False), ("[::1]", True)],
)
def test_ip_literal_server_name_is_checked_against_ip_addresses(name, accepted):
    cc = client_config(server_name=name)
    client, hello, _ = start_client(cc)
    assert hello.extension(ET.server_name) is None  # RFC 6066 §3: no IP literals in SNI
    if accepted:
        client, _ = connected_pair(cc, server_config())
        assert client.handshake_complete
    else:
        genuine_handshake_failure(cc, server_config(), A.bad_certificate)


# After the handshake ------------------------------------------------------------------------------
def connected_via_puppet(cc=None):
    client, server, flight = setup(cc)
    client.receive_data(server.records(flight), NOW)
    server.receive(client.data_to_send())
    assert client.handshake_complete and server.engine.handshake_complete
    drain(client)
    return client, server


def test_post_handshake_certificate_request_not_offered_is_unexpected_message():
    client, server = connected_via_puppet()
    sigs = Extension(ET.signature_algorithms, ext.encode_u16_list([0x0403]))
    request = encode_message(CertificateRequest(b"\x01", (sigs,)))
    expect_violation(
        client, server.protect(Epoch.ONE_RTT, HANDSHAKE, request), A.unexpected_message, peer=server
    )


def test_post_handshake_unknown_handshake_type_is_unexpected_message():
    client, server = connected_via_puppet()
    expect_violation(
        client,
        server.protect(Epoch.ONE_RTT, HANDSHAKE, b"\x63\x00\x00\x00"),
        A.unexpected_message,
        peer=server,
    )


def test_post_handshake_server_hello_is_unexpected_message():
    client, server = connected_via_puppet()
    sh = server.engine.transcript._messages[1]
    assert sh[0] == 2
    expect_violation(
        client, server.protect(Epoch.ONE_RTT, HANDSHAKE, sh), A.unexpected_message, peer=server
    )


def test_new_session_ticket_over_seven_days_is_illegal_parameter():
    client, server = connected_via_puppet()
    ticket = encode_message(NewSessionTicket(7 * 86400 + 1, 5, b"\x00", b"ticket"))
    expect_violation(
        client, server.protect(Epoch.ONE_RTT, HANDSHAKE, ticket), A.illegal_parameter, peer=server
    )


def test_application_data_then_broken_record_delivers_only_what_came_before():
    client, server = connected_via_puppet()
    good = server.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"before")
    client.receive_data(good, NOW)
    assert drain(client) == [ApplicationData(b"before")]
    bad = flip(server.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"forged"), 10)
    after = server.protect(Epoch.ONE_RTT, APPLICATION_DATA, b"after")
    expect_violation(client, bad + after, A.bad_record_mac, peer=server)


# Groups: P-521 and X448 like the others (§4.2.7, §4.2.8) ----------------------------------------------
@pytest.mark.parametrize("group", [NamedGroup.secp521r1, NamedGroup.x448], ids=lambda g: g.name)
def test_default_client_offers_p521_and_x448_and_follows_a_retry_to_them(group):
    client, hello, ch = start_client()
    groups = ext.decode_u16_list(hello.extension(ET.supported_groups), "supported_groups")
    assert group in groups
    server = Puppet.server(server_config(groups=(group,)))
    server.receive(ch)
    (retry,) = server.flight()
    assert retry.message.is_hello_retry_request
    client.receive_data(server.records([retry]), NOW)
    server.receive(client.data_to_send())
    client.receive_data(server.records(server.flight()), NOW)
    assert client.handshake_complete and client.engine.group == group


def invalid_server_shares(group: NamedGroup) -> dict[str, bytes]:
    good = KeyShare(group).key_exchange
    if group in (NamedGroup.x25519, NamedGroup.x448):
        return {"small-order": bytes(len(good)), "short": good[:-1], "long": good + b"\x09"}
    coordinate = (len(good) - 1) // 2
    return {
        "not-on-curve": b"\x04" + (1).to_bytes(coordinate, "big") * 2,
        "infinity": b"\x00",
        "short": good[:-1],
        "long": good + b"\x09",
    }


@pytest.mark.parametrize(
    "group, key_exchange",
    [
        pytest.param(g, kx, id=f"{g.name}-{kind}")
        for g in (NamedGroup.x448, NamedGroup.secp256r1, NamedGroup.secp521r1)
        for kind, kx in invalid_server_shares(g).items()
    ],
)
def test_server_hello_with_an_invalid_share_is_illegal_parameter(group, key_exchange):
    client, sh = sh_setup(client_config(groups=(group,), key_share_groups=(group,)))
    bad = with_extension(sh, share_ext(group, key_exchange))
    expect_violation(client, sh_record(bad), A.illegal_parameter)
