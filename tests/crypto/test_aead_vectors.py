"""Known-answer and misuse tests for :mod:`quicnet.crypto.aead`.

Vectors: RFC 8439 §2.8.2 (ChaCha20-Poly1305) and the AES-GCM test cases of
McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)" (test cases
1-4 for AES-128 and 13-16 for AES-256, all with 96-bit IVs).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.crypto.aead import Aead, AeadAlgorithm, HeaderProtection
from quicnet.crypto.errors import CryptoError, DecryptError

AES128 = AeadAlgorithm.AES_128_GCM
AES256 = AeadAlgorithm.AES_256_GCM
CHACHA = AeadAlgorithm.CHACHA20_POLY1305
ALL_ALGORITHMS = [AES128, AES256, CHACHA]


@dataclass(frozen=True)
class AeadCase:
    name: str
    algorithm: AeadAlgorithm
    key: bytes
    nonce: bytes
    aad: bytes
    plaintext: bytes
    ciphertext: bytes
    tag: bytes


_GCM_K = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
_GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
_GCM_P = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
_GCM_A = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
_GCM_C128 = bytes.fromhex(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
    "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985"
)
_GCM_C256 = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)

CASES = [
    AeadCase(
        name="RFC8439-2.8.2",
        algorithm=CHACHA,
        key=bytes(range(0x80, 0xA0)),
        nonce=bytes.fromhex("070000004041424344454647"),
        aad=bytes.fromhex("50515253c0c1c2c3c4c5c6c7"),
        plaintext=(
            b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
            b"for the future, sunscreen would be it."
        ),
        ciphertext=bytes.fromhex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
            "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
            "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
            "3ff4def08e4b7a9de576d26586cec64b6116"
        ),
        tag=bytes.fromhex("1ae10b594f09e26a7e902ecbd0600691"),
    ),
    AeadCase(
        name="GCM-TC1-AES128-empty",
        algorithm=AES128,
        key=bytes(16),
        nonce=bytes(12),
        aad=b"",
        plaintext=b"",
        ciphertext=b"",
        tag=bytes.fromhex("58e2fccefa7e3061367f1d57a4e7455a"),
    ),
    AeadCase(
        name="GCM-TC2-AES128",
        algorithm=AES128,
        key=bytes(16),
        nonce=bytes(12),
        aad=b"",
        plaintext=bytes(16),
        ciphertext=bytes.fromhex("0388dace60b6a392f328c2b971b2fe78"),
        tag=bytes.fromhex("ab6e47d42cec13bdf53a67b21257bddf"),
    ),
    AeadCase(
        name="GCM-TC3-AES128",
        algorithm=AES128,
        key=_GCM_K,
        nonce=_GCM_IV,
        aad=b"",
        plaintext=_GCM_P,
        ciphertext=_GCM_C128,
        tag=bytes.fromhex("4d5c2af327cd64a62cf35abd2ba6fab4"),
    ),
    AeadCase(
        name="GCM-TC4-AES128-aad",
        algorithm=AES128,
        key=_GCM_K,
        nonce=_GCM_IV,
        aad=_GCM_A,
        plaintext=_GCM_P[:60],
        ciphertext=_GCM_C128[:60],
        tag=bytes.fromhex("5bc94fbc3221a5db94fae95ae7121a47"),
    ),
    AeadCase(
        name="GCM-TC13-AES256-empty",
        algorithm=AES256,
        key=bytes(32),
        nonce=bytes(12),
        aad=b"",
        plaintext=b"",
        ciphertext=b"",
        tag=bytes.fromhex("530f8afbc74536b9a963b4f1c4cb738b"),
    ),
    AeadCase(
        name="GCM-TC14-AES256",
        algorithm=AES256,
        key=bytes(32),
        nonce=bytes(12),
        aad=b"",
        plaintext=bytes(16),
        ciphertext=bytes.fromhex("cea7403d4d606b6e074ec5d3baf39d18"),
        tag=bytes.fromhex("d0d1c8a799996bf0265b98b5d48ab919"),
    ),
    AeadCase(
        name="GCM-TC15-AES256",
        algorithm=AES256,
        key=_GCM_K + _GCM_K,
        nonce=_GCM_IV,
        aad=b"",
        plaintext=_GCM_P,
        ciphertext=_GCM_C256,
        tag=bytes.fromhex("b094dac5d93471bdec1a502270e3cc6c"),
    ),
    AeadCase(
        name="GCM-TC16-AES256-aad",
        algorithm=AES256,
        key=_GCM_K + _GCM_K,
        nonce=_GCM_IV,
        aad=_GCM_A,
        plaintext=_GCM_P[:60],
        ciphertext=_GCM_C256[:60],
        tag=bytes.fromhex("76fc6ece0f4e1768cddf8853bb2d551b"),
    ),
]
_ids = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_seal_known_answer(case: AeadCase) -> None:
    aead = Aead(case.algorithm, case.key, case.nonce)
    assert aead.seal(0, case.plaintext, case.aad) == case.ciphertext + case.tag


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_open_known_answer(case: AeadCase) -> None:
    aead = Aead(case.algorithm, case.key, case.nonce)
    assert aead.open(0, case.ciphertext + case.tag, case.aad) == case.plaintext


@pytest.mark.parametrize("counter", [1, 0x2A, 0xFFFFFFFF, 2**62 - 1])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_nonce_is_iv_xor_counter(case: AeadCase, counter: int) -> None:
    """With iv = nonce XOR counter, sealing under ``counter`` uses the vector's nonce."""
    iv = (int.from_bytes(case.nonce, "big") ^ counter).to_bytes(12, "big")
    aead = Aead(case.algorithm, case.key, iv)
    assert aead.nonce(counter) == case.nonce
    assert aead.nonce(0) == iv
    assert aead.seal(counter, case.plaintext, case.aad) == case.ciphertext + case.tag
    assert aead.open(counter, case.ciphertext + case.tag, case.aad) == case.plaintext


