"""Interop with aioquic and qh3 around the handshake: retry, versionnegotiation,
amplificationlimit and stateless reset.

A UDP relay between the two (interop_peers.UdpRelay) shows what went over the
wire: Retry and Version Negotiation packets, and the server's bytes before the
client's address is validated.
"""

# The shared fixtures (stack, ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
from interop_peers import (  # noqa: F401  (fixtures are used by name)
    STACKS,
    Gate,
    PeerApp,
    QuicnetClient,
    QuicnetServer,
    closing,
    hard_timeout,
    ident,
    load_stack,
    make_identity,
    packet_types,
    payload,
    peer_config,
    peer_loop,
    peer_server,
    pump,
    quicnet_client_config,
    quicnet_server_config,
    relay,
    role,
    run_peer_client,
    sha256,
    stack,
    wait_future,
)

from quicnet.quic import QuicVersion

#: Reserved versions (RFC 9000 §15, 0x?a?a?a?a) a client may offer to force negotiation.
GREASE_1A = 0x1A2A3A4A
GREASE_5A = 0x5A6A7A8A


def _get_via(
    stack: Any,
    ident: Any,
    peer_loop: Any,
    server: QuicnetServer,
    address: Any,
    name: str,
    timeout: float = 30.0,
    **peer_options: Any,
) -> tuple[bytes, Any]:
    """A peer client GETs ``name`` from the quicnet ``server`` at ``address``."""
    held: dict[str, Any] = {}

    async def scenario(p: Any) -> bytes:
        held["proto"] = p
        return bytes(await p.get(name))

    config = peer_config(stack, ident, is_client=True, **peer_options)
    future = peer_loop.submit(run_peer_client(stack, config, address, scenario, timeout=timeout))
    body = wait_future(future, server, timeout=timeout + 5)
    return body, held["proto"]


