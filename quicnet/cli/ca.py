"""``ca init|issue|list DIR``: a small on-disk development CA."""

from __future__ import annotations

import sys

from quicnet.cli.common import CliError, Parser, parse_days, read_input, read_passphrase
from quicnet.cli.extensions import parse_extensions
from quicnet.crypto import load_csr
from quicnet.crypto.devca import DevCA

_USAGE = "usage: quicnet ca init|issue|list DIR [options]"


def ca(argv: list[str]) -> int:
    if not argv or argv[0] not in ("init", "issue", "list"):
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
    a = p.parse_args(rest)
    authority = DevCA(a.dir, read_passphrase(a.passin))
    for item in authority.issued():
        sys.stdout.write(f"{item.serial_number:X}\t{item.not_after:%Y-%m-%d}\t{item.subject}\n")
    return 0
