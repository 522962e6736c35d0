"""Shared by the benchmarks: machine description, statistics, result files, child processes."""

from __future__ import annotations

import collections
import datetime
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import ssl

    import cryptography
    from cryptography.hazmat.backends.openssl import backend

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cryptography": cryptography.__version__,
        "cryptography_openssl": backend.openssl_version_text(),
        "python_ssl_openssl": ssl.OPENSSL_VERSION,
    }


def machine_busy_seconds() -> float | None:
    """CPU seconds every core of the machine has been busy since boot (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted ``ordered``, nearest rank."""
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p99 and p99.9 of ``samples`` (seconds), reported in microseconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_us": statistics.median(ordered) * 1e6,
        "p99_us": percentile(ordered, 0.99) * 1e6,
        "p999_us": percentile(ordered, 0.999) * 1e6,
        "mean_us": statistics.fmean(ordered) * 1e6,
    }


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, or None (said once) when
    matplotlib is not installed: the benchmarks then write their JSON without a plot."""
    try:
        # (the bench extra: CI type-checks without it)
        import matplotlib  # type: ignore[import-not-found,unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        print("matplotlib not installed (pip install quicnet[bench]): no plot")
        return None
    return plt


def machine_share_line(results: dict[str, Any]) -> str | None:
    """How busy the machine was during a run (``results["machine_share"]``), as printed."""
    share = results.get("machine_share")
    if not share:
        return None
    return (
        f"cores busy on average: {share['this_run_cores']:.2f} this run,"
        f" {share['other_processes_cores']:.2f} other processes"
    )


def write(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class PeerError(RuntimeError):
    pass


class Peer:
    """A child process: its stdout lines on a queue, the tail of its stderr kept, killed on close."""

    def __init__(self, args: list[str], name: str, *, echo: bool = False) -> None:
        self.name = name
        self.echo = echo  # print its progress lines (those indented by two spaces) as they come
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            cwd=RESULTS.parent,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.echo and line.startswith("  "):
                print(line, end="", flush=True)
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next stdout line that starts with ``prefix`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PeerError(f"{self.name}: no '{prefix}' line within {timeout:.0f} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                time.sleep(0.1)  # let the stderr reader catch up
                tail = " | ".join(list(self.stderr)[-5:])
                raise PeerError(f"{self.name} exited (code {self.proc.poll()}): {tail}")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def poll_line(self, prefix: str) -> str | None:
        """Like :meth:`expect`, without waiting: None if no such line has arrived yet."""
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                raise PeerError(f"{self.name} exited (code {self.proc.poll()})")
            if line.startswith(prefix):
                return line[len(prefix) :].strip()

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=3)

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Every stack a server process can run (benchmarks/_peers.py server --stack S).
SERVER_STACKS = (
    "raw-blocking",
    "raw-select",
    "raw-asyncio",
    "raw-uvloop",
    "quicnet-tick",
    "quicnet-asyncio",
    "quicnet-uvloop",
    "aioquic-asyncio",
    "aioquic-uvloop",
    "qh3-asyncio",
    "qh3-uvloop",
)
