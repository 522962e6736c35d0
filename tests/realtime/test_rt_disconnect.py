"""Every DisconnectReason, seen by the right side with the right reason and text.

A session that was admitted ends with exactly one PeerDisconnected on the
server and one Disconnected on the client; one that never was (refused, a
rejected certificate, no server) reports only on the client.
"""

from __future__ import annotations

from rtsim import SERVER_ADDR, LinkConfig, RtNode, RtSim, identity
from simnet import deep_size

from quicnet.quic import Address
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.realtime import (
    ConnectRequest,
    Disconnected,
    DisconnectReason,
    PeerConnected,
    PeerDisconnected,
    Settings,
    server_configuration,
)

R = DisconnectReason


def _up(**kwargs: object) -> tuple[RtSim, RtNode]:
    sim = RtSim(seed=4, **kwargs)  # type: ignore[arg-type]
    node = sim.add_client()
    sim.connect_all()
    return sim, node


def _ends(sim: RtSim, node: RtNode, *, server_side: bool = True) -> tuple[object, object]:
    """Run until the session ended on the client (and the server); the one event of each."""
    sim.run_until(
        lambda: sim.ended(node) and (not server_side or sim.peer_ended(node.peer)),
        what="the session's end",
    )
    sim.run_for(1.0)  # nothing more is reported afterwards
    client_side = node.of(Disconnected)
    assert len(client_side) == 1, client_side
    assert not node.client.connected and node.client.ended
    if not server_side:
        return client_side[0], None
    assert sim.server is not None
    server_events = sim.server.of(PeerDisconnected)
    assert len(server_events) == 1, server_events
    assert sim.server_core.peers == []
    return client_side[0], server_events[0]


def test_client_close_is_closed_here_and_closed_by_peer_there() -> None:
    sim, node = _up()
    peer = node.peer
    node.client.close("see you")
    client, server = _ends(sim, node)
    assert client == Disconnected(0, R.CLOSED, "see you")
    assert server == PeerDisconnected(peer, R.CLOSED_BY_PEER, "see you")


def test_kick_is_kicked_on_both_sides_with_the_reason() -> None:
    sim, node = _up()
    peer = node.peer
    sim.server_core.disconnect(peer, "cheating")
    client, server = _ends(sim, node)
    assert client == Disconnected(0, R.KICKED, "cheating")
    assert server == PeerDisconnected(peer, R.KICKED, "cheating")


def test_server_close_is_server_shutdown_for_every_peer() -> None:
    sim = RtSim(seed=5)
    nodes = [sim.add_client() for _ in range(3)]
    sim.connect_all()
    peers = {n.peer for n in nodes}
    sim.server_core.close("maintenance")
    sim.run_until(lambda: all(sim.ended(n) for n in nodes), what="every client told")
    for node in nodes:
        assert node.of(Disconnected) == [Disconnected(0, R.SERVER_SHUTDOWN, "maintenance")]
    assert sim.server is not None
    assert {
        e.peer: (e.reason, e.message) for e in sim.server.of(PeerDisconnected)
    } == dict.fromkeys(peers, (R.SERVER_SHUTDOWN, "maintenance"))


def test_refused_by_the_hook_with_false_or_with_a_reason() -> None:
    seen: list[ConnectRequest] = []

    def accept(request: ConnectRequest) -> bool | str:
        seen.append(request)
        if request.token == b"no":
            return False
        if request.token != b"good":
            return f"bad token {request.token.decode()}"
        return True

    sim = RtSim(seed=6, accept=accept)
    refused = sim.add_client(token=b"no")
    wrong = sim.add_client(token=b"xyz")
    good = sim.add_client(token=b"good")
    sim.run_until(
        lambda: sim.ended(refused) and sim.ended(wrong) and good.client.connected,
        what="the hook's verdicts",
    )
    assert refused.of(Disconnected) == [Disconnected(0, R.REFUSED, "refused")]
    assert wrong.of(Disconnected) == [Disconnected(0, R.REFUSED, "bad token xyz")]
    assert sorted(r.token for r in seen) == [b"good", b"no", b"xyz"]
    assert {r.address for r in seen} == {refused.address, wrong.address, good.address}
    # The server reports only the client it admitted, under the id the hook was told.
    assert sim.server is not None
    assert [e.peer for e in sim.server.of(PeerConnected)] == [good.peer]
    assert [r.peer for r in seen if r.token == b"good"] == [good.peer]
    assert sim.server.of(PeerDisconnected) == []


def test_silence_is_an_idle_timeout_on_both_sides() -> None:
    settings = Settings(idle_timeout=3.0, keepalive_interval=1.0)
    sim, node = _up(settings=settings)
    peer = node.peer
    sim.run_for(10.0)  # keepalives hold an idle session up well past the timeout
    assert node.client.connected and sim.server_core.peers == [peer]
    for link in (sim.link("c1", "server"), sim.link("server", "c1")):
        link.config.loss = 1.0
    client, server = _ends(sim, node)
    assert isinstance(client, Disconnected) and isinstance(server, PeerDisconnected)
    assert client.reason == server.reason == R.IDLE_TIMEOUT
    assert client.message.startswith("idle timeout") and server.message.startswith("idle timeout")


def test_garbage_is_a_protocol_error_on_both_sides_with_the_text() -> None:
    sim, node = _up()
    peer = node.peer
    node.client.connection.send_datagram(b"\x00\x00not a datagram channel")
    client, server = _ends(sim, node)
    assert isinstance(client, Disconnected) and isinstance(server, PeerDisconnected)
    assert server.reason == client.reason == R.PROTOCOL_ERROR
    assert server.peer == peer
    assert server.message == "a datagram on channel 0 (RELIABLE_ORDERED)"
    assert client.message == server.message  # the client is told why


