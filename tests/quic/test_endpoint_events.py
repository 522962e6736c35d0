"""QuicEndpoint.take_events: every waiting event at once, as next_event gives them."""

from __future__ import annotations

from simnet import CLIENT_ADDR, SERVER_ADDR, client_config, server_config

from quicnet.quic import DatagramReceived, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint


def _three_clients_with_datagrams(
    endpoint: QuicEndpoint,
) -> list[tuple[QuicConnection, tuple[str, int]]]:
    """Three connected clients whose datagrams reach the endpoint interleaved (client 2
    first, then 0, then 2 again, then 1): its events wait, none taken yet."""
    now = 1.0
    clients = []
    for i in range(3):
        client = QuicConnection(client_config())
        address = (CLIENT_ADDR[0], 30000 + i)
        client.connect(SERVER_ADDR, now)
        for _ in range(30):
            now += 0.05
            for data, _ in client.datagrams_to_send(now):
                endpoint.receive_datagram(data, address, now)
            if (t := endpoint.next_timer()) is not None and t <= now:
                endpoint.handle_timer(now)
            for data, to in endpoint.datagrams_to_send(now):
                if to == address:
                    client.receive_datagram(data, SERVER_ADDR, now)
            if (t := client.next_timer()) is not None and t <= now:
                client.handle_timer(now)
        assert client.handshake_confirmed
        clients.append((client, address))
    while endpoint.next_event() is not None:
        pass
    for i, payload in [(2, b"c1"), (0, b"a1"), (2, b"c2"), (1, b"b1"), (0, b"a2")]:
        client, address = clients[i]
        client.send_datagram(payload)
        now += 0.001
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, address, now)
    return clients


def _seen(items: list[tuple[QuicConnection, object]]) -> list[tuple[object, bytes]]:
    """(the client's address, the payload) of each DatagramReceived, in order."""
    return [
        (conn.peer_address, event.data)
        for conn, event in items
        if isinstance(event, DatagramReceived)
    ]


def test_take_events_gives_what_next_event_would_in_the_same_order() -> None:
    one = QuicEndpoint(server_config())
    clients = _three_clients_with_datagrams(one)
    taken: list[tuple[QuicConnection, object]] = list(one.take_events())
    assert one.next_event() is None and one.take_events() == []  # all were taken

    other = QuicEndpoint(server_config())
    other_clients = _three_clients_with_datagrams(other)
    asked: list[tuple[QuicConnection, object]] = []
    while (item := other.next_event()) is not None:
        asked.append(item)

    # Connections in the order they had something to say, each one's events in order.
    port = {address: i for i, (_, address) in enumerate(clients)}
    expected = [(2, b"c1"), (2, b"c2"), (0, b"a1"), (0, b"a2"), (1, b"b1")]
    assert [(port[a], d) for a, d in _seen(taken)] == expected
    other_port = {address: i for i, (_, address) in enumerate(other_clients)}
    assert [(other_port[a], d) for a, d in _seen(asked)] == expected
    assert [type(e) for _, e in taken] == [type(e) for _, e in asked]
