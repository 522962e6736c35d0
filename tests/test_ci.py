"""CI honesty: interop tests never vanish silently, and CI always runs derandomized.

* Without the ``openssl`` binary the interop tests skip locally, with a reason
  that says how to lift it, and *fail* when ``CI`` is set.
* ``.ci/run`` stops with a clear message when openssl is still missing after
  its install attempt, before running anything.
* ``.ci/run`` exports ``CI=true`` (keeping a caller's value), the variable
  the hypothesis ``ci`` profile in tests/conftest.py keys on.

The ``.ci/run`` tests run the real script from a copy of it, with stand-ins
for the programs it calls (so the checks finish in a second instead of
running the whole suite).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: One test per way the suite reaches for openssl: a marker on a test (toolkit, tls),
#: the ``openssl`` fixture, a module fixture and a direct check inside a test (cli).
OPENSSL_TESTS = [
    "tests/toolkit/test_devca.py::test_openssl_verifies_issued_certificates",
    "tests/tls/test_interop_openssl.py::test_quicnet_client_hello_retry_request_with_cookie",
    "tests/cli/test_cli_interop.py::test_genpkey_rsa_key_is_valid_for_openssl",
    "tests/cli/test_cli_interop.py::test_openssl_rsa_key_is_read_by_quicnet[pkcs8]",
    "tests/cli/test_cli_verify.py::test_same_verdict_as_openssl[chain]",
]

pytestmark = pytest.mark.skipif(os.name != "posix", reason="runs bash and POSIX tools")


def _pytest_without_openssl(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """Run OPENSSL_TESTS in a child pytest whose PATH holds no openssl."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env["PATH"] = str(empty)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rsfE", *OPENSSL_TESTS],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_openssl_skips_locally_with_a_reason(tmp_path: Path) -> None:
    p = _pytest_without_openssl(tmp_path, ci=None)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert f"{len(OPENSSL_TESTS)} skipped" in out, out
    assert "install the openssl binary" in out, out  # the reason, and how to lift it


def test_missing_openssl_fails_in_ci(tmp_path: Path) -> None:
    p = _pytest_without_openssl(tmp_path, ci="true")
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "skipped" not in out and "passed" not in out, out
    failed = out.count("FAILED ") + out.count("ERROR ")
    assert failed >= len(OPENSSL_TESTS), out
    assert "CI is set" in out and "install the openssl binary" in out, out


def _ci_sandbox(tmp_path: Path, *, with_openssl: bool) -> tuple[Path, dict[str, str], Path]:
    """A copy of .ci/run in a fake checkout, and a PATH of stand-ins.

    ``python3`` (what runs ``dev.py test``) and the checkout's ``.venv/bin/ruff``
    and ``mypy`` record the CI variable they were started with and succeed.
    There is no apt-get, so the script cannot install anything.
    """
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy2(REPO / ".ci" / "run", checkout / ".ci" / "run")
    record = tmp_path / "ci-values.txt"
    stand_in = f'#!/bin/sh\nprintf "%s %s\\n" "$(basename "$0")" "${{CI-<unset>}}" >> {record}\n'
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    venv_bin = checkout / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    names = [bin_dir / "python3", venv_bin / "ruff", venv_bin / "mypy"]
    if with_openssl:
        names.append(bin_dir / "openssl")
    for path in names:
        path.write_text(stand_in)
        path.chmod(0o755)
    for tool in ("bash", "dirname", "id", "basename", "env"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(bin_dir)
    return checkout, env, record


def _run_ci(checkout: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(checkout / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60
    )


def test_ci_run_stops_when_openssl_is_missing(tmp_path: Path) -> None:
    checkout, env, record = _ci_sandbox(tmp_path, with_openssl=False)
    p = _run_ci(checkout, env)
    assert p.returncode != 0
    assert "openssl" in p.stderr and "install" in p.stderr, p.stderr
    assert not record.exists(), "the tests ran although openssl is missing"


def test_ci_run_exports_ci_true(tmp_path: Path) -> None:
    checkout, env, record = _ci_sandbox(tmp_path, with_openssl=True)
    p = _run_ci(checkout, env)
    assert p.returncode == 0, p.stderr
    assert record.read_text().splitlines() == [
        "python3 true",
        "ruff true",
        "ruff true",
        "mypy true",
    ]


def test_ci_run_keeps_a_callers_ci_value(tmp_path: Path) -> None:
    checkout, env, record = _ci_sandbox(tmp_path, with_openssl=True)
    p = _run_ci(checkout, {**env, "CI": "github"})
    assert p.returncode == 0, p.stderr
    assert record.read_text().splitlines() == [
        "python3 github",
        "ruff github",
        "ruff github",
        "mypy github",
    ]


def _hypothesis_profile(ci: str | None) -> tuple[str, bool]:
    """The profile tests/conftest.py loads, and whether it derandomizes, under ``ci``."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    code = (
        "import sys; sys.path.insert(0, 'tests'); import conftest\n"
        "from hypothesis import settings\n"
        "print(settings._current_profile, settings.default.derandomize)"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    name, derandomize = p.stdout.split()
    return name, derandomize == "True"


def test_the_hypothesis_ci_profile_follows_the_ci_variable() -> None:
    """What .ci/run exports (CI=true) selects the derandomized profile; no CI, the dev one."""
    assert _hypothesis_profile("true") == ("ci", True)
    assert _hypothesis_profile("github") == ("ci", True)
    assert _hypothesis_profile(None) == ("dev", False)
    # An explicit no is no CI, for hypothesis too (it derandomizes on any CI variable).
    assert _hypothesis_profile("false") == ("dev", False)
    assert _hypothesis_profile("0") == ("dev", False)
