"""The QUIC benchmark: quicnet beside raw UDP, aioquic and qh3, same machine, same run.

    python3 dev.py bench [--quick]                    # or, in the venv:
    python benchmarks/quic_bench.py [--quick] [--only rtt,bulk,...] [--table]

Sections (issue 8), each run in its own child process, every server in a
process of its own (``_peers.py``):

- ``rtt``: 64-byte echo round trips over loopback, p50/p99/p99.9: raw UDP with
  each I/O model (blocking, select as quicnet.io.udp, asyncio add_reader as
  quicnet.io.aio, with and without uvloop), quicnet tick-driven and asyncio
  (with and without uvloop) echoing DATAGRAM frames, aioquic and qh3;
- ``bulk``: one stream client -> server, goodput until the server saw its end;
- ``handshake``: client+server CPU of a full handshake through a QuicEndpoint
  that already holds N connections (in memory), Ed25519 and P-256, X25519;
- ``memory``: bytes per idle connection per side (tracemalloc, after the handshake);
- ``capacity``: 30 Hz clients, 100-byte input, 300-byte snapshot per tick: the
  server's CPU per client-tick in memory, and on loopback the largest N one
  tick-driven server process holds with p99 latency under 5 ms and no loss.

Writes benchmarks/results/quic.json and quic.png (``--quick``: quic-quick.*),
with the machine, every figure and the issue's targets as ratios from this
run. ``--table`` prints the Markdown table of the last results and exits.
Numbers, not assertions: nothing here fails on a slow result.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    SERVER_STACKS,
    Peer,
    PeerError,
    machine,
    machine_busy_seconds,
    machine_share_line,
    pyplot,
    summary,
    write,
)

HERE = Path(__file__).resolve().parent

RTT_STACKS = list(SERVER_STACKS)  # every stack a server process can run
BULK_STACKS = [
    "quicnet-tick",
    "quicnet-asyncio",
    "quicnet-uvloop",
    "aioquic-asyncio",
    "aioquic-uvloop",
    "qh3-asyncio",
    "qh3-uvloop",
]
#: Each quicnet driver beside the raw UDP loop with the same I/O model.
SAME_IO_MODEL = {
    "quicnet-tick": "raw-select",
    "quicnet-asyncio": "raw-asyncio",
    "quicnet-uvloop": "raw-uvloop",
}
REFERENCE = "qh3-uvloop"
ALGORITHMS = ["Ed25519", "P-256"]
SECTIONS = ["rtt", "bulk", "handshake", "memory", "capacity"]
#: The capacity test's client generators: quicnet's own clients, and qh3's (packet path
#: in Rust), which leave more of the two cores to the server under test.
GENERATORS = ["quicnet", "qh3"]

PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "rtt_rounds": 10_000,
        "rtt_warmup": 1_000,
        # Passes per stack, round robin, each with its own pair of processes.
        "rtt_passes": 5,
        "bulk_bytes": 100 << 20,
        "bulk_repeats": 3,
        "handshake_open": [10, 1_000, 10_000],
        "handshake_samples": 200,
        "memory_connections": 1_000,
        "capacity_memory_clients": 1_000,
        "capacity_memory_ticks": 60,
        # Stops at the first step that fails: steps of 50 up to the 1,000 (800
        # held and 1,000 failed in the run of 2026-12-05 18:57, with no step between),
        # then 1,500.
        "capacity_clients": [*range(50, 1_001, 50), 1_500],
        "capacity_seconds": 5.0,
        "capacity_warmup": 1.0,
    },
    "quick": {
        "rtt_rounds": 1_000,
        "rtt_warmup": 200,
        "rtt_passes": 1,
        "bulk_bytes": 8 << 20,
        "bulk_repeats": 1,
        "handshake_open": [10, 100, 1_000],
        "handshake_samples": 20,
        "memory_connections": 200,
        "capacity_memory_clients": 200,
        "capacity_memory_ticks": 20,
        "capacity_clients": [50, 100, 200],
        "capacity_seconds": 2.0,
        "capacity_warmup": 0.5,
    },
}
RATE_HZ = 30.0
#: Issue 8's targets.
RTT_VS_RAW = 2.5
HANDSHAKE_MS = 1.5
HANDSHAKE_GROWTH = 1.10
IDLE_BYTES = 12_000
CLIENTS = 1_000


# The child processes -------------------------------------------------------------------------


def child(kind: str, args: list[str], profile: dict[str, Any], certdir: Path) -> Any:
    """One measurement, in this (child) process; the result goes to stdout as JSON."""
    if kind == "rtt":
        from _loopback import measure_rtt

        raw = measure_rtt(args[0], certdir, profile["rtt_rounds"], profile["rtt_warmup"])
        return {**summary(raw["samples"]), "lost": raw["lost"]}
    if kind == "bulk":
        from _loopback import measure_bulk

        return measure_bulk(args[0], certdir, profile["bulk_bytes"])
    if kind == "handshake":
        from _inmemory import handshake_cpu

        return handshake_cpu(args[0], profile["handshake_open"], profile["handshake_samples"])
    if kind == "handshake-other":
        from _inmemory import other_handshake_cpu

        return other_handshake_cpu(args[0], args[1], profile["handshake_samples"])
    if kind == "memory":
        from _inmemory import memory_per_connection

        return memory_per_connection(profile["memory_connections"])
    if kind == "capacity-memory":
        from _inmemory import capacity_in_memory

        ticks = profile["capacity_memory_ticks"]
        return capacity_in_memory(profile["capacity_memory_clients"], ticks, 5, RATE_HZ)
    if kind == "capacity-loopback":
        from _loopback import measure_capacity

        return measure_capacity(
            certdir,
            profile["capacity_clients"],
            profile["capacity_seconds"],
            profile["capacity_warmup"],
            args[0],
        )
    raise SystemExit(f"unknown child {kind}")


def run_child(
    kind: str, args: list[str], quick: bool, certdir: Path, timeout: float
) -> dict[str, Any]:
    """Run one measurement in a child process; a failure or a timeout is a result too."""
    command = [str(HERE / "quic_bench.py"), "--child", kind, "--certdir", str(certdir)]
    command += ["--quick"] * quick + args
    label = " ".join([kind, *args])
    started = time.monotonic()
    print(f"{label} ...", flush=True)
    try:
        with Peer(command, label, echo=True) as peer:
            result: dict[str, Any] = json.loads(peer.expect("RESULT", timeout))
    except (PeerError, ValueError) as exc:
        print(f"  FAILED: {exc}", flush=True)
        return {"error": str(exc), "seconds": time.monotonic() - started}
    if "error" in result:
        print(f"  FAILED: {result['error']}", flush=True)
    return result


# The run -------------------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    import importlib.metadata

    out: dict[str, str | None] = {}
    for name in ("quicnet", "aioquic", "qh3", "uvloop", "cryptography"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def source(commit: str | None) -> dict[str, Any]:
    """Which quicnet was measured: a commit exported on its own, or the work tree."""
    if commit:
        return {"commit": git("rev-parse", commit) or commit, "measured": "the commit, exported"}
    changed = [line[3:] for line in git("status", "--porcelain", "--", "quicnet").splitlines()]
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "measured": "the work tree",
        "quicnet_uncommitted": changed,
    }


def export_commit(commit: str, into: Path) -> None:
    """Put ``commit``'s quicnet package in ``into`` and make every child import it."""
    archive = subprocess.run(
        ["git", "archive", commit, "quicnet"], cwd=HERE.parent, capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(into), os.environ.get("PYTHONPATH")) if p
    )


