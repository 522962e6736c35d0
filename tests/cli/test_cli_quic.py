"""q_server and q_client as real child processes on loopback.

The server is ``python -m quicnet q_server``; clients are quicnet's asyncio
driver in the test process (or ``q_client`` itself). Every wait ends on an
event; the deadlines only stop a hang.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import cli_server

from quicnet.crypto import Certificate, dev_identity
from quicnet.io.aio import QuicClient, connect
from quicnet.quic import ConnectionTerminated, QuicConfiguration, StreamDataReceived

DEADLINE = 20.0


@dataclass
class ServerFiles:
    cert: Path
    key: Path
    ca: Path
    root: Certificate


@pytest.fixture
def server_files(tmp_path: Path) -> ServerFiles:
    """A development identity for localhost, as PEM files q_server can load."""
    ident = dev_identity()
    files = ServerFiles(
        tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem", ident.trust_root
    )
    files.cert.write_bytes(ident.certificate.to_pem())
    files.key.write_bytes(ident.private_key.to_pem())
    files.ca.write_bytes(ident.trust_root.to_pem())
    return files


def _client_config(root: Certificate) -> QuicConfiguration:
    return QuicConfiguration(server_name="localhost", trust_roots=[root])


async def _collect(client: QuicClient, want: int) -> dict[int, bytes]:
    """Stream data by stream id until ``want`` streams have ended (fails on termination)."""
    streams: dict[int, bytearray] = {}
    ended = 0
    async for event in client.events():
        assert not isinstance(event, ConnectionTerminated), f"the server closed: {event}"
        if isinstance(event, StreamDataReceived):
            streams.setdefault(event.stream_id, bytearray()).extend(event.data)
            if event.end_stream:
                ended += 1
                if ended == want:
                    break
    return {k: bytes(v) for k, v in streams.items()}


def test_q_server_echoes_a_unidirectional_stream_on_one_of_its_own(
    server_files: ServerFiles,
) -> None:
    """A client-opened unidirectional stream is receive-only for the server (RFC 9000 §2.1):
    the echo goes back on a server-opened unidirectional stream, and the connection lives on."""

    async def scenario(port: int) -> tuple[dict[int, bytes], dict[int, bytes]]:
        client = await asyncio.wait_for(
            connect("127.0.0.1", port, _client_config(server_files.root)), DEADLINE
        )
        try:
            uni = client.connection.create_stream(bidirectional=False)
            client.send_stream_data(uni, b"one way", end_stream=True)
            first = await asyncio.wait_for(_collect(client, 1), DEADLINE)
            bidi = client.connection.create_stream()
            client.send_stream_data(bidi, b"both ways", end_stream=True)
            second = await asyncio.wait_for(_collect(client, 1), DEADLINE)
        finally:
            await client.close()
        return first, second

    args = (
        "-accept",
        "127.0.0.1:0",
        "-cert",
        str(server_files.cert),
        "-key",
        str(server_files.key),
    )
    with cli_server("q_server", *args) as server:
        first, second = asyncio.run(scenario(server.port))
        err = server.stop()
    [(uni_back, data)] = first.items()
    assert data == b"one way"
    assert uni_back & 0x3 == 0x3  # server-initiated, unidirectional (RFC 9000 §2.1)
    assert list(second.values()) == [b"both ways"]
    assert "Traceback" not in err and "internal error" not in err, err
