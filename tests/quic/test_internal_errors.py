"""A bug inside one connection closes that connection, never its server."""

from __future__ import annotations

from typing import Any

import pytest

from quicnet.crypto import dev_identity
from quicnet.quic import (
    ConnectionTerminated,
    QuicConfiguration,
    QuicConnection,
    StreamDataReceived,
    TransportErrorCode,
)
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.stream_manager import StreamManager

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 4433)


def _pump(client: QuicConnection, endpoint: QuicEndpoint, now: float) -> None:
    for _ in range(20):
        moved = False
        for data, _ in client.datagrams_to_send(now):
            endpoint.receive_datagram(data, CLIENT, now)
            moved = True
        for data, _ in endpoint.datagrams_to_send(now):
            client.receive_datagram(data, SERVER, now)
            moved = True
        if not moved:
            return


def test_a_failing_stream_handler_closes_only_its_connection(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ident = dev_identity()
    endpoint = QuicEndpoint(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
        )
    )
    config = QuicConfiguration(server_name="localhost", trust_roots=[ident.trust_root])
    healthy, broken = QuicConnection(config), QuicConnection(config)
    for c in (healthy, broken):
        c.connect(SERVER, 1.0)
        _pump(c, endpoint, 1.0)
        assert c.handshake_complete
    server_side = {id(c) for c in endpoint.connections.values()}
    assert len(server_side) == 2
    # Inject a bug: the server's stream bookkeeping for the broken client's data raises.
    victim = next(iter(endpoint.connections.values()))
    original = StreamManager.on_stream_data

    def broken_for_the_victim(self: StreamManager, *args: Any) -> None:
        if self is victim.streams:
            raise RuntimeError("boom")
        original(self, *args)

    monkeypatch.setattr(StreamManager, "on_stream_data", broken_for_the_victim)
    for c in (healthy, broken):
        c.send_stream_data(c.create_stream(), b"ping", end_stream=True)
        _pump(c, endpoint, 1.1)
    assert "internal error" in caplog.text
    events = [e for c in (healthy, broken) for e in iter(c.next_event, None)]
    closed = [e for e in events if isinstance(e, ConnectionTerminated)]
    assert len(closed) == 1 and closed[0].error_code == TransportErrorCode.INTERNAL_ERROR
    # The other connection on the same endpoint got its data through.
    delivered = [e for _, e in iter(endpoint.next_event, None) if isinstance(e, StreamDataReceived)]
    assert [e.data for e in delivered] == [b"ping"]
