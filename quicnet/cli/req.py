"""``req``: make or check a CSR, or a self-signed certificate with ``-x509``."""

from __future__ import annotations

import argparse
import sys

from quicnet.cli.common import (
    CliError,
    Parser,
    add_output_flags,
    parse_days,
    parse_serial,
    pem_or_der,
    read_input,
    read_passphrase,
    write_output,
)
from quicnet.cli.extensions import parse_extensions
from quicnet.cli.keys import key_from_spec
from quicnet.crypto import (
    PrivateKey,
    load_csr,
    load_private_key,
    make_csr,
    self_signed_certificate,
)


def _new_key(spec: str, pkeyopts: list[str]) -> PrivateKey:
    """``-newkey rsa:3072``, ``-newkey ec`` (with -pkeyopt), ``-newkey ed25519``."""
    algorithm, _, param = spec.partition(":")
    opts = list(pkeyopts)
    if algorithm.lower() == "rsa" and param:
        opts.append(f"rsa_keygen_bits:{param}")
    elif algorithm.lower() == "ec" and param:
        opts.append(f"ec_paramgen_curve:{param}")
    return key_from_spec(algorithm, opts)


def req(argv: list[str]) -> int:
    """``quicnet req``: make a CSR (or a self-signed certificate) or check one, as openssl req."""
    p = Parser("req", "Make a certificate signing request, or check one.")
    p.add_argument("-new", action="store_true", help="make a new request")
    p.add_argument("-x509", action="store_true", help="make a self-signed certificate instead")
    p.add_argument("-key", metavar="FILE", help="the private key to sign with")
    p.add_argument("-newkey", metavar="ALG[:BITS]", help="make a new key (rsa:3072, ec, ed25519)")
    p.add_argument("-pkeyopt", action="append", default=[], metavar="OPT:VALUE")
    p.add_argument("-keyout", metavar="FILE", help="where -newkey writes the key")
    p.add_argument("-nodes", "-noenc", action="store_true", help="accepted: keys are unencrypted")
    p.add_argument("-passin", metavar="ARG")
    p.add_argument("-subj", metavar="/CN=name", help="subject name")
    p.add_argument("-addext", action="append", default=[], metavar="EXT=VALUE")
    p.add_argument("-days", type=int, default=30)
    p.add_argument("-set_serial", metavar="N", help="serial number (decimal or 0x hex)")
    p.add_argument("-in", dest="input", metavar="FILE", help="a request to read")
    p.add_argument("-inform", choices=("PEM", "DER", "pem", "der"), help="ignored: detected")
    p.add_argument("-verify", action="store_true", help="check the request's signature")
    p.add_argument("-text", action="store_true")
    p.add_argument("-noout", action="store_true")
    p.add_argument("-subject", action="store_true", help="print the subject")
    add_output_flags(p)
    a = p.parse_args(argv)

    if a.input and a.x509:
        return _self_sign_request(a)
    if not (a.new or a.x509 or a.newkey) or a.input:
        return _check_request(a)
    if a.key and a.newkey:
        raise CliError("give -key or -newkey, not both")
    if a.key:
        key = load_private_key(read_input(a.key, "key"), read_passphrase(a.passin))
    elif a.newkey:
        key = _new_key(a.newkey, a.pkeyopt)
        keyout = key.to_pem()
        if a.keyout:
            write_output(a.keyout, keyout, private=True)
        else:
            sys.stderr.write("note: writing the new private key to standard output (use -keyout)\n")
            write_output(None, keyout)
    else:
        raise CliError("-new needs -key FILE or -newkey ALG")
    if not a.subj:
        raise CliError("-subj is required (for example -subj /CN=example.com)")
    ext = parse_extensions(a.addext)
    if a.x509:
        serial = parse_serial(a.set_serial)
        # OpenSSL's default config makes `req -x509` a CA certificate.
        is_ca = ext.is_ca if ext.is_ca is not None else True
        cert = self_signed_certificate(
            key,
            a.subj,
            names=ext.names,
            days=parse_days(a.days),
            is_ca=is_ca,
            path_length=ext.path_length,
            serial_number=serial,
        )
        out = b"" if a.noout else (cert.to_pem() if pem_or_der(a.outform) else cert.to_der())
        if a.text:
            out = cert.to_text().encode() + out
    else:
        csr = make_csr(key, a.subj, names=ext.names)
        out = b"" if a.noout else (csr.to_pem() if pem_or_der(a.outform) else csr.to_der())
        if a.text:
            out = csr.to_text().encode() + out
    write_output(a.out, out)
    return 0


def _self_sign_request(a: argparse.Namespace) -> int:
    """``req -x509 -in r.csr -key k.pem``: a self-signed certificate from a request."""
    if not a.key:
        raise CliError("req -x509 -in needs -key FILE to sign with")
    csr = load_csr(read_input(a.input, "request"))
    csr.verify_signature()
    key = load_private_key(read_input(a.key, "key"), read_passphrase(a.passin))
    if key.public_key() != csr.public_key():
        raise CliError("-key does not match the request's public key")
    ext = parse_extensions(a.addext)
    names = (
        ext.names
        if ext.has_names
        else [f"DNS:{n}" for n in csr.dns_names] + [f"IP:{i}" for i in csr.ip_addresses]
    )
    cert = self_signed_certificate(
        key,
        a.subj or csr.subject,
        names=names,
        days=parse_days(a.days),
        is_ca=ext.is_ca if ext.is_ca is not None else True,
        path_length=ext.path_length,
        serial_number=parse_serial(a.set_serial),
    )
    out = b"" if a.noout else (cert.to_pem() if pem_or_der(a.outform) else cert.to_der())
    if a.text:
        out = cert.to_text().encode() + out
    write_output(a.out, out)
    return 0


def _check_request(a: argparse.Namespace) -> int:
    csr = load_csr(read_input(a.input, "request"))
    out = b""
    if a.verify:
        csr.verify_signature()
        sys.stderr.write("Certificate request self-signature verify OK\n")
    if a.subject:
        out += f"subject={csr.subject}\n".encode()
    if a.text:
        out += csr.to_text().encode()
    if not a.noout:
        out += csr.to_pem() if pem_or_der(a.outform) else csr.to_der()
    write_output(a.out, out)
    return 0
