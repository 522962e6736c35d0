"""TLS 1.3 benchmarks: quicnet beside Python's ssl (OpenSSL), same machine, same run.

- full handshakes: client + server CPU per handshake, in memory (no sockets),
  for each server signature algorithm;
- bulk throughput: one direction over loopback TCP with asyncio.

    python benchmarks/tls_bench.py [--quick]

Writes benchmarks/results/tls.json and tls.png. Numbers, not assertions:
nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, machine, pyplot, summary, write

from quicnet.crypto import (
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.tls import (
    ClientConfig,
    ServerConfig,
    TLSConnection,
    open_connection,
    start_server,
)

KEYS: dict[str, tuple[str, dict[str, Any]]] = {
    "ecdsa_p256": ("EC", {"curve": "P-256"}),
    "ed25519": ("Ed25519", {}),
    "rsa2048_pss": ("RSA", {"rsa_bits": 2048}),
    "ecdsa_p384": ("EC", {"curve": "P-384"}),
}


def identity(kind: str):  # type: ignore[no-untyped-def]
    algorithm, kwargs = KEYS[kind]
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=bench CA")
    key = generate_private_key(algorithm, **kwargs)
    leaf = issue_certificate(make_csr(key, "/CN=localhost", names=["localhost"]), ca, ca_key)
    return ca, leaf, key


def quicnet_handshake(ca, leaf, key) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    now = time.time()
    client = TLSConnection.client(ClientConfig(server_name="localhost", trust_roots=[ca]))
    server = TLSConnection.server(ServerConfig([leaf], key, tickets_to_send=0))
    client.start(now)
    while not (client.handshake_complete and server.handshake_complete):
        server.receive_data(client.data_to_send(), now)
        client.receive_data(server.data_to_send(), now)
    return time.perf_counter() - start


def ssl_contexts(ca, leaf, key, tmp: str):  # type: ignore[no-untyped-def]
    paths = {n: os.path.join(tmp, n) for n in ("ca.pem", "leaf.pem", "key.pem")}
    Path(paths["ca.pem"]).write_bytes(ca.to_pem())
    Path(paths["leaf.pem"]).write_bytes(leaf.to_pem())
    Path(paths["key.pem"]).write_bytes(key.to_pem())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    server.load_cert_chain(paths["leaf.pem"], paths["key.pem"])
    server.num_tickets = 0
    client = ssl.create_default_context(cafile=paths["ca.pem"])
    client.minimum_version = ssl.TLSVersion.TLSv1_3
    return client, server


def ssl_handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext) -> float:
    start = time.perf_counter()
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done_c = done_s = False
    while not (done_c and done_s):
        try:
            client.do_handshake()
            done_c = True
        except ssl.SSLWantReadError:
            pass
        s_in.write(c_out.read())
        try:
            server.do_handshake()
            done_s = True
        except ssl.SSLWantReadError:
            pass
        c_in.write(s_out.read())
    return time.perf_counter() - start


async def bulk(ca, leaf, key, client_ctx, server_ctx, size: int, stack: str) -> float:  # type: ignore[no-untyped-def]
    """Seconds to move ``size`` bytes client -> server over loopback TCP."""
    received = asyncio.get_running_loop().create_future()
    chunk = os.urandom(1 << 16)

    async def sink(reader, writer) -> None:  # type: ignore[no-untyped-def]
        total = 0
        while total < size:
            data = await reader.read(1 << 18)
            if not data:
                break
            total += len(data)
        received.set_result(total)
        writer.close()

    if stack == "quicnet":
        server = await start_server(
            sink, "127.0.0.1", 0, ServerConfig([leaf], key, tickets_to_send=0)
        )
    else:
        server = await asyncio.start_server(sink, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    writer: Any  # quicnet's TLSStreamWriter or asyncio's StreamWriter, used alike
    if stack == "quicnet":
        _, writer = await open_connection(
            "127.0.0.1", port, ClientConfig(server_name="localhost", trust_roots=[ca])
        )
    else:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
    start = time.perf_counter()
    sent = 0
    while sent < size:
        writer.write(chunk)
        sent += len(chunk)
        await writer.drain()
    total = await received
    elapsed = time.perf_counter() - start
    assert total >= size
    writer.close()
    server.close()
    await server.wait_closed()
    return elapsed


def plot(results: dict) -> None:  # type: ignore[type-arg]
    plt = pyplot()
    if plt is None:
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    kinds = list(results["handshake"]["quicnet"])
    x = range(len(kinds))
    for offset, stack in ((-0.2, "quicnet"), (0.2, "python_ssl")):
        values = [1e6 / results["handshake"][stack][k]["median_us"] for k in kinds]
        ax1.bar([i + offset for i in x], values, width=0.4, label=stack)
    ax1.set_xticks(list(x), kinds, rotation=20)
    ax1.set_ylabel("full handshakes per second (client+server CPU)")
    ax1.set_title("TLS 1.3 handshakes (median)")
    ax1.legend()
    stacks = list(results["bulk_MBps"])
    ax2.bar(stacks, [results["bulk_MBps"][s] for s in stacks], color=["C0", "C1"])
    ax2.set_ylabel("MB/s")
    ax2.set_title(f"bulk over loopback TCP ({results['bulk_bytes'] >> 20} MB)")
    m = results["machine"]
    fig.suptitle(f"{m['cpu']} | Python {m['python']} | {m['date'][:10]}", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "tls.png", dpi=110)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    args = p.parse_args()
    rounds = 20 if args.quick else 200
    size = (8 if args.quick else 64) << 20
    results: dict = {"machine": machine(), "handshake": {"quicnet": {}, "python_ssl": {}}}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KEYS:
            ca, leaf, key = identity(kind)
            client_ctx, server_ctx = ssl_contexts(ca, leaf, key, tmp)
            for _ in range(3):  # warm up both
                quicnet_handshake(ca, leaf, key)
                ssl_handshake(client_ctx, server_ctx)
            q, s = [], []
            for _ in range(rounds):  # interleaved, so drift hits both equally
                q.append(quicnet_handshake(ca, leaf, key))
                s.append(ssl_handshake(client_ctx, server_ctx))
            results["handshake"]["quicnet"][kind] = summary(q)
            results["handshake"]["python_ssl"][kind] = summary(s)
            print(
                f"{kind:12} quicnet {summary(q)['median_us']:9.0f} us   ssl {summary(s)['median_us']:9.0f} us"
            )
        ca, leaf, key = identity("ecdsa_p256")
        client_ctx, server_ctx = ssl_contexts(ca, leaf, key, tmp)
        results["bulk_bytes"] = size
        results["bulk_MBps"] = {}
        for stack in ("quicnet", "python_ssl"):
            elapsed = asyncio.run(bulk(ca, leaf, key, client_ctx, server_ctx, size, stack))
            results["bulk_MBps"][stack] = size / elapsed / 1e6
            print(f"bulk {stack:10} {size / elapsed / 1e6:8.1f} MB/s")
    path = write("tls", results)
    plot(results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
