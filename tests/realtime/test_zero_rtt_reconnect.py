"""Reconnecting with a saved session: the HELLO and the first messages in 0-RTT.

A first client earns a session ticket and leaves; a second one, given that
ticket (or its bytes), sends messages before its handshake has completed. They
travel in 0-RTT packets (counted on the wire), the server admits the client
and delivers them; when the server rejects 0-RTT (another ticket key, early
data turned off, a ticket already used once) every reliable message still
arrives, in 1-RTT. A replayed 0-RTT flight delivers nothing. The sans-I/O
cores run on a small simulated network with its own clock; one test runs the
socket drivers on loopback, through a relay that records the client's
datagrams.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import quicnet
from quicnet.io.udp import open_udp_socket
from quicnet.quic import TransportError
from quicnet.quic.packets import PacketType, parse_long_header
from quicnet.realtime import (
    ClientCore,
    Connected,
    ConnectRequest,
    DisconnectReason,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    RealtimeEvent,
    RealtimeUsageError,
    ServerCore,
    Settings,
    client_configuration,
    parse_session,
    server_configuration,
)
from quicnet.tls import SessionTicket, TicketKeys

Address = tuple[str, int]
SERVER: Address = ("10.0.0.9", 4433)
LATENCY = 0.02  # one way: a round trip is 40 ms of simulated time
IDENTITY = quicnet.dev_identity()
SETTINGS = Settings()


def packet_types(datagram: bytes) -> list[PacketType]:
    """The types of the packets coalesced in one datagram (long headers are in the clear)."""
    out: list[PacketType] = []
    start = 0
    while start < len(datagram):
        if not datagram[start] & 0x80:
            out.append(PacketType.ONE_RTT)  # a short header runs to the end of the datagram
            break
        try:
            header = parse_long_header(datagram, start)
        except TransportError:
            break
        out.append(header.packet_type)
        start = header.end
    return out


def zero_rtt_packets(datagrams: list[bytes]) -> int:
    return sum(packet_types(d).count(PacketType.ZERO_RTT) for d in datagrams)


class Net:
    """A server core and client cores with a fixed one-way latency and a simulated clock."""

    def __init__(self, server: ServerCore, now: float = 1000.0) -> None:
        self.now = now
        self.server = server
        self.clients: dict[Address, ClientCore] = {}
        self.server_events: list[RealtimeEvent] = []
        self.server_times: list[float] = []  # when each of server_events came
        self.client_events: dict[Address, list[tuple[float, RealtimeEvent]]] = {}
        #: Every datagram each client sent, in order.
        self.sent: dict[Address, list[bytes]] = {}
        self._flights: list[tuple[float, int, bytes, Address, Address]] = []
        self._order = itertools.count()

    def add(self, client: ClientCore, address: Address) -> ClientCore:
        self.clients[address] = client
        self.client_events[address] = []
        self.sent[address] = []
        self._flush()
        return client

    def replace_server(self, server: ServerCore) -> None:
        """Another server at the same address (a restart)."""
        self.server = server

    def inject(self, data: bytes, source: Address) -> None:
        """A datagram from ``source`` to the server (an attacker's replay)."""
        heapq.heappush(self._flights, (self.now + LATENCY, next(self._order), data, source, SERVER))

    def _flush(self) -> None:
        now = self.now
        for data, destination in self.server.datagrams_to_send(now):
            self._push(data, SERVER, destination)
        for address, client in self.clients.items():
            for data, destination in client.datagrams_to_send(now):
                self.sent[address].append(data)
                self._push(data, address, destination)

    def _push(self, data: bytes, source: Address, destination: Address) -> None:
        heapq.heappush(
            self._flights, (self.now + LATENCY, next(self._order), data, source, destination)
        )

    def _collect(self) -> None:
        while (event := self.server.next_event()) is not None:
            self.server_events.append(event)
            self.server_times.append(self.now)
        for address, client in self.clients.items():
            while (event := client.next_event()) is not None:
                self.client_events[address].append((self.now, event))

    def step(self) -> bool:
        """Advance to the next arrival or timer and run it; False when nothing is left."""
        self._flush()
        timers = [t for t in (self.server.next_timer(),) if t is not None]
        timers += [t for c in self.clients.values() if (t := c.next_timer()) is not None]
        candidates = timers + ([self._flights[0][0]] if self._flights else [])
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self._flights and self._flights[0][0] <= self.now:
            _, _, data, source, destination = heapq.heappop(self._flights)
            if destination == SERVER:
                self.server.receive_datagram(data, source, self.now)
            elif destination in self.clients:
                self.clients[destination].receive_datagram(data, source, self.now)
        for node in (self.server, *self.clients.values()):
            due = node.next_timer()
            if due is not None and due <= self.now:
                node.handle_timer(self.now)
        self._collect()
        self._flush()
        return True

    def run_until(self, condition: Callable[[], bool], *, timeout: float = 20.0) -> None:
        end = self.now + timeout
        while not condition():
            if self.now > end or not self.step():
                raise AssertionError(f"not reached by simulated time {self.now:.3f}")

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end and self.step():
            pass

    def received(self, peer: int) -> list[tuple[int, bytes]]:
        return [
            (e.channel, e.data)
            for e in self.server_events
            if isinstance(e, MessageReceived) and e.peer == peer
        ]

    def first(self, address: Address, kind: type) -> float | None:
        """When the client at ``address`` reported its first event of ``kind``."""
        return next((t for t, e in self.client_events[address] if isinstance(e, kind)), None)


def make_server(requests: list[ConnectRequest] | None = None, **quic: Any) -> ServerCore:
    """A server core that records what its admission hook saw."""
    settings = Settings(early_data=quic.pop("early_data", True))
    configuration = server_configuration(
        IDENTITY.certificate_chain, IDENTITY.private_key, settings, **quic
    )

    def accept(request: ConnectRequest) -> bool:
        if requests is not None:
            requests.append(request)
        return True

    return ServerCore(configuration, settings, accept=accept)


def make_client(
    net: Net, address: Address, session: SessionTicket | bytes | None = None
) -> ClientCore:
    configuration = client_configuration(
        SERVER[0], SETTINGS, pin=IDENTITY.fingerprint, session=session
    )
    return net.add(ClientCore(configuration, SERVER, SETTINGS, net.now), address)


def first_session(net: Net) -> SessionTicket:
    """A client connects, gets a ticket and leaves; its ticket."""
    address: Address = ("10.0.0.1", 50000)
    client = make_client(net, address)
    net.run_until(lambda: client.connected and client.session_ticket is not None)
    assert client.early_data is False and client.resumed is False
    client.close("see you")
    net.run_until(lambda: any(isinstance(e, PeerDisconnected) for e in net.server_events))
    ticket = client.session_ticket
    assert ticket is not None
    return ticket


# Which messages each test sends before the handshake: every delivery mode.
EARLY = [(0, b"first ordered"), (2, b"unordered"), (0, b"second ordered"), (3, b"state 1")]


def send_early(client: ClientCore) -> None:
    for channel, data in EARLY:
        client.send(channel, data)
    client.send(1, b"unreliable")


def test_reconnect_sends_hello_and_messages_in_zero_rtt() -> None:
    requests: list[ConnectRequest] = []
    net = Net(make_server(requests))
    ticket = first_session(net)
    address: Address = ("10.0.0.2", 50001)
    start = net.now
    client = make_client(net, address, session=ticket)
    assert client.early_data  # 0-RTT keys from the ticket, before anything was received
    send_early(client)
    net.run_until(lambda: len(net.received(2)) == len(EARLY) + 1)
    # The first datagram carries the ClientHello and the HELLO and messages in 0-RTT.
    assert packet_types(net.sent[address][0]) == [PacketType.INITIAL, PacketType.ZERO_RTT]
    assert zero_rtt_packets(net.sent[address]) >= 1
    # The server admitted the client on its 0-RTT HELLO and delivered everything.
    peer_events = [e for e in net.server_events if getattr(e, "peer", None) == 2]
    assert isinstance(peer_events[0], PeerConnected)
    received = net.received(2)
    assert sorted(received) == sorted([*EARLY, (1, b"unreliable")])
    assert [m for m in received if m[0] == 0] == [EARLY[0], EARLY[2]]  # in order
    assert requests[-1].early_data and requests[-1].peer == 2
    # ... half a round trip after the client started, before the server's handshake was
    # complete (without 0-RTT the HELLO leaves with the client's Finished: 1.5 round trips).
    admitted_at = net.server_times[net.server_events.index(peer_events[0])]
    assert admitted_at - start == pytest.approx(LATENCY)
    # The server answers at once; that waits for its handshake, then follows the WELCOME.
    net.server.send(2, 0, b"welcome back")
    net.run_until(
        lambda: any(isinstance(e, MessageReceived) for _, e in net.client_events[address])
    )
    assert [type(e) for _, e in net.client_events[address]] == [Connected, MessageReceived]
    assert net.client_events[address][1][1] == MessageReceived(0, 0, b"welcome back")
    assert client.early_data_accepted is True and client.resumed is True
    assert client.client_id == 2
    # And it earned a ticket of its own for next time.
    net.run_until(lambda: client.session_ticket is not None)
    assert client.session_ticket != ticket


def test_zero_rtt_with_the_session_as_bytes() -> None:
    net = Net(make_server())
    saved = first_session(net).to_bytes()
    assert SessionTicket.from_bytes(saved).to_bytes() == saved
    address: Address = ("10.0.0.2", 50001)
    client = make_client(net, address, session=saved)
    assert client.early_data
    client.send(0, b"from a saved session")
    net.run_until(lambda: net.received(2) == [(0, b"from a saved session")])
    assert zero_rtt_packets(net.sent[address]) >= 1
    net.run_until(lambda: client.early_data_accepted is not None)
    assert client.early_data_accepted


@pytest.mark.parametrize("restart", ["new ticket keys", "early data off", "ticket used twice"])
def test_rejected_zero_rtt_still_delivers_every_reliable_message(restart: str) -> None:
    keys = TicketKeys(key=bytes(range(32)))
    requests: list[ConnectRequest] = []
    net = Net(make_server(ticket_keys=keys))
    ticket = first_session(net)
    if restart == "new ticket keys":  # a restarted server that cannot open the ticket
        net.replace_server(make_server(requests))
        peer = 1
    elif restart == "early data off":  # same keys, 0-RTT now refused (RFC 8446 §4.2.10)
        net.replace_server(make_server(requests, ticket_keys=keys, early_data=False))
        peer = 1
    else:  # the same server: a ticket's 0-RTT is accepted once (RFC 8446 §8)
        net.replace_server(make_server(requests, ticket_keys=keys))
        first = make_client(net, ("10.0.0.3", 50003), session=ticket)
        net.run_until(lambda: first.connected)
        assert first.early_data_accepted and requests[-1].early_data
        peer = 2
    address: Address = ("10.0.0.2", 50001)
    client = make_client(net, address, session=ticket)
    assert client.early_data
    send_early(client)
    reliable_sent = [m for m in EARLY if m[0] in (0, 2)]
    net.run_until(lambda: client.connected and len(net.received(peer)) >= len(reliable_sent))
    assert zero_rtt_packets(net.sent[address]) >= 1  # sent in 0-RTT ...
    assert client.early_data_accepted is False  # ... which the server did not take
    assert requests[-1].peer == peer and not requests[-1].early_data
    # Every reliable message arrived, in order on its channel (QUIC sent the streams
    # again in 1-RTT, RFC 9001 §4.6.2); the DATAGRAMs of rejected 0-RTT are lost.
    reliable = [m for m in net.received(peer) if m[0] in (0, 2)]
    assert sorted(reliable) == sorted(reliable_sent)
    assert [m for m in reliable if m[0] == 0] == [EARLY[0], EARLY[2]]
    mine = [e for e in net.server_events if getattr(e, "peer", 0) == peer]
    assert type(mine[0]) is PeerConnected
    assert client.resumed is (restart != "new ticket keys")


def test_a_replayed_zero_rtt_flight_delivers_nothing() -> None:
    """RFC 8446 §8: an attacker resends the client's first flight (ClientHello and 0-RTT)
    once the session is over; the server's strike register saw the ticket, so it takes
    no 0-RTT, and the handshake cannot complete without the client's keys: no session,
    no event."""
    net = Net(make_server())
    ticket = first_session(net)
    address: Address = ("10.0.0.2", 50001)
    client = make_client(net, address, session=ticket)
    send_early(client)
    net.run_until(lambda: client.connected and len(net.received(2)) == len(EARLY) + 1)
    flight = [d for d in net.sent[address] if PacketType.ZERO_RTT in packet_types(d)]
    assert flight
    client.close()
    net.run_until(
        lambda: any(isinstance(e, PeerDisconnected) and e.peer == 2 for e in net.server_events)
    )
    seen = len(net.server_events)
    for data in flight:
        net.inject(data, ("10.6.6.6", 666))
    net.run_for(2 * SETTINGS.hello_timeout)
    assert net.server_events[seen:] == []
    assert net.server.peers == []


def test_early_data_off_on_the_client_waits_for_the_handshake() -> None:
    net = Net(make_server())
    ticket = first_session(net)
    address: Address = ("10.0.0.2", 50001)
    settings = Settings(early_data=False)
    configuration = client_configuration(
        SERVER[0], settings, pin=IDENTITY.fingerprint, session=ticket
    )
    client = net.add(ClientCore(configuration, SERVER, settings, net.now), address)
    assert not client.early_data
    client.send(0, b"after the handshake")
    net.run_until(lambda: net.received(2) == [(0, b"after the handshake")])
    assert zero_rtt_packets(net.sent[address]) == 0
    assert client.resumed is True


def test_session_bytes_that_are_not_a_session_are_a_usage_error() -> None:
    with pytest.raises(RealtimeUsageError, match="not a saved session"):
        client_configuration("h", SETTINGS, pin=IDENTITY.fingerprint, session=b"QNS1\x00")


@given(st.binary(max_size=200))
def test_parse_session_gives_a_ticket_or_a_usage_error(data: bytes) -> None:
    try:
        ticket = parse_session(data)
    except RealtimeUsageError as exc:
        assert "saved session" in str(exc)
    else:
        assert ticket is not None and ticket.to_bytes() == data


# Real sockets ----------------------------------------------------------------------------------


class Relay:
    """A UDP relay on loopback between one client and the server, recording what the
    client sends."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.front = open_udp_socket("127.0.0.1", 0)
        self.back = open_udp_socket("127.0.0.1", 0)
        self.client: Address | None = None
        self.from_client: list[bytes] = []
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.front, selectors.EVENT_READ)
        self.selector.register(self.back, selectors.EVENT_READ)

    @property
    def address(self) -> Address:
        name = self.front.getsockname()
        return (str(name[0]), int(name[1]))

    def pump(self) -> None:
        for key, _ in self.selector.select(0):
            sock = key.fileobj
            while True:
                try:
                    data, source = sock.recvfrom(65536)  # type: ignore[union-attr]
                except BlockingIOError:
                    break
                if sock is self.front:
                    self.client = (str(source[0]), int(source[1]))
                    self.from_client.append(data)
                    self.back.sendto(data, self.server)
                elif self.client is not None:
                    self.front.sendto(data, self.client)

    def close(self) -> None:
        self.selector.close()
        self.front.close()
        self.back.close()


def test_reconnect_in_zero_rtt_on_loopback_sockets() -> None:
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY)
    relay = Relay(server.address)
    events: list[RealtimeEvent] = []

    def run_until(condition: Callable[[], bool], *clients: quicnet.Client) -> None:
        deadline = time.monotonic() + 15
        while not condition():
            assert time.monotonic() < deadline, "not reached within 15 s"
            events.extend(server.poll(0.002))
            relay.pump()
            for c in clients:
                c.poll(0.0)
            relay.pump()

    try:
        first = quicnet.Client(relay.address, pin=IDENTITY.fingerprint, local_host="127.0.0.1")
        run_until(lambda: first.connected and first.session is not None, first)
        saved = first.session.to_bytes() if first.session else b""
        first.close()
        run_until(lambda: any(isinstance(e, PeerDisconnected) for e in events))
        assert zero_rtt_packets(relay.from_client) == 0

        relay.from_client.clear()
        second = quicnet.Client(
            relay.address, pin=IDENTITY.fingerprint, local_host="127.0.0.1", session=saved
        )
        second.send(0, b"hello again")  # leaves at once, in 0-RTT
        second.send(2, b"and this")
        run_until(lambda: len([e for e in events if isinstance(e, MessageReceived)]) == 2, second)
        assert zero_rtt_packets(relay.from_client) >= 1
        assert PacketType.ZERO_RTT in packet_types(relay.from_client[0])
        mine = [e for e in events if getattr(e, "peer", 0) == 2]
        assert isinstance(mine[0], PeerConnected)
        assert sorted((e.channel, e.data) for e in mine if isinstance(e, MessageReceived)) == [
            (0, b"hello again"),
            (2, b"and this"),
        ]
        run_until(lambda: second.connected, second)
        assert second.early_data_accepted is True
        second.close()
    finally:
        relay.close()
        server.close()


def test_asyncio_connect_with_a_session_sends_before_the_handshake() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY)
        first = await quicnet.connect(server.address, pin=IDENTITY.fingerprint)
        deadline = loop.time() + 10
        while first.session is None:  # the ticket comes just after the handshake
            assert loop.time() < deadline, "no session ticket"
            await asyncio.sleep(0.005)
        saved = first.session
        first.close()
        second = await quicnet.connect(
            server.address, pin=IDENTITY.fingerprint, session=saved, wait_connected=False
        )
        assert second.core.early_data
        second.send(0, b"early")
        events: list[RealtimeEvent] = []
        while not any(isinstance(e, MessageReceived) for e in events):
            events.append(await asyncio.wait_for(server.next_event(), 10))
        await asyncio.wait_for(second.wait_connected(), 10)
        assert second.early_data_accepted is True
        assert events[-2:] == [
            PeerConnected(2, events[-2].address),  # type: ignore[union-attr]
            MessageReceived(2, 0, b"early"),
        ]
        second.close()
        server.close()

    quicnet.run(main())


def test_a_replay_to_a_server_without_the_strike_register_is_delivered_again() -> None:
    """The limit docs/realtime.md states: a second server that shares the ticket keys
    but not the strike register accepts a replayed 0-RTT flight. It admits the
    "client" (the hook sees ``early_data``) and delivers the 0-RTT messages again; the
    handshake never completes, and the session ends CONNECTION_FAILED."""
    keys = TicketKeys(key=bytes(range(32)))
    net = Net(make_server(ticket_keys=keys))
    ticket = first_session(net)
    address: Address = ("10.0.0.2", 50001)
    client = make_client(net, address, session=ticket)
    client.send(0, b"buy one sword")
    net.run_until(lambda: client.connected and net.received(2) == [(0, b"buy one sword")])
    flight = [d for d in net.sent[address] if PacketType.ZERO_RTT in packet_types(d)]
    requests: list[ConnectRequest] = []
    net.replace_server(make_server(requests, ticket_keys=keys))  # its own strike register
    seen = len(net.server_events)
    for data in flight:
        net.inject(data, ("10.6.6.6", 666))
    net.run_for(15.0)
    replayed = net.server_events[seen:]
    assert [type(e) for e in replayed] == [PeerConnected, MessageReceived, PeerDisconnected]
    assert replayed[1] == MessageReceived(1, 0, b"buy one sword")
    ended = replayed[2]
    assert isinstance(ended, PeerDisconnected) and ended.peer == 1
    assert ended.reason == DisconnectReason.CONNECTION_FAILED
    assert ended.message.startswith("handshake timeout")
    assert requests[0].early_data
