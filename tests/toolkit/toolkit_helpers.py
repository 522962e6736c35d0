"""Helpers shared by the toolkit tests: fixed clocks, PEM framing, chain building, openssl."""

from __future__ import annotations

import base64
import datetime
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from ci_support import require_openssl
from cryptography.hazmat.primitives import serialization
from hypothesis import settings

from quicnet.crypto import (
    Certificate,
    PrivateKey,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)

UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
#: A fixed instant the time-shifted certificates are built around.
T0 = datetime.datetime(2025, 1, 1, tzinfo=UTC)

#: Hypothesis settings for the parser fuzzers: modest, no deadline, no example database on disk.
FUZZ = settings(max_examples=120, deadline=None, database=None)
FUZZ_SMALL = settings(max_examples=50, deadline=None, database=None)

#: Tests that run the openssl binary: skipped without it, failed in CI (tests/conftest.py).
needs_openssl = pytest.mark.openssl


def pem_wrap(label: str, der: bytes) -> bytes:
    """RFC 7468 framing, written here so the tests do not lean on the library's encoder."""
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {label}-----\n{chr(10).join(lines)}\n-----END {label}-----\n".encode()


def pem_unwrap(pem: bytes) -> bytes:
    """The DER inside the first PEM block."""
    text = pem.decode("ascii")
    body = text.split("-----", 2)[2].split("-----END", 1)[0]
    return base64.b64decode("".join(body.split()))


def pyca_private(key: PrivateKey) -> object:
    """The same key as a pyca/cryptography object, via its PKCS#8 encoding (for raw builders)."""
    return serialization.load_der_private_key(key.to_der(), None)


def run_openssl(
    *args: str | Path, input: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require_openssl(), *map(str, args)],
        input=input,
        capture_output=True,
        check=False,
        timeout=60,
    )


@dataclass
class Chain:
    """root -> intermediate -> leaf, with the keys."""

    root: Certificate
    root_key: PrivateKey
    intermediate: Certificate
    intermediate_key: PrivateKey
    leaf: Certificate
    leaf_key: PrivateKey

    @property
    def presented(self) -> list[Certificate]:
        return [self.leaf, self.intermediate]


def new_key() -> PrivateKey:
    return generate_private_key("EC", curve="P-256")


def build_chain(
    *,
    names: Sequence[str] = ("a.example.com", "192.0.2.7", "2001:db8::7"),
    start: datetime.datetime = T0,
    root_days: int = 3650,
    intermediate_days: int = 1825,
    leaf_days: int = 90,
    leaf_start: datetime.datetime | None = None,
    root_path_length: int | None = None,
    intermediate_path_length: int | None = 0,
    prefix: str = "",
) -> Chain:
    root_key, int_key, leaf_key = new_key(), new_key(), new_key()
    root = make_ca(
        root_key,
        f"/O=Toolkit Tests/CN={prefix}Root",
        days=root_days,
        not_before=start,
        path_length=root_path_length,
    )
    intermediate = issue_certificate(
        make_csr(int_key, f"/O=Toolkit Tests/CN={prefix}Intermediate"),
        root,
        root_key,
        is_ca=True,
        path_length=intermediate_path_length,
        days=intermediate_days,
        not_before=start,
    )
    leaf = issue_certificate(
        make_csr(leaf_key, f"/CN={prefix}{names[0] if names else 'leaf'}", names=names),
        intermediate,
        int_key,
        days=leaf_days,
        not_before=leaf_start or start,
    )
    return Chain(root, root_key, intermediate, int_key, leaf, leaf_key)


# An EC P-256 key in encrypted PKCS#8 (PBES2, AES-256-CBC), made once with quicnet and kept
# verbatim: a fresh encryption has a random salt, and about one wrong passphrase in 256 then
# decrypts to valid CBC padding, so wrong-passphrase behaviour is only reproducible on a fixed
# ciphertext. "wrong-0" .. "wrong-185" are refused by the padding check; "wrong-186" is not.
FIXED_KEY_PASSPHRASE = b"correct horse"
FIXED_ENCRYPTED_KEY = b"""-----BEGIN ENCRYPTED PRIVATE KEY-----
MIH0MF8GCSqGSIb3DQEFDTBSMDEGCSqGSIb3DQEFDDAkBBBTeqRdLJenmnovuSKP
FGQFAgIIADAMBggqhkiG9w0CCQUAMB0GCWCGSAFlAwQBKgQQTMNA3ZhHM9uGxLe3
1/tn2ASBkAViNPxjM1CowiZOsQpem6p/KUJWU6zvaCtm+JIjyvlc1tUzdGXpgSov
PCQFDFFg3EwxZtMdz70Ogi7cJ77HXEz2ImvqByfegnmeIvliZ+TRy/RZBPpuXPfY
ZjhZ2kQX7ieRWHR4SCzkQIIh9EYQhixi4WzlJeuZEBJ7ydA6Xd+iZ8B7dsmzRYdu
3pHpPeoHkA==
-----END ENCRYPTED PRIVATE KEY-----
"""
WRONG_PASSPHRASE_REJECTED_BY_PADDING = b"wrong-0"
WRONG_PASSPHRASE_WITH_VALID_PADDING = b"wrong-186"
