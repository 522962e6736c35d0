"""Encrypted Client Hello between quicnet's client and server over TLS/TCP
(draft-ietf-tls-esni): the real name never crosses the wire, the server signals
acceptance, a rejected client authenticates the public name and gets retry
configs that work, HelloRetryRequest keeps ECH going, and GREASE.
"""

from __future__ import annotations

import asyncio

import pytest
from ech_helpers import NOW, PUBLIC, SECRET, client, pki, pump, server

from quicnet.crypto import NamedGroup, generate_private_key, issue_certificate, make_ca, make_csr
from quicnet.tls import (
    AlertDescription,
    AlertReceived,
    HandshakeComplete,
    ProtocolViolation,
    ServerConfig,
    TLSConnection,
    open_connection,
    start_server,
)
from quicnet.tls.ech import decode_ech_client_hello, encode_ech_config_list
from quicnet.tls.errors import ECHRejected
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.extensions import decode_server_name
from quicnet.tls.messages import ClientHello, decode_message


def _handshake(cc: object, sc: object) -> tuple[TLSConnection, TLSConnection, bytes]:
    c = TLSConnection.client(cc)  # type: ignore[arg-type]
    s = TLSConnection.server(sc)  # type: ignore[arg-type]
    c.start(NOW)
    wire: list[bytes] = []
    pump(c, s, wire)
    return c, s, b"".join(wire)


def _first_hello(wire: bytes) -> ClientHello:
    length = int.from_bytes(wire[3:5], "big")
    hello = decode_message(wire[5 : 5 + length])
    assert isinstance(hello, ClientHello)
    return hello


def _hellos(wire: bytes) -> list[ClientHello]:
    """The ClientHellos in the client's plaintext handshake records."""
    out = []
    while wire:
        length = int.from_bytes(wire[3:5], "big")
        if wire[0] == 22:
            message = decode_message(wire[5 : 5 + length])
            if isinstance(message, ClientHello):
                out.append(message)
        wire = wire[5 + length :]
    return out


def _completed(conn: TLSConnection) -> HandshakeComplete:
    events = [e for e in iter(conn.next_event, None) if isinstance(e, HandshakeComplete)]
    assert len(events) == 1
    return events[0]


def test_accepted_ech_hides_the_real_name() -> None:
    c, s, wire = _handshake(client(ech_configs=pki().configs), server())
    assert c.handshake_complete and s.handshake_complete
    assert SECRET.encode() not in wire  # nowhere in what the client wrote
    outer = _first_hello(wire)
    assert decode_server_name(outer.extension(ET.server_name) or b"") == PUBLIC
    offer = decode_ech_client_hello(outer.extension(ET.encrypted_client_hello) or b"")
    assert offer is not None and offer.config_id == pki().ech.config.config_id
    assert _completed(c).ech_accepted
    assert s.engine.server_name == SECRET  # the server served the inner hello
    c.send(b"over the inner keys")
    pump(c, s)
    assert any(getattr(e, "data", b"") == b"over the inner keys" for e in iter(s.next_event, None))


def test_rejected_ech_fails_with_retry_configs_that_then_work() -> None:
    stale = encode_ech_config_list([pki().other_ech.config])  # a key the server dropped
    c = TLSConnection.client(client(ech_configs=stale))
    s = TLSConnection.server(server())
    c.start(NOW)
    wire: list[bytes] = []
    with pytest.raises(ECHRejected) as info:
        pump(c, s, wire)
    assert info.value.alert == AlertDescription.ech_required
    assert info.value.retry_configs == pki().configs
    assert SECRET.encode() not in b"".join(wire)
    assert not c.handshake_complete
    # The client told the server why it went away.
    with pytest.raises(AlertReceived) as alert:
        s.receive_data(c.data_to_send(), NOW)
    assert alert.value.description == AlertDescription.ech_required
    # A new connection with the retry configs is accepted.
    c2, _s2, wire2 = _handshake(client(ech_configs=info.value.retry_configs), server())
    assert c2.handshake_complete and _completed(c2).ech_accepted
    assert SECRET.encode() not in wire2


