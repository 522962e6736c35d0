"""benchmarks/quic_bench.py's RTT passes: how the passes of one stack become its figures.

Running the passes takes a minute of loopback per stack, so the smoke test of the
whole benchmark is the quick run (one pass); these tests cover what the full run
adds: every stack measured in each pass, round robin, and the median over the
passes of each percentile, with every pass's p50 kept and failures reported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))  # its own helpers (_common, _peers) come from there
    spec = importlib.util.spec_from_file_location(
        "quic_bench_under_test", BENCHMARKS / "quic_bench.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


def _pass(p50: float, lost: int = 0) -> dict[str, Any]:
    return {
        "n": 100,
        "median_us": p50,
        "p99_us": 2 * p50,
        "p999_us": 3 * p50,
        "mean_us": p50,
        "lost": lost,
    }


def test_passes_go_round_robin_and_each_stack_gets_the_median_of_its_passes() -> None:
    order: list[str] = []
    p50s = iter([100.0, 300.0, 200.0] * len(bench.RTT_STACKS))

    def child_run(kind: str, args: list[str], timeout: float) -> dict[str, Any]:
        assert kind == "rtt"
        order.append(args[0])
        return _pass(next(p50s), lost=1)

    out = bench.rtt_rounds(child_run, 3)
    stacks = list(bench.RTT_STACKS)
    assert order == stacks * 3  # one pass of every stack before the next pass
    assert set(out) == set(stacks)
    for figures in out.values():
        assert figures["n"] == 300
        assert figures["lost"] == 3
        assert figures["failed_passes"] == []
        assert len(figures["passes_median_us"]) == 3
        # The median of each percentile over the passes, not of one pass.
        assert figures["median_us"] == sorted(figures["passes_median_us"])[1]
        assert figures["p99_us"] == 2 * figures["median_us"]


def test_a_failed_pass_is_reported_and_left_out_and_all_failed_keeps_the_failure() -> None:
    combined = bench.combine_passes([_pass(100.0), {"error": "timed out"}, _pass(300.0)])
    assert combined["median_us"] == 200.0
    assert combined["n"] == 200
    assert combined["passes_median_us"] == [100.0, None, 300.0]
    assert combined["failed_passes"] == ["timed out"]
    assert bench.combine_passes([{"error": "a"}, {"error": "b"}]) == {"error": "b"}


def test_the_table_shows_each_pass_p50_when_there_are_several() -> None:
    results = {"rtt": {bench.RTT_STACKS[0]: bench.combine_passes([_pass(100.0), _pass(120.0)])}}
    row = next(line for line in bench.table(results).splitlines() if bench.RTT_STACKS[0] in line)
    assert "p50 of each pass: 100, 120" in row
