"""The congestion-control benchmark's smoke run: every row measured, the files written.

Runs ``benchmarks/cc_bench.py --quick`` (simulated time, a few seconds of wall
time) into a temporary directory. No figure is asserted beyond its being there
and in range: each controller at each loss rate has a goodput and a two-flow
Jain's index, and the reordering comparison has both transfer times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_measures_every_controller_and_loss_rate(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "cc_bench.py"),
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "congestion-quick.json").read_text())
    rows = {(row["controller"], row["loss"]): row for row in results["rows"]}
    assert set(rows) == {
        (cc, loss) for cc in ("newreno", "cubic", "bbr") for loss in (0.0, 0.01, 0.05, 0.10)
    }
    for key, row in rows.items():
        assert row["goodput_mbit_s"] > 0, key
        assert len(row["pair_goodput_mbit_s"]) == 2 and min(row["pair_goodput_mbit_s"]) > 0, key
        assert 0.5 <= row["jain_index"] <= 1.0, key
        if key[1] > 0:  # the loss really happened
            assert row["single"]["link_dropped"] > 0, key
    assert set(results["reordering"]) == {"newreno", "cubic", "bbr"}
    for cc, figures in results["reordering"].items():
        assert figures["reordering_3pct"]["spurious_losses"] > 0, cc
        assert figures["no_reordering"]["seconds"] > 0 and figures["goodput_ratio"] > 0, cc
    assert "| cubic | 5% |" in done.stdout  # the Markdown table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "congestion-quick.png").stat().st_size > 0
