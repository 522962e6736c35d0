"""``genpkey`` and ``pkey``."""

from __future__ import annotations

import argparse

from quicnet.cli.common import (
    CliError,
    Parser,
    add_output_flags,
    cipher_flag,
    pem_or_der,
    read_input,
    read_passphrase,
    write_output,
)
from quicnet.crypto import (
    KEY_ALGORITHMS,
    PrivateKey,
    generate_private_key,
    load_private_key,
    load_public_key,
)


def key_from_spec(algorithm: str, pkeyopts: list[str]) -> PrivateKey:
    """A new key from ``-algorithm`` and ``-pkeyopt`` values."""
    curve = "P-256"
    bits = 2048
    for opt in pkeyopts:
        name, sep, value = opt.partition(":")
        if not sep:
            raise CliError(f"-pkeyopt {opt!r}: expected name:value")
        if name in ("ec_paramgen_curve", "group"):
            curve = value
        elif name == "rsa_keygen_bits":
            try:
                bits = int(value)
            except ValueError:
                raise CliError(f"-pkeyopt rsa_keygen_bits: {value!r} is not a number") from None
        elif name == "rsa_keygen_pubexp":
            if value not in ("65537", "0x10001"):
                raise CliError("only the public exponent 65537 is supported")
        elif name != "ec_param_enc":
            raise CliError(f"-pkeyopt {name!r} is not supported")
    return generate_private_key(algorithm, curve=curve, rsa_bits=bits)


def private_key_output(key: PrivateKey, outform: str, password: bytes | None) -> bytes:
    """``key`` as PKCS#8 PEM or DER per ``outform``, encrypted when ``password`` is given."""
    return key.to_pem(password) if pem_or_der(outform) else key.to_der(password)


def genpkey(argv: list[str]) -> int:
    """``quicnet genpkey -algorithm ALG``: generate a PKCS#8 private key, as ``openssl genpkey``."""
    p = Parser("genpkey", "Generate a private key (PKCS#8).")
    p.add_argument(
        "-algorithm", required=True, help=f"one of: {', '.join(KEY_ALGORITHMS)} (any case)"
    )
    p.add_argument("-pkeyopt", action="append", default=[], metavar="OPT:VALUE")
    p.add_argument("-pass", dest="passout", metavar="ARG", help="passphrase for -aes256")
    p.add_argument("-text", action="store_true", help="also print the key as text")
    add_output_flags(p)
    cipher_flag(p)
    a = p.parse_args(argv)
    key = key_from_spec(a.algorithm, a.pkeyopt)
    password = _encryption_password(a)
    out = private_key_output(key, a.outform, password)
    if a.text:
        out += key.to_text().encode()
    write_output(a.out, out, private=True)
    return 0


def _encryption_password(a: argparse.Namespace) -> bytes | None:
    password = read_passphrase(a.passout)
    if a.encrypt and not password:
        raise CliError("a cipher was given but no passphrase: add -pass pass:... (or env:, file:)")
    return password if a.encrypt else None


def pkey(argv: list[str]) -> int:
    """``quicnet pkey``: read a private or public key, print or convert it, as ``openssl pkey``."""
    p = Parser("pkey", "Read a key; print or convert it.")
    p.add_argument("-in", dest="input", metavar="FILE", help="input (default: standard input)")
    p.add_argument("-inform", choices=("PEM", "DER", "pem", "der"), help="ignored: detected")
    p.add_argument("-passin", metavar="ARG")
    p.add_argument("-passout", metavar="ARG")
    p.add_argument("-pubin", action="store_true", help="the input is a public key")
    p.add_argument("-pubout", action="store_true", help="write the public key")
    p.add_argument("-text", action="store_true")
    p.add_argument("-text_pub", action="store_true")
    p.add_argument("-noout", action="store_true")
    add_output_flags(p)
    cipher_flag(p)
    a = p.parse_args(argv)
    data = read_input(a.input, "key")
    out = b""
    if a.pubin:
        public = load_public_key(data)
        if not a.noout:
            out += public.to_pem() if pem_or_der(a.outform) else public.to_der()
        if a.text or a.text_pub:
            out += public.to_text().encode()
    else:
        key = load_private_key(data, read_passphrase(a.passin))
        if not a.noout:
            if a.pubout:
                public = key.public_key()
                out += public.to_pem() if pem_or_der(a.outform) else public.to_der()
            else:
                out += private_key_output(key, a.outform, _encryption_password(a))
        if a.text_pub:
            out += key.public_key().to_text().encode()
        elif a.text:
            out += key.to_text().encode()
    write_output(a.out, out, private=not (a.pubin or a.pubout))
    return 0
