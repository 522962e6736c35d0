"""Bad input closes only its sender, with PROTOCOL_ERROR and a reason; everyone else
keeps exchanging messages on every channel.

The offender is a real client whose QUIC connection is then used directly
to write what a broken or hostile peer could: garbage datagrams and streams
on every channel, malformed or oversized fragments, an undefined channel, a
misused control stream; or a client with larger limits than the server's;
or a flood of QUIC handshakes that never say HELLO.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rtsim import LinkConfig, RtNode, RtSim, identity, lossy
from simnet import deep_size

from quicnet.quic import ConnectionTerminated, QuicConnection
from quicnet.realtime import (
    Disconnected,
    DisconnectReason,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    Settings,
    client_configuration,
)
from quicnet.realtime.fragments import max_fragments
from quicnet.realtime.wire import (
    STREAM_ORDERED,
    STREAM_UNORDERED,
    Hello,
    Welcome,
    encode_control,
    encode_datagram_header,
    encode_varint,
)

SETTINGS = Settings(max_message_size=10_000, max_unreliable_message_size=3000, hello_timeout=1.0)
TABLE = SETTINGS.channel_table()
#: What the offender does, given the simulation and its QUIC connection.
Offence = Callable[[RtSim, QuicConnection], None]


def _datagram(data: bytes) -> Offence:
    def write(sim: RtSim, conn: QuicConnection) -> None:
        conn.send_datagram(data)

    return write


def _stream(data: bytes, *, end: bool = False) -> Offence:
    def write(sim: RtSim, conn: QuicConnection) -> None:
        stream_id = conn.create_stream(bidirectional=False)
        conn.send_stream_data(stream_id, data, end_stream=end)

    return write


def _control(data: bytes, *, end: bool = False) -> Offence:
    def write(sim: RtSim, conn: QuicConnection) -> None:
        conn.send_stream_data(0, data, end_stream=end)

    return write


def _fragments(count: int, size: int, index_range: range | None = None) -> Offence:
    def write(sim: RtSim, conn: QuicConnection) -> None:
        for index in index_range or range(count):
            header = encode_datagram_header(1, None, (77, index, count))
            conn.send_datagram(header + bytes(size))

    return write


def _reset_ordered(sim: RtSim, conn: QuicConnection) -> None:
    """An ordered stream whose header went, then RESET_STREAM (the reset alone could be an
    unordered message abandoned before its header left, which is allowed)."""
    stream_id = conn.create_stream(bidirectional=False)
    conn.send_stream_data(stream_id, bytes((STREAM_ORDERED, 0)) + encode_varint(4000) + bytes(10))
    sim.run_for(0.2)
    conn.reset_stream(stream_id, 0)


OFFENCES: dict[str, tuple[Offence, str]] = {
    # Datagrams, on every channel of the default table and beyond it.
    "datagram-ch0": (_datagram(b"\x00\x00x"), "a datagram on channel 0 (RELIABLE_ORDERED)"),
    "datagram-ch2": (_datagram(b"\x02\x00x"), "a datagram on channel 2 (RELIABLE_UNORDERED)"),
    "datagram-ch1-flags": (_datagram(b"\x01\x80x"), "reserved bits set"),
    "datagram-ch3-truncated": (_datagram(b"\x03\x00"), "datagram header truncated"),
    "datagram-ch3-flags": (_datagram(b"\x03\x04\x00x"), "reserved bits set"),
    "datagram-undefined-channel": (_datagram(b"\x4d\x00x"), "channel 77, not defined"),
    "datagram-runt": (_datagram(b"\x01"), "shorter than its header"),
    "fragment-index-beyond-count": (
        _datagram(b"\x01\x01\x05\x04\x03xyz"),
        "fragment 4 of 3",
    ),
    "fragments-too-many": (
        _fragments(max_fragments(3000) + 1, 600, range(1)),
        f"fragments; at most {max_fragments(3000)}",
    ),
    "fragment-runt": (_fragments(3, 10, range(1)), "carries 10 bytes"),
    "fragmented-message-oversized": (
        _fragments(max_fragments(3000), 600),
        "a fragmented message over 3000 bytes",
    ),
    # Streams.
    "stream-unordered-kind-on-ordered-channel": (
        _stream(bytes((STREAM_UNORDERED, 0)) + b"x", end=True),
        "kind 1 on channel 0 (RELIABLE_ORDERED)",
    ),
    "stream-on-unreliable-channel": (
        _stream(bytes((STREAM_ORDERED, 1)) + b"\x01x"),
        "kind 0 on channel 1 (UNRELIABLE)",
    ),
    "stream-on-sequenced-channel": (
        _stream(bytes((STREAM_UNORDERED, 3)) + b"x", end=True),
        "kind 1 on channel 3 (SEQUENCED)",
    ),
    "stream-unknown-kind": (_stream(bytes((7, 2)) + b"x", end=True), "kind 7 on channel 2"),
    "stream-undefined-channel": (
        _stream(bytes((STREAM_ORDERED, 77)) + b"\x01x"),
        "on channel 77, not defined",
    ),
    "stream-ends-inside-header": (_stream(b"\x00", end=True), "ended inside its header"),
    "ordered-stream-ends": (
        _stream(bytes((STREAM_ORDERED, 0)) + b"\x01x", end=True),
        "the ordered stream of channel 0 ended",
    ),
    "ordered-stream-reset": (_reset_ordered, "was reset"),
    "ordered-length-over-limit": (
        _stream(bytes((STREAM_ORDERED, 0)) + encode_varint(10_001)),
        "a reliable message of 10001 bytes; the limit is 10000",
    ),
    "unordered-message-over-limit": (
        _stream(bytes((STREAM_UNORDERED, 2)) + bytes(10_001), end=True),
        "a reliable message over 10000 bytes",
    ),
    # The control stream.
    "second-hello": (_control(encode_control(Hello(1, b"", TABLE))), "a second HELLO"),
    "welcome-to-server": (_control(encode_control(Welcome(1))), "WELCOME sent to a server"),
    "control-message-too-long": (
        _control(encode_varint(0x21) + encode_varint(100_000)),
        "a control message of 100000 bytes",
    ),
    "control-stream-ends": (_control(b"", end=True), "the control stream ended"),
}


def _world(seed: int) -> tuple[RtSim, RtNode, list[RtNode]]:
    sim = RtSim(seed=seed, settings=SETTINGS, link=lossy(0.02))
    offender = sim.add_client()
    good = [sim.add_client() for _ in range(2)]
    sim.connect_all()
    return sim, offender, good


def _tick(sim: RtSim, good: list[RtNode]) -> None:
    """One tick of play for the good clients: a message each way on every channel."""
    server = sim.server
    assert server is not None
    for node in good:
        for channel in SETTINGS.channels:
            sim.send(node, server, channel, sim.payload(40 + 300 * channel))
            sim.send(server, node, channel, sim.payload(60 + 200 * channel))
    sim.run_for(0.02)


def _received(sim: RtSim, good: list[RtNode]) -> dict[tuple[str, str, int], int]:
    return {
        key: len(flow.received)
        for key, flow in sim.ledger.flows.items()
        if any(n.name in key for n in good)
    }


def _check_only_offender_closed(
    sim: RtSim, offender: RtNode, good: list[RtNode], peer: int, text: str
) -> None:
    sim.run_until(lambda: sim.ended(offender) and sim.peer_ended(peer), what="offender closed")
    before = _received(sim, good)
    for _ in range(25):
        _tick(sim, good)
    sim.run_until(sim.ledger.reliable_done, what="the good clients' messages")
    sim.ledger.check_complete()
    after = _received(sim, good)
    # Every flow of the good clients moved on after the offender was gone (reliable ones by
    # all 25 messages, unreliable ones by most).
    assert all(after[key] >= before.get(key, 0) + 15 for key in after), (before, after)
    assert sorted(sim.server_core.peers) == sorted(n.peer for n in good)
    assert all(n.client.connected for n in good)
    assert sim.server is not None
    (closed,) = sim.server.of(PeerDisconnected)
    assert closed.peer == peer and closed.reason == DisconnectReason.PROTOCOL_ERROR
    assert text in closed.message, closed.message
    (told,) = offender.of(Disconnected)
    assert told == Disconnected(0, DisconnectReason.PROTOCOL_ERROR, closed.message)


@pytest.mark.parametrize("name", list(OFFENCES))
def test_bad_input_closes_only_its_sender(name: str) -> None:
    offence, text = OFFENCES[name]
    sim, offender, good = _world(seed=len(name))
    peer = offender.peer
    for _ in range(5):
        _tick(sim, good)
    offence(sim, offender.client.connection)
    sim.flush()
    _check_only_offender_closed(sim, offender, good, peer, text)


@pytest.mark.parametrize(
    ("channel", "limits", "text"),
    [
        (0, {"max_message_size": 50_000}, "a reliable message of 20000 bytes; the limit is 10000"),
        (2, {"max_message_size": 50_000}, "a reliable message over 10000 bytes"),
        (1, {"max_unreliable_message_size": 20_000}, "fragments; at most 6"),
        (3, {"max_unreliable_message_size": 20_000}, "fragments; at most 6"),
    ],
)
def test_a_message_over_the_servers_limit_closes_only_its_sender(
    channel: int, limits: dict[str, int], text: str
) -> None:
    """A client with larger limits than the server's (the same channel table) sends one."""
    sim = RtSim(seed=30 + channel, settings=SETTINGS, link=lossy(0.02))
    offender = sim.add_client(settings=Settings(**limits))  # type: ignore[arg-type]
    good = [sim.add_client() for _ in range(2)]
    sim.connect_all()
    peer = offender.peer
    _tick(sim, good)
    offender.client.send(channel, bytes(20_000))
    _check_only_offender_closed(sim, offender, good, peer, text)


