"""The TLS 1.3 client state machine (RFC 8446 Appendix A.1)."""

from __future__ import annotations

from typing import ClassVar

from quicnet.crypto import KeyExchangeError, KeyShare, SignatureScheme, digest, random_bytes
from quicnet.crypto.errors import CryptoError, InvalidSignatureError, UnsupportedAlgorithmError
from quicnet.crypto.signing import SCHEME_INFO
from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.auth import (
    certificate_verify_content,
    choose_signature_scheme,
    decode_certificate_chain,
    validity_time,
    verify_peer_certificates,
)
from quicnet.tls.client_hello import PSK_MODES, fixed_extensions
from quicnet.tls.config import ClientConfig
from quicnet.tls.ech import ClientECH
from quicnet.tls.engine import TLSEngine
from quicnet.tls.errors import ECHRejected, ProtocolViolation, UsageError
from quicnet.tls.events import (
    HANDSHAKE_EPOCH,
    INITIAL_EPOCH,
    ONE_RTT_EPOCH,
    ZERO_RTT_EPOCH,
    Epoch,
    HandshakeComplete,
    SessionTicketReceived,
)
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.fixed import FixedInputs
from quicnet.tls.key_schedule import CIPHER_SUITES, CipherSuite, KeySchedule, Transcript
from quicnet.tls.messages import (
    Certificate,
    CertificateEntry,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    EndOfEarlyData,
    Extension,
    Finished,
    HandshakeType,
    NewSessionTicket,
    ServerHello,
    encode_message,
)
from quicnet.tls.session import SessionTicket
from quicnet.tls.stapling import client_staple
from quicnet.tls.tickets import TicketReceiver, session_ticket

__all__ = ["TLSClient"]

# §4.1.3: the last 8 bytes of ServerHello.random when a TLS 1.3 server negotiates lower.
DOWNGRADE_SENTINELS = (b"DOWNGRD\x01", b"DOWNGRD\x00")

# §4.2: extensions each message may carry (responses to what we offered).
_SERVER_HELLO_EXTENSIONS = {ET.supported_versions, ET.key_share, ET.pre_shared_key}
#: Members read on every handshake, as module constants (~70 ns each through the class).
_SUPPORTED_VERSIONS, _PRE_SHARED_KEY = ET.supported_versions, ET.pre_shared_key
_KEY_SHARE, _QUIC_TRANSPORT_PARAMETERS = ET.key_share, ET.quic_transport_parameters
#: The EncryptedExtensions the client reads, in the order ``_on_encrypted_extensions``
#: unpacks them.
_EE_EXTENSIONS = (
    ET.application_layer_protocol_negotiation,
    ET.early_data,
    ET.record_size_limit,
    ET.encrypted_client_hello,
    ET.quic_transport_parameters,
)
_HRR_EXTENSIONS = {ET.supported_versions, ET.key_share, ET.cookie, ET.encrypted_client_hello}
_EE_FORBIDDEN = {
    ET.supported_versions,
    ET.key_share,
    ET.pre_shared_key,
    ET.psk_key_exchange_modes,
    ET.signature_algorithms,
    ET.signature_algorithms_cert,
    ET.cookie,
    ET.certificate_authorities,
    ET.post_handshake_auth,
    ET.oid_filters,
    ET.padding,
    ET.status_request,  # TLS 1.3 staples in the CertificateEntry (RFC 8446 §4.4.2.1)
}


#: Cipher suites and signature schemes by value: a dict look-up, where ``CipherSuite(value)``
#: is two Python calls.
_SUITES_BY_VALUE: dict[int, CipherSuite] = {int(s): s for s in CipherSuite}
_SCHEMES_BY_VALUE: dict[int, SignatureScheme] = {int(s): s for s in SignatureScheme}


