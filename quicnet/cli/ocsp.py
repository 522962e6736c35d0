"""``ocsp``: OCSP requests, responses and a responder, with ``openssl ocsp``'s flags.

- request: ``-issuer ca.pem -cert c.pem -reqout req.der [-no_nonce] [-req_text]``
- answer one: ``-index DIR/index.txt -rsigner r.pem -rkey r.key -CA ca.pem
  -reqin req.der -respout resp.der``
- check one: ``-respin resp.der -CAfile ca.pem [-VAfile r.pem] [-issuer ca.pem -cert c.pem]
  [-resp_text]``
- a responder over HTTP on loopback: ``-port N -index ... -rsigner ... -CA ...``;
  a client for it: ``-issuer ... -cert ... -url http://127.0.0.1:N/``
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Sequence

from quicnet.cli.common import CliError, Parser, read_input, read_passphrase, write_output
from quicnet.cli.ocsp_http import post_request, serve_ocsp
from quicnet.crypto import Certificate, load_certificate, load_certificates, load_private_key
from quicnet.crypto.ocsp import (
    DEFAULT_CLOCK_SKEW,
    CertStatus,
    OCSPError,
    OCSPRequest,
    OCSPResponse,
    SingleStatus,
    build_ocsp_request,
    cert_id_hashes,
    load_ocsp_request,
    load_ocsp_response,
)
from quicnet.crypto.ocsp_responder import OCSPResponder
from quicnet.crypto.ocsp_text import openssl_time


def _parser() -> Parser:
    p = Parser("ocsp", "OCSP (RFC 6960): requests, responses, and a responder.")
    p.add_argument("-issuer", metavar="FILE", help="the CA that issued -cert")
    p.add_argument(
        "-cert", action="append", default=[], metavar="FILE", help="certificate to ask about"
    )
    p.add_argument("-reqout", metavar="FILE", help="write the request (DER)")
    p.add_argument("-reqin", metavar="FILE", help="read a request (DER)")
    p.add_argument("-respout", metavar="FILE", help="write the response (DER)")
    p.add_argument("-respin", metavar="FILE", help="read a response (DER)")
    p.add_argument("-no_nonce", action="store_true", help="no nonce in the request")
    p.add_argument("-nonce", action="store_true", help="a nonce in the request (the default)")
    p.add_argument("-req_text", action="store_true", help="print the request")
    p.add_argument("-resp_text", action="store_true", help="print the response")
    p.add_argument("-text", action="store_true", help="print the request and the response")
    p.add_argument("-url", metavar="URL", help="send the request to this http:// responder")
    p.add_argument("-timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("-CAfile", metavar="FILE", help="trusted CA certificates")
    p.add_argument("-VAfile", metavar="FILE", help="trusted responder certificates")
    p.add_argument("-noverify", action="store_true", help="do not verify the response")
    p.add_argument(
        "-validity_period", type=int, metavar="SECONDS", help="clock skew allowed (default 300)"
    )
    p.add_argument("-status_age", type=int, metavar="SECONDS", help="maximum age of thisUpdate")
    p.add_argument("-index", metavar="FILE", help="OpenSSL ca database (index.txt) to answer from")
    p.add_argument("-CA", dest="ca", metavar="FILE", help="the CA the responder answers for")
    p.add_argument("-rsigner", metavar="FILE", help="responder certificate (the CA or a delegate)")
    p.add_argument("-rkey", metavar="FILE", help="responder key (default: in -rsigner)")
    p.add_argument("-passin", metavar="ARG", help="passphrase of -rkey")
    p.add_argument("-ndays", type=int, metavar="N", help="nextUpdate N days ahead")
    p.add_argument("-nmin", type=int, metavar="N", help="nextUpdate N minutes ahead")
    p.add_argument("-port", type=int, metavar="N", help="answer over HTTP on 127.0.0.1:N")
    p.add_argument("-nrequest", type=int, metavar="N", help="exit after N requests")
    return p


def _responder(a: argparse.Namespace) -> OCSPResponder:
    if not (a.index and a.ca and a.rsigner):
        raise CliError("a responder needs -index, -CA and -rsigner (and -rkey)")
    ca = load_certificate(read_input(a.ca, "CA certificate"))
    signer = load_certificate(read_input(a.rsigner, "responder certificate"))
    key_file = a.rkey or a.rsigner
    key = load_private_key(read_input(key_file, "responder key"), read_passphrase(a.passin))
    ndays, nmin = a.ndays, a.nmin
    if (ndays is not None and ndays < 0) or (nmin is not None and nmin < 0):
        raise CliError("-ndays and -nmin must not be negative")
    validity = None
    if ndays or nmin:
        validity = datetime.timedelta(days=ndays or 0, minutes=nmin or 0)
    elif ndays is None and nmin is None:
        validity = datetime.timedelta(days=1)
    return OCSPResponder.from_index(a.index, ca, signer, key, validity=validity)


def _status_lines(label: str, single: SingleStatus) -> str:
    """What ``openssl ocsp`` prints about one certificate."""
    lines = [
        f"{label}: {single.status.value}",
        f"\tThis Update: {openssl_time(single.this_update)}",
    ]
    if single.next_update is not None:
        lines.append(f"\tNext Update: {openssl_time(single.next_update)}")
    if single.status is CertStatus.REVOKED:
        if single.revocation_reason is not None:
            lines.append(f"\tReason: {single.revocation_reason.name}")
        if single.revocation_time is not None:
            lines.append(f"\tRevocation Time: {openssl_time(single.revocation_time)}")
    return "\n".join(lines) + "\n"


def _find_issuer(response: OCSPResponse, candidates: Sequence[Certificate]) -> Certificate:
    """The CA a response's first CertID names, among ``candidates``."""
    single = response.responses[0]
    for cert in candidates:
        if (single.issuer_name_hash, single.issuer_key_hash) == cert_id_hashes(
            cert, single.hash_algorithm
        ):
            return cert
    raise OCSPError("no -issuer or -CAfile certificate is the CA this response is about")


