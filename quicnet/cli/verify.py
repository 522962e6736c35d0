"""``verify``: validate certificates against trusted roots."""

from __future__ import annotations

import datetime
import sys

from quicnet.cli.common import Parser, read_input
from quicnet.cli.crl_flags import add_crl_flags, crl_options
from quicnet.crypto import Certificate, CertificateError, load_certificates, verify_chain
from quicnet.crypto.verify import Purpose

_PURPOSES: dict[str, Purpose] = {"sslserver": "server", "sslclient": "client", "any": "any"}


def verify(argv: list[str]) -> int:
    """``quicnet verify``: validate certificates against trusted roots (RFC 5280 §6).

    Prints ``OK`` or the reason per certificate; exits with status 2 if any failed.
    """
    p = Parser("verify", "Validate certificates against trusted roots (RFC 5280).")
    p.add_argument("-CAfile", required=True, metavar="FILE", help="trusted root certificates")
    p.add_argument("-untrusted", action="append", default=[], metavar="FILE", help="intermediates")
    p.add_argument("-verify_hostname", metavar="NAME")
    p.add_argument("-verify_ip", metavar="IP")
    p.add_argument("-attime", type=int, metavar="EPOCH", help="validate at this Unix time")
    p.add_argument("-purpose", choices=sorted(_PURPOSES), default="any")
    p.add_argument(
        "-partial_chain",
        action="store_true",
        help="trust CAfile certificates that are not self-signed (intermediates) as anchors",
    )
    add_crl_flags(p, check_all=True)
    p.add_argument("certificates", nargs="*", metavar="cert.pem")
    a = p.parse_args(argv)
    crls, revocation = crl_options(a)

    roots = load_certificates(read_input(a.CAfile, "CA file"))
    pool: list[Certificate] = []
    if not a.partial_chain:  # like OpenSSL: only self-signed CAfile entries are anchors
        pool += [c for c in roots if not c.is_self_issued]
        roots = [c for c in roots if c.is_self_issued]
    for path in a.untrusted:
        pool += load_certificates(read_input(path, "untrusted file"))
    at = datetime.datetime.fromtimestamp(a.attime, datetime.UTC) if a.attime is not None else None
    names = [n for n in (a.verify_hostname, a.verify_ip) if n]
    failed = False
    for path in a.certificates or ["-"]:
        label = "stdin" if path == "-" else path
        chain = load_certificates(read_input(path, "certificate"))
        try:
            for name in names or [None]:
                verify_chain(
                    chain + pool,
                    roots,
                    name=name,
                    at=at,
                    purpose=_PURPOSES[a.purpose],
                    crls=crls,
                    revocation_check=revocation,
                )
        except CertificateError as exc:
            sys.stderr.write(f"{label}: verification failed: {exc}\n")
            failed = True
            continue
        print(f"{label}: OK")
    if failed:
        raise SystemExit(2)
    return 0
