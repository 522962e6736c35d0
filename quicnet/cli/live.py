"""The live part of ``quicnet demo``: a local QUIC server and clients, with their numbers.

One tick-driven UDP server and a few clients in this process, on loopback.
Each client sends a stream of reliable data and 64-byte datagrams the server
echoes; once a second a table shows each client's RTT, datagram loss and
throughput. The server's identity is a fresh development CA + certificate,
verified by the clients: encrypted and authenticated, nothing to set up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from quicnet.crypto import dev_identity
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import (
    DatagramAcknowledged,
    DatagramLost,
    DatagramReceived,
    HandshakeCompleted,
    QuicConfiguration,
    StreamDataReceived,
)

_CHUNK = bytes(16384)
_DATAGRAM = bytes(64)


@dataclass
class _ClientStats:
    client: UdpClient
    connected_at: float | None = None
    stream_id: int | None = None
    sent_datagrams: int = 0
    acked: int = 0
    lost: int = 0
    echoes: int = 0
    bytes_acked_prev: int = 0
    pings: dict[int, float] = field(default_factory=dict)


def run_live(seconds: float, clients: int, out: list[str] | None = None) -> dict[str, float]:
    """Run the demo for ``seconds``; print a table each second; return the totals."""

    def say(line: str) -> None:
        print(line, flush=True)
        if out is not None:
            out.append(line)

    ident = dev_identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
            initial_max_data=64 << 20,
            initial_max_stream_data=16 << 20,
        ),
        "127.0.0.1",
        0,
    )
    host, port = server.local_address[:2]
    say(
        f"  server listening on {host}:{port} (QUIC v1, TLS 1.3; clients verify it against a fresh dev CA)"
    )
    config_args = {"server_name": "localhost", "trust_roots": [ident.trust_root]}
    stats = [
        _ClientStats(UdpClient(QuicConfiguration(**config_args), (host, port)))  # type: ignore[arg-type]
        for _ in range(clients)
    ]
    server_bytes = 0
    start = time.monotonic()
    next_report = start + 1.0
    say(f"  {'time':>5} {'client':>6} {'RTT ms':>8} {'loss %':>7} {'MB/s':>7} {'cwnd KB':>8}")
    while (now := time.monotonic()) < start + seconds:
        for conn, event in server.poll(0.0):
            if isinstance(event, DatagramReceived):
                conn.send_datagram(event.data)
            elif isinstance(event, StreamDataReceived):
                server_bytes += len(event.data)
        for s in stats:
            conn = s.client.connection
            for event in s.client.poll(0.0):
                if isinstance(event, HandshakeCompleted):
                    s.connected_at = now
                    s.stream_id = conn.create_stream()
                elif isinstance(event, DatagramAcknowledged):
                    s.acked += 1
                elif isinstance(event, DatagramLost):
                    s.lost += 1
                elif isinstance(event, DatagramReceived):
                    s.echoes += 1
            if s.stream_id is not None:
                sender = conn.streams.streams[s.stream_id].sender
                if sender is not None and sender.buffered < 1 << 20:
                    conn.send_stream_data(s.stream_id, _CHUNK)
                conn.send_datagram(_DATAGRAM)
                s.sent_datagrams += 1
                s.client.flush()
        server.flush()
        if now >= next_report:
            elapsed = now - start
            for i, s in enumerate(stats):
                conn = s.client.connection
                settled = s.acked + s.lost
                loss = 100.0 * s.lost / settled if settled else 0.0
                rtt = conn.recovery.rtt.smoothed_rtt * 1000
                acked = 0
                if s.stream_id is not None and s.stream_id in conn.streams.streams:
                    sender = conn.streams.streams[s.stream_id].sender
                    acked = sender.offset - sender.buffered if sender is not None else 0
                share = (acked - s.bytes_acked_prev) / 1e6
                s.bytes_acked_prev = acked
                cwnd = conn.recovery.cc.congestion_window / 1024
                say(f"  {elapsed:5.1f} {i + 1:>6} {rtt:8.2f} {loss:7.2f} {share:7.2f} {cwnd:8.0f}")
            next_report += 1.0
    for s in stats:
        s.client.connection.close(0, "demo over")
        s.client.flush()
    server.poll(0.05)
    for s in stats:
        s.client.close_socket()
    server.close_socket()
    total = time.monotonic() - start
    settled = sum(s.acked + s.lost for s in stats)
    lost = sum(s.lost for s in stats)
    totals = {
        "seconds": total,
        "megabytes": server_bytes / 1e6,
        "datagrams_echoed": float(sum(s.echoes for s in stats)),
        "datagram_loss_percent": 100.0 * lost / settled if settled else 0.0,
    }
    say(
        f"  total: {totals['megabytes']:.1f} MB reliable in {total:.1f} s, "
        f"{int(totals['datagrams_echoed'])} datagrams echoed, "
        f"{totals['datagram_loss_percent']:.2f}% datagram loss"
    )
    return totals
