"""``quicnet speed``: the rows asked for, OpenSSL's progress lines, JSON, one-line errors.

No timing assertions: only that each row ran (a positive rate) and what the
output says about it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error

import quicnet

WORKTREE = str(Path(quicnet.__file__).resolve().parents[1])


def _rows(table: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in table.splitlines() if line.strip()}


def test_speed_table_has_only_the_rows_asked_for(qn_ok):
    r = qn_ok("speed", "-seconds", "0.05", "x25519", "aes-128-gcm")
    rows = _rows(r.text)
    assert set(rows) >= {"aes-128-gcm", "x25519"}
    assert "ed25519" not in rows and "tls13" not in rows and "chacha20-poly1305" not in rows
    assert len(rows["aes-128-gcm"]) == 4  # 16, 256, 1350 and 8192-byte blocks
    assert all(float(v) > 0 for v in rows["aes-128-gcm"])
    assert float(rows["x25519"][1]) > 0  # op/s
    assert "16 bytes" in r.text and "8192 bytes" in r.text
    assert r.text.index("aes-128-gcm") < r.text.index("x25519")  # the table's order


def test_speed_progress_lines_on_stderr(qn_ok):
    r = qn_ok("speed", "-seconds", "0.05", "aes-128-gcm", "x25519")
    for size in (16, 256, 1350, 8192):
        assert f"Doing aes-128-gcm ops for 0.05s on {size} size blocks: " in r.err
    assert "Doing x25519 exchange ops for 0.05s: " in r.err
    assert all(" ops in " in line for line in r.err_lines)
    assert "Doing" not in r.text


def test_speed_json_signatures_and_protocols(qn_ok):
    r = qn_ok("speed", "-seconds", "0.05", "-json", "-elapsed", "ed25519", "quic", "tls13")
    doc = json.loads(r.out)
    assert doc["clock"] == "elapsed" and doc["seconds"] == 0.05
    by_name = {row["name"]: row for row in doc["results"]}
    assert list(by_name) == ["ed25519", "tls13", "quic"]
    assert by_name["ed25519"]["sign_per_s"] > 0 and by_name["ed25519"]["verify_per_s"] > 0
    assert by_name["tls13"]["handshakes_per_s"] > 0
    quic = by_name["quic"]
    # Each echo is one 1-RTT packet each way, both sealed and opened by the connections.
    assert quic["packets_per_s"] >= 2 * quic["echoes_per_s"] > 0


def test_speed_aliases_and_post_quantum_rows(qn_ok):
    doc = json.loads(qn_ok("speed", "-seconds", "0.02", "-json", "MLDSA65", "x25519mlkem768").out)
    by_name = {row["name"]: row for row in doc["results"]}
    assert set(by_name) == {"ml-dsa-65", "x25519mlkem768"}
    assert by_name["x25519mlkem768"]["ops_per_s"] > 0
    mldsa = by_name["ml-dsa-65"]
    assert "unavailable" in mldsa or mldsa["verify_per_s"] > 0


def test_speed_unknown_algorithm_is_one_line_error(qn):
    r = qn("speed", "-seconds", "0.05", "x25519", "rot13")
    assert_one_line_error(r, code=1, mentions="unknown algorithm 'rot13'")
    assert r.out == b""


@pytest.mark.parametrize("value", ["0", "-1", "1e9"])
def test_speed_bad_seconds(qn, value):
    assert_one_line_error(qn("speed", "-seconds", value, "x25519"), code=1, mentions="-seconds")


def test_speed_as_a_child_process():
    env = {**os.environ, "PYTHONPATH": WORKTREE}
    proc = subprocess.run(
        [sys.executable, "-m", "quicnet", "speed", "-seconds", "0.05", "x25519", "aes-128-gcm"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout.decode())
    assert "aes-128-gcm" in rows and "x25519" in rows
    assert b"Doing x25519 exchange ops" in proc.stderr
