"""``x509``: print certificates, or issue one from a CSR with ``-req``."""

from __future__ import annotations

import argparse
import datetime
import os

from quicnet.cli.common import (
    CliError,
    Parser,
    add_output_flags,
    openssl_hex,
    openssl_time,
    parse_days,
    parse_serial,
    pem_or_der,
    read_input,
    read_passphrase,
    write_output,
)
from quicnet.cli.extensions import ExtensionSpec, parse_extfile
from quicnet.crypto import (
    HASH_NAMES,
    Certificate,
    format_fingerprint,
    issue_certificate,
    load_certificate,
    load_csr,
    load_private_key,
    random_bytes,
)

_OPENSSL_HASH_LABEL = {
    "sha1": "SHA1",
    "sha224": "SHA2-224",
    "sha256": "SHA2-256",
    "sha384": "SHA2-384",
    "sha512": "SHA2-512",
    "sha512-256": "SHA2-512/256",
    "md5": "MD5",
}


def hash_label(name: str) -> str:
    """OpenSSL 3's display name of a hash: ``SHA2-256``, ``BLAKE2B-512``."""
    if name in _OPENSSL_HASH_LABEL:
        return _OPENSSL_HASH_LABEL[name]
    if name.startswith("blake2"):
        return name[:7].upper() + "-" + name[7:]
    return name.upper()


def add_hash_flags(p: argparse.ArgumentParser, default: str | None) -> None:
    """Add one flag per hash (``-sha256``, ...) to ``p``; ``default`` when none is given."""
    for name in HASH_NAMES:
        p.add_argument(f"-{name}", dest="hash", action="store_const", const=name)
    p.set_defaults(hash=default)


def _next_serial(ca_path: str, serial_file: str | None, create: bool) -> int | None:
    """OpenSSL's ``-CAserial``/``-CAcreateserial``: a hex serial file beside the CA."""
    path = serial_file or os.path.splitext(ca_path)[0] + ".srl"
    if not (create or serial_file):
        return None
    try:
        with open(path) as f:
            serial = int(f.read().strip(), 16) + 1
    except FileNotFoundError:
        if not create:
            raise CliError(f"serial file {path!r} does not exist (use -CAcreateserial)") from None
        serial = int.from_bytes(random_bytes(16), "big") >> 1
    except ValueError:
        raise CliError(f"serial file {path!r} does not hold a hex number") from None
    write_output(path, f"{openssl_hex(serial)}\n".encode())
    return serial


def _issue(a: argparse.Namespace) -> Certificate:
    if not (a.CA and a.CAkey):
        raise CliError("-req needs -CA FILE and -CAkey FILE")
    csr = load_csr(read_input(a.input, "request"))
    ca = load_certificate(read_input(a.CA, "CA certificate"))
    ca_key = load_private_key(read_input(a.CAkey, "CA key"), read_passphrase(a.passin))
    spec = ExtensionSpec()
    if a.extfile:
        spec = parse_extfile(read_input(a.extfile, "extension file").decode(), a.extensions)
    names: list[str] | None = spec.names if spec.has_names else None
    if names is None and a.copy_extensions == "none":
        names = []
    serial = parse_serial(a.set_serial) or _next_serial(a.CA, a.CAserial, a.CAcreateserial)
    return issue_certificate(
        csr,
        ca,
        ca_key,
        days=parse_days(a.days),
        is_ca=bool(spec.is_ca),
        path_length=spec.path_length,
        names=names,
        serial_number=serial,
    )


def x509(argv: list[str]) -> int:
    """``quicnet x509``: print a certificate or issue one from a CSR (``-req``), as openssl x509."""
    p = Parser("x509", "Print a certificate, or issue one from a request (-req).")
    p.add_argument("-in", dest="input", metavar="FILE", help="input (default: standard input)")
    p.add_argument("-inform", choices=("PEM", "DER", "pem", "der"), help="ignored: detected")
    p.add_argument("-req", action="store_true", help="the input is a CSR to issue from")
    p.add_argument("-CA", metavar="FILE", help="issuer certificate for -req")
    p.add_argument("-CAkey", metavar="FILE", help="issuer key for -req")
    p.add_argument("-CAserial", metavar="FILE")
    p.add_argument("-CAcreateserial", action="store_true")
    p.add_argument("-set_serial", metavar="N")
    p.add_argument("-passin", metavar="ARG")
    p.add_argument("-days", type=int, default=30)
    p.add_argument("-extfile", metavar="FILE", help="subjectAltName/basicConstraints to set")
    p.add_argument("-extensions", metavar="SECTION")
    p.add_argument(
        "-copy_extensions",
        choices=("none", "copy", "copyall"),
        default="copy",
        help="copy the CSR's subjectAltName (default: copy)",
    )
    p.add_argument("-text", action="store_true")
    p.add_argument("-noout", action="store_true")
    p.add_argument("-fingerprint", action="store_true")
    p.add_argument("-subject", action="store_true")
    p.add_argument("-issuer", action="store_true")
    p.add_argument("-serial", action="store_true")
    p.add_argument("-dates", action="store_true")
    p.add_argument("-enddate", action="store_true")
    p.add_argument("-pubkey", action="store_true")
    p.add_argument("-checkend", type=int, metavar="SECONDS")
    add_hash_flags(p, None)
    add_output_flags(p)
    a = p.parse_args(argv)

    cert = _issue(a) if a.req else load_certificate(read_input(a.input, "certificate"))
    lines: list[str] = []
    if a.subject:
        lines.append(f"subject={cert.subject}")
    if a.issuer:
        lines.append(f"issuer={cert.issuer}")
    if a.serial:
        lines.append(f"serial={openssl_hex(cert.serial_number)}")
    if a.dates:
        lines.append(f"notBefore={openssl_time(cert.not_before)}")
    if a.dates or a.enddate:
        lines.append(f"notAfter={openssl_time(cert.not_after)}")
    if a.fingerprint:
        # OpenSSL labels its default digest "SHA1" and a chosen one by its flag name.
        name = a.hash or "sha1"
        label = name if a.hash else "SHA1"
        lines.append(f"{label} Fingerprint={format_fingerprint(cert.fingerprint(name))}")
    out = "".join(line + "\n" for line in lines).encode()
    if a.pubkey:
        out += cert.public_key().to_pem()
    if a.text:
        out += cert.to_text().encode()
    if not a.noout:
        out += cert.to_pem() if pem_or_der(a.outform) else cert.to_der()
    write_output(a.out, out)
    if a.checkend is not None:
        deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=a.checkend)
        if cert.not_after < deadline:
            print("Certificate will expire")
            return 1
        print("Certificate will not expire")
    return 0
