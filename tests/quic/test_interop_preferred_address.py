"""A server's preferred address (RFC 9000 §9.6) across implementations, on loopback.

quicnet's ``UdpServer`` listens on 127.0.0.1 port A and offers port B; aioquic's
client (1.7 probes a server's preferred address once the handshake is
confirmed and switches once the path is validated) downloads 2 MB. The proof
that it moved: quicnet's server connection sends from B at the end and
received the client's packets there, and the body hashes right.

qh3's client is not tested: its native core leaves preferred_address inactive
(qh3/quic/connection.py says so), so it would never move. No peer server
offers a preferred address to quicnet's client (aioquic's and qh3's servers
have no such option): quicnet's client is tested against quicnet's server in
test_driver_preferred_address.py and test_interop_cli.py.
"""

# The shared fixtures (ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

from counting_socket import CountingSocket
from interop_peers import (  # noqa: F401  (fixtures are used by name)
    QuicnetServer,
    closing,
    ident,
    load_stack,
    payload,
    peer_config,
    peer_loop,
    quicnet_server_config,
    run_peer_client,
    sha256,
    wait_future,
)

BODY = payload(2_000_000, seed=60)


def test_aioquic_client_moves_to_the_preferred_address(ident: Any, peer_loop: Any) -> None:
    stack = load_stack("aioquic")
    config = quicnet_server_config(ident, preferred_address_v4=("127.0.0.1", 0))
    server = QuicnetServer(config, {"/big.bin": BODY})
    ((sock_b, address_b, sender_b),) = server.driver.preferred
    counter = CountingSocket(sock_b)
    server.driver.preferred = ((counter, address_b, sender_b),)  # type: ignore[assignment]
    assert address_b[1] != server.address[1]
    with closing(server):

        async def scenario(p: Any) -> bytes:
            body = await p.get("/big.bin")
            return body  # type: ignore[no-any-return]

        client_config = peer_config(stack, ident, is_client=True)
        body = wait_future(
            peer_loop.submit(run_peer_client(stack, client_config, server.address, scenario)),
            server,
        )
        assert sha256(body) == sha256(BODY)
        (rec,) = server.connections
        current = rec.conn.paths.current
        # The server sent from B (its current path's local address) and heard the client
        # there: the client validated B and sent its non-probing packets there (§9.6.2).
        assert current is not None and current.local == address_b
        assert counter.received > 3 and rec.conn.path_migrations == 1