def test_rejected_client_authenticates_the_public_name() -> None:
    """§6.1.7: after a rejection the certificate must be valid for the public name."""
    p = pki()
    key = generate_private_key("EC")
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=ECH name test CA", days=30)
    leaf = issue_certificate(make_csr(key, f"/CN={SECRET}", names=[SECRET]), ca, ca_key, days=30)
    stale = encode_ech_config_list([p.other_ech.config])
    c = TLSConnection.client(
        client(ech_configs=stale, trust_roots=[ca])  # trusts the CA, but not for PUBLIC
    )
    s = TLSConnection.server(ServerConfig([leaf], key, ech_keys=[p.ech]))
    c.start(NOW)
    with pytest.raises(ProtocolViolation) as info:
        pump(c, s)
    assert not isinstance(info.value, ECHRejected)  # never got as far as ech_required
    assert PUBLIC in str(info.value), str(info.value)
    assert info.value.alert == AlertDescription.bad_certificate, info.value.alert
    # The same certificate is fine when ECH is accepted (checked against the real name).
    ok = TLSConnection.client(client(ech_configs=p.configs, trust_roots=[ca]))
    s2 = TLSConnection.server(ServerConfig([leaf], key, ech_keys=[p.ech]))
    ok.start(NOW)
    pump(ok, s2)
    assert ok.handshake_complete


def test_server_without_ech_keys_means_rejection_without_retry_configs() -> None:
    c = TLSConnection.client(client(ech_configs=pki().configs))
    s = TLSConnection.server(server(ech_keys=()))
    c.start(NOW)
    with pytest.raises(ECHRejected) as info:
        pump(c, s)
    assert info.value.retry_configs is None
    assert s.engine.server_name == PUBLIC  # it only ever saw the outer hello


def test_hello_retry_request_keeps_ech() -> None:
    c, s, wire = _handshake(
        client(ech_configs=pki().configs, key_share_groups=[NamedGroup.secp256r1]),
        server(groups=[NamedGroup.x25519]),
    )
    assert s.engine.hello_retry_sent
    assert c.handshake_complete and _completed(c).ech_accepted
    assert s.engine.server_name == SECRET
    assert SECRET.encode() not in wire
    hellos = [m for m in _hellos(wire)]
    assert len(hellos) == 2 and hellos[0].random == hellos[1].random  # outer randoms kept
    offers = [
        decode_ech_client_hello(h.extension(ET.encrypted_client_hello) or b"") for h in hellos
    ]
    assert offers[0] is not None and len(offers[0].enc) == 32
    assert offers[1] is not None and offers[1].enc == b""  # §6.1.5: same HPKE context


def test_hello_retry_request_then_rejection() -> None:
    stale = encode_ech_config_list([pki().other_ech.config])
    c = TLSConnection.client(client(ech_configs=stale, key_share_groups=[NamedGroup.secp256r1]))
    s = TLSConnection.server(server(groups=[NamedGroup.x25519]))
    c.start(NOW)
    wire: list[bytes] = []
    with pytest.raises(ECHRejected) as info:
        pump(c, s, wire)
    assert s.engine.hello_retry_sent
    assert info.value.retry_configs == pki().configs
    assert SECRET.encode() not in b"".join(wire)


@pytest.mark.parametrize("keys", [True, False])
def test_grease_ech_is_sent_and_harmless(keys: bool) -> None:
    sc = server() if keys else server(ech_keys=())
    c, s, wire = _handshake(client(ech_grease=True), sc)
    offer = decode_ech_client_hello(_first_hello(wire).extension(ET.encrypted_client_hello) or b"")
    assert offer is not None and len(offer.enc) == 32 and len(offer.payload) % 32 == 16
    assert c.handshake_complete and not _completed(c).ech_accepted
    # The server with keys answered retry_configs; a GREASE client ignores them.
    assert (s.engine.ech is not None) == keys