def test_nonce_left_pads_counter() -> None:
    aead = Aead(AES128, bytes(16), bytes(12))
    assert aead.nonce(0) == bytes(12)
    assert aead.nonce(1) == bytes(11) + b"\x01"
    assert aead.nonce(0x0102030405) == bytes(7) + bytes.fromhex("0102030405")
    iv = bytes.fromhex("ffffffffffffffffffffffff")
    assert Aead(AES128, bytes(16), iv).nonce(0xFF) == bytes.fromhex("ffffffffffffffffffffff00")


# --- tampering ----------------------------------------------------------------------------

_TAMPER_CASES = [c for c in CASES if c.plaintext and c.aad]


@pytest.mark.parametrize("case", _TAMPER_CASES, ids=[c.name for c in _TAMPER_CASES])
def test_open_rejects_tampering(case: AeadCase) -> None:
    aead = Aead(case.algorithm, case.key, case.nonce)
    sealed = case.ciphertext + case.tag

    def flip(data: bytes, index: int) -> bytes:
        return data[:index] + bytes((data[index] ^ 0x01,)) + data[index + 1 :]

    for index in (0, len(case.ciphertext) // 2, len(case.ciphertext) - 1):  # ciphertext bytes
        with pytest.raises(DecryptError):
            aead.open(0, flip(sealed, index), case.aad)
    for index in range(len(case.ciphertext), len(sealed)):  # every tag byte
        with pytest.raises(DecryptError):
            aead.open(0, flip(sealed, index), case.aad)
    with pytest.raises(DecryptError):
        aead.open(0, sealed, flip(case.aad, 0))
    with pytest.raises(DecryptError):
        aead.open(0, sealed, case.aad + b"\x00")
    with pytest.raises(DecryptError):
        aead.open(0, sealed, b"")
    with pytest.raises(DecryptError):
        aead.open(1, sealed, case.aad)
    with pytest.raises(DecryptError):
        aead.open(0, sealed[:-1], case.aad)
    with pytest.raises(DecryptError):
        aead.open(0, sealed + b"\x00", case.aad)
    other_key = bytes((case.key[0] ^ 1,)) + case.key[1:]
    with pytest.raises(DecryptError):
        Aead(case.algorithm, other_key, case.nonce).open(0, sealed, case.aad)
    # and the untouched input still opens
    assert aead.open(0, sealed, case.aad) == case.plaintext


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS, ids=lambda a: a.name)
def test_open_rejects_short_input(algorithm: AeadAlgorithm) -> None:
    aead = Aead(algorithm, bytes(algorithm.key_length), bytes(12))
    for length in (0, 1, 15):
        with pytest.raises(DecryptError):
            aead.open(0, bytes(length), b"")


def test_decrypt_error_is_a_crypto_error_with_bad_record_mac_alert() -> None:
    assert issubclass(DecryptError, CryptoError)
    assert DecryptError.alert == 20


@settings(max_examples=100, deadline=None)
@given(
    algorithm=st.sampled_from(ALL_ALGORITHMS),
    key_seed=st.binary(min_size=32, max_size=32),
    iv=st.binary(min_size=12, max_size=12),
    counter=st.integers(min_value=0, max_value=2**62 - 1),
    plaintext=st.binary(max_size=300),
    aad=st.binary(max_size=64),
    flip=st.integers(min_value=0),
)
def test_roundtrip_and_any_single_bit_flip_fails(
    algorithm: AeadAlgorithm,
    key_seed: bytes,
    iv: bytes,
    counter: int,
    plaintext: bytes,
    aad: bytes,
    flip: int,
) -> None:
    aead = Aead(algorithm, key_seed[: algorithm.key_length], iv)
    sealed = aead.seal(counter, plaintext, aad)
    assert len(sealed) == len(plaintext) + algorithm.tag_length
    assert aead.open(counter, sealed, aad) == plaintext
    bit = flip % (len(sealed) * 8)
    tampered = bytearray(sealed)
    tampered[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptError):
        aead.open(counter, bytes(tampered), aad)