def rtt_rounds(
    child_run: Callable[[str, list[str], float], dict[str, Any]], passes: int
) -> dict[str, Any]:
    """Every RTT stack ``passes`` times, round robin, each pass a new client and server
    process: where the two processes land and what else the VM runs move one pass's
    figures by a quarter, the median of the passes much less. Per stack: the median over
    the passes of each percentile, every pass's p50, and the rounds and losses of all."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in RTT_STACKS}
    for _ in range(passes):
        for stack in RTT_STACKS:
            runs[stack].append(child_run("rtt", [stack], 300))
    return {stack: combine_passes(results) for stack, results in runs.items()}


def combine_passes(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One stack's RTT passes as one result (see :func:`rtt_rounds`); a stack whose every
    pass failed keeps the last failure."""
    good = [r for r in results if "median_us" in r]
    if not good:
        return results[-1]
    out: dict[str, Any] = {
        key: statistics.median(r[key] for r in good)
        for key in ("median_us", "p99_us", "p999_us", "mean_us")
    }
    out["n"] = sum(r["n"] for r in good)
    out["lost"] = sum(r.get("lost", 0) for r in good)
    out["passes_median_us"] = [r.get("median_us") for r in results]
    out["failed_passes"] = [r["error"] for r in results if "error" in r]
    return out


