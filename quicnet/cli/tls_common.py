"""Flags s_client and s_server share: groups, cipher suites, key log, trust."""

from __future__ import annotations

import argparse
import contextlib
import os
import ssl
from collections.abc import Callable

from quicnet.cli.common import CliError, read_input
from quicnet.crypto import (
    Certificate,
    CryptoError,
    NamedGroup,
    PrivateKey,
    load_certificate,
    load_certificates,
    load_private_key,
)
from quicnet.crypto.ocsp import load_ocsp_response
from quicnet.crypto.pem import pem_blocks
from quicnet.crypto.pkcs12 import is_pkcs12, load_pkcs12
from quicnet.tls import CipherSuite
from quicnet.tls.keylog import key_log_file

_GROUP_NAMES = {
    "x25519": NamedGroup.x25519,
    "x448": NamedGroup.x448,
    "p-256": NamedGroup.secp256r1,
    "secp256r1": NamedGroup.secp256r1,
    "prime256v1": NamedGroup.secp256r1,
    "p-384": NamedGroup.secp384r1,
    "secp384r1": NamedGroup.secp384r1,
    "p-521": NamedGroup.secp521r1,
    "secp521r1": NamedGroup.secp521r1,
    "x25519mlkem768": NamedGroup.X25519MLKEM768,
}


def parse_groups(text: str) -> list[NamedGroup]:
    """OpenSSL's ``-groups X25519:P-256``."""
    groups = []
    for name in text.split(":"):
        try:
            groups.append(_GROUP_NAMES[name.strip().lower()])
        except KeyError:
            raise CliError(
                f"unknown group {name!r}; known: {', '.join(sorted(_GROUP_NAMES))}"
            ) from None
    return groups


def parse_ciphersuites(text: str) -> list[CipherSuite]:
    """OpenSSL's ``-ciphersuites TLS_AES_128_GCM_SHA256:...``."""
    suites = []
    for name in text.split(":"):
        try:
            suites.append(CipherSuite[name.strip()])
        except KeyError:
            known = ", ".join(s.name for s in CipherSuite)
            raise CliError(f"unknown TLS 1.3 cipher suite {name!r}; known: {known}") from None
    return suites


def key_log_writer(path: str | None) -> Callable[[str], None] | None:
    """``-keylogfile``: a key-log callback appending SSLKEYLOGFILE lines to ``path``, or
    None (a client then follows the SSLKEYLOGFILE environment variable)."""
    return None if path is None else key_log_file(path)


def parse_pins(values: list[str]) -> list[bytes]:
    """``-pin HEX``: SHA-256 fingerprints of a certificate or its public key (colons allowed)."""
    pins = []
    for value in values:
        try:
            pin = bytes.fromhex(value.replace(":", ""))
        except ValueError:
            pin = b""
        if len(pin) != 32:
            raise CliError(f"-pin {value!r} is not a SHA-256 fingerprint (64 hex digits)")
        pins.append(pin)
    return pins


def add_tls_flags(p: argparse.ArgumentParser) -> None:
    """Add the TLS flags ``s_client`` and ``s_server`` share (ALPN, groups, suites, keys...)."""
    p.add_argument("-alpn", metavar="P1,P2", help="ALPN protocols, comma separated")
    p.add_argument("-groups", metavar="G1:G2", help="key exchange groups, in preference order")
    p.add_argument("-ciphersuites", metavar="S1:S2", help="TLS 1.3 cipher suites")
    p.add_argument("-keylogfile", metavar="FILE", help="append secrets (SSLKEYLOGFILE format)")
    p.add_argument("-CAfile", metavar="FILE", help="trusted roots for the peer's certificate")
    p.add_argument("-cert", metavar="FILE", help="our certificate chain (PEM), or a .p12")
    p.add_argument("-key", metavar="FILE", help="our private key")
    p.add_argument("-pass", dest="passin", metavar="ARG", help="passphrase of -key")
    p.add_argument("-quiet", action="store_true", help="print no session information")
    p.add_argument("-tls1_3", action="store_true", help="accepted: quicnet speaks only TLS 1.3")


def load_roots(path: str | None) -> list[Certificate]:
    """``-CAfile``, or the system's bundle when none is given."""
    if path:
        return load_certificates(read_input(path, "CA file"))
    default = ssl.get_default_verify_paths().cafile
    if default and os.path.exists(default):
        with open(default, "rb") as f:
            data = f.read()
        roots = []
        for label, block in pem_blocks(data):
            if label == "CERTIFICATE":
                with contextlib.suppress(CryptoError):  # skip what we cannot parse
                    roots.append(load_certificate(block))
        return roots
    return []


def load_staple(path: str) -> bytes:
    """``-status_file``: a DER OCSP response (checked to parse, so errors show at start)."""
    return load_ocsp_response(read_input(path, "OCSP response")).to_der()


def load_identity(
    cert: str | None, key: str | None, password: bytes | None
) -> tuple[list[Certificate], PrivateKey | None]:
    """``-cert``/``-key``/``-pass``: PEM or DER files, or one PKCS#12 file as ``-cert``."""
    if not cert:
        return [], None
    data = read_input(cert, "certificate")
    if is_pkcs12(data):
        if key:
            raise CliError(f"{cert} is a PKCS#12 file, which holds the key: drop -key")
        identity = load_pkcs12(data, password).identity()
        return list(identity.certificate_chain), identity.private_key
    chain = load_certificates(data)
    private = load_private_key(read_input(key or cert, "key"), password)
    return chain, private
