"""OCSP (RFC 6960): build requests, read and verify responses.

pyca/cryptography's ``x509.ocsp`` encodes and decodes; this module adds the
policy of RFC 6960 §3.2 and §4.2.2.2 that a client applies before it trusts a
response: the responder is the CA or a certificate the CA delegated with
id-kp-OCSPSigning, the signature verifies, the response names the
certificate asked about (CertID), it is fresh (thisUpdate/nextUpdate, with a
clock skew allowance) and it echoes the request's nonce (RFC 8954).

Each failure is its own :class:`OCSPError` subclass; ``alert`` is the TLS
alert that reports it when the response was a stapled one (RFC 6066 §8:
bad_certificate_status_response; certificate_revoked for a revoked
certificate; decode_error for bytes that are not an OCSP response).

Building and signing responses lives in :mod:`quicnet.crypto.ocsp_responder`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as _PycaUnsupported
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from quicnet.crypto.certs import Certificate
from quicnet.crypto.errors import CryptoError, DecodeError
from quicnet.crypto.hashes import digest, hash_algorithm
from quicnet.crypto.pem import is_pem, pem_blocks, pem_body, pem_encode
from quicnet.crypto.random import random_bytes
from quicnet.crypto.revocation import (
    REASON_FROM_PYCA,
    CertificateRevoked,
    Revocation,
    RevocationReason,
)

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_MAX_AGE",
    "CertStatus",
    "OCSPCertIdMismatch",
    "OCSPCertificateRevoked",
    "OCSPDecodeError",
    "OCSPError",
    "OCSPNonceMismatch",
    "OCSPRequest",
    "OCSPResponderError",
    "OCSPResponse",
    "OCSPSignatureError",
    "OCSPStaleResponse",
    "OCSPUnauthorizedSigner",
    "OCSPUnknownStatus",
    "ResponseStatus",
    "RevocationReason",
    "SingleStatus",
    "build_ocsp_request",
    "cert_id_hashes",
    "load_ocsp_request",
    "load_ocsp_response",
]

#: Allowed disagreement between our clock and the responder's (RFC 6960 §4.2.2.1 leaves it local).
DEFAULT_CLOCK_SKEW = datetime.timedelta(minutes=5)
#: How old a response without nextUpdate may be (RFC 6960 §4.2.2.1: none means "always newer").
DEFAULT_MAX_AGE = datetime.timedelta(days=1)
_NONCE_SIZE = 16  # RFC 8954 §2.1: 1 to 32 bytes; 16 is what OpenSSL sends


# Errors ----------------------------------------------------------------------------------


class OCSPError(CryptoError):
    """An OCSP response is unusable, or says the certificate is not good."""

    alert = 113  # bad_certificate_status_response (RFC 6066 §8)


class OCSPDecodeError(OCSPError, DecodeError):
    """The bytes are not a well-formed OCSP request or response."""

    alert = 50  # decode_error


class OCSPResponderError(OCSPError):
    """The responder answered with an error status instead of a signed response."""

    def __init__(self, message: str, status: ResponseStatus) -> None:
        super().__init__(message)
        self.status = status


class OCSPSignatureError(OCSPError):
    """The response's signature does not verify with the responder's key."""


class OCSPUnauthorizedSigner(OCSPError):
    """The signer is neither the CA nor a responder the CA delegated (RFC 6960 §4.2.2.2)."""


class OCSPStaleResponse(OCSPError):
    """thisUpdate is in the future, or nextUpdate (or the maximum age) has passed."""


class OCSPNonceMismatch(OCSPError):
    """The response does not carry the nonce the request sent (RFC 8954)."""


class OCSPCertIdMismatch(OCSPError):
    """The response has no status for the certificate that was asked about."""


class OCSPCertificateRevoked(OCSPError, CertificateRevoked):
    """The responder says the certificate is revoked: a :class:`CertificateRevoked`, as a
    CRL would say it (``.revocation``: serial, time, reason)."""

    alert = 44  # certificate_revoked

    @property
    def revocation_time(self) -> datetime.datetime | None:
        """When the certificate was revoked (RFC 6960 §4.2.1); None if not given."""
        return self.revocation.revoked_at if self.revocation else None


class OCSPUnknownStatus(OCSPError):
    """The responder does not know the certificate (RFC 6960 §2.2 "unknown")."""


# Enumerations ------------------------------------------------------------------------------


class ResponseStatus(enum.IntEnum):
    """OCSPResponseStatus (RFC 6960 §4.2.1); 4 is not used."""

    successful = 0
    malformedRequest = 1  # RFC 6960 spelling
    internalError = 2
    tryLater = 3
    sigRequired = 5
    unauthorized = 6


class CertStatus(enum.Enum):
    """CertStatus of one SingleResponse (RFC 6960 §4.2.1)."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


