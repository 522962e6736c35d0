"""PEM framing (RFC 7468): find the blocks in a file, whatever surrounds them."""

from __future__ import annotations

import base64
import binascii
import re

from quicnet.crypto.errors import DecodeError

__all__ = ["is_pem", "pem_blocks", "pem_decode", "pem_encode"]

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def is_pem(data: bytes) -> bool:
    """Whether ``data`` holds a PEM ``-----BEGIN`` line anywhere (else take it as DER)."""
    return b"-----BEGIN " in data


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every ``(label, block_text)`` in ``data``; ``block_text`` includes the BEGIN/END lines."""
    return [(m.group(1).decode("ascii"), m.group(0) + b"\n") for m in _BLOCK.finditer(data)]


def pem_body(block: bytes) -> bytes:
    """The DER inside one PEM block (no encapsulated headers allowed)."""
    m = _BLOCK.search(block)
    if m is None:
        raise DecodeError("not a PEM block")
    body = m.group(2)
    if b":" in body:
        raise DecodeError("PEM block has encapsulated headers")
    try:
        return binascii.a2b_base64(body)
    except binascii.Error as exc:
        raise DecodeError(f"PEM block is not valid base64: {exc}") from None


def pem_decode(label: str, data: bytes) -> bytes:
    """The contents of the first ``label`` block in ``data`` (strict base64, whatever
    surrounds the block); DecodeError when there is none or it is not base64."""
    for m in _BLOCK.finditer(data):
        if m.group(1).decode("ascii") == label:
            try:
                return base64.b64decode(b"".join(m.group(2).split()), validate=True)
            except binascii.Error:
                raise DecodeError(f"the {label} block is not base64") from None
    raise DecodeError(f"no {label} block found")


def pem_encode(label: str, der: bytes) -> bytes:
    """``der`` as a PEM block with ``label``, base64 in 64-character lines (RFC 7468 §2)."""
    b64 = binascii.b2a_base64(der, newline=False)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    head = f"-----BEGIN {label}-----\n".encode()
    tail = f"-----END {label}-----\n".encode()
    return head + b"\n".join(lines) + b"\n" + tail
