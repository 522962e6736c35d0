"""SSLKEYLOGFILE: a client's TLS secrets in the NSS key log format, for Wireshark.

A debugging aid, and a dangerous one: anyone who reads the file can decrypt
every session logged in it (TLS over TCP and QUIC alike), so it defeats the
secrecy of those sessions. Only clients log by default, and only when the
``SSLKEYLOGFILE`` environment variable names a file (read when a QUIC client's
configuration is made, at each connection for TLS over TCP); a server logs only
when its configuration has a ``key_log`` callback.

Each line is ``<LABEL> <client_random hex> <secret hex>`` (the labels of
TLS 1.3: CLIENT_HANDSHAKE_TRAFFIC_SECRET, SERVER_HANDSHAKE_TRAFFIC_SECRET,
CLIENT_TRAFFIC_SECRET_0, SERVER_TRAFFIC_SECRET_0, EXPORTER_SECRET, and
CLIENT_EARLY_TRAFFIC_SECRET with 0-RTT). The file is opened in append mode
for every line and each line goes out in one ``write``, so lines from
concurrent connections and processes never interleave. A file that cannot
be opened or written logs one warning (per file, per process) and the
connection goes on without it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

__all__ = ["SSLKEYLOGFILE", "KeyLogFile", "key_log_file", "key_log_from_environment"]

_log = logging.getLogger("quicnet.tls")

#: The environment variable naming the key log file (as NSS, OpenSSL and browsers read it).
SSLKEYLOGFILE = "SSLKEYLOGFILE"


class KeyLogFile:
    """A ``key_log`` callback appending each line to one file (created 0600 if absent)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._warned = False

    def __call__(self, line: str) -> None:
        data = (line + "\n").encode("ascii")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            self._warn(exc)
            return
        try:
            os.write(fd, data)  # O_APPEND: one write is one whole line at the end
        except OSError as exc:
            self._warn(exc)
        finally:
            os.close(fd)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            _log.warning("cannot append TLS secrets to %s (%s); not logging them", self.path, exc)


_files: dict[str, KeyLogFile] = {}
_files_lock = threading.Lock()


def key_log_file(path: str) -> Callable[[str], None]:
    """The callback appending to ``path``, one per path in this process (one warning)."""
    with _files_lock:
        writer = _files.get(path)
        if writer is None:
            writer = _files[path] = KeyLogFile(path)
        return writer


def key_log_from_environment() -> Callable[[str], None] | None:
    """The callback for the file ``SSLKEYLOGFILE`` names, or None when it is unset or empty."""
    path = os.environ.get(SSLKEYLOGFILE)
    return key_log_file(path) if path else None
