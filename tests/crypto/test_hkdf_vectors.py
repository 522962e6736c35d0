"""Known-answer tests for HKDF (RFC 5869 Appendix A, test cases 1-4).

The vectors are typed in from RFC 5869.  Each one is also recomputed with the
standard library's ``hmac`` so that a typo in a vector cannot hide behind a
matching bug in the library (and vice versa).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import pytest

from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hashes import HmacKey, hmac_digest
from quicnet.crypto.kdf import (
    ExpandKey,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_expand_labels,
    hkdf_extract,
)


@dataclass(frozen=True)
class HkdfCase:
    name: str
    hash_name: str
    ikm: bytes
    salt: bytes
    info: bytes
    length: int
    prk: bytes
    okm: bytes


CASES = [
    HkdfCase(
        name="A.1 basic SHA-256",
        hash_name="sha256",
        ikm=bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
        prk=bytes.fromhex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"),
        okm=bytes.fromhex(
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        ),
    ),
    HkdfCase(
        name="A.2 longer inputs SHA-256",
        hash_name="sha256",
        ikm=bytes(range(0x00, 0x50)),
        salt=bytes(range(0x60, 0xB0)),
        info=bytes(range(0xB0, 0x100)),
        length=82,
        prk=bytes.fromhex("06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"),
        okm=bytes.fromhex(
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
            "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
            "cc30c58179ec3e87c14c01d5c1f3434f1d87"
        ),
    ),
    HkdfCase(
        name="A.3 zero-length salt and info SHA-256",
        hash_name="sha256",
        ikm=bytes.fromhex("0b" * 22),
        salt=b"",
        info=b"",
        length=42,
        prk=bytes.fromhex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"),
        okm=bytes.fromhex(
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        ),
    ),
    HkdfCase(
        name="A.4 basic SHA-1",
        hash_name="sha1",
        ikm=bytes.fromhex("0b" * 11),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
        prk=bytes.fromhex("9b6c18c432a7bf8f0e71c8eb88f4b30baa2ba243"),
        okm=bytes.fromhex(
            "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896"
        ),
    ),
]

_ids = [c.name for c in CASES]


# --- an independent HKDF straight from RFC 5869 §2.2/§2.3, on the stdlib -----------------


def _ref_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    if not salt:
        salt = bytes(hashlib.new(hash_name).digest_size)
    return hmac.new(salt, ikm, hash_name).digest()


def _ref_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    okm = b""
    block = b""
    counter = 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes((counter,)), hash_name).digest()
        okm += block
        counter += 1
    return okm[:length]


# --- tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_vector_agrees_with_stdlib_reference(case: HkdfCase) -> None:
    """Guards the typed-in vectors themselves."""
    assert _ref_extract(case.hash_name, case.salt, case.ikm) == case.prk
    assert _ref_expand(case.hash_name, case.prk, case.info, case.length) == case.okm


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hkdf_extract(case: HkdfCase) -> None:
    assert hkdf_extract(case.hash_name, case.salt, case.ikm) == case.prk


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hkdf_expand(case: HkdfCase) -> None:
    okm = hkdf_expand(case.hash_name, case.prk, case.info, case.length)
    assert len(okm) == case.length
    assert okm == case.okm


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hkdf_expand_prefixes(case: HkdfCase) -> None:
    """Shorter outputs are prefixes of longer ones (T(1) || T(2) || ...)."""
    for length in (1, 16, 20, 32, case.length - 1):
        assert hkdf_expand(case.hash_name, case.prk, case.info, length) == case.okm[:length]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_hkdf_extract_is_hmac_with_salt_as_key(case: HkdfCase) -> None:
    key = case.salt or bytes(hashlib.new(case.hash_name).digest_size)
    assert hmac_digest(case.hash_name, key, case.ikm) == case.prk


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_keyed_hmac_gives_each_message_its_own_mac(case: HkdfCase) -> None:
    """HmacKey copies its keyed state per message: no message leaks into the next."""
    key = case.salt or bytes(hashlib.new(case.hash_name).digest_size)
    mac = HmacKey(case.hash_name, key)
    assert mac.digest(case.ikm) == case.prk
    assert mac.digest(case.info) == hmac.new(key, case.info, case.hash_name).digest()
    assert mac.digest(case.ikm) == case.prk  # again, after another message


def test_empty_salt_equals_hashlen_zero_salt() -> None:
    """RFC 5869 §2.2: a missing salt is HashLen zero octets."""
    ikm = bytes.fromhex("0b" * 22)
    assert hkdf_extract("sha256", b"", ikm) == hkdf_extract("sha256", bytes(32), ikm)
    assert hkdf_extract("sha384", b"", ikm) == _ref_extract("sha384", bytes(48), ikm)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 64, 100, 255])
def test_hkdf_expand_matches_reference_other_hashes(hash_name: str, length: int) -> None:
    prk = _ref_extract(hash_name, b"salt", b"input keying material")
    info = b"context info"
    assert hkdf_expand(hash_name, prk, info, length) == _ref_expand(hash_name, prk, info, length)


@pytest.mark.parametrize(("hash_name", "hash_len"), [("sha256", 32), ("sha1", 20)])
def test_hkdf_expand_length_limit(hash_name: str, hash_len: int) -> None:
    """L may be at most 255 * HashLen (RFC 5869 §2.3)."""
    prk = bytes(range(hash_len))
    max_len = 255 * hash_len
    assert hkdf_expand(hash_name, prk, b"", max_len) == _ref_expand(hash_name, prk, b"", max_len)
    with pytest.raises(CryptoError):
        hkdf_expand(hash_name, prk, b"", max_len + 1)


def _ref_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context
    return _ref_expand(hash_name, secret, info, length)


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("length", [0, 12, 16, 32, 48, 49, 100])
@pytest.mark.parametrize("context", [b"", b"\x01" * 32])
def test_hkdf_expand_label_matches_reference(hash_name: str, length: int, context: bytes) -> None:
    """RFC 8446 §7.1, one block and several, with and without a context; twice, so
    the second call goes through the remembered label prefix."""
    secret = _ref_extract(hash_name, b"salt", b"secret")
    want = _ref_expand_label(hash_name, secret, b"quic key", context, length)
    for _ in range(2):
        assert hkdf_expand_label(hash_name, secret, b"quic key", context, length) == want


def test_hkdf_expand_labels_is_hkdf_expand_label_for_each() -> None:
    """The HMAC keyed once and copied gives what a fresh HMAC per label gives."""
    secret = _ref_extract("sha256", b"salt", b"secret")
    labels = ((b"quic key", 16), (b"quic iv", 12), (b"quic hp", 16), (b"long", 80), (b"no", 0))
    got = hkdf_expand_labels("sha256", secret, labels)
    assert got == [_ref_expand_label("sha256", secret, lb, b"", n) for lb, n in labels]
    # One-block labels only (a packet key's: the planned path), as a tuple twice (the
    # second from the remembered plan) and as a list (never remembered).
    short = labels[:3]
    want = [_ref_expand_label("sha256", secret, lb, b"", n) for lb, n in short]
    for given in (short, short, list(short)):
        assert hkdf_expand_labels("sha256", secret, given) == want


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("context", [b"\x01", bytes(range(32)), bytes(48), b"c" * 255])
def test_hkdf_expand_labels_with_a_context(hash_name: str, context: bytes) -> None:
    """With a context (a transcript hash, as Derive-Secret gives), each label's output is
    HKDF-Expand-Label's with that context, whether or not the labels were seen without one."""
    secret = _ref_extract(hash_name, b"salt", b"secret")
    labels = ((b"c ap traffic", 48), (b"s ap traffic", 32), (b"exp master", 16), (b"long", 80))
    want = [_ref_expand_label(hash_name, secret, lb, context, n) for lb, n in labels]
    assert hkdf_expand_labels(hash_name, secret, labels) != want
    for _ in range(2):
        assert hkdf_expand_labels(hash_name, secret, labels, context) == want
    with pytest.raises(CryptoError):
        hkdf_expand_labels(hash_name, secret, labels, bytes(256))


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
def test_an_expand_key_expands_as_a_fresh_hmac_would_until_its_last_use(hash_name: str) -> None:
    """One keyed HMAC copied for each expansion, with or without a context, labels alone
    or several at once, then used itself (``last``): every output is the reference's."""
    secret = _ref_extract(hash_name, b"salt", b"secret")
    context = bytes(range(32))
    key = ExpandKey(hash_name, secret)
    labels = ((b"quic key", 16), (b"quic iv", 12), (b"quic hp", 16))
    for _ in range(2):  # copies: the keyed state is not spent
        assert key.expand_labels(labels) == [
            _ref_expand_label(hash_name, secret, lb, b"", n) for lb, n in labels
        ]
        assert key.expand_labels(labels, context) == [
            _ref_expand_label(hash_name, secret, lb, context, n) for lb, n in labels
        ]
        assert key.expand_label(b"finished", b"", 32) == _ref_expand_label(
            hash_name, secret, b"finished", b"", 32
        )
    assert key.expand_label(b"long", context, 80) == _ref_expand_label(
        hash_name, secret, b"long", context, 80
    )
    with pytest.raises(CryptoError):
        key.expand_label(b"key", bytes(256), 16)
    assert key.expand_label(b"res master", context, 32, last=True) == _ref_expand_label(
        hash_name, secret, b"res master", context, 32
    )
    with pytest.raises(RuntimeError):  # its HMAC went into the last expansion
        key.expand_label(b"res master", context, 32)
    last = ExpandKey(hash_name, secret)
    assert last.expand_labels(labels, context, last=True)[2] == _ref_expand_label(
        hash_name, secret, b"quic hp", context, 16
    )
    with pytest.raises(RuntimeError):
        last.expand_labels(labels)


def test_hkdf_expand_label_limits() -> None:
    """The label (with "tls13 ") and the context fit one length byte; the length two."""
    with pytest.raises(CryptoError):
        hkdf_expand_label("sha256", bytes(32), b"x" * 250, b"", 32)
    with pytest.raises(CryptoError):
        hkdf_expand_label("sha256", bytes(32), b"key", bytes(256), 32)
    with pytest.raises(CryptoError):
        hkdf_expand_label("sha256", bytes(32), b"key", b"", 1 << 16)
    with pytest.raises(CryptoError):
        hkdf_expand_labels("sha256", bytes(32), ((b"x" * 250, 16),))
