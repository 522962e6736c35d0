"""benchmarks/instructions.py without valgrind: reading callgrind's dumps, the arithmetic.

The counting itself needs valgrind and minutes, so it is not run here; these
tests cover what turns callgrind's files into the published figures: which
dumps are regions, each object's own instructions (a call's inclusive cost is
the callee's, not the caller's), the region cost taken off, the spread between
runs and the ratio to qh3, and the clear failure when valgrind is missing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "instructions.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("instructions_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and NamedTuples look their module up
    spec.loader.exec_module(module)
    return module


ins = _load()
PYTHON = "/opt/py/lib/libpython3.11.so.1.0"
RUST = "/venv/site-packages/cryptography/hazmat/bindings/_rust.abi3.so"


def dump(part: int, trigger: str, body: str, summary: int) -> str:
    return (
        f"# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\npart: {part}\n\n"
        f"desc: I1 cache: \ndesc: Trigger: {trigger}\n\npositions: line\nevents: Ir\n"
        f"summary: {summary}\n\n{body}\ntotals: {summary}\n"
    )


# Python 100 of its own, a call into the Rust object (inclusive 900, not Python's),
# whose own code is 900 (800 + 100), 5 in an unnamed stub.
BODY = f"""ob=(1) {PYTHON}
fl=(1) ceval.c
fn=(1) _PyEval_EvalFrameDefault
0 60
cob=(2) {RUST}
cfi=(2) ???
cfn=(2) ecdsa_sign
calls=3 0
0 900
0 40