_STATUS_FROM_PYCA = {
    ocsp.OCSPCertStatus.GOOD: CertStatus.GOOD,
    ocsp.OCSPCertStatus.REVOKED: CertStatus.REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: CertStatus.UNKNOWN,
}
_PYCA_STATUS = {v: k for k, v in _STATUS_FROM_PYCA.items()}
_CERT_ID_HASHES = ("sha1", "sha224", "sha256", "sha384", "sha512")


def pyca_cert_status(status: CertStatus) -> ocsp.OCSPCertStatus:
    """pyca's ``OCSPCertStatus`` for ``status``, for building a response."""
    return _PYCA_STATUS[status]


# CertID (RFC 6960 §4.1.1) ---------------------------------------------------------------


def cert_id_hashes(issuer: Certificate, hash_name: str = "sha1") -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of a CertID for certificates ``issuer`` issued.

    The name hash covers the DER of the issuer's subject; the key hash the
    value of its subjectPublicKey BIT STRING (RFC 6960 §4.1.1).
    """
    if hash_name not in _CERT_ID_HASHES:
        raise CryptoError(f"CertID hash must be one of {', '.join(_CERT_ID_HASHES)}")
    algorithm = hash_algorithm(hash_name)
    # pyca computes the key hash for a request; the issuer stands in for the certificate.
    issuer_cert = issuer.to_cryptography()
    probe = ocsp.OCSPRequestBuilder().add_certificate(issuer_cert, issuer_cert, algorithm)
    key_hash = probe.build().issuer_key_hash
    return digest(hash_name, issuer.subject_name.public_bytes()), key_hash


def _hash_name(algorithm: hashes.HashAlgorithm) -> str:
    return algorithm.name.replace("-", "")


# Requests ------------------------------------------------------------------------------


class OCSPRequest:
    """An OCSPRequest for one certificate (what ``openssl ocsp -reqout`` writes)."""

    __slots__ = ("_request",)

    def __init__(self, request: ocsp.OCSPRequest) -> None:
        self._request = request

    def to_der(self) -> bytes:
        """The request's DER encoding (RFC 6960 §4.1.1)."""
        return self._request.public_bytes(serialization.Encoding.DER)

    def to_pem(self) -> bytes:
        """The request as a PEM ``OCSP REQUEST`` block."""
        return pem_encode("OCSP REQUEST", self.to_der())

    @property
    def serial_number(self) -> int:
        """The serial number of the certificate asked about (CertID, RFC 6960 §4.1.1)."""
        return self._request.serial_number

    @property
    def hash_algorithm(self) -> str:
        """The CertID hash, ``sha1`` unless the requester chose another."""
        return _hash_name(self._request.hash_algorithm)

    @property
    def issuer_name_hash(self) -> bytes:
        """The CertID's issuerNameHash: hash of the issuer's DER name (RFC 6960 §4.1.1)."""
        return self._request.issuer_name_hash

    @property
    def issuer_key_hash(self) -> bytes:
        """The CertID's issuerKeyHash: hash of the issuer's public key (RFC 6960 §4.1.1)."""
        return self._request.issuer_key_hash

    @property
    def nonce(self) -> bytes | None:
        """The nonce extension's value (RFC 8954), if the request has one."""
        try:
            return self._request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None

    def to_text(self) -> str:
        """What ``openssl ocsp -req_text`` prints."""
        lines = [
            "OCSP Request Data:",
            "    Version: 1 (0x0)",
            "    Requestor List:",
            "        Certificate ID:",
            f"          Hash Algorithm: {self.hash_algorithm}",
            f"          Issuer Name Hash: {self.issuer_name_hash.hex().upper()}",
            f"          Issuer Key Hash: {self.issuer_key_hash.hex().upper()}",
            f"          Serial Number: {serial_hex(self.serial_number)}",
        ]
        if self.nonce is not None:
            lines += [
                "    Request Extensions:",
                "        OCSP Nonce: ",
                f"            {wrapped_nonce(self.nonce).hex().upper()}",
            ]
        return "\n".join(lines) + "\n"


