"""Client and server configuration, named in RFC 8446's words.

Defaults are secure: a client verifies the server's chain and name against
``trust_roots`` unless it pins a fingerprint or sets
``insecure_skip_verify=True``; a client with neither roots nor pins cannot
connect, and one with roots needs a ``server_name`` (DNS name or IP address)
unless it opts out with ``verify_server_name=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from quicnet.crypto import (
    Certificate,
    CertificateRevocationList,
    NamedGroup,
    PrivateKey,
    RevocationCheck,
    SignatureScheme,
)
from quicnet.tls.ech import ECHKey
from quicnet.tls.errors import ConfigurationError, UsageError
from quicnet.tls.key_schedule import CipherSuite
from quicnet.tls.session import SessionTicket, StrikeRegister, TicketKeys

__all__ = [
    "DEFAULT_CIPHER_SUITES",
    "DEFAULT_GROUPS",
    "DEFAULT_SIGNATURE_ALGORITHMS",
    "ClientConfig",
    "ClientAuth",
    "KeyLog",
    "ServerConfig",
]

DEFAULT_CIPHER_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.x25519,
    NamedGroup.X25519MLKEM768,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
    NamedGroup.secp521r1,
    NamedGroup.x448,
)
DEFAULT_SIGNATURE_ALGORITHMS: tuple[SignatureScheme, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ed25519,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.ed448,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.mldsa44,
    SignatureScheme.mldsa65,
    SignatureScheme.mldsa87,
    # Accepted in certificates only (signature_algorithms_cert semantics, §4.2.3).
    SignatureScheme.rsa_pkcs1_sha256,
    SignatureScheme.rsa_pkcs1_sha384,
    SignatureScheme.rsa_pkcs1_sha512,
)

#: Called with one SSLKEYLOGFILE line (no newline), e.g. to append to a file.
KeyLog = Callable[[str], None]


@dataclass
class ClientConfig:
    """What a TLS client offers and how it authenticates the server."""

    server_name: str | None = None
    alpn_protocols: Sequence[str] = ()
    #: Roots the server's chain must lead to (path validation + name check).
    trust_roots: Sequence[Certificate] = ()
    #: SHA-256 of the server's certificate or of its public key (SPKI): either matches.
    pinned_fingerprints: Sequence[bytes] = ()
    #: Accept any server certificate. Only for tests against servers you control.
    insecure_skip_verify: bool = False
    #: Check the certificate against ``server_name`` (required with ``trust_roots``).
    #: False accepts a certificate for *any* name from a trusted root: opt out knowingly.
    verify_server_name: bool = True
    #: CRLs checked along the server's chain (RFC 5280 §6.3): a revoked certificate
    #: aborts with alert certificate_revoked. With CRLs, the leaf's status must be
    #: known (``revocation_check`` "leaf", the default) or the whole chain's ("chain");
    #: an expired or wrongly signed CRL then fails closed (certificate_unknown).
    crls: Sequence[CertificateRevocationList] = ()
    revocation_check: RevocationCheck | None = None
    cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES
    groups: Sequence[NamedGroup] = DEFAULT_GROUPS
    #: Groups to send a key share for in the first ClientHello (the rest via HRR).
    key_share_groups: Sequence[NamedGroup] = (NamedGroup.x25519,)
    signature_algorithms: Sequence[SignatureScheme] = DEFAULT_SIGNATURE_ALGORITHMS
    #: Client certificate for mutual TLS (sent when the server asks).
    certificate_chain: Sequence[Certificate] = ()
    private_key: PrivateKey | None = None
    #: A ticket from an earlier connection to resume.
    session: SessionTicket | None = None
    #: Send early data (0-RTT) when ``session`` allows it.
    enable_early_data: bool = False
    #: Opaque quic_transport_parameters to send (QUIC only).
    quic_transport_parameters: bytes | None = None
    record_size_limit: int | None = None
    #: TLS over TCP: session-id echo and dummy ChangeCipherSpec (RFC 8446 §D.4).
    middlebox_compatibility: bool = True
    key_log: KeyLog | None = None
    #: Ask the server to staple an OCSP response (status_request, RFC 6066 §8); the
    #: staple is exposed as ``HandshakeComplete.ocsp_staple``, unchecked unless required.
    ocsp_stapling: bool = False
    #: Refuse the server unless its leaf comes with a stapled OCSP response that is
    #: signed by its issuer (or a delegated responder), fresh and "good" (implies
    #: ``ocsp_stapling``; needs ``trust_roots``). Fails closed: alert
    #: bad_certificate_status_response, certificate_revoked for a revoked leaf.
    require_ocsp_staple: bool = False
    #: An ECHConfigList (draft-ietf-tls-esni §4): encrypt the real ClientHello, with
    #: ``server_name``, to it; the outer hello names only the config's public name.
    #: A server that rejects ECH fails the handshake with :class:`ECHRejected`.
    ech_configs: bytes | None = None
    #: Without ``ech_configs``, send a GREASE encrypted_client_hello (§6.2).
    ech_grease: bool = False
    #: Wall-clock seconds (Unix time) for certificate and staple validity; None: the
    #: system clock. QUIC passes its configuration's ``wall_clock`` here.
    wall_clock: Callable[[], float] | None = None

    def validate(self) -> None:
        """Check that the settings can be used together and authenticate the server.

        Raises :class:`~quicnet.tls.errors.UsageError` (or its subclass
        :class:`~quicnet.tls.errors.ConfigurationError` for an unsafe combination)
        naming what to change.
        """
        if self.ech_configs is not None and (
            not self.server_name or (self.session is not None and self.enable_early_data)
        ):
            raise ConfigurationError("ECH needs server_name (the name it hides) and no early data")
        if self.require_ocsp_staple and (not self.trust_roots or self.insecure_skip_verify):
            raise ConfigurationError(
                "require_ocsp_staple checks the staple against the leaf's issuer on a path "
                "to trust_roots: give trust_roots (and not insecure_skip_verify)"
            )
        if not (self.trust_roots or self.pinned_fingerprints or self.insecure_skip_verify):
            raise UsageError(
                "the client has no way to authenticate the server: give trust_roots, "
                "pinned_fingerprints, or set insecure_skip_verify=True"
            )
        if (
            self.trust_roots
            and not self.pinned_fingerprints
            and not self.insecure_skip_verify
            and self.verify_server_name
            and not self.server_name
        ):
            # RFC 6125: a chain to a trusted root proves nothing without the expected name.
            raise ConfigurationError(
                "no server_name to verify the server's certificate against: set server_name "
                "(a DNS name or an IP address), pin a fingerprint, or set "
                "verify_server_name=False to accept any name a trusted root vouches for"
            )
        if bool(self.certificate_chain) != (self.private_key is not None):
            raise UsageError("a client certificate needs both certificate_chain and private_key")
        if self.private_key is not None and (
            self.certificate_chain[0].public_key() != self.private_key.public_key()
        ):
            raise UsageError("the client private key does not match its certificate")
        _check_alpn(self.alpn_protocols)
        if not self.cipher_suites or not self.groups:
            raise UsageError("at least one cipher suite and one group are needed")
        for g in self.key_share_groups:
            if g not in self.groups:
                raise UsageError(f"key share group {g.name} is not among the offered groups")


def _check_alpn(protocols: Sequence[str]) -> None:
    """RFC 7301 §3.1: names are 1-255 bytes (carried as latin-1 here)."""
    for name in protocols:
        try:
            raw = name.encode("latin-1")
        except UnicodeEncodeError:
            raise UsageError(f"ALPN name {name!r} is not latin-1") from None
        if not 1 <= len(raw) <= 255:
            raise UsageError(f"ALPN name {name!r} must be 1 to 255 bytes")


class ClientAuth:
    """Whether a server asks for client certificates (OpenSSL's -verify / -Verify)."""

    NONE = 0
    OPTIONAL = 1
    REQUIRED = 2


@dataclass
class ServerConfig:
    """A TLS server's identity and policy."""

    certificate_chain: Sequence[Certificate]
    private_key: PrivateKey
    alpn_protocols: Sequence[str] = ()
    cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES
    groups: Sequence[NamedGroup] = DEFAULT_GROUPS
    signature_algorithms: Sequence[SignatureScheme] = DEFAULT_SIGNATURE_ALGORITHMS
    client_auth: int = ClientAuth.NONE
    #: Roots client certificates must lead to (for client_auth).
    client_trust_roots: Sequence[Certificate] = ()
    ticket_keys: TicketKeys | None = field(default_factory=TicketKeys)
    tickets_to_send: int = 2
    ticket_lifetime: int = 7200
    #: 0 disables early data; QUIC requires 0xFFFFFFFF when enabled (RFC 9001 §4.6.1).
    max_early_data_size: int = 0
    anti_replay: StrikeRegister = field(default_factory=StrikeRegister)
    #: Sealed into every ticket; early data is accepted only with a ticket whose context
    #: equals the current one (RFC 8446 §4.2.10 leaves this check to the application;
    #: QUIC puts its transport limits here, RFC 9001 §4.6.3).
    early_data_context: bytes = b""
    #: Sealed into every ticket (unless the engine's ``ticket_context`` is changed); a
    #: ticket is accepted for resumption only with a context equal to this one (QUIC: the
    #: version, RFC 9369 §5). A ticket issued without one resumes only where it is empty.
    resumption_context: bytes = b""
    quic_transport_parameters: bytes | None = None
    #: QUIC: called with the client's transport parameters, returns ours (replacing
    #: ``quic_transport_parameters``; RFC 9368 §3 makes ours depend on the client's).
    quic_transport_parameters_for: Callable[[bytes], bytes] | None = None
    record_size_limit: int | None = None
    middlebox_compatibility: bool = True
    key_log: KeyLog | None = None
    #: DER OCSP response for the leaf (or a callable returning the current one), stapled
    #: to the leaf's CertificateEntry when a client asks (RFC 8446 §4.4.2.1).
    ocsp_staple: bytes | Callable[[], bytes | None] | None = None
    #: ECH keys (draft-ietf-tls-esni §7): a ClientHelloInner sealed to one of them is
    #: decrypted and served; any other ECH offer gets their configs as retry_configs.
    ech_keys: Sequence[ECHKey] = ()
    #: Wall-clock seconds for client certificate validity; None: the system clock.
    wall_clock: Callable[[], float] | None = None

    def validate(self) -> None:
        """Check the certificate chain, that the key matches it, client auth and ALPN.

        Raises :class:`~quicnet.tls.errors.UsageError` naming what to change.
        """
        if not self.certificate_chain:
            raise UsageError("a server needs a certificate chain")
        if self.certificate_chain[0].public_key() != self.private_key.public_key():
            raise UsageError("the private key does not match the certificate")
        if self.client_auth and not self.client_trust_roots:
            raise UsageError("client_auth needs client_trust_roots")
        _check_alpn(self.alpn_protocols)
