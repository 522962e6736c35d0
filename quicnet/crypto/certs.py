"""X.509 certificates and CSRs: read, write, make, issue.

:class:`Certificate` and :class:`CertificateRequest` wrap pyca/cryptography's
objects so nothing above :mod:`quicnet.crypto` touches them.
"""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Iterable, Sequence
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as _PycaUnsupported
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID

from quicnet.crypto.errors import (
    ChainOrderError,
    CryptoError,
    DecodeError,
    InvalidSignatureError,
    UnsupportedAlgorithmError,
)
from quicnet.crypto.hashes import digest, hash_algorithm
from quicnet.crypto.keys import PrivateKey, PublicKey, PycaPublicKey
from quicnet.crypto.names import parse_name, san_entries
from quicnet.crypto.oids import oid_name
from quicnet.crypto.pem import is_pem, pem_blocks, pem_body
from quicnet.memo import BoundedMemo

__all__ = [
    "Certificate",
    "CertificateRequest",
    "check_chain_order",
    "format_fingerprint",
    "issue_certificate",
    "load_certificate",
    "load_certificates",
    "load_csr",
    "make_ca",
    "make_csr",
    "self_signed_certificate",
    "x509_signature_hash",
]

_E = TypeVar("_E", bound=x509.ExtensionType)

_CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate notBefore for peers with slow clocks


def format_fingerprint(fingerprint: bytes) -> str:
    """``AB:CD:...``, the way ``openssl x509 -fingerprint`` prints it."""
    return ":".join(f"{b:02X}" for b in fingerprint)


#: Certificates parsed by :meth:`Certificate.from_der`, by their DER bytes (bounded).
_PARSED: BoundedMemo[bytes, Certificate] = BoundedMemo(16)

#: Signature checks that passed, by the exact DER bytes of ``(child, issuer)``: a
#: signature check of the same bytes is a pure function of them, so a hit answers what
#: verifying again would. Only successes are kept, of pairs up to _SIGNED_PAIR_MAX bytes,
#: at most _SIGNED_MAX of them (cleared when full): at most 4 MiB, whoever fills it.
_SIGNED: set[tuple[bytes, bytes]] = set()
_SIGNED_MAX = 256
_SIGNED_PAIR_MAX = 16384


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _wrap_public(key: object) -> PublicKey:
    if not isinstance(key, PycaPublicKey):
        raise UnsupportedAlgorithmError(f"unsupported public key type {type(key).__name__}")
    return PublicKey(key)


def _check_parsable(obj: x509.Certificate | x509.CertificateSigningRequest) -> None:
    """pyca parses names and extensions lazily; fail at load time, with our error."""
    try:
        obj.subject.rfc4514_string()
        if isinstance(obj, x509.Certificate):
            obj.issuer.rfc4514_string()
            obj.not_valid_before_utc, obj.not_valid_after_utc  # noqa: B018
        obj.extensions  # noqa: B018
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType, x509.DuplicateExtension) as exc:
        raise DecodeError(f"malformed name, time or extension: {exc}") from None


def _san(extensions: x509.Extensions) -> tuple[list[str], list[str]]:
    try:
        san = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return dns, ips


