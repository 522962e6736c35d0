"""Bad input: a non-zero exit status, exactly one line on stderr, never a traceback.

Exit status 1 is bad input, 2 a usage error or failed verification, and 3 an
internal error of the CLI (a bug): no input may produce 3.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cli_helpers import QUICNET_EXE, assert_one_line_error, pem_unwrap, pem_wrap, run_subprocess, sh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def pki(qn_ok, work: Path) -> Path:
    """In the working directory: keys, a CA, a CSR, a leaf and broken variants of them."""
    qn_ok("genpkey", "-algorithm", "ed25519", "-out", "k.pem")
    qn_ok("genpkey", "-algorithm", "EC", "-out", "ec.pem")
    qn_ok("genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:x", "-out", "enc.pem")
    qn_ok("genpkey", "-algorithm", "ML-KEM-768", "-out", "kem.pem")
    qn_ok("genpkey", "-algorithm", "EC", "-out", "ca.key")
    qn_ok("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Test CA", "-out", "ca.pem")
    qn_ok(
        *sh(
            "req -new -key ec.pem -subj /CN=leaf.test -addext subjectAltName=DNS:leaf.test -out r.csr"
        )
    )
    qn_ok("x509", "-req", "-in", "r.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-out", "leaf.pem")

    key = Path("ca.key").read_bytes()
    Path("trunc.pem").write_bytes(key[: len(key) // 2])  # no END line
    lines = key.decode().splitlines()
    Path("trunc_body.pem").write_text("\n".join([lines[0], lines[1], lines[-1]]) + "\n")
    Path("leaf.der").write_bytes(pem_unwrap(Path("leaf.pem").read_bytes()))
    Path("trunc.der").write_bytes(Path("leaf.der").read_bytes()[:200])

    csr = bytearray(pem_unwrap(Path("r.csr").read_bytes()))
    csr[-5] ^= 0x01  # inside the signature, which ends the DER
    Path("badsig.csr").write_bytes(pem_wrap("CERTIFICATE REQUEST", bytes(csr)))

    Path("leaf+ca.pem").write_bytes(Path("leaf.pem").read_bytes() + Path("ca.pem").read_bytes())
    Path("ca+leaf.pem").write_bytes(Path("ca.pem").read_bytes() + Path("leaf.pem").read_bytes())
    Path("empty").write_bytes(b"")
    Path("adir").mkdir()
    return work


ISSUE = "x509 -req -in r.csr -CA ca.pem -CAkey ca.key"
NEW = "req -new -key k.pem"

BAD_INPUT = [
    # keys
    ("truncated-pem", "pkey -in trunc.pem -noout", 1, "no private key"),
    ("truncated-pem-body", "pkey -in trunc_body.pem -noout", 1, "not a valid private key"),
    ("wrong-passphrase", "pkey -in enc.pem -passin pass:y", 1, "wrong passphrase"),
    ("missing-passphrase", "pkey -in enc.pem -noout", 1, "passphrase is needed"),
    (
        "passin-unset-env",
        "pkey -in enc.pem -passin env:QUICNET_NO_SUCH_VAR",
        1,
        "QUICNET_NO_SUCH_VAR",
    ),
    ("passin-bad-source", "pkey -in enc.pem -passin x", 1, "passphrase source"),
    ("pubin-with-private-key", "pkey -pubin -in k.pem", 1, "public key"),
    ("key-is-a-cert", "pkey -in ca.pem", 1, "no private key"),
    ("empty-key", "pkey -in empty", 1, "not a valid private key"),
    ("unknown-algorithm", "genpkey -algorithm nope", 1, "unknown key algorithm 'nope'"),
    ("rsa-too-small", "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024", 1, "1024"),
    ("rsa-bits-nan", "genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:big", 1, "not a number"),
    ("unknown-curve", "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-999", 1, "P-999"),
    ("unknown-pkeyopt", "genpkey -algorithm EC -pkeyopt frob:1", 1, "frob"),
    ("pkeyopt-no-colon", "genpkey -algorithm EC -pkeyopt frob", 1, "name:value"),
    ("cipher-without-pass", "genpkey -algorithm EC -aes256", 1, "passphrase"),
    # usage
    ("unknown-verb", "frobnicate", 2, "unknown verb 'frobnicate'"),
    ("unknown-flag", "pkey -frob", 2, "-frob"),
    ("missing-required-flag", "verify leaf.pem", 2, "-CAfile"),
    ("bad-choice", "pkey -in k.pem -outform XML", 2, "XML"),
    ("days-not-a-number", f"{ISSUE} -days ten", 2, "ten"),
    ("rand-not-a-number", "rand -hex abc", 2, "abc"),
    ("rand-negative", "rand -hex -5", 1, "negative"),
    # missing or unreadable input
    ("missing-key-file", "pkey -in missing.pem", 1, "missing.pem"),
    ("missing-cert-file", "x509 -in missing.pem", 1, "missing.pem"),
    ("missing-csr-file", "req -in missing.csr -verify", 1, "missing.csr"),
    ("missing-cafile", "verify -CAfile missing.pem leaf.pem", 1, "missing.pem"),
    ("missing-verify-cert", "verify -CAfile ca.pem missing.pem", 1, "missing.pem"),
    ("missing-cakey", "x509 -req -in r.csr -CA ca.pem -CAkey missing.key", 1, "missing.key"),
    ("missing-extfile", f"{ISSUE} -extfile missing.cnf", 1, "missing.cnf"),
    ("dir-as-pkey-in", "pkey -in adir", 1, "directory"),
    ("dir-as-x509-in", "x509 -in adir", 1, "directory"),
    ("dir-as-req-in", "req -in adir -verify", 1, "directory"),
    ("dir-as-verify-cert", "verify -CAfile ca.pem adir", 1, "directory"),
    ("dir-as-dgst-file", "dgst -sha256 adir", 1, "directory"),
    ("dir-as-out", "pkey -in k.pem -out adir", 1, "directory"),
    # certificates and requests
    ("corrupt-der-cert", "x509 -in trunc.der", 1, "not a valid DER certificate"),
    ("cert-is-a-csr", "x509 -in r.csr", 1, "no CERTIFICATE"),
    ("csr-is-a-cert", "req -in ca.pem -verify", 1, "CERTIFICATE REQUEST"),
    ("empty-cert", "x509 -in empty", 1, "not a valid"),
    ("corrupt-signature-req-verify", "req -in badsig.csr -verify -noout", 1, "signature"),
    (
        "corrupt-signature-x509-req",
        "x509 -req -in badsig.csr -CA ca.pem -CAkey ca.key -out out.pem",
        1,
        "signature",
    ),
    ("subj-garbage", f"{NEW} -subj CN -out out.pem", 1, "'CN'"),
    ("subj-empty-value", f"{NEW} -subj /CN= -out out.pem", 1, "empty value"),
    ("subj-unknown-attribute", f"{NEW} -subj /XYZ=1 -out out.pem", 1, "XYZ"),
    ("subj-bad-country", f"{NEW} -subj /C=USA/CN=x -out out.pem", 1, "C=USA"),
    ("subj-missing", f"{NEW} -out out.pem", 1, "-subj"),
    ("no-key", "req -new -subj /CN=x -out out.pem", 1, "-key"),
    ("key-and-newkey", f"{NEW} -newkey ec -subj /CN=x -out out.pem", 1, "not both"),
    ("san-bogus", f"{NEW} -subj /CN=x -addext subjectAltName=bogus:x -out out.pem", 1, "bogus:x"),
    ("addext-no-equals", f"{NEW} -subj /CN=x -addext subjectAltName -out out.pem", 1, "name=value"),
    (
        "addext-unsupported",
        f"{NEW} -subj /CN=x -addext certificatePolicies=1.2.3 -out out.pem",
        1,
        "certificatePolicies",
    ),
    (
        "pathlen-not-a-number",
        "req -x509 -new -key k.pem -subj /CN=x -addext basicConstraints=CA:TRUE,pathlen:x -out out.pem",
        1,
        "pathlen",
    ),
    (
        "kem-key-cannot-sign",
        "req -x509 -new -key kem.pem -subj /CN=x -out out.pem",
        1,
        "cannot sign",
    ),
    ("issue-without-ca", "x509 -req -in r.csr -out out.pem", 1, "-CA"),
    (
        "issuer-key-mismatch",
        "x509 -req -in r.csr -CA ca.pem -CAkey k.pem -out out.pem",
        1,
        "does not match",
    ),
    (
        "issuer-not-a-ca",
        "x509 -req -in r.csr -CA leaf.pem -CAkey ec.pem -out out.pem",
        1,
        "not a CA",
    ),
    # -CA takes the first certificate of a bundle: the leaf, not the CA after it.
    (
        "ca-bundle-wrong-order",
        "x509 -req -in r.csr -CA leaf+ca.pem -CAkey ca.key -out out.pem",
        1,
        "does not match",
    ),
    ("verify-empty-cafile", "verify -CAfile empty leaf.pem", 1, "not a valid"),
    ("verify-key-as-cafile", "verify -CAfile k.pem leaf.pem", 1, "no CERTIFICATE"),
    # The end entity comes first: CA-first makes the CA the certificate being checked.
    (
        "verify-wrong-order",
        "verify -CAfile ca.pem -verify_hostname leaf.test ca+leaf.pem",
        2,
        "'CN=Test CA' is not valid for 'leaf.test'",
    ),
]


@pytest.mark.parametrize(
    ("command", "code", "mentions"), [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT]
)
def test_bad_input_is_one_line_error(qn, pki, command, code, mentions):
    r = qn(*sh(command))
    assert_one_line_error(r, code=code, mentions=mentions)
    assert r.out == b""
    assert not Path("out.pem").exists()  # nothing half-written


def test_san_ip_that_is_not_an_address_is_rejected(qn, pki):
    r = qn(*sh(f"{NEW} -subj /CN=x -addext subjectAltName=IP:1.2.3 -out out.pem"))
    assert_one_line_error(r, code=1, mentions="1.2.3")
    assert not Path("out.pem").exists()


def test_ca_bundle_in_right_order_issues(qn_ok, pki):
    """The counterpart of ca-bundle-wrong-order: the CA first in the bundle works."""
    qn_ok("x509", "-req", "-in", "r.csr", "-CA", "ca+leaf.pem", "-CAkey", "ca.key", "-out", "o.pem")
    assert qn_ok("verify", "-CAfile", "ca.pem", "o.pem").text == "o.pem: OK\n"


def test_passphrase_for_a_plain_key_is_ignored_like_openssl(qn_ok, pki):
    assert qn_ok("pkey", "-in", "k.pem", "-passin", "pass:unused").out == Path("k.pem").read_bytes()


# ------------------------------------------------------------------ subprocesses


def test_junk_on_stdin_to_pkey_subprocess(tmp_path):
    """Exactly ``echo junk | quicnet pkey -in /dev/stdin``, through a shell."""
    p = subprocess.run(
        [shutil.which("sh") or "/bin/sh", "-c", f"echo junk | '{QUICNET_EXE}' pkey -in /dev/stdin"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert p.returncode == 1
    assert p.stdout == b""
    assert p.stderr == b"quicnet pkey: not a valid private key (PEM or DER)\n"


def test_console_script_and_python_m_run_the_cli(tmp_path):
    key = tmp_path / "k.pem"
    script = subprocess.run(
        [str(QUICNET_EXE), "genpkey", "-algorithm", "ed25519", "-out", str(key)],
        capture_output=True,
        timeout=60,
    )
    assert (script.returncode, script.stdout, script.stderr) == (0, b"", b"")
    module = run_subprocess("pkey", "-in", key, "-text", "-noout")
    assert module.returncode == 0
    assert b"Ed25519 Private-Key" in module.stdout
    assert run_subprocess("version").stdout.startswith(b"quicnet ")
    usage = run_subprocess()
    assert usage.returncode == 0 and b"verbs:" in usage.stdout


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["frobnicate"], 2),
        (["pkey", "-frob"], 2),
        (["x509", "-in", "missing.pem"], 1),
        (["rand", "-hex", "-5"], 1),
        (["genpkey", "-algorithm", "nope"], 1),
    ],
    ids=["unknown-verb", "unknown-flag", "missing-file", "rand-negative", "bad-algorithm"],
)
def test_subprocess_errors_are_one_line_with_exit_code(tmp_path, argv, code):
    p = run_subprocess(*argv, cwd=tmp_path)
    err = p.stderr.decode()
    assert p.returncode == code, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    assert err.startswith("quicnet")


# ------------------------------------------------------- internal errors (bugs)


def _mutate(src: str, dst: str, old: bytes, new: bytes, *, label: str | None = None) -> None:
    """Write ``src`` (PEM) as DER to ``dst`` with the first ``old`` replaced by ``new``."""
    der = pem_unwrap(Path(src).read_bytes())
    assert old in der, (src, old)
    der = der.replace(old, new, 1)
    Path(dst).write_bytes(pem_wrap(label, der) if label else der)


ID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
UNKNOWN_KEY_OID = bytes.fromhex("06072a8648ce3d0263")  # 1.2.840.10045.2.99


@pytest.fixture
def malformed(pki: Path) -> Path:
    """Structurally valid DER with one field a parser only rejects when it reads it."""
    _mutate("leaf.pem", "badversion.der", bytes.fromhex("a003020102"), bytes.fromhex("a003020105"))
    _mutate("leaf.pem", "unknownkey.der", ID_EC_PUBLIC_KEY, UNKNOWN_KEY_OID)
    _mutate("leaf.pem", "badsubject.der", b"\x0c\x09leaf.test", b"\x02\x09leaf.test")
    _mutate(
        "r.csr",
        "badversion.csr",
        bytes.fromhex("020100"),
        bytes.fromhex("020107"),
        label="CERTIFICATE REQUEST",
    )
    _mutate(
        "r.csr", "unknownkey.csr", ID_EC_PUBLIC_KEY, UNKNOWN_KEY_OID, label="CERTIFICATE REQUEST"
    )
    return pki


def _case(command: str, id: str, reason: str):  # reason: the bug it once was
    return pytest.param(command, id=id, marks=())


INTERNAL_ERRORS = [
    _case("req -x509 -new -key k.pem -subj /CN=x -days 0", "req-days-0",
         "req -x509 -days 0 is an internal error (exit 3, ValueError: days must be at least 1)"),
    _case(f"{ISSUE} -days -1", "x509-req-days-negative",
         "x509 -req -days -1 is an internal error (exit 3, ValueError)"),
    _case("ca issue myca -subj /CN=x -days 0", "ca-issue-days-0",
         "ca issue -days 0 is an internal error (exit 3, ValueError)"),
    _case("req -x509 -new -key k.pem -subj /CN=x -set_serial abc", "req-set-serial-garbage",
         "req -x509 -set_serial abc is an internal error (exit 3, int() ValueError)"),
    _case(f"{ISSUE} -set_serial zz", "x509-req-set-serial-garbage",
         "x509 -req -set_serial zz is an internal error (exit 3, int() ValueError)"),
    _case("x509 -in badversion.der -noout", "cert-bad-version-x509",
         "a certificate whose version field is 5 is an internal error (exit 3, pyca InvalidVersion is not caught)"),
    _case("verify -CAfile ca.pem badversion.der", "cert-bad-version-verify",
         "verify of a certificate whose version field is 5 is an internal error (exit 3, InvalidVersion)"),
    _case("req -in badversion.csr -verify -noout", "csr-bad-version-req",
         "a CSR whose version field is 7 is an internal error (exit 3, InvalidVersion)"),
    _case(ISSUE.replace("r.csr", "badversion.csr"), "csr-bad-version-x509-req",
         "x509 -req of a CSR whose version field is 7 is an internal error (exit 3, InvalidVersion)"),
    _case("x509 -in unknownkey.der -text -noout", "cert-unknown-key-text",
         "x509 -text of a certificate with an unknown public-key algorithm is an internal error (exit 3, pyca UnsupportedAlgorithm is not caught)"),
    _case("x509 -in unknownkey.der -pubkey -noout", "cert-unknown-key-pubkey",
         "x509 -pubkey of a certificate with an unknown public-key algorithm is an internal error (exit 3)"),
    _case("req -in unknownkey.csr -text -noout", "csr-unknown-key-text",
         "req -text of a CSR with an unknown public-key algorithm is an internal error (exit 3)"),
    _case("x509 -in badsubject.der -subject -noout", "cert-bad-subject-x509",
         "x509 -subject of a certificate whose CN is an INTEGER is an internal error (exit 3, lazy ValueError from the subject)"),
    _case("verify -CAfile ca.pem badsubject.der", "cert-bad-subject-verify",
         "verify of a certificate whose CN is an INTEGER is an internal error (exit 3, lazy ValueError)"),
]  # fmt: skip


@pytest.mark.parametrize("command", INTERNAL_ERRORS)
def test_malformed_input_is_not_an_internal_error(qn, qn_ok, malformed, command):
    if command.startswith("ca "):
        qn_ok("ca", "init", "myca")
    r = qn(*sh(command))
    assert_one_line_error(r, code=1)


def test_malformed_files_are_otherwise_well_formed(qn_ok, malformed):
    """The mutations above only break the one field: the rest still parses (control)."""
    assert (
        qn_ok("x509", "-in", "unknownkey.der", "-subject", "-noout").text
        == "subject=CN=leaf.test\n"
    )
    # badsubject.der is rejected at load time (names are parsed eagerly), so its
    # control is that only the subject differs from a certificate that loads.
    assert qn_ok("req", "-in", "unknownkey.csr", "-noout").out == b""


# ------------------------------------------------------------------ hypothesis

FUZZ = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
LABELS = [
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "CERTIFICATE",
    "CERTIFICATE REQUEST",
    "PUBLIC KEY",
]
random_input = st.one_of(
    st.binary(max_size=600),
    st.builds(pem_wrap, st.sampled_from(LABELS), st.binary(max_size=600)),
    st.builds(
        lambda prefix, tail: prefix + tail,
        st.sampled_from([b"\x30\x82\x01\x00", b"\x30\x59"]),
        st.binary(max_size=300),
    ),
)

FUZZ_COMMANDS = {
    "pkey": "pkey -in F -text",
    "pkey-pubin": "pkey -pubin -in F -text",
    "x509": "x509 -in F -text -subject -fingerprint -sha256",
    "req-verify": "req -in F -verify -text",
    "verify-cert": "verify -CAfile ca.pem F",
    "verify-cafile": "verify -CAfile F leaf.pem",
    "x509-req": ISSUE.replace("r.csr", "F"),
}


def _assert_clean(r) -> None:
    assert r.code != 3, r.err
    assert "Traceback" not in r.err
    if r.code != 0:
        assert len(r.err_lines) == 1 and r.err.endswith("\n"), r.err


@pytest.mark.parametrize("command", list(FUZZ_COMMANDS))
@FUZZ
@given(data=random_input)
def test_random_bytes_as_input(qn, pki, command, data):
    Path("F").write_bytes(data)
    r = qn(*sh(FUZZ_COMMANDS[command]))
    _assert_clean(r)
    assert r.code in (0, 1, 2)


subjects = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.tuples(st.sampled_from(["CN", "C", "O", "OU", "DC", "UID", "X"]), st.text(max_size=8)),
        max_size=4,
    ).map(lambda parts: "".join(f"/{k}={v}" for k, v in parts)),
).filter(lambda s: "\x00" not in s)
extensions = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda name, value: f"{name}={value}",
        st.sampled_from(["subjectAltName", "basicConstraints"]),
        st.text(max_size=30),
    ),
).filter(lambda s: "\x00" not in s)


@FUZZ
@given(subject=subjects, extension=extensions)
def test_random_subject_and_extension(qn, pki, subject, extension):
    r = qn(
        "req", "-new", "-x509", "-key", "k.pem", "-subj", subject, "-addext", extension, "-noout"
    )
    _assert_clean(r)
