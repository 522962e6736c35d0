"""The crypto toolkit: a small, typed layer over pyca/cryptography.

Keys (:mod:`~quicnet.crypto.keys`), X.509 certificates and CSRs
(:mod:`~quicnet.crypto.certs`), path validation (:mod:`~quicnet.crypto.verify`)
with CRLs (:mod:`~quicnet.crypto.crl`),
development identities, TLS key exchange (:mod:`~quicnet.crypto.kex`), AEAD
and QUIC header protection (:mod:`~quicnet.crypto.aead`), HKDF and the TLS 1.3
derivations (:mod:`~quicnet.crypto.kdf`), HPKE (:mod:`~quicnet.crypto.hpke`,
imported from there), hashes, randomness.

This package is the only one in quicnet that imports pyca/cryptography.
"""

from quicnet.crypto.aead import Aead, AeadAlgorithm, HeaderProtection
from quicnet.crypto.certs import (
    Certificate,
    CertificateRequest,
    check_chain_order,
    format_fingerprint,
    issue_certificate,
    load_certificate,
    load_certificates,
    load_csr,
    make_ca,
    make_csr,
    self_signed_certificate,
)
from quicnet.crypto.crl import (
    BadCRLSignature,
    CertificateRevocationList,
    CRLExpired,
    CRLNotYetValid,
    load_crl,
    load_crls,
    make_crl,
)
from quicnet.crypto.errors import (
    BadCertificateSignature,
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    ChainOrderError,
    CryptoError,
    DecodeError,
    DecryptError,
    InvalidSignatureError,
    KeyExchangeError,
    NameMismatch,
    NotACA,
    PassphraseError,
    PathTooLong,
    UnknownIssuer,
    UnsuitableCertificate,
    UnsupportedAlgorithmError,
    UnsupportedCriticalExtension,
)
from quicnet.crypto.hashes import HASH_NAMES, Hasher, HmacKey, digest, digest_size, hmac_digest
from quicnet.crypto.identity import DevIdentity, dev_identity
from quicnet.crypto.kdf import (
    ExpandKey,
    derive_secret,
    hkdf_expand,
    hkdf_expand_label,
    hkdf_expand_labels,
    hkdf_extract,
)
from quicnet.crypto.kex import KeyShare, NamedGroup, respond_key_share
from quicnet.crypto.keys import (
    KEY_ALGORITHMS,
    PrivateKey,
    PublicKey,
    generate_private_key,
    load_private_key,
    load_public_key,
)
from quicnet.crypto.pkcs12 import (
    Pkcs12Bundle,
    Pkcs12Identity,
    export_pkcs12,
    is_pkcs12,
    load_pkcs12,
)
from quicnet.crypto.random import constant_time_eq, random_bytes
from quicnet.crypto.revocation import (
    CertificateRevoked,
    Revocation,
    RevocationCheck,
    RevocationReason,
    RevocationUnknown,
)
from quicnet.crypto.signing import SignatureScheme
from quicnet.crypto.verify import verify_chain

__all__ = [
    "HASH_NAMES",
    "KEY_ALGORITHMS",
    "Aead",
    "AeadAlgorithm",
    "BadCRLSignature",
    "BadCertificateSignature",
    "CRLExpired",
    "CRLNotYetValid",
    "Certificate",
    "CertificateError",
    "CertificateExpired",
    "CertificateNotYetValid",
    "CertificateRequest",
    "CertificateRevocationList",
    "CertificateRevoked",
    "ChainOrderError",
    "CryptoError",
    "DecodeError",
    "DecryptError",
    "DevIdentity",
    "ExpandKey",
    "Hasher",
    "HmacKey",
    "HeaderProtection",
    "InvalidSignatureError",
    "KeyExchangeError",
    "KeyShare",
    "NameMismatch",
    "NamedGroup",
    "NotACA",
    "PassphraseError",
    "PathTooLong",
    "Pkcs12Bundle",
    "Pkcs12Identity",
    "PrivateKey",
    "PublicKey",
    "Revocation",
    "RevocationCheck",
    "RevocationReason",
    "RevocationUnknown",
    "SignatureScheme",
    "UnknownIssuer",
    "UnsuitableCertificate",
    "UnsupportedAlgorithmError",
    "UnsupportedCriticalExtension",
    "check_chain_order",
    "constant_time_eq",
    "derive_secret",
    "dev_identity",
    "export_pkcs12",
    "digest",
    "digest_size",
    "format_fingerprint",
    "generate_private_key",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_expand_labels",
    "hkdf_extract",
    "hmac_digest",
    "is_pkcs12",
    "issue_certificate",
    "load_certificate",
    "load_certificates",
    "load_crl",
    "load_crls",
    "load_csr",
    "load_pkcs12",
    "load_private_key",
    "load_public_key",
    "make_ca",
    "make_crl",
    "make_csr",
    "random_bytes",
    "respond_key_share",
    "self_signed_certificate",
    "verify_chain",
]
