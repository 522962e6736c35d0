"""Packet protection and headers against the RFCs' sample packets, through quicnet's API.

RFC 9001 Appendix A (QUIC v1) and RFC 9369 Appendix A (QUIC v2): the client
Initial, the server Initial, the Retry and the ChaCha20 short-header packet
are rebuilt byte for byte with :func:`~quicnet.quic.protection.initial_keys`,
:class:`~quicnet.quic.protection.PacketKey` and
:func:`~quicnet.quic.packets.long_header_prefix` /
:func:`~quicnet.quic.packets.build_retry`, and taken apart again with
``parse_long_header`` + ``unprotect_header`` + ``open``. The long values are
read from the RFC texts (vendored beside the tests). Packet number encoding
and decoding follow RFC 9000 Appendix A.2/A.3, plus properties.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.crypto import AeadAlgorithm, DecryptError
from quicnet.quic.errors import TransportError
from quicnet.quic.packets import (
    PacketType,
    build_retry,
    build_version_negotiation,
    decode_packet_number,
    encode_packet_number,
    long_header_prefix,
    parse_invariant_header,
    parse_long_header,
    parse_short_header,
    parse_version_negotiation,
    retry_is_valid,
)
from quicnet.quic.protection import PacketKey, initial_keys, initial_secrets
from quicnet.quic.versions import QuicVersion

_HERE = Path(__file__).parent
_HEX_ROW = re.compile(r"^\s+[0-9a-f]{2,}(?: [0-9a-f]+)*$")


@dataclass(frozen=True)
class Appendix:
    """The sample packets of one RFC's Appendix A."""

    version: int
    text: str

    def section(self, number: int) -> str:
        start = self.text.index(f"\nA.{number}.  ")
        end = self.text.find(f"\nA.{number + 1}.  ", start)
        return self.text[start : end if end != -1 else None]

    def paragraph(self, number: int, after: str) -> bytes:
        """The hex rows of the first paragraph following ``after`` in section A.<number>."""
        text = self.section(number)
        lines = text[text.index(after) + len(after) :].splitlines()[1:]
        i = 0
        while not _HEX_ROW.match(lines[i]):
            i += 1
        rows = []
        while i < len(lines) and _HEX_ROW.match(lines[i]):
            rows.append(lines[i])
            i += 1
        return bytes.fromhex("".join("".join(rows).split()))

    @staticmethod
    def derived(text: str, name: str) -> bytes:
        """The first ``name ... = <hex>`` value in ``text``, with its continuation rows."""
        found = re.search(rf"^   {re.escape(name)}[ =\n]", text, re.M)
        assert found, name
        lines = text[found.start() :].splitlines()
        i = 0
        while not re.match(r"^\s+(?:\S.*)?= [0-9a-f]+$", lines[i]):
            i += 1
        rows = [lines[i].split("= ")[-1]]
        i += 1
        while i < len(lines) and _HEX_ROW.match(lines[i]):
            rows.append(lines[i])
            i += 1
        return bytes.fromhex("".join("".join(rows).split()))

    def value(self, number: int, name: str) -> bytes:
        """A ``name = hex`` value in section A.<number> (the last ``=`` on its line)."""
        match = re.search(
            rf"^\s+{re.escape(name)}\s+=\s+([0-9a-f]+)\s*$", self.section(number), re.M
        )
        assert match, name
        return bytes.fromhex(match.group(1))


V1 = Appendix(
    QuicVersion.V1,
    (_HERE.parent / "crypto" / "vectors" / "rfc9001-appendix-a.txt").read_text(encoding="utf-8"),
)
V2 = Appendix(
    QuicVersion.V2, (_HERE / "vectors" / "rfc9369-appendix-a.txt").read_text(encoding="utf-8")
)
APPENDICES = [pytest.param(V1, id="v1-rfc9001"), pytest.param(V2, id="v2-rfc9369")]

CLIENT_DCID = bytes.fromhex("8394c8f03e515708")
SERVER_SCID = bytes.fromhex("f067a5502a4262b5")


