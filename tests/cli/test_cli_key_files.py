"""Private-key files: created 0600 from the start, never written through a symlink.

Every verb that writes private material (``genpkey``, ``pkey``, ``req
-keyout``, ``ca init``/``ca issue``, ``demo -dir``) is run against a
world-readable file left at the target path, and against a symlink planted
there pointing at another file. The key must end up in a regular file of
mode 0600 at the path, and the symlink's target must be untouched.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Result

from quicnet.crypto import load_private_key
from quicnet.crypto.devca import DevCA

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and symlinks")

VICTIM = b"someone else's file\n"


def _assert_private_key_file(path: Path) -> None:
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode), f"{path} is not a regular file"
    assert stat.S_IMODE(info.st_mode) == 0o600, oct(stat.S_IMODE(info.st_mode))
    load_private_key(path.read_bytes())  # and it holds the key


def _plant(path: Path, kind: str, victim_name: str = "victim.txt") -> Path | None:
    """Put a world-readable file, or a symlink to one, at ``path``; returns the victim."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "world-readable":
        path.write_bytes(b"old contents\n")
        path.chmod(0o644)
        return None
    victim = path.parent / victim_name
    victim.write_bytes(VICTIM)
    victim.chmod(0o644)
    path.symlink_to(victim.name)
    return victim


def _check(path: Path, victim: Path | None) -> None:
    _assert_private_key_file(path)
    if victim is not None:
        assert victim.read_bytes() == VICTIM, "the key was written through the symlink"
        assert stat.S_IMODE(victim.stat().st_mode) == 0o644


KINDS = ["world-readable", "symlink"]
Runner = Callable[..., Result]  # the qn_ok fixture


def _genpkey(qn_ok: Runner, path: Path) -> None:
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", path)


def _pkey(qn_ok: Runner, path: Path) -> None:
    src = path.parent / "source.pem"
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", src)
    qn_ok("pkey", "-in", src, "-out", path)


def _req_keyout(qn_ok: Runner, path: Path) -> None:
    qn_ok("req", "-new", "-newkey", "ec", "-subj", "/CN=x", "-keyout", path, "-out", "x.csr")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "write", [_genpkey, _pkey, _req_keyout], ids=["genpkey", "pkey", "req-keyout"]
)
def test_key_output_is_a_fresh_0600_file(
    qn_ok: Runner, work: Path, kind: str, write: Callable[[Runner, Path], None]
) -> None:
    path = work / "key.pem"
    victim = _plant(path, kind)
    write(qn_ok, path)
    _check(path, victim)


@pytest.mark.parametrize("kind", KINDS)
def test_demo_dir_writes_its_key_0600(qn_ok: Runner, work: Path, kind: str) -> None:
    path = work / "out" / "server.key"
    victim = _plant(path, kind)
    qn_ok("demo", "-toolkit", "-dir", "out")
    _check(path, victim)


@pytest.mark.parametrize("kind", KINDS)
def test_ca_init_and_issue_write_keys_0600(qn_ok: Runner, work: Path, kind: str) -> None:
    ca_key = work / "ca" / "private" / "ca.key"
    victim = _plant(ca_key, kind)
    qn_ok("ca", "init", "ca", "-subj", "/CN=Test CA")
    _check(ca_key, victim)
    # The next serial is known before issuing: plant at the issued key's path too.
    serial = DevCA(work / "ca")._peek_serial()
    issued_key = work / "ca" / "private" / f"{serial:X}.key"
    victim2 = _plant(issued_key, kind, "victim2.txt")
    qn_ok("ca", "issue", "ca", "-subj", "/CN=leaf")
    _check(issued_key, victim2)
    _check(ca_key, victim)


def test_no_temporary_files_are_left_behind(qn_ok: Runner, work: Path) -> None:
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "key.pem")
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "key.pem")
    assert sorted(p.name for p in work.iterdir()) == ["key.pem"]
