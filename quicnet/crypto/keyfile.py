"""Writing private material to disk: a fresh file of mode 0600, swapped in atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile

__all__ = ["write_private_file"]


def write_private_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` (a private key, a session ticket) to ``path`` with mode 0600.

    The bytes go to a new temporary file in the same directory (created
    ``O_EXCL | O_NOFOLLOW`` with mode 0600, so never readable by others, not
    even for a moment), which then replaces ``path``. Whatever was at ``path``
    (a world-readable file, a symlink) is replaced, never written through, and
    readers see the old file or the whole new one.
    """
    target = os.fspath(path)
    directory, name = os.path.split(target)
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o600)  # exactly 0600, whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
