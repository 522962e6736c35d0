"""Helpers shared by the ``quicnet`` CLI tests (imported by conftest and the test modules)."""

from __future__ import annotations

import base64
import io
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")
OPENSSL_MISSING = "openssl binary not on PATH; install openssl to run the interop tests"

#: The console script installed next to the interpreter (the ``quicnet`` entry point).
QUICNET_EXE = Path(sys.executable).with_name("quicnet")


@dataclass
class Result:
    """What one CLI run produced."""

    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class FakeStdin:
    """Enough of ``sys.stdin`` for the CLI, which only reads ``.buffer``."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def exit_code(code: object) -> int:
    """The process exit status ``return code`` / ``SystemExit(code)`` would give."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # SystemExit("message"): Python prints it and exits 1


def run_subprocess(
    *argv: str, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m quicnet ARGS...`` as a real child process."""
    return subprocess.run(
        [sys.executable, "-m", "quicnet", *map(str, argv)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=60,
    )


def assert_one_line_error(
    r: Result, *, code: int | None = None, mentions: str | None = None
) -> None:
    """A failure reported the quicnet way: non-zero (never 3), one stderr line, no traceback."""
    assert r.code != 0, f"expected a failure, got exit 0 (stdout {r.out[:200]!r})"
    assert r.code != 3, f"internal error (exit 3): {r.err}"
    if code is not None:
        assert r.code == code, r.err
    assert "Traceback" not in r.err
    assert r.err.endswith("\n") and len(r.err_lines) == 1, f"stderr is not one line: {r.err!r}"
    if mentions is not None:
        assert mentions.lower() in r.err.lower(), r.err


def pem_wrap(label: str, der: bytes) -> bytes:
    """``der`` as a PEM block with 64-column base64 lines."""
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


def pem_unwrap(pem: bytes) -> bytes:
    """The DER inside the first PEM block of ``pem``."""
    lines = pem.decode().strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN "))
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("-----END "))
    return base64.b64decode("".join(lines[start + 1 : end]))


def sh(command: str) -> list[str]:
    """A command line split like a shell would (``sh("-subj '/CN=My CA'")``)."""
    return shlex.split(command)
