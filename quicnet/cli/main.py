"""Entry point of the ``quicnet`` command."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

from quicnet import __version__
from quicnet.errors import QuicnetError

Verb = Callable[[list[str]], int]


def _verbs() -> dict[str, tuple[Verb, str]]:
    from quicnet.cli.ca import ca
    from quicnet.cli.connect import connect
    from quicnet.cli.demo import demo
    from quicnet.cli.digest import dgst, rand
    from quicnet.cli.ech import ech
    from quicnet.cli.keys import genpkey, pkey
    from quicnet.cli.ocsp import ocsp
    from quicnet.cli.pkcs12 import pkcs12
    from quicnet.cli.q_client import q_client
    from quicnet.cli.q_server import q_server
    from quicnet.cli.req import req
    from quicnet.cli.s_client import s_client
    from quicnet.cli.s_server import s_server
    from quicnet.cli.serve import serve
    from quicnet.cli.speed import speed
    from quicnet.cli.verify import verify
    from quicnet.cli.x509 import x509

    return {
        "demo": (demo, "a local game server and bot clients, live; -toolkit: the crypto tour"),
        "serve": (serve, "a real-time chat relay server (prints the 'connect' command)"),
        "connect": (connect, "a real-time chat client: stdin lines out, messages in"),
        "genpkey": (genpkey, "generate a private key"),
        "pkey": (pkey, "read, convert or print a key"),
        "req": (req, "make or check a CSR; -x509 for a self-signed certificate"),
        "x509": (x509, "print a certificate, or issue one from a CSR with -req"),
        "verify": (verify, "validate certificates against trusted roots"),
        "dgst": (dgst, "hash files"),
        "rand": (rand, "random bytes"),
        "speed": (speed, "time AEADs, signatures, key exchange, TLS and QUIC (openssl speed)"),
        "ca": (ca, "a small on-disk development CA: init, issue, list, revoke, gencrl"),
        "pkcs12": (pkcs12, "write (-export) or read a PKCS#12 file"),
        "ocsp": (ocsp, "OCSP requests, responses and a responder (RFC 6960)"),
        "ech": (ech, "Encrypted Client Hello keys and configs (-genkey, -in -text)"),
        "s_client": (s_client, "TLS 1.3 client (stdin to the server, replies to stdout)"),
        "s_server": (s_server, "TLS 1.3 server; -www answers GET / with a status page"),
        "q_client": (q_client, "QUIC client: stdin on a stream, or hq-interop downloads"),
        "q_server": (q_server, "QUIC server: echo, or -www DIR over hq-interop"),
    }


def _usage(verbs: dict[str, tuple[Verb, str]]) -> str:
    lines = [f"quicnet {__version__}: OpenSSL-style verbs over quicnet's toolkit", "", "verbs:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in verbs.items()]
    lines += ["", "'quicnet VERB -help' lists a verb's flags (OpenSSL's names)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run one verb; errors are one line on stderr and a non-zero exit status."""
    args = sys.argv[1:] if argv is None else argv
    verbs = _verbs()
    if not args or args[0] in ("-h", "-help", "--help", "help"):
        sys.stdout.write(_usage(verbs))
        return 0
    if args[0] in ("version", "-version", "--version"):
        print(f"quicnet {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in verbs:
        sys.stderr.write(f"quicnet: unknown verb {name!r} (try 'quicnet help')\n")
        return 2
    rest = ["--help" if a == "-help" else a for a in rest]
    try:
        return verbs[name][0](rest)
    except QuicnetError as exc:
        sys.stderr.write(f"quicnet {name}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("QUICNET_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"quicnet {name}: internal error: {type(exc).__name__}: {exc} "
            "(set QUICNET_DEBUG=1 for a traceback, and please report it)\n"
        )
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