def _check_trusted(issuer: Certificate, roots: Sequence[Certificate]) -> None:
    if issuer not in roots and not any(root.issued(issuer) for root in roots):
        raise OCSPError(
            f"the issuer {issuer.subject!r} is not a -CAfile certificate or issued by one"
        )


def _verify(
    a: argparse.Namespace,
    response: OCSPResponse,
    request: OCSPRequest | None,
    issuer: Certificate | None,
) -> None:
    """Check ``response`` as ``openssl ocsp`` does; print each -cert's status."""
    roots = load_certificates(read_input(a.CAfile, "CA file")) if a.CAfile else []
    va = load_certificates(read_input(a.VAfile, "VA file")) if a.VAfile else []
    noverify = a.noverify
    if not (noverify or roots or va):
        raise CliError("give -CAfile (or -VAfile) to verify the response, or -noverify")
    skew = DEFAULT_CLOCK_SKEW
    if a.validity_period is not None:
        skew = datetime.timedelta(seconds=a.validity_period)
    max_age = None
    if a.status_age is not None:
        max_age = datetime.timedelta(seconds=a.status_age)
    out = []
    try:
        issuer = issuer or _find_issuer(response, roots)
        if not noverify:
            if roots:
                _check_trusted(issuer, roots)
            signer = response.signer(issuer, va)
            if not roots and signer not in va:  # nothing vouches for -issuer itself
                raise OCSPError(f"the responder {signer.subject!r} is not a -VAfile certificate")
        nonce = request.nonce if request is not None and not a.no_nonce else None
        for path in a.cert:
            cert = load_certificate(read_input(path, "certificate"))
            if noverify:
                single = response.status_for(cert, issuer)
            else:
                single = response.verify(
                    cert,
                    issuer,
                    clock_skew=skew,
                    max_age=max_age,
                    nonce=nonce,
                    trusted_responders=va,
                )
            out.append(_status_lines(path, single))
    except OCSPError as exc:
        sys.stderr.write(f"Response Verify Failure: {exc}\n")
        raise SystemExit(2) from None
    if not noverify:
        sys.stderr.write("Response verify OK\n")
    sys.stdout.write("".join(out))


def ocsp(argv: list[str]) -> int:
    """``quicnet ocsp``: OCSP requests, responses and a responder (RFC 6960).

    As ``openssl ocsp``: ``-port`` runs a responder; otherwise it builds,
    sends or checks requests and responses.
    """
    a = _parser().parse_args(argv)
    if a.port is not None:
        if not 0 <= a.port <= 65535:
            raise CliError(f"-port {a.port}: the port must be a number from 0 to 65535")
        responder = _responder(a)
        serve_ocsp(responder.respond, a.port, requests=a.nrequest)
        return 0
    if a.index:
        if not a.reqin:
            raise CliError("-index answers a request: give -reqin (or -port to serve)")
        der = _responder(a).respond(read_input(a.reqin, "request"))
        if a.respout:
            write_output(a.respout, der)
        if a.resp_text or a.text:
            sys.stdout.write(load_ocsp_response(der).to_text())
        return 0

    issuer = load_certificate(read_input(a.issuer, "issuer")) if a.issuer else None
    request: OCSPRequest | None = None
    if a.reqin:
        request = load_ocsp_request(read_input(a.reqin, "request"))
    elif a.cert and (a.reqout or a.url or a.req_text or a.text):
        if issuer is None:
            raise CliError("-cert needs -issuer (the CA that issued it)")
        if len(a.cert) != 1:
            raise CliError("a request names one certificate: give one -cert")
        cert = load_certificate(read_input(a.cert[0], "certificate"))
        request = build_ocsp_request(cert, issuer, nonce=not a.no_nonce)
    if request is not None:
        if a.req_text or a.text:
            sys.stdout.write(request.to_text())
        if a.reqout:
            write_output(a.reqout, request.to_der())
    if a.url:
        if request is None:
            raise CliError("-url needs a request: -issuer and -cert, or -reqin")
        response_der = post_request(a.url, request.to_der(), timeout=a.timeout)
    elif a.respin:
        response_der = read_input(a.respin, "response")
        request = request if a.reqin else None  # only a request we read can set the nonce
    elif request is not None:
        return 0
    else:
        raise CliError("nothing to do: give -issuer and -cert, -reqin, -respin, -index or -port")
    response = load_ocsp_response(response_der)
    if a.respout:
        write_output(a.respout, response.to_der())
    if a.resp_text or a.text:
        sys.stdout.write(response.to_text())
    if not response.is_successful:
        status = response.response_status
        raise CliError(f"Responder Error: {status.name} ({status.value})")
    _verify(a, response, request, issuer)
    return 0
