"""``quicnet genpkey/pkey/req/x509`` against the real ``openssl`` binary, both directions.

Every file quicnet writes is read by OpenSSL, and every file OpenSSL writes is
read by quicnet; where both print the same thing (public keys, fingerprints,
PEM re-encodings) the bytes must be equal.
"""

from __future__ import annotations

import datetime
import os
import stat
import subprocess
from pathlib import Path

import pytest
from ci_support import require_openssl
from cli_helpers import assert_one_line_error, pem_unwrap, sh

from quicnet.cli.main import main

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def quicnet_rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2048-bit RSA key made by ``quicnet genpkey`` (RSA generation is slow: share it)."""
    path = tmp_path_factory.mktemp("qrsa") / "rsa.pem"
    argv = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)]
    assert main(argv) == 0
    return path


@pytest.fixture(scope="module")
def openssl_rsa_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """RSA keys made by OpenSSL: PKCS#8 (``genpkey``) and PKCS#1 (``genrsa -traditional``)."""
    openssl = require_openssl()
    d = tmp_path_factory.mktemp("orsa")
    pkcs8, pkcs1 = d / "pkcs8.pem", d / "pkcs1.pem"
    for args in (
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pkcs8],
        ["genrsa", "-traditional", "-out", pkcs1, "2048"],
    ):
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=60)
    return {"pkcs8": pkcs8, "pkcs1": pkcs1}


def _openssl_dates(openssl, cert: str) -> tuple[datetime.datetime, datetime.datetime]:
    out = openssl("x509", "-in", cert, "-noout", "-startdate", "-enddate").stdout.decode()
    values = dict(line.split("=", 1) for line in out.splitlines())

    def parse(text: str) -> datetime.datetime:
        return datetime.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT")

    return parse(values["notBefore"]), parse(values["notAfter"])


def _serial_of(openssl, cert: str) -> int:
    out = openssl("x509", "-in", cert, "-noout", "-serial").stdout.decode().strip()
    assert out.startswith("serial=")
    return int(out.removeprefix("serial="), 16)


