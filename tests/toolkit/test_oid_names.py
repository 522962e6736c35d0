"""OID names in the ``-text`` dumps, and the accessors the toolkit's modules share.

pyca keeps its OID names private, so :mod:`quicnet.crypto.oids` holds the
names the toolkit prints; these tests pin them to what OpenSSL prints (up to
the case of the Edwards curves) and
check that an OID outside the table is shown dotted.
"""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID
from toolkit_helpers import needs_openssl, run_openssl

from quicnet.crypto import Certificate, PrivateKey, generate_private_key, make_ca
from quicnet.crypto.oids import oid_name

_UNKNOWN = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1.2")


def test_known_oids_have_openssl_short_names() -> None:
    assert oid_name(SignatureAlgorithmOID.RSA_WITH_SHA256) == "sha256WithRSAEncryption"
    assert oid_name(SignatureAlgorithmOID.ECDSA_WITH_SHA384) == "ecdsa-with-SHA384"
    assert oid_name(SignatureAlgorithmOID.ED25519) == "ed25519"
    assert oid_name(ExtensionOID.SUBJECT_ALTERNATIVE_NAME) == "subjectAltName"
    assert oid_name(ExtensionOID.BASIC_CONSTRAINTS) == "basicConstraints"
    assert oid_name(ExtendedKeyUsageOID.SERVER_AUTH) == "serverAuth"
    assert oid_name(ExtendedKeyUsageOID.OCSP_SIGNING) == "OCSPSigning"


def test_unknown_oid_is_dotted() -> None:
    assert oid_name(_UNKNOWN) == "1.3.6.1.4.1.55555.1.2"
    # pyca has a constant for anyExtendedKeyUsage but no name: dotted too.
    assert oid_name(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE) == "2.5.29.37.0"


def _cert_with(key: PrivateKey, *extensions: x509.ExtensionType) -> Certificate:
    """A self-signed certificate carrying ``extensions`` (built with pyca, not the toolkit)."""
    pyca_key = key.to_cryptography()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "oids")])
    start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key().to_cryptography())
        .serial_number(7)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=1))
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return Certificate(builder.sign(pyca_key, hashes.SHA256()))  # type: ignore[arg-type]


def test_text_names_extensions_and_usages_and_dots_the_rest() -> None:
    key = generate_private_key("EC")
    cert = _cert_with(
        key,
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, _UNKNOWN]),
        x509.UnrecognizedExtension(_UNKNOWN, b"\x05\x00"),
    )
    lines = [line.strip() for line in cert.to_text().splitlines()]
    assert "extendedKeyUsage:" in lines
    assert "clientAuth, 1.3.6.1.4.1.55555.1.2" in lines
    assert "1.3.6.1.4.1.55555.1.2:" in lines
    assert "Signature Algorithm: ecdsa-with-SHA256" in lines


@needs_openssl
@pytest.mark.parametrize("algorithm", ["EC", "RSA", "Ed25519", "Ed448"])
def test_signature_algorithm_name_is_openssls(algorithm: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert = make_ca(generate_private_key(algorithm), "/CN=names")
    path = tmp_path / "c.pem"
    path.write_bytes(cert.to_pem())
    result = run_openssl("x509", "-in", path, "-noout", "-text")
    assert result.returncode == 0, result.stderr
    expected = f"Signature Algorithm: {cert.signature_algorithm}\n"
    printed = result.stdout.decode()
    if algorithm.startswith("Ed"):  # OpenSSL spells these ED25519/ED448, the toolkit lowercase
        expected, printed = expected.lower(), printed.lower()
    assert expected in printed


def test_accessors_give_the_extension_and_the_names() -> None:
    key = generate_private_key("Ed25519")
    ca = make_ca(key, "/CN=accessors")
    bc = ca.extension(x509.BasicConstraints)
    assert bc is not None and bc.ca
    assert ca.extension(x509.NameConstraints) is None
    assert ca.subject_name == ca.issuer_name
    assert ca.subject_name.rfc4514_string() == ca.subject == "CN=accessors"
    assert ca.to_cryptography().serial_number == ca.serial_number
    assert key.to_cryptography().public_key() == key.public_key().to_cryptography()
