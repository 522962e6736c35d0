"""``speed``: how fast quicnet's primitives and protocols run here, as ``openssl speed``.

Rows: AEAD seal throughput at 16/256/1350/8192-byte blocks (MB/s),
signatures (sign/s, verify/s), key exchanges (ops/s), TLS 1.3 handshakes per
second and QUIC 1-RTT packets per second, both in memory through quicnet's
engines. Each test runs for ``-seconds`` of CPU time (wall-clock time with
``-elapsed``); progress goes to stderr, the table (or ``-json``) to stdout.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from quicnet import __version__
from quicnet.cli.common import CliError, Parser
from quicnet.cli.speed_ops import (
    AEAD_SIZES,
    BENCHES,
    Bench,
    BenchUnavailable,
    Op,
    QuicEcho,
    aead_op,
    kex_op,
    shared_identity,
    signature_ops,
    tls_handshake_op,
)
from quicnet.crypto import DevIdentity

_ALIASES = {
    "aes128gcm": "aes-128-gcm",
    "aes256gcm": "aes-256-gcm",
    "chacha20poly1305": "chacha20-poly1305",
    "mldsa65": "ml-dsa-65",
    "ecdsa": "ecdsap256",
    "ecdh": "ecdhp256",
    "rsa": "rsa2048",
    "tls": "tls13",
    "handshake": "tls13",
}
_BY_NAME = {b.name: b for b in BENCHES}


def _select(names: list[str]) -> list[Bench]:
    if not names:
        return list(BENCHES)
    chosen: list[str] = []
    for raw in names:
        name = _ALIASES.get(raw.lower(), raw.lower())
        if name not in _BY_NAME:
            known = " ".join(b.name for b in BENCHES)
            raise CliError(f"unknown algorithm {raw!r} (known: {known})")
        if name not in chosen:
            chosen.append(name)
    return [b for b in BENCHES if b.name in chosen]


class _Runner:
    """Repeats an operation for the time budget on the chosen clock."""

    def __init__(self, seconds: float, elapsed: bool) -> None:
        self.seconds = seconds
        self.clock: Callable[[], float] = time.perf_counter if elapsed else time.process_time

    def run(self, op: Op, label: str, what: str) -> tuple[int, float]:
        """(operations, seconds); ``label`` and ``what`` make OpenSSL's progress line."""
        sys.stderr.write(f"Doing {label} for {self.seconds:g}s{what}: ")
        sys.stderr.flush()
        op()  # warm-up: lazy imports and first-use caches stay out of the figure
        clock, budget = self.clock, self.seconds
        count, batch = 0, 1
        start = clock()
        while True:
            began = clock()
            for _ in range(batch):
                op()
            count += batch
            now = clock()
            spent = now - start
            if spent >= budget:
                break
            # Batches of at most ~1/50 of the budget: the clock is read rarely, the overshoot small.
            if (now - began) * 100 < budget and batch < 1 << 16:
                batch *= 2
        name = label.split(" ops")[0]
        sys.stderr.write(f"{count} {name} ops in {spent:.2f}s\n")
        return count, spent


def _measure(bench: Bench, runner: _Runner, identity: Callable[[], DevIdentity]) -> dict[str, Any]:
    row: dict[str, Any] = {"name": bench.name, "kind": bench.kind, "title": bench.title}
    n = bench.name
    if bench.kind == "aead":
        per_size: dict[str, float] = {}
        for size in AEAD_SIZES:
            count, spent = runner.run(aead_op(n, size), f"{n} ops", f" on {size} size blocks")
            per_size[str(size)] = count * size / spent / 1e6
        row["mb_per_s"] = per_size
    elif bench.kind == "sig":
        try:
            sign, verify = signature_ops(n)
        except BenchUnavailable as exc:
            row["unavailable"] = str(exc)
            sys.stderr.write(f"Skipping {n}: {exc}\n")
            return row
        count, spent = runner.run(sign, f"{n} sign ops", "")
        row["sign_per_s"] = count / spent
        count, spent = runner.run(verify, f"{n} verify ops", "")
        row["verify_per_s"] = count / spent
    elif bench.kind == "kex":
        count, spent = runner.run(kex_op(n), f"{n} exchange ops", "")
        row["ops_per_s"] = count / spent
    elif bench.kind == "tls":
        count, spent = runner.run(tls_handshake_op(identity()), f"{n} handshake ops", "")
        row["handshakes_per_s"] = count / spent
    else:
        echo = QuicEcho(identity())
        count, spent = runner.run(echo.echo, f"{n} echo ops", "")
        row["echoes_per_s"] = count / spent
        row["packets_per_s"] = echo.packets / spent
    return row


