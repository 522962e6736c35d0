"""``quicnet ca init|issue|list`` and ``quicnet demo``, checked with ``openssl``."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, sh


def _issued(text: str) -> tuple[int, str, str | None]:
    """(serial, certificate path, key path or None) from ``ca issue``'s report."""
    serial = re.search(r"^issued serial ([0-9A-F]+) to ", text, re.M)
    cert = re.search(r"^certificate: (\S+)$", text, re.M)
    key = re.search(r"^key: +(\S+)$", text, re.M)
    assert serial and cert, text
    return int(serial.group(1), 16), cert.group(1), key.group(1) if key else None


def _openssl_serial(openssl, cert: str) -> int:
    return int(openssl("x509", "-in", cert, "-noout", "-serial").stdout.decode().split("=")[1], 16)


def test_ca_init_issue_list_verified_by_openssl(qn_ok, openssl):
    r = qn_ok("ca", "init", "myca", "-subj", "/CN=Dev Root/O=Tests")
    assert "myca/ca.pem" in r.text
    assert Path("myca/ca.pem").is_file()
    assert stat.S_IMODE(os.stat("myca/private/ca.key").st_mode) == 0o600
    root_text = openssl("x509", "-in", "myca/ca.pem", "-noout", "-text").stdout.decode()
    assert "CA:TRUE" in root_text and "CN = Dev Root" in root_text
    assert (
        openssl("pkey", "-in", "myca/private/ca.key", "-pubout").stdout
        == openssl("x509", "-in", "myca/ca.pem", "-noout", "-pubkey").stdout
    )

    serial, cert, key = _issued(
        qn_ok("ca", "issue", "myca", "-subj", "/CN=host", "-addext", "subjectAltName=DNS:host").text
    )
    assert Path(cert) == Path("myca/certs") / f"{serial:X}.pem"
    assert key is not None and stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert _openssl_serial(openssl, cert) == serial

    listing = qn_ok("ca", "list", "myca").text.splitlines()
    assert len(listing) == 1
    fields = listing[0].split("\t")
    assert int(fields[0], 16) == serial and fields[2] == "CN=host"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields[1])

    certs = sorted(str(p) for p in Path("myca/certs").glob("*.pem"))
    out = openssl("verify", "-CAfile", "myca/ca.pem", *certs).stdout.decode()
    assert out == "".join(f"{c}: OK\n" for c in certs)
    openssl("verify", "-CAfile", "myca/ca.pem", "-verify_hostname", "host", cert)
    # The key the CA made belongs to the certificate.
    assert (
        openssl("pkey", "-in", key, "-pubout").stdout
        == openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    )


def test_ca_issue_from_openssl_csr(qn_ok, openssl):
    qn_ok("ca", "init", "myca")
    first, _, _ = _issued(qn_ok("ca", "issue", "myca", "-subj", "/CN=one").text)
    openssl(
        *sh(
            "req -new -newkey ed25519 -nodes -keyout csr.key -subj /CN=from-csr -addext subjectAltName=DNS:csr.test,IP:192.0.2.7 -out r.csr"
        )
    )
    serial, cert, key = _issued(qn_ok("ca", "issue", "myca", "-in", "r.csr").text)
    assert key is None  # the requester keeps its key
    assert serial == first + 1

    openssl("verify", "-CAfile", "myca/ca.pem", "-verify_hostname", "csr.test", cert)
    openssl("verify", "-CAfile", "myca/ca.pem", "-verify_ip", "192.0.2.7", cert)
    assert (
        openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
        == openssl("pkey", "-in", "csr.key", "-pubout").stdout
    )
    subjects = [line.split("\t")[2] for line in qn_ok("ca", "list", "myca").text.splitlines()]
    assert subjects == ["CN=one", "CN=from-csr"]
    assert qn_ok("verify", "-CAfile", "myca/ca.pem", "-verify_hostname", "csr.test", cert).code == 0


def test_ca_index_is_openssl_format(qn_ok):
    qn_ok("ca", "init", "myca")
    serial, _, _ = _issued(qn_ok("ca", "issue", "myca", "-subj", "/CN=idx/O=Org").text)
    (line,) = Path("myca/index.txt").read_text().splitlines()
    status, expiry, revoked, index_serial, _, subject = line.split("\t")
    assert (status, revoked) == ("V", "")
    assert re.fullmatch(r"\d{12}Z", expiry)
    assert int(index_serial, 16) == serial
    assert "CN=idx" in subject


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["ca"], "usage"),
        (["ca", "frob", "x"], "usage"),
        (["ca", "list", "nowhere"], "no ca.pem"),
        (["ca", "issue", "nowhere", "-subj", "/CN=x"], "no ca.pem"),
        (["ca", "issue", "myca"], "-subj"),
        (["ca", "init", "myca"], "already"),
        (["ca", "issue", "myca", "-subj", "/CN=x", "-addext", "subjectAltName=URI:x"], "URI:x"),
        (["ca", "issue", "myca", "-in", "missing.csr"], "missing.csr"),
    ],
)
def test_ca_errors(qn, qn_ok, argv, mentions):
    qn_ok("ca", "init", "myca")
    assert_one_line_error(qn(*argv), code=1, mentions=mentions)
    assert list(Path("myca/certs").iterdir()) == []  # nothing was issued


