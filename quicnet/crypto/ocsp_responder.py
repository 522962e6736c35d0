"""The responder's side of OCSP (RFC 6960): answer requests from a CA's records.

:class:`OCSPResponder` turns a DER request into a DER response, signed by the
CA itself or by a delegated responder certificate (extendedKeyUsage
id-kp-OCSPSigning, RFC 6960 §4.2.2.2). What it says about a serial number
comes from a lookup: :func:`read_index` reads OpenSSL's ``ca`` database
(``index.txt``), as ``openssl ocsp -index`` does.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from quicnet.crypto.caindex import IndexEntry, parse_index
from quicnet.crypto.certs import Certificate
from quicnet.crypto.errors import CryptoError
from quicnet.crypto.hashes import hash_algorithm
from quicnet.crypto.keys import PrivateKey
from quicnet.crypto.names import parse_name
from quicnet.crypto.ocsp import (
    CertStatus,
    OCSPError,
    ResponseStatus,
    cert_id_hashes,
    has_ocsp_signing,
    load_ocsp_request,
    pyca_cert_status,
)
from quicnet.crypto.revocation import PYCA_REASON

__all__ = [
    "OCSPResponder",
    "index_status",
    "issue_ocsp_signer",
    "ocsp_error_response",
    "read_index",
]

#: How long a response stays valid when the responder is given no other period.
DEFAULT_VALIDITY = datetime.timedelta(days=1)


# OpenSSL's index.txt (read by quicnet.crypto.caindex) -----------------------------------


def index_status(entry: IndexEntry | None) -> CertStatus:
    """What a responder says of an ``index.txt`` entry: good for V, revoked for R,
    unknown for E (an expired certificate gets no vouching) or no entry at all."""
    if entry is None:
        return CertStatus.UNKNOWN
    return {"V": CertStatus.GOOD, "R": CertStatus.REVOKED}.get(entry.status, CertStatus.UNKNOWN)


def read_index(path: str | os.PathLike[str]) -> dict[int, IndexEntry]:
    """``index.txt`` as a mapping from serial number to entry (the last line wins)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CryptoError(f"cannot read the index {os.fspath(path)!r}: {exc.strerror}") from None
    return {e.serial_number: e for e in parse_index(text)}


# Responses -------------------------------------------------------------------------------


def ocsp_error_response(status: ResponseStatus) -> bytes:
    """An unsigned OCSPResponse carrying only an error status (RFC 6960 §4.2.1)."""
    if status is ResponseStatus.successful:
        raise CryptoError("a successful response must be signed")
    pyca = ocsp.OCSPResponseStatus(status.value)
    return ocsp.OCSPResponseBuilder.build_unsuccessful(pyca).public_bytes(
        serialization.Encoding.DER
    )


def _signature_hash(key: PrivateKey) -> object:
    """The hash a response signature by ``key`` uses (None for EdDSA)."""
    if key.algorithm == "RSA":
        return hash_algorithm("sha256")
    if key.algorithm == "EC":
        return hash_algorithm({"P-256": "sha256", "P-384": "sha384"}.get(key.curve or "", "sha512"))
    if key.algorithm in ("Ed25519", "Ed448"):
        return None
    raise CryptoError(f"{key.description} keys cannot sign OCSP responses here")


Lookup = Callable[[int], "IndexEntry | None"]


