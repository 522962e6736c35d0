"""``verify``: validate certificates against trusted roots."""

from __future__ import annotations

import datetime
import sys

from quicnet.cli.common import Parser, read_input
from quicnet.crypto import Certificate, CertificateError, load_certificates, verify_chain
from quicnet.crypto.verify import Purpose

_PURPOSES: dict[str, Purpose] = {"sslserver": "server", "sslclient": "client", "any": "any"}


def verify(argv: list[str]) -> int:
    p = Parser("verify", "Validate certificates against trusted roots (RFC 5280).")
    p.add_argument("-CAfile", required=True, metavar="FILE", help="trusted root certificates")
    p.add_argument("-untrusted", action="append", default=[], metavar="FILE", help="intermediates")
    p.add_argument("-verify_hostname", metavar="NAME")
    p.add_argument("-verify_ip", metavar="IP")
    p.add_argument("-attime", type=int, metavar="EPOCH", help="validate at this Unix time")
    p.add_argument("-purpose", choices=sorted(_PURPOSES), default="any")
    p.add_argument("certificates", nargs="*", metavar="cert.pem")
    a = p.parse_args(argv)

    roots = load_certificates(read_input(a.CAfile, "CA file"))
    pool: list[Certificate] = []
    for path in a.untrusted:
        pool += load_certificates(read_input(path, "untrusted file"))
    at = datetime.datetime.fromtimestamp(a.attime, datetime.UTC) if a.attime is not None else None
    name = a.verify_hostname or a.verify_ip
    failed = False
    for path in a.certificates or ["-"]:
        label = "stdin" if path == "-" else path
        chain = load_certificates(read_input(path, "certificate"))
        try:
            verify_chain(
                chain[:1] + chain[1:] + pool, roots, name=name, at=at, purpose=_PURPOSES[a.purpose]
            )
        except CertificateError as exc:
            sys.stderr.write(f"{label}: verification failed: {exc}\n")
            failed = True
            continue
        print(f"{label}: OK")
    if failed:
        raise SystemExit(2)
    return 0
