"""``s_client -status``: print the server's stapled OCSP response, and check it."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from quicnet.crypto import Certificate, CryptoError
from quicnet.crypto.ocsp import load_ocsp_response
from quicnet.tls import HandshakeComplete

_RULE = "=" * 38


def describe_staple(handshake: HandshakeComplete, roots: Sequence[Certificate]) -> None:
    """As ``openssl s_client -status`` does (on stderr), plus the verdict of checking it
    against the leaf's issuer (from the chain sent, or the trusted roots)."""
    err = sys.stderr
    staple = handshake.ocsp_staple
    if staple is None:
        err.write("OCSP response: no response sent\n")
        err.flush()
        return
    try:
        response = load_ocsp_response(staple)
    except CryptoError as exc:
        err.write(f"OCSP response: unreadable: {exc}\n")
        err.flush()
        return
    err.write(f"OCSP response: \n{_RULE}\n{response.to_text()}{_RULE}\n")
    chain = handshake.peer_certificates
    leaf = chain[0] if chain else None
    issuer = next((c for c in [*chain[1:], *roots] if leaf and c.issued(leaf)), None)
    if leaf is None or issuer is None:
        err.write("OCSP staple not checked: the leaf's issuer is unknown\n")
    else:
        try:
            single = response.verify(leaf, issuer).require_good()
            err.write(f"OCSP staple verify OK: {single.status.value}\n")
        except CryptoError as exc:
            err.write(f"OCSP staple verify failed: {exc}\n")
    err.flush()
