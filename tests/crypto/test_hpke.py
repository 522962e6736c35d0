"""HPKE (:mod:`quicnet.crypto.hpke`): RFC 9180 Appendix A vectors, round trips, misuse.

pyca/cryptography offers base mode, single-shot: the vectors checked are the
Base Setup Information of A.1.1-A.6.1 (key serialization) and their
encryption at sequence number 0 (open). PSK/Auth/AuthPSK, later sequence
numbers and exported values need an HPKE context pyca does not expose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
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


SUPPORTED_SUITES = [
    hpke.Suite(kem, kdf, aead)
    for kem in sorted(hpke.SUPPORTED_KEMS)
    for kdf in (hpke.KdfId.HKDF_SHA256, hpke.KdfId.SHAKE256)
    for aead in sorted(hpke.SUPPORTED_AEADS)
]


@pytest.mark.parametrize("suite", SUPPORTED_SUITES, ids=str)
def test_round_trip_every_kem_and_aead(suite: hpke.Suite) -> None:
    sk_r = hpke.HpkePrivateKey.generate(suite.kem)
    enc, ct = hpke.seal_base(sk_r.public_key(), b"payload", info=b"i", aad=b"a", suite=suite)
    assert len(enc) == suite.enc_length
    assert hpke.open_base(enc, sk_r, ct, info=b"i", aad=b"a", suite=suite) == b"payload"


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


def test_what_pyca_lacks_is_a_typed_unsupported_error() -> None:
    enc, ct = hpke.seal_base(_KEY.public_key(), b"first", info=b"i", aad=b"a")
    with pytest.raises(hpke.HPKEUnsupportedError, match="single-shot"):
        hpke.setup_base_sender(_KEY.public_key(), b"i")
    ctx = hpke.setup_base_receiver(enc, _KEY, b"i")
    with pytest.raises(hpke.HPKEUnsupportedError):
        ctx.export(b"ctx", 32)
    assert ctx.open(b"a", ct) == b"first"
    with pytest.raises(hpke.HPKEUnsupportedError, match="sequence number > 0"):
        ctx.open(b"a", ct)


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


def test_a_pyca_without_the_aad_entry_points_gives_unsupported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enc, ct = hpke.seal_base(_KEY.public_key(), b"m", aad=b"a")
    monkeypatch.delattr(hpke.rust_openssl.hpke, "_encrypt_with_aad")
    monkeypatch.delattr(hpke.rust_openssl.hpke, "_decrypt_with_aad")
    with pytest.raises(hpke.HPKEUnsupportedError, match="no HPKE AAD"):
        hpke.seal_base(_KEY.public_key(), b"m", aad=b"a")
    with pytest.raises(hpke.HPKEUnsupportedError, match="no HPKE AAD"):
        hpke.open_base(enc, _KEY, ct, aad=b"a")
    # Without AAD only the public API is used, and it still works.
    enc, ct = hpke.seal_base(_KEY.public_key(), b"m")
    assert hpke.open_base(enc, _KEY, ct) == b"m"
