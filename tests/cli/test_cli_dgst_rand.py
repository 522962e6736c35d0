"""``quicnet dgst`` prints what ``openssl dgst`` prints; ``quicnet rand`` gives what it says."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error

ALGORITHMS = ["sha256", "sha384", "sha512", "sha3-256", "blake2b512", "sha1", "md5"]
CONTENT = b"The quick brown fox\x00\xff\n" * 7


@pytest.fixture
def files(work: Path) -> list[str]:
    Path("data.bin").write_bytes(CONTENT)
    Path("empty").write_bytes(b"")
    # Bigger than the 1 MiB chunk the CLI hashes at a time.
    Path("big.bin").write_bytes(bytes(range(256)) * (6 * 1024 + 3))
    return ["data.bin", "empty", "big.bin"]


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_dgst_lines_equal_openssl(qn_ok, openssl, files, alg):
    ours = qn_ok("dgst", f"-{alg}", *files).out
    theirs = openssl("dgst", f"-{alg}", *files).stdout
    assert ours == theirs
    assert len(ours.splitlines()) == 3


@pytest.mark.parametrize("alg", ["sha256", "sha3-256"])
def test_dgst_r_equals_openssl(qn_ok, openssl, files, alg):
    assert (
        qn_ok("dgst", f"-{alg}", "-r", *files).out
        == openssl("dgst", f"-{alg}", "-r", *files).stdout
    )


def test_dgst_stdin_equals_openssl(qn_ok, openssl, files):
    ours = qn_ok("dgst", "-sha256", stdin=CONTENT).out
    assert ours == openssl("dgst", "-sha256", stdin=CONTENT).stdout
    assert ours.startswith(b"SHA2-256(stdin)= ")
    assert (
        qn_ok("dgst", "-sha256", "-r", stdin=CONTENT).out
        == openssl("dgst", "-sha256", "-r", stdin=CONTENT).stdout
    )


@pytest.mark.parametrize("alg", ["sha256", "sha512", "md5"])
def test_dgst_binary_equals_openssl(qn_ok, openssl, files, alg):
    ours = qn_ok("dgst", f"-{alg}", "-binary", "data.bin").out
    assert ours == openssl("dgst", f"-{alg}", "-binary", "data.bin").stdout
    assert len(ours) == {"sha256": 32, "sha512": 64, "md5": 16}[alg]
    assert qn_ok("dgst", f"-{alg}", "-binary", stdin=CONTENT).out == ours


@pytest.mark.parametrize("alg", ["sha256", "sha512", "sha3-256"])
def test_dgst_hmac_equals_openssl(qn_ok, openssl, files, alg):
    args = [f"-{alg}", "-hmac", "k3y"]
    ours = qn_ok("dgst", *args, "data.bin", "empty").out
    assert ours == openssl("dgst", *args, "data.bin", "empty").stdout
    assert ours.startswith(b"HMAC-")
    assert (
        qn_ok("dgst", *args, "-r", "data.bin").out
        == openssl("dgst", *args, "-r", "data.bin").stdout
    )
    assert (
        qn_ok("dgst", *args, "-binary", "data.bin").out
        == openssl("dgst", *args, "-binary", "data.bin").stdout
    )
    # The key matters.
    assert (
        qn_ok("dgst", f"-{alg}", "-hmac", "other", "data.bin").out != ours.splitlines()[0] + b"\n"
    )


def test_dgst_out_file(qn_ok, openssl, files):
    assert qn_ok("dgst", "-sha384", "-out", "sum.txt", "data.bin").out == b""
    assert Path("sum.txt").read_bytes() == openssl("dgst", "-sha384", "data.bin").stdout


def test_dgst_missing_file_is_a_one_line_error(qn, files):
    r = qn("dgst", "-sha256", "data.bin", "missing.bin")
    assert_one_line_error(r, code=1, mentions="missing.bin")
    assert r.out == b""  # nothing half-printed


# ---------------------------------------------------------------------------- rand


def test_rand_hex(qn_ok):
    first = qn_ok("rand", "-hex", "16").out
    second = qn_ok("rand", "-hex", "16").out
    assert re.fullmatch(rb"[0-9a-f]{32}\n", first), first
    assert re.fullmatch(rb"[0-9a-f]{32}\n", second), second
    assert first != second


@pytest.mark.parametrize("n", [0, 1, 37, 4096])
def test_rand_raw_length(qn_ok, n):
    assert len(qn_ok("rand", str(n)).out) == n


def test_rand_raw_output_differs_and_goes_to_out(qn_ok):
    qn_ok("rand", "-out", "r1.bin", "64")
    qn_ok("rand", "-out", "r2.bin", "64")
    r1, r2 = Path("r1.bin").read_bytes(), Path("r2.bin").read_bytes()
    assert len(r1) == len(r2) == 64
    assert r1 != r2


def test_rand_base64_decodes_to_n_bytes(qn_ok, openssl):
    out = qn_ok("rand", "-base64", "100").out
    assert len(base64.b64decode(out)) == 100
    assert all(len(line) <= 76 for line in out.splitlines())
    assert out.endswith(b"\n")
    assert len(openssl("base64", "-d", stdin=out).stdout) == 100  # OpenSSL decodes it too


def test_rand_base64_line_width_equals_openssl(qn_ok, openssl):
    ours = [len(line) for line in qn_ok("rand", "-base64", "100").out.splitlines()]
    theirs = [len(line) for line in openssl("rand", "-base64", "100").stdout.splitlines()]
    assert ours == theirs
