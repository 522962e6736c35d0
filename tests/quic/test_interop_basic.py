"""Interop with aioquic and qh3: handshake, transfer, multiplexing, chacha20, keyupdate,
DATAGRAM exchange and QUIC v2, with quicnet as server and as client.

Named after the QUIC interop runner's test cases. The peer runs on its own
asyncio loop in a thread; quicnet runs in the test's thread (see interop_peers).
"""

# The shared fixtures (stack, ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

from interop_peers import (  # noqa: F401  (fixtures are used by name)
    ALPN,
    Gate,
    PeerApp,
    QuicnetClient,
    QuicnetServer,
    closing,
    hard_timeout,
    ident,
    payload,
    peer_config,
    peer_loop,
    peer_server,
    pump,
    quicnet_client_config,
    quicnet_server_config,
    role,
    run_peer_client,
    sha256,
    stack,
    wait_future,
)

from quicnet.quic import AckFrequencyRequest, QuicVersion
from quicnet.tls import CipherSuite


def _download(
    role: str,
    stack: Any,
    ident: Any,
    peer_loop: Any,
    files: dict[str, bytes],
    *,
    quicnet_options: dict[str, Any] | None = None,
    peer_options: dict[str, Any] | None = None,
) -> tuple[dict[str, bytes], Any, Any]:
    """GET every file over one connection; returns (bodies, quicnet record, peer protocol)."""
    quicnet_options = quicnet_options or {}
    peer_options = peer_options or {}
    names = list(files)
    if role == "quicnet_server":
        server = QuicnetServer(quicnet_server_config(ident, **quicnet_options), files)
        with closing(server):
            held: dict[str, Any] = {}

            async def scenario(p: Any) -> dict[str, bytes]:
                held["proto"] = p
                got = await p.get_many(names)
                return {name: body for name, body in got.values()}

            config = peer_config(stack, ident, is_client=True, **peer_options)
            bodies = wait_future(
                peer_loop.submit(run_peer_client(stack, config, server.address, scenario)),
                server,
            )
            (rec,) = server.connections
            return bodies, rec, held["proto"]
    app = PeerApp(files=files)
    config = peer_config(stack, ident, is_client=False, **peer_options)
    with peer_server(peer_loop, stack, config, app) as ps:
        client = QuicnetClient(quicnet_client_config(ident, **quicnet_options), ps.address)
        with closing(client):
            client.handshake()
            slots = {name: client.request(f"GET {name}\r\n".encode()) for name in names}
            pump(client, until=lambda: all(client.response(s) is not None for s in slots.values()))
            bodies = {name: client.response(slot) for name, slot in slots.items()}
            (proto,) = app.protocols
            return bodies, client.rec, proto  # type: ignore[return-value]


