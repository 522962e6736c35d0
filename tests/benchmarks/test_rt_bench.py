"""The real-time benchmark's smoke run: every row measured, the files written.

Runs ``benchmarks/rt_bench.py --quick`` (a few seconds: a few hundred round
trips per row, server and client in processes of their own on loopback) into
a temporary directory. No timing is asserted: only that each row has its
samples and figures, and the targets were computed from them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROWS = {
    "raw-udp",
    "quic-datagram",
    "quic-stream",
    "channel-0",
    "channel-1",
    "channel-2",
    "channel-3",
}


def test_quick_run_measures_every_row_and_writes_the_results(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "rt_bench.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "realtime-quick.json").read_text())
    assert set(results["rows"]) == ROWS
    rounds = results["parameters"]["rounds"]
    for row, figures in results["rows"].items():
        assert "error" not in figures, (row, figures)
        assert rounds - figures["lost"] <= figures["n"] <= rounds, row
        assert 0 < figures["median_us"] <= figures["p99_us"], row
    memory = results["in_memory"]
    assert ROWS - {"raw-udp"} <= set(memory)
    for target in results["targets"].values():
        assert target["value"] is not None and target["met"] in (True, False)
    assert results["machine"]["python"] and results["notes"] == ""
    assert "| channel 1, UNRELIABLE |" in done.stdout  # the Markdown table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "realtime-quick.png").stat().st_size > 0
