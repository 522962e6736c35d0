"""What every verb shares: flag parsing, input/output, passphrases, errors."""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
from typing import NoReturn

from quicnet.crypto.keyfile import write_private_file
from quicnet.errors import QuicnetError

__all__ = [
    "CliError",
    "Parser",
    "add_output_flags",
    "network_error",
    "parse_accept",
    "read_input",
    "read_passphrase",
    "split_host_port",
    "write_output",
]


class CliError(QuicnetError):
    """A user error the CLI reports in one line (bad flag value, missing file...)."""


class Parser(argparse.ArgumentParser):
    """OpenSSL-style flags (``-in``, ``-out``) with one-line errors and no abbreviations."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=f"quicnet {prog}", description=description, allow_abbrev=False)

    def error(self, message: str) -> NoReturn:
        """Print ``message`` as one line with a pointer to ``-help``, then exit with status 2."""
        sys.stderr.write(f"{self.prog}: {message} (see '{self.prog} -help')\n")
        raise SystemExit(2)


def read_input(path: str | None, what: str = "input") -> bytes:
    """Bytes from ``path``, or from standard input when ``path`` is None or ``-``."""
    if path is None or path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None


def write_output(path: str | None, data: bytes, *, private: bool = False) -> None:
    """Write to ``path``, or to standard output.

    Private material goes to a fresh file of mode 0600 that replaces ``path``
    (never written through a symlink, never left with an old file's mode).
    """
    if path is None or path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        if private:
            write_private_file(path, data)
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise CliError(f"cannot write {path!r}: {exc.strerror or exc}") from None


def read_passphrase(spec: str | None) -> bytes | None:
    """OpenSSL's pass phrase arguments: ``pass:TEXT``, ``env:VAR``, ``file:PATH``, ``stdin``."""
    if spec is None:
        return None
    kind, _, value = spec.partition(":")
    if kind == "pass":
        return value.encode()
    if kind == "env":
        if value not in os.environ:
            raise CliError(f"environment variable {value!r} (from {spec!r}) is not set")
        return os.environ[value].encode()
    if kind == "file":
        data = read_input(value, "passphrase file")
        return data.splitlines()[0] if data else b""
    if spec == "stdin":
        line = sys.stdin.buffer.readline()
        return line.rstrip(b"\r\n")
    raise CliError(f"unrecognised passphrase source {spec!r}; use pass:, env:, file: or stdin")


def _port(text: str, flag: str, spec: str, *, listening: bool) -> int:
    low = 0 if listening else 1  # port 0 asks the OS for a free port: only when listening
    if not text.isdigit() or not low <= int(text) <= 65535:
        raise CliError(f"{flag} {spec!r}: the port must be a number from {low} to 65535")
    return int(text)


def split_host_port(text: str, flag: str = "-connect") -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``, to connect to."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise CliError(f"{flag} {text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", _port(port, flag, text, listening=False)


def parse_accept(text: str) -> tuple[str, int]:
    """``-accept [HOST:]PORT`` (the host defaults to 127.0.0.1; port 0 picks a free one)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]") or "127.0.0.1", _port(port, "-accept", text, listening=True)


def network_error(action: str, exc: OSError) -> CliError:
    """A one-line reason for a socket error the user can act on (refused, unknown name...)."""
    if isinstance(exc, socket.gaierror):
        reason = f"cannot resolve the name ({exc.strerror or exc})"
    elif exc.errno is not None:
        reason = os.strerror(exc.errno)  # asyncio rewrites strerror; the errno is plainer
    else:
        reason = str(exc) or type(exc).__name__
    return CliError(f"{action}: {reason}")


def parse_serial(text: str | None) -> int | None:
    """``-set_serial``: decimal or 0x-prefixed hex."""
    if text is None:
        return None
    try:
        value = int(text, 0)
    except ValueError:
        raise CliError(f"-set_serial {text!r} is not a number (decimal or 0x hex)") from None
    if value <= 0:
        raise CliError("-set_serial must be positive")
    return value


def parse_days(days: int) -> int:
    """``days`` from ``-days``; :class:`CliError` unless it is at least 1."""
    if days < 1:
        raise CliError(f"-days must be at least 1, not {days}")
    return days


def openssl_hex(value: int) -> str:
    """Upper-case hex with an even number of digits, as OpenSSL writes serials."""
    text = f"{value:X}"
    return "0" + text if len(text) % 2 else text


def openssl_time(moment: datetime.datetime) -> str:
    """``Jan  2 03:04:05 2026 GMT`` (day padded with a space, like OpenSSL)."""
    return f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S %Y} GMT"


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """Add ``-out FILE`` (default: standard output) and ``-outform PEM|DER`` to ``p``."""
    p.add_argument("-out", metavar="FILE", help="output file (default: standard output)")
    p.add_argument("-outform", choices=("PEM", "DER", "pem", "der"), default="PEM")


def pem_or_der(outform: str) -> bool:
    """True for PEM."""
    return outform.upper() == "PEM"


def cipher_flag(p: argparse.ArgumentParser) -> None:
    """``-aes256`` and friends: encrypt the private key written (PKCS#8, PBES2 AES-256-CBC)."""
    for name in ("-aes256", "-aes-256-cbc", "-aes128", "-aes-128-cbc", "-aes192", "-aes-192-cbc"):
        p.add_argument(name, dest="encrypt", action="store_true", help=argparse.SUPPRESS)
