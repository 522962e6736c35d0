"""``quicnet ech``: ECH keys and configs (draft-ietf-tls-esni), and the ECH flags of
s_client/s_server/q_client/q_server.

``quicnet ech -genkey -public_name NAME -out F`` writes the server's key file
(PKCS#8 private key, then an ``ECHCONFIG`` PEM block holding the
ECHConfigList: the layout ``openssl ech`` writes) and prints the
ECHConfigList in base64 for clients (``-ech_config``). ``-in F -text`` prints
a key file's or config list's configs.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys

from quicnet.cli.common import CliError, Parser, read_input, write_output
from quicnet.errors import QuicnetError
from quicnet.tls.ech import (
    ECHKey,
    decode_ech_config_list,
    dump_ech_key_file,
    encode_ech_config_list,
    generate_ech_key,
    load_ech_configs,
    load_ech_key_file,
)
from quicnet.tls.errors import ECHRejected

__all__ = [
    "add_ech_client_flags",
    "add_ech_server_flags",
    "ech",
    "ech_client_options",
    "ech_server_keys",
    "rejected_error",
]


def ech(argv: list[str]) -> int:
    """``quicnet ech``: make Encrypted Client Hello keys and configs (draft-ietf-tls-esni)."""
    p = Parser("ech", "Encrypted Client Hello keys and configs (draft-ietf-tls-esni).")
    p.add_argument("-genkey", action="store_true", help="make a key and its ECHConfig")
    p.add_argument("-public_name", metavar="NAME", help="the name the outer ClientHello shows")
    p.add_argument("-config_id", type=int, metavar="N", help="0-255 (default: random)")
    p.add_argument(
        "-max_name_length", type=int, default=0, metavar="N", help="pad inner names to N bytes"
    )
    p.add_argument("-out", metavar="FILE", help="where -genkey writes the key file (0600)")
    p.add_argument("-in", dest="infile", metavar="FILE", help="a key file or ECHConfigList")
    p.add_argument("-text", action="store_true", help="print the configs of -in")
    a = p.parse_args(argv)
    if a.genkey:
        if not a.public_name:
            raise CliError("-genkey needs -public_name")
        if a.config_id is not None and not 0 <= a.config_id <= 255:
            raise CliError("-config_id must be 0 to 255")
        key = generate_ech_key(
            a.public_name, config_id=a.config_id, maximum_name_length=a.max_name_length
        )
        data = dump_ech_key_file([key])
        if a.out:
            write_output(a.out, data, private=True)
        else:
            sys.stdout.buffer.write(data)
        config_list = encode_ech_config_list([key.config])
        sys.stdout.write(base64.b64encode(config_list).decode("ascii") + "\n")
        return 0
    if not a.infile:
        raise CliError("give -genkey, or -in FILE (with -text)")
    try:
        configs = decode_ech_config_list(load_ech_configs(read_input(a.infile, "ECH file")))
    except QuicnetError as exc:
        raise CliError(f"cannot read {a.infile}: {exc}") from None
    for config in configs:
        suites = ", ".join(f"KDF 0x{k:04x} AEAD 0x{x:04x}" for k, x in config.cipher_suites)
        sys.stdout.write(
            f"ECHConfig version 0xfe0d config_id {config.config_id}\n"
            f"  public_name: {config.public_name}\n"
            f"  KEM: 0x{config.kem_id:04x}, suites: {suites}\n"
            f"  maximum_name_length: {config.maximum_name_length}\n"
        )
    if not a.text:
        sys.stdout.write(base64.b64encode(encode_ech_config_list(configs)).decode() + "\n")
    return 0


def add_ech_client_flags(p: argparse.ArgumentParser) -> None:
    """Add ``-ech_config`` (an ECHConfigList, base64 or a file) and ``-ech_grease`` to ``p``."""
    p.add_argument(
        "-ech_config",
        "-ech_config_list",
        dest="ech_config",
        metavar="B64|FILE",
        help="encrypt the ClientHello to this ECHConfigList (base64, or a file)",
    )
    p.add_argument(
        "-ech_grease", action="store_true", help="send a GREASE ECH extension (no config)"
    )


def ech_client_options(a: argparse.Namespace) -> tuple[bytes | None, bool]:
    """``(ech_configs, ech_grease)`` from the flags."""
    if a.ech_config is None:
        return None, a.ech_grease
    spec = a.ech_config
    data = read_input(spec, "ECH config") if os.path.exists(spec) else spec.encode()
    try:
        return load_ech_configs(data), a.ech_grease
    except QuicnetError as exc:
        raise CliError(f"-ech_config: {exc}") from None


def add_ech_server_flags(p: argparse.ArgumentParser) -> None:
    """Add the repeatable ``-ech_key FILE`` to ``p``."""
    p.add_argument(
        "-ech_key",
        action="append",
        default=[],
        metavar="FILE",
        help="an ECH key file ('quicnet ech -genkey'); repeatable",
    )


def ech_server_keys(a: argparse.Namespace) -> list[ECHKey]:
    """The ECH keys of every ``-ech_key`` file; :class:`CliError` naming a bad one."""
    keys: list[ECHKey] = []
    for path in a.ech_key:
        try:
            keys += load_ech_key_file(read_input(path, "ECH key file"))
        except QuicnetError as exc:
            raise CliError(f"-ech_key {path}: {exc}") from None
    return keys


def rejected_error(exc: ECHRejected) -> CliError:
    """One line telling the user how to retry (draft-ietf-tls-esni §6.1.6)."""
    if exc.retry_configs:
        b64 = base64.b64encode(exc.retry_configs).decode("ascii")
        return CliError(f"the server rejected ECH; retry with -ech_config {b64}")
    return CliError("the server rejected ECH and sent no retry configs")
