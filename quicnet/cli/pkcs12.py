"""``pkcs12``: write a key and its certificates to a PKCS#12 file, or read one back.

``-export`` packs ``-in``/``-inkey``/``-certfile`` into ``-out`` under the
``-passout`` passphrase; without ``-export`` the ``-in`` file's certificates
and key come out as PEM (the key encrypted with ``-passout`` unless
``-noenc``). Flags and their meaning are OpenSSL's (RFC 7292).
"""

from __future__ import annotations

import argparse
import sys

from quicnet.cli.common import CliError, Parser, read_input, read_passphrase, write_output
from quicnet.crypto import CryptoError, load_certificates, load_private_key
from quicnet.crypto.pkcs12 import export_pkcs12, load_pkcs12

__all__ = ["pkcs12"]


def _passphrase(spec: str | None, fallback: str | None) -> bytes | None:
    return read_passphrase(spec if spec is not None else fallback)


def _export(a: argparse.Namespace) -> int:
    if not a.out:
        raise CliError("-export needs -out FILE (a PKCS#12 file is binary)")
    certs = load_certificates(read_input(a.input, "certificate")) if not a.nocerts else []
    key = None
    if not a.nokeys:
        key_data = read_input(a.inkey or a.input, "private key")
        try:
            key = load_private_key(key_data, read_passphrase(a.passin))
        except CryptoError as exc:
            raise CliError(f"cannot read the private key ({a.inkey or a.input}): {exc}") from None
    extra = load_certificates(read_input(a.certfile, "-certfile")) if a.certfile else []
    # The end-entity certificate is the one that matches the key (OpenSSL's rule).
    leaf = next((c for c in certs if key and c.public_key() == key.public_key()), None)
    if key is not None and leaf is None:
        raise CliError("no certificate in -in matches the private key")
    chain = [c for c in certs if c != leaf] + [c for c in extra if c not in certs]
    password = _passphrase(a.passout, a.password)
    if key is not None and not password:
        raise CliError(
            "the key would be stored unencrypted: give -passout pass:X (quicnet does not prompt)"
        )
    data = export_pkcs12(key, leaf, chain, name=a.name, password=password)
    write_output(a.out, data, private=key is not None)
    return 0


def _parse(a: argparse.Namespace) -> int:
    bundle = load_pkcs12(read_input(a.input, "PKCS#12 file"), _passphrase(a.passin, a.password))
    if a.noout:
        print("MAC verified OK", file=sys.stderr)
        return 0
    out = b""
    if not a.nocerts:
        own = [bundle.certificate] if bundle.certificate and not a.cacerts else []
        cas = list(bundle.additional_certificates) if not a.clcerts else []
        for cert in own + cas:
            label = (
                f"friendlyName: {bundle.friendly_name}\n"
                if cert in own and bundle.friendly_name
                else ""
            )
            out += f"{label}subject={cert.subject}\nissuer={cert.issuer}\n".encode() + cert.to_pem()
    key = bundle.private_key
    if key is not None and not a.nokeys and not a.clcerts and not a.cacerts:
        if a.noenc:
            out += key.to_pem()
        else:
            password = _passphrase(a.passout, None)
            if not password:
                raise CliError("give -noenc to write the key unencrypted, or -passout pass:X")
            out += key.to_pem(password)
    write_output(a.out, out, private=key is not None and not a.nokeys and a.noenc)
    return 0


def pkcs12(argv: list[str]) -> int:
    """``quicnet pkcs12``: write (``-export``) or read a PKCS#12 file (RFC 7292)."""
    p = Parser("pkcs12", "Write (-export) or read a PKCS#12 file (RFC 7292).")
    p.add_argument("-export", action="store_true", help="create a PKCS#12 file")
    p.add_argument("-in", dest="input", metavar="FILE", help="input (default: stdin)")
    p.add_argument("-out", metavar="FILE", help="output (default: stdout)")
    p.add_argument("-inkey", metavar="FILE", help="-export: the private key (default: -in)")
    p.add_argument("-certfile", metavar="FILE", help="-export: more certificates (the chain)")
    p.add_argument("-name", metavar="NAME", help="-export: the friendly name")
    p.add_argument("-passin", metavar="ARG", help="passphrase of the input (key or PKCS#12)")
    p.add_argument("-passout", metavar="ARG", help="passphrase of the output")
    p.add_argument("-password", metavar="ARG", help="passphrase of the PKCS#12 file, either way")
    p.add_argument("-nokeys", action="store_true", help="leave out private keys")
    p.add_argument("-nocerts", action="store_true", help="leave out certificates")
    p.add_argument("-clcerts", action="store_true", help="only the end-entity certificate")
    p.add_argument("-cacerts", action="store_true", help="only the CA certificates")
    p.add_argument("-noenc", action="store_true", help="write the key unencrypted")
    p.add_argument("-nodes", dest="noenc", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-noout", action="store_true", help="only check the file (and its MAC)")
    a = p.parse_args(argv)
    if a.nokeys and a.nocerts:
        raise CliError("-nokeys with -nocerts leaves nothing")
    return _export(a) if a.export else _parse(a)