def build_ocsp_request(
    cert: Certificate,
    issuer: Certificate,
    *,
    nonce: bool | bytes = True,
    hash_name: str = "sha1",
) -> OCSPRequest:
    """A request for ``cert`` (issued by ``issuer``), with a fresh 16-byte nonce by default.

    ``nonce=False`` leaves it out (OpenSSL's ``-no_nonce``); bytes set it.
    SHA-1 is the CertID hash every responder understands (RFC 5019 §2.1.1).
    """
    if not issuer.issued(cert):
        raise CryptoError(f"{issuer.subject!r} did not issue {cert.subject!r}")
    if hash_name not in _CERT_ID_HASHES:
        raise CryptoError(f"CertID hash must be one of {', '.join(_CERT_ID_HASHES)}")
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        cert.to_cryptography(), issuer.to_cryptography(), hash_algorithm(hash_name)
    )
    if nonce is not False:
        value = random_bytes(_NONCE_SIZE) if nonce is True else nonce
        if not 1 <= len(value) <= 32:
            raise CryptoError("an OCSP nonce is 1 to 32 bytes (RFC 8954 §2.1)")
        builder = builder.add_extension(x509.OCSPNonce(value), critical=False)
    return OCSPRequest(builder.build())


def _der_of(data: bytes, label: str) -> bytes:
    if is_pem(data):
        blocks = [b for name, b in pem_blocks(data) if name == label]
        if not blocks:
            raise OCSPDecodeError(f"no {label} PEM block found")
        return pem_body(blocks[0])
    return data


def load_ocsp_request(data: bytes) -> OCSPRequest:
    """An OCSP request, DER (or PEM ``OCSP REQUEST``)."""
    try:
        request = ocsp.load_der_ocsp_request(_der_of(data, "OCSP REQUEST"))
        request.extensions  # noqa: B018 - parsed lazily: fail here, with our error
        request.hash_algorithm  # noqa: B018
    except (ValueError, _PycaUnsupported) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise OCSPDecodeError(f"not a valid OCSP request: {exc}") from None
    return OCSPRequest(request)


# Responses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SingleStatus:
    """One SingleResponse: the status of one certificate, and for when."""

    serial_number: int
    status: CertStatus
    this_update: datetime.datetime
    next_update: datetime.datetime | None
    revocation_time: datetime.datetime | None = None
    revocation_reason: RevocationReason | None = None
    hash_algorithm: str = "sha1"
    issuer_name_hash: bytes = b""
    issuer_key_hash: bytes = b""

    def require_good(self) -> SingleStatus:
        """This status if it is good; else :class:`OCSPCertificateRevoked` or
        :class:`OCSPUnknownStatus`."""
        if self.status is CertStatus.REVOKED:
            when = (
                f" at {self.revocation_time:%Y-%m-%d %H:%M:%S} UTC" if self.revocation_time else ""
            )
            why = f" ({self.revocation_reason.name})" if self.revocation_reason is not None else ""
            raise OCSPCertificateRevoked(
                f"certificate serial {serial_hex(self.serial_number)} was revoked{when}{why}",
                Revocation(
                    self.serial_number,
                    self.revocation_time or self.this_update,
                    self.revocation_reason,
                ),
            )
        if self.status is CertStatus.UNKNOWN:
            raise OCSPUnknownStatus(
                f"the responder does not know certificate serial {serial_hex(self.serial_number)}"
            )
        return self