# --- construction checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "good", "bad"),
    [
        (AES128, 16, [0, 15, 17, 24, 32]),
        (AES256, 32, [0, 16, 24, 31, 33]),
        (CHACHA, 32, [0, 16, 31, 33]),
    ],
    ids=lambda x: x.name if isinstance(x, AeadAlgorithm) else None,
)
def test_aead_rejects_wrong_key_length(algorithm: AeadAlgorithm, good: int, bad: list[int]) -> None:
    assert algorithm.key_length == good
    Aead(algorithm, bytes(good), bytes(12))  # accepted
    for length in bad:
        with pytest.raises(CryptoError):
            Aead(algorithm, bytes(length), bytes(12))


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("iv_length", [0, 8, 11, 13, 16])
def test_aead_rejects_wrong_iv_length(algorithm: AeadAlgorithm, iv_length: int) -> None:
    with pytest.raises(CryptoError):
        Aead(algorithm, bytes(algorithm.key_length), bytes(iv_length))


def test_algorithm_parameters() -> None:
    assert [a.key_length for a in ALL_ALGORITHMS] == [16, 32, 32]
    assert all(a.iv_length == 12 and a.tag_length == 16 for a in ALL_ALGORITHMS)


# --- header protection --------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS, ids=lambda a: a.name)
def test_header_protection_mask_shape(algorithm: AeadAlgorithm) -> None:
    hp = HeaderProtection(algorithm, bytes(range(algorithm.key_length)))
    sample = bytes(range(16))
    mask = hp.mask(sample)
    assert isinstance(mask, bytes)
    assert len(mask) == 5
    assert hp.mask(sample) == mask  # deterministic, also on reuse
    assert HeaderProtection(algorithm, bytes(range(algorithm.key_length))).mask(sample) == mask
    other_sample = bytes((sample[0] ^ 1,)) + sample[1:]
    assert hp.mask(other_sample) != mask
    other_key = bytes(algorithm.key_length)
    assert HeaderProtection(algorithm, other_key).mask(sample) != mask


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS, ids=lambda a: a.name)
@pytest.mark.parametrize("sample_length", [0, 1, 5, 15, 17, 32])
def test_header_protection_rejects_bad_sample(algorithm: AeadAlgorithm, sample_length: int) -> None:
    hp = HeaderProtection(algorithm, bytes(algorithm.key_length))
    with pytest.raises(CryptoError):
        hp.mask(bytes(sample_length))


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS, ids=lambda a: a.name)
def test_header_protection_rejects_wrong_key_length(algorithm: AeadAlgorithm) -> None:
    for length in (0, 8, algorithm.key_length - 1, algorithm.key_length + 1):
        with pytest.raises(CryptoError):
            HeaderProtection(algorithm, bytes(length))


def test_aes_header_protection_is_aes_ecb() -> None:
    """RFC 9001 §5.4.3: mask = AES-ECB(hp_key, sample)[0..4]; FIPS-197 C.1/C.3 blocks."""
    sample = bytes.fromhex("00112233445566778899aabbccddeeff")
    hp128 = HeaderProtection(AES128, bytes(range(16)))
    assert hp128.mask(sample) == bytes.fromhex("69c4e0d86a")  # 69c4e0d86a7b0430d8cdb78070b4c55a
    hp256 = HeaderProtection(AES256, bytes(range(32)))
    assert hp256.mask(sample) == bytes.fromhex("8ea2b7ca51")  # 8ea2b7ca516745bfeafc49904b496089


def test_chacha_header_protection_uses_sample_as_counter_and_nonce() -> None:
    """RFC 9001 §5.4.4: counter = sample[0..3] little-endian, nonce = sample[4..15].

    RFC 8439 §2.4.2: key 00..1f, counter 1, nonce 000000000000004a00000000; the
    keystream's first five bytes are the first ciphertext bytes XOR the plaintext
    "Ladies..." ("6e2e359a25" XOR "4c61646965" = "224f51f340").
    """
    hp = HeaderProtection(CHACHA, bytes(range(32)))
    sample = (1).to_bytes(4, "little") + bytes.fromhex("000000000000004a00000000")
    assert hp.mask(sample) == bytes.fromhex("224f51f340")
