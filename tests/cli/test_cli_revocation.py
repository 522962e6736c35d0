"""``ca revoke|gencrl``, ``verify -CRLfile -crl_check``, ``pkcs12``, and revoked servers,
checked against the real ``openssl`` (verify, ca, crl, pkcs12) both ways."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, cli_server

import quicnet

WORKTREE = str(Path(quicnet.__file__).resolve().parents[1])


def _issue(qn_ok, ca: str, cn: str) -> tuple[str, str, str]:
    """(serial, certificate path, key path) of a fresh certificate for localhost."""
    r = qn_ok(
        "ca",
        "issue",
        ca,
        "-subj",
        f"/CN={cn}",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
    )
    serial = re.search(r"^issued serial ([0-9A-F]+) ", r.text, re.M)
    cert = re.search(r"^certificate: (\S+)$", r.text, re.M)
    key = re.search(r"^key: +(\S+)$", r.text, re.M)
    assert serial and cert and key, r.text
    return serial.group(1), cert.group(1), key.group(1)


@pytest.fixture
def season(qn_ok) -> dict[str, tuple[str, str, str]]:
    """A dev CA ``ca`` with a revoked and a good certificate, and its CRL in crl.pem."""
    qn_ok("ca", "init", "ca", "-subj", "/CN=Season CA")
    bad, good = _issue(qn_ok, "ca", "bad"), _issue(qn_ok, "ca", "good")
    r = qn_ok("ca", "revoke", "ca", bad[1], "-crl_reason", "keyCompromise")
    assert f"revoked serial {bad[0]} (keyCompromise)" in r.text
    qn_ok("ca", "gencrl", "ca", "-out", "crl.pem")
    return {"bad": bad, "good": good}


def test_openssl_verify_honours_our_crl(season, openssl):
    bad, good = season["bad"][1], season["good"][1]
    r = openssl(
        "verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "ca/ca.pem", bad, check=False
    )
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and "error 23" in out and "certificate revoked" in out, out
    openssl("verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "ca/ca.pem", good)
    text = openssl("crl", "-in", "crl.pem", "-noout", "-text").stdout.decode()
    assert "Key Compromise" in text and re.search(r"CRL Number: *\n *1\n", text), text


def test_our_verify(season, qn, qn_ok):
    bad, good = season["bad"], season["good"]
    r = qn("verify", "-CAfile", "ca/ca.pem", "-CRLfile", "crl.pem", "-crl_check", bad[1], good[1])
    assert r.code == 2
    assert f"{good[1]}: OK" in r.text
    assert f"serial {bad[0]}" in r.err and "keyCompromise" in r.err
    # -crl_check without a CRL fails closed; without -crl_check nothing is required.
    r = qn("verify", "-CAfile", "ca/ca.pem", "-crl_check", good[1])
    assert r.code == 2 and "no CRL" in r.err
    qn_ok("verify", "-CAfile", "ca/ca.pem", good[1])
    qn_ok("verify", "-CAfile", "ca/ca.pem", "-CRLfile", "crl.pem", "-crl_check_all", good[1])
    # After the CRL's nextUpdate (30 days by default) it says nothing: refused.
    later = str(int(time.time()) + 40 * 86400)
    r = qn(
        "verify",
        "-CAfile",
        "ca/ca.pem",
        "-CRLfile",
        "crl.pem",
        "-crl_check",
        "-attime",
        later,
        good[1],
    )
    assert r.code == 2 and "expired" in r.err


def test_crl_signed_by_another_ca_fails_closed(season, qn, qn_ok, openssl):
    # A CA with the same name and another key publishes an empty CRL.
    qn_ok("ca", "init", "impostor", "-subj", "/CN=Season CA")
    qn_ok("ca", "gencrl", "impostor", "-out", "forged.pem")
    good = season["good"][1]
    r = qn("verify", "-CAfile", "ca/ca.pem", "-CRLfile", "forged.pem", "-crl_check", good)
    assert r.code == 2 and "does not verify" in r.err
    r = openssl(
        "verify", "-crl_check", "-CRLfile", "forged.pem", "-CAfile", "ca/ca.pem", good, check=False
    )
    assert r.returncode != 0  # openssl agrees: error 8, CRL signature failure


def test_openssl_ca_over_our_directory(season, qn, qn_ok, openssl):
    """``openssl ca`` revokes in our index.txt and makes the CRL; quicnet verify honours it."""
    Path("ca.cnf").write_text(
        "[ca]\ndefault_ca = d\n[d]\ndir = ca\ndatabase = $dir/index.txt\n"
        "crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/private/ca.key\n"
        "new_certs_dir = $dir/certs\nserial = $dir/serial\ndefault_md = sha256\n"
        "default_crl_days = 2\npolicy = p\n[p]\ncommonName = supplied\n"
    )
    good = season["good"]
    openssl("ca", "-config", "ca.cnf", "-revoke", good[1], "-crl_reason", "superseded")
    openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", "theirs.crl")
    der = openssl("crl", "-in", "theirs.crl", "-outform", "DER").stdout
    Path("theirs.der").write_bytes(der)
    r = qn("verify", "-CAfile", "ca/ca.pem", "-CRLfile", "theirs.der", "-crl_check", good[1])
    assert r.code == 2 and f"serial {good[0]}" in r.err and "superseded" in r.err
    listing = qn_ok("ca", "list", "ca").text
    assert "revoked (superseded)" in listing and "revoked (keyCompromise)" in listing
    # Our next CRL continues openssl's numbering (it made number 2).
    qn_ok("ca", "gencrl", "ca", "-out", "next.pem")
    assert (
        "CRL Number: \n                3"
        in openssl("crl", "-in", "next.pem", "-noout", "-text").stdout.decode()
    )


def test_ca_revoke_errors_are_one_line(season, qn, qn_ok):
    bad, good = season["bad"], season["good"]
    assert_one_line_error(qn("ca", "revoke", "ca", bad[1]), mentions="already revoked")
    assert_one_line_error(
        qn("ca", "revoke", "ca", good[1], "-crl_reason", "sneezed"), mentions="keyCompromise"
    )
    assert_one_line_error(qn("ca", "revoke", "ca", "0ABC"), mentions="not in")
    qn_ok("ca", "init", "other")
    stranger = _issue(qn_ok, "other", "stranger")
    assert_one_line_error(qn("ca", "revoke", "ca", stranger[1]), mentions="not issued by")
    # Hold, then release by serial.
    qn_ok("ca", "revoke", "ca", good[0], "-crl_reason", "certificateHold")
    assert "released" in qn_ok("ca", "revoke", "ca", good[0], "-crl_reason", "removeFromCRL").text


def test_pkcs12_export_read_by_openssl(season, qn, qn_ok, openssl):
    _, cert, key = season["good"]
    qn_ok(
        "pkcs12",
        "-export",
        "-in",
        cert,
        "-inkey",
        key,
        "-certfile",
        "ca/ca.pem",
        "-name",
        "srv",
        "-out",
        "srv.p12",
        "-passout",
        "pass:pw",
    )
    out = openssl("pkcs12", "-in", "srv.p12", "-passin", "pass:pw", "-noenc").stdout.decode()
    assert "friendlyName: srv" in out and out.count("BEGIN CERTIFICATE") == 2
    assert "BEGIN PRIVATE KEY" in out
    assert_one_line_error(
        qn("pkcs12", "-export", "-in", cert, "-inkey", key, "-out", "x.p12"), mentions="-passout"
    )
    assert_one_line_error(
        qn("pkcs12", "-in", "srv.p12", "-passin", "pass:nope", "-noenc"), mentions="passphrase"
    )


def test_pkcs12_from_openssl_read_by_us(season, qn, qn_ok, openssl):
    _, cert, key = season["good"]
    openssl(
        "pkcs12",
        "-export",
        "-in",
        cert,
        "-inkey",
        key,
        "-certfile",
        "ca/ca.pem",
        "-out",
        "o.p12",
        "-passout",
        "pass:pw",
    )
    certs = qn_ok("pkcs12", "-in", "o.p12", "-passin", "pass:pw", "-nokeys").out
    assert certs.count(b"BEGIN CERTIFICATE") == 2 and b"PRIVATE KEY" not in certs
    qn_ok("pkcs12", "-in", "o.p12", "-passin", "pass:pw", "-nocerts", "-noenc", "-out", "k.pem")
    assert (
        openssl("pkey", "-in", "k.pem", "-pubout").stdout
        == openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    )
    enc = qn_ok(
        "pkcs12", "-in", "o.p12", "-passin", "pass:pw", "-nocerts", "-passout", "pass:kk"
    ).out
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in enc
    openssl("pkey", "-passin", "pass:kk", "-noout", stdin=enc)
    assert_one_line_error(qn("pkcs12", "-in", cert, "-passin", "pass:pw"), mentions="PKCS#12")


def test_s_client_refuses_a_revoked_s_server(season, qn, qn_ok, monkeypatch):
    """s_server serves the revoked certificate from a .p12; s_client with the CRL refuses it."""
    monkeypatch.setenv("PYTHONPATH", WORKTREE)
    _, cert, key = season["bad"]
    qn_ok("pkcs12", "-export", "-in", cert, "-inkey", key, "-out", "bad.p12", "-passout", "pass:pw")
    with cli_server(
        "s_server", "-accept", "127.0.0.1:0", "-cert", "bad.p12", "-pass", "pass:pw"
    ) as srv:
        r = qn(
            "s_client",
            "-connect",
            f"127.0.0.1:{srv.port}",
            "-servername",
            "localhost",
            "-CAfile",
            "ca/ca.pem",
            "-CRLfile",
            "crl.pem",
            "-crl_check",
            "-quiet",
        )
        err = srv.stop()
    assert_one_line_error(r, code=1, mentions="revoked")
    assert "keyCompromise" in r.err
    # The server did present the .p12's certificate (the refusal names its serial).
    assert season["bad"][0] in r.err and "Traceback" not in err, err


def test_q_client_refuses_a_revoked_q_server(season, monkeypatch):
    """The same over QUIC: q_server -cert f.p12, q_client -CRLfile -crl_check."""
    import subprocess
    import sys

    monkeypatch.setenv("PYTHONPATH", WORKTREE)
    _, cert, key = season["bad"]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "quicnet",
            "pkcs12",
            "-export",
            "-in",
            cert,
            "-inkey",
            key,
            "-out",
            "bad.p12",
            "-passout",
            "pass:pw",
        ],
        check=True,
        timeout=60,
    )
    with cli_server(
        "q_server", "-accept", "127.0.0.1:0", "-cert", "bad.p12", "-pass", "pass:pw"
    ) as srv:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "quicnet",
                "q_client",
                "-connect",
                f"127.0.0.1:{srv.port}",
                "-servername",
                "localhost",
                "-CAfile",
                "ca/ca.pem",
                "-CRLfile",
                "crl.pem",
                "-crl_check",
            ],
            input=b"hello",
            capture_output=True,
            timeout=60,
        )
        srv.stop()
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "revoked" in err and "keyCompromise" in err and "Traceback" not in err
