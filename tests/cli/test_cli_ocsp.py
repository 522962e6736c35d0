"""``quicnet ocsp`` against ``openssl ocsp``, both ways (RFC 6960).

The CA is ``quicnet ca``'s directory; ``openssl ca -revoke`` revokes in it, so
the responders (quicnet's and OpenSSL's) read an index.txt written by OpenSSL.
The delegated responder certificate is issued by ``openssl x509 -req`` with
extendedKeyUsage OCSPSigning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, cli_server
from conftest import OpenSSL, Runner

import quicnet
from quicnet.crypto import load_certificate
from quicnet.crypto.ocsp import CertStatus, load_ocsp_request, load_ocsp_response

REPO = Path(quicnet.__file__).resolve().parents[1]

_CA_CONFIG = """[ca]
default_ca = dev
[dev]
database = ca/index.txt
certificate = ca/ca.pem
private_key = ca/private/ca.key
default_md = sha256
"""
_SIGNER_EXT = "extendedKeyUsage = OCSPSigning\nbasicConstraints = CA:FALSE\n"


@dataclass
class Setup:
    good: str
    revoked: str
    signer: str = "signer.pem"
    signer_key: str = "signer.key"

    def responder_flags(self) -> list[str]:
        return [
            "-index",
            "ca/index.txt",
            "-rsigner",
            self.signer,
            "-rkey",
            self.signer_key,
            "-CA",
            "ca/ca.pem",
        ]


@pytest.fixture
def setup(work: Path, qn_ok: Runner, openssl: OpenSSL) -> Setup:
    """``quicnet ca`` issues two leaves; ``openssl ca`` revokes one; ``openssl x509`` a signer."""
    qn_ok("ca", "init", "ca", "-subj", "/CN=OCSP CLI CA")
    qn_ok("ca", "issue", "ca", "-subj", "/CN=good", "-addext", "subjectAltName=DNS:good.example")
    qn_ok("ca", "issue", "ca", "-subj", "/CN=revoked")
    good, revoked = sorted((work / "ca" / "certs").iterdir(), key=lambda p: int(p.stem, 16))
    (work / "ca.cnf").write_text(_CA_CONFIG)
    openssl("ca", "-config", "ca.cnf", "-revoke", revoked, "-crl_reason", "keyCompromise")
    assert "\tkeyCompromise" not in (work / "ca" / "index.txt").read_text()  # time,reason
    assert ",keyCompromise\t" in (work / "ca" / "index.txt").read_text()
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "signer.key", "-subj", "/CN=OCSP CLI Responder", "-out", "signer.csr")  # fmt: skip
    (work / "signer.ext").write_text(_SIGNER_EXT)
    openssl("x509", "-req", "-in", "signer.csr", "-CA", "ca/ca.pem", "-CAkey", "ca/private/ca.key",
            "-days", "2", "-extfile", "signer.ext", "-set_serial", "4242", "-out", "signer.pem")  # fmt: skip
    return Setup(str(good.relative_to(work)), str(revoked.relative_to(work)))


# Requests --------------------------------------------------------------------------------


def test_quicnet_request_is_read_by_openssl(setup: Setup, qn_ok: Runner, openssl: OpenSSL) -> None:
    qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.good, "-reqout", "req.der")
    text = openssl("ocsp", "-reqin", "req.der", "-req_text").stdout.decode()
    serial = load_certificate(Path(setup.good).read_bytes()).serial_number
    assert f"Serial Number: {serial:X}" in text
    assert "OCSP Nonce" in text
    qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.good, "-reqout", "plain.der", "-no_nonce")
    assert "OCSP Nonce" not in openssl("ocsp", "-reqin", "plain.der", "-req_text").stdout.decode()


def test_openssl_request_is_answered_by_quicnet(
    setup: Setup, qn_ok: Runner, openssl: OpenSSL
) -> None:
    openssl("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.revoked, "-reqout", "req.der")
    qn_ok("ocsp", *setup.responder_flags(), "-reqin", "req.der", "-respout", "resp.der")
    nonce = load_ocsp_request(Path("req.der").read_bytes()).nonce
    response = load_ocsp_response(Path("resp.der").read_bytes())
    assert nonce is not None and response.nonce == nonce  # RFC 8954: echoed
    assert response.responses[0].status is CertStatus.REVOKED


# quicnet's responses, checked by OpenSSL ---------------------------------------------------


@pytest.mark.parametrize("signer", ["delegated", "ca"])
def test_quicnet_response_is_accepted_by_openssl(
    setup: Setup, qn_ok: Runner, openssl: OpenSSL, signer: str
) -> None:
    flags = setup.responder_flags()
    if signer == "ca":
        flags = [
            "-index",
            "ca/index.txt",
            "-rsigner",
            "ca/ca.pem",
            "-rkey",
            "ca/private/ca.key",
            "-CA",
            "ca/ca.pem",
        ]
    for cert, status in ((setup.good, "good"), (setup.revoked, "revoked")):
        qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", cert, "-reqout", "req.der")
        qn_ok("ocsp", *flags, "-reqin", "req.der", "-respout", "resp.der")
        p = openssl("ocsp", "-respin", "resp.der", "-CAfile", "ca/ca.pem", "-issuer", "ca/ca.pem",
                    "-cert", cert, "-no_nonce")  # fmt: skip
        assert "Response verify OK" in p.stderr.decode()
        out = p.stdout.decode()
        assert f"{cert}: {status}" in out
        if status == "revoked":
            assert "Reason: keyCompromise" in out


# OpenSSL's responses, checked by quicnet ---------------------------------------------------


def test_openssl_response_is_verified_by_quicnet(
    setup: Setup, qn: Runner, qn_ok: Runner, openssl: OpenSSL
) -> None:
    for cert, status in ((setup.good, "good"), (setup.revoked, "revoked")):
        qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", cert, "-reqout", "req.der")
        openssl(
            "ocsp",
            *setup.responder_flags(),
            "-reqin",
            "req.der",
            "-respout",
            "resp.der",
            "-ndays",
            "1",
        )
        r = qn_ok("ocsp", "-respin", "resp.der", "-reqin", "req.der", "-CAfile", "ca/ca.pem",
                  "-issuer", "ca/ca.pem", "-cert", cert, "-resp_text")  # fmt: skip
        assert "Response verify OK" in r.err
        assert f"{cert}: {status}" in r.text
        assert "OCSP Response Status: successful (0x0)" in r.text
        assert "Responder Id: CN=OCSP CLI Responder" in r.text
    # A response about the revoked certificate says nothing about the good one.
    r = qn(
        "ocsp",
        "-respin",
        "resp.der",
        "-CAfile",
        "ca/ca.pem",
        "-issuer",
        "ca/ca.pem",
        "-cert",
        setup.good,
    )
    assert_one_line_error(r, code=2, mentions="no status for serial")
    # The nonce of another request does not match.
    qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.revoked, "-reqout", "other.der")
    r = qn("ocsp", "-respin", "resp.der", "-reqin", "other.der", "-CAfile", "ca/ca.pem",
           "-issuer", "ca/ca.pem", "-cert", setup.revoked)  # fmt: skip
    assert_one_line_error(r, code=2, mentions="nonce")


def test_response_from_an_untrusted_ca_fails_verification(
    setup: Setup, qn: Runner, qn_ok: Runner
) -> None:
    qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.good, "-reqout", "req.der")
    qn_ok("ocsp", *setup.responder_flags(), "-reqin", "req.der", "-respout", "resp.der")
    qn_ok("ca", "init", "other", "-subj", "/CN=Other CA")
    r = qn(
        "ocsp",
        "-respin",
        "resp.der",
        "-CAfile",
        "other/ca.pem",
        "-issuer",
        "ca/ca.pem",
        "-cert",
        setup.good,
    )
    assert_one_line_error(r, code=2, mentions="not a -CAfile certificate")
    r = qn("ocsp", "-respin", "resp.der", "-issuer", "ca/ca.pem", "-cert", setup.good)
    assert_one_line_error(r, code=1, mentions="-CAfile")


def test_garbage_response_is_a_one_line_error(work: Path, qn: Runner) -> None:
    (work / "junk.der").write_bytes(b"\x30\x03\x02\x01")
    assert_one_line_error(
        qn("ocsp", "-respin", "junk.der", "-noverify"), code=1, mentions="OCSP response"
    )


def test_responder_error_status_is_reported(setup: Setup, qn: Runner, qn_ok: Runner) -> None:
    qn_ok("ca", "init", "other", "-subj", "/CN=Other CA")
    qn_ok("ca", "issue", "other", "-subj", "/CN=stranger")
    stranger = next((Path("other") / "certs").iterdir())
    qn_ok("ocsp", "-issuer", "other/ca.pem", "-cert", stranger, "-reqout", "req.der")
    qn_ok("ocsp", *setup.responder_flags(), "-reqin", "req.der", "-respout", "resp.der")
    r = qn("ocsp", "-respin", "resp.der", "-CAfile", "other/ca.pem")
    assert_one_line_error(r, code=1, mentions="unauthorized (6)")


# The HTTP responder on loopback (RFC 6960 Appendix A) ---------------------------------------


def test_http_responder_answers_openssl_and_quicnet(
    setup: Setup, work: Path, qn_ok: Runner, openssl: OpenSSL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with cli_server(
        "ocsp", "-port", "0", *setup.responder_flags(), "-nrequest", "3", cwd=work
    ) as server:
        assert server.host == "127.0.0.1"
        url = f"http://127.0.0.1:{server.port}/"
        p = openssl(
            "ocsp", "-issuer", "ca/ca.pem", "-cert", setup.good, "-url", url, "-CAfile", "ca/ca.pem"
        )
        assert f"{setup.good}: good" in p.stdout.decode()
        assert "Response verify OK" in p.stderr.decode()
        p = openssl(
            "ocsp",
            "-issuer",
            "ca/ca.pem",
            "-cert",
            setup.revoked,
            "-url",
            url,
            "-CAfile",
            "ca/ca.pem",
        )
        assert f"{setup.revoked}: revoked" in p.stdout.decode()
        r = qn_ok("ocsp", "-issuer", "ca/ca.pem", "-cert", setup.revoked, "-url", url, "-CAfile",
                  "ca/ca.pem", "-respout", "http.der")  # fmt: skip
        assert f"{setup.revoked}: revoked" in r.text and "Response verify OK" in r.err
        assert server.proc.wait(timeout=30) == 0  # -nrequest 3: it stops by itself
    assert load_ocsp_response((work / "http.der").read_bytes()).nonce is not None
