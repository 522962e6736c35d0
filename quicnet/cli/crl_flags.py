"""``-CRLfile``, ``-crl_check``, ``-crl_check_all``: what verify, s_client and q_client share."""

from __future__ import annotations

import argparse

from quicnet.cli.common import read_input
from quicnet.crypto.crl import CertificateRevocationList, load_crls
from quicnet.crypto.revocation import RevocationCheck

__all__ = ["add_crl_flags", "crl_options"]


def add_crl_flags(p: argparse.ArgumentParser, *, check_all: bool) -> None:
    """``-CRLfile F`` (repeatable), ``-crl_check`` and, for verify, ``-crl_check_all``."""
    p.add_argument("-CRLfile", action="append", default=[], metavar="FILE", help="CRLs (PEM/DER)")
    p.add_argument("-crl_check", action="store_true", help="the leaf must have a current CRL")
    if check_all:
        p.add_argument(
            "-crl_check_all", action="store_true", help="every certificate must have a current CRL"
        )


def crl_options(
    a: argparse.Namespace,
) -> tuple[list[CertificateRevocationList], RevocationCheck]:
    """The CRLs read and whose status must be known.

    Unlike OpenSSL, -CRLfile alone is not ignored: a certificate its current CRL
    lists is refused; -crl_check and -crl_check_all also require a CRL to exist.
    """
    crls = [c for path in a.CRLfile for c in load_crls(read_input(path, "CRL file"))]
    if getattr(a, "crl_check_all", False):
        return crls, "chain"
    if a.crl_check:
        return crls, "leaf"
    return crls, "none"