class TLSClient(TLSEngine):
    """A TLS 1.3 client. Call :meth:`start`, then feed what the server sends."""

    is_client = True
    #: RFC 8446 Appendix A.1 as data: (state, message, epoch) -> handler.
    TRANSITIONS: ClassVar[dict[tuple[str, type, Epoch], str]] = {
        ("WAIT_SH", ServerHello, Epoch.INITIAL): "_on_server_hello",
        ("WAIT_EE", EncryptedExtensions, Epoch.HANDSHAKE): "_on_encrypted_extensions",
        ("WAIT_CERT_CR", CertificateRequest, Epoch.HANDSHAKE): "_on_certificate_request",
        ("WAIT_CERT_CR", Certificate, Epoch.HANDSHAKE): "_on_certificate",
        ("WAIT_CERT", Certificate, Epoch.HANDSHAKE): "_on_certificate",
        ("WAIT_CV", CertificateVerify, Epoch.HANDSHAKE): "_on_certificate_verify",
        ("WAIT_FINISHED", Finished, Epoch.HANDSHAKE): "_on_finished",
        ("CONNECTED", NewSessionTicket, Epoch.ONE_RTT): "_on_new_session_ticket",
    }

    def __init__(
        self, config: ClientConfig, *, quic: bool = False, fixed: FixedInputs | None = None
    ) -> None:
        super().__init__(config, quic=quic, fixed=fixed)
        self.config = config
        self._shares: dict[int, KeyShare] = {}
        self._session_id = b""
        self._offered_extensions: set[int] = set()
        self._offered_psk: SessionTicket | None = None
        self._hello_retry = False
        self._hrr_group: int | None = None
        self._cookie: bytes | None = None
        self._early_data_offered = False
        self._certificate_request: CertificateRequest | None = None
        self._server_signature_scheme: int | None = None
        self._resumption_master_secret = b""
        #: Over QUIC, the connection's version once known (the QUIC layer sets it): each
        #: session ticket is for that version (RFC 9369 §5). None over TCP.
        self.quic_version: int | None = None
        #: The DER OCSP response stapled to the server's leaf, if any.
        self.ocsp_staple: bytes | None = None
        use_ech = config.ech_configs is not None or config.ech_grease
        self._ech = ClientECH(config.ech_configs) if use_ech else None
        #: Set when the server rejected ECH: the error the handshake failed with.
        self.ech_rejection: ECHRejected | None = None

    def _release_role_state(self) -> None:
        self._shares = {}
        self._offered_extensions = set()
        self._offered_psk = None
        self._certificate_request = None
        self._cookie = None

    # ClientHello ------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Queue the ClientHello (and the 0-RTT write secret when early data is offered)."""
        if self.state != "START":
            raise UsageError("start() was already called")
        fixed = self._fixed
        self.client_random = fixed.random or random_bytes(32)
        if self.config.middlebox_compatibility and not self.quic:
            self._session_id = fixed.session_id or random_bytes(32)
        for group in self.config.key_share_groups:
            self._shares[group] = self._new_share(group)
        session = self.config.session
        if session is not None and self._session_usable(session, now):
            self._offered_psk = session
            self._early_data_offered = self._early_data_allowed(session)
        self._send_hello(self._client_hello(now))
        if self._early_data_offered:
            assert self._offered_psk is not None
            suite = CipherSuite(self._offered_psk.cipher_suite)
            info = CIPHER_SUITES[suite]
            schedule = KeySchedule(info, self._offered_psk.resumption_psk)
            hello_hash = self.transcript.digest_as(info.hash_name)
            secret = schedule.client_early_traffic_secret(hello_hash)
            self.cipher_suite = suite  # §4.2.10: 0-RTT uses the ticket's suite
            self._secret(ZERO_RTT_EPOCH, True, secret, "CLIENT_EARLY_TRAFFIC_SECRET")
            self.cipher_suite = None
        self.state = "WAIT_SH"

    def _send_hello(self, hello: ClientHello) -> None:
        """Send ``hello``, or with ECH the outer hello sealing it; the transcript keeps
        ``hello`` (the inner) until the server answers (draft-ietf-tls-esni §6.1)."""
        ech = self._ech
        if ech is None or ech.grease or ech.accepted is False:
            self._send(INITIAL_EPOCH, hello)
            return
        self._send(INITIAL_EPOCH, ech.outer_hello(hello), transcript=False)
        self.transcript.add(encode_message(hello))

    def _ech_verdict(self, hello: ServerHello, raw: bytes) -> None:
        """§6.1.4: accepted, go on with the inner transcript; else the outer one."""
        ech = self._ech
        if ech is None or ech.grease or ech.accepted is not None:
            return
        hash_name = CIPHER_SUITES[CipherSuite(hello.cipher_suite)].hash_name
        if hello.is_hello_retry_request:
            accepted = ech.check_hello_retry(hello, hash_name, self.client_random)
        else:
            accepted = ech.check_server_hello(raw, self.transcript, self.client_random, hash_name)
        if not accepted:  # the server saw only the outer hello
            self.transcript = Transcript()
            self.transcript.add(ech.outer_raw)
            self._offered_extensions = ech.outer_extensions
            self._offered_psk = None
            self._early_data_offered = False
            self.client_random = ech.outer_random

    def _new_share(self, group: int) -> KeyShare:
        private = self._fixed.key_share_private_keys.get(group)
        return KeyShare(group) if private is None else KeyShare.from_private_bytes(group, private)

    def _session_usable(self, session: SessionTicket, now: float) -> bool:
        if not session.is_valid_at(now) or session.cipher_suite not in self.config.cipher_suites:
            return False
        name = self.config.server_name
        return session.server_name is None or name is None or session.server_name == name

    def _early_data_allowed(self, session: SessionTicket) -> bool:
        if not self.config.enable_early_data or session.max_early_data_size == 0:
            return False
        alpn = session.alpn_protocol
        return alpn is None or alpn in self.config.alpn_protocols

    def _client_hello(self, now: float) -> ClientHello:
        c = self.config
        # The public name once ECH is rejected.
        before_share, after_share = fixed_extensions(c, self._authenticated_name())
        items: list[Extension] = list(before_share)
        if self._hrr_group is not None:
            share = self._shares[self._hrr_group]
            entries = [ext.KeyShareEntry(share.group, share.key_exchange)]
        else:
            entries = [ext.KeyShareEntry(s.group, s.key_exchange) for s in self._shares.values()]
        items.append(Extension(_KEY_SHARE, ext.encode_key_share_client(entries)))
        items += after_share
        if self._cookie is not None:
            items.append(Extension(ET.cookie, ext.encode_cookie(self._cookie)))
        if self.quic:
            assert c.quic_transport_parameters is not None
            items.append(Extension(_QUIC_TRANSPORT_PARAMETERS, c.quic_transport_parameters))
        items.append(PSK_MODES)
        if self._ech is not None:
            items.append(self._ech.hello_extension())
        if self._early_data_offered and not self._hello_retry:
            items.append(Extension(ET.early_data, b""))
        if self._fixed.extensions is not None:
            items = self._fixed.extensions(HandshakeType.client_hello, items)
        self._offered_extensions = {e.type for e in items}
        suites = tuple(int(s) for s in c.cipher_suites)
        psk = self._offered_psk
        if psk is None:
            return ClientHello(self.client_random, self._session_id, suites, tuple(items))
        # §4.2.11: pre_shared_key goes last; its binder covers the hello up to the binders.
        self._offered_extensions.add(ET.pre_shared_key)
        hash_len = CIPHER_SUITES[CipherSuite(psk.cipher_suite)].hash_length
        identity = ext.PskIdentity(psk.ticket, psk.obfuscated_age(now))
        offer = ext.OfferedPsks((identity,), (bytes(hash_len),))
        draft = ClientHello(
            self.client_random,
            self._session_id,
            suites,
            (*items, Extension(ET.pre_shared_key, ext.encode_pre_shared_key_client(offer))),
        )
        truncated = encode_message(draft)[: -ext.binders_length(offer)]
        binder = self._psk_binder(psk, truncated)
        offer = ext.OfferedPsks((identity,), (binder,))
        return ClientHello(
            self.client_random,
            self._session_id,
            suites,
            (*items, Extension(ET.pre_shared_key, ext.encode_pre_shared_key_client(offer))),
        )

    def _psk_binder(self, psk: SessionTicket, truncated_hello: bytes) -> bytes:
        """§4.2.11.2: HMAC over the transcript up to and including the truncated hello."""
        info = CIPHER_SUITES[CipherSuite(psk.cipher_suite)]
        schedule = KeySchedule(info, psk.resumption_psk)
        if self._hello_retry:
            prefix = self.transcript.digest_with(truncated_hello)
        else:
            prefix = digest(info.hash_name, truncated_hello)
        return schedule.finished_verify_data(schedule.binder_key(), prefix)

    def _check_hello_common(self, hello: ServerHello) -> None:
        versions = hello.extension(_SUPPORTED_VERSIONS)
        if versions is None:
            if hello.random[-8:] in DOWNGRADE_SENTINELS:
                raise ProtocolViolation(
                    "downgrade sentinel in ServerHello.random", AlertDescription.illegal_parameter
                )
            raise ProtocolViolation(
                "the server does not speak TLS 1.3", AlertDescription.protocol_version
            )
        if ext.decode_supported_versions_server(versions) != ext.TLS13:
            raise ProtocolViolation(
                "the server selected a version other than TLS 1.3",
                AlertDescription.illegal_parameter,
            )
        if hello.legacy_version != 0x0303:
            raise ProtocolViolation(
                "ServerHello.legacy_version is not 0x0303", AlertDescription.protocol_version
            )
        if hello.legacy_session_id_echo != self._session_id:
            raise ProtocolViolation(
                "legacy_session_id_echo does not match", AlertDescription.illegal_parameter
            )
        if hello.cipher_suite not in self.config.cipher_suites or hello.legacy_compression_method:
            raise ProtocolViolation(
                "the server chose a cipher suite or compression we did not offer",
                AlertDescription.illegal_parameter,
            )

    def _on_server_hello(self, hello: ServerHello, raw: bytes, now: float) -> None:
        self._check_hello_common(hello)
        self._ech_verdict(hello, raw)
        if hello.is_hello_retry_request:
            self._on_hello_retry_request(hello, raw, now)
            return
        allowed = _SERVER_HELLO_EXTENSIONS
        for e in hello.extensions:
            if e.type not in allowed:
                raise ProtocolViolation(
                    f"extension {e.type} not allowed in ServerHello",
                    AlertDescription.illegal_parameter
                    if e.type in self._offered_extensions
                    else AlertDescription.unsupported_extension,
                )
        suite = _SUITES_BY_VALUE.get(hello.cipher_suite) or CipherSuite(hello.cipher_suite)
        if self._hello_retry and suite != self.cipher_suite:
            raise ProtocolViolation(
                "ServerHello cipher suite differs from the HelloRetryRequest's",
                AlertDescription.illegal_parameter,
            )
        psk: bytes | None = None
        selected = hello.extension(_PRE_SHARED_KEY)
        if selected is not None:
            offered = self._offered_psk
            if _PRE_SHARED_KEY not in self._offered_extensions:
                raise ProtocolViolation(  # §4.2: a response to no request
                    "pre_shared_key in ServerHello but none offered",
                    AlertDescription.unsupported_extension,
                )
            if offered is None or ext.decode_pre_shared_key_server(selected) != 0:
                raise ProtocolViolation(
                    "the server selected a PSK we did not offer", AlertDescription.illegal_parameter
                )
            if (
                CIPHER_SUITES[suite].hash_name
                != CIPHER_SUITES[CipherSuite(offered.cipher_suite)].hash_name
            ):
                raise ProtocolViolation(
                    "resumed with a cipher suite of another hash",
                    AlertDescription.illegal_parameter,
                )
            psk = offered.resumption_psk
            self.resumed = True
        share_data = hello.extension(_KEY_SHARE)
        if share_data is None:
            # We offer only psk_dhe_ke, so a key share is always required.
            raise ProtocolViolation(
                "ServerHello has no key_share", AlertDescription.missing_extension
            )
        entry = ext.decode_key_share_server(share_data)
        share = self._shares.get(entry.group)
        if share is None or (self._hrr_group is not None and entry.group != self._hrr_group):
            raise ProtocolViolation(
                "the server's key share is for a group we did not send",
                AlertDescription.illegal_parameter,
            )
        try:
            shared_secret = share.shared_secret(entry.key_exchange)
        except KeyExchangeError as exc:
            raise ProtocolViolation(str(exc), AlertDescription.illegal_parameter) from None
        self.group = entry.group
        if self._hello_retry:
            assert self.suite is not None
            self.key_schedule = KeySchedule(self.suite, psk)
        else:
            self._set_suite(suite, psk)
        self.transcript.add(raw)
        assert self.key_schedule is not None
        self.key_schedule.enter_handshake(shared_secret)
        self._shares.clear()
        self._install_handshake_secrets()
        self.state = "WAIT_EE"

    def _on_hello_retry_request(self, hello: ServerHello, raw: bytes, now: float) -> None:
        if self._hello_retry:
            raise ProtocolViolation(
                "a second HelloRetryRequest", AlertDescription.unexpected_message
            )
        for e in hello.extensions:
            if e.type not in _HRR_EXTENSIONS:
                raise ProtocolViolation(
                    f"extension {e.type} not allowed in HelloRetryRequest",
                    AlertDescription.illegal_parameter
                    if e.type in self._offered_extensions
                    else AlertDescription.unsupported_extension,
                )
        group_data = hello.extension(ET.key_share)
        cookie_data = hello.extension(ET.cookie)
        if group_data is None and cookie_data is None:
            # §4.1.4: an HRR that would not change the ClientHello.
            raise ProtocolViolation(
                "HelloRetryRequest asks for nothing", AlertDescription.illegal_parameter
            )
        if group_data is not None:
            group = ext.decode_key_share_hrr(group_data)
            if group not in self.config.groups or group in self._shares:
                raise ProtocolViolation(
                    f"HelloRetryRequest asks for group 0x{group:04x}",
                    AlertDescription.illegal_parameter,
                )
            self._shares = {group: self._new_share(group)}
            self._hrr_group = group
        else:
            self._hrr_group = next(iter(self._shares))
        if cookie_data is not None:
            self._cookie = ext.decode_cookie(cookie_data)
        suite = CipherSuite(hello.cipher_suite)
        self._hello_retry = True
        self.cipher_suite = None
        self._set_suite(suite)
        self.transcript.restart_for_hello_retry(self.suite.hash_name if self.suite else "sha256")
        self.transcript.add(raw)
        offered = self._offered_psk
        if offered is not None and (
            CIPHER_SUITES[CipherSuite(offered.cipher_suite)].hash_name
            != CIPHER_SUITES[suite].hash_name
        ):
            self._offered_psk = None  # §4.1.4: a PSK of another hash cannot follow this HRR
        self._early_data_offered = False
        self._send_hello(self._client_hello(now))
        self.state = "WAIT_SH"

    # Encrypted flight -----------------------------------------------------------------
    def _on_encrypted_extensions(
        self, message: EncryptedExtensions, raw: bytes, now: float
    ) -> None:
        for e in message.extensions:
            if e.type not in self._offered_extensions:  # §4.2: a response to no request
                raise ProtocolViolation(
                    f"EncryptedExtensions answers extension {e.type} we did not offer",
                    AlertDescription.unsupported_extension,
                )
            if e.type in _EE_FORBIDDEN:
                raise ProtocolViolation(
                    f"extension {e.type} not allowed in EncryptedExtensions",
                    AlertDescription.illegal_parameter,
                )
        # Every extension read below, in one pass over a table (the first of a type wins,
        # as with ``extension``; an enum member read through its class costs ~70 ns).
        alpn, early, limit, ech_data, tp = map(
            dict(reversed(message.extensions)).get, _EE_EXTENSIONS
        )
        if alpn is not None:
            protocols = ext.decode_alpn(alpn)
            if len(protocols) != 1 or protocols[0] not in self.config.alpn_protocols:
                raise ProtocolViolation(
                    "the server chose an ALPN protocol we did not offer",
                    AlertDescription.illegal_parameter,
                )
            self.alpn_protocol = protocols[0]
        elif self.quic and self.config.alpn_protocols:
            raise ProtocolViolation(
                "QUIC requires an ALPN protocol", AlertDescription.no_application_protocol
            )
        if early is not None:
            ext.decode_empty(early, "early_data")
            if not self._early_data_offered or not self.resumed:
                raise ProtocolViolation(
                    "early data accepted but not offered", AlertDescription.illegal_parameter
                )
            offered = self._offered_psk
            if offered is not None and offered.alpn_protocol != self.alpn_protocol:
                raise ProtocolViolation(
                    "0-RTT accepted with a different ALPN", AlertDescription.illegal_parameter
                )
            self.early_data_accepted = True
        if limit is not None:
            self.peer_record_size_limit = ext.decode_record_size_limit(limit)
            self.local_record_size_limit = self.config.record_size_limit
        if ech_data is not None and self._ech is not None:
            self._ech.on_encrypted_extensions(ech_data)
        if self.quic and tp is None:
            raise ProtocolViolation(
                "the server sent no quic_transport_parameters", AlertDescription.missing_extension
            )
        self.peer_transport_parameters = tp
        self.transcript.add(raw)
        self.state = "WAIT_FINISHED" if self.resumed else "WAIT_CERT_CR"

    def _on_certificate_request(self, message: CertificateRequest, raw: bytes, now: float) -> None:
        if message.certificate_request_context:
            raise ProtocolViolation(
                "CertificateRequest context must be empty in the handshake",
                AlertDescription.illegal_parameter,
            )
        algs = message.extension(ET.signature_algorithms)
        if algs is None:
            raise ProtocolViolation(
                "CertificateRequest has no signature_algorithms", AlertDescription.missing_extension
            )
        ext.decode_u16_list(algs, "signature_algorithms")
        self._certificate_request = message
        self.transcript.add(raw)
        self.state = "WAIT_CERT"

    def _on_certificate(self, message: Certificate, raw: bytes, now: float) -> None:
        if message.certificate_request_context:
            raise ProtocolViolation(
                "server Certificate context must be empty", AlertDescription.illegal_parameter
            )
        if not message.certificate_list:
            raise ProtocolViolation("the server sent no certificate", AlertDescription.decode_error)
        chain = decode_certificate_chain(message.certificate_list)
        c = self.config
        verify_peer_certificates(
            chain,
            roots=c.trust_roots,
            pins=c.pinned_fingerprints,
            name=self._authenticated_name(),
            purpose="server",
            skip=c.insecure_skip_verify,
            require_name=c.verify_server_name,
            crls=c.crls,
            revocation_check=c.revocation_check,
            at=validity_time(c.wall_clock),
        )
        self.ocsp_staple = client_staple(
            message.certificate_list, chain, self._offered_extensions, c
        )
        self.peer_certificates = tuple(chain)
        self.transcript.add(raw)
        self.state = "WAIT_CV"

    def _authenticated_name(self) -> str | None:
        """The server's name to verify: after an ECH rejection, the public name (§6.1.7)."""
        ech = self._ech
        if ech is not None and ech.config is not None and ech.accepted is False:
            return ech.config.public_name
        return self.config.server_name or None

    def _on_certificate_verify(self, message: CertificateVerify, raw: bytes, now: float) -> None:
        scheme = message.algorithm
        if (
            scheme not in self.config.signature_algorithms
            or not SCHEME_INFO[
                _SCHEMES_BY_VALUE.get(scheme) or SignatureScheme(scheme)
            ].handshake_allowed
        ):
            raise ProtocolViolation(
                f"CertificateVerify with scheme 0x{scheme:04x} we did not offer",
                AlertDescription.illegal_parameter,
            )
        content = certificate_verify_content(self.transcript.digest(), server=True)
        try:
            self.peer_certificates[0].public_key().verify(scheme, message.signature, content)
        except (InvalidSignatureError, UnsupportedAlgorithmError, CryptoError) as exc:
            raise ProtocolViolation(
                f"server CertificateVerify: {exc}", AlertDescription.decrypt_error
            ) from None
        self._server_signature_scheme = scheme
        self.transcript.add(raw)
        self.state = "WAIT_FINISHED"

    def _on_finished(self, message: Finished, raw: bytes, now: float) -> None:
        assert self.key_schedule is not None
        if len(message.verify_data) != self.key_schedule.hash_length:
            raise ProtocolViolation("Finished of the wrong length", AlertDescription.decode_error)
        if not self.key_schedule.check_finished(
            self._server_handshake_key or self.server_handshake_secret,
            self.transcript.digest(),
            message.verify_data,
        ):
            raise ProtocolViolation(
                "server Finished does not verify", AlertDescription.decrypt_error
            )
        self.transcript.add(raw)
        ech = self._ech
        if ech is not None and ech.config is not None and ech.accepted is False:
            # §6.1.6: the server is authenticated for the public name: end with ech_required.
            self.ech_rejection = ech.rejection()
            raise self.ech_rejection
        self._derive_application_secrets()
        self._secret(
            ONE_RTT_EPOCH, False, self.server_application_secret, "SERVER_TRAFFIC_SECRET_0"
        )
        if self.early_data_accepted and not self.quic:
            self._send(ZERO_RTT_EPOCH, EndOfEarlyData())  # §4.5 (QUIC omits it: RFC 9001 §8.3)
        if self._certificate_request is not None:
            self._send_client_certificate(self._certificate_request)
        verify_data = self.key_schedule.finished_verify_data(
            self._client_handshake_key or self.client_handshake_secret, self.transcript.digest()
        )
        self._send(HANDSHAKE_EPOCH, Finished(verify_data))
        self._resumption_master_secret = self.key_schedule.resumption_master_secret(
            self.transcript.digest()
        )
        self._secret(ONE_RTT_EPOCH, True, self.client_application_secret, "CLIENT_TRAFFIC_SECRET_0")
        self.state = "CONNECTED"
        self.handshake_complete = True
        assert self.cipher_suite is not None
        self._events.append(
            HandshakeComplete(
                cipher_suite=self.cipher_suite,
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                resumed=self.resumed,
                early_data_accepted=self.early_data_accepted,
                peer_certificates=self.peer_certificates,
                server_name=self.config.server_name,
                signature_scheme=self._server_signature_scheme,
                ocsp_staple=self.ocsp_staple,
                ech_accepted=bool(self._ech and self._ech.accepted),
            )
        )

    def _send_client_certificate(self, request: CertificateRequest) -> None:
        c = self.config
        algs_data = request.extension(ET.signature_algorithms)
        assert algs_data is not None
        peer_algs = ext.decode_u16_list(algs_data, "signature_algorithms")
        key = c.private_key
        usable = key is not None and any(
            s in peer_algs and SCHEME_INFO[s].handshake_allowed for s in key.signature_schemes
        )
        if not usable or key is None:
            self._send(HANDSHAKE_EPOCH, Certificate(b"", ()))  # §4.4.2: empty when we have none
            return
        entries = tuple(CertificateEntry(cert.to_der()) for cert in c.certificate_chain)
        self._send(HANDSHAKE_EPOCH, Certificate(b"", entries))
        scheme = choose_signature_scheme(key, peer_algs)
        content = certificate_verify_content(self.transcript.digest(), server=False)
        self._send(HANDSHAKE_EPOCH, CertificateVerify(scheme, key.sign(scheme, content)))

    # Post-handshake -------------------------------------------------------------------
    def _on_new_session_ticket(self, message: NewSessionTicket, raw: bytes, now: float) -> None:
        assert self.cipher_suite is not None
        ticket = session_ticket(
            message,
            self.cipher_suite,
            self._resumption_master_secret,
            now,
            server_name=self.config.server_name,
            alpn_protocol=self.alpn_protocol,
            transport_parameters=self.peer_transport_parameters,
            quic_version=self.quic_version,
        )
        self._events.append(SessionTicketReceived(ticket))

    def ticket_receiver(self) -> TicketReceiver:
        """What a QUIC client keeps once its handshake is confirmed (RFC 9001 §4.1.3): a
        :class:`TicketReceiver` for the server's tickets, without this engine's state."""
        if not self.handshake_complete or self.cipher_suite is None:
            raise UsageError("the handshake is not complete")
        if not self.quic:
            raise UsageError("over TCP the engine itself must stay (KeyUpdate, tickets)")
        return TicketReceiver(
            cipher_suite=self.cipher_suite,
            resumption_master_secret=self._resumption_master_secret,
            group=self.group,
            alpn_protocol=self.alpn_protocol,
            resumed=self.resumed,
            early_data_accepted=self.early_data_accepted,
            server_name=self.config.server_name,
            peer_transport_parameters=self.peer_transport_parameters,
            peer_certificates=self.peer_certificates,
            buffered=self._reassembler.buffered(),  # a ticket cut across CRYPTO frames
            quic_version=self.quic_version,
        )