# retry --------------------------------------------------------------------------------------
def test_retry(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """The server sends a Retry; the client comes back with the token and completes."""
    body = payload(100_000, seed=10)
    if role == "quicnet_server":
        server = QuicnetServer(quicnet_server_config(ident), {"/r": body}, require_retry=True)
        with closing(server), relay(server.address) as wire:
            got, proto = _get_via(stack, ident, peer_loop, server, wire.address, "/r")
            # One Retry per Initial datagram of the first flight (qh3's ClientHello spans two).
            assert server.endpoint.stats.retries_sent == wire.types["s2c"].get("retry") >= 1
            assert server.endpoint.stats.connections_accepted == 1
            (rec,) = server.connections
            assert rec.handshake is not None
            assert proto.alpn == "hq-interop"
    else:
        app = PeerApp(files={"/r": body})
        config = peer_config(stack, ident, is_client=False)
        with (
            peer_server(peer_loop, stack, config, app, retry=True) as ps,
            relay(ps.address) as wire,
        ):
            client = QuicnetClient(quicnet_client_config(ident), wire.address)
            with closing(client):
                client.handshake()
                got = client.get("/r")
    assert sha256(got) == sha256(body)
    assert wire.types["s2c"].get("retry", 0) >= 1
    assert wire.types["c2s"].get("initial", 0) >= 2  # the first Initial and the one with the token


# versionnegotiation ---------------------------------------------------------------------------
def _initial_with_version(version: int, dcid: bytes, scid: bytes) -> bytes:
    """A 1200-byte datagram with a long header of ``version`` (contents opaque past the CIDs)."""
    header = (
        bytes([0xC0 | 0x03])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
    )
    return header + os.urandom(1200 - len(header))


def _version_negotiation(server: QuicnetServer, version: int) -> tuple[bytes, bytes, list[int]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    dcid, scid = os.urandom(8), os.urandom(5)
    answers: list[bytes] = []

    def receive() -> bool:
        try:
            answers.append(sock.recv(65536))
        except BlockingIOError:
            return False
        return True

    try:
        sock.sendto(_initial_with_version(version, dcid, scid), server.address)
        pump(server, until=receive, timeout=10)
    finally:
        sock.close()
    (vn,) = answers
    assert vn[0] & 0x80, "a long header"
    assert vn[1:5] == b"\x00\x00\x00\x00", "version 0: Version Negotiation"
    assert packet_types(vn) == ["vn"]
    pos = 5
    got_dcid = vn[pos + 1 : pos + 1 + vn[pos]]
    pos += 1 + vn[pos]
    got_scid = vn[pos + 1 : pos + 1 + vn[pos]]
    pos += 1 + vn[pos]
    assert (len(vn) - pos) % 4 == 0
    versions = [int.from_bytes(vn[i : i + 4], "big") for i in range(pos, len(vn), 4)]
    # RFC 9000 §17.2.1: the CIDs come back swapped.
    assert got_dcid == scid and got_scid == dcid
    return got_dcid, got_scid, versions


@pytest.mark.parametrize("offered", [GREASE_1A, GREASE_5A], ids=["0x1a2a3a4a", "0x5a6a7a8a"])
def test_versionnegotiation_unknown_version(ident: Any, offered: int) -> None:
    """An Initial-sized datagram with an unknown version gets a VN listing version 1, and
    never the version it offered (the client would have to discard it, RFC 9000 §6.2),
    even when that is a reserved version like the ones a server greases with."""
    server = QuicnetServer(quicnet_server_config(ident))
    with closing(server):
        _, _, versions = _version_negotiation(server, offered)
        assert QuicVersion.V1 in versions
        assert offered not in versions
        assert server.endpoint.stats.version_negotiations_sent == 1
        assert not server.connections


@pytest.mark.parametrize("offered", [GREASE_1A, GREASE_5A], ids=["0x1a2a3a4a", "0x5a6a7a8a"])
def test_versionnegotiation_peer_client(
    stack: Any, ident: Any, peer_loop: Any, offered: int
) -> None:
    """The peer client, with supported_versions=[offered, VERSION_1], starts with the unknown
    version, gets quicnet's VN and completes on version 1."""
    body = payload(50_000, seed=11)
    server = QuicnetServer(quicnet_server_config(ident), {"/vn": body})
    with closing(server), relay(server.address) as wire:
        versions = [offered, stack.QuicProtocolVersion.VERSION_1]
        # Bounded: a client that discards every VN would retry until its own timeout.
        got, _ = _get_via(
            stack,
            ident,
            peer_loop,
            server,
            wire.address,
            "/vn",
            timeout=10.0,
            supported_versions=versions,
        )
        assert sha256(got) == sha256(body)
        # One VN per datagram of the first flight (qh3's ClientHello spans two).
        assert server.endpoint.stats.version_negotiations_sent == wire.types["s2c"].get("vn") >= 1
        assert wire.types["c2s"].get("unknown", 0) >= 1, "the first Initial had the unknown version"
        (rec,) = server.connections
        assert rec.conn.version == QuicVersion.V1


def test_versionnegotiation_quicnet_client(stack: Any, ident: Any, peer_loop: Any) -> None:
    """quicnet's client starts with v2; the peer speaks only v1 and answers with a VN."""
    body = payload(50_000, seed=12)
    app = PeerApp(files={"/vn": body})
    config = peer_config(
        stack, ident, is_client=False, supported_versions=[stack.QuicProtocolVersion.VERSION_1]
    )
    with peer_server(peer_loop, stack, config, app) as ps, relay(ps.address) as wire:
        client = QuicnetClient(
            quicnet_client_config(
                ident,
                version=QuicVersion.V2,
                supported_versions=(QuicVersion.V2, QuicVersion.V1),
            ),
            wire.address,
        )
        with closing(client):
            client.handshake()
            got = client.get("/vn")
            assert client.conn.version == QuicVersion.V1
    assert sha256(got) == sha256(body)
    assert wire.types["s2c"].get("vn") == 1


# amplificationlimit ---------------------------------------------------------------------------
def test_amplificationlimit(stack: Any, tmp_path: Any, peer_loop: Any) -> None:
    """With a certificate chain far over 3x the client's Initial, the quicnet server never
    sends more than 3x what it received before the client's first Handshake packet."""
    big = make_identity(tmp_path / "big", padding_names=400)
    assert big.chain_size > 2 * 3 * 1200  # the first flight is twice what the limit allows
    body = payload(20_000, seed=13)
    server = QuicnetServer(quicnet_server_config(big), {"/amp": body})
    with closing(server), relay(server.address) as wire:
        got, _ = _get_via(stack, big, peer_loop, server, wire.address, "/amp")
    assert sha256(got) == sha256(body)
    assert wire.validated, "the client's Handshake packet went by"
    assert wire.pre_validation["c2s"] >= 1200
    assert wire.pre_validation["s2c"] > 0
    assert wire.pre_validation["s2c"] <= 3 * wire.pre_validation["c2s"]
    assert wire.worst_excess <= 0, f"the server ran {wire.worst_excess} bytes past 3x"


# stateless reset ------------------------------------------------------------------------------
RESET_KEY = bytes(range(32))


def _check_resets(wire: Any, first: QuicnetServer, second: QuicnetServer, since: int) -> None:
    """Every datagram the restarted server sent is a reset carrying the old CID's token."""
    assert wire.captured is not None
    after = wire.captured[since:]
    triggers = [d for direction, d in after if direction == "c2s"]
    resets = [d for direction, d in after if direction == "s2c"]
    assert triggers and resets
    assert second.endpoint.stats.stateless_resets_sent == len(resets)
    tokens = set()
    for trigger in triggers:
        assert not trigger[0] & 0x80, "the client kept sending 1-RTT packets"
        dcid = trigger[1:9]
        assert dcid in first.endpoint.connections, "a CID of the connection before the restart"
        assert second.endpoint.reset_token(dcid) == first.endpoint.reset_token(dcid)
        tokens.add(first.endpoint.reset_token(dcid))
    for reset in resets:
        assert 21 <= len(reset) < max(len(t) for t in triggers)
        assert reset[0] & 0xC0 == 0x40, "looks like a short-header packet"
        assert reset[-16:] in tokens


@pytest.mark.parametrize("client", [*STACKS, "quicnet"])
def test_statelessreset(client: str, ident: Any, peer_loop: Any) -> None:
    """A quicnet server restarts on the same port with the same stateless_reset_key; the
    client's next packet gets a stateless reset carrying the token it was given before."""
    files = {"/a": payload(20_000, seed=14), "/b": payload(20_000, seed=15)}
    first = QuicnetServer(quicnet_server_config(ident), files, stateless_reset_key=RESET_KEY)
    port = first.address[1]
    second: QuicnetServer | None = None
    with closing(first), relay(first.address, capture=True) as wire:
        try:
            if client == "quicnet":
                quic = QuicnetClient(quicnet_client_config(ident, idle_timeout=5.0), wire.address)
                with closing(quic):
                    pump(quic, first, until=lambda: quic.connected)
                    slot = quic.request(b"GET /a\r\n")
                    pump(quic, first, until=lambda: quic.response(slot) is not None)
                    assert quic.response(slot) == files["/a"]
                    first.crash()
                    wire.sync()  # what the old server sent is behind us
                    since = len(wire.captured or [])
                    second = QuicnetServer(
                        quicnet_server_config(ident),
                        files,
                        port=port,
                        stateless_reset_key=RESET_KEY,
                    )
                    quic.request(b"GET /b\r\n")
                    pump(quic, second, until=lambda: quic.rec.terminated is not None)
                    terminated = quic.rec.terminated
                    assert terminated is not None
                    assert terminated.stateless_reset, terminated
                    assert terminated.by_peer
            else:
                stack = load_stack(client)
                held: dict[str, Any] = {}
                release = Gate(peer_loop)

                async def scenario(p: Any) -> Any:
                    held["a"] = await p.get("/a")
                    await release.wait()
                    if p.terminated is None:  # its own ACKs may have met the reset already
                        p.open_request(b"GET /b\r\n")
                    return await p.wait_terminated()

                config = peer_config(stack, ident, is_client=True, idle_timeout=2.0)
                future = peer_loop.submit(
                    run_peer_client(stack, config, wire.address, scenario, close=False)
                )
                pump(first, until=lambda: "a" in held or future.done())
                assert held.get("a") == files["/a"]
                first.crash()
                wire.sync()  # what the old server sent is behind us
                since = len(wire.captured or [])
                second = QuicnetServer(
                    quicnet_server_config(ident), files, port=port, stateless_reset_key=RESET_KEY
                )
                release.open()
                terminated = wait_future(future, second)
                assert terminated is not None
                if client == "qh3":
                    # qh3 recognises the token (aioquic ignores stateless resets: it idles out).
                    assert "idle" not in terminated.reason_phrase.lower()
            assert second is not None
            _check_resets(wire, first, second, since)
            assert not second.connections, "the restarted server accepted nothing"
        finally:
            if second is not None:
                second.close()


def test_statelessreset_minimal_size(ident: Any) -> None:
    """A 21-byte stateless reset (RFC 9000 §10.3's minimum) ends a quicnet client's connection.

    quicnet's own endpoint sends resets one byte shorter than their trigger, so
    a restarted quicnet server answers a PING-only packet (29 bytes) with 28.
    Here a raw socket on the restarted port answers every packet with 21 bytes.
    """
    files = {"/a": payload(5_000, seed=16)}
    server = QuicnetServer(quicnet_server_config(ident), files, stateless_reset_key=RESET_KEY)
    address = server.address
    resets = 0
    with closing(server):
        client = QuicnetClient(quicnet_client_config(ident, idle_timeout=3.0), address)
        with closing(client):
            pump(client, server, until=lambda: client.connected)
            slot = client.request(b"GET /a\r\n")
            pump(client, server, until=lambda: client.response(slot) is not None)
            server.crash()
            raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            raw.bind(address)
            raw.setblocking(False)
            try:

                def answer() -> bool:
                    nonlocal resets
                    try:
                        trigger, peer = raw.recvfrom(65536)
                    except BlockingIOError:
                        return client.rec.terminated is not None
                    token = server.endpoint.reset_token(trigger[1:9])
                    raw.sendto(
                        bytes([0x40 | (os.urandom(1)[0] & 0x3F)]) + os.urandom(4) + token, peer
                    )
                    resets += 1
                    return client.rec.terminated is not None

                client.conn.ping()
                # The ping and its probes each get a reset; three unrecognised ones are enough.
                pump(client, until=lambda: answer() or resets >= 3, timeout=15)
            finally:
                raw.close()
            terminated = client.rec.terminated
    assert resets >= 1
    assert terminated is not None
    assert terminated.stateless_reset, terminated
