"""``dgst`` and ``rand``."""

from __future__ import annotations

import base64
import sys

from quicnet.cli.common import CliError, Parser, write_output
from quicnet.cli.x509 import add_hash_flags, hash_label
from quicnet.crypto import Hasher, hmac_digest, random_bytes

_CHUNK = 1 << 20


def _hash_stream(name: str, path: str | None, hmac_key: bytes | None) -> bytes:
    try:
        stream = sys.stdin.buffer if path is None else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CliError(f"cannot read {path!r}: {exc.strerror or exc}") from None
    with stream:
        if hmac_key is not None:
            return hmac_digest(name, hmac_key, stream.read())
        h = Hasher(name)
        while chunk := stream.read(_CHUNK):
            h.update(chunk)
        return h.digest()


def dgst(argv: list[str]) -> int:
    """``quicnet dgst``: hash (or HMAC) files or standard input, as ``openssl dgst``."""
    p = Parser("dgst", "Hash files (default SHA-256).")
    add_hash_flags(p, "sha256")
    p.add_argument("-hex", action="store_true", help="hex output (the default)")
    p.add_argument("-binary", action="store_true", help="raw digest bytes")
    p.add_argument("-r", dest="coreutils", action="store_true", help="'HASH *file' format")
    p.add_argument("-hmac", metavar="KEY", help="HMAC with this key")
    p.add_argument("-out", metavar="FILE")
    p.add_argument("files", nargs="*")
    a = p.parse_args(argv)
    key = a.hmac.encode() if a.hmac is not None else None
    out = b""
    for path in a.files or [None]:
        value = _hash_stream(a.hash, path, key)
        label = path if path is not None else "stdin"
        if a.binary:
            out += value
        elif a.coreutils:
            out += f"{value.hex()} *{label}\n".encode()
        else:
            prefix = "HMAC-" if key is not None else ""
            out += f"{prefix}{hash_label(a.hash)}({label})= {value.hex()}\n".encode()
    write_output(a.out, out)
    return 0


def rand(argv: list[str]) -> int:
    """``quicnet rand NUM``: NUM random bytes from the OS CSPRNG, raw, hex or base64."""
    p = Parser("rand", "Random bytes from the operating system's CSPRNG.")
    p.add_argument("-hex", action="store_true")
    p.add_argument("-base64", action="store_true")
    p.add_argument("-out", metavar="FILE")
    p.add_argument("num", type=int, help="number of bytes")
    a = p.parse_args(argv)
    if a.num < 0:
        raise CliError("the number of bytes must not be negative")
    data = random_bytes(a.num)
    if a.hex:
        data = data.hex().encode() + b"\n"
    elif a.base64:
        text = base64.b64encode(data)
        data = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    write_output(a.out, data)
    return 0