@pytest.mark.parametrize("channel", [1, 3])
def test_a_single_datagram_over_the_servers_unreliable_limit_closes_its_sender(
    channel: int,
) -> None:
    """With a limit below one datagram, a message that fits one datagram can still be too
    large: the limit holds for what is accepted, not only for what is fragmented."""
    small = Settings(max_unreliable_message_size=200, hello_timeout=1.0)
    sim = RtSim(seed=35 + channel, settings=small, link=lossy(0.02))
    offender = sim.add_client(settings=Settings(max_unreliable_message_size=1000))
    good = [sim.add_client() for _ in range(2)]
    sim.connect_all()
    peer = offender.peer
    server = sim.server
    assert server is not None
    for node in good:
        sim.send(node, server, channel, sim.payload(200))  # at the limit: delivered
    for _ in range(50):  # unreliable over a lossy link: again until one copy arrives
        offender.client.send(channel, bytes(500))
        sim.run_for(0.1)
        if sim.ended(offender):
            break
    sim.run_until(lambda: sim.ended(offender) and sim.peer_ended(peer), what="offender closed")
    (closed,) = server.of(PeerDisconnected)
    assert closed == PeerDisconnected(
        peer,
        DisconnectReason.PROTOCOL_ERROR,
        "an unreliable message of 500 bytes; the limit is 200",
    )
    assert sorted(sim.server_core.peers) == sorted(n.peer for n in good)
    sim.run_for(0.5)
    for node in good:
        assert sim.ledger.flow(node.name, "server", channel).received == [0]


