"""Names of the object identifiers the toolkit prints.

pyca/cryptography keeps its OID names private, so the ``-text`` dumps and
:attr:`Certificate.signature_algorithm <quicnet.crypto.certs.Certificate.signature_algorithm>`
name OIDs from this table: OpenSSL's short names for the signature
algorithms, extensions and extended key usages pyca has constants for
(lowercase ``ed25519``/``ed448`` where OpenSSL prints capitals, as the dumps
always have). Any other OID is shown dotted.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID as _Eku
from cryptography.x509.oid import ExtensionOID as _Ext
from cryptography.x509.oid import SignatureAlgorithmOID as _Sig

__all__ = ["oid_name"]

_NAMES: dict[x509.ObjectIdentifier, str] = {
    # Signature algorithms (RFC 3279, RFC 4055, RFC 5758, RFC 8410, RFC 9881).
    _Sig.RSA_WITH_MD5: "md5WithRSAEncryption",
    _Sig.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    _Sig.RSA_WITH_SHA224: "sha224WithRSAEncryption",
    _Sig.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    _Sig.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    _Sig.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    _Sig.RSASSA_PSS: "rsassaPss",
    _Sig.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    _Sig.ECDSA_WITH_SHA224: "ecdsa-with-SHA224",
    _Sig.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    _Sig.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    _Sig.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    _Sig.DSA_WITH_SHA1: "dsa-with-sha1",
    _Sig.DSA_WITH_SHA224: "dsa-with-sha224",
    _Sig.DSA_WITH_SHA256: "dsa-with-sha256",
    _Sig.ED25519: "ed25519",
    _Sig.ED448: "ed448",
    _Sig.ML_DSA_44: "ML-DSA-44",
    _Sig.ML_DSA_65: "ML-DSA-65",
    _Sig.ML_DSA_87: "ML-DSA-87",
    _Sig.GOSTR3411_94_WITH_3410_2001: "GOST R 34.11-94 with GOST R 34.10-2001",
    _Sig.GOSTR3410_2012_WITH_3411_2012_256: "GOST R 34.10-2012 with GOST R 34.11-2012 (256 bit)",
    _Sig.GOSTR3410_2012_WITH_3411_2012_512: "GOST R 34.10-2012 with GOST R 34.11-2012 (512 bit)",
    # Certificate and CRL extensions (RFC 5280 §4.2, §5.2; RFC 6962; RFC 7633; RFC 6960).
    _Ext.SUBJECT_DIRECTORY_ATTRIBUTES: "subjectDirectoryAttributes",
    _Ext.SUBJECT_KEY_IDENTIFIER: "subjectKeyIdentifier",
    _Ext.KEY_USAGE: "keyUsage",
    _Ext.PRIVATE_KEY_USAGE_PERIOD: "privateKeyUsagePeriod",
    _Ext.SUBJECT_ALTERNATIVE_NAME: "subjectAltName",
    _Ext.ISSUER_ALTERNATIVE_NAME: "issuerAltName",
    _Ext.BASIC_CONSTRAINTS: "basicConstraints",
    _Ext.NAME_CONSTRAINTS: "nameConstraints",
    _Ext.CRL_DISTRIBUTION_POINTS: "cRLDistributionPoints",
    _Ext.CERTIFICATE_POLICIES: "certificatePolicies",
    _Ext.POLICY_MAPPINGS: "policyMappings",
    _Ext.AUTHORITY_KEY_IDENTIFIER: "authorityKeyIdentifier",
    _Ext.POLICY_CONSTRAINTS: "policyConstraints",
    _Ext.EXTENDED_KEY_USAGE: "extendedKeyUsage",
    _Ext.FRESHEST_CRL: "freshestCRL",
    _Ext.INHIBIT_ANY_POLICY: "inhibitAnyPolicy",
    _Ext.ISSUING_DISTRIBUTION_POINT: "issuingDistributionPoint",
    _Ext.AUTHORITY_INFORMATION_ACCESS: "authorityInfoAccess",
    _Ext.SUBJECT_INFORMATION_ACCESS: "subjectInfoAccess",
    _Ext.OCSP_NO_CHECK: "OCSPNoCheck",
    _Ext.TLS_FEATURE: "TLSFeature",
    _Ext.CRL_NUMBER: "cRLNumber",
    _Ext.DELTA_CRL_INDICATOR: "deltaCRLIndicator",
    _Ext.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS: "signedCertificateTimestampList",
    _Ext.PRECERT_POISON: "ctPoison",
    _Ext.SIGNED_CERTIFICATE_TIMESTAMPS: "signedCertificateTimestampList",
    _Ext.MS_CERTIFICATE_TEMPLATE: "msCertificateTemplate",
    _Ext.ADMISSIONS: "Admissions",
    # Extended key usages (RFC 5280 §4.2.1.12, RFC 4556).
    _Eku.SERVER_AUTH: "serverAuth",
    _Eku.CLIENT_AUTH: "clientAuth",
    _Eku.CODE_SIGNING: "codeSigning",
    _Eku.EMAIL_PROTECTION: "emailProtection",
    _Eku.TIME_STAMPING: "timeStamping",
    _Eku.OCSP_SIGNING: "OCSPSigning",
    _Eku.SMARTCARD_LOGON: "msSmartcardLogin",
    _Eku.KERBEROS_PKINIT_KDC: "pkInitKDC",
}


def oid_name(oid: x509.ObjectIdentifier) -> str:
    """OpenSSL's short name for ``oid`` (``sha256WithRSAEncryption``), else its dotted form."""
    return _NAMES.get(oid, oid.dotted_string)
