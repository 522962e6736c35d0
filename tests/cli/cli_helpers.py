"""Helpers shared by the ``quicnet`` CLI tests (imported by conftest and the test modules)."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


@dataclass
class ServerProcess:
    """A ``quicnet s_server``/``q_server`` child and the address its ACCEPT line named."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int

    def stop(self) -> str:
        """Terminate the server; returns what it wrote to stderr."""
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        return err.decode(errors="replace")


@contextlib.contextmanager
def cli_server(
    *argv: str, cwd: Path | None = None, deadline: float = 30.0
) -> Iterator[ServerProcess]:
    """Run ``python -m quicnet VERB ...`` until it prints ``ACCEPT host:port``; kill it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "quicnet", *argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = b""
        end = time.monotonic() + deadline
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            ready, _, _ = select.select([proc.stdout], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"{argv[0]} printed no ACCEPT line: {line!r}")
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                err = proc.stderr.read() if proc.stderr else b""
                raise AssertionError(f"{argv[0]} exited before ACCEPT: {err!r}")
            line += chunk
        words = line.decode().split()
        assert words[0] == "ACCEPT", line
        host, _, port = words[1].rpartition(":")
        yield ServerProcess(proc, host.strip("[]"), int(port))
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate(timeout=10)


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