def _single(item: ocsp.OCSPSingleResponse | ocsp.OCSPResponse) -> SingleStatus:
    reason = item.revocation_reason
    return SingleStatus(
        serial_number=item.serial_number,
        status=_STATUS_FROM_PYCA[item.certificate_status],
        this_update=item.this_update_utc,
        next_update=item.next_update_utc,
        revocation_time=item.revocation_time_utc,
        revocation_reason=REASON_FROM_PYCA.get(reason) if reason is not None else None,
        hash_algorithm=_hash_name(item.hash_algorithm),
        issuer_name_hash=item.issuer_name_hash,
        issuer_key_hash=item.issuer_key_hash,
    )


class OCSPResponse:
    """An OCSPResponse: a responder's error status, or a signed BasicOCSPResponse."""

    __slots__ = ("_certificates", "_der", "_response", "_responses")

    def __init__(self, response: ocsp.OCSPResponse) -> None:
        self._response = response
        self._der = response.public_bytes(serialization.Encoding.DER)
        self._responses: tuple[SingleStatus, ...] = ()
        self._certificates: list[Certificate] = []
        if self.is_successful:
            try:  # pyca parses lazily: fail at load time, with our error
                self._responses = tuple(_single(r) for r in response.responses)
                response.extensions  # noqa: B018
                response.certificates  # noqa: B018
                response.produced_at_utc  # noqa: B018
                response.signature_hash_algorithm  # noqa: B018
            except (ValueError, TypeError, KeyError, _PycaUnsupported) as exc:
                raise OCSPDecodeError(f"malformed BasicOCSPResponse: {exc}") from None
            if not self._responses:
                raise OCSPDecodeError("the OCSP response has no SingleResponse")
            try:
                self._certificates = [Certificate(c) for c in response.certificates]
                for cert in self._certificates:
                    cert.public_key()  # a key we cannot use is found now, not mid-check
            except CryptoError as exc:
                raise OCSPDecodeError(f"a certificate in the OCSP response: {exc}") from None

    def to_der(self) -> bytes:
        """The response's DER encoding (RFC 6960 §4.2.1)."""
        return self._der

    def to_pem(self) -> bytes:
        """The response as a PEM ``OCSP RESPONSE`` block."""
        return pem_encode("OCSP RESPONSE", self._der)

    @property
    def response_status(self) -> ResponseStatus:
        """The responder's OCSPResponseStatus (RFC 6960 §4.2.1)."""
        return ResponseStatus(self._response.response_status.value)

    @property
    def is_successful(self) -> bool:
        """Whether the status is ``successful``, so a signed response follows (RFC 6960 §4.2.1)."""
        return self._response.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL

    def _signed(self) -> ocsp.OCSPResponse:
        if not self.is_successful:
            raise OCSPResponderError(
                f"the responder answered {self.response_status.name} "
                f"({self.response_status.value}), not a signed response",
                self.response_status,
            )
        return self._response

    @property
    def responses(self) -> tuple[SingleStatus, ...]:
        """Every SingleResponse (empty for an error status)."""
        return self._responses

    @property
    def produced_at(self) -> datetime.datetime:
        """When the responder signed the response, UTC (RFC 6960 §4.2.1).

        Raises :class:`OCSPResponderError` for a response that is not successful.
        """
        return self._signed().produced_at_utc

    @property
    def nonce(self) -> bytes | None:
        """The nonce extension's value (RFC 8954), None if absent.

        Raises :class:`OCSPResponderError` for a response that is not successful.
        """
        try:
            return self._signed().extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None

    @property
    def certificates(self) -> list[Certificate]:
        """Certificates the responder included (a delegated signer's, typically)."""
        self._signed()
        return list(self._certificates)

    @property
    def responder_id(self) -> str:
        """``byName: CN=...`` or ``byKey: HEX`` (RFC 6960 §4.2.1 ResponderID)."""
        r = self._signed()
        if r.responder_name is not None:
            return r.responder_name.rfc4514_string()
        return (r.responder_key_hash or b"").hex().upper()

    def status_for(self, cert: Certificate, issuer: Certificate) -> SingleStatus:
        """The SingleResponse whose CertID names ``cert`` as issued by ``issuer``."""
        self._signed()
        hashes_by_alg: dict[str, tuple[bytes, bytes]] = {}
        for single in self._responses:
            if single.serial_number != cert.serial_number:
                continue
            if single.hash_algorithm not in hashes_by_alg:
                hashes_by_alg[single.hash_algorithm] = cert_id_hashes(issuer, single.hash_algorithm)
            name_hash, key_hash = hashes_by_alg[single.hash_algorithm]
            if single.issuer_name_hash == name_hash and single.issuer_key_hash == key_hash:
                return single
        raise OCSPCertIdMismatch(
            f"the OCSP response has no status for serial {serial_hex(cert.serial_number)} "
            f"issued by {issuer.subject!r}"
        )

    def signer(
        self, issuer: Certificate, trusted_responders: Sequence[Certificate] = ()
    ) -> Certificate:
        """The certificate that signed this response, if it may (RFC 6960 §4.2.2.2).

        That is ``issuer`` itself, a certificate of ``trusted_responders``
        (OpenSSL's ``-VAfile``), or an included certificate that ``issuer``
        issued with extendedKeyUsage id-kp-OCSPSigning. Only the signature
        decides among candidates that match the ResponderID.
        """
        r = self._signed()
        candidates = [issuer, *trusted_responders, *self.certificates]
        matching = [c for c in candidates if self._names(c)]
        for cert in matching:
            if not self._signature_ok(cert):
                continue
            if cert == issuer or cert in trusted_responders:
                return cert
            if not issuer.issued(cert):
                raise OCSPUnauthorizedSigner(
                    f"the OCSP response is signed by {cert.subject!r}, which {issuer.subject!r} "
                    "did not issue"
                )
            if not has_ocsp_signing(cert):
                raise OCSPUnauthorizedSigner(
                    f"the OCSP responder {cert.subject!r} lacks extendedKeyUsage OCSPSigning"
                )
            return cert
        if matching:
            raise OCSPSignatureError(
                "the OCSP response's signature does not verify with the responder's key"
            )
        who = r.responder_name.rfc4514_string() if r.responder_name else "a key hash"
        raise OCSPUnauthorizedSigner(
            f"the OCSP responder ({who}) is neither the CA {issuer.subject!r} nor a "
            "responder it delegated"
        )

    def _names(self, cert: Certificate) -> bool:
        """True when the ResponderID names ``cert`` (RFC 6960 §4.2.2.3)."""
        r = self._response
        if r.responder_name is not None:
            return r.responder_name == cert.subject_name
        key_hash = x509.SubjectKeyIdentifier.from_public_key(
            cert.to_cryptography().public_key()
        ).digest
        return r.responder_key_hash == key_hash  # SHA-1 of the subjectPublicKey bits

    def _signature_ok(self, signer: Certificate) -> bool:
        r = self._response
        key = signer.to_cryptography().public_key()
        algorithm = r.signature_hash_algorithm
        try:
            if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
                if r.signature_algorithm_oid == x509.SignatureAlgorithmOID.RSASSA_PSS:
                    return False  # PSS parameters are not exposed: treat as unverifiable
                key.verify(r.signature, r.tbs_response_bytes, padding.PKCS1v15(), algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
                key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(algorithm))
            elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
                key.verify(r.signature, r.tbs_response_bytes)
            else:
                return False
        except (InvalidSignature, ValueError, TypeError, _PycaUnsupported):
            return False
        return True

    def verify(
        self,
        cert: Certificate,
        issuer: Certificate,
        *,
        at: datetime.datetime | None = None,
        clock_skew: datetime.timedelta = DEFAULT_CLOCK_SKEW,
        max_age: datetime.timedelta | None = None,
        nonce: bytes | None = None,
        trusted_responders: Sequence[Certificate] = (),
    ) -> SingleStatus:
        """Check the response for ``cert`` and return its status (good, revoked or unknown).

        Checked, in order: a successful response status; the signer (see
        :meth:`signer`) and its signature; a delegated signer's validity at
        ``at``; the CertID; freshness: ``thisUpdate <= at + clock_skew`` and
        ``at - clock_skew <= nextUpdate`` (without nextUpdate, thisUpdate no
        older than ``max_age``, default :data:`DEFAULT_MAX_AGE`); the nonce,
        when ``nonce`` is given. Call :meth:`SingleStatus.require_good` to
        insist on "good".
        """
        at = at or datetime.datetime.now(datetime.UTC)
        signer = self.signer(issuer, trusted_responders)
        delegated = signer != issuer and signer not in trusted_responders
        if delegated and not signer.not_before - clock_skew <= at <= signer.not_after + clock_skew:
            raise OCSPUnauthorizedSigner(
                f"the OCSP responder certificate {signer.subject!r} is not valid now"
            )
        single = self.status_for(cert, issuer)
        if single.this_update > at + clock_skew:
            raise OCSPStaleResponse(
                f"the OCSP response's thisUpdate {single.this_update:%Y-%m-%d %H:%M:%S} UTC "
                "is in the future"
            )
        if single.next_update is not None:
            if single.next_update < at - clock_skew:
                raise OCSPStaleResponse(
                    f"the OCSP response expired: nextUpdate was "
                    f"{single.next_update:%Y-%m-%d %H:%M:%S} UTC"
                )
        elif single.this_update < at - (max_age or DEFAULT_MAX_AGE) - clock_skew:
            raise OCSPStaleResponse(
                f"the OCSP response (thisUpdate {single.this_update:%Y-%m-%d %H:%M:%S} UTC, "
                "no nextUpdate) is too old"
            )
        if max_age is not None and single.this_update < at - max_age - clock_skew:
            raise OCSPStaleResponse(f"the OCSP response is older than the maximum age of {max_age}")
        if nonce is not None and self.nonce != nonce:
            raise OCSPNonceMismatch(
                "the OCSP response does not echo the request's nonce"
                if self.nonce is None
                else "the OCSP response's nonce differs from the request's"
            )
        return single

    def to_text(self) -> str:
        """What ``openssl ocsp -resp_text`` prints."""
        from quicnet.crypto.ocsp_text import response_text

        return response_text(self)


