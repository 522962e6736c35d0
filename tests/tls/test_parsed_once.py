"""What every handshake repeats is parsed once per exact bytes (bounded).

A server sends the same certificate chain on every handshake and a client offers
the same ALPN list: parsing identical bytes (and encoding an equal, immutable
message) gives the same result, so the work is kept. What is verified is not: the
chain's checks run on every handshake (tests/crypto and the handshake tests cover
them), and a malformed body fails every time.
"""

from __future__ import annotations

import os

import pytest

from quicnet.crypto import dev_identity
from quicnet.tls import extensions as ext
from quicnet.tls.errors import DecodeError
from quicnet.tls.messages import (
    Certificate,
    CertificateEntry,
    Extension,
    decode_message,
    encode_message,
)
from quicnet.tls.wire import Reader


def _message(*ders: bytes, staple: bytes | None = None) -> Certificate:
    entries = []
    for i, der in enumerate(ders):
        extensions = (Extension(5, staple),) if staple is not None and i == 0 else ()
        entries.append(CertificateEntry(der, extensions))
    return Certificate(b"", tuple(entries))


def test_identical_bytes_parse_to_the_same_message() -> None:
    leaf = dev_identity().certificate_chain[0].to_der()
    message = _message(leaf)
    raw = encode_message(message)
    first = decode_message(bytes(raw))  # a new bytes object each time, as received
    again = decode_message(bytes(raw))
    assert first == message
    assert again is first  # parsed once
    other = decode_message(encode_message(_message(leaf, staple=b"\x01ocsp")))
    assert other is not first
    assert other.certificate_list[0].extensions == (Extension(5, b"\x01ocsp"),)


def test_a_malformed_certificate_message_fails_every_time() -> None:
    leaf = dev_identity().certificate_chain[0].to_der()
    raw = encode_message(_message(leaf))
    truncated = raw[:4] + raw[4:-1]  # the header still claims the full length
    for _ in range(2):
        with pytest.raises(DecodeError):
            decode_message(truncated)
    trailing = bytes((raw[0],)) + (len(raw) - 3).to_bytes(3, "big") + raw[4:] + b"\x00"
    for _ in range(2):
        with pytest.raises(DecodeError):
            decode_message(trailing)


def test_equal_messages_encode_the_same_and_round_trip() -> None:
    chain = [c.to_der() for c in dev_identity().certificate_chain]
    a, b = _message(*chain), _message(*chain)
    assert a is not b
    assert encode_message(a) == encode_message(b)
    assert decode_message(encode_message(b)) == b
    # A message with another staple encodes differently (nothing stale is returned).
    stapled = encode_message(_message(*chain, staple=b"\x01x"))
    assert stapled != encode_message(a)
    assert decode_message(stapled) == _message(*chain, staple=b"\x01x")


def test_many_chains_keep_working() -> None:
    leaf = dev_identity().certificate_chain[0].to_der()
    for i in range(40):  # beyond the bound: the cache is cleared, not grown
        message = _message(leaf, staple=bytes((1, i)))
        assert decode_message(encode_message(message)) == message


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The bodies the extension parsers open a Reader over (each is a parse)."""
    opened: list[bytes] = []

    class CountingReader(Reader):
        __slots__ = ()

        def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
            opened.append(data)
            super().__init__(data, start, end)

    monkeypatch.setattr(ext, "Reader", CountingReader)
    return opened


def test_an_alpn_list_is_parsed_once_and_handed_out_as_a_new_list(readers: list[bytes]) -> None:
    name = f"hq-{os.urandom(6).hex()}"  # bytes no other test (or earlier run) parsed
    body = ext.encode_alpn([name, "h3"])
    first = ext.decode_alpn(bytes(body))
    assert first == [name, "h3"]
    assert ext.decode_alpn(bytes(body)) == first
    assert len(readers) == 1  # the second decode of the same bytes parsed nothing
    first.append("changed by the caller")
    assert ext.decode_alpn(bytes(body)) == [name, "h3"]
    for bad in (body[:-1], body + b"\x00", b"\x00\x02\x00\x00"):
        for _ in range(2):
            with pytest.raises(DecodeError):
                ext.decode_alpn(bad)


def test_a_server_name_is_parsed_once(readers: list[bytes]) -> None:
    name = f"h{os.urandom(6).hex()}.example"
    body = ext.encode_server_name(name)
    assert ext.decode_server_name(bytes(body)) == name
    assert ext.decode_server_name(bytes(body)) == name
    assert len(readers) == 1
    two = body[:2] + body[2:] + body[2:]  # two host_names under one (wrong) length
    for bad in (body[:-1], body + b"\x00", two, b"\x00\x04\x00\x00\x01\xff"):
        for _ in range(2):
            with pytest.raises(DecodeError):
                ext.decode_server_name(bad)


def test_uint16_lists_are_parsed_once_and_handed_out_as_new_lists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """supported_versions, supported_groups and signature_algorithms: identical bytes are
    parsed once (per length-prefix size), each caller gets a list of its own, and a
    malformed body fails every time."""
    parsed: list[bytes] = []
    values = ext._u16_values

    def counting(body: bytes) -> list[int]:
        parsed.append(body)
        return values(body)

    monkeypatch.setattr(ext, "_u16_values", counting)
    fresh = [int.from_bytes(os.urandom(2), "big") for _ in range(3)]  # not parsed before
    groups = ext.encode_u16_list(fresh)
    first = ext.decode_u16_list(bytes(groups), "supported_groups")
    assert first == fresh
    assert ext.decode_u16_list(bytes(groups), "signature_algorithms") == fresh
    assert len(parsed) == 1
    first.append(0)
    assert ext.decode_u16_list(bytes(groups), "supported_groups") == fresh
    # The same bytes with a one-byte length prefix are another vector: parsed again.
    versions = bytes((len(groups) - 2,)) + groups[2:]
    assert ext.decode_supported_versions_client(versions) == fresh
    assert ext.decode_supported_versions_client(versions) == fresh
    assert len(parsed) == 2
    for bad in (groups[:-1], groups + b"\x00", b"\x00\x03\x00\x00\x00", b"\x00\x00"):
        for _ in range(2):
            with pytest.raises(DecodeError):
                ext.decode_u16_list(bad, "supported_groups")