ob=(2)
fl=(2)
fn=(2)
0 800
+2 100
ob=(3) ???
fn=(3) 0x1234
* 5
"""


def test_a_dump_gives_its_part_trigger_total_and_each_objects_own_instructions() -> None:
    d = ins.parse_dump(dump(4, "--dump-after=_operator_call", BODY, 1005))
    assert (d.part, d.trigger, d.instructions) == (4, "--dump-after=_operator_call", 1005)
    # The 900 after ``calls=`` is the callee's inclusive cost: not the caller's own.
    assert d.by_object == {PYTHON: 100, RUST: 900, "???": 5}
    assert sum(d.by_object.values()) == d.instructions


def test_a_file_without_an_ir_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="Ir summary"):
        ins.parse_dump("# callgrind format\nevents: Dr\nsummary: 3\n")


@given(
    st.lists(
        st.tuples(st.sampled_from([PYTHON, RUST, "/lib/libc.so.6"]), st.integers(0, 10**9)),
        min_size=1,
        max_size=20,
    ),
    st.lists(st.integers(0, 10**9), max_size=5),
)
def test_own_instructions_add_up_whatever_the_calls_cost(
    costs: list[tuple[str, int]], calls: list[int]
) -> None:
    ids = {name: i for i, name in enumerate(dict.fromkeys(n for n, _ in costs), 1)}
    lines, seen = [], set()
    for i, (name, cost) in enumerate(costs):
        ref = f"({ids[name]})"
        lines.append(f"ob={ref}" if name in seen else f"ob={ref} {name}")
        seen.add(name)
        lines.append(f"fn=({i}) f{i}")
        lines.append(f"0 {cost}")
        if i < len(calls):  # an inclusive call cost, which must not count for the caller
            lines += [f"cob={ref}", f"cfn=({i}) f{i}", "calls=1 0", f"0 {calls[i]}"]
    total = sum(c for _, c in costs)
    d = ins.parse_dump(dump(1, "--dump-after=x", "\n".join(lines), total))
    expected: dict[str, int] = {}
    for name, cost in costs:
        expected[name] = expected.get(name, 0) + cost
    assert d.by_object == expected and d.instructions == total


def test_regions_are_the_dump_after_files_in_part_order() -> None:
    files = [
        dump(3, "Program termination", "", 0),
        dump(2, "--dump-after=_operator_call", "", 20),
        dump(1, "--dump-after=_operator_call", "", 10),
    ]
    assert [d.instructions for d in ins.regions_of(files)] == [10, 20]


def region(n: int, objects: dict[str, int] | None = None) -> object:
    return ins.Dump(0, "--dump-after=x", n, objects or {PYTHON: n})


def test_per_operation_takes_the_region_cost_off_and_divides_by_the_operations() -> None:
    labels = ["empty", "empty", "echo", "handshake", "handshake"]
    regions = [
        region(400),
        region(420),
        region(1_000_410, {PYTHON: 750_000, RUST: 250_410}),
        region(5_000_410),
        region(7_000_410),
    ]
    out = ins.per_operation(labels, regions, {"echo": 100, "handshake": 2})
    assert out["empty"]["per_op"] == 410
    assert out["echo"]["per_op"] == 10_000  # (1,000,410 - 410) / 100
    assert out["handshake"]["per_op"] == 6_000_000
    assert (out["handshake"]["region_min"], out["handshake"]["region_max"]) == (5e6, 7e6)
    assert out["echo"]["shares"] == pytest.approx(
        {"interpreter": 0.7497, "cryptography": 0.2503}, abs=1e-4
    )


def test_a_dump_missing_or_extra_is_an_error_not_a_figure() -> None:
    with pytest.raises(ValueError, match="3 regions announced but 2 dumps"):
        ins.per_operation(["empty", "echo", "echo"], [region(1), region(2)], {"echo": 1})
    with pytest.raises(ValueError, match="no empty region"):
        ins.per_operation(["echo"], [region(2)], {"echo": 1})


def test_runs_combine_into_mean_spread_and_ratio_to_qh3() -> None:
    runs = [
        {
            "qh3": {"echo": {"per_op": 100.0, "ops": 4}},
            "quicnet": {"echo": {"per_op": 300.0, "ops": 4}},
        },
        {
            "qh3": {"echo": {"per_op": 100.0, "ops": 4}},
            "quicnet": {"echo": {"per_op": 303.0, "ops": 4}},
        },
    ]
    out = ins.combine(runs)
    quicnet = out["quicnet"]["echo"]
    assert quicnet["instructions_per_op"] == 301.5 and quicnet["runs"] == [300.0, 303.0]
    assert quicnet["spread"] == pytest.approx(3 / 301.5)
    assert quicnet["ratio_to_qh3"] == pytest.approx(3.015)
    assert out["qh3"]["echo"]["spread"] == 0 and out["qh3"]["echo"]["ratio_to_qh3"] == 1
    table = ins.table({"results": out})
    assert "| quicnet | 64-byte DATAGRAM echo round trip, both ends | 302 | 3.02 | 1.00% |" in table


def test_a_failed_stack_is_reported_as_failed() -> None:
    out = ins.combine([{"aioquic": {"error": "the child failed"}}])
    assert out == {"aioquic": {"error": "the child failed"}}
    assert "| aioquic | - | the child failed |" in ins.table({"results": out})


def test_the_kind_of_code_follows_the_object_path() -> None:
    assert ins.where(PYTHON) == "interpreter"
    assert ins.where(RUST) == "cryptography"
    assert ins.where("/venv/site-packages/qh3/_hazmat.abi3.so") == "qh3"
    assert ins.where("/usr/lib/x86_64-linux-gnu/libcrypto.so.3") == "openssl"
    assert ins.where("/usr/lib/x86_64-linux-gnu/libc.so.6") == "libc"
    assert ins.where("/py/lib/python3.11/lib-dynload/_struct.so") == "stdlib C modules"
    assert ins.where("???") == "other"


def test_without_valgrind_it_says_so_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ins.main(["--valgrind", str(tmp_path / "no-valgrind"), "--out", str(tmp_path)])
    assert code == 2
    assert "valgrind not found" in capsys.readouterr().err
    assert not (tmp_path / "instructions.json").exists()
