"""HPKE base mode (RFC 9180 §5.1) against pyca/cryptography's own HPKE.

pyca's public ``Suite`` seals with empty AAD; its ``_encrypt_with_aad`` /
``_decrypt_with_aad`` (in the Rust bindings) take AAD, so both directions and
ECH's use (AAD = the outer ClientHello) are checked against an independent
implementation.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from quicnet.crypto.errors import CryptoError, DecryptError
from quicnet.crypto.hpke_base import (
    HpkeAead,
    HpkeKdf,
    HpkePrivateKey,
    setup_base_receiver,
    setup_base_sender,
)

SUITES = [
    (HpkeKdf.HKDF_SHA256, HpkeAead.AES_128_GCM, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM),
    (HpkeKdf.HKDF_SHA384, HpkeAead.AES_256_GCM, hpke.KDF.HKDF_SHA384, hpke.AEAD.AES_256_GCM),
    (
        HpkeKdf.HKDF_SHA512,
        HpkeAead.CHACHA20_POLY1305,
        hpke.KDF.HKDF_SHA512,
        hpke.AEAD.CHACHA20_POLY1305,
    ),
]


def _pyca_key(key: HpkePrivateKey) -> x25519.X25519PrivateKey:
    loaded = load_pem_private_key(key.to_pem(), None)
    assert isinstance(loaded, x25519.X25519PrivateKey)
    return loaded


@pytest.mark.parametrize(("kdf", "aead", "pkdf", "paead"), SUITES)
def test_pyca_sealed_opens_here(kdf: HpkeKdf, aead: HpkeAead, pkdf: object, paead: object) -> None:
    key = HpkePrivateKey.generate()
    suite = hpke.Suite(hpke.KEM.X25519, pkdf, paead)  # type: ignore[arg-type]
    sealed = suite.encrypt(b"inner hello", _pyca_key(key).public_key(), info=b"tls ech\x00cfg")
    context = setup_base_receiver(sealed[:32], key, b"tls ech\x00cfg", kdf, aead)
    assert context.open(b"", sealed[32:]) == b"inner hello"


@pytest.mark.parametrize(("kdf", "aead", "pkdf", "paead"), SUITES)
def test_sealed_here_with_aad_opens_in_pyca(
    kdf: HpkeKdf, aead: HpkeAead, pkdf: object, paead: object
) -> None:
    key = HpkePrivateKey.generate()
    enc, context = setup_base_sender(key.public_bytes(), b"info", kdf, aead)
    sealed = context.seal(b"outer hello", b"inner hello")
    suite = hpke.Suite(hpke.KEM.X25519, pkdf, paead)  # type: ignore[arg-type]
    opened = rust_openssl.hpke._decrypt_with_aad(
        suite, enc + sealed, _pyca_key(key), info=b"info", aad=b"outer hello"
    )
    assert opened == b"inner hello"
    with pytest.raises(Exception):  # noqa: B017 - pyca's own error for a wrong AAD
        rust_openssl.hpke._decrypt_with_aad(
            suite, enc + sealed, _pyca_key(key), info=b"info", aad=b"other"
        )


def test_context_sequence_after_hello_retry() -> None:
    """ECH's second ClientHello reuses the context: sequence 1 (draft-ietf-tls-esni §6.1.5)."""
    key = HpkePrivateKey.generate()
    suite = (HpkeKdf.HKDF_SHA256, HpkeAead.AES_128_GCM)
    enc, sender = setup_base_sender(key.public_bytes(), b"i", *suite)
    first, second = sender.seal(b"a", b"one"), sender.seal(b"a", b"two")
    receiver = setup_base_receiver(enc, key, b"i", *suite)
    with pytest.raises(DecryptError):
        receiver.open(b"a", second)  # out of order: sequence 0 expected
    assert receiver.open(b"a", first) == b"one"
    assert receiver.open(b"a", second) == b"two"


def test_wrong_info_key_or_enc_fail_typed() -> None:
    key, other = HpkePrivateKey.generate(), HpkePrivateKey.generate()
    suite = (HpkeKdf.HKDF_SHA256, HpkeAead.AES_128_GCM)
    enc, sender = setup_base_sender(key.public_bytes(), b"i", *suite)
    sealed = sender.seal(b"", b"x")
    for receiver in (
        setup_base_receiver(enc, key, b"j", *suite),
        setup_base_receiver(enc, other, b"i", *suite),
    ):
        with pytest.raises(DecryptError):
            receiver.open(b"", sealed)
    with pytest.raises(CryptoError):
        setup_base_receiver(enc[:31], key, b"i", *suite)


def test_private_key_pem_round_trip_and_refusals() -> None:
    key = HpkePrivateKey.generate()
    again = HpkePrivateKey.from_pem(key.to_pem())
    assert again.public_bytes() == key.public_bytes()
    with pytest.raises(CryptoError):
        HpkePrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CryptoError):
        HpkePrivateKey.from_bytes(b"short")
