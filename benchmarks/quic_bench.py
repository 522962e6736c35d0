"""QUIC benchmarks: quicnet beside aioquic and qh3, same machine, same run.

- handshakes per second: client + server CPU for full handshakes, in memory;
- datagram echo RTT: 64-byte DATAGRAM frames echoed over loopback UDP (p50, p99);
- bulk goodput: one stream, client -> server, over loopback UDP.

    python benchmarks/quic_bench.py [--quick]

Writes benchmarks/results/quic.json and quic.png. Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, summary, write

from quicnet.crypto import dev_identity
from quicnet.quic import (
    DatagramReceived,
    QuicConfiguration,
    QuicConnection,
    StreamDataReceived,
)
from quicnet.quic.packets import parse_long_header

ALPN = "bench"


# Handshakes in memory ---------------------------------------------------------------------


def quicnet_handshake(ident: Any) -> float:
    start = time.perf_counter()
    client = QuicConnection(
        QuicConfiguration(
            is_client=True,
            alpn_protocols=[ALPN],
            server_name="localhost",
            trust_roots=[ident.trust_root],
        )
    )
    server_config = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
    )
    now = 1.0
    client.connect(("127.0.0.1", 1), now)
    server = None
    for _ in range(20):
        for data, _ in client.datagrams_to_send(now):
            if server is None:
                server = QuicConnection(
                    server_config, original_destination_cid=parse_long_header(data).destination_cid
                )
            server.receive_datagram(data, ("127.0.0.1", 2), now)
        assert server is not None
        for data, _ in server.datagrams_to_send(now):
            client.receive_datagram(data, ("127.0.0.1", 1), now)
        if client.handshake_confirmed:
            break
    return time.perf_counter() - start


def aioquic_handshake(module: str, paths: dict[str, str]) -> float:
    if module == "aioquic":
        from aioquic.quic.configuration import QuicConfiguration as Config
        from aioquic.quic.connection import QuicConnection as Conn
    else:
        from qh3.quic.configuration import QuicConfiguration as Config  # type: ignore[no-redef]
        from qh3.quic.connection import QuicConnection as Conn  # type: ignore[no-redef]
    start = time.perf_counter()
    cc = Config(is_client=True, alpn_protocols=[ALPN], server_name="localhost")
    cc.load_verify_locations(paths["ca"])
    sc = Config(is_client=False, alpn_protocols=[ALPN])
    sc.load_cert_chain(paths["cert"], paths["key"])
    client = Conn(configuration=cc)
    now = 1.0
    client.connect(("127.0.0.1", 2), now=now)
    server = None
    for _ in range(20):
        for data, _ in client.datagrams_to_send(now=now):
            if server is None:
                server = Conn(
                    configuration=sc,
                    original_destination_connection_id=parse_long_header(data).destination_cid,
                )
            server.receive_datagram(data, ("127.0.0.1", 1), now=now)
        assert server is not None
        for data, _ in server.datagrams_to_send(now=now):
            client.receive_datagram(data, ("127.0.0.1", 2), now=now)
        done = False
        while (ev := client.next_event()) is not None:
            if type(ev).__name__ == "HandshakeCompleted":
                done = True
        if done:
            break
    return time.perf_counter() - start


# Over loopback UDP (asyncio) ---------------------------------------------------------------


async def quicnet_udp(ident: Any, mode: str, rounds: int, size: int) -> list[float] | float:
    from quicnet.io.aio import connect, serve

    sc = QuicConfiguration(
        is_client=False,
        alpn_protocols=[ALPN],
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
    )
    received = 0
    done = asyncio.get_running_loop().create_future()

    def handler(conn: QuicConnection, event: Any) -> None:
        nonlocal received
        if isinstance(event, DatagramReceived):
            conn.send_datagram(event.data)
        elif isinstance(event, StreamDataReceived):
            received += len(event.data)
            if event.end_stream and not done.done():
                done.set_result(received)

    server = await serve("127.0.0.1", 0, sc, handler)
    port = server.local_address[1]
    cc = QuicConfiguration(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        trust_roots=[ident.trust_root],
    )
    client = await connect("127.0.0.1", port, cc)
    try:
        if mode == "rtt":
            samples = []
            payload = os.urandom(64)
            for _ in range(rounds):
                t0 = time.perf_counter()
                client.send_datagram(payload)
                while True:
                    ev = await client.next_event()
                    if isinstance(ev, DatagramReceived):
                        break
                samples.append(time.perf_counter() - t0)
            return samples
        stream = client.connection.create_stream()
        t0 = time.perf_counter()
        chunk = os.urandom(1 << 16)
        for _ in range(size // len(chunk)):
            client.send_stream_data(stream, chunk)
            await asyncio.sleep(0)
        client.send_stream_data(stream, b"", end_stream=True)
        await asyncio.wait_for(done, 120)
        return time.perf_counter() - t0
    finally:
        await client.close()
        await server.close()


async def aioquic_udp(
    module: str, paths: dict[str, str], mode: str, rounds: int, size: int
) -> list[float] | float:
    if module == "aioquic":
        from aioquic.asyncio import QuicConnectionProtocol, connect, serve
        from aioquic.quic.configuration import QuicConfiguration as Config
        from aioquic.quic.events import DatagramFrameReceived
        from aioquic.quic.events import StreamDataReceived as StreamData
    else:
        from qh3.asyncio import QuicConnectionProtocol, connect, serve  # type: ignore[no-redef]
        from qh3.quic.configuration import QuicConfiguration as Config  # type: ignore[no-redef]
        from qh3.quic.events import DatagramFrameReceived  # type: ignore[no-redef]
        from qh3.quic.events import StreamDataReceived as StreamData  # type: ignore[no-redef]
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    echoes: asyncio.Queue[bytes] = asyncio.Queue()
    received = 0

    class Server(QuicConnectionProtocol):  # type: ignore[misc,valid-type]
        def quic_event_received(self, event: Any) -> None:
            nonlocal received
            if isinstance(event, DatagramFrameReceived):
                self._quic.send_datagram_frame(event.data)
                self.transmit()
            elif isinstance(event, StreamData):
                received += len(event.data)
                if event.end_stream and not done.done():
                    done.set_result(received)

    class Client(QuicConnectionProtocol):  # type: ignore[misc,valid-type]
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, DatagramFrameReceived):
                echoes.put_nowait(event.data)

    sc = Config(is_client=False, alpn_protocols=[ALPN], max_datagram_frame_size=65536)
    sc.load_cert_chain(paths["cert"], paths["key"])
    server = await serve("127.0.0.1", 0, configuration=sc, create_protocol=Server)
    port = server._transport.get_extra_info("sockname")[1]
    cc = Config(
        is_client=True,
        alpn_protocols=[ALPN],
        server_name="localhost",
        max_datagram_frame_size=65536,
    )
    cc.load_verify_locations(paths["ca"])
    try:
        async with connect("127.0.0.1", port, configuration=cc, create_protocol=Client) as client:
            if mode == "rtt":
                samples = []
                payload = os.urandom(64)
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    client._quic.send_datagram_frame(payload)
                    client.transmit()
                    await echoes.get()
                    samples.append(time.perf_counter() - t0)
                return samples
            stream = client._quic.get_next_available_stream_id()
            t0 = time.perf_counter()
            chunk = os.urandom(1 << 16)
            for _ in range(size // len(chunk)):
                client._quic.send_stream_data(stream, chunk)
                client.transmit()
                await asyncio.sleep(0)
            client._quic.send_stream_data(stream, b"", end_stream=True)
            client.transmit()
            await asyncio.wait_for(done, 120)
            return time.perf_counter() - t0
    finally:
        server.close()


def plot(results: dict[str, Any]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install quicnet[bench]): no plot")
        return
    stacks = list(results["handshakes_per_second"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(
        stacks, [results["handshakes_per_second"][s] for s in stacks], color=["C0", "C1", "C2"]
    )
    axes[0].set_title("handshakes/s (client+server CPU, median)")
    p50 = [results["datagram_rtt"][s]["median_us"] for s in stacks]
    p99 = [results["datagram_rtt"][s]["p99_us"] for s in stacks]
    x = range(len(stacks))
    axes[1].bar([i - 0.2 for i in x], p50, width=0.4, label="p50")
    axes[1].bar([i + 0.2 for i in x], p99, width=0.4, label="p99")
    axes[1].set_xticks(list(x), stacks)
    axes[1].set_ylabel("µs")
    axes[1].set_title("64-byte datagram echo RTT, loopback")
    axes[1].legend()
    axes[2].bar(stacks, [results["bulk_MBps"][s] for s in stacks], color=["C0", "C1", "C2"])
    axes[2].set_ylabel("MB/s")
    axes[2].set_title(f"one stream, {results['bulk_bytes'] >> 20} MB, loopback")
    m = results["machine"]
    fig.suptitle(f"{m['cpu']} | Python {m['python']} | {m['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "quic.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    hs_rounds = 20 if args.quick else 100
    rtt_rounds = 200 if args.quick else 2000
    size = (4 if args.quick else 32) << 20
    ident = dev_identity()
    results: dict[str, Any] = {
        "machine": machine(),
        "handshakes_per_second": {},
        "datagram_rtt": {},
        "bulk_MBps": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ca": f"{tmp}/ca.pem", "cert": f"{tmp}/cert.pem", "key": f"{tmp}/key.pem"}
        Path(paths["ca"]).write_bytes(ident.trust_root.to_pem())
        Path(paths["cert"]).write_bytes(ident.certificate.to_pem())
        Path(paths["key"]).write_bytes(ident.private_key.to_pem())
        stacks = ["quicnet", "aioquic", "qh3"]
        for stack in stacks:
            run = (
                (lambda: quicnet_handshake(ident))
                if stack == "quicnet"
                else (lambda s=stack: aioquic_handshake(s, paths))
            )
            for _ in range(3):
                run()
            times = [run() for _ in range(hs_rounds)]
            results["handshakes_per_second"][stack] = 1e6 / summary(times)["median_us"]
            print(f"handshake {stack:8} {summary(times)['median_us']:8.0f} us")
        for stack in stacks:
            if stack == "quicnet":
                samples = asyncio.run(quicnet_udp(ident, "rtt", rtt_rounds, 0))
                elapsed = asyncio.run(quicnet_udp(ident, "bulk", 0, size))
            else:
                samples = asyncio.run(aioquic_udp(stack, paths, "rtt", rtt_rounds, 0))
                elapsed = asyncio.run(aioquic_udp(stack, paths, "bulk", 0, size))
            assert isinstance(samples, list) and isinstance(elapsed, float)
            results["datagram_rtt"][stack] = summary(samples[len(samples) // 10 :])  # skip warm-up
            results["bulk_MBps"][stack] = size / elapsed / 1e6
            print(
                f"rtt {stack:8} p50 {results['datagram_rtt'][stack]['median_us']:7.0f} us  p99 {results['datagram_rtt'][stack]['p99_us']:7.0f} us  bulk {size / elapsed / 1e6:6.1f} MB/s"
            )
    results["bulk_bytes"] = size
    print(f"wrote {write('quic', results)}")
    plot(results)


if __name__ == "__main__":
    main()