def _client_initial_parts(a: Appendix) -> tuple[bytes, bytes, bytes]:
    """(unprotected header, 1162-byte payload, protected packet) of A.2."""
    crypto = a.paragraph(2, "frames to make a 1162-byte payload:")
    header = a.paragraph(2, "a packet number of 2:")
    packet = a.paragraph(2, "The resulting protected packet is:")
    return header, crypto + bytes(1162 - len(crypto)), packet


def _server_initial_parts(a: Appendix) -> tuple[bytes, bytes, bytes]:
    payload = a.paragraph(3, "and no PADDING frames:")
    header = a.paragraph(3, "packet number of 1:")
    packet = a.paragraph(3, "The final protected packet is then:")
    return header, payload, packet


def test_vectors_are_what_the_rfcs_say() -> None:
    """The parser found the right paragraphs (sizes given in the RFCs' prose)."""
    for a in (V1, V2):
        header, payload, packet = _client_initial_parts(a)
        assert len(header) == 22 and len(payload) == 1162 and len(packet) == 1200
        assert payload[:4] == bytes.fromhex("060040f1")
        header, payload, packet = _server_initial_parts(a)
        assert len(header) == 20 and len(payload) == 99
        assert len(packet) == len(header) + len(payload) + 16


@pytest.mark.parametrize("a", APPENDICES)
def test_initial_secrets_and_keys(a: Appendix) -> None:
    client, server = initial_secrets(a.version, CLIENT_DCID)
    keys = a.section(1)
    assert client == a.derived(keys, "client_initial_secret")
    assert server == a.derived(keys, "server_initial_secret")
    server_part = keys[keys.index("server_initial_secret") :]
    c_send, c_recv = initial_keys(a.version, CLIENT_DCID, is_client=True)
    s_send, s_recv = initial_keys(a.version, CLIENT_DCID, is_client=False)
    assert c_send.hp_key == s_recv.hp_key == a.derived(keys, "hp")
    assert s_send.hp_key == c_recv.hp_key == a.derived(server_part, "hp")
    assert c_send.secret == client and s_send.secret == server


@pytest.mark.parametrize("a", APPENDICES)
def test_a2_client_initial_protect(a: Appendix) -> None:
    header, payload, packet = _client_initial_parts(a)
    send, _recv = initial_keys(a.version, CLIENT_DCID, is_client=True)
    prefix = long_header_prefix(PacketType.INITIAL, a.version, CLIENT_DCID, b"", b"", 4)
    length = (0x4000 | (4 + len(payload) + 16)).to_bytes(2, "big")
    assert prefix + length + (2).to_bytes(4, "big") == header
    assert send.protect(header, payload, 2) == packet


@pytest.mark.parametrize("a", APPENDICES)
def test_a2_client_initial_unprotect(a: Appendix) -> None:
    header, payload, packet = _client_initial_parts(a)
    parsed = parse_long_header(packet)
    assert parsed.packet_type == PacketType.INITIAL
    assert parsed.version == a.version
    assert (parsed.destination_cid, parsed.source_cid, parsed.token) == (CLIENT_DCID, b"", b"")
    assert (parsed.pn_offset, parsed.end) == (18, 1200)
    # The server derives the same keys from the DCID alone.
    _send, recv = initial_keys(a.version, parsed.destination_cid, is_client=False)
    first, truncated, pn_length = recv.unprotect_header(packet, parsed.pn_offset)
    assert (first, truncated, pn_length) == (header[0], 2, 4)
    pn = decode_packet_number(truncated, pn_length, -1)
    plain_header = bytes((first,)) + packet[1:18] + truncated.to_bytes(pn_length, "big")
    assert plain_header == header
    assert recv.open(plain_header, packet[18 + pn_length :], pn) == payload
    # The client's own receive key (the server's) does not open it.
    _send, client_recv = initial_keys(a.version, CLIENT_DCID, is_client=True)
    with pytest.raises(DecryptError):
        client_recv.open(plain_header, packet[22:], pn)


