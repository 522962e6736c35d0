"""``qlog=`` on the real-time server and client, and ``QLOGDIR`` through them.

Each QUIC connection writes one trace, ``<odcid>_<client|server>.sqlog``, in
qlog's JSON-SEQ serialization (RFC 7464: every record starts with the Record
Separator 0x1E); the first record is the header naming the vantage point and
the connection's original destination connection ID.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import quicnet
from quicnet.quic.config import QLOGDIR

IDENTITY = quicnet.dev_identity()
RS = b"\x1e"


def traces(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.sqlog"))


def header(path: Path) -> dict[str, Any]:
    """The first JSON-SEQ record of a trace (it must start with RS and parse as JSON)."""
    data = path.read_bytes()
    assert data.startswith(RS), data[:20]
    first = data[1:].split(RS, 1)[0]
    record = json.loads(first)
    assert isinstance(record, dict)
    return record


def run_until(
    condition: Callable[[list[quicnet.RealtimeEvent]], bool],
    server: quicnet.Server,
    *clients: quicnet.Client,
) -> None:
    """Poll until ``condition`` holds for the server's events so far (15 s at most)."""
    events: list[quicnet.RealtimeEvent] = []
    deadline = time.monotonic() + 15
    while not condition(events):
        assert time.monotonic() < deadline, "not reached within 15 s"
        events += server.poll(0.002)
        for client in clients:
            client.poll(0.0)


def disconnected(count: int) -> Callable[[list[quicnet.RealtimeEvent]], bool]:
    return lambda events: sum(isinstance(e, quicnet.PeerDisconnected) for e in events) == count


def test_qlog_argument_writes_one_trace_per_connection(tmp_path: Path) -> None:
    server_dir, client_dir = tmp_path / "server", tmp_path / "client"
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY, qlog=server_dir)
    clients = [
        quicnet.Client(server.address, pin=IDENTITY.fingerprint, qlog=str(client_dir))
        for _ in range(2)
    ]
    try:
        run_until(lambda _: all(c.connected for c in clients), server, *clients)
        for c in clients:
            c.send(0, b"traced")
            c.close()
        run_until(disconnected(2), server)
    finally:
        server.close()
    server_traces, client_traces = traces(server_dir), traces(client_dir)
    assert [p.name.endswith("_server.sqlog") for p in server_traces] == [True, True]
    assert [p.name.endswith("_client.sqlog") for p in client_traces] == [True, True]
    server_headers = [header(p) for p in server_traces]
    client_headers = [header(p) for p in client_traces]
    assert {h["qlog_format"] for h in server_headers + client_headers} == {"JSON-SEQ"}
    assert [h["trace"]["vantage_point"]["type"] for h in server_headers] == ["server"] * 2
    assert [h["trace"]["vantage_point"]["type"] for h in client_headers] == ["client"] * 2
    # The same two connections seen from both ends: one trace each per connection.
    odcids = {h["trace"]["common_fields"]["ODCID"] for h in client_headers}
    assert len(odcids) == 2
    assert {h["trace"]["common_fields"]["ODCID"] for h in server_headers} == odcids
    # A client trace holds the whole connection: its close is in it.
    assert b"connectivity:connection_closed" in client_traces[0].read_bytes()


def test_qlogdir_environment_reaches_the_realtime_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(QLOGDIR, str(tmp_path))
    server = quicnet.Server(("127.0.0.1", 0), identity=IDENTITY)
    client = quicnet.Client(server.address, pin=IDENTITY.fingerprint)
    try:
        run_until(lambda _: client.connected, server, client)
        client.close()
        run_until(disconnected(1), server)
    finally:
        server.close()
    names = sorted(p.name.rsplit("_", 1)[1] for p in traces(tmp_path))
    assert names == ["client.sqlog", "server.sqlog"]
    assert {header(p)["trace"]["common_fields"]["ODCID"] for p in traces(tmp_path)} == {
        traces(tmp_path)[0].name.split("_")[0]
    }


def test_qlog_argument_on_serve_and_connect(tmp_path: Path) -> None:
    async def main() -> None:
        server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY, qlog=tmp_path / "s")
        client = await quicnet.connect(
            server.address, pin=IDENTITY.fingerprint, qlog=tmp_path / "c"
        )
        client.send(0, b"ping")
        event = await asyncio.wait_for(server.next_event(), 10)
        assert isinstance(event, quicnet.PeerConnected)
        message = await asyncio.wait_for(server.next_event(), 10)
        assert message == quicnet.MessageReceived(event.peer, 0, b"ping")
        client.close()
        server.close()

    quicnet.run(main())
    [server_trace] = traces(tmp_path / "s")
    [client_trace] = traces(tmp_path / "c")
    assert (
        header(server_trace)["trace"]["common_fields"]["ODCID"] == client_trace.name.split("_")[0]
    )
    assert header(client_trace)["trace"]["vantage_point"]["type"] == "client"
