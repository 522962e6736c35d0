"""The endpoint's work per wakeup follows the connections that have something to do.

DESIGN.md's rule for the server endpoint: a set of connections with pending output
and a timer heap, never a loop over every connection. Counted, not timed: the
endpoint reports how many connections it visited.
"""

from __future__ import annotations

import pytest
from simnet import CLIENT_ADDR, SERVER_ADDR, client_config, server_config

from quicnet.quic import DatagramReceived, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.protection import PacketKey


def _pump(
    endpoint: QuicEndpoint, client: QuicConnection, address: tuple[str, int], now: float
) -> None:
    """One exchange both ways between a client and the endpoint, timers included."""
    for data, _ in client.datagrams_to_send(now):
        endpoint.receive_datagram(data, address, now)
    if (t := endpoint.next_timer()) is not None and t <= now:
        endpoint.handle_timer(now)
    for data, to in endpoint.datagrams_to_send(now):
        if to == address:
            client.receive_datagram(data, SERVER_ADDR, now)
    if (t := client.next_timer()) is not None and t <= now:
        client.handle_timer(now)


def _visits_per_echo(idle: int) -> float:
    endpoint = QuicEndpoint(server_config())
    now = 1.0
    clients = []
    for i in range(idle + 1):
        client = QuicConnection(client_config())
        address = (CLIENT_ADDR[0], 20000 + i)
        client.connect(SERVER_ADDR, now)
        for _ in range(10):
            now += 0.01
            _pump(endpoint, client, address, now)
        assert client.handshake_confirmed
        clients.append((client, address))
    for _ in range(20):  # let acknowledgements and handshake timers settle everywhere
        now += 0.05
        for client, address in clients:
            _pump(endpoint, client, address, now)
    while endpoint.next_event() is not None:
        pass
    active, address = clients[-1]
    before = endpoint.stats.connections_visited
    echoes = 50
    for _ in range(echoes):
        now += 0.001
        active.send_datagram(b"ping")
        for data, _ in active.datagrams_to_send(now):
            endpoint.receive_datagram(data, address, now)
        while (item := endpoint.next_event()) is not None:
            conn, event = item
            if isinstance(event, DatagramReceived):
                conn.send_datagram(event.data)
        if (t := endpoint.next_timer()) is not None and t <= now:
            endpoint.handle_timer(now)
        for data, _ in endpoint.datagrams_to_send(now):
            active.receive_datagram(data, SERVER_ADDR, now)
        while active.next_event() is not None:
            pass
    return (endpoint.stats.connections_visited - before) / echoes


@pytest.mark.parametrize("idle", [150])
def test_idle_connections_cost_nothing_per_wakeup(idle: int) -> None:
    few = _visits_per_echo(2)
    many = _visits_per_echo(idle)
    assert many == few  # the same work with 2 or 150 idle connections open
    assert many <= 3  # the active connection, once or twice per echo


def test_a_connection_with_nothing_to_send_is_not_visited() -> None:
    """A packet that needs no answer yet (one DATAGRAM: its ACK may wait) puts the
    connection's timer on the heap but does not make datagrams_to_send visit it, as
    the tick driver's send after receiving would; the application's answer does."""
    endpoint = QuicEndpoint(server_config())
    client = QuicConnection(client_config())
    now = 1.0
    client.connect(SERVER_ADDR, now)
    for _ in range(30):
        now += 0.05
        _pump(endpoint, client, CLIENT_ADDR, now)
    assert client.handshake_confirmed
    while endpoint.next_event() is not None:
        pass
    while client.next_event() is not None:
        pass
    assert endpoint.datagrams_to_send(now) == []
    client.send_datagram(b"input")
    for data, _ in client.datagrams_to_send(now):
        endpoint.receive_datagram(data, CLIENT_ADDR, now)
    before = endpoint.stats.connections_visited
    assert endpoint.datagrams_to_send(now) == []
    assert endpoint.stats.connections_visited == before  # not visited: nothing to send
    ack_at = endpoint.next_timer()
    assert ack_at is not None and now < ack_at <= now + 0.025  # its ACK delay, scheduled
    item = endpoint.next_event()
    assert item is not None and isinstance(item[1], DatagramReceived)
    item[0].send_datagram(b"snapshot")
    sent = endpoint.datagrams_to_send(now)
    assert len(sent) == 1 and endpoint.stats.connections_visited == before + 1
    client.receive_datagram(sent[0][0], SERVER_ADDR, now)
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    assert DatagramReceived(b"snapshot") in events


def test_a_client_first_initial_is_decrypted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The endpoint authenticates a client's first Initial before it builds a connection
    (RFC 9001 §5.2 keys are public: a forged packet must cost no state); the connection
    then takes that packet as opened, not decrypting it a second time, and answers it."""
    opened: list[int] = []
    original = PacketKey.open

    def counting_open(
        self: PacketKey, header: bytes, ciphertext: bytes | memoryview, packet_number: int
    ) -> bytes:
        opened.append(packet_number)
        return original(self, header, ciphertext, packet_number)

    monkeypatch.setattr(PacketKey, "open", counting_open)
    endpoint = QuicEndpoint(server_config())
    client = QuicConnection(client_config())
    client.connect(SERVER_ADDR, 1.0)
    ((first, _),) = client.datagrams_to_send(1.0)
    endpoint.receive_datagram(first, CLIENT_ADDR, 1.0)
    assert opened == [0]  # one AEAD open for the one packet
    assert endpoint.stats.connections_accepted == 1
    replies = endpoint.datagrams_to_send(1.0)
    assert replies  # the ServerHello flight, built from the payload the endpoint opened
    opened.clear()
    for data, _ in replies:
        client.receive_datagram(data, SERVER_ADDR, 1.0)
    assert opened  # the client opens the server's packets as usual
    for _ in range(4):
        for data, _ in client.datagrams_to_send(1.0):
            endpoint.receive_datagram(data, CLIENT_ADDR, 1.0)
        for data, _ in endpoint.datagrams_to_send(1.0):
            client.receive_datagram(data, SERVER_ADDR, 1.0)
    assert client.handshake_confirmed
