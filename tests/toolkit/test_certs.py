"""Tests for :mod:`quicnet.crypto.certs` and :mod:`quicnet.crypto.identity`."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import ipaddress
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID
from hypothesis import example, given
from hypothesis import strategies as st
from toolkit_helpers import (
    DAY,
    FUZZ,
    FUZZ_SMALL,
    T0,
    UTC,
    build_chain,
    needs_openssl,
    pem_unwrap,
    pem_wrap,
    pyca_private,
    run_openssl,
)

from quicnet.crypto import (
    Certificate,
    CertificateError,
    CertificateRequest,
    ChainOrderError,
    CryptoError,
    DecodeError,
    InvalidSignatureError,
    NameMismatch,
    PrivateKey,
    UnsupportedAlgorithmError,
    check_chain_order,
    dev_identity,
    format_fingerprint,
    generate_private_key,
    issue_certificate,
    load_certificate,
    load_certificates,
    load_csr,
    make_ca,
    make_csr,
    self_signed_certificate,
    verify_chain,
)

SKEW = datetime.timedelta(minutes=5)


def now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


def ec_key(curve: str = "P-256") -> PrivateKey:
    return generate_private_key("EC", curve=curve)


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1, f"{old.hex()} occurs {data.count(old)} times"
    return data.replace(old, new)


@pytest.fixture(scope="module")
def ca_key() -> PrivateKey:
    return ec_key()


@pytest.fixture(scope="module")
def ca(ca_key: PrivateKey) -> Certificate:
    return make_ca(ca_key, "/O=Toolkit/CN=Toolkit Test CA")


# ------------------------------------------------------------------------------- make_ca


def test_make_ca_defaults() -> None:
    key = ec_key()
    before = now()
    ca = make_ca(key)
    after = now()
    assert ca.subject == "CN=quicnet development CA"
    assert ca.issuer == ca.subject
    assert ca.is_self_issued
    assert ca.is_ca
    assert ca.path_length is None
    assert ca.dns_names == [] and ca.ip_addresses == []
    assert ca.public_key() == key.public_key()
    assert ca.issued(ca)  # self-signed: its own key verifies it
    # notBefore backdated five minutes (second precision), ten years of validity.
    assert before - SKEW - datetime.timedelta(seconds=1) <= ca.not_before <= after - SKEW
    assert ca.not_after - ca.not_before == datetime.timedelta(days=3650)


@pytest.mark.parametrize("path_length", [0, 1, 5])
def test_make_ca_path_length(path_length: int) -> None:
    ca = make_ca(ec_key(), "/CN=pathlen CA", path_length=path_length, days=30)
    assert ca.is_ca
    assert ca.path_length == path_length
    assert f"pathlen:{path_length}" in ca.to_text()
    assert ca.not_after - ca.not_before == datetime.timedelta(days=30)


def test_make_ca_explicit_not_before() -> None:
    ca = make_ca(ec_key(), "/CN=dated", not_before=T0, days=10)
    assert ca.not_before == T0
    assert ca.not_after == T0 + 10 * DAY


@pytest.mark.parametrize("days", [0, -1])
def test_days_must_be_positive(days: int) -> None:
    with pytest.raises(CryptoError):
        make_ca(ec_key(), "/CN=x", days=days)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("/CN=example", "CN=example"),
        ("/O=Org/CN=example", "CN=example,O=Org"),
        ("/C=NL/O=Org/OU=Unit/CN=example", "CN=example,OU=Unit,O=Org,C=NL"),
        ("  /CN=spaced  ", "CN=spaced"),
        ("CN=only", "CN=only"),
    ],
)
def test_subject_forms(subject: str, expected: str) -> None:
    assert make_ca(ec_key(), subject).subject == expected


@pytest.mark.parametrize("subject", ["", "   ", "/", "CN", "/XX=foo", "/CN=", "/C=Netherlands"])
def test_bad_subjects_are_decode_errors(subject: str) -> None:
    with pytest.raises(DecodeError):
        make_ca(ec_key(), subject)


def test_rfc4514_subject_round_trips() -> None:
    cert = make_ca(ec_key(), "/O=Org/CN=example")
    assert cert.subject == "CN=example,O=Org"
    again = make_ca(ec_key(), cert.subject)
    assert again.subject == cert.subject
    assert again.subject == x509.Name.from_rfc4514_string(cert.subject).rfc4514_string()


# ------------------------------------------------------------------- self-signed certificates


def test_self_signed_leaf_with_names() -> None:
    key = generate_private_key("Ed25519")
    cert = self_signed_certificate(
        key,
        "/CN=www.example.com",
        names=["WWW.Example.COM.", "api.example.com", "192.0.2.1", "2001:DB8:0:0::1"],
        serial_number=4242,
    )
    assert cert.subject == cert.issuer == "CN=www.example.com"
    assert cert.dns_names == ["www.example.com", "api.example.com"]
    assert cert.ip_addresses == ["192.0.2.1", "2001:db8::1"]
    assert not cert.is_ca
    assert cert.path_length is None
    assert cert.serial_number == 4242
    assert cert.issued(cert)
    text = cert.to_text()
    for needle in (
        "CN=www.example.com",
        "DNS:www.example.com",
        "DNS:api.example.com",
        "IP Address:192.0.2.1",
        "IP Address:2001:db8::1",
        "CA:FALSE",
    ):
        assert needle in text


def test_path_length_is_dropped_for_non_ca() -> None:
    cert = self_signed_certificate(ec_key(), "/CN=x", is_ca=False, path_length=3)
    assert not cert.is_ca
    assert cert.path_length is None


@pytest.mark.parametrize("name", ["has space.example", "", "tab\tname"])
def test_bad_names_are_decode_errors(name: str) -> None:
    with pytest.raises(DecodeError):
        self_signed_certificate(ec_key(), "/CN=x", names=[name])


def test_random_serial_numbers() -> None:
    key = ec_key()
    serials = {self_signed_certificate(key, "/CN=x").serial_number for _ in range(8)}
    assert len(serials) == 8
    assert all(0 < s < 2**160 for s in serials)  # RFC 5280: positive, at most 20 octets


# ---------------------------------------------------------------- signature algorithms


SIGNATURE_ALGORITHMS = [
    ("Ed25519", {}, "ed25519"),
    ("Ed448", {}, "ed448"),
    ("EC", {"curve": "P-256"}, "ecdsa-with-SHA256"),
    ("EC", {"curve": "P-384"}, "ecdsa-with-SHA384"),
    ("EC", {"curve": "P-521"}, "ecdsa-with-SHA512"),
    ("RSA", {}, "sha256WithRSAEncryption"),
    ("ML-DSA-65", {}, "ML-DSA-65"),
]


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "expected"),
    SIGNATURE_ALGORITHMS,
    ids=[f"{a}-{k.get('curve', '')}".rstrip("-") for a, k, _ in SIGNATURE_ALGORITHMS],
)
def test_signature_algorithm_per_issuer_key(
    algorithm: str, kwargs: dict[str, str], expected: str, rsa_key: PrivateKey
) -> None:
    issuer_key = rsa_key if algorithm == "RSA" else generate_private_key(algorithm, **kwargs)
    root = make_ca(issuer_key, f"/CN={algorithm} root")
    assert root.signature_algorithm == expected
    # The subject key's type does not matter: the issuer's key decides the algorithm.
    leaf_key = generate_private_key("Ed25519")
    leaf = issue_certificate(make_csr(leaf_key, "/CN=leaf", names=["leaf.test"]), root, issuer_key)
    assert leaf.signature_algorithm == expected
    assert root.issued(leaf)
    assert not leaf.issued(root)
    assert verify_chain([leaf], [root], name="leaf.test") == [leaf, root]
    # And a CSR signed by this key type verifies.
    csr = make_csr(issuer_key, "/CN=csr", names=["csr.test"])
    csr.verify_signature()
    assert csr.public_key() == issuer_key.public_key()


# ----------------------------------------------------------------------- fingerprints


def test_fingerprints(ca: Certificate, ca_key: PrivateKey) -> None:
    der = ca.to_der()
    assert ca.fingerprint() == hashlib.sha256(der).digest()
    assert ca.fingerprint("sha1") == hashlib.sha1(der).digest()
    assert ca.fingerprint("sha512") == hashlib.sha512(der).digest()
    spki = ca_key.public_key().to_der()
    assert (
        ca.spki_fingerprint() == ca_key.public_key().fingerprint() == hashlib.sha256(spki).digest()
    )
    # A re-issued certificate for the same key: new certificate pin, same SPKI pin.
    again = make_ca(ca_key, "/O=Toolkit/CN=Toolkit Test CA")
    assert again.fingerprint() != ca.fingerprint()
    assert again.spki_fingerprint() == ca.spki_fingerprint()


def test_format_fingerprint() -> None:
    assert format_fingerprint(bytes([0x00, 0xAB, 0x0F])) == "00:AB:0F"
    assert format_fingerprint(b"") == ""


@needs_openssl
def test_fingerprint_matches_openssl(ca: Certificate, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.to_pem())
    result = run_openssl("x509", "-in", path, "-noout", "-fingerprint", "-sha256")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip().split("=", 1)[1] == format_fingerprint(ca.fingerprint())
    assert f"SHA256 Fingerprint={format_fingerprint(ca.fingerprint())}" in ca.to_text()


# ----------------------------------------------------------------------- encodings


def test_pem_der_round_trip(ca: Certificate) -> None:
    pem, der = ca.to_pem(), ca.to_der()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert pem_unwrap(pem) == der
    for loaded in (
        load_certificate(pem),
        load_certificate(der),
        Certificate.from_pem(pem),
        Certificate.from_der(der),
    ):
        assert loaded == ca
        assert hash(loaded) == hash(ca)
        assert loaded.to_der() == der
        assert loaded.subject == ca.subject
        assert loaded.serial_number == ca.serial_number
        assert loaded.not_before == ca.not_before and loaded.not_after == ca.not_after
    assert len({ca, load_certificate(pem)}) == 1
    assert f"{ca.serial_number:x}" in repr(ca)


def test_load_certificates_keeps_file_order() -> None:
    certs = [make_ca(ec_key(), f"/CN=cert {i}") for i in range(4)]
    bundle = b"# a bundle\n"
    for i, c in enumerate(certs):
        bundle += f"subject: cert {i}\n".encode() + c.to_pem() + b"\n"
    assert load_certificates(bundle) == certs
    reversed_bundle = b"".join(c.to_pem() for c in reversed(certs))
    assert load_certificates(reversed_bundle) == certs[::-1]
    assert load_certificate(reversed_bundle) == certs[-1]  # the first one in the file
    crlf = bundle.replace(b"\n", b"\r\n")
    assert load_certificates(crlf) == certs


def test_load_certificates_skips_other_blocks(ca: Certificate, ca_key: PrivateKey) -> None:
    data = ca_key.to_pem() + ca.to_pem() + ca_key.public_key().to_pem()
    assert load_certificates(data) == [ca]
    assert load_certificates(ca.to_der()) == [ca]


def test_no_certificate_is_a_decode_error(ca_key: PrivateKey) -> None:
    for data in (
        b"",
        ca_key.to_pem(),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ):
        with pytest.raises(DecodeError):
            load_certificates(data)
        with pytest.raises(DecodeError):
            load_certificate(data)


def test_trusted_certificate_block_loads(ca: Certificate) -> None:
    # What `openssl x509 -trustout -addtrust serverAuth` writes: the certificate, then its
    # X509_CERT_AUX (a SEQUENCE holding the trusted purposes: here id-kp-serverAuth).
    aux = bytes.fromhex("300c300a06082b06010505070301")
    assert load_certificates(pem_wrap("TRUSTED CERTIFICATE", ca.to_der() + aux)) == [ca]


def test_to_text(ca: Certificate) -> None:
    text = ca.to_text()
    assert text.startswith("Certificate:\n")
    assert "Subject: CN=Toolkit Test CA,O=Toolkit" in text
    assert "Issuer: CN=Toolkit Test CA,O=Toolkit" in text
    assert "CA:TRUE" in text
    assert "Certificate Sign" in text
    assert "EC P-256" in text
    assert format_fingerprint(ca.fingerprint()) in text


# -------------------------------------------------------------------------------- CSRs


def test_make_csr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = ec_key("P-384")
    csr = make_csr(
        key, "/O=Org/CN=svc", names=["svc.example", "10.0.0.1", "fe80::1", "Svc2.Example."]
    )
    assert csr.subject == "CN=svc,O=Org"
    assert csr.dns_names == ["svc.example", "svc2.example"]
    assert csr.ip_addresses == ["10.0.0.1", "fe80::1"]
    assert csr.public_key() == key.public_key()
    csr.verify_signature()
    assert csr.to_pem().startswith(b"-----BEGIN CERTIFICATE REQUEST-----\n")
    for data in (csr.to_pem(), csr.to_der(), b"junk\n" + csr.to_pem()):
        loaded = load_csr(data)
        assert loaded.to_der() == csr.to_der()
        assert loaded.subject == csr.subject
        loaded.verify_signature()
    text = csr.to_text()
    for needle in ("Certificate Request:", "CN=svc,O=Org", "DNS:svc.example", "IP Address:fe80::1"):
        assert needle in text


def test_csr_without_names_has_no_san() -> None:
    csr = make_csr(generate_private_key("Ed25519"), "/CN=bare")
    assert csr.dns_names == [] and csr.ip_addresses == []
    assert "X509v3 extensions" not in csr.to_text()


def test_csr_needs_a_signing_key() -> None:
    with pytest.raises(CryptoError):
        make_csr(generate_private_key("X25519"), "/CN=kem")


def _tampered_signature(csr: CertificateRequest) -> bytes:
    """Flip a bit of the last byte of the DER: inside the signature BIT STRING, still valid DER."""
    der = bytearray(csr.to_der())
    der[-1] ^= 0x01
    return bytes(der)


def test_csr_with_tampered_signature_is_refused(ca: Certificate, ca_key: PrivateKey) -> None:
    csr = make_csr(generate_private_key("Ed25519"), "/CN=victim", names=["victim.example"])
    bad_der = _tampered_signature(csr)
    for data in (bad_der, pem_wrap("CERTIFICATE REQUEST", bad_der)):
        bad = load_csr(data)  # still parses...
        assert bad.subject == "CN=victim"
        with pytest.raises(InvalidSignatureError):  # ...but the signature fails
            bad.verify_signature()
        with pytest.raises(InvalidSignatureError):
            issue_certificate(bad, ca, ca_key)


def test_csr_with_tampered_content_is_refused(ca: Certificate, ca_key: PrivateKey) -> None:
    csr = make_csr(ec_key(), "/CN=victim", names=["victim.example"])
    forged = load_csr(replace_once(csr.to_der(), b"victim.example", b"evilly.example"))
    assert forged.dns_names == ["evilly.example"]
    with pytest.raises(InvalidSignatureError):
        forged.verify_signature()
    with pytest.raises(InvalidSignatureError):
        issue_certificate(forged, ca, ca_key)


# ----------------------------------------------------------------------- issue_certificate


def test_issue_certificate_copies_csr(ca: Certificate, ca_key: PrivateKey) -> None:
    key = generate_private_key("Ed25519")
    csr = make_csr(key, "/O=Org/CN=server", names=["server.example", "192.0.2.10", "2001:db8::10"])
    before = now()
    leaf = issue_certificate(csr, ca, ca_key, days=30)
    after = now()
    assert leaf.subject == "CN=server,O=Org"
    assert leaf.issuer == ca.subject
    assert not leaf.is_self_issued
    assert leaf.dns_names == ["server.example"]
    assert leaf.ip_addresses == ["192.0.2.10", "2001:db8::10"]
    assert leaf.public_key() == key.public_key()
    assert not leaf.is_ca and leaf.path_length is None
    assert ca.issued(leaf) and not leaf.issued(leaf)
    assert before - SKEW - datetime.timedelta(seconds=1) <= leaf.not_before <= after - SKEW
    assert leaf.not_after - leaf.not_before == 30 * DAY
    assert leaf.serial_number != ca.serial_number


def test_issue_certificate_names_override_csr(ca: Certificate, ca_key: PrivateKey) -> None:
    csr = make_csr(ec_key(), "/CN=server", names=["asked.example", "10.9.9.9"])
    leaf = issue_certificate(csr, ca, ca_key, names=["granted.example", "::1"])
    assert leaf.dns_names == ["granted.example"]
    assert leaf.ip_addresses == ["::1"]
    bare = issue_certificate(csr, ca, ca_key, names=[])
    assert bare.dns_names == [] and bare.ip_addresses == []
    assert "Subject Alternative Name" not in bare.to_text()


def test_issue_intermediate(ca: Certificate, ca_key: PrivateKey) -> None:
    key = ec_key()
    inter = issue_certificate(
        make_csr(key, "/CN=Intermediate"), ca, ca_key, is_ca=True, path_length=0
    )
    assert inter.is_ca and inter.path_length == 0
    assert "CA:TRUE, pathlen:0" in inter.to_text()
    # The intermediate can issue in turn.
    leaf = issue_certificate(make_csr(ec_key(), "/CN=leaf", names=["l.example"]), inter, key)
    check_chain_order([leaf, inter, ca])


def test_issue_certificate_serial_numbers(ca: Certificate, ca_key: PrivateKey) -> None:
    csr = make_csr(ec_key(), "/CN=serial")
    assert issue_certificate(csr, ca, ca_key, serial_number=0xC0FFEE).serial_number == 0xC0FFEE
    serials = {issue_certificate(csr, ca, ca_key).serial_number for _ in range(6)}
    assert len(serials) == 6
    assert all(0 < s < 2**160 for s in serials)


def test_validity_clipped_to_issuer(ca_key: PrivateKey) -> None:
    short_ca = make_ca(ca_key, "/CN=short", not_before=T0, days=10)
    csr = make_csr(ec_key(), "/CN=leaf")
    clipped = issue_certificate(csr, short_ca, ca_key, not_before=T0 + DAY, days=365)
    assert clipped.not_before == T0 + DAY
    assert clipped.not_after == short_ca.not_after == T0 + 10 * DAY
    inside = issue_certificate(csr, short_ca, ca_key, not_before=T0 + DAY, days=3)
    assert inside.not_after == T0 + 4 * DAY


def test_issuing_from_an_expired_ca_is_a_crypto_error(ca_key: PrivateKey) -> None:
    expired = make_ca(ca_key, "/CN=expired", not_before=now() - 100 * DAY, days=10)
    with pytest.raises(CryptoError):
        issue_certificate(make_csr(ec_key(), "/CN=leaf"), expired, ca_key)


def test_issuer_key_must_match_issuer(ca: Certificate) -> None:
    csr = make_csr(ec_key(), "/CN=leaf")
    with pytest.raises(CryptoError, match="does not match"):
        issue_certificate(csr, ca, ec_key())


def test_non_ca_issuer_is_refused(ca: Certificate, ca_key: PrivateKey) -> None:
    leaf_key = ec_key()
    leaf = issue_certificate(make_csr(leaf_key, "/CN=leaf"), ca, ca_key)
    csr = make_csr(ec_key(), "/CN=grandchild")
    with pytest.raises(CryptoError, match="not a CA"):
        issue_certificate(csr, leaf, leaf_key)
    self_leaf_key = ec_key()
    self_leaf = self_signed_certificate(self_leaf_key, "/CN=self", is_ca=False)
    with pytest.raises(CryptoError, match="not a CA"):
        issue_certificate(csr, self_leaf, self_leaf_key)


def test_non_signing_key_cannot_make_a_ca_typed_error() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        make_ca(generate_private_key("X25519"), "/CN=kem")


# ------------------------------------------------------------------------ chain order


def test_check_chain_order() -> None:
    c = build_chain()
    check_chain_order([c.leaf, c.intermediate, c.root])
    check_chain_order([c.leaf, c.intermediate])
    check_chain_order([c.leaf])
    check_chain_order([])
    for bad in (
        [c.leaf, c.root, c.intermediate],
        [c.root, c.leaf],
        [c.intermediate, c.leaf],
        [c.leaf, c.root],
        [c.leaf, c.intermediate, c.intermediate],
    ):
        with pytest.raises(ChainOrderError):
            check_chain_order(bad)
    assert issubclass(ChainOrderError, CertificateError)


# ------------------------------------------------------------------------- bad input

# A fixed-layout certificate and CSR to fuzz (fixed serial numbers keep the offsets stable).
_FUZZ_CA_KEY = ec_key()
_FUZZ_CA = self_signed_certificate(
    _FUZZ_CA_KEY, "/O=Fuzz/CN=Fuzz CA", is_ca=True, not_before=T0, days=3650, serial_number=0x1234
)
_FUZZ_LEAF_KEY = ec_key()
_FUZZ_CSR = make_csr(
    _FUZZ_LEAF_KEY, "/CN=fuzz-leaf", names=["fuzz.example", "192.0.2.99", "2001:db8::99"]
)
_FUZZ_LEAF = issue_certificate(
    _FUZZ_CSR, _FUZZ_CA, _FUZZ_CA_KEY, not_before=T0, days=90, serial_number=0x5A5A5A
)
_CERT_DER = _FUZZ_LEAF.to_der()
_CSR_DER = _FUZZ_CSR.to_der()

# Offsets of the fields that trip the known bugs (used as explicit hypothesis examples).
_CERT_VERSION = _CERT_DER.index(b"\xa0\x03\x02\x01\x02") + 4  # v3 -> "v6"
_ID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
_CERT_SPKI_OID = _CERT_DER.index(_ID_EC_PUBLIC_KEY) + len(_ID_EC_PUBLIC_KEY) - 1
_CERT_SUBJECT_TAG = _CERT_DER.index(b"\x0c\x09fuzz-leaf")
_CERT_SKI_OID = _CERT_DER.index(b"\x06\x03\x55\x1d\x0e") + 4  # subjectKeyIdentifier -> keyUsage
_CERT_DNS_TAG = _CERT_DER.index(b"\x82\x0cfuzz.example")  # dNSName -> x400Address
_CERT_SERIAL = _CERT_DER.index(b"\x02\x03\x5a\x5a\x5a") + 2  # positive -> negative
_CSR_VERSION = _CSR_DER.index(b"\x02\x01\x00") + 2
_CSR_SPKI_OID = _CSR_DER.index(_ID_EC_PUBLIC_KEY) + len(_ID_EC_PUBLIC_KEY) - 1
_CSR_DNS_TAG = _CSR_DER.index(b"\x82\x0cfuzz.example")


def _set_byte(data: bytes, index: int, value: int) -> bytes:
    out = bytearray(data)
    out[index % len(out)] = value
    return bytes(out)


def _exercise_certificate(cert: Certificate) -> None:
    """Every accessor a caller may use on a certificate it just loaded."""
    cert.subject  # noqa: B018
    cert.issuer  # noqa: B018
    cert.dns_names  # noqa: B018
    cert.ip_addresses  # noqa: B018
    cert.is_ca  # noqa: B018
    cert.path_length  # noqa: B018
    cert.public_key()
    cert.spki_fingerprint()
    cert.to_text()


def _exercise_csr(csr: CertificateRequest) -> None:
    csr.subject  # noqa: B018
    csr.dns_names  # noqa: B018
    csr.ip_addresses  # noqa: B018
    csr.public_key()
    csr.to_text()
    with contextlib.suppress(InvalidSignatureError):
        csr.verify_signature()


def _only_crypto_errors(step, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        with warnings.catch_warnings():
            # pyca warns (and will later refuse) about e.g. negative serial numbers.
            warnings.simplefilter("ignore")
            step(*args)
    except CryptoError:
        pass
    except Exception as exc:  # pragma: no cover - what the tests look for
        pytest.fail(f"{type(exc).__module__}.{type(exc).__name__} escaped: {exc}")


def _load_and_use_certificates(data: bytes) -> None:
    for cert in load_certificates(data):
        _exercise_certificate(cert)
    _exercise_certificate(load_certificate(data))


def _load_and_use_csr(data: bytes) -> None:
    _exercise_csr(load_csr(data))


@FUZZ
@given(data=st.binary(max_size=800))
def test_random_bytes_raise_only_crypto_errors(data: bytes) -> None:
    _only_crypto_errors(_load_and_use_certificates, data)
    _only_crypto_errors(_load_and_use_csr, data)


@FUZZ
@given(
    label=st.sampled_from(
        ["CERTIFICATE", "TRUSTED CERTIFICATE", "CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]
    ),
    body=st.binary(max_size=600),
)
def test_random_pem_bodies_raise_only_crypto_errors(label: str, body: bytes) -> None:
    data = pem_wrap(label, body)
    _only_crypto_errors(_load_and_use_certificates, data)
    _only_crypto_errors(_load_and_use_csr, data)


def test_every_truncation_raises_decode_error() -> None:
    for data, loader in (
        (_CERT_DER, load_certificate),
        (_FUZZ_LEAF.to_pem(), load_certificate),
        (_CSR_DER, load_csr),
        (_FUZZ_CSR.to_pem(), load_csr),
    ):
        for n in range(len(data) - 1):
            with pytest.raises(CryptoError):
                loader(data[:n])
    with pytest.raises(CryptoError):
        load_certificates(_CERT_DER + b"\x00")  # trailing garbage after the DER


@FUZZ
@given(n=st.integers(0, len(_CERT_DER) - 1), pem=st.booleans())
def test_truncated_certificates_raise_only_crypto_errors(n: int, pem: bool) -> None:
    data = pem_wrap("CERTIFICATE", _CERT_DER[:n]) if pem else _CERT_DER[:n]
    with pytest.raises(CryptoError):
        load_certificates(data)
    with pytest.raises(CryptoError):
        load_csr(
            pem_wrap("CERTIFICATE REQUEST", _CSR_DER[: n % len(_CSR_DER)])
            if pem
            else _CSR_DER[: n % len(_CSR_DER)]
        )


_CORRUPTION_BUGS = (
    "BUG: certs.py:63-72 _check_parsable (run by Certificate()) does not catch "
    "x509.DuplicateExtension, which escapes load_certificate; text.py:126 certificate_text "
    "raises OverflowError on a negative serial"
)


@FUZZ
@example(index=_CERT_VERSION, value=0x05)
@example(index=_CERT_SPKI_OID, value=0x04)
@example(index=_CERT_SUBJECT_TAG, value=0x01)
@example(index=_CERT_SKI_OID, value=0x0F)
@example(index=_CERT_DNS_TAG, value=0xA3)
@example(index=_CERT_SERIAL, value=0xDA)
@given(index=st.integers(0, len(_CERT_DER) - 1), value=st.integers(0, 255))
def test_corrupted_certificates_raise_only_crypto_errors(index: int, value: int) -> None:
    der = _set_byte(_CERT_DER, index, value)
    _only_crypto_errors(_load_and_use_certificates, der)
    _only_crypto_errors(_load_and_use_certificates, pem_wrap("CERTIFICATE", der))


@FUZZ_SMALL
@example(index=_CSR_VERSION, value=0x05)
@example(index=_CSR_SPKI_OID, value=0x04)
@example(index=_CSR_DNS_TAG, value=0xA3)
@given(index=st.integers(0, len(_CSR_DER) - 1), value=st.integers(0, 255))
def test_corrupted_csrs_raise_only_crypto_errors(index: int, value: int) -> None:
    der = _set_byte(_CSR_DER, index, value)
    _only_crypto_errors(_load_and_use_csr, der)
    _only_crypto_errors(_load_and_use_csr, pem_wrap("CERTIFICATE REQUEST", der))


# One regression test per leak, each on a hand-made input. Loading and use happen inside the
# check, so either may be where the library reports the problem.


def test_unknown_certificate_version_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        load_certificate(_set_byte(_CERT_DER, _CERT_VERSION, 0x05))


def test_negative_serial_number_is_a_decode_error() -> None:
    # RFC 5280 §4.1.2.2: the serial is positive. pyca only warns today and will refuse
    # in a later release; quicnet refuses now, whichever release is installed.
    serial = _CERT_VERSION + 1  # the INTEGER after the version: tag, length, first byte
    assert _CERT_DER[serial] == 0x02
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks as a warning either
        with pytest.raises(DecodeError, match="serial"):
            load_certificate(_set_byte(_CERT_DER, serial + 2, 0x80))


def test_unknown_csr_version_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        load_csr(_set_byte(_CSR_DER, _CSR_VERSION, 0x05))


def test_certificate_with_unknown_key_algorithm() -> None:
    with pytest.raises(CryptoError):
        load_certificate(
            _set_byte(_CERT_DER, _CERT_SPKI_OID, 0x04)
        ).public_key()  # 1.2.840.10045.2.4


def test_csr_with_unknown_key_algorithm() -> None:
    with pytest.raises(CryptoError):
        load_csr(_set_byte(_CSR_DER, _CSR_SPKI_OID, 0x04)).public_key()


def test_certificate_with_malformed_subject() -> None:
    with pytest.raises(CryptoError):
        load_certificate(_set_byte(_CERT_DER, _CERT_SUBJECT_TAG, 0x01)).subject  # noqa: B018


def test_certificate_with_duplicate_extension() -> None:
    # RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
    with pytest.raises(CryptoError):
        load_certificate(_set_byte(_CERT_DER, _CERT_SKI_OID, 0x0F)).is_ca  # noqa: B018


def _der_with_raw_san(san_value: bytes) -> bytes:
    """A certificate (DER) whose subjectAltName extension holds ``san_value`` verbatim."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=odd names"))
        .issuer_name(x509.Name.from_rfc4514_string("CN=Fuzz CA,O=Fuzz"))
        .public_key(pyca_private(_FUZZ_LEAF_KEY).public_key())  # type: ignore[attr-defined]
        .serial_number(77)
        .not_valid_before(T0)
        .not_valid_after(T0 + 30 * DAY)
        .add_extension(
            x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san_value),
            critical=False,
        )
    )
    cert = builder.sign(pyca_private(_FUZZ_CA_KEY), hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.DER)


