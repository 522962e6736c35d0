"""OS randomness and constant-time comparison."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import constant_time

__all__ = ["constant_time_eq", "random_bytes"]


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG."""
    if n < 0:
        raise ValueError("n must be >= 0")
    return os.urandom(n)


def constant_time_eq(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time that depends only on their lengths."""
    return constant_time.bytes_eq(a, b)