class Certificate:
    """An X.509 certificate."""

    __slots__ = (
        "_cert",
        "_critical",
        "_der",
        "_extension_values",
        "_issuer_name",
        "_not_after",
        "_not_before",
        "_public",
        "_san",
        "_self_issued",
        "_subject_name",
    )

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert
        self._der = cert.public_bytes(ser.Encoding.DER)
        # What pyca parses again on every access (key, names, times, extensions by type,
        # SANs), kept on first use: path validation reads them several times a handshake.
        self._public: PublicKey | None = None
        self._subject_name: x509.Name | None = None
        self._issuer_name: x509.Name | None = None
        self._self_issued: bool | None = None
        self._not_before: datetime.datetime | None = None
        self._not_after: datetime.datetime | None = None
        self._extension_values: dict[type[x509.ExtensionType], x509.ExtensionType | None] = {}
        self._san: tuple[list[str], list[str]] | None = None
        self._critical: tuple[x509.ObjectIdentifier, ...] | None = None
        _check_parsable(cert)

    @classmethod
    def from_der(cls, der: bytes) -> Certificate:
        """Parse a DER certificate (all of it: names, times, extensions).

        The last few parsed are remembered by their exact bytes, so a server's
        certificate met on every handshake is parsed once; that is parsing only
        (a certificate is immutable): whoever trusts it still verifies it each time.
        """
        remember = cls is Certificate and type(der) is bytes
        if remember and (cached := _PARSED.get(der)) is not None:
            return cached
        try:
            with warnings.catch_warnings():
                # What pyca only warns of today (a serial number that is not positive,
                # RFC 5280 §4.1.2.2) a later release refuses: refuse it now, the same
                # whichever release is installed.
                warnings.simplefilter("error", CryptographyDeprecationWarning)
                cert = cls(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion, CryptographyDeprecationWarning) as exc:
            if isinstance(exc, CryptoError):
                raise
            raise DecodeError(f"not a valid DER certificate: {exc}") from None
        if remember:
            _PARSED.remember(der, cert)
        return cert

    @classmethod
    def from_pem(cls, pem: bytes) -> Certificate:
        """The first certificate in ``pem`` (DER also accepted); :class:`DecodeError` if none."""
        return load_certificate(pem)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and self._der == other._der

    def __hash__(self) -> int:
        return hash(self._der)

    def __repr__(self) -> str:
        return f"<Certificate {self.subject!r} serial={self.serial_number:x}>"

    def to_der(self) -> bytes:
        """The certificate's DER encoding (RFC 5280 §4.1)."""
        return self._der

    def to_pem(self) -> bytes:
        """The certificate as a PEM ``CERTIFICATE`` block (RFC 7468 §5)."""
        return self._cert.public_bytes(ser.Encoding.PEM)

    def to_cryptography(self) -> x509.Certificate:
        """The pyca/cryptography certificate underneath.

        For :mod:`quicnet.crypto`'s own modules, which hand certificates to
        pyca's OCSP, CRL and PKCS#12 builders; code above the toolkit uses the
        typed properties instead.
        """
        return self._cert

    @property
    def subject(self) -> str:
        """The subject as an RFC 4514 string (``CN=example,O=Org``)."""
        return self._cert.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        """The issuer as an RFC 4514 string (RFC 5280 §4.1.2.4)."""
        return self._cert.issuer.rfc4514_string()

    @property
    def subject_name(self) -> x509.Name:
        """The subject as a pyca ``Name``: what issuer matching compares (RFC 5280 §7.1)."""
        name = self._subject_name
        if name is None:
            name = self._subject_name = self._cert.subject
        return name

    @property
    def issuer_name(self) -> x509.Name:
        """The issuer as a pyca ``Name`` (see :attr:`subject_name`)."""
        name = self._issuer_name
        if name is None:
            name = self._issuer_name = self._cert.issuer
        return name

    @property
    def is_self_issued(self) -> bool:
        """Whether subject and issuer are the same name (RFC 5280 §6.1)."""
        same = self._self_issued
        if same is None:
            same = self._self_issued = self.subject_name == self.issuer_name
        return same

    @property
    def serial_number(self) -> int:
        """The serial number the issuer assigned (RFC 5280 §4.1.2.2)."""
        return self._cert.serial_number

    @property
    def not_before(self) -> datetime.datetime:
        """Start of the validity period, an aware UTC datetime (RFC 5280 §4.1.2.5)."""
        when = self._not_before
        if when is None:
            when = self._not_before = self._cert.not_valid_before_utc
        return when

    @property
    def not_after(self) -> datetime.datetime:
        """End of the validity period, an aware UTC datetime (RFC 5280 §4.1.2.5)."""
        when = self._not_after
        if when is None:
            when = self._not_after = self._cert.not_valid_after_utc
        return when

    @property
    def signature_algorithm(self) -> str:
        """The issuer's signature algorithm, by OpenSSL's short name (RFC 5280 §4.1.1.2)."""
        return oid_name(self._cert.signature_algorithm_oid)

    def public_key(self) -> PublicKey:
        """The subject's public key (RFC 5280 §4.1.2.7).

        Raises :class:`UnsupportedAlgorithmError` for a key type quicnet does not
        support, :class:`DecodeError` for a malformed key.
        """
        public = self._public
        if public is not None:
            return public
        try:
            public = self._public = _wrap_public(self._cert.public_key())
        except _PycaUnsupported as exc:
            raise UnsupportedAlgorithmError(f"certificate public key: {exc}") from None
        except ValueError as exc:
            raise DecodeError(f"certificate public key is malformed: {exc}") from None
        return public

    def extensions(self) -> x509.Extensions:
        """Every extension, as pyca's ``Extensions``; :class:`DecodeError` when malformed."""
        try:
            return self._cert.extensions
        except ValueError as exc:  # duplicate or malformed extension
            raise DecodeError(f"certificate extensions are malformed: {exc}") from None

    def critical_extension_oids(self) -> tuple[x509.ObjectIdentifier, ...]:
        """The OIDs of the extensions marked critical (RFC 5280 §4.2), in order;
        :class:`DecodeError` when the extensions are malformed."""
        oids = self._critical
        if oids is None:
            oids = self._critical = tuple(e.oid for e in self.extensions() if e.critical)
        return oids

    def extension(self, kind: type[_E]) -> _E | None:
        """The value of the extension of type ``kind`` (``x509.KeyUsage``, ...), None if absent."""
        values = self._extension_values
        if kind in values:
            return values[kind]  # type: ignore[return-value]  # stored under its own type
        try:
            value: _E | None = self.extensions().get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            value = None
        values[kind] = value
        return value

    def _names(self) -> tuple[list[str], list[str]]:
        names = self._san
        if names is None:
            names = self._san = _san(self.extensions())
        return names

    @property
    def dns_names(self) -> list[str]:
        """The dNSName entries of the subjectAltName (RFC 5280 §4.2.1.6); empty if none."""
        return list(self._names()[0])

    @property
    def ip_addresses(self) -> list[str]:
        """The iPAddress entries of the subjectAltName, as text (RFC 5280 §4.2.1.6)."""
        return list(self._names()[1])

    def _basic_constraints(self) -> x509.BasicConstraints | None:
        return self.extension(x509.BasicConstraints)

    @property
    def is_ca(self) -> bool:
        """Whether basicConstraints marks this a CA certificate (RFC 5280 §4.2.1.9)."""
        bc = self._basic_constraints()
        return bc is not None and bc.ca

    @property
    def path_length(self) -> int | None:
        """basicConstraints' pathLenConstraint; None (no limit) if absent (RFC 5280 §4.2.1.9)."""
        bc = self._basic_constraints()
        return bc.path_length if bc is not None else None

    def fingerprint(self, hash_name: str = "sha256") -> bytes:
        """Hash of the DER certificate (what a certificate pin names)."""
        return digest(hash_name, self._der)

    def spki_fingerprint(self, hash_name: str = "sha256") -> bytes:
        """Hash of the SubjectPublicKeyInfo (a pin that survives re-issuing)."""
        return self.public_key().fingerprint(hash_name)

    def issued(self, child: Certificate) -> bool:
        """True when this certificate's name and key signed ``child``.

        A pair that passed is remembered by its exact DER bytes (a few hundred, bounded),
        so a server's chain met on every handshake has its signatures computed once: the
        same bytes give the same answer. Only the signature is remembered; whatever else
        a caller checks (validity at a time, names, constraints, revocation) it checks
        each time.
        """
        key = (child._der, self._der)
        if key in _SIGNED:
            return True
        try:
            child._cert.verify_directly_issued_by(self._cert)
        except (ValueError, TypeError, Exception):
            return False
        if len(key[0]) + len(key[1]) <= _SIGNED_PAIR_MAX:
            if len(_SIGNED) >= _SIGNED_MAX:
                _SIGNED.clear()
            _SIGNED.add(key)
        return True

    def to_text(self) -> str:
        """A human-readable dump, as ``openssl x509 -text`` prints."""
        from quicnet.crypto.text import certificate_text

        return certificate_text(self)