@pytest.mark.parametrize("a", APPENDICES)
def test_a3_server_initial_protect_and_unprotect(a: Appendix) -> None:
    header, payload, packet = _server_initial_parts(a)
    send, _recv = initial_keys(a.version, CLIENT_DCID, is_client=False)
    prefix = long_header_prefix(PacketType.INITIAL, a.version, b"", SERVER_SCID, b"", 2)
    length = (0x4000 | (2 + len(payload) + 16)).to_bytes(2, "big")
    assert prefix + length + (1).to_bytes(2, "big") == header
    assert send.protect(header, payload, 1) == packet
    parsed = parse_long_header(packet)
    assert parsed.packet_type == PacketType.INITIAL
    assert (parsed.destination_cid, parsed.source_cid) == (b"", SERVER_SCID)
    assert parsed.end == len(packet)
    _send, client_recv = initial_keys(a.version, CLIENT_DCID, is_client=True)
    first, truncated, pn_length = client_recv.unprotect_header(packet, parsed.pn_offset)
    assert (truncated, pn_length) == (1, 2)
    # The client has seen no packet from the server yet: largest received is -1.
    pn = decode_packet_number(truncated, pn_length, -1)
    plain = bytes((first,)) + packet[1 : parsed.pn_offset] + truncated.to_bytes(2, "big")
    assert plain == header
    assert client_recv.open(plain, packet[parsed.pn_offset + 2 :], pn) == payload


@pytest.mark.parametrize("a", APPENDICES)
def test_a4_retry(a: Appendix) -> None:
    retry = a.paragraph(4, "not included in the final Retry packet:")
    # Both RFCs set the four unused bits of the first byte.
    built = build_retry(a.version, b"", SERVER_SCID, CLIENT_DCID, b"token", unused_bits=0x0F)
    assert built == retry
    assert retry_is_valid(retry, CLIENT_DCID, a.version)
    parsed = parse_long_header(retry)
    assert parsed.packet_type == PacketType.RETRY
    assert (parsed.destination_cid, parsed.source_cid, parsed.token) == (
        b"",
        SERVER_SCID,
        b"token",
    )
    assert parsed.retry_integrity_tag == retry[-16:]
    # The tag binds the original DCID, the version and every byte.
    assert not retry_is_valid(retry, bytes.fromhex("8394c8f03e515709"), a.version)
    other = QuicVersion.V2 if a.version == QuicVersion.V1 else QuicVersion.V1
    assert not retry_is_valid(retry, CLIENT_DCID, other)
    for i in range(len(retry)):
        flipped = bytearray(retry)
        flipped[i] ^= 0x20
        assert not retry_is_valid(bytes(flipped), CLIENT_DCID, a.version), i
    assert not retry_is_valid(retry[:10], CLIENT_DCID, a.version)


def _a5_key(a: Appendix) -> PacketKey:
    secret = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
    return PacketKey(AeadAlgorithm.CHACHA20_POLY1305, "sha256", secret, a.version)


@pytest.mark.parametrize("a", APPENDICES)
def test_a5_chacha20_short_header(a: Appendix) -> None:
    key = _a5_key(a)
    pn = 654360564
    header = a.value(5, "unprotected header")
    assert header == bytes.fromhex("4200bff4")
    packet = a.value(5, "packet")
    assert len(packet) == 21
    assert key.protect(header, b"\x01", pn) == packet
    assert key.protect(header, b"\x01", pn)[4:] == a.value(5, "payload ciphertext")
    # Unprotect: a zero-length DCID puts the packet number at offset 1.
    short = parse_short_header(packet, 0, 0)
    assert short.destination_cid == b"" and short.pn_offset == 1
    first, truncated, pn_length = key.unprotect_header(packet, 1)
    assert (first, truncated, pn_length) == (0x42, 49140, 3)
    full = decode_packet_number(truncated, pn_length, pn - 1)
    assert full == pn
    assert key.open(header, packet[4:], full) == b"\x01"