def bulk_rounds(
    child_run: Callable[[str, list[str], float], dict[str, Any]], repeats: int
) -> dict[str, Any]:
    """Every bulk stack ``repeats`` times, round robin (a load that drifts hits all alike);
    the median goodput per stack, with every run's."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in BULK_STACKS}
    for _ in range(repeats):
        for stack in BULK_STACKS:
            runs[stack].append(child_run("bulk", [stack], 400))
    out: dict[str, Any] = {}
    for stack, results in runs.items():
        good = sorted(r["MBps"] for r in results if "MBps" in r)
        if not good:
            out[stack] = results[-1]
            continue
        out[stack] = {
            "MBps": statistics.median(good),
            "runs_MBps": [r.get("MBps") for r in results],
            "bytes": next(r["bytes"] for r in results if "bytes" in r),
            "failed_runs": [r["error"] for r in results if "error" in r],
        }
    return out


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall, busy CPU seconds of the whole machine, CPU seconds of this run's processes)."""
    mine = os.times()
    ours = mine.user + mine.system + mine.children_user + mine.children_system
    busy = machine_busy_seconds()
    return None if busy is None else (time.monotonic(), busy, ours)


def machine_share(before: Any, after: Any) -> dict[str, float] | None:
    """Average cores busy during the run: ours, and everyone else's on the same machine."""
    if before is None or after is None:
        return None
    wall = after[0] - before[0]
    busy = (after[1] - before[1]) / wall
    ours = (after[2] - before[2]) / wall
    # The two counters are read a moment apart: a quiet machine can come out a hair below 0.
    others = max(0.0, busy - ours)
    return {"busy_cores": busy, "this_run_cores": ours, "other_processes_cores": others}


def run(quick: bool, sections: list[str], certdir: Path, commit: str | None) -> dict[str, Any]:
    profile = PROFILES["quick" if quick else "full"]
    results: dict[str, Any] = {
        "machine": machine(),
        "load_average_before": list(os.getloadavg()),
        "versions": versions(),
        "source": source(commit),
        "profile": "quick" if quick else "full",
        "parameters": profile,
        "command": "python3 dev.py bench"
        + (" --quick" if quick else "")
        + (f" --commit {commit}" if commit else ""),
    }
    started = time.monotonic()
    cpu_before = cpu_seconds()
    timing: dict[str, float] = {}

    def child_run(kind: str, args: list[str], timeout: float) -> dict[str, Any]:
        return run_child(kind, args, quick, certdir, timeout)

    plan: dict[str, Callable[[], dict[str, Any]]] = {
        "rtt": lambda: rtt_rounds(child_run, profile["rtt_passes"]),
        "bulk": lambda: bulk_rounds(child_run, profile["bulk_repeats"]),
        "handshake": lambda: {
            "quicnet": {a: child_run("handshake", [a], 1800) for a in ALGORITHMS},
            **{
                other: {a: child_run("handshake-other", [other, a], 300) for a in ALGORITHMS}
                for other in ("aioquic", "qh3")
            },
        },
        "memory": lambda: child_run("memory", [], 1200),
        "capacity": lambda: {
            "in_memory": child_run("capacity-memory", [], 1200),
            **{
                f"loopback_{g}_clients": child_run("capacity-loopback", [g], 1800)
                for g in GENERATORS
            },
        },
    }
    for name in SECTIONS:
        if name in sections:
            t0 = time.monotonic()
            results[name] = plan[name]()
            timing[name] = time.monotonic() - t0
    timing["total"] = time.monotonic() - started
    results["seconds"] = timing
    results["load_average_after"] = list(os.getloadavg())
    # Loopback figures need both cores: what else ran meanwhile says how far to trust them.
    results["machine_share"] = machine_share(cpu_before, cpu_seconds())
    results["targets"] = targets(results)
    return results