def test_certificate_with_x400_address_name() -> None:
    # x400Address is a legal GeneralName pyca cannot represent: refusing it is fine, leaking
    # pyca's UnsupportedGeneralNameType is not.
    der = _der_with_raw_san(bytes.fromhex("3002a300"))  # GeneralNames { x400Address {} }
    with contextlib.suppress(CryptoError):
        cert = load_certificate(der)
        assert cert.dns_names == []
        assert not cert.is_ca
        assert cert.to_text()


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_to_text_with_negative_serial() -> None:
    # RFC 5280 forbids it, so refusing the certificate is fine; crashing in to_text is not.
    der = replace_once(_CERT_DER, b"\x02\x03\x5a\x5a\x5a", b"\x02\x03\xda\x5a\x5a")
    with contextlib.suppress(CryptoError):
        cert = load_certificate(der)
        assert cert.serial_number < 0
        assert "Certificate:" in cert.to_text()


def test_csr_with_x400_address_name() -> None:
    der = _set_byte(_CSR_DER, _CSR_DNS_TAG, 0xA3)
    with contextlib.suppress(CryptoError):
        csr = load_csr(der)
        assert csr.dns_names == []


def test_valid_san_built_raw_is_read() -> None:
    """Control for the raw-SAN helper above: a well-formed value reads back."""
    value = x509.SubjectAlternativeName(
        [x509.DNSName("raw.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.5"))]
    ).public_bytes()
    cert = load_certificate(_der_with_raw_san(value))
    assert cert.dns_names == ["raw.example"]
    assert cert.ip_addresses == ["192.0.2.5"]
    assert _FUZZ_CA.issued(cert)