def _quicnet_ca(qn_ok, name: str = "ca", subject: str = "/CN=Test CA") -> None:
    """``NAME.key`` and a self-signed ``NAME.pem`` (CA:TRUE) made by quicnet."""
    qn_ok("genpkey", "-algorithm", "EC", "-out", f"{name}.key")
    qn_ok("req", "-x509", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.pem")


def _openssl_ca(openssl, name: str = "oca", subject: str = "/CN=OpenSSL CA") -> None:
    openssl(
        *sh("req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30"),
        *("-keyout", f"{name}.key", "-subj", subject, "-out", f"{name}.pem"),
    )


# ------------------------------------------------------------------- genpkey -> openssl

CLASSICAL = [
    pytest.param("ed25519", [], "ED25519 Private-Key", id="ed25519"),
    pytest.param("ed448", [], "ED448 Private-Key", id="ed448"),
    pytest.param("x25519", [], "X25519 Private-Key", id="x25519"),
    pytest.param("EC", ["-pkeyopt", "ec_paramgen_curve:P-256"], "prime256v1", id="ec-p256"),
    pytest.param("EC", ["-pkeyopt", "ec_paramgen_curve:P-384"], "secp384r1", id="ec-p384"),
]


@pytest.mark.parametrize(("algorithm", "opts", "openssl_says"), CLASSICAL)
def test_genpkey_classical_key_is_read_by_openssl(qn_ok, openssl, algorithm, opts, openssl_says):
    qn_ok("genpkey", "-algorithm", algorithm, *opts, "-out", "k.pem")
    pem = Path("k.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8
    assert stat.S_IMODE(os.stat("k.pem").st_mode) == 0o600

    openssl("pkey", "-in", "k.pem", "-noout")
    assert openssl_says in openssl("pkey", "-in", "k.pem", "-noout", "-text").stdout.decode()
    # Both derive the same SubjectPublicKeyInfo from the private key.
    assert (
        qn_ok("pkey", "-in", "k.pem", "-pubout").out
        == openssl("pkey", "-in", "k.pem", "-pubout").stdout
    )


def test_genpkey_rsa_key_is_valid_for_openssl(openssl, quicnet_rsa_key):
    text = openssl("pkey", "-in", quicnet_rsa_key, "-noout", "-text").stdout.decode()
    assert "Private-Key: (2048 bit" in text
    assert "publicExponent: 65537" in text
    check = openssl("pkey", "-in", quicnet_rsa_key, "-noout", "-check")
    assert b"Key is valid" in check.stdout + check.stderr


@pytest.mark.parametrize(
    ("algorithm", "opts"),
    [("ed25519", []), ("EC", ["-pkeyopt", "ec_paramgen_curve:P-384"])],
    ids=["ed25519", "ec-p384"],
)
def test_genpkey_aes256_is_read_by_openssl_with_passin(qn_ok, openssl, algorithm, opts):
    qn_ok("genpkey", "-algorithm", algorithm, *opts, "-aes256", "-pass", "pass:x", "-out", "e.pem")
    assert Path("e.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")

    pub = openssl("pkey", "-in", "e.pem", "-passin", "pass:x", "-pubout").stdout
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert qn_ok("pkey", "-in", "e.pem", "-passin", "pass:x", "-pubout").out == pub
    # It really is encrypted: OpenSSL refuses another passphrase.
    assert (
        openssl("pkey", "-in", "e.pem", "-passin", "pass:y", "-noout", check=False).returncode != 0
    )


def test_genpkey_outform_der_is_read_by_openssl(qn_ok, openssl):
    qn_ok("genpkey", "-algorithm", "EC", "-outform", "DER", "-out", "k.der")
    assert Path("k.der").read_bytes()[:1] == b"\x30"  # a DER SEQUENCE, not PEM text
    pub = openssl("pkey", "-inform", "DER", "-in", "k.der", "-pubout").stdout
    assert qn_ok("pkey", "-in", "k.der", "-pubout").out == pub


def test_genpkey_encrypted_der_is_read_by_openssl(qn_ok, openssl):
    qn_ok(*sh("genpkey -algorithm ed448 -outform DER -aes256 -pass pass:x -out k.der"))
    text = openssl("pkey", "-inform", "DER", "-in", "k.der", "-passin", "pass:x", "-noout", "-text")
    assert b"ED448 Private-Key" in text.stdout


def test_genpkey_text_prints_pem_then_text(qn_ok, openssl):
    r = qn_ok("genpkey", "-algorithm", "ed25519", "-text")
    assert r.text.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert "Ed25519 Private-Key" in r.text
    Path("k.pem").write_bytes(r.out)
    openssl("pkey", "-in", "k.pem", "-noout")  # the text after the PEM block is ignored


@pytest.mark.parametrize("algorithm", ["ML-DSA-65", "ML-KEM-768"])
def test_genpkey_post_quantum_round_trip(qn_ok, algorithm):
    """OpenSSL 3.0 cannot read ML-DSA/ML-KEM keys: quicnet must read its own back."""
    qn_ok("genpkey", "-algorithm", algorithm, "-out", "k.pem")
    assert Path("k.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert qn_ok("pkey", "-in", "k.pem", "-noout").out == b""
    assert f"{algorithm} Private-Key" in qn_ok("pkey", "-in", "k.pem", "-text", "-noout").text

    pub = qn_ok("pkey", "-in", "k.pem", "-pubout").out
    assert pub.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    Path("pub.pem").write_bytes(pub)
    assert qn_ok("pkey", "-pubin", "-in", "pub.pem").out == pub
    assert (
        f"{algorithm} Public-Key"
        in qn_ok("pkey", "-pubin", "-in", "pub.pem", "-text", "-noout").text
    )

    # PEM -> DER -> PEM and an encrypted copy keep the same key.
    qn_ok("pkey", "-in", "k.pem", "-outform", "DER", "-out", "k.der")
    assert qn_ok("pkey", "-in", "k.der", "-pubout").out == pub
    qn_ok("pkey", "-in", "k.pem", "-aes256", "-passout", "pass:pq", "-out", "e.pem")
    assert b"ENCRYPTED PRIVATE KEY" in Path("e.pem").read_bytes()
    assert qn_ok("pkey", "-in", "e.pem", "-passin", "pass:pq", "-pubout").out == pub


def test_ml_dsa_certificate_round_trip(qn_ok):
    qn_ok("genpkey", "-algorithm", "ML-DSA-65", "-out", "k.pem")
    qn_ok("req", "-x509", "-new", "-key", "k.pem", "-subj", "/CN=pq", "-out", "c.pem")
    assert "ML-DSA-65" in qn_ok("x509", "-in", "c.pem", "-text", "-noout").text
    assert qn_ok("verify", "-CAfile", "c.pem", "c.pem").text == "c.pem: OK\n"


# ------------------------------------------------------------------- openssl -> pkey

OPENSSL_KEYS = [
    pytest.param(["genpkey", "-algorithm", "ed25519"], "Ed25519", id="genpkey-ed25519"),
    pytest.param(["genpkey", "-algorithm", "ed448"], "Ed448", id="genpkey-ed448"),
    pytest.param(["genpkey", "-algorithm", "x25519"], "X25519", id="genpkey-x25519"),
    pytest.param(
        ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "EC P-256",
        id="genpkey-ec-p256",
    ),
    pytest.param(["ecparam", "-genkey", "-name", "secp384r1"], "EC P-384", id="ecparam-sec1"),
]


@pytest.mark.parametrize(("args", "algorithm"), OPENSSL_KEYS)
def test_openssl_key_is_read_by_quicnet(qn_ok, openssl, args, algorithm):
    openssl(*args, "-out", "k.pem")
    assert qn_ok("pkey", "-in", "k.pem", "-noout").out == b""
    assert (
        qn_ok("pkey", "-in", "k.pem", "-pubout").out
        == openssl("pkey", "-in", "k.pem", "-pubout").stdout
    )
    assert f"{algorithm} Private-Key" in qn_ok("pkey", "-in", "k.pem", "-text", "-noout").text


def test_openssl_sec1_key_keeps_its_ec_parameters_block_out_of_the_way(qn_ok, openssl):
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-out", "k.pem")
    pem = Path("k.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN EC PARAMETERS-----")
    assert b"-----BEGIN EC PRIVATE KEY-----" in pem
    # quicnet converts SEC1 to PKCS#8; OpenSSL agrees it is the same key.
    qn_ok("pkey", "-in", "k.pem", "-out", "p8.pem")
    assert Path("p8.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert (
        openssl("pkey", "-in", "p8.pem", "-pubout").stdout
        == openssl("pkey", "-in", "k.pem", "-pubout").stdout
    )


@pytest.mark.parametrize("form", ["pkcs8", "pkcs1"])
def test_openssl_rsa_key_is_read_by_quicnet(qn_ok, openssl, openssl_rsa_keys, form):
    key = openssl_rsa_keys[form]
    header = (
        b"-----BEGIN RSA PRIVATE KEY-----" if form == "pkcs1" else b"-----BEGIN PRIVATE KEY-----"
    )
    assert key.read_bytes().startswith(header)
    assert qn_ok("pkey", "-in", key, "-noout").out == b""
    assert "RSA 2048 Private-Key (2048 bit)" in qn_ok("pkey", "-in", key, "-text", "-noout").text
    assert qn_ok("pkey", "-in", key, "-pubout").out == openssl("pkey", "-in", key, "-pubout").stdout


def test_openssl_encrypted_pkcs8_is_read_by_quicnet(qn, qn_ok, openssl):
    openssl(
        *sh(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes256 -pass pass:x -out e.pem"
        )
    )
    assert Path("e.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    pub = openssl("pkey", "-in", "e.pem", "-passin", "pass:x", "-pubout").stdout
    assert qn_ok("pkey", "-in", "e.pem", "-passin", "pass:x", "-noout").out == b""
    assert qn_ok("pkey", "-in", "e.pem", "-passin", "pass:x", "-pubout").out == pub
    assert_one_line_error(qn("pkey", "-in", "e.pem", "-noout"), code=1, mentions="passphrase")
    assert_one_line_error(
        qn("pkey", "-in", "e.pem", "-passin", "pass:wrong", "-noout"), code=1, mentions="passphrase"
    )


def test_openssl_traditional_encrypted_ec_key_is_read_by_quicnet(qn_ok, openssl):
    openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", "k.pem")
    openssl("ec", "-in", "k.pem", "-aes256", "-passout", "pass:x", "-out", "e.pem")
    assert b"Proc-Type: 4,ENCRYPTED" in Path("e.pem").read_bytes()
    assert (
        qn_ok("pkey", "-in", "e.pem", "-passin", "pass:x", "-pubout").out
        == openssl("pkey", "-in", "k.pem", "-pubout").stdout
    )


def test_openssl_der_key_and_public_key_are_read_by_quicnet(qn_ok, openssl):
    openssl("genpkey", "-algorithm", "ed25519", "-outform", "DER", "-out", "k.der")
    pub = openssl("pkey", "-inform", "DER", "-in", "k.der", "-pubout").stdout
    assert qn_ok("pkey", "-inform", "DER", "-in", "k.der", "-pubout").out == pub
    openssl("pkey", "-inform", "DER", "-in", "k.der", "-pubout", "-outform", "DER", "-out", "p.der")
    assert qn_ok("pkey", "-pubin", "-in", "p.der").out == pub
    assert "Ed25519 Public-Key" in qn_ok("pkey", "-pubin", "-in", "p.der", "-text", "-noout").text


def test_pkey_conversions_are_read_by_openssl(qn_ok, openssl):
    openssl("genpkey", "-algorithm", "ed25519", "-out", "k.pem")
    pub = openssl("pkey", "-in", "k.pem", "-pubout").stdout

    qn_ok("pkey", "-in", "k.pem", "-aes256", "-passout", "pass:y", "-out", "e.pem")
    assert openssl("pkey", "-in", "e.pem", "-passin", "pass:y", "-pubout").stdout == pub

    qn_ok("pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "p.der")
    assert openssl("pkey", "-pubin", "-inform", "DER", "-in", "p.der", "-pubout").stdout == pub

    # A plain key re-encoded by quicnet is the same PKCS#8 PEM OpenSSL writes.
    assert qn_ok("pkey", "-in", "k.pem").out == Path("k.pem").read_bytes()


@pytest.mark.parametrize("source", ["env", "file", "stdin"])
def test_passphrase_sources(qn_ok, openssl, monkeypatch, source):
    openssl("genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:s3cret", "-out", "e.pem")
    pub = openssl("pkey", "-in", "e.pem", "-passin", "pass:s3cret", "-pubout").stdout
    stdin = b""
    if source == "env":
        monkeypatch.setenv("QUICNET_TEST_PASS", "s3cret")
        spec = "env:QUICNET_TEST_PASS"
    elif source == "file":
        Path("pass.txt").write_text("s3cret\nignored second line\n")
        spec = "file:pass.txt"
    else:
        spec, stdin = "stdin", b"s3cret\n"
    assert qn_ok("pkey", "-in", "e.pem", "-passin", spec, "-pubout", stdin=stdin).out == pub


# ------------------------------------------------------------------------------ req


@pytest.mark.parametrize("algorithm", ["ed25519", "EC", "RSA"])
def test_req_csr_is_verified_by_openssl(qn_ok, openssl, quicnet_rsa_key, algorithm):
    if algorithm == "RSA":
        key = quicnet_rsa_key
    else:
        key = "k.pem"
        qn_ok("genpkey", "-algorithm", algorithm, "-out", key)
    san = "subjectAltName=DNS:a,IP:127.0.0.1"
    r = qn_ok("req", "-new", "-key", key, "-subj", "/CN=name", "-addext", san, "-out", "r.csr")
    assert r.out == b""
    assert Path("r.csr").read_bytes().startswith(b"-----BEGIN CERTIFICATE REQUEST-----\n")

    check = openssl("req", "-in", "r.csr", "-verify", "-noout")
    assert b"verify OK" in check.stdout + check.stderr
    text = openssl("req", "-in", "r.csr", "-noout", "-text").stdout.decode()
    assert "Subject: CN = name" in text
    assert "DNS:a, IP Address:127.0.0.1" in text
    # The CSR carries the key's public half.
    csr_pub = openssl("req", "-in", "r.csr", "-noout", "-pubkey").stdout
    assert csr_pub == openssl("pkey", "-in", key, "-pubout").stdout


def test_req_csr_der_is_read_by_openssl(qn_ok, openssl):
    qn_ok("genpkey", "-algorithm", "EC", "-out", "k.pem")
    qn_ok(*sh("req -new -key k.pem -subj /CN=der/O=Org -outform DER -out r.der"))
    check = openssl("req", "-inform", "DER", "-in", "r.der", "-verify", "-noout", "-subject")
    assert b"verify OK" in check.stdout + check.stderr
    assert b"CN = der" in check.stdout and b"O = Org" in check.stdout


@pytest.mark.parametrize("outform", ["PEM", "DER"])
def test_openssl_csr_is_verified_by_quicnet(qn_ok, openssl, outform):
    openssl(
        *sh("req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k.pem"),
        *sh("-subj /CN=o.test -addext subjectAltName=DNS:o.test -out r.csr -outform"),
        outform,
    )
    r = qn_ok("req", "-in", "r.csr", "-verify", "-noout")
    assert r.out == b""
    assert "verify OK" in r.err
    text = qn_ok("req", "-in", "r.csr", "-text", "-noout", "-subject").text
    assert "subject=CN=o.test" in text
    assert "DNS:o.test" in text
    # Without -noout the request comes back as PEM, the same bytes OpenSSL writes.
    pem = openssl("req", "-in", "r.csr", "-inform", outform, "-outform", "PEM").stdout
    assert qn_ok("req", "-in", "r.csr").out == pem


def test_req_x509_self_signed_ca_is_read_by_openssl(qn_ok, openssl):
    qn_ok("genpkey", "-algorithm", "EC", "-out", "k.pem")
    qn_ok(*sh("req -x509 -new -key k.pem -subj '/CN=My CA' -days 30 -out ca.pem"))
    text = openssl("x509", "-in", "ca.pem", "-noout", "-text").stdout.decode()
    assert "CA:TRUE" in text
    assert "Subject: CN = My CA" in text and "Issuer: CN = My CA" in text
    start, end = _openssl_dates(openssl, "ca.pem")
    assert end - start == datetime.timedelta(days=30)
    # Its self-signature is valid for OpenSSL, which accepts it as its own trust anchor.
    assert openssl("verify", "-CAfile", "ca.pem", "ca.pem").stdout == b"ca.pem: OK\n"
    assert (
        openssl("x509", "-in", "ca.pem", "-noout", "-pubkey").stdout
        == openssl("pkey", "-in", "k.pem", "-pubout").stdout
    )


def test_req_x509_basic_constraints_ca_false_and_san(qn_ok, openssl):
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "k.pem")
    qn_ok(
        *sh(
            "req -x509 -new -key k.pem -subj /CN=srv -addext basicConstraints=CA:FALSE -addext subjectAltName=DNS:srv.test -set_serial 0x1234 -out c.pem"
        )
    )
    text = openssl("x509", "-in", "c.pem", "-noout", "-text").stdout.decode()
    assert "CA:FALSE" in text and "CA:TRUE" not in text
    assert "DNS:srv.test" in text
    assert _serial_of(openssl, "c.pem") == 0x1234


def test_req_san_kinds_are_kept_like_openssl(qn_ok, openssl):
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "k.pem")
    san = "subjectAltName=DNS:10.0.0.1,DNS:ok.test,IP:192.0.2.1"
    qn_ok("req", "-new", "-key", "k.pem", "-subj", "/CN=x", "-addext", san, "-out", "q.csr")
    openssl("req", "-new", "-key", "k.pem", "-subj", "/CN=x", "-addext", san, "-out", "o.csr")
    ours = openssl("req", "-in", "q.csr", "-noout", "-text").stdout.decode()
    theirs = openssl("req", "-in", "o.csr", "-noout", "-text").stdout.decode()
    assert "DNS:10.0.0.1, DNS:ok.test, IP Address:192.0.2.1" in theirs
    assert "DNS:10.0.0.1, DNS:ok.test, IP Address:192.0.2.1" in ours


def test_req_x509_from_existing_csr(qn, openssl):
    openssl(*sh("req -new -newkey ed25519 -nodes -keyout k.pem -subj /CN=c -out r.csr"))
    r = qn("req", "-x509", "-in", "r.csr", "-key", "k.pem", "-days", "5", "-out", "c.pem")
    if r.code != 0:  # refusing is acceptable, as one clean line
        assert_one_line_error(r, code=1)
        return
    # Succeeding must mean what OpenSSL means: a certificate, self-signed with the key.
    assert Path("c.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert openssl("verify", "-CAfile", "c.pem", "c.pem").returncode == 0


@pytest.mark.parametrize("x509", [False, True], ids=["csr", "x509"])
def test_req_newkey_ec_keyout(qn_ok, openssl, x509):
    args = ["-x509"] if x509 else []
    r = qn_ok("req", "-new", *args, *sh("-newkey ec -keyout nk.pem -subj /CN=nk -out out.pem"))
    assert r.out == b""  # the key went to -keyout, not to standard output
    assert stat.S_IMODE(os.stat("nk.pem").st_mode) == 0o600
    assert b"prime256v1" in openssl("pkey", "-in", "nk.pem", "-noout", "-text").stdout
    pub = openssl("pkey", "-in", "nk.pem", "-pubout").stdout
    if x509:
        assert openssl("x509", "-in", "out.pem", "-noout", "-pubkey").stdout == pub
        assert openssl("verify", "-CAfile", "out.pem", "out.pem").returncode == 0
    else:
        assert b"verify OK" in openssl("req", "-in", "out.pem", "-verify", "-noout").stderr
        assert openssl("req", "-in", "out.pem", "-noout", "-pubkey").stdout == pub


def test_req_with_openssl_key(qn_ok, openssl, openssl_rsa_keys):
    key = openssl_rsa_keys["pkcs1"]
    qn_ok("req", "-new", "-key", key, "-subj", "/CN=rsa", "-out", "r.csr")
    assert b"verify OK" in openssl("req", "-in", "r.csr", "-verify", "-noout").stderr
    text = openssl("req", "-in", "r.csr", "-noout", "-text").stdout.decode()
    assert "sha256WithRSAEncryption" in text


# ----------------------------------------------------------------------------- x509


def test_x509_req_leaf_is_verified_by_openssl(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "leaf.key")
    qn_ok(
        *sh(
            "req -new -key leaf.key -subj /CN=leaf -addext subjectAltName=DNS:leaf.test,IP:10.1.2.3 -out leaf.csr"
        )
    )
    r = qn_ok(*sh("x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -days 10 -out leaf.pem"))
    assert r.out == b""

    assert openssl("verify", "-CAfile", "ca.pem", "leaf.pem").stdout == b"leaf.pem: OK\n"
    openssl("verify", "-CAfile", "ca.pem", "-verify_hostname", "leaf.test", "leaf.pem")
    openssl(*sh("verify -CAfile ca.pem -verify_ip 10.1.2.3 -purpose sslserver leaf.pem"))
    bad = openssl(*sh("verify -CAfile ca.pem -verify_hostname other.test leaf.pem"), check=False)
    assert bad.returncode != 0

    text = openssl("x509", "-in", "leaf.pem", "-noout", "-text").stdout.decode()
    assert "DNS:leaf.test, IP Address:10.1.2.3" in text  # copied from the CSR
    assert "CA:FALSE" in text
    assert "Issuer: CN = Test CA" in text
    start, end = _openssl_dates(openssl, "leaf.pem")
    assert end - start == datetime.timedelta(days=10)


def test_x509_req_copy_extensions_none_drops_san(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok(*sh("req -new -key ca.key -subj /CN=x -addext subjectAltName=DNS:x -out x.csr"))
    qn_ok(*sh("x509 -req -in x.csr -CA ca.pem -CAkey ca.key -copy_extensions none -out x.pem"))
    assert (
        b"Subject Alternative Name" not in openssl("x509", "-in", "x.pem", "-noout", "-text").stdout
    )


def test_openssl_ca_and_leaf_are_verified_by_quicnet(qn_ok, openssl):
    _openssl_ca(openssl)
    openssl(
        *sh(
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -subj /CN=host.test -out leaf.csr"
        )
    )
    Path("san.ext").write_text("subjectAltName=DNS:host.test,IP:127.0.0.1\n")
    openssl(
        *sh(
            "x509 -req -in leaf.csr -CA oca.pem -CAkey oca.key -CAcreateserial -days 10 -extfile san.ext -out leaf.pem"
        )
    )

    r = qn_ok("verify", "-CAfile", "oca.pem", "-verify_hostname", "host.test", "leaf.pem")
    assert r.text == "leaf.pem: OK\n"
    assert r.err == ""
    assert qn_ok("verify", "-CAfile", "oca.pem", "-verify_ip", "127.0.0.1", "leaf.pem").code == 0
    text = qn_ok("x509", "-in", "leaf.pem", "-text", "-noout").text
    assert "DNS:host.test" in text and "IP Address:127.0.0.1" in text


def test_quicnet_issues_from_openssl_csr_under_openssl_ca(qn_ok, openssl):
    _openssl_ca(openssl)
    openssl(
        *sh(
            "req -new -newkey ed25519 -nodes -keyout leaf.key -subj /CN=svc -addext subjectAltName=DNS:svc.test -out leaf.csr"
        )
    )
    qn_ok(*sh("x509 -req -in leaf.csr -CA oca.pem -CAkey oca.key -days 5 -out leaf.pem"))
    out = openssl("verify", "-CAfile", "oca.pem", "-verify_hostname", "svc.test", "leaf.pem")
    assert out.stdout == b"leaf.pem: OK\n"
    assert b"DNS:svc.test" in openssl("x509", "-in", "leaf.pem", "-noout", "-text").stdout
    assert (
        qn_ok("verify", "-CAfile", "oca.pem", "-verify_hostname", "svc.test", "leaf.pem").code == 0
    )


def test_x509_req_extfile_section_and_ca_flag(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok("genpkey", "-algorithm", "EC", "-out", "int.key")
    qn_ok("req", "-new", "-key", "int.key", "-subj", "/CN=Int", "-out", "int.csr")
    Path("v3.cnf").write_text(
        "# an OpenSSL-style config\n[ other ]\nbasicConstraints = CA:FALSE\n\n"
        "[ v3_int ]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n"
    )
    qn_ok(
        *sh(
            "x509 -req -in int.csr -CA ca.pem -CAkey ca.key -extfile v3.cnf -extensions v3_int -out int.pem"
        )
    )
    text = openssl("x509", "-in", "int.pem", "-noout", "-text").stdout.decode()
    assert "CA:TRUE, pathlen:0" in text
    openssl("verify", "-CAfile", "ca.pem", "int.pem")


HASHES = ["sha256", "sha1", "sha384", "sha512", "md5"]


@pytest.mark.parametrize("hash_name", HASHES)
def test_x509_fingerprint_line_equals_openssl(qn_ok, openssl, hash_name):
    _openssl_ca(openssl)
    _quicnet_ca(qn_ok)
    for cert in ("oca.pem", "ca.pem"):
        ours = qn_ok("x509", "-in", cert, "-fingerprint", f"-{hash_name}", "-noout").out
        theirs = openssl("x509", "-in", cert, "-fingerprint", f"-{hash_name}", "-noout").stdout
        assert ours == theirs


def test_x509_subject_issuer_and_text(qn_ok, openssl):
    _openssl_ca(openssl, subject="/CN=OpenSSL CA/O=Interop")
    openssl(*sh("req -new -newkey ed25519 -nodes -keyout l.key -subj /CN=l -out l.csr"))
    Path("san.ext").write_text("subjectAltName=DNS:l.test,IP:::1\n")
    openssl(
        *sh(
            "x509 -req -in l.csr -CA oca.pem -CAkey oca.key -set_serial 4660 -extfile san.ext -out l.pem"
        )
    )

    lines = qn_ok("x509", "-in", "l.pem", "-subject", "-issuer", "-noout").text.splitlines()
    assert lines[0].startswith("subject=") and "CN=l" in lines[0]
    assert (
        lines[1].startswith("issuer=") and "CN=OpenSSL CA" in lines[1] and "O=Interop" in lines[1]
    )

    text = qn_ok("x509", "-in", "l.pem", "-text", "-noout").text
    assert "DNS:l.test" in text and "IP Address:::1" in text
    assert "12:34" in text  # the serial, 4660 == 0x1234
    assert "-----BEGIN CERTIFICATE-----" not in text  # -noout


def test_x509_pubkey_equals_openssl(qn_ok, openssl):
    _openssl_ca(openssl)
    assert (
        qn_ok("x509", "-in", "oca.pem", "-pubkey", "-noout").out
        == openssl("x509", "-in", "oca.pem", "-pubkey", "-noout").stdout
    )


def test_x509_outform_der_both_ways(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der")
    assert Path("ca.der").read_bytes() == pem_unwrap(Path("ca.pem").read_bytes())
    # OpenSSL reads the DER back to the very same PEM.
    assert openssl("x509", "-inform", "DER", "-in", "ca.der").stdout == Path("ca.pem").read_bytes()

    _openssl_ca(openssl)
    openssl("x509", "-in", "oca.pem", "-outform", "DER", "-out", "oca.der")
    assert qn_ok("x509", "-in", "oca.der", "-inform", "DER").out == Path("oca.pem").read_bytes()
    fp = openssl("x509", "-in", "oca.pem", "-fingerprint", "-sha256", "-noout").stdout
    assert qn_ok("x509", "-in", "oca.der", "-fingerprint", "-sha256", "-noout").out == fp


def test_x509_cacreateserial_and_caserial(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok("req", "-new", "-key", "ca.key", "-subj", "/CN=a", "-out", "a.csr")
    assert not Path("ca.srl").exists()
    issue = ["x509", "-req", "-in", "a.csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
    qn_ok(*issue, "-CAcreateserial", "-out", "a1.pem")
    first = int(Path("ca.srl").read_text().strip(), 16)
    assert _serial_of(openssl, "a1.pem") == first  # the file names the serial just used

    qn_ok(*issue, "-CAserial", "ca.srl", "-out", "a2.pem")
    assert _serial_of(openssl, "a2.pem") == first + 1
    assert int(Path("ca.srl").read_text().strip(), 16) == first + 1

    # A serial file OpenSSL wrote is continued by quicnet.
    _openssl_ca(openssl)
    openssl(*sh("x509 -req -in a.csr -CA oca.pem -CAkey oca.key -CAcreateserial -out o1.pem"))
    o1 = _serial_of(openssl, "o1.pem")
    qn_ok(*sh("x509 -req -in a.csr -CA oca.pem -CAkey oca.key -CAserial oca.srl -out o2.pem"))
    assert _serial_of(openssl, "o2.pem") == o1 + 1


def test_x509_caserial_missing_without_create_is_an_error(qn):
    # qn runs in a fresh directory: make a CA there first.
    assert qn("genpkey", "-algorithm", "EC", "-out", "ca.key").code == 0
    assert (
        qn("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=CA", "-out", "ca.pem").code == 0
    )
    assert qn("req", "-new", "-key", "ca.key", "-subj", "/CN=a", "-out", "a.csr").code == 0
    r = qn(*sh("x509 -req -in a.csr -CA ca.pem -CAkey ca.key -CAserial missing.srl -out a.pem"))
    assert_one_line_error(r, code=1, mentions="CAcreateserial")
    assert not Path("a.pem").exists()


@pytest.mark.parametrize("seconds", [0, 86400 * 365 * 20])
def test_x509_checkend_agrees_with_openssl(qn, openssl, seconds):
    _openssl_ca(openssl)
    theirs = openssl("x509", "-in", "oca.pem", "-noout", "-checkend", seconds, check=False)
    ours = qn("x509", "-in", "oca.pem", "-noout", "-checkend", seconds)
    assert ours.code == theirs.returncode
    assert ours.out == theirs.stdout  # "Certificate will (not) expire\n"


def test_x509_reads_standard_input(qn_ok, openssl):
    _openssl_ca(openssl)
    pem = Path("oca.pem").read_bytes()
    assert qn_ok("x509", stdin=pem).out == pem
    assert (
        qn_ok("x509", "-in", "-", "-noout", "-fingerprint", "-sha256", stdin=pem).out
        == openssl("x509", "-in", "oca.pem", "-noout", "-fingerprint", "-sha256").stdout
    )


# ------------------------------------------------------ x509: divergences (CLI bugs)


def _cert_with_dates_and_serial(openssl) -> None:
    """``d.pem``: serial 0x100 (odd number of hex digits), dates on single-digit days."""
    Path("d.cnf").write_text(
        "[ca]\ndefault_ca=CA_default\n[CA_default]\ndatabase=index.txt\nnew_certs_dir=.\n"
        "serial=serial\ndefault_md=sha256\npolicy=pol\nunique_subject=no\n[pol]\ncommonName=supplied\n"
    )
    Path("index.txt").write_text("")
    Path("serial").write_text("0100\n")
    _openssl_ca(openssl)
    openssl(*sh("req -new -newkey ed25519 -nodes -keyout d.key -subj /CN=d -out d.csr"))
    openssl(
        *sh(
            "ca -batch -config d.cnf -cert oca.pem -keyfile oca.key -in d.csr -startdate 20250102030405Z -enddate 20300304050607Z -notext -out d.pem"
        )
    )


def test_x509_serial_line_equals_openssl(qn_ok, openssl):
    _cert_with_dates_and_serial(openssl)
    assert (
        qn_ok("x509", "-in", "d.pem", "-serial", "-noout").out
        == openssl("x509", "-in", "d.pem", "-serial", "-noout").stdout
    )


def test_x509_dates_lines_equal_openssl(qn_ok, openssl):
    _cert_with_dates_and_serial(openssl)
    assert (
        qn_ok("x509", "-in", "d.pem", "-dates", "-noout").out
        == openssl("x509", "-in", "d.pem", "-dates", "-noout").stdout
    )


def test_x509_default_fingerprint_line_equals_openssl(qn_ok, openssl):
    _openssl_ca(openssl)
    assert (
        qn_ok("x509", "-in", "oca.pem", "-fingerprint", "-noout").out
        == openssl("x509", "-in", "oca.pem", "-fingerprint", "-noout").stdout
    )


def test_x509_serial_file_stays_readable_by_openssl(qn_ok, openssl):
    _quicnet_ca(qn_ok)
    qn_ok("req", "-new", "-key", "ca.key", "-subj", "/CN=a", "-out", "a.csr")
    Path("ca.srl").write_text("FF\n")  # what OpenSSL itself would write
    qn_ok(*sh("x509 -req -in a.csr -CA ca.pem -CAkey ca.key -CAserial ca.srl -out a1.pem"))
    assert _serial_of(openssl, "a1.pem") == 0x100
    # OpenSSL must be able to continue the same serial file.
    r = openssl(
        *sh("x509 -req -in a.csr -CA ca.pem -CAkey ca.key -CAserial ca.srl -out a2.pem"),
        check=False,
    )
    assert r.returncode == 0, r.stderr.decode()
    assert _serial_of(openssl, "a2.pem") == 0x101