def _table(rows: list[dict[str, Any]], clock: str) -> str:
    out = [f"quicnet {__version__} speed ({clock} time)"]
    aead = [r for r in rows if r["kind"] == "aead"]
    if aead:
        out.append("AEAD seal, MB/s (1 MB = 10^6 bytes):")
        out.append(f"{'type':<20}" + "".join(f"{f'{s} bytes':>13}" for s in AEAD_SIZES))
        for r in aead:
            cells = "".join(f"{r['mb_per_s'][str(s)]:>13.2f}" for s in AEAD_SIZES)
            out.append(f"{r['name']:<20}{cells}")
    sigs = [r for r in rows if r["kind"] == "sig"]
    if sigs:
        out.append(f"{'signature':<20}{'sign':>12}{'verify':>12}{'sign/s':>12}{'verify/s':>12}")
        for r in sigs:
            if "unavailable" in r:
                out.append(f"{r['name']:<20}  (not available: {r['unavailable']})")
                continue
            s, v = r["sign_per_s"], r["verify_per_s"]
            out.append(f"{r['name']:<20}{1 / s:>11.6f}s{1 / v:>11.6f}s{s:>12.1f}{v:>12.1f}")
    kex = [r for r in rows if r["kind"] == "kex"]
    if kex:
        out.append(f"{'key exchange':<20}{'op':>12}{'op/s':>12}")
        for r in kex:
            o = r["ops_per_s"]
            out.append(f"{r['name']:<20}{1 / o:>11.6f}s{o:>12.1f}")
    proto = [r for r in rows if r["kind"] in ("tls", "quic")]
    if proto:
        out.append(f"{'protocol':<20}{'op':>12}{'op/s':>12}  unit")
        for r in proto:
            if r["kind"] == "tls":
                o, unit = r["handshakes_per_s"], "handshakes (client + server)"
            else:
                o, unit = r["packets_per_s"], "1-RTT packets, sealed and opened"
            out.append(f"{r['name']:<20}{1 / o:>11.6f}s{o:>12.1f}  {unit}")
    return "\n".join(out) + "\n"


def speed(argv: list[str]) -> int:
    """``quicnet speed``: time quicnet's AEADs, signatures, key exchanges, TLS and QUIC."""
    p = Parser("speed", "Time quicnet's AEADs, signatures, key exchanges, TLS and QUIC.")
    p.add_argument("-seconds", type=float, default=1.0, metavar="N", help="per test (default 1)")
    p.add_argument("-elapsed", action="store_true", help="wall-clock time, not CPU time")
    p.add_argument("-json", action="store_true", help="JSON instead of the table")
    p.add_argument(
        "algorithms", nargs="*", help="rows to run: " + " ".join(b.name for b in BENCHES)
    )
    a = p.parse_args(argv)
    if not 0 < a.seconds <= 3600:
        raise CliError("-seconds must be more than 0 and at most 3600")
    benches = _select(a.algorithms)
    runner = _Runner(a.seconds, a.elapsed)
    cached: list[DevIdentity] = []

    def identity() -> DevIdentity:
        if not cached:
            cached.append(shared_identity())
        return cached[0]

    rows = [_measure(b, runner, identity) for b in benches]
    clock = "elapsed" if a.elapsed else "CPU"
    if a.json:
        doc = {"quicnet": __version__, "seconds": a.seconds, "clock": clock, "results": rows}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        sys.stdout.write(_table(rows, clock))
    return 0
