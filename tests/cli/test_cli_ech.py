"""``quicnet ech`` and the ECH flags: s_server/q_server ``-ech_key``,
s_client/q_client ``-ech_config`` and ``-ech_grease`` (draft-ietf-tls-esni),
with real child servers on 127.0.0.1 port 0."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, cli_server

import quicnet

WORKTREE = str(Path(quicnet.__file__).resolve().parents[1])
SECRET, PUBLIC = "secret.example", "public.example"


@pytest.fixture
def site(qn_ok, monkeypatch) -> dict[str, str]:
    """A dev CA, a certificate for both names, and an ECH key file with its base64 config."""
    monkeypatch.setenv("PYTHONPATH", WORKTREE)
    qn_ok("ca", "init", "ca", "-subj", "/CN=ECH CLI CA")
    r = qn_ok(
        "ca", "issue", "ca", "-subj", f"/CN={SECRET}",
        "-addext", f"subjectAltName=DNS:{SECRET},DNS:{PUBLIC}",
    )  # fmt: skip
    cert = re.search(r"^certificate: (\S+)$", r.text, re.M)
    key = re.search(r"^key: +(\S+)$", r.text, re.M)
    assert cert and key, r.text
    config = qn_ok("ech", "-genkey", "-public_name", PUBLIC, "-out", "ech.pem").text.strip()
    stale = qn_ok("ech", "-genkey", "-public_name", PUBLIC, "-out", "old.pem").text.strip()
    return {"cert": cert.group(1), "key": key.group(1), "config": config, "stale": stale}


def test_ech_genkey_writes_a_private_key_file_and_prints_the_config(site, qn_ok) -> None:
    assert (Path("ech.pem").stat().st_mode & 0o777) == 0o600
    data = Path("ech.pem").read_bytes()
    assert b"BEGIN PRIVATE KEY" in data and b"BEGIN ECHCONFIG" in data
    text = qn_ok("ech", "-in", "ech.pem", "-text").text
    assert f"public_name: {PUBLIC}" in text and "KEM: 0x0020" in text
    Path("cfg.b64").write_text(site["config"])
    assert site["config"] in qn_ok("ech", "-in", "cfg.b64").text


def test_ech_errors_are_one_line(qn) -> None:
    assert_one_line_error(qn("ech", "-genkey"), code=1, mentions="-public_name")
    Path("junk").write_bytes(b"\x00\x05abc")
    assert_one_line_error(qn("ech", "-in", "junk"), code=1, mentions="junk")
    r = qn("s_client", "-connect", "127.0.0.1:1", "-ech_config", "AAAA", "-insecure")
    assert_one_line_error(r, code=1, mentions="-ech_config")


def _s_client(qn, port: int, *flags: str):
    return qn(
        "s_client", "-connect", f"127.0.0.1:{port}", "-servername", SECRET,
        "-CAfile", "ca/ca.pem", *flags, stdin=b"",
    )  # fmt: skip


def test_s_client_ech_accepted_rejected_and_retried(site, qn) -> None:
    with cli_server(
        "s_server", "-accept", "127.0.0.1:0", "-cert", site["cert"], "-key", site["key"],
        "-ech_key", "ech.pem",
    ) as srv:  # fmt: skip
        ok = _s_client(qn, srv.port, "-ech_config", site["config"])
        assert "ECH: accepted" in ok.err, ok.err
        Path("cfg.pem").write_bytes(
            Path("ech.pem").read_bytes().split(b"-----END PRIVATE KEY-----\n")[1]
        )
        from_file = _s_client(qn, srv.port, "-ech_config", "cfg.pem")
        assert "ECH: accepted" in from_file.err, from_file.err
        rejected = _s_client(qn, srv.port, "-ech_config", site["stale"])
        assert_one_line_error(rejected, code=1, mentions="rejected ECH")
        retry = rejected.err.split("-ech_config ")[1].strip()
        assert retry == site["config"]
        again = _s_client(qn, srv.port, "-ech_config", retry)
        assert "ECH: accepted" in again.err, again.err
        grease = _s_client(qn, srv.port, "-ech_grease")
        assert "CONNECTED" in grease.err and "ECH: accepted" not in grease.err
        err = srv.stop()
    assert "Traceback" not in err, err


def _q_client(port: int, *flags: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            sys.executable, "-m", "quicnet", "q_client", "-connect", f"127.0.0.1:{port}",
            "-servername", SECRET, "-CAfile", "ca/ca.pem", *flags,
        ],
        input=b"hello over ech",
        capture_output=True,
        timeout=60,
    )  # fmt: skip


def test_q_client_ech_accepted_and_rejected(site) -> None:
    with cli_server(
        "q_server", "-accept", "127.0.0.1:0", "-cert", site["cert"], "-key", site["key"],
        "-ech_key", "ech.pem",
    ) as srv:  # fmt: skip
        ok = _q_client(srv.port, "-ech_config", site["config"])
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == b"hello over ech"
        bad = _q_client(srv.port, "-ech_config", site["stale"])
        err = bad.stderr.decode()
        assert bad.returncode == 1 and f"-ech_config {site['config']}" in err, err
        srv.stop()