def test_a_wrong_pin_is_certificate_rejected() -> None:
    sim = RtSim(seed=7)
    node = sim.add_client(pin=bytes(32))
    client, _ = _ends(sim, node, server_side=False)
    assert isinstance(client, Disconnected)
    assert client.reason == R.CERTIFICATE_REJECTED
    assert client.message == "peer certificate matches no pinned fingerprint"
    assert sim.server is not None and sim.server.events == []


def test_nobody_listening_is_connection_failed() -> None:
    sim = RtSim(seed=8, server=False, link=LinkConfig())
    node = sim.add_client(handshake_timeout=3.0)
    client, _ = _ends(sim, node, server_side=False)
    assert isinstance(client, Disconnected)
    assert client.reason == R.CONNECTION_FAILED
    assert "handshake" in client.message
    assert client.message and sim.unroutable > 0


def test_a_lost_path_during_the_handshake_is_connection_failed() -> None:
    sim = RtSim(seed=9, link=LinkConfig(loss=1.0))
    node = sim.add_client(handshake_timeout=2.0)
    client, _ = _ends(sim, node, server_side=False)
    assert isinstance(client, Disconnected) and client.reason == R.CONNECTION_FAILED
    assert sim.server is not None and sim.server.events == []


def test_a_restarted_server_resets_the_old_session_and_it_is_connection_failed() -> None:
    """RFC 9000 §10.3: the new server instance, sharing the reset key, answers the old
    session's packets with a stateless reset; the client learns at once, not at idle timeout."""
    sim = RtSim(seed=10, stateless_reset_key=bytes(range(32)))
    node = sim.add_client()
    sim.connect_all()
    old = sim.server
    sim.restart_server()
    server = sim.server
    assert server is not None and server is not old
    sim.send(node, server, 0, sim.payload(50))  # goes to the new instance, which knows nothing
    client, _ = _ends(sim, node, server_side=False)
    assert client == Disconnected(0, R.CONNECTION_FAILED, "reset by the peer (stateless reset)")
    assert server.events == []


class _MuteServer:
    """A QUIC server that completes handshakes with the real-time ALPN, then says nothing."""

    def __init__(self, settings: Settings) -> None:
        ident = identity()
        config = server_configuration(ident.certificate_chain, ident.private_key, settings)
        self.endpoint = QuicEndpoint(config)

    def receive_datagram(self, data: bytes, address: Address, now: float) -> None:
        self.endpoint.receive_datagram(data, address, now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return self.endpoint.datagrams_to_send(now)

    def next_timer(self) -> float | None:
        return self.endpoint.next_timer()

    def handle_timer(self, now: float) -> None:
        self.endpoint.handle_timer(now)

    def next_event(self) -> None:
        while self.endpoint.next_event() is not None:
            pass  # HELLO and all: read and ignored
        return None


def test_a_server_that_never_welcomes_is_connection_failed() -> None:
    """The QUIC handshake completes but no WELCOME answers the HELLO: the client gives up
    after hello_timeout instead of waiting forever."""
    settings = Settings(hello_timeout=1.5, idle_timeout=60.0)
    sim = RtSim(seed=12, server=False, settings=settings)
    sim.server = RtNode("server", _MuteServer(settings), SERVER_ADDR)  # type: ignore[arg-type]
    sim.nodes[SERVER_ADDR] = sim.server
    node = sim.add_client()
    sim.run_until(lambda: node.client.connection.handshake_complete, what="the handshake")
    started = sim.now
    client, _ = _ends(sim, node, server_side=False)
    assert client == Disconnected(0, R.CONNECTION_FAILED, "no WELCOME")
    assert 1.5 <= sim.now - started < 60.0  # the WELCOME deadline, not the idle timeout


def test_every_reason_is_covered_here() -> None:
    """A new DisconnectReason needs a test above (the reasons this file sees)."""
    covered = {
        R.CLOSED,
        R.CLOSED_BY_PEER,
        R.KICKED,
        R.REFUSED,
        R.IDLE_TIMEOUT,
        R.PROTOCOL_ERROR,
        R.SERVER_SHUTDOWN,
        R.CERTIFICATE_REJECTED,
        R.CONNECTION_FAILED,
    }
    assert set(DisconnectReason) == covered


def test_a_server_forgets_sessions_once_they_ended_however_they_ended() -> None:
    """Clients come and go (closing, kicked, silent, refused): the server's memory after
    40 more of them is what it was after the first few, not 40 sessions' worth."""
    settings = Settings(idle_timeout=2.0, keepalive_interval=0.5)
    sim = RtSim(seed=11, settings=settings, accept=lambda r: r.token != b"no")

    def churn(count: int) -> None:
        nodes = [sim.add_client(token=b"no" if i % 4 == 3 else b"") for i in range(count)]
        admitted = [n for i, n in enumerate(nodes) if i % 4 != 3]
        sim.run_until(
            lambda: all(n.client.connected for n in admitted) and all(map(sim.ended, nodes[3::4])),
            what="the churn's clients in",
        )
        for i, node in enumerate(admitted):
            if i % 3 == 0:
                node.client.close("bye")  # the server drains (RFC 9000 §10.2.2), then forgets
            elif i % 3 == 1:
                sim.server_core.disconnect(node.peer)
            else:
                for link in (sim.link(node.name, "server"), sim.link("server", node.name)):
                    link.config.loss = 1.0  # idle timeout
        sim.run_until(lambda: all(map(sim.ended, nodes)), what="every session over")
        sim.run_for(10.0)

    churn(4)
    base = deep_size(sim.server_core)
    churn(40)
    grown = deep_size(sim.server_core) - base
    assert sim.server_core.peers == []
    assert grown < 40 * 500, grown  # a session with its connection is ~15 KB
