"""Encrypted Client Hello over QUIC (draft-ietf-tls-esni; RFC 9001 carries TLS as is).

Initial packets are protected with keys derived from the client's first
destination connection ID (RFC 9001 §5.2), so an on-path observer can read the
ClientHello: decrypting it here shows the public name and not the real one.
Rejection ends the handshake with CRYPTO_ERROR 0x100 + ech_required (121) and
leaves the retry configs with the client's TLS engine; a retry with them works.
A loopback test runs the same over real UDP sockets with the asyncio driver.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from simnet import handshake, make_pair

from quicnet.crypto import generate_private_key, issue_certificate, make_ca, make_csr
from quicnet.io.aio import connect, serve
from quicnet.quic import ConnectionTerminated, QuicConfiguration, QuicConnection, QuicEvent
from quicnet.quic.packets import PacketType, decode_packet_number, parse_long_header
from quicnet.quic.protection import initial_keys
from quicnet.tls import TLSClient
from quicnet.tls.ech import decode_ech_client_hello, encode_ech_config_list, generate_ech_key
from quicnet.tls.errors import ECHRejected
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.extensions import decode_server_name
from quicnet.tls.messages import ClientHello, decode_message

SECRET, PUBLIC = "secret.example", "public.example"
CRYPTO_ERROR = 0x100


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=QUIC ECH CA", days=30)
    key = generate_private_key("EC")
    names = [SECRET, PUBLIC, "localhost"]
    leaf = issue_certificate(make_csr(key, f"/CN={SECRET}", names=names), ca, ca_key, days=30)
    ech = generate_ech_key(PUBLIC, config_id=1)
    stale = generate_ech_key(PUBLIC, config_id=2)
    return {"ca": ca, "leaf": leaf, "key": key, "ech": ech, "stale": stale}


def _pair(pki: dict[str, Any], configs: bytes) -> Any:
    return make_pair(
        seed=0,
        client={"server_name": SECRET, "trust_roots": (pki["ca"],), "ech_configs": configs},
        server={
            "certificate_chain": (pki["leaf"],),
            "private_key": pki["key"],
            "ech_keys": [pki["ech"]],
        },
    )


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    length = 1 << (data[i] >> 6)
    value = int.from_bytes(data[i : i + length], "big") & ((1 << (8 * length - 2)) - 1)
    return value, i + length


def client_hello_from_initial(datagram: bytes) -> ClientHello:
    """Decrypt the client's first Initial as any observer can (RFC 9001 §5.2) and
    reassemble the ClientHello from its CRYPTO frames."""
    header = parse_long_header(datagram)
    assert header.packet_type == PacketType.INITIAL
    _send, recv = initial_keys(header.version, header.destination_cid, is_client=False)
    first, truncated, pn_length = recv.unprotect_header(datagram, header.pn_offset)
    pn = decode_packet_number(truncated, pn_length, -1)
    plain_header = (
        bytes((first,)) + datagram[1 : header.pn_offset] + truncated.to_bytes(pn_length, "big")
    )
    payload = recv.open(plain_header, datagram[header.pn_offset + pn_length : header.end], pn)
    crypto = bytearray(4096)
    size, i = 0, 0
    while i < len(payload):
        frame = payload[i]
        i += 1
        if frame in (0x00, 0x01):  # PADDING, PING
            continue
        assert frame == 0x06, f"unexpected frame 0x{frame:x} in the first Initial"
        offset, i = _read_varint(payload, i)
        length, i = _read_varint(payload, i)
        crypto[offset : offset + length] = payload[i : i + length]
        size = max(size, offset + length)
        i += length
    hello = decode_message(bytes(crypto[:size]))
    assert isinstance(hello, ClientHello)
    return hello


def test_quic_ech_accepted_and_the_initial_shows_only_the_public_name(
    pki: dict[str, Any],
) -> None:
    sim = _pair(pki, encode_ech_config_list([pki["ech"].config]))
    sent: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: sent.append(data))
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection) and client.handshake_complete
    hello = client_hello_from_initial(sent[0])
    assert decode_server_name(hello.extension(ET.server_name) or b"") == PUBLIC
    offer = decode_ech_client_hello(hello.extension(ET.encrypted_client_hello) or b"")
    assert offer is not None and offer.config_id == 1
    assert not any(SECRET.encode() in d for d in sent)
    # A client offering ECH fails unless the server confirmed it: success means accepted.
    assert client.termination is None


def test_quic_ech_rejected_then_retry(pki: dict[str, Any]) -> None:
    sim = _pair(pki, encode_ech_config_list([pki["stale"].config]))
    sim.connect()
    sim.run_until(lambda: bool(sim.client.events_of(ConnectionTerminated)), what="rejection")
    [event] = sim.client.events_of(ConnectionTerminated)
    assert event.error_code == CRYPTO_ERROR + 121 and not event.by_peer
    client = sim.client.impl
    assert isinstance(client, QuicConnection) and isinstance(client.tls, TLSClient)
    rejection = client.tls.ech_rejection
    assert rejection is not None
    assert rejection.retry_configs == encode_ech_config_list([pki["ech"].config])
    retry = _pair(pki, rejection.retry_configs)
    handshake(retry)
    assert retry.client.impl.handshake_complete  # type: ignore[union-attr]


def test_quic_grease_ech(pki: dict[str, Any]) -> None:
    sim = make_pair(
        seed=0,
        client={"server_name": SECRET, "trust_roots": (pki["ca"],), "ech_grease": True},
        server={"certificate_chain": (pki["leaf"],), "private_key": pki["key"]},
    )
    sent: list[bytes] = []
    sim.c2s.taps.append(lambda data, now: sent.append(data))
    handshake(sim)
    hello = client_hello_from_initial(sent[0])
    offer = decode_ech_client_hello(hello.extension(ET.encrypted_client_hello) or b"")
    assert offer is not None and len(offer.enc) == 32
    assert decode_server_name(hello.extension(ET.server_name) or b"") == SECRET


def test_quic_ech_over_loopback_udp(pki: dict[str, Any]) -> None:
    server_config = QuicConfiguration(
        is_client=False,
        certificate_chain=[pki["leaf"]],
        private_key=pki["key"],
        ech_keys=[pki["ech"]],
    )
    stale = encode_ech_config_list([pki["stale"].config])

    def handler(conn: QuicConnection, event: QuicEvent) -> None:
        return None

    async def scenario() -> tuple[bool, bytes | None]:
        server = await serve("127.0.0.1", 0, server_config, handler)
        port = server.local_address[1]
        try:
            rejected: bytes | None = None
            try:
                await connect("127.0.0.1", port, _client(pki, stale))
            except ECHRejected as exc:
                rejected = exc.retry_configs
            assert rejected is not None
            client = await connect("127.0.0.1", port, _client(pki, rejected))
            ok = client.connection.handshake_complete
            await client.close()
            return ok, rejected
        finally:
            await server.close()

    ok, rejected = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert ok and rejected == encode_ech_config_list([pki["ech"].config])


def _client(pki: dict[str, Any], configs: bytes) -> QuicConfiguration:
    return QuicConfiguration(server_name=SECRET, trust_roots=[pki["ca"]], ech_configs=configs)