def test_handshake(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """Both sides complete the handshake on QUIC v1 with ALPN hq-interop, then exchange data."""
    body = payload(1000, seed=1)
    bodies, rec, proto = _download(role, stack, ident, peer_loop, {"/hello": body})
    assert bodies == {"/hello": body}
    assert rec.handshake is not None and rec.handshake.alpn_protocol == ALPN
    assert rec.conn.alpn_protocol == ALPN
    assert rec.conn.version == QuicVersion.V1
    assert rec.conn.handshake_complete
    assert proto.alpn == ALPN
    if role == "quicnet_client":
        # The server confirms with HANDSHAKE_DONE; the quicnet client must have seen it.
        assert rec.conn.handshake_confirmed


def test_ack_frequency_request_to_a_peer_without_the_extension(
    role: str, stack: Any, ident: Any, peer_loop: Any
) -> None:
    """quicnet offers min_ack_delay (draft-ietf-quic-ack-frequency) to every peer, and
    asks for an ACK frequency only of one that offers it: neither aioquic nor qh3 does,
    so the request stays unsent and the transfer runs as usual."""
    body = payload(300_000, seed=7)
    options = {"ack_frequency": AckFrequencyRequest(0.05)}
    bodies, rec, _ = _download(role, stack, ident, peer_loop, {"/f": body}, quicnet_options=options)
    assert bodies == {"/f": body}
    assert rec.conn.local_params.min_ack_delay == 1000
    assert rec.conn.remote_params.min_ack_delay is None
    assert rec.conn.acks.request is None
    assert rec.conn.recovery.max_ack_delay == rec.conn.remote_params.max_ack_delay / 1000


def test_transfer(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """5 MB on one stream, checked by SHA-256."""
    body = payload(5_000_000, seed=2)
    bodies, _, _ = _download(role, stack, ident, peer_loop, {"/5mb": body})
    assert len(bodies["/5mb"]) == len(body)
    assert sha256(bodies["/5mb"]) == sha256(body)


def test_multiplexing(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """200 concurrent streams, more than either side's initial stream limit; each checked."""
    files = {f"/m{i:03d}": payload(500 + 37 * i, seed=1000 + i) for i in range(200)}
    bodies, rec, _ = _download(role, stack, ident, peer_loop, files)
    assert len(bodies) == 200
    for name, body in files.items():
        assert sha256(bodies[name]) == sha256(body), name
    if role == "quicnet_server":
        # The peer opened 200 streams although quicnet allowed 128 at first: MAX_STREAMS worked.
        assert rec.conn.configuration.initial_max_streams_bidi < 200
        assert len(rec.modes) == 200
    else:
        # 200 distinct client-initiated bidirectional streams, each answered.
        assert len(rec.responses) == 200
        assert all(stream_id % 4 == 0 for stream_id in rec.responses)


def test_chacha20(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """Only TLS_CHACHA20_POLY1305_SHA256 on both sides: handshake and data still work."""
    body = payload(300_000, seed=3)
    bodies, rec, _ = _download(
        role,
        stack,
        ident,
        peer_loop,
        {"/chacha": body},
        quicnet_options={"cipher_suites": (CipherSuite.TLS_CHACHA20_POLY1305_SHA256,)},
        peer_options={"cipher_suites": [stack.CipherSuite.CHACHA20_POLY1305_SHA256]},
    )
    assert sha256(bodies["/chacha"]) == sha256(body)
    assert rec.conn.tls.cipher_suite == CipherSuite.TLS_CHACHA20_POLY1305_SHA256


def test_v2(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """QUIC version 2 (RFC 9369) end to end when the client starts with it."""
    body = payload(200_000, seed=4)
    v2 = stack.QuicProtocolVersion.VERSION_2
    v1 = stack.QuicProtocolVersion.VERSION_1
    bodies, rec, _ = _download(
        role,
        stack,
        ident,
        peer_loop,
        {"/v2": body},
        quicnet_options={"version": QuicVersion.V2} if role == "quicnet_client" else {},
        peer_options={"supported_versions": [v2, v1]},
    )
    assert sha256(bodies["/v2"]) == sha256(body)
    assert rec.conn.version == QuicVersion.V2


def test_keyupdate(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """Key updates both ways mid-transfer: quicnet starts one, later the peer starts one.

    1.5 MB go up a stream and come back (echo), so both directions carry data
    while the keys change; quicnet must count its own update and the one it
    followed, and the echo must be byte-exact.
    """
    data = payload(1_500_000, seed=5)
    quicnet_at, peer_at = 300_000, 900_000
    # Ethernet-sized datagrams: on loopback PMTU discovery would reach 64 KB ones, and
    # 600 KB would pass in a round trip or two, before qh3 may start its own update
    # (it refuses while the one it followed is unconfirmed, RFC 9001 §6.1).
    sized = {"max_udp_payload_size": 1452}
    if role == "quicnet_server":
        server = QuicnetServer(quicnet_server_config(ident, **sized), key_update_at=quicnet_at)
        with closing(server):
            held: dict[str, Any] = {}

            async def scenario(p: Any) -> bytes:
                held["proto"] = p
                return bytes(await p.echo(data))

            config = peer_config(stack, ident, is_client=True)
            app = PeerApp(key_update_at=peer_at)
            echoed = wait_future(
                peer_loop.submit(run_peer_client(stack, config, server.address, scenario, app=app)),
                server,
            )
            (rec,) = server.connections
            proto = held["proto"]
            conn = rec.conn
    else:
        app = PeerApp(key_update_at=peer_at)
        with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
            client = QuicnetClient(
                quicnet_client_config(ident, **sized), ps.address, key_update_at=quicnet_at
            )
            with closing(client):
                client.handshake()
                slot = client.request(data)
                pump(client, until=lambda: client.response(slot) is not None)
                echoed = client.response(slot)  # type: ignore[assignment]
                (proto,) = app.protocols
                rec, conn = client.rec, client.conn
    assert sha256(echoed) == sha256(data)
    assert rec.key_updates_requested == 1
    assert proto.key_updates_requested == 1
    # One update quicnet started and one it followed.
    assert conn.key_updates == 2
    assert conn.key_phase == conn.recv_key_phase == 0


def test_datagram(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """RFC 9221 DATAGRAM frames both ways; quicnet reports each of its own as acknowledged."""
    ours = [bytes([i]) * (1 + 53 * i) for i in range(20)]
    theirs = [b"peer-%02d-" % i + bytes(7 * i) for i in range(20)]
    if role == "quicnet_server":
        server = QuicnetServer(quicnet_server_config(ident))
        with closing(server):
            release = Gate(peer_loop)
            held: dict[str, Any] = {}

            async def scenario(p: Any) -> None:
                held["proto"] = p
                p.send_datagrams(theirs)
                await p.wait_until(lambda: len(p.datagrams) >= len(ours))
                await release.wait()  # stay open until quicnet has seen its acks

            config = peer_config(stack, ident, is_client=True)
            future = peer_loop.submit(run_peer_client(stack, config, server.address, scenario))
            pump(server, until=lambda: any(r.handshake for r in server.connections))
            (rec,) = server.connections
            ids = [rec.conn.send_datagram(d) for d in ours]
            pump(
                server,
                until=lambda: (
                    future.done()
                    or (len(rec.datagrams) >= len(theirs) and len(rec.datagrams_acked) >= len(ids))
                ),
            )
            release.open()
            wait_future(future, server)
            proto = held["proto"]
    else:
        app = PeerApp()
        with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
            client = QuicnetClient(quicnet_client_config(ident), ps.address)
            with closing(client):
                client.handshake()
                pump(
                    client,
                    until=lambda: len(app.protocols) == 1 and app.protocols[0].handshake_done,
                )
                (proto,) = app.protocols
                peer_loop.call(lambda: proto.send_datagrams(theirs))
                ids = [client.conn.send_datagram(d) for d in ours]
                rec = client.rec
                pump(
                    client,
                    until=lambda: (
                        len(rec.datagrams) >= len(theirs)
                        and len(rec.datagrams_acked) >= len(ids)
                        and len(proto.datagrams) >= len(ours)
                    ),
                )
    assert rec.conn.max_datagram_size is not None
    assert sorted(rec.datagrams) == sorted(theirs)
    assert sorted(proto.datagrams) == sorted(ours)
    assert rec.datagrams_acked == set(ids)
    assert not rec.datagrams_lost
