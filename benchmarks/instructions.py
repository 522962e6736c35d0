"""Machine instructions per operation, counted by valgrind's callgrind: quicnet beside qh3 and aioquic.

    python benchmarks/instructions.py [--runs 2] [--out DIR] [--stacks quicnet] [--table]

Wall time on a shared VM drifts 5-10% between runs; an instruction count does
not. Each stack runs in memory (both ends in one process, no sockets, a
simulated clock) in a child process under ``valgrind --tool=callgrind``:

- ``handshake``: one full handshake, client and server (P-256 certificate,
  X25519), from creating the client until no datagram moves: quicnet through a
  ``QuicEndpoint`` (``_inmemory.MemoryNet.handshake``), qh3 and aioquic as a
  client and a server connection (``_inmemory.OtherPair.handshake``);
- ``echo``: one 64-byte DATAGRAM echo round trip, both ends: quicnet's as
  ``profile_realtime.quic_pair`` (the in-memory round trip of rt_bench.py), the
  others' the same steps with their API;
- ``capacity``: quicnet only, the server's share of one client-tick of
  ``_inmemory.capacity_in_memory`` (100-byte input in, 300-byte snapshot out);
- ``python``: the interpreter for scale, an empty ``for`` iteration and the
  call of an empty function.

How a region is counted: the child runs every measured piece of work as
``operator.call(work)``, and callgrind collects only inside that C function
(``--collect-atstart=no --toggle-collect=_operator_call``) and writes one dump
each time it returns (``--dump-after=_operator_call``). So start-up, imports,
set-up, warm-up and the harness between regions are not counted at all, and
each region's count is exact. The fixed cost of entering a region is measured
by empty regions and subtracted. The run is repeated (``--runs``, in fresh
processes) and the spread between runs reported. The number of dumps must
equal the number of regions the child announced: a stripped interpreter (no
``_operator_call`` symbol) or work that itself calls ``operator.call`` would
break that, and the run stops with an error instead of reporting a wrong figure.

Writes benchmarks/results/instructions.json (or DIR/instructions.json).
Not part of CI: it needs valgrind and takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The C function every measured region runs inside (operator.call, Python 3.11+).
TOGGLE = "_operator_call"
STACKS = ["python", "quicnet", "qh3", "aioquic"]
REFERENCE = "qh3"
#: Operations per region (the child) and how many regions: chosen so that the whole run,
#: twice, takes about three minutes under callgrind on a 2-core VM (Python runs ~50x slower).
PARAMETERS: dict[str, int] = {
    "empty_regions": 5,
    "loop_iterations": 100_000,
    "handshake_warmup": 2,
    "handshakes": 10,
    "echo_warmup": 200,
    "echo_round_trips": 400,
    "capacity_clients": 50,
    "capacity_warmup_ticks": 10,
    "capacity_ticks": 10,
}
MEASURES = {
    "loop": "empty `for` iteration",
    "call": "`for` iteration calling an empty function",
    "handshake": "handshake, client + server",
    "echo": "64-byte DATAGRAM echo round trip, both ends",
    "capacity": "server share of one client-tick (capacity, in memory)",
}
STEP = 0.0002  # simulated seconds per echo round trip, as profile_realtime.py


# The pure parts: callgrind's dumps and the arithmetic (tests/benchmarks/test_instructions.py) --


class Dump(NamedTuple):
    """One callgrind output file: which dump it is, why it was written, its instructions
    (the ``summary:`` line's Ir), and their split by where the code lives (``where``)."""

    part: int
    trigger: str
    instructions: int
    by_object: dict[str, int]


def where(path: str) -> str:
    """The kind of code a shared object is: the interpreter, the system's OpenSSL (Python's
    ``hashlib`` and ``ssl``), a package's compiled code (pyca/cryptography's Rust, with
    its own OpenSSL linked in; qh3's Rust; aioquic's C), the standard library's C
    modules, the C library, or other (unnamed stubs, the dynamic loader)."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith(("libpython", "python")):
        return "interpreter"
    if name.startswith(("libcrypto", "libssl")):
        return "openssl"
    for package in ("cryptography", "qh3", "aioquic"):
        if f"/{package}/" in path:
            return package
    if "/lib-dynload/" in path:
        return "stdlib C modules"
    if name.startswith(("libc.", "libm.")):
        return "libc"
    return "other"


def parse_dump(text: str) -> Dump:
    """Parse one callgrind output file (written with ``--dump-line=no``): its ``part:``,
    ``desc: Trigger:``, the Ir column of ``summary:``, and each object's own (exclusive)
    instructions: the cost lines under its ``ob=``, less the inclusive line after each
    ``calls=``, which belongs to the callee."""
    part, trigger, events, total = 0, "", ["Ir"], None
    names: dict[str, str] = {}
    by_object: dict[str, int] = {}
    current, after_call = "", False
    for line in text.splitlines():
        head = line[:1]
        if head.isdigit() or head in "+-*":
            if after_call:
                after_call = False
                continue
            fields = line.split()
            index = events.index("Ir") + 1
            if index < len(fields):
                by_object[current] = by_object.get(current, 0) + int(fields[index])
            continue
        key, _, value = line.partition("=")
        if key in ("ob", "cob"):  # the code's object, or a callee's
            ref, _, name = value.partition(" ")  # "(3) /path" names id 3; "(3)" reuses it
            if name:
                names[ref] = name
            if key == "ob":
                current = names.get(ref, ref)
        elif key == "calls":
            after_call = True
        else:
            key, _, value = line.partition(":")
            value = value.strip()
            if key == "part":
                part = int(value)
            elif key == "desc" and value.startswith("Trigger:"):
                trigger = value[len("Trigger:") :].strip()
            elif key == "events":
                events = value.split()
            elif key in ("summary", "totals") and total is None:
                total = value.split()
    if total is None or "Ir" not in events:
        raise ValueError("not a callgrind dump with an Ir summary")
    index = events.index("Ir")
    return Dump(part, trigger, int(total[index]) if index < len(total) else 0, by_object)


def regions_of(dumps: Iterable[str]) -> list[Dump]:
    """Each region's dump, in order: those written on leaving the toggle function
    (``--dump-after``), by part number; the dump at program end is left out."""
    parsed = sorted((parse_dump(text) for text in dumps), key=lambda d: d.part)
    return [d for d in parsed if d.trigger.startswith("--dump-after")]


def per_operation(
    labels: list[str], regions: list[Dump], ops: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """Instructions per operation of each measure: its regions' instructions, less the
    fixed cost of a region (the mean of the ``empty`` ones), over its operations; and
    the share of its regions' instructions in each kind of code (:func:`where`)."""
    if len(labels) != len(regions):
        raise ValueError(
            f"{len(labels)} regions announced but {len(regions)} dumps written: the toggle"
            f" function {TOGGLE} was not entered exactly once per region"
        )
    empty = [d.instructions for label, d in zip(labels, regions, strict=True) if label == "empty"]
    if not empty:
        raise ValueError("no empty region to measure the cost of a region")
    overhead = statistics.fmean(empty)
    out: dict[str, dict[str, Any]] = {}
    for measure, n in ops.items():
        mine = [d for label, d in zip(labels, regions, strict=True) if label == measure]
        if not mine or n <= 0:
            raise ValueError(f"no region or no operation for {measure}")
        counts = [d.instructions - overhead for d in mine]
        kinds: dict[str, int] = {}
        for d in mine:
            for obj, c in d.by_object.items():
                kinds[where(obj)] = kinds.get(where(obj), 0) + c
        whole = sum(kinds.values()) or 1
        out[measure] = {
            "per_op": sum(counts) / n,
            "regions": len(mine),
            "ops": n,
            "region_min": min(counts),
            "region_max": max(counts),
            "shares": {k: c / whole for k, c in sorted(kinds.items(), key=lambda kc: -kc[1])},
        }
    out["empty"] = {"per_op": overhead, "regions": len(empty), "ops": len(empty)}
    return out


def spread(values: list[float]) -> float:
    """(max - min) / mean: how far repeated runs are apart, 0 when they agree."""
    mean = statistics.fmean(values)
    return (max(values) - min(values)) / mean if mean else 0.0


def combine(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per stack and measure over repeated runs: the mean per operation, every run's, the
    spread, and the ratio to qh3's figure for the same measure."""
    out: dict[str, dict[str, Any]] = {}
    for stack in dict.fromkeys(s for run in runs for s in run):
        results = [run[stack] for run in runs if stack in run]
        if any("error" in r for r in results):
            out[stack] = {"error": next(r["error"] for r in results if "error" in r)}
            continue
        out[stack] = {}
        for measure in results[0]:
            values = [r[measure]["per_op"] for r in results]
            shares: dict[str, float] = {}
            for r in results:
                for kind, share in r[measure].get("shares", {}).items():
                    shares[kind] = shares.get(kind, 0.0) + share / len(results)
            out[stack][measure] = {
                "instructions_per_op": statistics.fmean(values),
                "runs": values,
                "spread": spread(values),
                "ops_per_run": results[0][measure]["ops"],
                "shares": shares,
            }
    reference = out.get(REFERENCE, {})
    for stack, measures in out.items():
        for measure, entry in measures.items():
            if not isinstance(entry, dict):
                continue
            ref = reference.get(measure) if isinstance(reference, dict) else None
            entry["ratio_to_qh3"] = (
                entry["instructions_per_op"] / ref["instructions_per_op"]
                if isinstance(ref, dict) and stack != "python"
                else None
            )
    return out


def table(results: dict[str, Any]) -> str:
    """The Markdown table of a run's figures."""
    lines = [
        "| stack | measure | instructions per operation | ratio to qh3 | spread between runs"
        " | where (share of the instructions) |",
        "|---|---|---|---|---|---|",
    ]
    for stack, measures in results["results"].items():
        if "error" in measures:
            lines.append(f"| {stack} | - | {measures['error']} | - | - | - |")
            continue
        for measure, e in measures.items():
            if measure == "empty":
                continue
            ratio = e.get("ratio_to_qh3")
            shares = ", ".join(
                f"{kind} {share:.0%}"
                for kind, share in e.get("shares", {}).items()
                if share >= 0.01
            )
            lines.append(
                f"| {stack} | {MEASURES.get(measure, measure)} | {e['instructions_per_op']:,.0f}"
                f" | {'-' if ratio is None else f'{ratio:.2f}'} | {e['spread'] * 100:.2f}%"
                f" | {shares} |"
            )
    return "\n".join(lines)


# The child: the work, under callgrind ------------------------------------------------------------


class Regions:
    """Runs work as counted regions (inside ``operator.call``) and remembers their labels."""

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.ops: dict[str, int] = {}

    def run(self, label: str, work: Callable[..., Any], *args: Any) -> Any:
        self.labels.append(label)
        return operator.call(work, *args)

    def count(self, label: str, ops: int) -> None:
        self.ops[label] = self.ops.get(label, 0) + ops


def _nothing() -> None:
    pass


def python_measures(regions: Regions) -> None:
    n = PARAMETERS["loop_iterations"]
    items = [None] * n

    def loop() -> None:
        for _ in items:
            pass

    def calls() -> None:
        for _ in items:
            _nothing()

    loop()
    calls()
    regions.run("loop", loop)
    regions.count("loop", n)
    regions.run("call", calls)
    regions.count("call", n)


def quicnet_measures(regions: Regions) -> None:
    from _inmemory import Identity, MemoryNet, capacity_in_memory
    from profile_realtime import quic_pair

    net = MemoryNet(Identity("P-256"), max_connections=100)
    for _ in range(PARAMETERS["handshake_warmup"]):
        net.finish_handshake(*net.handshake(), close=True)
    for _ in range(PARAMETERS["handshakes"]):
        address, client = regions.run("handshake", net.handshake)
        net.finish_handshake(address, client, close=True)
        regions.count("handshake", 1)

    _, round_trip = quic_pair()
    _echo(regions, round_trip)

    def counted(work: Callable[..., Any], *args: Any) -> Any:
        return regions.run("capacity", work, *args)

    clients, ticks = PARAMETERS["capacity_clients"], PARAMETERS["capacity_ticks"]
    done = capacity_in_memory(
        clients, ticks, PARAMETERS["capacity_warmup_ticks"], 30.0, measured_call=counted
    )
    if done["snapshots_received"] != clients * ticks:
        raise RuntimeError(f"capacity: {done['snapshots_received']} snapshots of {clients * ticks}")
    regions.count("capacity", clients * ticks)


def _echo(regions: Regions, round_trip: Callable[[], None]) -> None:
    for _ in range(PARAMETERS["echo_warmup"]):
        round_trip()
    n = PARAMETERS["echo_round_trips"]

    def many() -> None:
        for _ in range(n):
            round_trip()

    regions.run("echo", many)
    regions.count("echo", n)


def other_measures(name: str, regions: Regions) -> None:
    """qh3's or aioquic's handshake and echo, driven as quicnet's are."""
    from _inmemory import OtherPair

    pair = OtherPair(name, "P-256", datagrams=True)
    try:
        for _ in range(PARAMETERS["handshake_warmup"]):
            pair.check(pair.handshake()[0])
        for _ in range(PARAMETERS["handshakes"]):
            client, _ = regions.run("handshake", pair.handshake)
            pair.check(client)
            regions.count("handshake", 1)
        client, server = pair.handshake()
        pair.check(client)
        _echo(regions, _other_round_trip(pair, client, server))
    finally:
        pair.close()


def _other_round_trip(pair: Any, client: Any, server: Any) -> Callable[[], None]:
    """The steps of profile_realtime.quic_pair's round trip with aioquic's/qh3's API."""
    datagram = pair.api["Datagram"]
    to_server, to_client = pair.SERVER_ADDRESS, pair.CLIENT_ADDRESS
    payload = bytes(range(64))
    # The handshake ran at 1.0: a second later aioquic's pacer lets the first echo go.
    clock = [2.0]
    while server.next_event() is not None:
        pass

    def round_trip() -> None:
        now = clock[0]
        client.send_datagram_frame(payload)
        for data, _ in client.datagrams_to_send(now=now):
            server.receive_datagram(data, to_server, now=now)
        while (event := server.next_event()) is not None:
            if type(event) is datagram:
                server.send_datagram_frame(event.data)
        for data, _ in server.datagrams_to_send(now=now):
            client.receive_datagram(data, to_client, now=now)
        got = False
        while (event := client.next_event()) is not None:
            got = got or type(event) is datagram
        if not got:
            raise RuntimeError(f"{pair.name}: no echo")
        clock[0] = now = now + STEP
        for side in (server, client):
            deadline = side.get_timer()
            if deadline is not None and deadline <= now:
                side.handle_timer(now)

    return round_trip


def child(stack: str, out: Path) -> None:
    regions = Regions()
    for _ in range(PARAMETERS["empty_regions"]):
        regions.run("empty", _nothing)
    if stack == "python":
        python_measures(regions)
    elif stack == "quicnet":
        quicnet_measures(regions)
    else:
        other_measures(stack, regions)
    out.write_text(json.dumps({"labels": regions.labels, "ops": regions.ops}))


# The run ---------------------------------------------------------------------------------------


def valgrind_version(valgrind: str) -> str:
    done = subprocess.run([valgrind, "--version"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def count(valgrind: str, stack: str, workdir: Path) -> dict[str, Any]:
    """One child under callgrind: per measure, instructions per operation (or an error)."""
    workdir.mkdir(parents=True)
    labels_file = workdir / "labels.json"
    command = [
        valgrind,
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--toggle-collect={TOGGLE}",
        f"--dump-after={TOGGLE}",
        "--dump-line=no",
        f"--callgrind-out-file={workdir / 'callgrind.out'}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        stack,
        str(labels_file),
    ]
    # A fixed hash seed: sets and dicts of strings iterate in the same order every run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    if done.returncode != 0 or not labels_file.exists():
        tail = " | ".join(done.stderr.strip().splitlines()[-5:])
        return {"error": f"the child failed (exit {done.returncode}): {tail}"}
    announced = json.loads(labels_file.read_text())
    dumps = [p.read_text() for p in workdir.glob("callgrind.out*")]
    try:
        return per_operation(announced["labels"], regions_of(dumps), announced["ops"])
    except ValueError as exc:
        return {"error": str(exc)}


def available(stack: str) -> bool:
    import importlib.util

    return stack in ("python", "quicnet") or importlib.util.find_spec(stack) is not None


def run(valgrind: str, runs: int, only: list[str] | None = None) -> dict[str, Any]:
    from _common import machine
    from quic_bench import source, versions

    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "valgrind": valgrind_version(valgrind),
        "source": source(None),
        "command": "python benchmarks/instructions.py" + (f" --runs {runs}" if runs != 2 else ""),
        "parameters": PARAMETERS,
        "method": (
            f"callgrind Ir inside {TOGGLE} (operator.call) only, one dump per region;"
            " region entry cost (empty regions) subtracted; PYTHONHASHSEED=0"
        ),
    }
    stacks = [s for s in STACKS if available(s) and (only is None or s in only)]
    results["not_installed"] = [s for s in STACKS if s not in stacks]
    each: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            one: dict[str, Any] = {}
            for stack in stacks:  # runs alternate stacks, as the timed benchmarks do
                t = time.monotonic()
                one[stack] = count(valgrind, stack, Path(tmp, f"run{i}-{stack}"))
                print(f"  run {i + 1}/{runs} {stack}: {time.monotonic() - t:.0f} s", flush=True)
            each.append(one)
    results["seconds"] = time.monotonic() - started
    results["runs"] = each
    results["results"] = combine(each)
    return results


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], Path(argv[2]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=2, help="fresh processes per stack (default 2)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="directory of the JSON")
    p.add_argument("--valgrind", default="valgrind", help="the valgrind executable")
    p.add_argument("--table", action="store_true", help="the table of the last run, then exit")
    p.add_argument(
        "--stacks",
        help="comma-separated subset of " + ",".join(STACKS) + " (a quick check of one stack;"
        " the committed results count them all)",
    )
    a = p.parse_args(argv)
    path = a.out / "instructions.json"
    if a.table:
        print(table(json.loads(path.read_text())))
        return 0
    valgrind = shutil.which(a.valgrind)
    if valgrind is None:
        print(
            f"instructions.py: valgrind not found ({a.valgrind!r}): it counts the instructions"
            " (callgrind). Install it (e.g. 'apt-get install valgrind') and run again.",
            file=sys.stderr,
        )
        return 2
    only = a.stacks.split(",") if a.stacks else None
    if only and not set(only) <= set(STACKS):
        p.error(f"--stacks: choose from {','.join(STACKS)}")
    results = run(valgrind, a.runs, only)
    a.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"wrote {path} ({results['seconds']:.0f} s)")
    failed = [s for s, r in results["results"].items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
