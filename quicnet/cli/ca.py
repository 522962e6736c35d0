"""``ca init|issue|list|revoke|gencrl DIR``: a small on-disk development CA."""

from __future__ import annotations

import os
import sys

from quicnet.cli.common import (
    CliError,
    Parser,
    add_output_flags,
    parse_days,
    pem_or_der,
    read_input,
    read_passphrase,
    write_output,
)
from quicnet.cli.extensions import parse_extensions
from quicnet.crypto import CryptoError, load_certificate, load_csr
from quicnet.crypto.caindex import OPENSSL_REASONS, openssl_serial
from quicnet.crypto.devca import DevCA
from quicnet.crypto.revocation import RevocationReason

_ACTIONS = ("init", "issue", "list", "revoke", "gencrl")
_USAGE = "usage: quicnet ca init|issue|list|revoke|gencrl DIR [options]"


def _reason(name: str | None) -> RevocationReason | None:
    """``-crl_reason``: one of OpenSSL's names, any case."""
    if name is None:
        return None
    for reason in OPENSSL_REASONS:
        if reason.name.lower() == name.lower():
            return reason
    known = ", ".join(r.name for r in OPENSSL_REASONS)
    raise CliError(f"-crl_reason {name!r} is not a CRL reason; known: {known}")


def _serial_of(authority: DevCA, target: str) -> int:
    """``ca revoke DIR CERT``: a certificate file this CA issued, or a hex serial."""
    if os.path.exists(target) or not all(c in "0123456789abcdefABCDEF" for c in target):
        cert = load_certificate(read_input(target, "certificate"))
        if not authority.certificate.issued(cert):
            raise CliError(f"{target} was not issued by the CA in {authority.directory}")
        return cert.serial_number
    return int(target, 16)


def _revoke(p: Parser, rest: list[str]) -> int:
    p.add_argument("cert", metavar="CERT", help="the certificate file (or its serial, hex)")
    p.add_argument("-crl_reason", metavar="REASON", help="why (OpenSSL's reason names)")
    a = p.parse_args(rest)
    authority = DevCA(a.dir, read_passphrase(a.passin))
    serial = _serial_of(authority, a.cert)
    try:
        entry = authority.revoke(serial, _reason(a.crl_reason))
    except CryptoError as exc:
        raise CliError(str(exc)) from None
    if entry.status == "V":
        print(f"released serial {openssl_serial(serial)} from hold")
    else:
        reason = entry.reason.name if entry.reason else "no reason given"
        print(f"revoked serial {openssl_serial(serial)} ({reason})")
    print(f"run 'quicnet ca gencrl {a.dir} -out crl.pem' to publish it")
    return 0


def _gencrl(p: Parser, rest: list[str]) -> int:
    add_output_flags(p)
    p.add_argument("-crldays", type=int, default=30, help="days until nextUpdate (default 30)")
    a = p.parse_args(rest)
    authority = DevCA(a.dir, read_passphrase(a.passin))
    crl = authority.gencrl(days=parse_days(a.crldays))
    write_output(a.out, crl.to_pem() if pem_or_der(a.outform) else crl.to_der())
    if a.out:
        print(
            f"CRL number {crl.crl_number} lists {len(crl.revocations)} revoked certificate(s); "
            f"next update {crl.next_update:%Y-%m-%d %H:%M} UTC",
            file=sys.stderr,
        )
    return 0


def ca(argv: list[str]) -> int:
    """``quicnet ca init|issue|list|revoke|gencrl DIR``: a development CA kept in a directory."""
    if not argv or argv[0] not in _ACTIONS:
        raise CliError(_USAGE)
    action, rest = argv[0], argv[1:]
    p = Parser(f"ca {action}", "A development certificate authority kept in a directory.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("-passin", metavar="ARG", help="passphrase of the CA key")
    if action == "init":
        p.add_argument("-subj", default="/CN=quicnet development CA")
        p.add_argument("-days", type=int, default=3650)
        a = p.parse_args(rest)
        authority = DevCA.init(
            a.dir, a.subj, days=parse_days(a.days), password=read_passphrase(a.passin)
        )
        print(f"created CA {authority.certificate.subject!r} in {a.dir}")
        print(f"trust this root: {a.dir}/ca.pem")
        return 0
    if action == "issue":
        p.add_argument("-subj", help="subject of a new key and certificate")
        p.add_argument("-in", dest="input", metavar="CSR", help="issue for this CSR instead")
        p.add_argument("-addext", action="append", default=[], metavar="EXT=VALUE")
        p.add_argument("-days", type=int, default=365)
        p.add_argument("-algorithm", default="EC", help="key algorithm for -subj (default EC)")
        a = p.parse_args(rest)
        if not (a.subj or a.input):
            raise CliError("ca issue needs -subj /CN=name or -in request.csr")
        ext = parse_extensions(a.addext)
        csr = load_csr(read_input(a.input, "request")) if a.input else None
        authority = DevCA(a.dir, read_passphrase(a.passin))
        issued = authority.issue(
            a.subj,
            names=ext.names,
            csr=csr,
            days=parse_days(a.days),
            is_ca=bool(ext.is_ca),
            key_algorithm=a.algorithm,
        )
        print(f"issued serial {issued.serial_number:X} to {issued.subject!r}")
        print(f"certificate: {issued.certificate_path}")
        if issued.key_path:
            print(f"key:         {issued.key_path}")
        return 0
    if action == "revoke":
        return _revoke(p, rest)
    if action == "gencrl":
        return _gencrl(p, rest)
    a = p.parse_args(rest)
    authority = DevCA(a.dir, read_passphrase(a.passin))
    status = {e.serial_number: e for e in authority.index()}
    for item in authority.issued():
        entry = status.get(item.serial_number)
        state = "valid"
        if entry is not None and entry.status == "R":
            state = f"revoked ({entry.reason.name if entry.reason else 'no reason'})"
        sys.stdout.write(
            f"{item.serial_number:X}\t{item.not_after:%Y-%m-%d}\t{item.subject}\t{state}\n"
        )
    return 0