@pytest.mark.parametrize("a", APPENDICES)
def test_a5_keys_and_key_update(a: Appendix) -> None:
    key = _a5_key(a)
    section = a.section(5)
    assert key.hp_key == a.derived(section, "hp")
    following = key.next_generation()
    # The next secret is the "ku" value; the header-protection key stays (RFC 9001 §6.1).
    assert following.secret == a.derived(section, "ku")
    assert following.hp_key == key.hp_key
    assert following.hp is key.hp  # the same context, not one rebuilt from the same key
    header = bytes.fromhex("4200bff4")
    sealed = following.protect(header, b"\x01", 654360564)
    assert sealed != a.value(5, "packet")
    first, truncated, _ = following.unprotect_header(sealed, 1)
    plain = bytes((first,)) + truncated.to_bytes(3, "big")
    assert following.open(plain, sealed[4:], 654360564) == b"\x01"
    with pytest.raises(DecryptError):
        key.open(plain, sealed[4:], 654360564)


def test_unprotect_header_needs_a_full_sample() -> None:
    _header, _payload, packet = _client_initial_parts(V1)
    _send, recv = initial_keys(QuicVersion.V1, CLIENT_DCID, is_client=False)
    with pytest.raises(DecryptError):
        recv.unprotect_header(packet[: 18 + 4 + 15], 18)
    recv.unprotect_header(packet[: 18 + 4 + 16], 18)


# Headers --------------------------------------------------------------------------------


def test_invariant_header() -> None:
    _h, _p, packet = _client_initial_parts(V1)
    inv = parse_invariant_header(packet, 8)
    assert inv.is_long and inv.version == 1
    assert inv.destination_cid == CLIENT_DCID and inv.source_cid == b""
    short = parse_invariant_header(b"\x40" + bytes(range(8)) + b"rest", 8)
    assert not short.is_long and short.version is None and short.destination_cid == bytes(range(8))
    with pytest.raises(TransportError):
        parse_invariant_header(b"\x40" + bytes(7), 8)
    with pytest.raises(TransportError):
        parse_invariant_header(b"", 8)


def test_long_header_rejections() -> None:
    _h, _p, packet = _client_initial_parts(V1)
    with pytest.raises(TransportError):  # unknown version
        parse_long_header(packet[:1] + b"\x00\x00\x00\x02" + packet[5:])
    with pytest.raises(TransportError):  # fixed bit cleared
        parse_long_header(bytes((packet[0] & ~0x40,)) + packet[1:])
    with pytest.raises(TransportError):  # 21-byte DCID
        parse_long_header(packet[:5] + b"\x15" + bytes(21) + packet[14:])
    with pytest.raises(TransportError):  # the Length runs past the datagram
        parse_long_header(packet[:1000])
    with pytest.raises(TransportError):  # version 0 is Version Negotiation
        parse_long_header(packet[:1] + bytes(4) + packet[5:])


def _varint_of_size(value: int, size: int) -> bytes:
    """``value`` as a varint of ``size`` bytes (§16 allows any size that holds it)."""
    body = value.to_bytes(size, "big")
    return bytes((body[0] | {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}[size],)) + body[1:]


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=40),
    st.sampled_from([1, 2, 4, 8]),
    st.sampled_from([2, 4, 8]),
    st.integers(min_value=20, max_value=60),
    st.integers(min_value=0, max_value=120),
)
def test_initial_token_and_length_of_any_varint_size(
    token: bytes, token_size: int, length_size: int, length: int, cut: int
) -> None:
    """An Initial's token length and Length may be varints of any size (§16, §17.2); the
    header parses to the same fields, and any truncation of it is a typed error."""
    if token_size == 1 and len(token) >= 64:
        token = token[:63]
    prefix = long_header_prefix(PacketType.INITIAL, 1, CLIENT_DCID, b"\x01\x02", b"", 4)
    header = prefix[:-1] + _varint_of_size(len(token), token_size) + token
    header += _varint_of_size(length, length_size)
    packet = header + bytes(length)
    parsed = parse_long_header(packet)
    assert (parsed.token, parsed.pn_offset, parsed.end) == (token, len(header), len(packet))
    if cut < len(header):
        with pytest.raises(TransportError):
            parse_long_header(packet[:cut])


