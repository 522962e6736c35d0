"""Congestion control in the simulator (issue 10): goodput and fairness per controller.

    python benchmarks/cc_bench.py [--quick] [--out DIR] [--table]

Runs ``tests/quic/simnet.py`` (simulated time, seeded, in memory: the figures
depend on the code, not on the machine) for each controller (newreno, cubic,
bbr) and each random loss rate (1%, 5%, 10%, and 0% as the reference) on a
bottleneck of 10 Mbit/s with 20 ms each way and a drop-tail queue of one
bandwidth-delay product (50 kB):

- ``goodput``: one flow, client -> server, for ``duration`` simulated seconds;
  the bytes the server's application read, over that time;
- ``fairness``: two flows of the same controller through the one bottleneck
  (the same queue), started together; their goodputs and Jain's fairness index
  ``(x1 + x2)^2 / (2 (x1^2 + x2^2))`` (1: an even share, 0.5: one flow has all);
- ``reordering``: one flow on a path of unlimited rate that reorders 3% of the
  datagrams by 15 ms and loses none, beside the same path without reordering:
  the time to move 10 MB each way, and their ratio (the issue's acceptance figure).

Random loss is applied to the data direction only (client -> server). Writes
``results/congestion.json`` and ``results/congestion.png`` (``--quick``:
``congestion-quick.*``, shorter runs). Numbers, not assertions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "quic"))
sys.path.insert(0, str(REPO))

from _common import RESULTS, machine, pyplot  # noqa: E402
from simnet import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    CLIENT_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)

from quicnet.quic import QuicConnection, StreamDataReceived  # noqa: E402
from quicnet.quic.controllers import CONTROLLERS  # noqa: E402

LOSSES = (0.0, 0.01, 0.05, 0.10)
BANDWIDTH = 10e6 / 8  # bytes per second
LATENCY = 0.020  # one way
QUEUE = 50_000  # one bandwidth-delay product (10 Mbit/s x 40 ms)


def _bottleneck(loss: float) -> LinkConfig:
    return LinkConfig(latency=LATENCY, loss=loss, bandwidth=BANDWIDTH, queue_limit=QUEUE)


class _Meter:
    """Counts the stream bytes the server's application got, per client connection."""

    def __init__(self) -> None:
        self.bytes: dict[int, int] = {}

    def __call__(self, node: Any, conn: QuicConnection, event: Any) -> None:
        if isinstance(event, StreamDataReceived):
            key = id(conn)
            self.bytes[key] = self.bytes.get(key, 0) + len(event.data)


def _flows(cc: str, loss: float, n: int, duration: float, seed: int) -> dict[str, Any]:
    """``n`` flows of ``cc`` through one bottleneck: each one's goodput (bytes/s)."""
    config = {"congestion_control": cc}
    sim = make_pair(
        seed=seed, c2s=_bottleneck(0.0), s2c=_bottleneck(0.0), client=config, server=config
    )
    nodes = [sim.client]
    for i in range(1, n):
        conn = QuicConnection(client_config(**config))
        node = sim.add_client(conn, (CLIENT_ADDR[0], CLIENT_ADDR[1] + i), s2c=_bottleneck(0.0))
        sim.share_uplink(node, sim.client)
        nodes.append(node)
    meter = _Meter()
    sim.server.on_event = meter
    for node in nodes:
        sim.connect(node)
    sim.run_until(
        lambda: all(node.connection.handshake_confirmed for node in nodes),
        timeout=30.0,
        what="handshakes",
    )
    sim.c2s.config.loss = loss
    # More than the link can carry in the time: the flows are never short of data.
    body = bytes(int(BANDWIDTH * duration * 1.5))
    for node in nodes:
        conn = node.connection
        conn.send_stream_data(conn.create_stream(), body, end_stream=True)
    meter.bytes.clear()
    sim.run_for(duration, max_steps=10_000_000)
    server_side = [sim.peer_of(node.connection) for node in nodes]
    goodputs = [meter.bytes.get(id(c), 0) / duration for c in server_side]
    recoveries = [node.connection.recovery for node in nodes]
    return {
        "goodput_bytes_per_s": goodputs,
        "packets_lost": [r.packets_lost for r in recoveries],
        "congestion_events": [r.cc.congestion_events for r in recoveries],
        "link_dropped": sim.c2s.stats.dropped,
        "queue_drops": sim.c2s.stats.queue_drops,
    }


def _jain(xs: list[float]) -> float:
    total = sum(xs)
    squares = sum(x * x for x in xs)
    return total * total / (len(xs) * squares) if squares else 0.0


def _transfer_time(cc: str, reorder: float, size: int, seed: int) -> dict[str, Any]:
    def link() -> LinkConfig:
        return LinkConfig(latency=LATENCY, reorder=reorder, reorder_delay=0.015)

    config = {"congestion_control": cc}
    sim: Simulation = make_pair(seed=seed, c2s=link(), s2c=link(), client=config, server=config)
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    start = sim.now
    sent = send_on_new_streams(sim.client.connection, payloads(seed, [size]))
    sim.run_until(lambda: collector.complete(sent), timeout=600.0, max_steps=10_000_000)
    recovery = sim.client.connection.recovery
    return {
        "seconds": sim.now - start,
        "packets_lost": recovery.packets_lost,
        "spurious_losses": recovery.spurious.count,
        "congestion_events": recovery.cc.congestion_events,
        "undone": recovery.spurious.undone,
        "packet_threshold": recovery.packet_threshold,
        "time_threshold": recovery.time_threshold,
    }


