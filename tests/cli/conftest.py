"""Fixtures for the ``quicnet`` command-line tests.

``qn`` runs the CLI in-process (``quicnet.cli.main.main``) in a fresh
temporary working directory and returns a :class:`Result` (code, stdout,
stderr); ``openssl`` runs the real ``openssl`` binary in the same directory
(without the binary the test is skipped, or fails in CI: see tests/ci_support.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from ci_support import require_openssl
from cli_helpers import FakeStdin, Result, exit_code

from quicnet.cli.main import main

Runner = Callable[..., Result]
OpenSSL = Callable[..., subprocess.CompletedProcess[bytes]]


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory that is also the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def qn(
    work: Path, capsysbinary: pytest.CaptureFixture[bytes], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    """Run ``quicnet ARGS...`` in-process: ``qn("pkey", "-in", "k.pem", stdin=b"...")``."""

    def run(*argv: object, stdin: bytes = b"") -> Result:
        capsysbinary.readouterr()  # drop anything written before this run
        monkeypatch.setattr(sys, "stdin", FakeStdin(stdin))
        try:
            code = exit_code(main([str(a) for a in argv]))
        except SystemExit as exc:  # verify's failure and argparse errors
            code = exit_code(exc.code)
        captured = capsysbinary.readouterr()
        return Result(code, captured.out, captured.err.decode(errors="replace"))

    return run


@pytest.fixture
def qn_ok(qn: Runner) -> Runner:
    """Like ``qn``, and asserts the run succeeded (exit 0)."""

    def run(*argv: object, stdin: bytes = b"") -> Result:
        r = qn(*argv, stdin=stdin)
        assert r.code == 0, f"quicnet {' '.join(map(str, argv))} exited {r.code}: {r.err}"
        return r

    return run


@pytest.fixture
def openssl(work: Path) -> OpenSSL:
    """Run the real ``openssl`` in the test's directory (fails the test on a non-zero exit
    unless ``check=False``)."""
    binary = require_openssl()

    def run(
        *args: object, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        p = subprocess.run(
            [binary, *map(str, args)], input=stdin, capture_output=True, cwd=work, timeout=60
        )
        if check and p.returncode != 0:
            pytest.fail(
                f"openssl {' '.join(map(str, args))} exited {p.returncode}: "
                f"{p.stderr.decode(errors='replace')}"
            )
        return p

    return run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the ``openssl`` fixture get the ``openssl`` marker (``-m 'not openssl'``)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and "openssl" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.openssl)