def test_coalesced_packets_are_located() -> None:
    _h, _p, server = _server_initial_parts(V1)
    _h, _p, client = _client_initial_parts(V1)
    datagram = server + client
    first = parse_long_header(datagram)
    second = parse_long_header(datagram, first.end)
    assert first.end == len(server)
    assert second.destination_cid == CLIENT_DCID and second.end == len(datagram)


def test_version_negotiation_round_trip() -> None:
    vn = build_version_negotiation(b"\x01\x02", b"\x03" * 8, [0x1A2A3A4A, 1, 0x6B3343CF], 0x55)
    assert vn[0] & 0x80 and vn[1:5] == bytes(4)
    assert parse_version_negotiation(vn) == (b"\x01\x02", b"\x03" * 8, [0x1A2A3A4A, 1, 0x6B3343CF])
    with pytest.raises(TransportError):
        parse_version_negotiation(vn[:-1])  # not whole versions
    with pytest.raises(TransportError):
        parse_version_negotiation(vn[: 5 + 1 + 2 + 1 + 8])  # no versions at all
    with pytest.raises(TransportError):
        parse_version_negotiation(b"\x80\x00\x00\x00\x01" + vn[5:])  # not version 0


# Packet numbers (RFC 9000 Appendix A) ----------------------------------------------------------


def test_rfc9000_a2_encoding_examples() -> None:
    assert encode_packet_number(0xAC5C02, 0xABE8B3) == (0x5C02, 2)
    assert encode_packet_number(0xACE8FE, 0xABE8B3) == (0xACE8FE & 0xFFFFFF, 3)


def test_rfc9000_a3_decoding_example() -> None:
    assert decode_packet_number(0x9B32, 2, 0xA82F30EA) == 0xA82F9B32


def test_packet_number_edges() -> None:
    assert encode_packet_number(0, None) == (0, 1)
    assert decode_packet_number(0, 1, -1) == 0
    assert encode_packet_number(200, None)[1] == 2  # 2 x 201 needs 9 bits
    assert decode_packet_number(0x00, 1, 0xFFFF) == 0x10000  # wraps forward
    assert decode_packet_number(0xFF, 1, 0xFFFF) == 0xFFFF  # a late duplicate of the largest
    assert decode_packet_number(0xFF, 1, 0x100) == 0xFF  # or stays just below
    # Near 2^62 the window does not wrap past the largest packet number.
    top = (1 << 62) - 1
    assert decode_packet_number(top & 0xFF, 1, top - 1) == top
    assert encode_packet_number(1 << 40, (1 << 40) - 1 - (1 << 30))[1] == 4


@settings(max_examples=300, deadline=None)
@given(
    largest_acked=st.one_of(st.none(), st.integers(0, (1 << 50))),
    gap=st.integers(1, (1 << 30) - 1),
    data=st.data(),
)
def test_packet_number_round_trip(largest_acked: int | None, gap: int, data: st.DataObject) -> None:
    """Whatever the receiver has seen between largest_acked and pn - 1, it decodes pn."""
    base = -1 if largest_acked is None else largest_acked
    pn = base + gap
    truncated, length = encode_packet_number(pn, largest_acked)
    assert 1 <= length <= 4
    assert truncated < 1 << (8 * length)
    received = data.draw(st.integers(base, pn - 1), label="largest_received")
    assert decode_packet_number(truncated, length, received) == pn


@settings(max_examples=200, deadline=None)
@given(
    largest=st.integers(-1, 1 << 40),
    length=st.integers(1, 4),
    offset=st.integers(-(1 << 31) + 1, 1 << 31),
)
def test_decode_picks_the_candidate_nearest_the_expected(
    largest: int, length: int, offset: int
) -> None:
    window = 1 << (8 * length)
    expected = largest + 1
    pn = expected + offset % window - window // 2 + 1  # within (expected - hwin, expected + hwin]
    if pn < 0:
        return
    assert decode_packet_number(pn % window, length, largest) == pn