def test_no_ech_extension_without_configs_or_grease() -> None:
    _c, _s, wire = _handshake(client(), server())
    assert _first_hello(wire).extension(ET.encrypted_client_hello) is None


def test_tcp_loopback_relay_sees_only_the_public_name() -> None:
    """Real sockets on 127.0.0.1: a relay between client and server records the bytes."""

    seen = bytearray()

    async def scenario() -> tuple[bytes, bool]:
        async def echo(reader: asyncio.StreamReader, writer: object) -> None:
            data = await reader.read(100)
            writer.write(data)  # type: ignore[attr-defined]
            await writer.drain()  # type: ignore[attr-defined]

        backend = await start_server(echo, "127.0.0.1", 0, server())
        port = backend.sockets[0].getsockname()[1]

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", port)

            async def copy(a: asyncio.StreamReader, b: asyncio.StreamWriter, log: bool) -> None:
                while data := await a.read(65536):
                    if log:
                        seen.extend(data)
                    b.write(data)
                    await b.drain()
                b.close()

            await asyncio.gather(copy(r, uw, True), copy(ur, w, False))

        front = await asyncio.start_server(relay, "127.0.0.1", 0)
        front_port = front.sockets[0].getsockname()[1]
        try:
            reader, writer = await open_connection(
                "127.0.0.1", front_port, client(ech_configs=pki().configs)
            )
            writer.write(b"ping")
            answer = await reader.readexactly(4)
            accepted = bool(writer.handshake and writer.handshake.ech_accepted)
            writer.close()
            return answer, accepted
        finally:
            front.close()
            backend.close()

    answer, accepted = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert answer == b"ping" and accepted
    assert PUBLIC.encode() in seen and SECRET.encode() not in seen


def test_resumption_inside_ech() -> None:
    """A ticket from an ECH connection resumes in the inner hello; the outer carries no PSK."""
    sc = server()  # one configuration: its ticket keys open the ticket
    c, _s, _ = _handshake(client(ech_configs=pki().configs), sc)
    tickets = [e.ticket for e in iter(c.next_event, None) if hasattr(e, "ticket")]
    assert tickets and tickets[0].server_name == SECRET
    c2, s2, wire = _handshake(client(ech_configs=pki().configs, session=tickets[0]), sc)
    assert c2.handshake_complete and s2.engine.resumed
    assert _first_hello(wire).extension(ET.pre_shared_key) is None
    assert SECRET.encode() not in wire


def test_garbage_ech_configs_is_a_configuration_error() -> None:
    from quicnet.tls import ConfigurationError, TLSClient

    with pytest.raises(ConfigurationError):
        TLSClient(client(ech_configs=b"\x00\x03abc"))
    with pytest.raises(ConfigurationError):
        TLSClient(client(ech_configs=pki().configs, server_name=None, verify_server_name=False))


def test_grease_after_hello_retry_request_repeats_the_extension() -> None:
    """§6.2: the second ClientHello copies the first's GREASE extension."""
    c = TLSConnection.client(client(ech_grease=True, key_share_groups=[NamedGroup.secp256r1]))
    s = TLSConnection.server(server(groups=[NamedGroup.x25519]))
    c.start(NOW)
    first = c.data_to_send()
    s.receive_data(first, NOW)
    c.receive_data(s.data_to_send(), NOW)  # the HelloRetryRequest
    second = c.data_to_send()
    hello1, hello2 = _first_hello(first), _first_hello(second.lstrip(b"\x14\x03\x03\x00\x01\x01"))
    assert hello1.extension(ET.encrypted_client_hello) is not None
    assert hello2.extension(ET.encrypted_client_hello) == hello1.extension(
        ET.encrypted_client_hello
    )
    s.receive_data(second, NOW)
    pump(c, s)
    assert c.handshake_complete and s.engine.hello_retry_sent