def run(quick: bool) -> dict[str, Any]:
    duration = 3.0 if quick else 20.0
    size = 2_000_000 if quick else 10_000_000
    seed = 1
    rows: list[dict[str, Any]] = []
    reordering: dict[str, Any] = {}
    wall = time.perf_counter()
    for cc in CONTROLLERS:
        for loss in LOSSES:
            one = _flows(cc, loss, 1, duration, seed)
            two = _flows(cc, loss, 2, duration, seed)
            row = {
                "controller": cc,
                "loss": loss,
                "goodput_mbit_s": one["goodput_bytes_per_s"][0] * 8 / 1e6,
                "single": one,
                "pair_goodput_mbit_s": [g * 8 / 1e6 for g in two["goodput_bytes_per_s"]],
                "jain_index": _jain(two["goodput_bytes_per_s"]),
                "pair": two,
            }
            rows.append(row)
            print(
                f"{cc:8} loss {loss:4.0%}: {row['goodput_mbit_s']:6.2f} Mbit/s alone;"
                f" two flows {row['pair_goodput_mbit_s'][0]:.2f} + "
                f"{row['pair_goodput_mbit_s'][1]:.2f}, Jain {row['jain_index']:.3f}",
                flush=True,
            )
        plain = _transfer_time(cc, 0.0, size, seed)
        mixed = _transfer_time(cc, 0.03, size, seed)
        reordering[cc] = {
            "no_reordering": plain,
            "reordering_3pct": mixed,
            "goodput_ratio": plain["seconds"] / mixed["seconds"],
        }
        print(
            f"{cc:8} {size / 1e6:.0f} MB, 3% reordering, no loss: {mixed['seconds']:.3f} s vs"
            f" {plain['seconds']:.3f} s without (goodput ratio"
            f" {reordering[cc]['goodput_ratio']:.2f})",
            flush=True,
        )
    return {
        "profile": "quick" if quick else "full",
        "machine": machine(),
        "parameters": {
            "bandwidth_mbit_s": BANDWIDTH * 8 / 1e6,
            "one_way_latency_s": LATENCY,
            "queue_bytes": QUEUE,
            "duration_s": duration,
            "losses": list(LOSSES),
            "reordering_transfer_bytes": size,
            "seed": seed,
        },
        "rows": rows,
        "reordering": reordering,
        "wall_seconds": time.perf_counter() - wall,
    }


def table(r: dict[str, Any]) -> str:
    lines = [
        "| controller | loss | goodput alone (Mbit/s) | two flows (Mbit/s) | Jain's index |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        a, b = row["pair_goodput_mbit_s"]
        lines.append(
            f"| {row['controller']} | {row['loss']:.0%} | {row['goodput_mbit_s']:.2f} |"
            f" {a:.2f} + {b:.2f} | {row['jain_index']:.3f} |"
        )
    mb = r["parameters"]["reordering_transfer_bytes"] / 1e6
    lines += [
        "",
        f"| controller | {mb:.0f} MB, no reordering (s) | 3% reordering (s) | goodput ratio |",
        "|---|---|---|---|",
    ]
    for cc, figures in r["reordering"].items():
        lines.append(
            f"| {cc} | {figures['no_reordering']['seconds']:.3f} |"
            f" {figures['reordering_3pct']['seconds']:.3f} | {figures['goodput_ratio']:.2f} |"
        )
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    controllers = list(dict.fromkeys(row["controller"] for row in r["rows"]))
    losses = r["parameters"]["losses"]
    width = 0.8 / len(controllers)
    for i, cc in enumerate(controllers):
        rows = [row for row in r["rows"] if row["controller"] == cc]
        xs = [j + (i - (len(controllers) - 1) / 2) * width for j in range(len(losses))]
        left.bar(xs, [row["goodput_mbit_s"] for row in rows], width=width, label=cc)
        right.bar(xs, [row["jain_index"] for row in rows], width=width, label=cc)
    for ax in (left, right):
        ax.set_xticks(range(len(losses)), [f"{loss:.0%} loss" for loss in losses])
        ax.legend(fontsize=8)
    left.set_ylabel("Mbit/s (link: 10)")
    left.set_title("Goodput of one flow", fontsize=9)
    right.set_ylim(0.5, 1.02)
    right.set_ylabel("Jain's index")
    right.set_title("Fairness of two flows of the same controller", fontsize=9)
    fig.suptitle(
        f"quicnet congestion control in the simulator ({r['profile']}): 10 Mbit/s, 40 ms RTT,"
        f" 50 kB queue, {r['parameters']['duration_s']:.0f} s per run",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs (seconds of wall time)")
    p.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    p.add_argument("--table", action="store_true", help="print the last run's table and exit")
    a = p.parse_args()
    name = "congestion-quick" if a.quick else "congestion"
    path = a.out / f"{name}.json"
    if a.table:
        print(table(json.loads(path.read_text())))
        return 0
    results = run(a.quick)
    a.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, a.out / f"{name}.png")
    print(table(results))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
