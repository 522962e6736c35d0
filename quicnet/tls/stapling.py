"""OCSP stapling in TLS 1.3 (RFC 8446 §4.4.2.1, RFC 6066 §8).

A client asks with an empty ``status_request`` in its ClientHello; a server
that has an OCSP response for its leaf sends it in the status_request
extension of the leaf's CertificateEntry. A client that requires a staple
(``ClientConfig.require_ocsp_staple``) checks it here against the validated
path: signed by the leaf's issuer or a responder it delegated, about the
leaf, fresh, and "good". Anything else ends the handshake with
bad_certificate_status_response (certificate_revoked when the staple says
revoked); a missing staple too: a required check fails closed.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from quicnet.crypto import Certificate, CertificateError, CryptoError, verify_chain
from quicnet.crypto.ocsp import OCSPCertificateRevoked, OCSPError, load_ocsp_response
from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.auth import validity_time
from quicnet.tls.config import ClientConfig, ServerConfig
from quicnet.tls.errors import ProtocolViolation
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import CertificateEntry, Extension

__all__ = ["client_staple", "server_certificate_entries", "wants_ocsp"]


def wants_ocsp(status_request: bytes | None) -> bool:
    """True when a ClientHello's status_request asks for an OCSP staple."""
    if status_request is None:
        return False
    return ext.decode_status_request(status_request).status_type == ext.STATUS_TYPE_OCSP


def server_certificate_entries(
    config: ServerConfig, ocsp_requested: bool
) -> tuple[CertificateEntry, ...]:
    """The server's CertificateEntry list, the leaf's carrying the staple if asked for."""
    staple = config.ocsp_staple() if callable(config.ocsp_staple) else config.ocsp_staple
    entries = []
    for i, cert in enumerate(config.certificate_chain):
        extensions: tuple[Extension, ...] = ()
        if i == 0 and ocsp_requested and staple:
            extensions = (Extension(ET.status_request, ext.encode_certificate_status(staple)),)
        entries.append(CertificateEntry(cert.to_der(), extensions))
    return tuple(entries)


def _fail(message: str, alert: AlertDescription) -> ProtocolViolation:
    return ProtocolViolation(message, alert)


def client_staple(
    entries: Sequence[CertificateEntry],
    chain: Sequence[Certificate],
    offered: set[int],
    config: ClientConfig,
) -> bytes | None:
    """The leaf's stapled OCSP response (DER), checked when the config requires one.

    Every CertificateEntry extension must answer one the ClientHello offered
    (RFC 8446 §4.4.2), else unsupported_extension. Freshness is judged on the
    clock certificates are validated with (the wall clock), not the engine's
    ``now``, which may be a transport's own (simulated) time.
    """
    for entry in entries:
        for e in entry.extensions:
            if e.type not in offered:
                raise _fail(
                    f"CertificateEntry carries extension {e.type} we did not offer",
                    AlertDescription.unsupported_extension,
                )
    body = next((e.data for e in entries[0].extensions if e.type == ET.status_request), None)
    staple = ext.decode_certificate_status(body) if body is not None else None
    if config.require_ocsp_staple:
        _check(staple, chain, config)
    return staple


def _check(staple: bytes | None, chain: Sequence[Certificate], config: ClientConfig) -> None:
    """Fail closed unless ``staple`` is a verified, fresh, good response for the leaf."""
    bad = AlertDescription.bad_certificate_status_response
    if staple is None:
        raise _fail("the server stapled no OCSP response, and one is required", bad)
    at = validity_time(config.wall_clock) or datetime.datetime.now(datetime.UTC)
    try:
        # The issuer the staple must come from: the next certificate on the validated path.
        path = verify_chain(chain, config.trust_roots, at=at, purpose="server")
    except CertificateError as exc:
        raise _fail(f"cannot check the OCSP staple: {exc}", AlertDescription(exc.alert)) from None
    if len(path) < 2:
        raise _fail("cannot check the OCSP staple: the leaf has no issuer on the path", bad)
    try:
        response = load_ocsp_response(staple)
        response.verify(path[0], path[1], at=at).require_good()
    except OCSPCertificateRevoked as exc:
        raise _fail(f"OCSP staple: {exc}", AlertDescription.certificate_revoked) from None
    except (OCSPError, CryptoError) as exc:
        raise _fail(f"OCSP staple rejected: {exc}", bad) from None
