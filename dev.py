#!/usr/bin/env python3
"""The README's two commands: ``python3 dev.py demo`` and ``python3 dev.py test``;
``python3 dev.py bench`` for the QUIC benchmark (``benchmarks/quic_bench.py``) and
``python3 dev.py rtbench`` for the real-time one (``benchmarks/rt_bench.py``).

Each makes (or refreshes) a virtual environment in ``.venv`` inside the
checkout, installs what it needs from the package registries, and runs.
Only Python 3.11+ is required. Extra arguments are passed on
(``python3 dev.py test -k verify``, ``python3 dev.py demo -dir out``,
``python3 dev.py bench --quick``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")

# What each command needs installed (extras of pyproject.toml).
EXTRAS = {"demo": "", "test": "test,dev", "bench": "test,bench,fast", "rtbench": "test,bench,fast"}


def _stamp(extras: str) -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()


def ensure_env(extras: str) -> None:
    """Create .venv and install quicnet (editable) with ``extras``, unless already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"quicnet needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp_file = VENV / f".quicnet-installed-{extras.replace(',', '-') or 'base'}"
    if PYTHON.exists() and stamp_file.exists() and stamp_file.read_text() == _stamp(extras):
        return
    if not PYTHON.exists():
        print(f"dev.py: creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    target = f".[{extras}]" if extras else "."
    print(f"dev.py: installing quicnet{f'[{extras}]' if extras else ''} into .venv", flush=True)
    subprocess.run(
        [str(PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", target],
        cwd=ROOT,
        check=True,
    )
    stamp_file.write_text(_stamp(extras))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_env(EXTRAS[command])
    if command == "demo":
        args = [str(PYTHON), "-m", "quicnet", "demo", *rest]
    elif command == "bench":
        args = [str(PYTHON), str(ROOT / "benchmarks" / "quic_bench.py"), *rest]
    elif command == "rtbench":
        args = [str(PYTHON), str(ROOT / "benchmarks" / "rt_bench.py"), *rest]
    else:
        args = [str(PYTHON), "-m", "pytest", *rest]
    return subprocess.run(args, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
