"""``quicnet verify``: results, failure reports, and the same verdicts as ``openssl verify``.

The PKI (root -> intermediate -> leaf, plus a pathlen:0 root and an
unrelated root) is built once per module with ``quicnet req -x509`` and
``quicnet x509 -req -extfile`` (basicConstraints=CA:TRUE).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from ci_support import require_openssl
from cli_helpers import assert_one_line_error, run_subprocess, sh

from quicnet.cli.main import main

IN_TEN_YEARS = str(int(time.time()) + 10 * 365 * 86400)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")

    def q(*argv: str) -> None:  # "@" stands for the PKI directory
        assert main([a.replace("@", f"{d}/") for a in argv]) == 0, argv

    (d / "ca.ext").write_text("basicConstraints=CA:TRUE\n")
    for name in ("root", "int", "leaf", "other", "root0", "int0", "leaf0", "direct"):
        q("genpkey", "-algorithm", "EC", "-out", f"@{name}.key")
    q(*sh("req -x509 -new -key @root.key -subj /CN=Root -days 60 -out @root.pem"))
    q("req", "-x509", "-new", "-key", "@other.key", "-subj", "/CN=Other Root", "-out", "@other.pem")
    q("req", "-new", "-key", "@int.key", "-subj", "/CN=Intermediate", "-out", "@int.csr")
    q(
        *sh(
            "x509 -req -in @int.csr -CA @root.pem -CAkey @root.key -extfile @ca.ext -days 30 -out @int.pem"
        )
    )
    q(
        *sh(
            "req -new -key @leaf.key -subj /CN=leaf.test -addext 'subjectAltName=DNS:leaf.test,DNS:*.wild.test,IP:127.0.0.1' -out @leaf.csr"
        )
    )
    q(*sh("x509 -req -in @leaf.csr -CA @int.pem -CAkey @int.key -days 10 -out @leaf.pem"))
    q(
        *sh(
            "req -new -key @direct.key -subj /CN=direct -addext subjectAltName=DNS:direct.test -out @direct.csr"
        )
    )
    q(*sh("x509 -req -in @direct.csr -CA @root.pem -CAkey @root.key -out @direct.pem"))

    # A root that allows no intermediate CA below it, and a chain that has one.
    q(
        *sh(
            "req -x509 -new -key @root0.key -subj '/CN=Root pathlen 0' -addext basicConstraints=critical,CA:TRUE,pathlen:0 -out @root0.pem"
        )
    )
    q("req", "-new", "-key", "@int0.key", "-subj", "/CN=Int0", "-out", "@int0.csr")
    q(
        *sh(
            "x509 -req -in @int0.csr -CA @root0.pem -CAkey @root0.key -extfile @ca.ext -out @int0.pem"
        )
    )
    q(
        *sh(
            "req -new -key @leaf0.key -subj /CN=leaf0 -addext subjectAltName=DNS:leaf0.test -out @leaf0.csr"
        )
    )
    q(*sh("x509 -req -in @leaf0.csr -CA @int0.pem -CAkey @int0.key -out @leaf0.pem"))

    read = lambda name: (d / name).read_bytes()  # noqa: E731
    (d / "leaf+int.pem").write_bytes(read("leaf.pem") + read("int.pem"))
    (d / "int+leaf.pem").write_bytes(read("int.pem") + read("leaf.pem"))
    (d / "pool.pem").write_bytes(read("other.pem") + read("int.pem") + read("int0.pem"))
    (d / "roots.pem").write_bytes(read("other.pem") + read("root.pem"))
    return d


@pytest.fixture
def in_pki(pki: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(pki)
    return pki


# ---------------------------------------------------------------------------- OK


def test_chain_with_untrusted_intermediate_is_ok(qn, in_pki):
    r = qn(*sh("verify -CAfile root.pem -untrusted int.pem -verify_hostname leaf.test leaf.pem"))
    assert (r.code, r.text, r.err) == (0, "leaf.pem: OK\n", "")


@pytest.mark.parametrize(
    "name_args",
    [
        ["-verify_hostname", "LEAF.test"],
        ["-verify_hostname", "a.wild.test"],
        ["-verify_ip", "127.0.0.1"],
        ["-purpose", "sslserver"],
        ["-purpose", "sslclient"],
    ],
)
def test_names_and_purposes_that_match(qn_ok, in_pki, name_args):
    r = qn_ok("verify", "-CAfile", "root.pem", "-untrusted", "int.pem", *name_args, "leaf.pem")
    assert r.text == "leaf.pem: OK\n"


def test_several_certificates_bundles_and_stdin(qn_ok, in_pki):
    r = qn_ok(*sh("verify -CAfile roots.pem -untrusted pool.pem direct.pem leaf.pem int.pem"))
    assert r.text == "direct.pem: OK\nleaf.pem: OK\nint.pem: OK\n"
    # The intermediates may follow the leaf in its own file (documented).
    assert qn_ok("verify", "-CAfile", "root.pem", "leaf+int.pem").text == "leaf+int.pem: OK\n"
    stdin = (in_pki / "direct.pem").read_bytes()
    assert qn_ok("verify", "-CAfile", "root.pem", stdin=stdin).text == "stdin: OK\n"


def test_der_certificate_is_accepted(qn_ok, in_pki, tmp_path):
    qn_ok("x509", "-in", "leaf.pem", "-outform", "DER", "-out", str(tmp_path / "leaf.der"))
    r = qn_ok("verify", "-CAfile", "root.pem", "-untrusted", "int.pem", str(tmp_path / "leaf.der"))
    assert r.text.endswith("leaf.der: OK\n")


# ---------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["-untrusted", "int.pem", "-verify_hostname", "wrong.test"], "not valid for 'wrong.test'"),
        (["-untrusted", "int.pem", "-verify_hostname", "a.b.wild.test"], "not valid for"),
        (["-untrusted", "int.pem", "-verify_ip", "10.9.9.9"], "not valid for 10.9.9.9"),
        (["-untrusted", "int.pem", "-attime", IN_TEN_YEARS], "expired"),
        (["-untrusted", "int.pem", "-attime", "0"], "not valid before"),
        ([], "which is not a trusted root or a supplied intermediate"),  # no -untrusted
    ],
    ids=["hostname", "wildcard-depth", "ip", "expired", "not-yet-valid", "missing-intermediate"],
)
def test_failures_are_one_line_and_exit_2(qn, in_pki, args, cause):
    r = qn("verify", "-CAfile", "root.pem", *args, "leaf.pem")
    assert_one_line_error(r, code=2, mentions=cause)
    assert r.err.startswith("leaf.pem: verification failed: ")
    assert r.out == b""


def test_unknown_issuer_with_wrong_cafile(qn, in_pki):
    r = qn("verify", "-CAfile", "other.pem", "-untrusted", "int.pem", "leaf.pem")
    assert_one_line_error(r, code=2, mentions="'CN=Root'")
    assert "not a trusted root" in r.err


def test_path_length_violation(qn, in_pki):
    r = qn("verify", "-CAfile", "root0.pem", "-untrusted", "int0.pem", "leaf0.pem")
    assert_one_line_error(r, code=2, mentions="allows 0 intermediate")


def test_one_bad_certificate_among_good_ones(qn, in_pki):
    r = qn(*sh("verify -CAfile root.pem -untrusted int.pem direct.pem leaf0.pem leaf.pem"))
    assert r.code == 2
    assert r.text == "direct.pem: OK\nleaf.pem: OK\n"
    assert r.err_lines == [r.err_lines[0]] and r.err.startswith("leaf0.pem: verification failed")


def test_chain_in_wrong_order_fails_where_the_order_matters(qn, in_pki):
    """Leaf first is a chain; intermediate first makes the intermediate the end entity."""
    good = qn("verify", "-CAfile", "root.pem", "-verify_hostname", "leaf.test", "leaf+int.pem")
    assert good.code == 0
    bad = qn("verify", "-CAfile", "root.pem", "-verify_hostname", "leaf.test", "int+leaf.pem")
    assert_one_line_error(bad, code=2, mentions="'CN=Intermediate' is not valid for 'leaf.test'")


def test_verify_failure_as_a_subprocess(in_pki):
    p = run_subprocess(
        *sh("verify -CAfile root.pem -verify_hostname nope.test direct.pem"), cwd=in_pki
    )
    assert p.returncode == 2
    assert p.stdout == b""
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("direct.pem: verification failed: ") and "nope.test" in err


# ------------------------------------------------------------- same as openssl


CHAIN = "-CAfile root.pem -untrusted int.pem"
SCENARIOS = [
    pytest.param(f"{CHAIN} leaf.pem", True, id="chain"),
    pytest.param(
        "-CAfile root.pem -untrusted pool.pem -verify_hostname leaf.test leaf.pem",
        True,
        id="chain-pool-hostname",
    ),
    pytest.param("-CAfile roots.pem direct.pem", True, id="bundle-of-roots"),
    pytest.param("-CAfile root.pem int.pem", True, id="intermediate-itself"),
    pytest.param(f"{CHAIN} -verify_ip 127.0.0.1 leaf.pem", True, id="ip"),
    pytest.param("-CAfile root.pem leaf.pem", False, id="no-untrusted"),
    pytest.param("-CAfile other.pem -untrusted int.pem leaf.pem", False, id="wrong-cafile"),
    pytest.param(f"{CHAIN} -verify_hostname wrong.test leaf.pem", False, id="wrong-hostname"),
    pytest.param(f"{CHAIN} -verify_ip 10.0.0.1 leaf.pem", False, id="wrong-ip"),
    pytest.param(f"{CHAIN} -attime {IN_TEN_YEARS} leaf.pem", False, id="expired"),
    pytest.param("-CAfile root0.pem -untrusted int0.pem leaf0.pem", False, id="pathlen"),
    pytest.param(
        "-CAfile root.pem -verify_hostname leaf.test int+leaf.pem", False, id="wrong-order"
    ),
    pytest.param(f"{CHAIN} other.pem", False, id="foreign-self-signed"),
    pytest.param(
        f"{CHAIN} -verify_hostname leaf.test -verify_ip 10.9.9.9 leaf.pem",
        False,
        id="hostname-ok-but-ip-wrong",
    ),
    pytest.param(
        "-CAfile int.pem leaf.pem",
        False,
        id="intermediate-as-cafile",
    ),
]


@pytest.mark.openssl
@pytest.mark.parametrize(("command", "expected_ok"), SCENARIOS)
def test_same_verdict_as_openssl(qn, in_pki, command, expected_ok):
    args = sh(command)
    theirs = subprocess.run(
        [require_openssl(), "verify", *args], capture_output=True, cwd=in_pki, timeout=60
    )
    ours = qn("verify", *args)
    assert ours.code != 3, ours.err
    assert (theirs.returncode == 0) is expected_ok, theirs.stderr  # the scenario is what we think
    assert (ours.code == 0) is expected_ok, ours.err
    assert ours.code == theirs.returncode  # 0, or 2 for a failed verification, like OpenSSL


def test_same_verdict_as_openssl_for_a_non_ca_issuer(qn, openssl):
    """A chain whose 'intermediate' is not a CA (made by OpenSSL, which lets you)."""
    openssl(
        *sh(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -subj /CN=R -out root.pem"
        )
    )
    Path("noca.ext").write_text("basicConstraints=CA:FALSE\n")
    for name, issuer in (("mid", "root"), ("leaf", "mid")):
        openssl(
            *sh("req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"),
            *("-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr"),
        )
        openssl(
            *sh("x509 -req -set_serial 7 -extfile noca.ext"),
            *("-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key"),
            *("-out", f"{name}.pem"),
        )
    args = ["-CAfile", "root.pem", "-untrusted", "mid.pem", "leaf.pem"]
    theirs = openssl("verify", *args, check=False)
    ours = qn("verify", *args)
    assert theirs.returncode == 2
    assert_one_line_error(ours, code=2, mentions="not a CA")


@pytest.mark.parametrize(
    ("purpose", "expected_ok"), [("sslserver", False), ("sslclient", True), ("any", True)]
)
def test_purpose_matches_openssl_for_a_client_only_certificate(qn, openssl, purpose, expected_ok):
    openssl(
        *sh(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -subj /CN=CA -out ca.pem"
        )
    )
    openssl(*sh("req -new -newkey ed25519 -nodes -keyout c.key -subj /CN=c -out c.csr"))
    Path("c.ext").write_text("extendedKeyUsage=clientAuth\nsubjectAltName=DNS:c.test\n")
    openssl(
        *sh("x509 -req -in c.csr -CA ca.pem -CAkey ca.key -set_serial 9 -extfile c.ext -out c.pem")
    )
    args = ["-CAfile", "ca.pem", "-purpose", purpose, "c.pem"]
    theirs = openssl("verify", *args, check=False)
    ours = qn("verify", *args)
    assert (theirs.returncode == 0) is expected_ok
    assert ours.code == theirs.returncode, ours.err
    if not expected_ok:
        assert_one_line_error(ours, code=2, mentions="extendedKeyUsage")