def test_a_second_ordered_stream_for_a_channel_closes_its_sender() -> None:
    sim, offender, good = _world(seed=40)
    peer = offender.peer
    server = sim.server
    assert server is not None
    sim.send(offender, server, 0, sim.payload(100))  # opens the offender's ordered stream
    sim.run_for(0.2)
    _stream(bytes((STREAM_ORDERED, 0)) + b"\x01x")(sim, offender.client.connection)
    sim.flush()
    _check_only_offender_closed(sim, offender, good, peer, "a second ordered stream for channel 0")


def test_a_flood_of_handshakes_without_hello_is_closed_and_play_goes_on() -> None:
    sim, _, good = _world(seed=50)
    sim.server_core.disconnect(sim.clients[0].peer, "not in this test")
    config = client_configuration("localhost", SETTINGS, pin=identity().fingerprint)
    # Clean paths for the flood, so the server's CONNECTION_CLOSE is what each one sees.
    flood = [sim.add_raw(QuicConnection(config), link=LinkConfig()) for _ in range(120)]
    for _ in range(150):  # 3 s of play while the flood handshakes and idles
        _tick(sim, good)
    sim.run_until(sim.ledger.reliable_done, what="the good clients' messages")
    sim.ledger.check_complete()
    assert sorted(sim.server_core.peers) == sorted(n.peer for n in good)
    for node in flood:
        ends = [e for e in node.events if isinstance(e, ConnectionTerminated)]
        assert len(ends) == 1 and ends[0].by_peer, node
        assert ends[0].reason == "no HELLO" and ends[0].is_application
    # Sessions that never said HELLO were never peers: no event reports them.
    assert sim.server is not None
    reported = {e.peer for e in sim.server.events if hasattr(e, "peer")}
    assert reported == {sim.clients[0].peer, *(n.peer for n in good)}


def test_a_flood_of_handshakes_that_never_finish_costs_nothing_lasting() -> None:
    """Clients that send their Initial and never hear back (spoofed sources): play goes on,
    the application hears nothing of them, and once the handshakes time out the server holds
    what it held before."""
    sim, _, good = _world(seed=51)
    sim.server_core.disconnect(sim.clients[0].peer, "not in this test")
    sim.run_for(1.0)
    base = deep_size(sim.server_core)
    endpoint = sim.server_core.endpoint
    held = {id(c) for c in endpoint.connections.values()}  # the good clients'
    config = client_configuration("localhost", SETTINGS, pin=identity().fingerprint)
    deaf = LinkConfig(loss=1.0)
    for _ in range(100):
        node = sim.add_raw(QuicConnection(config), link=LinkConfig())
        sim.link("server", node.name).config = deaf
    for _ in range(50):  # play while the flood is fresh
        _tick(sim, good)
    during = {id(c) for c in endpoint.connections.values()}
    assert len(during) >= len(held) + 100  # the server did take them on
    sim.run_for(12.0)  # past the server's handshake timeout (10 s)
    for _ in range(20):
        _tick(sim, good)
    sim.run_until(sim.ledger.reliable_done, what="the good clients' messages")
    sim.ledger.check_complete()
    assert sorted(sim.server_core.peers) == sorted(n.peer for n in good)
    assert sim.server is not None
    assert {type(e) for e in sim.server.events} <= {
        PeerConnected,
        PeerDisconnected,
        MessageReceived,
    }
    assert {id(c) for c in endpoint.connections.values()} == held
    assert deep_size(sim.server_core) - base < 100 * 500  # and the sessions layer kept none