class CertificateRequest:
    """A PKCS#10 certificate signing request."""

    __slots__ = ("_csr",)

    def __init__(self, csr: x509.CertificateSigningRequest) -> None:
        self._csr = csr
        _check_parsable(csr)

    def to_der(self) -> bytes:
        """The request's DER encoding (RFC 2986 §4)."""
        return self._csr.public_bytes(ser.Encoding.DER)

    def to_pem(self) -> bytes:
        """The request as a PEM ``CERTIFICATE REQUEST`` block (RFC 7468 §7)."""
        return self._csr.public_bytes(ser.Encoding.PEM)

    def to_cryptography(self) -> x509.CertificateSigningRequest:
        """The pyca/cryptography CSR underneath (see :meth:`Certificate.to_cryptography`)."""
        return self._csr

    @property
    def subject(self) -> str:
        """The subject asked for, as an RFC 4514 string."""
        return self._csr.subject.rfc4514_string()

    @property
    def subject_name(self) -> x509.Name:
        """The subject as a pyca ``Name`` (see :attr:`Certificate.subject_name`)."""
        return self._csr.subject

    def public_key(self) -> PublicKey:
        """The public key to certify (RFC 2986 §4.1).

        Raises :class:`UnsupportedAlgorithmError` for a key type quicnet does not
        support, :class:`DecodeError` for a malformed key.
        """
        try:
            return _wrap_public(self._csr.public_key())
        except _PycaUnsupported as exc:
            raise UnsupportedAlgorithmError(f"CSR public key: {exc}") from None
        except ValueError as exc:
            raise DecodeError(f"CSR public key is malformed: {exc}") from None

    def extensions(self) -> x509.Extensions:
        """The requested extensions, as pyca's ``Extensions``; :class:`DecodeError` when malformed."""
        try:
            return self._csr.extensions
        except ValueError as exc:
            raise DecodeError(f"CSR extensions are malformed: {exc}") from None

    @property
    def dns_names(self) -> list[str]:
        """The dNSName entries of the requested subjectAltName; empty if none."""
        return _san(self.extensions())[0]

    @property
    def ip_addresses(self) -> list[str]:
        """The iPAddress entries of the requested subjectAltName, as text."""
        return _san(self.extensions())[1]

    def verify_signature(self) -> None:
        """Raise :class:`InvalidSignatureError` unless the CSR is signed by its own key."""
        try:
            ok = self._csr.is_signature_valid
        except Exception:
            ok = False
        if not ok:
            raise InvalidSignatureError("CSR signature does not verify with its public key")

    def to_text(self) -> str:
        """A human-readable dump, as ``openssl req -text`` prints."""
        from quicnet.crypto.text import csr_text

        return csr_text(self)