def test_ca_with_encrypted_key(qn, qn_ok, openssl):
    qn_ok("ca", "init", "sec", "-passin", "pass:capw")
    assert b"ENCRYPTED PRIVATE KEY" in Path("sec/private/ca.key").read_bytes()
    openssl("pkey", "-in", "sec/private/ca.key", "-passin", "pass:capw", "-noout")
    assert_one_line_error(qn("ca", "issue", "sec", "-subj", "/CN=x"), code=1, mentions="passphrase")
    _, cert, _ = _issued(qn_ok("ca", "issue", "sec", "-subj", "/CN=x", "-passin", "pass:capw").text)
    openssl("verify", "-CAfile", "sec/ca.pem", cert)


# ---------------------------------------------------------------------------- demo


def test_demo_runs_a_server_and_bots_and_checks_every_guarantee(qn_ok):
    r = qn_ok("demo", "-seconds", "1.5", "-clients", "2")
    lines = r.text.splitlines()
    assert lines[-1] == "demo OK"
    assert "2 of 2 bots connected" in r.text
    # A table each second: a row per delivery mode with messages each way.
    row = next(line for line in lines if "ch 1 unreliable" in line and "sent" not in line)
    assert int(row.split()[4]) > 0  # messages sent that second
    summary = lines[lines.index(next(x for x in lines if x.startswith("summary:"))) :]
    ordered = next(line for line in summary if "reliable ordered" in line)
    unordered = next(line for line in summary if "reliable unordered" in line)
    assert "(100.0%)" in ordered and "in order" in ordered
    assert "(100.0%)" in unordered
    assert "none stale" in next(line for line in summary if "sequenced" in line)
    assert not Path("ca.pem").exists()  # nothing written


def test_demo_through_a_lossy_relay_still_delivers_every_reliable_message(qn_ok):
    r = qn_ok("demo", "-seconds", "1.5", "-clients", "2", "-loss", "20")
    assert r.text.splitlines()[-1] == "demo OK"
    summary = r.text[r.text.index("summary:") :]
    assert "(100.0%)" in next(x for x in summary.splitlines() if "reliable ordered" in x)
    lost = next(x for x in summary.splitlines() if "packets lost" in x)
    assert int(lost.split("packets lost ")[1].split()[0]) > 0  # the relay did drop


def test_demo_toolkit_shows_certificates_rejected(qn_ok):
    r = qn_ok("demo", "-toolkit")
    assert r.text.splitlines()[-1] == "demo OK"
    assert "rejected, wrong name 'example.com': NameMismatch" in r.text
    assert "rejected, in 30 days (expired): CertificateExpired" in r.text
    assert not Path("ca.pem").exists()  # nothing written without -dir


def test_demo_dir_files_verify_with_openssl(qn_ok, openssl):
    r = qn_ok("demo", "-toolkit", "-dir", "out")
    assert r.text.splitlines()[-1] == "demo OK"
    out = openssl(*sh("verify -CAfile out/ca.pem -verify_hostname localhost out/server.pem"))
    assert out.stdout == b"out/server.pem: OK\n"
    openssl("verify", "-CAfile", "out/ca.pem", "-verify_ip", "::1", "out/server.pem")
    openssl("verify", "-CAfile", "out/ca.pem", "-verify_ip", "127.0.0.1", "out/server.pem")
    assert stat.S_IMODE(os.stat("out/server.key").st_mode) == 0o600
    assert (
        openssl("pkey", "-in", "out/server.key", "-pubout").stdout
        == openssl("x509", "-in", "out/server.pem", "-noout", "-pubkey").stdout
    )
    # The fingerprint the demo printed is the certificate's.
    fp = openssl("x509", "-in", "out/server.pem", "-noout", "-fingerprint", "-sha256").stdout
    assert fp.decode().split("=")[1].strip() in r.text


def test_failed_issue_leaves_no_stray_key(qn, qn_ok):
    qn_ok("ca", "init", "sec", "-passin", "pass:capw")
    serial_before = Path("sec/serial").read_text()
    assert_one_line_error(qn("ca", "issue", "sec", "-subj", "/CN=x", "-passin", "pass:bad"), code=1)
    assert sorted(p.name for p in Path("sec/private").iterdir()) == ["ca.key"]
    assert Path("sec/serial").read_text() == serial_before
