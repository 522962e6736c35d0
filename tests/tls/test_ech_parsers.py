"""Every ECH parser on hostile input: a typed error carrying its TLS alert, never a
stray exception (draft-ietf-tls-esni §4, §5, §5.1, §7.1)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ech_helpers import PUBLIC, SECRET, client, pki, pump, server
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hpke import DEFAULT_SUITE, HpkePublicKey, setup_base_sender
from quicnet.tls import (
    AlertDescription,
    DecodeError,
    ProtocolViolation,
    TLSClient,
    TLSConnection,
    TLSServer,
)
from quicnet.tls.ech import (
    ECHConfig,
    OuterECH,
    decode_ech_client_hello,
    decode_ech_config_list,
    decode_retry_configs,
    dump_ech_key_file,
    encode_ech_config_list,
    generate_ech_key,
    load_ech_configs,
    load_ech_key_file,
    server_open,
)
from quicnet.tls.errors import ECHRejected
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.fixed import FixedInputs
from quicnet.tls.messages import (
    ClientHello,
    Extension,
    HandshakeType,
    decode_message,
    encode_message,
)

ALERTS = {AlertDescription.decode_error, AlertDescription.illegal_parameter}


def _config(data: st.DataObject) -> ECHConfig:
    return ECHConfig(
        data.draw(st.integers(0, 255)),
        0x20,
        data.draw(st.binary(min_size=1, max_size=40)),
        tuple(data.draw(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1))),
        data.draw(st.integers(0, 255)),
        data.draw(st.text("abcdefghijklmnopqrstuvwxyz.-", min_size=1, max_size=60)),
    )


@given(st.data())
def test_config_list_round_trip(data: st.DataObject) -> None:
    configs = [_config(data) for _ in range(data.draw(st.integers(1, 3)))]
    assert decode_ech_config_list(encode_ech_config_list(configs)) == configs


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_config_list_garbage(data: bytes) -> None:
    try:
        configs = decode_ech_config_list(data)
    except DecodeError as exc:
        assert exc.alert == AlertDescription.decode_error
    else:
        assert all(isinstance(c, ECHConfig) for c in configs)


@given(st.binary(max_size=60), st.integers(0, 200))
def test_config_list_mutated(noise: bytes, at: int) -> None:
    good = pki().configs
    bad = good[: at % len(good)] + noise + good[at % len(good) + len(noise) :]
    try:
        decode_ech_config_list(bad)
        decode_retry_configs(bad)
    except DecodeError as exc:
        assert exc.alert == AlertDescription.decode_error


def test_unknown_versions_and_mandatory_extensions_are_skipped() -> None:
    good = pki().ech.config
    other_version = b"\xfe\x0c\x00\x02ab"
    mandatory = replace(good, extensions=b"\x80\x01\x00\x00")
    data = encode_ech_config_list([mandatory])[2:] + other_version + good.encode()
    assert decode_ech_config_list(len(data).to_bytes(2, "big") + data) == [good]


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_ech_client_hello_extension_garbage(data: bytes) -> None:
    try:
        decode_ech_client_hello(data)
    except DecodeError as exc:
        assert exc.alert in ALERTS


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_ech_file_loaders_garbage(data: bytes) -> None:
    for load in (load_ech_configs, load_ech_key_file):
        try:
            loaded = load(data)
        except (DecodeError, CryptoError) as exc:
            assert str(exc)
        else:
            assert loaded  # a load that succeeds found at least one config


def test_key_file_round_trip() -> None:
    key = generate_ech_key(PUBLIC, config_id=3)
    (loaded,) = load_ech_key_file(dump_ech_key_file([key]))
    assert loaded.config == key.config
    assert loaded.private_key.to_bytes() == key.private_key.to_bytes()
    assert load_ech_configs(dump_ech_key_file([key])) == encode_ech_config_list([key.config])


def _outer_and_inner() -> tuple[ClientHello, ClientHello]:
    engine = TLSClient(client(ech_configs=pki().configs))
    engine.start(0.0)
    (_, wire), *_ = engine.data_to_send()
    outer = decode_message(wire)
    assert isinstance(outer, ClientHello)
    return outer, outer


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_server_open_with_garbage_extension(body: bytes) -> None:
    outer, _ = _outer_and_inner()
    items = tuple(
        Extension(ET.encrypted_client_hello, body) if e.type == ET.encrypted_client_hello else e
        for e in outer.extensions
    )
    hello = replace(outer, extensions=items)
    try:
        opened, _raw, state = server_open(hello, encode_message(hello), [pki().ech])
    except ProtocolViolation as exc:
        assert exc.alert in ALERTS
    else:
        assert state is not None and not state.accepted and opened is hello


def _sealed_outer(encoded_inner: bytes) -> ClientHello:
    """An outer hello whose ECH payload is ``encoded_inner`` properly sealed to the key."""
    outer, _ = _outer_and_inner()
    config = pki().ech.config
    enc, context = setup_base_sender(
        HpkePublicKey.from_bytes(DEFAULT_SUITE.kem, config.public_key),
        b"tls ech\x00" + config.encode(),
        DEFAULT_SUITE,
    )
    offer = OuterECH(1, 1, config.config_id, enc, bytes(len(encoded_inner) + 16))

    def with_offer(o: OuterECH) -> ClientHello:
        return replace(
            outer,
            extensions=tuple(
                Extension(ET.encrypted_client_hello, o.encode())
                if e.type == ET.encrypted_client_hello
                else e
                for e in outer.extensions
            ),
        )

    aad = encode_message(with_offer(offer))[4:]
    return with_offer(replace(offer, payload=context.seal(aad, encoded_inner)))


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=300))
def test_decrypted_garbage_inner_is_a_typed_error(encoded: bytes) -> None:
    hello = _sealed_outer(encoded)
    with pytest.raises(ProtocolViolation) as info:
        server_open(hello, encode_message(hello), [pki().ech])
    assert info.value.alert in ALERTS


def test_well_formed_inner_with_compression_is_expanded() -> None:
    """§5.1: ech_outer_extensions copies named extensions from the outer hello."""
    outer, _ = _outer_and_inner()
    inner = ClientHello(
        bytes(32),
        b"",
        outer.cipher_suites,
        (
            Extension(ET.server_name, b"\x00\x11\x00\x00\x0e" + SECRET.encode()),
            Extension(ET.ech_outer_extensions, b"\x04\x00\x0a\x00\x0d"),
            Extension(ET.encrypted_client_hello, b"\x01"),
        ),
    )
    hello = _sealed_outer(encode_message(inner)[4:] + bytes(7))
    opened, raw, state = server_open(hello, encode_message(hello), [pki().ech])
    assert state is not None and state.accepted
    assert [e.type for e in opened.extensions] == [
        ET.server_name,
        ET.supported_groups,
        ET.signature_algorithms,
        ET.encrypted_client_hello,
    ]
    assert opened.extension(ET.supported_groups) == outer.extension(ET.supported_groups)
    assert opened.legacy_session_id == hello.legacy_session_id
    assert raw == encode_message(opened)
    # Non-zero padding is refused.
    bad = _sealed_outer(encode_message(inner)[4:] + b"\x00\x01")
    with pytest.raises(ProtocolViolation) as info:
        server_open(bad, encode_message(bad), [pki().ech])
    assert info.value.alert == AlertDescription.illegal_parameter


def _server_rewriting_ee(body: bytes) -> FixedInputs:
    def rewrite(kind: HandshakeType, items: list[Extension]) -> list[Extension]:
        if kind != HandshakeType.encrypted_extensions:
            return items
        kept = [e for e in items if e.type != ET.encrypted_client_hello]
        return [*kept, Extension(ET.encrypted_client_hello, body)]

    return FixedInputs(extensions=rewrite)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=80))
def test_client_reading_garbage_retry_configs(body: bytes) -> None:
    """A rejected client parses retry_configs: garbage is decode_error, never a crash."""
    stale = encode_ech_config_list([pki().other_ech.config])
    c = TLSConnection.client(client(ech_configs=stale))
    s = TLSConnection(TLSServer(server(), fixed=_server_rewriting_ee(body)))
    c.start(0.0)
    with pytest.raises(ProtocolViolation) as info:
        pump(c, s)
    if isinstance(info.value, ECHRejected):
        assert info.value.retry_configs == body  # well formed: handed to the application
    else:
        assert info.value.alert == AlertDescription.decode_error


def test_retry_configs_after_acceptance_are_refused() -> None:
    """§6.1.4: a server that accepted ECH must not send retry_configs."""
    c = TLSConnection.client(client(ech_configs=pki().configs))
    s = TLSConnection(TLSServer(server(), fixed=_server_rewriting_ee(pki().configs)))
    c.start(0.0)
    with pytest.raises(ProtocolViolation) as info:
        pump(c, s)
    assert info.value.alert == AlertDescription.unsupported_extension