def has_ocsp_signing(cert: Certificate) -> bool:
    """True when ``cert`` carries extendedKeyUsage id-kp-OCSPSigning."""
    try:
        eku = cert.extension(x509.ExtendedKeyUsage)
    except DecodeError:
        return False
    return eku is not None and ExtendedKeyUsageOID.OCSP_SIGNING in list(eku)


def load_ocsp_response(data: bytes) -> OCSPResponse:
    """An OCSP response, DER (or PEM ``OCSP RESPONSE``); malformed: :class:`OCSPDecodeError`."""
    try:
        response = ocsp.load_der_ocsp_response(_der_of(data, "OCSP RESPONSE"))
        return OCSPResponse(response)
    except (ValueError, TypeError, _PycaUnsupported) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise OCSPDecodeError(f"not a valid OCSP response: {exc}") from None


# Helpers shared with the text and responder modules ---------------------------------------


def wrapped_nonce(nonce: bytes) -> bytes:
    """The extnValue OpenSSL prints for a nonce: the OCTET STRING's DER."""
    return b"\x04" + bytes((len(nonce),)) + nonce


def serial_hex(serial: int) -> str:
    """A serial number as OpenSSL prints it: upper-case hex, an even number of digits."""
    text = f"{serial:X}"
    return "0" + text if len(text) % 2 else text
