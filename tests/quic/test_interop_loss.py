"""Interop with aioquic and qh3 over a lossy path: handshakeloss and transferloss, plus a
path that goes dark (idle timeout).

A UDP relay in the test (interop_peers.UdpRelay) drops datagrams with a seeded
RNG, independently in each direction; transfers must still be byte-exact.
"""

# The shared fixtures (stack, ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest
from interop_peers import (  # noqa: F401  (fixtures are used by name)
    PeerApp,
    QuicnetClient,
    QuicnetServer,
    closing,
    drop_after,
    drop_first,
    hard_timeout,
    ident,
    load_stack,
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


def _download_through(
    role: str,
    stack: Any,
    ident: Any,
    peer_loop: Any,
    files: dict[str, bytes],
    policies: list[Any],
    timeout: float = 30.0,
) -> tuple[list[bytes], list[dict[str, int]]]:
    """One connection per policy, each through its own relay, each GETting every file."""
    names = list(files)
    bodies: list[bytes] = []
    drops: list[dict[str, int]] = []
    if role == "quicnet_server":
        server = QuicnetServer(quicnet_server_config(ident), files)
        with closing(server):
            for policy in policies:
                with relay(server.address, policy) as wire:

                    async def scenario(p: Any) -> list[bytes]:
                        got = await p.get_many(names)
                        return [body for _, body in got.values()]

                    config = peer_config(stack, ident, is_client=True)
                    future = peer_loop.submit(
                        run_peer_client(stack, config, wire.address, scenario, timeout=timeout)
                    )
                    bodies += wait_future(future, server, timeout=timeout + 5)
                    drops.append(dict(wire.dropped))
        return bodies, drops
    app = PeerApp(files=files)
    with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
        for policy in policies:
            with relay(ps.address, policy) as wire:
                client = QuicnetClient(quicnet_client_config(ident), wire.address)
                with closing(client):
                    client.handshake(timeout=timeout)
                    bodies += [client.get(name, timeout=timeout) for name in names]
                drops.append(dict(wire.dropped))
    return bodies, drops


@pytest.mark.parametrize(
    "role, stack_name",
    [
        ("quicnet_server", "aioquic"),
        ("quicnet_server", "qh3"),
        pytest.param("quicnet_client", "aioquic"),
        pytest.param("quicnet_client", "qh3"),
    ],
)
def test_handshakeloss(role: str, stack_name: str, ident: Any, peer_loop: Any) -> None:
    """Three handshakes, each losing ~30% of the first 12 datagrams of each direction."""
    body = payload(10_000, seed=20)
    policies = [drop_first(12, 0.3, seed=200 + 2 * i) for i in range(3)]
    bodies, drops = _download_through(
        role, load_stack(stack_name), ident, peer_loop, {"/hs": body}, policies, timeout=12.0
    )
    assert [sha256(b) for b in bodies] == [sha256(body)] * 3
    assert all(d["c2s"] + d["s2c"] > 0 for d in drops), drops


def _drop_first_matching(direction: str, kind: str) -> Any:
    """Drop only the first datagram going ``direction`` that holds a ``kind`` packet."""
    done = False

    def policy(d: str, index: int, data: bytes) -> bool:
        nonlocal done
        if done or d != direction or kind not in packet_types(data):
            return True
        done = True
        return False

    return policy


def _drop_c2s(*indexes: int) -> Any:
    """Drop the client's datagrams with these indexes (0: its first), nothing else."""

    def policy(direction: str, index: int, data: bytes) -> bool:
        return direction != "c2s" or index not in indexes

    return policy


def test_handshakeloss_client_hello_lost(stack: Any, ident: Any, peer_loop: Any) -> None:
    """The quicnet client's first datagram (the ClientHello) is lost; it must send it again."""
    body = payload(10_000, seed=23)
    bodies, drops = _download_through(
        "quicnet_client", stack, ident, peer_loop, {"/hs": body}, [_drop_c2s(0)], timeout=12.0
    )
    assert sha256(bodies[0]) == sha256(body)
    assert drops == [{"c2s": 1, "s2c": 0}]


def test_handshakeloss_client_hello_and_first_probe_lost(
    stack: Any, ident: Any, peer_loop: Any
) -> None:
    """The ClientHello and the first probe datagram are lost; the second probe is the first
    packet the server sees, so it too must carry the ClientHello."""
    body = payload(10_000, seed=25)
    bodies, drops = _download_through(
        "quicnet_client", stack, ident, peer_loop, {"/hs": body}, [_drop_c2s(0, 1)], timeout=12.0
    )
    assert sha256(bodies[0]) == sha256(body)
    assert drops == [{"c2s": 2, "s2c": 0}]


@pytest.mark.parametrize("stack_name", ["aioquic", "qh3"])
def test_handshakeloss_server_flight_lost(stack_name: str, ident: Any, peer_loop: Any) -> None:
    """The quicnet server's first datagram with Handshake packets is lost; it must resend it
    (qh3 does not acknowledge PING-only Handshake probes, so the probes must carry it)."""
    body = payload(10_000, seed=24)
    policy = _drop_first_matching("s2c", "handshake")
    bodies, drops = _download_through(
        "quicnet_server", load_stack(stack_name), ident, peer_loop, {"/hs": body}, [policy], 12.0
    )
    assert sha256(bodies[0]) == sha256(body)
    assert drops == [{"c2s": 0, "s2c": 1}]


def test_transferloss(role: str, stack: Any, ident: Any, peer_loop: Any) -> None:
    """1 MB with 3% of the datagrams lost each way after the handshake; byte-exact."""
    body = payload(1_000_000, seed=21)
    (policy,) = [drop_after(15, 0.03, seed=300)]
    bodies, drops = _download_through(role, stack, ident, peer_loop, {"/tl": body}, [policy])
    assert sha256(bodies[0]) == sha256(body)
    (dropped,) = drops
    assert dropped["s2c"] > 0 and dropped["c2s"] > 0, dropped


def test_idle_timeout_when_the_path_goes_dark(ident: Any, peer_loop: Any) -> None:
    """After the path drops everything, quicnet's client gives up after its idle timeout.

    The peer (aioquic) sends no stateless reset and nothing else ever arrives;
    the client keeps probing. With idle_timeout=0.5 s it must end the
    connection with an idle timeout, well inside the few seconds allowed here.
    """
    aioquic = load_stack("aioquic")
    app = PeerApp(files={"/a": payload(1_000, seed=22)})
    config = peer_config(aioquic, ident, is_client=False)
    with peer_server(peer_loop, aioquic, config, app) as ps, relay(ps.address) as wire:
        client = QuicnetClient(quicnet_client_config(ident, idle_timeout=0.5), wire.address)
        with closing(client):
            client.handshake()
            assert client.get("/a") == app.files["/a"]
            wire.policy = lambda direction, index, data: False  # the path goes dark
            client.conn.ping()
            pump(client, until=lambda: client.rec.terminated is not None, timeout=6)
            terminated = client.rec.terminated
    assert terminated is not None
    assert not terminated.by_peer
    assert not terminated.stateless_reset