def _get(tree: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _target(description: str, value: Any, limit: float, *, at_most: bool) -> dict[str, Any]:
    if not isinstance(value, int | float):
        return {"target": description, "value": None, "limit": limit, "met": None}
    met = value <= limit if at_most else value >= limit
    return {"target": description, "value": value, "limit": limit, "met": met}


def targets(r: dict[str, Any]) -> dict[str, Any]:
    """Issue 8's targets, as ratios and values from this run (None: not measured)."""
    out: dict[str, Any] = {}
    qh3_rtt = _get(r, "rtt", REFERENCE, "median_us")
    qh3_bulk = _get(r, "bulk", REFERENCE, "MBps")
    for stack, raw in SAME_IO_MODEL.items():
        p50 = _get(r, "rtt", stack, "median_us")
        raw_p50 = _get(r, "rtt", raw, "median_us")
        out[f"rtt_p50_{stack}_vs_{REFERENCE}"] = _target(
            f"RTT p50 of {stack} at or below {REFERENCE}'s (ratio <= 1)",
            p50 / qh3_rtt if p50 and qh3_rtt else None,
            1.0,
            at_most=True,
        )
        out[f"rtt_p50_{stack}_vs_{raw}"] = _target(
            f"RTT p50 of {stack} at most {RTT_VS_RAW}x {raw}'s (same I/O model)",
            p50 / raw_p50 if p50 and raw_p50 else None,
            RTT_VS_RAW,
            at_most=True,
        )
        mbps = _get(r, "bulk", stack, "MBps")
        out[f"bulk_{stack}_vs_{REFERENCE}"] = _target(
            f"bulk goodput of {stack} at least {REFERENCE}'s (ratio >= 1)",
            mbps / qh3_bulk if mbps and qh3_bulk else None,
            1.0,
            at_most=False,
        )
    opens = PROFILES[r.get("profile", "full")]["handshake_open"]
    low, high = str(min(opens)), str(max(opens))
    for algorithm in ALGORITHMS:
        base = _get(r, "handshake", "quicnet", algorithm, low, "median_ms")
        loaded = _get(r, "handshake", "quicnet", algorithm, high, "median_ms")
        out[f"handshake_cpu_{algorithm}"] = _target(
            f"handshake CPU (client+server, {algorithm}, X25519, {low} open) at most"
            f" {HANDSHAKE_MS} ms",
            base,
            HANDSHAKE_MS,
            at_most=True,
        )
        out[f"handshake_cpu_{algorithm}_{high}_open"] = _target(
            f"handshake CPU ({algorithm}) with {high} open within 10% of {low} open (ratio)",
            loaded / base if loaded and base else None,
            HANDSHAKE_GROWTH,
            at_most=True,
        )
    for side in ("client", "server"):
        out[f"idle_memory_{side}"] = _target(
            f"memory per idle connection, {side} side, at most {IDLE_BYTES} bytes",
            _get(r, "memory", f"{side}_bytes_per_connection"),
            IDLE_BYTES,
            at_most=True,
        )
    runs = {g: _get(r, "capacity", f"loopback_{g}_clients") or {} for g in GENERATORS}
    held = {g: run.get("largest_clients_held") for g, run in runs.items()}
    best = max(
        (g for g in GENERATORS if isinstance(held[g], int)),
        key=lambda g: held[g] or 0,
        default=None,
    )
    entry = _target(
        f"clients at {RATE_HZ:.0f} Hz one server process holds (p99 < 5 ms, no loss)",
        held[best] if best else None,
        CLIENTS,
        at_most=False,
    )
    entry["by_generator"] = held
    entry["first_failure_limited_by"] = {
        g: run.get("first_failure_limited_by") for g, run in runs.items()
    }
    out["capacity_clients"] = entry
    return out


# Output --------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    return "failed" if not isinstance(value, int | float) else f"{value:,.{digits}f}"


def table(r: dict[str, Any]) -> str:
    """The results as a Markdown table (what benchmarks/README.md shows)."""
    rows = ["| measurement | stack | result |", "|---|---|---|"]
    for stack in RTT_STACKS:
        s = _get(r, "rtt", stack)
        if s is None:
            continue
        text = (
            f"{_fmt(s.get('median_us'))} / {_fmt(s.get('p99_us'))} / {_fmt(s.get('p999_us'))} µs"
            if "median_us" in s
            else "failed"
        )
        passes = s.get("passes_median_us") or []
        if len(passes) > 1:
            text += f" (p50 of each pass: {', '.join(_fmt(v) for v in passes)})"
        rows.append(f"| 64-byte echo RTT p50 / p99 / p99.9 | {stack} | {text} |")
    for stack in BULK_STACKS:
        s = _get(r, "bulk", stack)
        if s is not None:
            mb = _get(r, "parameters", "bulk_bytes") or 0
            each = s.get("runs_MBps") or []
            runs = f" (median of {', '.join(_fmt(v, 1) for v in each)})" if len(each) > 1 else ""
            rows.append(
                f"| one-stream bulk, {mb >> 20} MiB | {stack} | {_fmt(s.get('MBps'), 1)} MB/s{runs} |"
            )
    hs = _get(r, "handshake") or {}
    for algorithm in ALGORITHMS if hs else []:
        per_n = _get(hs, "quicnet", algorithm) or {}
        if "error" in per_n:
            rows.append(f"| handshake CPU, {algorithm} | quicnet | failed |")
            continue
        cells = ", ".join(
            f"{_fmt(v['median_ms'], 2)} ms ({int(k):,} open)" for k, v in per_n.items()
        )
        rows.append(f"| handshake CPU (client+server), {algorithm} | quicnet | {cells} |")
        for other in ("aioquic", "qh3"):
            o = _get(hs, other, algorithm) or {}
            value = f"{_fmt(o['median_ms'], 2)} ms" if "median_ms" in o else "unsupported/failed"
            rows.append(f"| handshake CPU (client+server), {algorithm} | {other} | {value} |")
    mem = _get(r, "memory") or {}
    if mem:
        rows.append(
            "| memory per idle connection, client / server | quicnet |"
            f" {_fmt(mem.get('client_bytes_per_connection'))} / "
            f"{_fmt(mem.get('server_bytes_per_connection'))} bytes |"
        )
    cap = _get(r, "capacity") or {}
    if cap:
        inmem = cap.get("in_memory", {})
        rows.append(
            f"| server CPU per client-tick, in memory ({_fmt(inmem.get('clients'))} clients) |"
            f" quicnet | {_fmt(inmem.get('server_cpu_per_client_tick_us'))} µs"
            f" (≈ {_fmt(inmem.get('clients_per_core_at_rate'))} clients per core at 30 Hz) |"
        )
        for generator in GENERATORS:
            loop = cap.get(f"loopback_{generator}_clients", {})
            if "error" in loop:
                rows.append(
                    f"| clients at 30 Hz held on loopback, {generator} clients | quicnet-tick | failed |"
                )
                continue
            steps = [s for s in loop.get("steps", []) if "error" not in s]
            held = loop.get("largest_clients_held")

            def step_text(s: dict[str, Any]) -> str:
                return (
                    f"p99 {_fmt((s.get('latency_p99_us') or 0) / 1000, 1)} ms, lost"
                    f" {s.get('lost', '?')}, CPU server {_fmt(100 * s['server_cpu_fraction'])}%"
                    f" / generator {_fmt(100 * (s.get('generator_cpu_fraction') or 0))}%"
                )

            parts = [f"at {held}: {step_text(s)}" for s in steps if s["clients"] == held]
            failed = [s for s in steps if not s["holds"]]
            if failed:
                f = failed[0]
                parts.append(f"at {f['clients']}: {step_text(f)}; limited by {f.get('limited_by')}")
            rows.append(
                f"| clients at 30 Hz one server process holds (p99 < 5 ms, no loss),"
                f" {generator} clients | quicnet-tick | {_fmt(held)} ({'; '.join(parts)}) |"
            )
    lines = ["\n".join(rows), "", "| target | value | limit | met |", "|---|---|---|---|"]
    for t in (r.get("targets") or {}).values():
        met = {True: "yes", False: "no", None: "not measured"}[t["met"]]
        value = "-" if t["value"] is None else _fmt(t["value"], 2 if t["value"] < 100 else 0)
        lines.append(f"| {t['target']} | {value} | {t['limit']} | {met} |")
    return "\n".join(lines)


def plot(r: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
    # RTT
    ax = axes[0][0]
    stacks = [s for s in RTT_STACKS if "median_us" in (_get(r, "rtt", s) or {})]
    for offset, key, label in (
        (-0.27, "median_us", "p50"),
        (0, "p99_us", "p99"),
        (0.27, "p999_us", "p99.9"),
    ):
        ax.bar(
            [i + offset for i in range(len(stacks))],
            [r["rtt"][s][key] for s in stacks],
            width=0.27,
            label=label,
        )
    ax.set_xticks(range(len(stacks)), stacks, rotation=45, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("µs")
    ax.set_title("64-byte echo RTT over loopback (server in another process)", fontsize=9)
    ax.legend(fontsize=7)
    # Bulk
    ax = axes[0][1]
    stacks = [s for s in BULK_STACKS if "MBps" in (_get(r, "bulk", s) or {})]
    ax.bar(
        stacks, [r["bulk"][s]["MBps"] for s in stacks], color=[f"C{i}" for i in range(len(stacks))]
    )
    ax.set_xticks(range(len(stacks)), stacks, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("MB/s")
    mb = (_get(r, "parameters", "bulk_bytes") or 0) >> 20
    ax.set_title(f"one stream, {mb} MiB, client -> server, loopback", fontsize=9)
    # Handshake
    ax = axes[0][2]
    for algorithm in ALGORITHMS:
        per_n = _get(r, "handshake", "quicnet", algorithm) or {}
        points = [
            (int(k), v["median_ms"])
            for k, v in per_n.items()
            if isinstance(v, dict) and "median_ms" in v
        ]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"quicnet {algorithm}")
    for i, other in enumerate(("aioquic", "qh3")):
        value = _get(r, "handshake", other, "P-256", "median_ms")
        if value:
            ax.axhline(
                value, linestyle=":", color=f"C{i + 3}", label=f"{other} P-256 (no endpoint)"
            )
    ax.axhline(HANDSHAKE_MS, color="red", linewidth=0.8, label="target")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("connections already open on the endpoint")
    ax.set_ylabel("ms CPU (client + server)")
    ax.set_title("full handshake, X25519, in memory", fontsize=9)
    ax.legend(fontsize=7)
    # Memory
    ax = axes[1][0]
    mem = _get(r, "memory") or {}
    if "server_bytes_per_connection" in mem:
        ax.bar(
            ["client", "server"],
            [mem["client_bytes_per_connection"] / 1000, mem["server_bytes_per_connection"] / 1000],
            color=["C0", "C1"],
        )
        ax.axhline(IDLE_BYTES / 1000, color="red", linewidth=0.8, label="target")
        ax.legend(fontsize=7)
    ax.set_ylabel("kB per connection")
    ax.set_title(
        f"memory per idle connection ({mem.get('connections', '?')} open, tracemalloc)", fontsize=9
    )
    # Capacity
    ax = axes[1][1]
    for generator in GENERATORS:
        steps = _get(r, "capacity", f"loopback_{generator}_clients", "steps") or []
        points = [
            (s["clients"], s["latency_p99_us"] / 1000) for s in steps if s.get("latency_p99_us")
        ]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"p99, {generator} clients")
            ax.set_yscale("log")
    ax.axhline(5, color="red", linewidth=0.8, label="5 ms")
    ax.set_xlabel("clients at 30 Hz (one generator process)")
    ax.set_ylabel("ms")
    held = _get(r, "targets", "capacity_clients", "value")
    per_tick = _get(r, "capacity", "in_memory", "server_cpu_per_client_tick_us")
    ax.set_title(
        f"one server process on loopback: {held} clients held;"
        f" in memory {per_tick or 0:.0f} µs CPU per client-tick",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    # Targets
    ax = axes[1][2]
    ax.axis("off")
    lines = []
    for t in (r.get("targets") or {}).values():
        mark = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        value = "-" if t["value"] is None else f"{t['value']:.2f}"
        lines.append(f"{mark:8} {value:>9}  {t['target'][:70]}")
    ax.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=6)
    ax.set_title("issue 8 targets, from this run", fontsize=9)
    m = r["machine"]
    share = r.get("machine_share") or {}
    others = share.get("other_processes_cores")
    fig.suptitle(
        f"quicnet QUIC benchmark ({r['profile']}) | {m['cpu']}, {m['cores']} cores | Python"
        f" {m['python']} | {m['date'][:10]}"
        + (f" | other processes used {others:.2f} cores meanwhile" if others is not None else ""),
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_certificates(certdir: Path) -> None:
    """The project's dev identity (P-256 leaf, throwaway CA) as PEM, for every stack."""
    from quicnet.crypto import dev_identity

    ident = dev_identity(days=2)
    (certdir / "ca.pem").write_bytes(ident.trust_root.to_pem())
    (certdir / "cert.pem").write_bytes(ident.certificate.to_pem())
    (certdir / "key.pem").write_bytes(ident.private_key.to_pem())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}"
    )
    parser.add_argument("--table", action="store_true", help="print the last results' table")
    parser.add_argument(
        "--replot",
        action="store_true",
        help="recompute the targets and redraw the PNG from the last results' figures",
    )
    parser.add_argument(
        "--commit",
        help="measure this commit's quicnet (exported to a temporary directory), not the"
        " work tree, which others may be editing",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--certdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    name = "quic-quick" if args.quick else "quic"
    if args.child:
        profile = PROFILES["quick" if args.quick else "full"]
        try:
            result = child(args.child, args.child_args, profile, args.certdir)
        except Exception as exc:
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        print("RESULT " + json.dumps(result), flush=True)
        return 0
    if args.table or args.replot:
        results = json.loads((RESULTS / f"{name}.json").read_text())
        if args.replot:
            results["targets"] = targets(results)
            write(name, results)
            plot(results, RESULTS / f"{name}.png")
        print(table(results))
        return 0
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="quic-bench-") as tmp:
        certdir = Path(tmp)
        write_certificates(certdir)
        if args.commit:
            (certdir / "src").mkdir()
            export_commit(args.commit, certdir / "src")
        results = run(args.quick, sections, certdir, args.commit)
    path = write(name, results)
    plot(results, RESULTS / f"{name}.png")
    print()
    print(table(results))
    share = machine_share_line(results)
    if share:
        print(f"\n{share}")
    print(f"wrote {path} and {name}.png in {results['seconds']['total']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