class OCSPResponder:
    """Answers OCSP requests about certificates ``issuer`` issued.

    ``signer``/``signer_key`` sign the responses: the CA itself, or a
    certificate it issued with extendedKeyUsage id-kp-OCSPSigning (checked
    here, so the responder never signs what clients would refuse). ``lookup``
    maps a serial number to its :class:`IndexEntry` (None: unknown); a
    mapping works, and so does :meth:`from_index`, which rereads the file
    whenever it changes. Responses are valid from now to now + ``validity``
    (nextUpdate; None leaves it out).
    """

    def __init__(
        self,
        issuer: Certificate,
        signer: Certificate,
        signer_key: PrivateKey,
        lookup: Lookup | Mapping[int, IndexEntry],
        *,
        validity: datetime.timedelta | None = DEFAULT_VALIDITY,
    ) -> None:
        if signer_key.public_key() != signer.public_key():
            raise CryptoError("the responder key does not match the responder certificate")
        if signer != issuer:
            if not issuer.issued(signer):
                raise CryptoError(
                    f"the responder {signer.subject!r} was not issued by the CA {issuer.subject!r}"
                )
            if not has_ocsp_signing(signer):
                raise CryptoError(
                    f"the responder {signer.subject!r} lacks extendedKeyUsage OCSPSigning "
                    "(RFC 6960 §4.2.2.2)"
                )
        self.issuer = issuer
        self.signer = signer
        self._key = signer_key
        self._lookup: Lookup = lookup.get if isinstance(lookup, Mapping) else lookup
        self.validity = validity

    @classmethod
    def from_index(
        cls,
        index: str | os.PathLike[str],
        issuer: Certificate,
        signer: Certificate,
        signer_key: PrivateKey,
        *,
        validity: datetime.timedelta | None = DEFAULT_VALIDITY,
    ) -> OCSPResponder:
        """A responder reading OpenSSL's ``index.txt`` (reread when its mtime changes)."""
        path = Path(index)
        cache: dict[str, object] = {}
        entries = read_index(path)  # fails now if the file is unusable

        def lookup(serial: int) -> IndexEntry | None:
            nonlocal entries
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if stamp is not None and cache.get("stamp") != stamp:
                entries = read_index(path)
                cache["stamp"] = stamp
            return entries.get(serial)

        return cls(issuer, signer, signer_key, lookup, validity=validity)

    def respond(self, request_der: bytes, now: datetime.datetime | None = None) -> bytes:
        """The DER response to ``request_der``; never raises for a bad request.

        A request that does not parse gets ``malformedRequest``; one about
        another CA's certificates ``unauthorized`` (RFC 6960 §2.3); a failing
        lookup ``internalError``. Otherwise a signed response: good, revoked
        (with time and reason) or unknown, echoing the request's nonce.
        """
        try:
            request = load_ocsp_request(request_der)
        except OCSPError:
            return ocsp_error_response(ResponseStatus.malformedRequest)
        try:
            name_hash, key_hash = cert_id_hashes(self.issuer, request.hash_algorithm)
        except CryptoError:
            return ocsp_error_response(ResponseStatus.malformedRequest)
        if (name_hash, key_hash) != (request.issuer_name_hash, request.issuer_key_hash):
            return ocsp_error_response(ResponseStatus.unauthorized)
        try:
            entry = self._lookup(request.serial_number)
        except CryptoError:
            return ocsp_error_response(ResponseStatus.internalError)
        status = index_status(entry)
        now = (now or datetime.datetime.now(datetime.UTC)).replace(microsecond=0)
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=name_hash,
            issuer_key_hash=key_hash,
            serial_number=request.serial_number,
            algorithm=hash_algorithm(request.hash_algorithm),
            cert_status=pyca_cert_status(status),
            this_update=now,
            next_update=now + self.validity if self.validity is not None else None,
            revocation_time=entry.revoked_at if entry and status is CertStatus.REVOKED else None,
            revocation_reason=PYCA_REASON[entry.reason]
            if entry and status is CertStatus.REVOKED and entry.reason is not None
            else None,
        )
        builder = builder.responder_id(
            ocsp.OCSPResponderEncoding.HASH, self.signer.to_cryptography()
        )
        if self.signer != self.issuer:  # RFC 6960 §4.2.2.2: the client needs the delegate
            builder = builder.certificates([self.signer.to_cryptography()])
        if request.nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(request.nonce), critical=False)
        response = builder.sign(self._key.to_cryptography(), _signature_hash(self._key))  # type: ignore[arg-type]
        return response.public_bytes(serialization.Encoding.DER)


def issue_ocsp_signer(
    key: PrivateKey,
    subject: str,
    issuer: Certificate,
    issuer_key: PrivateKey,
    *,
    days: int = 30,
) -> Certificate:
    """A delegated OCSP responder certificate: extendedKeyUsage id-kp-OCSPSigning only,
    and id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1: clients do not check its own status).

    Short-lived by default, as nocheck advises.
    """
    if days < 1:
        raise CryptoError(f"the validity must be at least 1 day, not {days}")
    if issuer_key.public_key() != issuer.public_key():
        raise CryptoError("the issuer key does not match the issuer certificate")
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    end = min(start + datetime.timedelta(days=days), issuer.not_after)
    public = key.public_key().to_cryptography()
    issuer_public = issuer.public_key().to_cryptography()
    builder = (
        x509.CertificateBuilder()
        .subject_name(parse_name(subject))
        .issuer_name(issuer.subject_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public),  # type: ignore[arg-type]
            critical=False,
        )
    )
    algorithm = _signature_hash(issuer_key)  # refuses keys that cannot sign
    return Certificate(builder.sign(issuer_key.to_cryptography(), algorithm))  # type: ignore[arg-type]
