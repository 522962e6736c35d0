"""CRLs (RFC 5280 §5) and their check in path validation (§6.3), against ``openssl`` too."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toolkit_helpers import (
    DAY,
    FUZZ,
    T0,
    Chain,
    build_chain,
    needs_openssl,
    new_key,
    pyca_private,
    run_openssl,
)

from quicnet.crypto import (
    BadCRLSignature,
    Certificate,
    CertificateRevocationList,
    CertificateRevoked,
    CRLExpired,
    CRLNotYetValid,
    CryptoError,
    DecodeError,
    Revocation,
    RevocationReason,
    RevocationUnknown,
    issue_certificate,
    load_crl,
    load_crls,
    make_ca,
    make_crl,
    make_csr,
    verify_chain,
)

AT = T0 + 10 * DAY  # inside every certificate's validity


def crl_for(
    issuer_cert, issuer_key, *revoked: Revocation, number: int = 1, start=T0 + DAY, days=30
) -> CertificateRevocationList:
    return make_crl(
        issuer_cert, issuer_key, revoked, crl_number=number, this_update=start, days=days
    )


def revoke(cert, reason: RevocationReason | None = RevocationReason.keyCompromise) -> Revocation:
    return Revocation(cert.serial_number, T0 + DAY, reason)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


def test_round_trip_pem_and_der(chain: Chain) -> None:
    entries = [
        revoke(chain.leaf, RevocationReason.superseded),
        Revocation(12345, T0, None),
        Revocation(777, T0 + DAY, RevocationReason.certificateHold),
    ]
    crl = crl_for(chain.intermediate, chain.intermediate_key, *entries, number=7)
    for data in (crl.to_pem(), crl.to_der()):
        back = load_crl(data)
        assert back == crl
        assert back.issuer == chain.intermediate.subject
        assert back.crl_number == 7
        assert back.this_update == T0 + DAY and back.next_update == T0 + 31 * DAY
        assert back.revocations == entries
        assert back.revocation_for(chain.leaf.serial_number) == entries[0]
        assert back.revocation_for(chain.root.serial_number) is None
        assert back.is_signed_by(chain.intermediate)
        assert not back.is_signed_by(chain.root)
    # A bundle holds several, in order; certificates around them are skipped.
    other = crl_for(chain.root, chain.root_key, number=2)
    bundle = chain.leaf.to_pem() + crl.to_pem() + other.to_pem()
    assert load_crls(bundle) == [crl, other]


def test_unspecified_reason_is_left_out(chain: Chain) -> None:
    """RFC 5280 §5.3.1: no reasonCode extension rather than unspecified (0)."""
    crl = crl_for(
        chain.root, chain.root_key, revoke(chain.intermediate, RevocationReason.unspecified)
    )
    assert crl.revocations[0].reason is None


def test_make_crl_refuses_mismatched_key_and_non_ca(chain: Chain) -> None:
    with pytest.raises(CryptoError, match="does not match"):
        crl_for(chain.root, chain.intermediate_key)
    with pytest.raises(CryptoError, match="not a CA"):
        crl_for(chain.leaf, chain.leaf_key)
    with pytest.raises(CryptoError, match="nextUpdate"):
        make_crl(
            chain.root,
            chain.root_key,
            [],
            crl_number=1,
            this_update=T0,
            next_update=T0 - DAY,
        )


def test_revoked_leaf_names_serial_and_reason(chain: Chain) -> None:
    crl = crl_for(chain.intermediate, chain.intermediate_key, revoke(chain.leaf))
    with pytest.raises(CertificateRevoked) as info:
        verify_chain(chain.presented, [chain.root], at=AT, crls=[crl])
    err = info.value
    assert err.alert == 44  # certificate_revoked
    assert err.serial_number == chain.leaf.serial_number
    assert err.reason is RevocationReason.keyCompromise
    assert f"{chain.leaf.serial_number:X}" in str(err) and "keyCompromise" in str(err)


def test_revoked_intermediate(chain: Chain) -> None:
    leaf_crl = crl_for(chain.intermediate, chain.intermediate_key)
    root_crl = crl_for(
        chain.root, chain.root_key, revoke(chain.intermediate, RevocationReason.CACompromise)
    )
    # The leaf's own CRL is clean; its issuer was revoked by the root.
    for check in ("leaf", "chain", "none"):
        with pytest.raises(CertificateRevoked, match="CACompromise") as info:
            verify_chain(
                chain.presented,
                [chain.root],
                at=AT,
                crls=[leaf_crl, root_crl],
                revocation_check=check,
            )
        assert info.value.serial_number == chain.intermediate.serial_number
    # Without the root's CRL only -crl_check_all notices that nothing covers the intermediate.
    assert verify_chain(chain.presented, [chain.root], at=AT, crls=[leaf_crl])[0] == chain.leaf
    with pytest.raises(RevocationUnknown, match="Intermediate"):
        verify_chain(
            chain.presented, [chain.root], at=AT, crls=[leaf_crl], revocation_check="chain"
        )


def test_clean_crls_pass(chain: Chain) -> None:
    crls = [
        crl_for(chain.intermediate, chain.intermediate_key, Revocation(1, T0, None)),
        crl_for(chain.root, chain.root_key),
    ]
    path = verify_chain(chain.presented, [chain.root], at=AT, crls=crls, revocation_check="chain")
    assert path == [chain.leaf, chain.intermediate, chain.root]


def test_required_check_without_crl_fails_closed(chain: Chain) -> None:
    with pytest.raises(RevocationUnknown, match="no CRL") as info:
        verify_chain(chain.presented, [chain.root], at=AT, revocation_check="leaf")
    assert info.value.alert == 46  # certificate_unknown
    # A CRL of another issuer does not cover the leaf.
    with pytest.raises(RevocationUnknown):
        verify_chain(
            chain.presented, [chain.root], at=AT, crls=[crl_for(chain.root, chain.root_key)]
        )


def test_expired_crl_fails_closed(chain: Chain) -> None:
    crl = crl_for(chain.intermediate, chain.intermediate_key, days=5)
    with pytest.raises(CRLExpired, match="expired") as info:
        verify_chain(chain.presented, [chain.root], at=AT, crls=[crl])
    assert isinstance(info.value, RevocationUnknown) and info.value.alert == 46
    # Not required: an expired CRL says nothing, and nothing else is wrong.
    assert verify_chain(chain.presented, [chain.root], at=AT, crls=[crl], revocation_check="none")
    # A current one beside it is used.
    fresh = crl_for(chain.intermediate, chain.intermediate_key, number=2, start=AT - DAY)
    assert verify_chain(chain.presented, [chain.root], at=AT, crls=[crl, fresh])


def test_future_crl_fails_closed(chain: Chain) -> None:
    crl = crl_for(chain.intermediate, chain.intermediate_key, start=AT + DAY)
    with pytest.raises(CRLNotYetValid):
        verify_chain(chain.presented, [chain.root], at=AT, crls=[crl])


def test_crl_signed_by_the_wrong_key_fails_closed(chain: Chain) -> None:
    # Same issuer name, another key: a forger's CRL must not count, even when it lists nothing.
    impostor_key = new_key()
    impostor = make_ca(impostor_key, "/O=Toolkit Tests/CN=Intermediate", not_before=T0)
    assert impostor.subject_name == chain.intermediate.subject_name
    forged = crl_for(impostor, impostor_key)
    with pytest.raises(BadCRLSignature, match="does not verify"):
        verify_chain(chain.presented, [chain.root], at=AT, crls=[forged])


def test_newest_crl_wins_hold_released(chain: Chain) -> None:
    held = crl_for(
        chain.intermediate,
        chain.intermediate_key,
        revoke(chain.leaf, RevocationReason.certificateHold),
        number=1,
    )
    with pytest.raises(CertificateRevoked, match="certificateHold"):
        verify_chain(chain.presented, [chain.root], at=AT, crls=[held])
    released = crl_for(chain.intermediate, chain.intermediate_key, number=2, start=T0 + 2 * DAY)
    assert verify_chain(chain.presented, [chain.root], at=AT, crls=[held, released])


def test_critical_unknown_extension_makes_crl_unusable(chain: Chain) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(chain.intermediate.subject_name)
        .last_update(T0)
        .next_update(T0 + 30 * DAY)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
            critical=True,
        )
    )
    crl = CertificateRevocationList(
        builder.sign(pyca_private(chain.intermediate_key), hashes.SHA256())
    )
    assert crl.unprocessed_critical_extension() == "1.3.6.1.4.1.55555.1"
    with pytest.raises(RevocationUnknown, match="critical extension"):
        verify_chain(chain.presented, [chain.root], at=AT, crls=[crl])


@needs_openssl
def test_openssl_honours_our_crl(tmp_path: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    c = build_chain(start=now - DAY, prefix="now ")
    crl = make_crl(
        c.intermediate,
        c.intermediate_key,
        [Revocation(c.leaf.serial_number, now - DAY, RevocationReason.keyCompromise)],
        crl_number=1,
    )
    root_crl = make_crl(c.root, c.root_key, [], crl_number=1)
    (tmp_path / "root.pem").write_bytes(c.root.to_pem())
    (tmp_path / "int.pem").write_bytes(c.intermediate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(c.leaf.to_pem())
    (tmp_path / "crl.pem").write_bytes(crl.to_pem() + root_crl.to_pem())
    args = ["-CAfile", tmp_path / "root.pem", "-untrusted", tmp_path / "int.pem"]
    r = run_openssl(
        "verify", "-crl_check_all", "-CRLfile", tmp_path / "crl.pem", *args, tmp_path / "leaf.pem"
    )
    assert r.returncode != 0
    assert b"error 23" in r.stdout + r.stderr and b"certificate revoked" in r.stdout + r.stderr
    text = run_openssl("crl", "-in", tmp_path / "crl.pem", "-noout", "-text").stdout.decode()
    serials = [int(v, 16) for v in re.findall(r"Serial Number: ([0-9A-F]+)", text)]
    assert serials == [c.leaf.serial_number]
    assert "Key Compromise" in text and "CRL Number" in text
    # The intermediate itself is fine per the root's CRL.
    r = run_openssl(
        "verify", "-crl_check_all", "-CRLfile", tmp_path / "crl.pem", *args, tmp_path / "int.pem"
    )
    assert r.returncode == 0, r.stdout + r.stderr


@needs_openssl
def test_we_honour_an_openssl_crl(tmp_path: Path) -> None:
    """``openssl ca -gencrl`` needs a database; ``openssl crl`` re-encodes ours as DER."""
    now = datetime.datetime.now(datetime.UTC)
    c = build_chain(start=now - DAY, prefix="ossl ")
    crl = make_crl(
        c.intermediate,
        c.intermediate_key,
        [Revocation(c.leaf.serial_number, now, None)],
        crl_number=3,
    )
    (tmp_path / "crl.pem").write_bytes(crl.to_pem())
    der = run_openssl("crl", "-in", tmp_path / "crl.pem", "-outform", "DER").stdout
    back = load_crl(der)
    assert back.crl_number == 3 and back.revocations[0].serial_number == c.leaf.serial_number
    with pytest.raises(CertificateRevoked, match="no reason given"):
        verify_chain(c.presented, [c.root], crls=[back])


@FUZZ
@given(st.binary(max_size=400))
def test_garbage_is_a_decode_error(data: bytes) -> None:
    try:
        crls = load_crls(data)
    except DecodeError:
        return
    assert all(isinstance(c, CertificateRevocationList) for c in crls)


_SAMPLE: list[bytes] = []


def _sample_der() -> bytes:
    if not _SAMPLE:
        c = build_chain()
        crl = crl_for(c.intermediate, c.intermediate_key, revoke(c.leaf), Revocation(5, T0, None))
        _SAMPLE.append(crl.to_der())
    return _SAMPLE[0]


@FUZZ
@given(st.data())
def test_mutated_crl_is_a_decode_error_or_a_crl(data: st.DataObject) -> None:
    der = bytearray(_sample_der())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(der) - 1))
        der[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(der)))
    try:
        crl = load_crl(bytes(der[:cut]))
    except DecodeError:
        return
    # Whatever parsed is fully usable: every property answers without a stray exception,
    # and it encodes back to itself.
    assert load_crl(crl.to_der()) == crl
    crl.unprocessed_critical_extension()
    for entry in crl.revocations:
        assert crl.revocation_for(entry.serial_number) is not None


def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    size = bytes([n]) if n < 0x80 else bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + size + body


def _der_elements(der: bytes) -> list[bytes]:
    """The TLVs inside one constructed DER element (lengths up to 2 bytes)."""

    def split(data: bytes) -> tuple[bytes, bytes]:
        n = data[1]
        head = 2
        if n & 0x80:
            head = 2 + (n & 0x7F)
            n = int.from_bytes(data[2:head], "big")
        return data[: head + n], data[head + n :]

    inner, _ = split(der)
    n = inner[1]
    body = inner[2 + (n & 0x7F if n & 0x80 else 0) :]
    out = []
    while body:
        item, body = split(body)
        out.append(item)
    return out


def _crl_without_next_update(chain: Chain) -> CertificateRevocationList:
    """pyca insists on nextUpdate, so drop it from the TBS by hand and sign again."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    made = crl_for(chain.intermediate, chain.intermediate_key)
    outer = _der_elements(made.to_der())  # tbsCertList, signatureAlgorithm, signatureValue
    tbs = _der_elements(outer[0])  # version, signature, issuer, thisUpdate, nextUpdate, [0] exts
    assert tbs[4][0] in (0x17, 0x18)  # a Time: the nextUpdate
    new_tbs = _der(0x30, b"".join(tbs[:4] + tbs[5:]))
    signature = pyca_private(chain.intermediate_key).sign(new_tbs, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
    return load_crl(_der(0x30, new_tbs + outer[1] + _der(0x03, b"\x00" + signature)))


def test_crl_without_next_update_never_counts(chain: Chain) -> None:
    """RFC 5280 §5.1.2.5 requires nextUpdate; without one a CRL could be replayed forever."""
    crl = _crl_without_next_update(chain)
    assert crl.next_update is None and crl.is_signed_by(chain.intermediate)
    with pytest.raises(RevocationUnknown, match="no nextUpdate"):
        verify_chain(chain.presented, [chain.root], at=AT, crls=[crl])


def test_issuer_without_crl_sign_cannot_revoke(chain: Chain) -> None:
    """§6.3.3 (f): a CA whose keyUsage lacks cRLSign issues no valid CRL."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = new_key()
    name = x509.Name.from_rfc4514_string("CN=No CRL Sign CA")
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    public = pyca_private(key).public_key()  # type: ignore[attr-defined]
    ca_cert = Certificate(
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + 365 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(pyca_private(key), hashes.SHA256())
    )
    leaf_key = new_key()
    leaf = issue_certificate(
        make_csr(leaf_key, "/CN=l", names=["l.test"]), ca_cert, key, not_before=T0
    )
    crl = crl_for(ca_cert, key)
    assert crl.is_signed_by(ca_cert)
    with pytest.raises(RevocationUnknown, match="cRLSign"):
        verify_chain([leaf], [ca_cert], at=AT, crls=[crl])