def load_certificates(data: bytes) -> list[Certificate]:
    """Every certificate in ``data``: a PEM bundle (in file order) or one DER certificate."""
    if is_pem(data):
        certs = []
        for label, block in pem_blocks(data):
            if label == "CERTIFICATE":
                certs.append(Certificate.from_der(pem_body(block)))
            elif label == "TRUSTED CERTIFICATE":
                # OpenSSL's -trustout form: the certificate, then trust settings.
                der = pem_body(block)
                certs.append(Certificate.from_der(der[: _der_element_length(der)]))
        if not certs:
            raise DecodeError("no CERTIFICATE PEM block found")
        return certs
    return [Certificate.from_der(data)]


def _der_element_length(der: bytes) -> int:
    """Length of the first DER TLV in ``der`` (header included)."""
    if len(der) < 2:
        raise DecodeError("truncated DER")
    first = der[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(der) < 2 + n:
        raise DecodeError("bad DER length")
    return 2 + n + int.from_bytes(der[2 : 2 + n], "big")


def load_certificate(data: bytes) -> Certificate:
    """The first certificate in ``data`` (PEM or DER)."""
    return load_certificates(data)[0]


def load_csr(data: bytes) -> CertificateRequest:
    """A certificate signing request, PEM or DER."""
    try:
        if is_pem(data):
            blocks = [b for label, b in pem_blocks(data) if label.endswith("CERTIFICATE REQUEST")]
            if not blocks:
                raise DecodeError("no CERTIFICATE REQUEST PEM block found")
            return CertificateRequest(x509.load_pem_x509_csr(blocks[0]))
        return CertificateRequest(x509.load_der_x509_csr(data))
    except (ValueError, x509.InvalidVersion) as exc:
        if isinstance(exc, CryptoError):
            raise
        raise DecodeError(f"not a valid certificate signing request: {exc}") from None


def check_chain_order(chain: Sequence[Certificate]) -> None:
    """Raise :class:`ChainOrderError` unless each certificate was issued by the next."""
    for i in range(len(chain) - 1):
        if not chain[i + 1].issued(chain[i]):
            raise ChainOrderError(
                f"certificate {i + 1} ({chain[i + 1].subject!r}) did not issue certificate {i} "
                f"({chain[i].subject!r}): a chain goes leaf first, then each issuer in turn"
            )


def x509_signature_hash(key: PrivateKey) -> object:
    """The hash an X.509 signature (certificate, CSR, CRL) by ``key`` uses (None for Ed*/ML-DSA)."""
    k = key.to_cryptography()
    if isinstance(k, rsa.RSAPrivateKey):
        return hash_algorithm("sha256")  # sha256WithRSAEncryption: what every verifier takes
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return hash_algorithm({"P-256": "sha256", "P-384": "sha384"}.get(key.curve or "", "sha512"))
    if not key.can_sign:
        raise UnsupportedAlgorithmError(f"{key.description} keys cannot sign certificates")
    return None


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> Certificate:
    algorithm = x509_signature_hash(key)  # UnsupportedAlgorithmError for keys that cannot sign
    try:
        return Certificate(builder.sign(key.to_cryptography(), algorithm))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot sign the certificate: {exc}") from None


def _validity(
    days: int, not_before: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    if days < 1:
        raise CryptoError(f"the validity must be at least 1 day, not {days}")
    start = not_before or (_utcnow() - _CLOCK_SKEW)
    return start, start + datetime.timedelta(days=days)


def _random_serial() -> int:
    return x509.random_serial_number()


def _key_usage(public: PublicKey, *, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=public.algorithm == "RSA" and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _add_profile(
    builder: x509.CertificateBuilder,
    public: PublicKey,
    *,
    ca: bool,
    path_length: int | None,
    names: Sequence[str],
    issuer_public: PublicKey,
) -> x509.CertificateBuilder:
    builder = builder.add_extension(
        x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
    )
    builder = builder.add_extension(_key_usage(public, ca=ca), critical=True)
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(san_entries(names)), critical=False
        )
    builder = builder.add_extension(
        x509.SubjectKeyIdentifier.from_public_key(public.to_cryptography()), critical=False
    )
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public.to_cryptography()),  # type: ignore[arg-type]
        critical=False,
    )


