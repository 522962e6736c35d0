"""HPKE (:mod:`quicnet.crypto.hpke`): RFC 9180 Appendix A vectors, round trips, misuse.

Base mode: the vectors checked are the Base Setup Information of A.1.1-A.6.1
(key serialization) with their encryption at sequence number 0, and A.1.1's
later sequence numbers and exported values (the context API). Every suite
quicnet runs the key schedule for is also checked against pyca/cryptography's
own single-shot HPKE, in both directions, through pyca's public API.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke as pyca_hpke
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.crypto import hpke
from quicnet.crypto.errors import DecodeError, DecryptError, UnsupportedAlgorithmError

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "rfc9180-appendix-a-base.json").read_text()
)["vectors"]
X25519 = hpke.KemId.DHKEM_X25519_HKDF_SHA256


def _suite(v: dict[str, Any]) -> hpke.Suite:
    return hpke.Suite.from_ids(v["kem_id"], v["kdf_id"], v["aead_id"])


@pytest.mark.parametrize("v", VECTORS, ids=[v["section"] for v in VECTORS])
def test_rfc9180_base_vector_opens(v: dict[str, Any]) -> None:
    suite = _suite(v)
    sk_r = hpke.HpkePrivateKey.from_bytes(suite.kem, bytes.fromhex(v["skRm"]))
    ctx = hpke.setup_base_receiver(bytes.fromhex(v["enc"]), sk_r, bytes.fromhex(v["info"]), suite)
    assert ctx.open(bytes.fromhex(v["aad"]), bytes.fromhex(v["ct"])) == bytes.fromhex(v["pt"])
    # The single-shot form agrees.
    pt = hpke.open_base(
        bytes.fromhex(v["enc"]),
        sk_r,
        bytes.fromhex(v["ct"]),
        info=bytes.fromhex(v["info"]),
        aad=bytes.fromhex(v["aad"]),
        suite=suite,
    )
    assert pt == bytes.fromhex(v["pt"])


@pytest.mark.parametrize("v", VECTORS, ids=[v["section"] for v in VECTORS])
def test_rfc9180_key_serialization(v: dict[str, Any]) -> None:
    kem = hpke.KemId(v["kem_id"])
    sk_r = hpke.HpkePrivateKey.from_bytes(kem, bytes.fromhex(v["skRm"]))
    assert sk_r.to_bytes().hex() == v["skRm"]
    assert sk_r.public_key().to_bytes().hex() == v["pkRm"]
    assert (
        hpke.HpkePublicKey.from_bytes(kem, bytes.fromhex(v["pkRm"])).to_bytes().hex() == v["pkRm"]
    )


@pytest.mark.parametrize("v", VECTORS, ids=[v["section"] for v in VECTORS])
def test_rfc9180_vector_rejects_wrong_aad_and_info(v: dict[str, Any]) -> None:
    suite = _suite(v)
    sk_r = hpke.HpkePrivateKey.from_bytes(suite.kem, bytes.fromhex(v["skRm"]))
    enc, ct, info = bytes.fromhex(v["enc"]), bytes.fromhex(v["ct"]), bytes.fromhex(v["info"])
    with pytest.raises(hpke.HPKEDecryptError):
        hpke.open_base(enc, sk_r, ct, info=info, aad=b"Count-1", suite=suite)
    with pytest.raises(hpke.HPKEDecryptError):
        hpke.open_base(enc, sk_r, ct, info=info + b"!", aad=bytes.fromhex(v["aad"]), suite=suite)


def test_vectors_cover_every_rfc_base_suite_pyca_has() -> None:
    suites = {str(_suite(v)) for v in VECTORS}
    assert len(suites) == 6
    assert all(_suite(v).supported for v in VECTORS)


# RFC 9180 A.1.1 (DHKEM(X25519), HKDF-SHA256, AES-128-GCM): the encryptions at
# sequence numbers 0-2 and the exported values, from one receiver context.
A11 = next(v for v in VECTORS if v["section"] == "A.1.1")
A11_CTS = [
    "f938558b5d72f1a23810b4be2ab4f84331acc02fc97babc53a52ae8218a355a96d8770ac83d07bea87e13c512a",
    "af2d7e9ac9ae7e270f46ba1f975be53c09f8d875bdc8535458c2494e8a6eab251c03d0c22a56b8ca42c2063b84",
    "498dfcabd92e8acedc281e85af1cb4e3e31c7dc394a1ca20e173cb72516491588d96a19ad4a683518973dcc180",
]
A11_EXPORTS = [
    ("", "3853fe2b4035195a573ffc53856e77058e15d9ea064de3e59f4961d0095250ee"),
    ("00", "2e8f0b54673c7029649d4eb9d5e33bf1872cf76d623ff164ac185da9e88c21a5"),
    ("54657374436f6e74657874", "e9e43065102c3836401bed8c3c3c75ae46be1639869391d62c61f1ec7af54931"),
]


def test_rfc9180_a11_context_sequence_and_exports() -> None:
    suite = _suite(A11)
    sk_r = hpke.HpkePrivateKey.from_bytes(suite.kem, bytes.fromhex(A11["skRm"]))
    ctx = hpke.setup_base_receiver(bytes.fromhex(A11["enc"]), sk_r, bytes.fromhex(A11["info"]))
    for seq, ct in enumerate(A11_CTS):
        assert ctx.sequence_number == seq
        assert ctx.open(f"Count-{seq}".encode(), bytes.fromhex(ct)) == bytes.fromhex(A11["pt"])
    for context, value in A11_EXPORTS:
        assert ctx.export(bytes.fromhex(context), 32).hex() == value


CONTEXT_SUITES = [
    hpke.Suite(kem, kdf, aead)
    for kem in sorted(hpke.SUPPORTED_KEMS)
    for kdf in sorted(hpke.SUPPORTED_KDFS)
    for aead in sorted(hpke.SUPPORTED_AEADS)
    if hpke.Suite(kem, kdf, aead).has_contexts
]
SINGLE_SHOT_SUITES = [
    hpke.Suite(kem, kdf, aead)
    for kem in sorted(hpke.SUPPORTED_KEMS)
    for kdf in (hpke.KdfId.HKDF_SHA256, hpke.KdfId.SHAKE256)
    for aead in sorted(hpke.SUPPORTED_AEADS)
    if not hpke.Suite(kem, kdf, aead).has_contexts
]


def test_which_suites_have_contexts() -> None:
    # DHKEM(X25519, P-256/384/521) and ML-KEM-768/1024, times HKDF-SHA256/384/512 and 3 AEADs.
    assert len(CONTEXT_SUITES) == 6 * 3 * 3
    assert {s.kem for s in SINGLE_SHOT_SUITES} | {s.kdf for s in SINGLE_SHOT_SUITES} >= {
        hpke.KemId.MLKEM768_X25519,
        hpke.KemId.MLKEM1024_P384,
        hpke.KdfId.SHAKE256,
    }
    assert all(_suite(v).has_contexts for v in VECTORS)


def _pyca(suite: hpke.Suite) -> pyca_hpke.Suite:
    kem = {
        hpke.KemId.DHKEM_P256_HKDF_SHA256: pyca_hpke.KEM.P256,
        hpke.KemId.DHKEM_P384_HKDF_SHA384: pyca_hpke.KEM.P384,
        hpke.KemId.DHKEM_P521_HKDF_SHA512: pyca_hpke.KEM.P521,
        hpke.KemId.DHKEM_X25519_HKDF_SHA256: pyca_hpke.KEM.X25519,
        hpke.KemId.ML_KEM_768: pyca_hpke.KEM.MLKEM768,
        hpke.KemId.ML_KEM_1024: pyca_hpke.KEM.MLKEM1024,
    }[suite.kem]
    kdf = getattr(pyca_hpke.KDF, suite.kdf.name)
    aead = getattr(pyca_hpke.AEAD, suite.aead.name)
    return pyca_hpke.Suite(kem, kdf, aead)


@pytest.mark.parametrize("suite", CONTEXT_SUITES, ids=str)
def test_key_schedule_agrees_with_pyca(suite: hpke.Suite) -> None:
    """Sealed here opens in pyca and the reverse (pyca's public API: empty AAD)."""
    sk_r = hpke.HpkePrivateKey.generate(suite.kem)
    enc, ct = hpke.seal_base(sk_r.public_key(), b"payload", info=b"i", suite=suite)
    assert len(enc) == suite.enc_length
    pyca_suite = _pyca(suite)
    assert pyca_suite.decrypt(enc + ct, sk_r.to_cryptography(), info=b"i") == b"payload"
    sealed = pyca_suite.encrypt(b"other", sk_r.public_key().to_cryptography(), info=b"j")
    n = suite.enc_length
    assert hpke.open_base(sealed[:n], sk_r, sealed[n:], info=b"j", suite=suite) == b"other"
    # With AAD (which pyca's public API cannot check): a round trip, and AAD is bound.
    enc, ct = hpke.seal_base(sk_r.public_key(), b"payload", info=b"i", aad=b"a", suite=suite)
    assert hpke.open_base(enc, sk_r, ct, info=b"i", aad=b"a", suite=suite) == b"payload"
    with pytest.raises(hpke.HPKEDecryptError):
        hpke.open_base(enc, sk_r, ct, info=b"i", aad=b"b", suite=suite)


@pytest.mark.parametrize("suite", SINGLE_SHOT_SUITES, ids=str)
def test_single_shot_suites_round_trip_without_aad(suite: hpke.Suite) -> None:
    sk_r = hpke.HpkePrivateKey.generate(suite.kem)
    enc, ct = hpke.seal_base(sk_r.public_key(), b"payload", info=b"i", suite=suite)
    assert len(enc) == suite.enc_length
    assert hpke.open_base(enc, sk_r, ct, info=b"i", suite=suite) == b"payload"
    with pytest.raises(hpke.HPKEUnsupportedError, match="no AAD"):
        hpke.seal_base(sk_r.public_key(), b"payload", aad=b"a", suite=suite)
    with pytest.raises(hpke.HPKEUnsupportedError, match="no AAD"):
        hpke.open_base(enc, sk_r, ct, info=b"i", aad=b"a", suite=suite)
    with pytest.raises(hpke.HPKEUnsupportedError, match="no encryption context"):
        hpke.setup_base_sender(sk_r.public_key(), b"i", suite)
    with pytest.raises(hpke.HPKEUnsupportedError, match="no encryption context"):
        hpke.setup_base_receiver(enc, sk_r, b"i", suite)


_KEY = hpke.HpkePrivateKey.generate(X25519)


@settings(max_examples=50, deadline=None)
@given(pt=st.binary(max_size=300), info=st.binary(max_size=40), aad=st.binary(max_size=40))
def test_round_trip_property(pt: bytes, info: bytes, aad: bytes) -> None:
    enc, ct = hpke.seal_base(_KEY.public_key(), pt, info=info, aad=aad)
    assert len(ct) == len(pt) + 16
    assert hpke.open_base(enc, _KEY, ct, info=info, aad=aad) == pt


@settings(max_examples=50, deadline=None)
@given(pt=st.binary(max_size=100), data=st.data())
def test_any_tampering_is_a_typed_decrypt_error(pt: bytes, data: st.DataObject) -> None:
    enc, ct = hpke.seal_base(_KEY.public_key(), pt, info=b"i", aad=b"a")
    which = data.draw(st.sampled_from(["enc", "ct", "info", "aad"]))
    if which in ("enc", "ct"):
        blob = bytearray(enc if which == "enc" else ct)
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
        if which == "enc":
            enc = bytes(blob)
        else:
            ct = bytes(blob)
    info = b"I" if which == "info" else b"i"
    aad = b"A" if which == "aad" else b"a"
    with pytest.raises(hpke.HPKEDecryptError) as err:
        hpke.open_base(enc, _KEY, ct, info=info, aad=aad)
    assert isinstance(err.value, DecryptError)
    assert err.value.alert == 51  # decrypt_error


@settings(max_examples=50, deadline=None)
@given(enc=st.binary(max_size=80), ct=st.binary(max_size=80))
def test_garbage_open_is_a_typed_error(enc: bytes, ct: bytes) -> None:
    with pytest.raises(hpke.HPKEDecryptError):
        hpke.open_base(enc, _KEY, ct)


@settings(max_examples=50, deadline=None)
@given(
    kem=st.sampled_from([k for k in hpke.KemId if k in hpke.SUPPORTED_KEMS]),
    data=st.binary(max_size=200),
)
def test_malformed_keys_are_typed_errors(kem: hpke.KemId, data: bytes) -> None:
    for parse in (hpke.HpkePublicKey.from_bytes, hpke.HpkePrivateKey.from_bytes):
        try:
            key = parse(kem, data)
        except (hpke.HPKEKeyError, hpke.HPKEUnsupportedSuite):
            continue
        assert key.to_bytes() == data  # accepted: the encoding round trips


def test_key_error_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        hpke.HpkePublicKey.from_bytes(X25519, b"short")
    with pytest.raises(hpke.HPKEKeyError):
        hpke.HpkePublicKey.from_bytes(hpke.KemId.DHKEM_P256_HKDF_SHA256, b"\x02" + bytes(32))


def test_key_of_another_kem_is_refused() -> None:
    p256 = hpke.HpkePrivateKey.generate(hpke.KemId.DHKEM_P256_HKDF_SHA256)
    with pytest.raises(hpke.HPKEKeyError, match="needs DHKEM_X25519"):
        hpke.seal_base(p256.public_key(), b"x")
    with pytest.raises(hpke.HPKEKeyError):
        hpke.open_base(bytes(32), p256, b"x" * 17)


@settings(max_examples=100, deadline=None)
@given(kem=st.integers(0, 0xFFFF), kdf=st.integers(0, 0xFFFF), aead=st.integers(0, 0xFFFF))
def test_from_ids_unknown_codepoints(kem: int, kdf: int, aead: int) -> None:
    try:
        suite = hpke.Suite.from_ids(kem, kdf, aead)
    except hpke.HPKEUnsupportedSuite as exc:
        assert isinstance(exc, UnsupportedAlgorithmError)
        assert "unknown HPKE" in str(exc)
    else:
        assert (suite.kem, suite.kdf, suite.aead) == (kem, kdf, aead)


def test_codepoints_are_the_rfcs() -> None:
    assert hpke.Suite.from_ids(0x0020, 0x0001, 0x0001) == hpke.DEFAULT_SUITE
    assert hpke.KemId.DHKEM_P521_HKDF_SHA512 == 0x0012
    assert hpke.AeadId.CHACHA20_POLY1305 == 0x0003
    assert hpke.Mode.AUTH_PSK == 3


def test_suites_pyca_lacks_raise_unsupported_suite() -> None:
    x448 = hpke.Suite(
        hpke.KemId.DHKEM_X448_HKDF_SHA512, hpke.KdfId.HKDF_SHA512, hpke.AeadId.AES_256_GCM
    )
    assert not x448.supported
    with pytest.raises(hpke.HPKEUnsupportedSuite, match="X448"):
        hpke.HpkePrivateKey.generate(hpke.KemId.DHKEM_X448_HKDF_SHA512)
    export_only = hpke.Suite(X25519, hpke.KdfId.HKDF_SHA256, hpke.AeadId.EXPORT_ONLY)
    with pytest.raises(hpke.HPKEUnsupportedSuite, match="EXPORT_ONLY"):
        hpke.seal_base(_KEY.public_key(), b"x", suite=export_only)


def test_contexts_seal_and_open_in_order_and_export_alike() -> None:
    """ECH's second ClientHello reuses the context: sequence 1 (draft-ietf-tls-esni §6.1.5)."""
    enc, sender = hpke.setup_base_sender(_KEY.public_key(), b"i")
    first, second = sender.seal(b"a", b"one"), sender.seal(b"a", b"two")
    assert sender.sequence_number == 2
    receiver = hpke.setup_base_receiver(enc, _KEY, b"i")
    with pytest.raises(hpke.HPKEDecryptError):
        receiver.open(b"a", second)  # out of order: sequence 0 expected
    assert receiver.open(b"a", first) == b"one"
    assert receiver.open(b"a", second) == b"two"
    assert sender.export(b"ctx", 48) == receiver.export(b"ctx", 48)
    assert sender.export(b"ctx", 32) != sender.export(b"other", 32)
    with pytest.raises(hpke.HPKEError):
        sender.export(b"ctx", 255 * 32 + 1)  # §5.3: at most 255 * Nh bytes


def test_wrong_info_key_or_enc_fail_typed() -> None:
    other = hpke.HpkePrivateKey.generate()
    enc, sender = hpke.setup_base_sender(_KEY.public_key(), b"i")
    sealed = sender.seal(b"", b"x")
    for receiver in (
        hpke.setup_base_receiver(enc, _KEY, b"j"),
        hpke.setup_base_receiver(enc, other, b"i"),
    ):
        with pytest.raises(hpke.HPKEDecryptError):
            receiver.open(b"", sealed)
    with pytest.raises(hpke.HPKEDecryptError):
        hpke.setup_base_receiver(enc[:31], _KEY, b"i")
    with pytest.raises(hpke.HPKEDecryptError):  # §7.1.4: an all-zero X25519 result
        hpke.setup_base_receiver(bytes(32), _KEY, b"i")
    p256 = hpke.Suite(
        hpke.KemId.DHKEM_P256_HKDF_SHA256, hpke.KdfId.HKDF_SHA256, hpke.AeadId.AES_128_GCM
    )
    sk = hpke.HpkePrivateKey.generate(p256.kem)
    with pytest.raises(hpke.HPKEDecryptError):  # not a point on the curve
        hpke.setup_base_receiver(b"\x04" + bytes(64), sk, b"i", p256)


@pytest.mark.parametrize("kem", [X25519, hpke.KemId.DHKEM_P384_HKDF_SHA384])
def test_private_key_pem_round_trip_and_refusals(kem: hpke.KemId) -> None:
    key = hpke.HpkePrivateKey.generate(kem)
    again = hpke.HpkePrivateKey.from_pem(key.to_pem())
    assert again.kem is kem
    assert again.to_bytes() == key.to_bytes()
    with pytest.raises(hpke.HPKEKeyError):
        hpke.HpkePrivateKey.from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
    with pytest.raises(hpke.HPKEUnsupportedSuite):
        hpke.HpkePrivateKey.generate(hpke.KemId.ML_KEM_768).to_pem()


def test_failed_receiver_open_can_be_retried() -> None:
    enc, ct = hpke.seal_base(_KEY.public_key(), b"m", aad=b"right")
    ctx = hpke.setup_base_receiver(enc, _KEY, b"")
    with pytest.raises(hpke.HPKEDecryptError):
        ctx.open(b"wrong", ct)
    assert ctx.open(b"right", ct) == b"m"


def test_hybrid_keys_work_in_memory_but_do_not_serialize() -> None:
    kem = hpke.KemId.MLKEM768_X25519
    sk = hpke.HpkePrivateKey.generate(kem)
    with pytest.raises(hpke.HPKEUnsupportedSuite):
        sk.public_key().to_bytes()
    with pytest.raises(hpke.HPKEUnsupportedSuite):
        sk.to_bytes()
    with pytest.raises(hpke.HPKEUnsupportedSuite):
        hpke.HpkePublicKey.from_bytes(kem, bytes(1216))
