"""PKCS#12 (RFC 7292): our files read by ``openssl pkcs12``, theirs read by us, garbage refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toolkit_helpers import FUZZ, FUZZ_SMALL, Chain, build_chain, needs_openssl, run_openssl

from quicnet.crypto import (
    CryptoError,
    DecodeError,
    PassphraseError,
    export_pkcs12,
    generate_private_key,
    is_pkcs12,
    load_certificates,
    load_pkcs12,
    load_private_key,
)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


def test_round_trip_with_chain_and_name(chain: Chain) -> None:
    data = export_pkcs12(
        chain.leaf_key,
        chain.leaf,
        [chain.root, chain.intermediate],
        name="game server",
        password=b"pw",
    )
    assert is_pkcs12(data)
    bundle = load_pkcs12(data, b"pw")
    assert bundle.certificate == chain.leaf
    assert bundle.private_key is not None
    assert bundle.private_key.public_key() == chain.leaf_key.public_key()
    assert set(bundle.additional_certificates) == {chain.root, chain.intermediate}
    assert bundle.friendly_name == "game server"
    # As a server identity: leaf, then its issuer; the self-signed root is not sent.
    ident = bundle.identity()
    assert ident.certificate_chain == (chain.leaf, chain.intermediate)
    assert ident.certificate == chain.leaf
    assert ident.private_key.public_key() == chain.leaf_key.public_key()


def test_wrong_or_missing_passphrase(chain: Chain) -> None:
    data = export_pkcs12(chain.leaf_key, chain.leaf, password=b"right")
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        load_pkcs12(data, b"wrong")
    with pytest.raises(PassphraseError):
        load_pkcs12(data)


def test_unencrypted_and_certificate_only(chain: Chain) -> None:
    plain = load_pkcs12(export_pkcs12(chain.leaf_key, chain.leaf))
    assert plain.certificate == chain.leaf and plain.private_key is not None
    certs_only = load_pkcs12(export_pkcs12(None, None, [chain.root], password=b"x"), b"x")
    assert certs_only.private_key is None and certs_only.certificate is None
    assert certs_only.additional_certificates == (chain.root,)
    with pytest.raises(CryptoError, match="private key and its certificate"):
        certs_only.identity()


def test_mismatched_key_is_refused(chain: Chain) -> None:
    with pytest.raises(CryptoError, match="does not match"):
        export_pkcs12(chain.root_key, chain.leaf, password=b"x")
    with pytest.raises(CryptoError, match="nothing"):
        export_pkcs12(None, None)


@needs_openssl
def test_openssl_reads_ours(chain: Chain, tmp_path: Path) -> None:
    p12 = tmp_path / "ours.p12"
    p12.write_bytes(
        export_pkcs12(
            chain.leaf_key, chain.leaf, [chain.intermediate], name="srv", password=b"s3cret"
        )
    )
    r = run_openssl("pkcs12", "-in", p12, "-passin", "pass:s3cret", "-noenc")
    assert r.returncode == 0, r.stderr
    assert b"friendlyName: srv" in r.stdout
    assert load_certificates(r.stdout) == [chain.leaf, chain.intermediate]
    assert load_private_key(r.stdout).public_key() == chain.leaf_key.public_key()
    info = run_openssl("pkcs12", "-in", p12, "-passin", "pass:s3cret", "-info", "-noout")
    assert b"AES-256-CBC" in info.stderr and b"MAC: sha256" in info.stderr
    bad = run_openssl("pkcs12", "-in", p12, "-passin", "pass:nope", "-noout")
    assert bad.returncode != 0


@needs_openssl
@pytest.mark.parametrize("descert", [False, True])
def test_we_read_openssls(chain: Chain, tmp_path: Path, descert: bool) -> None:
    (tmp_path / "leaf.pem").write_bytes(chain.leaf.to_pem())
    (tmp_path / "leaf.key").write_bytes(chain.leaf_key.to_pem())
    (tmp_path / "ca.pem").write_bytes(chain.intermediate.to_pem() + chain.root.to_pem())
    p12 = tmp_path / "theirs.p12"
    args = ["-export", "-in", tmp_path / "leaf.pem", "-inkey", tmp_path / "leaf.key"]
    args += ["-certfile", tmp_path / "ca.pem", "-name", "from openssl", "-passout", "pass:pw"]
    if descert:  # certificates under the old PKCS#12 PBE with 3DES (RFC 7292 App. C)
        args.append("-descert")
    r = run_openssl("pkcs12", *args, "-out", p12)
    assert r.returncode == 0, r.stderr
    bundle = load_pkcs12(p12.read_bytes(), b"pw")
    assert bundle.friendly_name == "from openssl"
    assert bundle.identity().certificate_chain == (chain.leaf, chain.intermediate)


def test_not_pkcs12(chain: Chain) -> None:
    with pytest.raises(DecodeError, match="not a PKCS#12"):
        load_pkcs12(chain.leaf.to_der(), b"x")
    with pytest.raises(DecodeError):
        load_pkcs12(chain.leaf.to_pem())
    assert not is_pkcs12(chain.leaf.to_der())
    assert not is_pkcs12(generate_private_key("EC").to_der())


@FUZZ
@given(st.binary(max_size=300))
def test_garbage_is_a_typed_error(data: bytes) -> None:
    try:
        load_pkcs12(data, b"pw")
    except CryptoError:
        return
    raise AssertionError("random bytes loaded as PKCS#12")


_SAMPLE: list[bytes] = []


@FUZZ_SMALL
@given(st.data())
def test_mutated_file_is_a_typed_error(data: st.DataObject) -> None:
    if not _SAMPLE:
        c = build_chain()
        _SAMPLE.append(export_pkcs12(c.leaf_key, c.leaf, [c.intermediate], password=b"pw"))
    blob = bytearray(_SAMPLE[0])
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(1, len(blob)))
    try:
        bundle = load_pkcs12(bytes(blob[:cut]), b"pw")
    except CryptoError:
        return
    # A flip the MAC does not cover (outer framing) may still load: then it is whole.
    assert bundle.certificate is not None and bundle.private_key is not None
