"""Tests for :class:`quicnet.crypto.devca.DevCA`, the on-disk development CA."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
from toolkit_helpers import (
    DAY,
    FIXED_ENCRYPTED_KEY,
    FIXED_KEY_PASSPHRASE,
    WRONG_PASSPHRASE_REJECTED_BY_PADDING,
    needs_openssl,
    run_openssl,
)

from quicnet.crypto import (
    CryptoError,
    PassphraseError,
    generate_private_key,
    issue_certificate,
    load_certificate,
    load_private_key,
    make_csr,
    verify_chain,
)
from quicnet.crypto.devca import DevCA, IssuedCertificate
from quicnet.crypto.names import parse_name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def index_lines(ca: DevCA) -> list[list[str]]:
    text = (ca.directory / "index.txt").read_text()
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture
def ca(tmp_path: Path) -> DevCA:
    return DevCA.init(tmp_path / "ca", "/O=Toolkit/CN=Toolkit Dev CA")


def test_init_layout(tmp_path: Path) -> None:
    root = tmp_path / "nested" / "ca"
    ca = DevCA.init(root, "/O=Toolkit/CN=Toolkit Dev CA", days=100)
    assert ca.directory == root
    cert = ca.certificate
    assert cert.subject == "CN=Toolkit Dev CA,O=Toolkit"
    assert cert.is_ca and cert.is_self_issued
    assert cert.not_after - cert.not_before == 100 * DAY
    assert load_certificate((root / "ca.pem").read_bytes()) == cert
    key_path = root / "private" / "ca.key"
    assert mode(key_path) == 0o600
    assert mode(root / "private") & 0o077 == 0
    key_pem = key_path.read_bytes()
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_private_key(key_pem).public_key() == cert.public_key()
    assert int((root / "serial").read_text().strip(), 16) > 0
    assert (root / "index.txt").read_text() == ""
    assert (root / "certs").is_dir()
    assert ca.issued() == []
    # Re-opening the directory finds the same CA.
    assert DevCA(root).certificate == cert


def test_init_with_given_key(tmp_path: Path) -> None:
    key = generate_private_key("Ed25519")
    ca = DevCA.init(tmp_path / "ca", key=key)
    assert ca.certificate.public_key() == key.public_key()
    assert ca.certificate.subject == "CN=quicnet development CA"
    assert ca.certificate.signature_algorithm == "ed25519"


def test_issue_round_trip(ca: DevCA) -> None:
    first_serial = int((ca.directory / "serial").read_text(), 16)
    issued = [
        ca.issue(f"/O=Toolkit/CN=host{i}.test", names=[f"host{i}.test", f"10.0.0.{i}"], days=30)
        for i in range(4)
    ]
    serials = [i.serial_number for i in issued]
    assert serials == list(range(first_serial, first_serial + 4))
    assert int((ca.directory / "serial").read_text(), 16) == first_serial + 4

    for n, entry in enumerate(issued):
        assert isinstance(entry, IssuedCertificate)
        assert entry.certificate_path == ca.directory / "certs" / f"{entry.serial_number:X}.pem"
        cert = load_certificate(entry.certificate_path.read_bytes())
        assert cert.serial_number == entry.serial_number
        assert cert.subject == entry.subject == f"CN=host{n}.test,O=Toolkit"
        assert cert.not_after == entry.not_after
        assert cert.not_after - cert.not_before == 30 * DAY
        assert cert.issuer == ca.certificate.subject
        assert not cert.is_ca
        assert cert.dns_names == [f"host{n}.test"] and cert.ip_addresses == [f"10.0.0.{n}"]
        # The CA made the subject's key too: private, and matching the certificate.
        assert entry.key_path == ca.directory / "private" / f"{entry.serial_number:X}.key"
        assert mode(entry.key_path) == 0o600
        assert load_private_key(entry.key_path.read_bytes()).public_key() == cert.public_key()
        path = verify_chain([cert], [ca.certificate], name=f"host{n}.test")
        assert path == [cert, ca.certificate]
        assert verify_chain([cert], [ca.certificate], name=f"10.0.0.{n}") == path

    lines = index_lines(ca)
    assert len(lines) == 4
    for fields, entry in zip(lines, issued, strict=True):
        assert len(fields) == 6
        status, expiry, revoked, serial, filename, _subject = fields
        assert status == "V"
        assert expiry == entry.not_after.strftime("%y%m%d%H%M%S") + "Z"
        assert revoked == ""
        assert int(serial, 16) == entry.serial_number
        assert filename == "unknown"

    assert ca.issued() == issued
    # A fresh DevCA over the same directory sees the same history.
    assert DevCA(ca.directory).issued() == issued


@needs_openssl
def test_openssl_verifies_issued_certificates(ca: DevCA) -> None:
    entries = [ca.issue("/CN=a.test", names=["a.test"]), ca.issue("/CN=b.test", names=["b.test"])]
    result = run_openssl(
        "verify",
        "-CAfile",
        ca.directory / "ca.pem",
        "-purpose",
        "sslserver",
        *[e.certificate_path for e in entries],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(b": OK") == 2
    # And openssl reads the serial the way the index records it.
    out = run_openssl("x509", "-in", entries[0].certificate_path, "-noout", "-serial")
    assert out.stdout.decode().strip() == f"serial={entries[0].serial_number:X}"


def test_issue_from_csr_writes_no_key(ca: DevCA) -> None:
    key = generate_private_key("EC", curve="P-384")
    csr = make_csr(key, "/CN=from-csr.test", names=["from-csr.test", "::1"])
    before = sorted(p.name for p in (ca.directory / "private").iterdir())
    entry = ca.issue(csr=csr)
    assert entry.key_path is None
    assert sorted(p.name for p in (ca.directory / "private").iterdir()) == before
    cert = load_certificate(entry.certificate_path.read_bytes())
    assert cert.public_key() == key.public_key()
    assert cert.subject == "CN=from-csr.test"
    assert cert.dns_names == ["from-csr.test"] and cert.ip_addresses == ["::1"]
    assert verify_chain([cert], [ca.certificate], name="::1") == [cert, ca.certificate]
    # names= overrides the CSR's.
    other = load_certificate(
        ca.issue(csr=csr, names=["granted.test"]).certificate_path.read_bytes()
    )
    assert other.dns_names == ["granted.test"] and other.ip_addresses == []
    assert [e.key_path for e in ca.issued()] == [None, None]


def test_issue_intermediate_ca(ca: DevCA) -> None:
    entry = ca.issue("/CN=Sub CA", is_ca=True)
    sub = load_certificate(entry.certificate_path.read_bytes())
    assert sub.is_ca
    assert entry.key_path is not None
    sub_key = load_private_key(entry.key_path.read_bytes())
    leaf = issue_certificate(
        make_csr(generate_private_key("Ed25519"), "/CN=l", names=["l.test"]), sub, sub_key
    )
    assert verify_chain([leaf, sub], [ca.certificate], name="l.test") == [leaf, sub, ca.certificate]


@pytest.mark.parametrize(
    ("algorithm", "description"), [("Ed25519", "Ed25519"), ("ML-DSA-44", "ML-DSA-44")]
)
def test_issue_key_algorithm(ca: DevCA, algorithm: str, description: str) -> None:
    entry = ca.issue("/CN=k.test", names=["k.test"], key_algorithm=algorithm)
    assert entry.key_path is not None
    assert load_private_key(entry.key_path.read_bytes()).description == description


def test_issue_needs_subject_or_csr(ca: DevCA) -> None:
    with pytest.raises(CryptoError):
        ca.issue()
    with pytest.raises(CryptoError):
        ca.issue("")
    assert not list((ca.directory / "certs").iterdir())


def test_validity_is_clipped_to_the_ca(tmp_path: Path) -> None:
    ca = DevCA.init(tmp_path / "ca", days=10)
    entry = ca.issue("/CN=long.test", days=365)
    assert entry.not_after == ca.certificate.not_after


def test_directory_without_ca(tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match=r"ca\.pem"):
        DevCA(tmp_path)
    with pytest.raises(CryptoError):
        DevCA(tmp_path / "does-not-exist")
    (tmp_path / "ca.pem").mkdir()  # a directory is not a certificate file
    with pytest.raises(CryptoError):
        DevCA(tmp_path)


def test_init_twice(ca: DevCA) -> None:
    before = (ca.directory / "ca.pem").read_bytes()
    key_before = (ca.directory / "private" / "ca.key").read_bytes()
    with pytest.raises(CryptoError, match="already"):
        DevCA.init(ca.directory)
    assert (ca.directory / "ca.pem").read_bytes() == before
    assert (ca.directory / "private" / "ca.key").read_bytes() == key_before


def test_passphrase_protected_ca(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    ca = DevCA.init(root, password=b"ca secret")
    key_pem = (root / "private" / "ca.key").read_bytes()
    assert key_pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert mode(root / "private" / "ca.key") == 0o600
    entry = ca.issue("/CN=p.test", names=["p.test"])
    cert = load_certificate(entry.certificate_path.read_bytes())
    assert verify_chain([cert], [ca.certificate], name="p.test") == [cert, ca.certificate]
    # Reopened with the passphrase: works; without it: refused when signing.
    DevCA(root, password=b"ca secret").issue("/CN=q.test")
    with pytest.raises(PassphraseError):
        DevCA(root).issue("/CN=r.test")
    with pytest.raises(PassphraseError):
        DevCA(root).issue(csr=make_csr(generate_private_key("Ed25519"), "/CN=s.test"))


def _ca_with_fixed_key_file(root: Path) -> DevCA:
    """A passphrase-protected CA whose key file holds a fixed ciphertext (see toolkit_helpers)."""
    key = load_private_key(FIXED_ENCRYPTED_KEY, FIXED_KEY_PASSPHRASE)
    DevCA.init(root, key=key, password=FIXED_KEY_PASSPHRASE)
    (root / "private" / "ca.key").write_bytes(FIXED_ENCRYPTED_KEY)  # same key, known salt
    return DevCA(root, password=FIXED_KEY_PASSPHRASE)


def test_wrong_passphrase_when_issuing(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    good = _ca_with_fixed_key_file(root)
    good.issue("/CN=ok.test")  # the right passphrase signs
    wrong = DevCA(root, password=WRONG_PASSPHRASE_REJECTED_BY_PADDING)  # opening reads no key
    assert wrong.certificate == good.certificate
    csr = make_csr(generate_private_key("Ed25519"), "/CN=csr.test")
    with pytest.raises(PassphraseError):
        wrong.issue(csr=csr)
    with pytest.raises(PassphraseError):
        wrong.issue("/CN=nope.test")
    # Nothing was issued by the failed attempts.
    assert len(good.issued()) == 1
    assert len(index_lines(good)) == 1


def test_failed_issue_leaves_no_key_behind(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    _ca_with_fixed_key_file(root)
    before = sorted(p.name for p in (root / "private").iterdir())
    with pytest.raises(PassphraseError):
        DevCA(root, password=WRONG_PASSPHRASE_REJECTED_BY_PADDING).issue("/CN=nope.test")
    assert sorted(p.name for p in (root / "private").iterdir()) == before


def test_index_subject_is_in_openssl_order(ca: DevCA) -> None:
    entry = ca.issue("/C=NL/O=Toolkit/CN=order.test")
    subject = index_lines(ca)[0][5]
    # Read back the OpenSSL "/A=b/C=d" form (DER order): it must name the certificate's subject.
    assert parse_name(subject).rfc4514_string() == entry.subject
    assert subject == "/C=NL/O=Toolkit/CN=order.test"


def test_issued_order_survives_a_copy(ca: DevCA) -> None:
    entries = [ca.issue(f"/CN=h{i}.test") for i in range(3)]
    # What `cp -r` without -p does: files get new mtimes, here in reverse directory order.
    stamp = datetime.datetime(2030, 1, 1).timestamp()
    for i, entry in enumerate(reversed(entries)):
        os.utime(entry.certificate_path, (stamp + i, stamp + i))
    assert [e.serial_number for e in ca.issued()] == [e.serial_number for e in entries]