# ------------------------------------------------------------------------- dev identity


def test_dev_identity_defaults() -> None:
    ident = dev_identity()
    leaf = ident.certificate
    assert ident.certificate_chain == (leaf,)
    assert leaf.subject == "CN=localhost"
    assert leaf.dns_names == ["localhost"]
    assert leaf.ip_addresses == ["127.0.0.1", "::1"]
    assert not leaf.is_ca
    assert ident.trust_root.is_ca and ident.trust_root.path_length == 0
    assert ident.trust_root.issued(leaf)
    assert ident.private_key.description == "EC P-256"
    assert leaf.public_key() == ident.private_key.public_key()
    assert ident.fingerprint == leaf.fingerprint() == hashlib.sha256(leaf.to_der()).digest()
    assert ident.spki_fingerprint == ident.private_key.public_key().fingerprint()
    assert ident.fingerprint_text == format_fingerprint(ident.fingerprint)
    assert leaf.not_after - leaf.not_before == 30 * DAY
    for name in ("localhost", "LOCALHOST", "127.0.0.1", "::1", "[::1]", "0:0:0:0:0:0:0:1"):
        path = verify_chain(list(ident.certificate_chain), [ident.trust_root], name=name)
        assert path == [leaf, ident.trust_root]
    for name in ("example.com", "127.0.0.2", "::2"):
        with pytest.raises(NameMismatch):
            verify_chain(list(ident.certificate_chain), [ident.trust_root], name=name)


def test_dev_identity_custom_names_and_time() -> None:
    ident = dev_identity(["game.test", "*.rooms.game.test", "10.1.2.3"], days=2, not_before=T0)
    leaf = ident.certificate
    assert leaf.subject == "CN=game.test"
    assert leaf.dns_names == ["game.test", "*.rooms.game.test"]
    assert leaf.ip_addresses == ["10.1.2.3"]
    assert leaf.not_before == T0 and leaf.not_after == T0 + 2 * DAY
    at = T0 + DAY
    for name in ("game.test", "lobby.rooms.game.test", "10.1.2.3"):
        assert verify_chain([leaf], [ident.trust_root], name=name, at=at) == [
            leaf,
            ident.trust_root,
        ]
    for name in ("localhost", "127.0.0.1", "rooms.game.test"):
        with pytest.raises(NameMismatch):
            verify_chain([leaf], [ident.trust_root], name=name, at=at)


def test_dev_identities_are_independent() -> None:
    a, b = dev_identity(), dev_identity()
    assert a.fingerprint != b.fingerprint
    assert a.spki_fingerprint != b.spki_fingerprint
    with pytest.raises(CertificateError):
        verify_chain([a.certificate], [b.trust_root], name="localhost")