def self_signed_certificate(
    key: PrivateKey,
    subject: str,
    *,
    names: Sequence[str] = (),
    days: int = 365,
    is_ca: bool = False,
    path_length: int | None = None,
    not_before: datetime.datetime | None = None,
    serial_number: int | None = None,
) -> Certificate:
    """A certificate for ``key`` signed by ``key`` itself.

    ``names`` become the subjectAltName (IP addresses are recognised). With
    ``is_ca`` it is a root CA: basicConstraints CA:TRUE, keyCertSign.
    """
    name = parse_name(subject)
    public = key.public_key()
    start, end = _validity(days, not_before)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public.to_cryptography())
        .serial_number(serial_number or _random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    builder = _add_profile(
        builder, public, ca=is_ca, path_length=path_length, names=names, issuer_public=public
    )
    return _sign(builder, key)


def make_ca(
    key: PrivateKey,
    subject: str = "/CN=quicnet development CA",
    *,
    days: int = 3650,
    path_length: int | None = None,
    not_before: datetime.datetime | None = None,
) -> Certificate:
    """A self-signed root CA certificate for ``key``."""
    return self_signed_certificate(
        key, subject, days=days, is_ca=True, path_length=path_length, not_before=not_before
    )


def make_csr(key: PrivateKey, subject: str, *, names: Iterable[str] = ()) -> CertificateRequest:
    """A CSR for ``key`` with ``subject`` and the subjectAltName ``names``."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(parse_name(subject))
    entries = san_entries(names)
    if entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    algorithm = x509_signature_hash(key)
    try:
        return CertificateRequest(builder.sign(key.to_cryptography(), algorithm))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot sign the CSR: {exc}") from None


def issue_certificate(
    csr: CertificateRequest,
    issuer: Certificate,
    issuer_key: PrivateKey,
    *,
    days: int = 365,
    is_ca: bool = False,
    path_length: int | None = None,
    names: Sequence[str] | None = None,
    not_before: datetime.datetime | None = None,
    serial_number: int | None = None,
) -> Certificate:
    """Issue a certificate for ``csr``, signed by ``issuer``/``issuer_key``.

    The CSR's signature is checked first. Its subjectAltName is copied unless
    ``names`` is given. The validity never extends past the issuer's.
    """
    csr.verify_signature()
    if issuer_key.public_key() != issuer.public_key():
        raise CryptoError("the issuer key does not match the issuer certificate")
    if not issuer.is_ca:
        raise CryptoError(f"{issuer.subject!r} is not a CA certificate (basicConstraints CA:FALSE)")
    public = csr.public_key()
    if names is None:
        names = csr.dns_names + csr.ip_addresses
    start, end = _validity(days, not_before)
    end = min(end, issuer.not_after)
    if end <= start:
        raise CryptoError(f"the issuer {issuer.subject!r} expired at {issuer.not_after:%Y-%m-%d}")
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject_name)
        .issuer_name(issuer.subject_name)
        .public_key(public.to_cryptography())
        .serial_number(serial_number or _random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
    )
    builder = _add_profile(
        builder,
        public,
        ca=is_ca,
        path_length=path_length,
        names=names,
        issuer_public=issuer.public_key(),
    )
    return _sign(builder, issuer_key)
