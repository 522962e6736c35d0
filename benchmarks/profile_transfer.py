"""Profile the QUIC hot path: a bulk transfer between two in-memory connections.

    python benchmarks/profile_transfer.py [--mb 10] [--profile]

No sockets and no clock: CPU spent in quicnet only (both ends), so the
numbers show where the per-packet time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from quicnet.crypto import dev_identity
from quicnet.quic import QuicConfiguration, QuicConnection, StreamDataReceived
from quicnet.quic.packets import parse_long_header


def transfer(size: int) -> tuple[float, int]:
    ident = dev_identity()
    client = QuicConnection(
        QuicConfiguration(is_client=True, server_name="localhost", trust_roots=[ident.trust_root])
    )
    server_config = QuicConfiguration(
        is_client=False, certificate_chain=ident.certificate_chain, private_key=ident.private_key
    )
    now = 0.0
    client.connect(("s", 1), now)
    server: QuicConnection | None = None
    packets = 0

    def pump() -> None:
        nonlocal server, packets
        for data, _ in client.datagrams_to_send(now):
            if server is None:
                dcid = parse_long_header(data).destination_cid
                server = QuicConnection(server_config, original_destination_cid=dcid)
            server.receive_datagram(data, ("c", 2), now)
            packets += 1
        assert server is not None
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("s", 1), now)
            packets += 1

    while not client.handshake_confirmed:
        pump()
        now += 0.0001
    stream = client.create_stream()
    client.send_stream_data(stream, bytes(size), end_stream=True)
    got = 0
    start = time.perf_counter()
    while got < size:
        pump()
        assert server is not None
        while (event := server.next_event()) is not None:
            if isinstance(event, StreamDataReceived):
                got += len(event.data)
        now += 0.0001
        for conn in (client, server):
            deadline = conn.next_timer()
            if deadline is not None and deadline <= now:
                conn.handle_timer(now)
    return time.perf_counter() - start, packets


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=10)
    p.add_argument("--profile", action="store_true")
    a = p.parse_args()
    size = a.mb << 20
    if a.profile:
        profiler = cProfile.Profile()
        profiler.enable()
    elapsed, packets = transfer(size)
    if a.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    print(
        f"{size >> 20} MB in {elapsed:.2f} s: {size / elapsed / 1e6:.1f} MB/s, "
        f"{packets} datagrams, {elapsed / packets * 1e6:.1f} us per datagram (both ends)"
    )


if __name__ == "__main__":
    main()
