"""The TLS 1.3 server state machine (RFC 8446 Appendix A.2)."""

from __future__ import annotations

from typing import ClassVar

from quicnet.crypto import (
    InvalidSignatureError,
    KeyExchangeError,
    KeyShare,
    SignatureScheme,
    constant_time_eq,
    digest,
    random_bytes,
    respond_key_share,
)
from quicnet.crypto.errors import CryptoError, UnsupportedAlgorithmError
from quicnet.crypto.signing import SCHEME_INFO
from quicnet.memo import BoundedMemo
from quicnet.tls import ech
from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.auth import (
    certificate_verify_content,
    choose_signature_scheme,
    decode_certificate_chain,
    validity_time,
    verify_peer_certificates,
)
from quicnet.tls.client_offer import ClientOffer, read_client_hello
from quicnet.tls.config import ClientAuth, ServerConfig
from quicnet.tls.engine import TLSEngine
from quicnet.tls.errors import ProtocolViolation, UsageError
from quicnet.tls.events import (
    HANDSHAKE_EPOCH,
    INITIAL_EPOCH,
    ONE_RTT_EPOCH,
    ZERO_RTT_EPOCH,
    Epoch,
    HandshakeComplete,
)
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.fixed import FixedInputs
from quicnet.tls.key_schedule import CIPHER_SUITES, CipherSuite, KeySchedule, resumption_psk
from quicnet.tls.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
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
    ServerHello,
    new_session_ticket_message,
)
from quicnet.tls.session import TicketState, encode_ticket_state
from quicnet.tls.stapling import server_certificate_entries

__all__ = ["TLSServer"]

#: Early data a server with 0-RTT disabled still skips (RFC 8446 §4.2.10) for a client
#: holding an older ticket: the 16 KiB other stacks default to.
SKIP_EARLY_DATA_DEFAULT = 1 << 14

#: The EncryptedExtensions' ALPN body (RFC 7301 §3.1: the one protocol chosen) by protocol:
#: a few names, those of the server's configurations (bounded all the same).
_ALPN_CHOSEN: BoundedMemo[str, bytes] = BoundedMemo(32)


def _alpn_chosen(protocol: str) -> bytes:
    body = _ALPN_CHOSEN.get(protocol)
    if body is None:
        body = _ALPN_CHOSEN.remember(protocol, ext.encode_alpn([protocol]))
    return body


class TLSServer(TLSEngine):
    """A TLS 1.3 server for one connection. Feed it the client's bytes."""

    is_client = False
    #: RFC 8446 Appendix A.2 as data: (state, message, epoch) -> handler.
    TRANSITIONS: ClassVar[dict[tuple[str, type, Epoch], str]] = {
        ("START", ClientHello, Epoch.INITIAL): "_on_client_hello",
        ("WAIT_CH2", ClientHello, Epoch.INITIAL): "_on_client_hello",
        ("WAIT_EOED", EndOfEarlyData, Epoch.ZERO_RTT): "_on_end_of_early_data",
        ("WAIT_CERT", Certificate, Epoch.HANDSHAKE): "_on_certificate",
        ("WAIT_CV", CertificateVerify, Epoch.HANDSHAKE): "_on_certificate_verify",
        ("WAIT_FINISHED", Finished, Epoch.HANDSHAKE): "_on_finished",
    }

    def __init__(
        self, config: ServerConfig, *, quic: bool = False, fixed: FixedInputs | None = None
    ) -> None:
        if quic and config.max_early_data_size not in (0, 0xFFFFFFFF):
            raise UsageError("QUIC needs max_early_data_size 0 or 0xFFFFFFFF (RFC 9001 §4.6.1)")
        super().__init__(config, quic=quic, fixed=fixed)
        self.config = config
        self.server_name: str | None = None
        #: The client's legacy_session_id: non-empty asks for middlebox compatibility (D.4).
        self.legacy_session_id = b""
        #: The ClientHello offered early data (accepted or not).
        self.early_data_offered = False
        #: §4.2.10: bytes of early data this connection may receive, or skip if rejected.
        self.early_data_limit = 0
        self._hrr_group: int | None = None
        self._first_hello: ClientHello | None = None
        self._signature_scheme: int | None = None
        self._tickets_sent = 0
        #: The client's Encrypted Client Hello offer, when ``ech_keys`` are set.
        self.ech: ech.ServerECH | None = None
        #: Sealed into the tickets this connection issues: the configuration's
        #: ``resumption_context`` unless changed (QUIC: to the negotiated version after
        #: compatible version negotiation, RFC 9369 §5).
        self.ticket_context = config.resumption_context

    def _release_role_state(self) -> None:
        self._first_hello = None

    @property
    def hello_retry_sent(self) -> bool:
        """Whether this server answered with a HelloRetryRequest (RFC 8446 §4.1.4)."""
        return self._hrr_group is not None

    def _on_client_hello(self, hello: ClientHello, raw: bytes, now: float) -> None:
        c = self.config
        if c.ech_keys:  # draft-ietf-tls-esni §7.1: go on with the inner hello if it opens
            hello, raw, self.ech = ech.server_open(hello, raw, c.ech_keys, self.ech)
        offer = read_client_hello(hello)
        self.early_data_offered = self.early_data_offered or offer.early_data
        if offer.early_data:
            self.early_data_limit = c.max_early_data_size or SKIP_EARLY_DATA_DEFAULT
        if self.state == "WAIT_CH2":
            self._check_second_hello(hello, offer)
        else:
            self.client_random = hello.random
            self.legacy_session_id = hello.legacy_session_id
        if self.quic and offer.transport_parameters is None:
            raise ProtocolViolation(
                "no quic_transport_parameters", AlertDescription.missing_extension
            )
        # Cipher suite: our preference among the client's; after an HRR, the HRR's (§4.1.4).
        suite = self.cipher_suite or next((s for s in c.cipher_suites if s in offer.suites), None)
        if suite is None:
            raise ProtocolViolation("no cipher suite in common", AlertDescription.handshake_failure)
        alpn = self._choose_alpn(offer.alpn)
        # Key exchange group: prefer one the client already sent a share for.
        mutual = [g for g in c.groups if g in offer.groups]
        if not mutual:
            raise ProtocolViolation(
                "no key exchange group in common", AlertDescription.handshake_failure
            )
        shared = [g for g in mutual if g in offer.shares]
        if not shared:
            if self.state == "WAIT_CH2":
                raise ProtocolViolation(
                    "second ClientHello still lacks the share", AlertDescription.illegal_parameter
                )
            self._send_hello_retry(hello, raw, suite, mutual[0])
            return
        group = shared[0]

        if self.state != "WAIT_CH2":
            self.transcript.add(raw)
        # The transcript now ends with this ClientHello (for binders, without it).
        psk_state, psk_index = self._select_psk(hello, raw, offer, suite, now)
        if psk_state is not None and self._hrr_group is None:
            suite = CipherSuite(psk_state.cipher_suite)  # any suite of the PSK's hash would do
        if self.state == "WAIT_CH2":
            self.transcript.add(raw)
        self.cipher_suite = suite
        self.suite = CIPHER_SUITES[suite]
        self.transcript.set_hash(self.suite.hash_name)
        self.key_schedule = KeySchedule(self.suite, psk_state.resumption_psk if psk_state else None)
        self.resumed = psk_state is not None
        if psk_state is not None and psk_state.peer_certificates:
            # The client's identity from the full handshake, sealed in the ticket.
            entries = [CertificateEntry(der) for der in psk_state.peer_certificates]
            self.peer_certificates = tuple(decode_certificate_chain(entries))
        self.alpn_protocol = alpn
        self.server_name = offer.server_name
        self.peer_record_size_limit = offer.record_size_limit
        if offer.record_size_limit is not None and c.record_size_limit is not None:
            self.local_record_size_limit = c.record_size_limit
        self.peer_transport_parameters = offer.transport_parameters

        self.early_data_accepted = (
            psk_state is not None
            and psk_index == 0
            and offer.early_data
            and self._hrr_group is None
            and self._early_data_acceptable(psk_state, hello, offer, now)
        )
        if psk_state is not None and offer.early_data:
            # §4.2.10: the ticket's max_early_data_size is what the client was told.
            self.early_data_limit = psk_state.max_early_data_size or self.early_data_limit
        if self.early_data_accepted:
            early = self.key_schedule.client_early_traffic_secret(self.transcript.digest())
            self._secret(ZERO_RTT_EPOCH, False, early, "CLIENT_EARLY_TRAFFIC_SECRET")

        try:
            private = self._fixed.key_share_private_keys.get(group)
            if private is None:
                server_share, shared_secret = respond_key_share(group, offer.shares[group])
            else:
                share = KeyShare.from_private_bytes(group, private)
                server_share = share.key_exchange
                shared_secret = share.shared_secret(offer.shares[group])
        except KeyExchangeError as exc:
            raise ProtocolViolation(str(exc), AlertDescription.illegal_parameter) from None
        self.group = group
        sh_ext = [
            Extension(
                ET.key_share, ext.encode_key_share_server(ext.KeyShareEntry(group, server_share))
            ),
            Extension(ET.supported_versions, ext.encode_supported_versions_server()),
        ]
        if psk_state is not None:  # first, as in RFC 8448's traces
            sh_ext.insert(
                0, Extension(ET.pre_shared_key, ext.encode_pre_shared_key_server(psk_index))
            )
        if self._fixed.extensions is not None:
            sh_ext = self._fixed.extensions(HandshakeType.server_hello, sh_ext)
        server_hello = ServerHello(
            self._fixed.random or random_bytes(32), hello.legacy_session_id, suite, tuple(sh_ext)
        )
        if self.ech is not None and self.ech.accepted:
            server_hello = ech.confirm_server_hello(
                server_hello, self.transcript, hello.random, self.suite.hash_name
            )
        self._send(INITIAL_EPOCH, server_hello)
        self.key_schedule.enter_handshake(shared_secret)
        defer = self.early_data_accepted and not self.quic
        self._install_handshake_secrets(defer_server_read=defer)
        self._send_server_flight(offer)
        self._derive_application_secrets()
        self._secret(ONE_RTT_EPOCH, True, self.server_application_secret, "SERVER_TRAFFIC_SECRET_0")
        self.state = "WAIT_EOED" if defer else self._after_server_flight()

    def _on_end_of_early_data(self, message: EndOfEarlyData, raw: bytes, now: float) -> None:
        self.transcript.add(raw)
        # The client's handshake keys protect what follows EndOfEarlyData (§4.5).
        self._secret(
            HANDSHAKE_EPOCH,
            False,
            self.client_handshake_secret,
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            self._client_handshake_key,
        )
        self.state = self._after_server_flight()

    def _after_server_flight(self) -> str:
        if self.config.client_auth != ClientAuth.NONE and not self.resumed:
            return "WAIT_CERT"
        return "WAIT_FINISHED"

    def _check_second_hello(self, hello: ClientHello, offer: ClientOffer) -> None:
        first = self._first_hello
        assert first is not None
        # §4.1.2: the second ClientHello repeats the first but for a few fields.
        if hello.random != first.random or hello.legacy_session_id != first.legacy_session_id:
            raise ProtocolViolation(
                "second ClientHello changed its random or session id",
                AlertDescription.illegal_parameter,
            )
        if hello.cipher_suites != first.cipher_suites:
            raise ProtocolViolation(
                "second ClientHello changed its cipher suites", AlertDescription.illegal_parameter
            )
        if list(offer.shares) != [self._hrr_group]:
            raise ProtocolViolation(
                "second ClientHello must carry exactly the requested key share",
                AlertDescription.illegal_parameter,
            )
        if offer.early_data:
            raise ProtocolViolation(
                "early_data after HelloRetryRequest", AlertDescription.illegal_parameter
            )

    def _choose_alpn(self, offered: list[str] | None) -> str | None:
        ours = self.config.alpn_protocols
        if offered is None:
            if self.quic and ours:
                raise ProtocolViolation(
                    "QUIC requires ALPN", AlertDescription.no_application_protocol
                )
            return None
        if not ours:
            return None
        for proto in ours:
            if proto in offered:
                return proto
        raise ProtocolViolation(  # RFC 7301 §3.2
            f"no application protocol in common (client offers {', '.join(offered)})",
            AlertDescription.no_application_protocol,
        )

    def _send_hello_retry(
        self, hello: ClientHello, raw: bytes, suite: CipherSuite, group: int
    ) -> None:
        self._first_hello = hello
        self._hrr_group = group
        self.cipher_suite = suite
        self.suite = CIPHER_SUITES[suite]
        self.transcript.add(raw)
        self.transcript.restart_for_hello_retry(self.suite.hash_name)
        retry = ServerHello(
            HELLO_RETRY_REQUEST_RANDOM,
            hello.legacy_session_id,
            suite,
            (
                Extension(ET.supported_versions, ext.encode_supported_versions_server()),
                Extension(ET.key_share, ext.encode_key_share_hrr(group)),
            ),
        )
        if self.ech is not None and self.ech.accepted:
            retry = ech.confirm_hello_retry(
                retry, self.transcript, hello.random, self.suite.hash_name
            )
        self._send(INITIAL_EPOCH, retry)
        self.state = "WAIT_CH2"

    # Resumption and early data ----------------------------------------------------------
    def _select_psk(
        self, hello: ClientHello, raw: bytes, offer: ClientOffer, suite: CipherSuite, now: float
    ) -> tuple[TicketState | None, int]:
        keys = self.config.ticket_keys
        if (
            offer.psk is None
            or keys is None
            or ext.PskKeyExchangeMode.psk_dhe_ke not in offer.psk_modes
        ):
            return None, 0
        truncated = raw[: -ext.binders_length(offer.psk)]
        for index, identity in enumerate(offer.psk.identities):
            state = self._fixed.ticket_states.get(identity.identity) or keys.open(identity.identity)
            if (
                state is None
                or state.cipher_suite not in offer.suites
                or state.cipher_suite not in self.config.cipher_suites
            ):
                continue
            if now > state.issued_at + state.ticket_lifetime or now < state.issued_at - 60:
                continue
            if state.resumption_context != self.config.resumption_context:
                continue  # e.g. issued for another QUIC version (RFC 9369 §5)
            if not self._ticket_identity_acceptable(state):
                continue
            info = CIPHER_SUITES[CipherSuite(state.cipher_suite)]
            if info.hash_name != CIPHER_SUITES[suite].hash_name and self._hrr_group is not None:
                continue  # after HRR the hash is fixed
            schedule = KeySchedule(info, state.resumption_psk)
            if self._hrr_group is not None:
                transcript_hash = self.transcript.digest_with(truncated)
            else:
                transcript_hash = digest(info.hash_name, truncated)
            expected = schedule.finished_verify_data(schedule.binder_key(), transcript_hash)
            if not constant_time_eq(expected, offer.psk.binders[index]):
                # §4.2.11: a binder that does not validate aborts the handshake.
                raise ProtocolViolation(
                    "PSK binder does not verify", AlertDescription.decrypt_error
                )
            return state, index
        return None, 0

    def _ticket_identity_acceptable(self, state: TicketState) -> bool:
        """The client identity a ticket carries must satisfy today's client_auth policy."""
        c = self.config
        if c.client_auth == ClientAuth.NONE:
            return True
        if not state.peer_certificates:
            return c.client_auth != ClientAuth.REQUIRED
        try:  # roots may have changed and certificates expired since the ticket was issued
            chain = decode_certificate_chain([CertificateEntry(d) for d in state.peer_certificates])
            verify_peer_certificates(
                chain,
                roots=c.client_trust_roots,
                pins=(),
                name=None,
                purpose="client",
                at=validity_time(c.wall_clock),
            )
        except ProtocolViolation:
            return False
        return True

    def _early_data_acceptable(
        self, state: TicketState, hello: ClientHello, offer: ClientOffer, now: float
    ) -> bool:
        c = self.config
        if not c.max_early_data_size or not state.max_early_data_size:
            return False
        if state.cipher_suite != self.cipher_suite or state.alpn_protocol != self.alpn_protocol:
            return False
        if state.early_data_context != c.early_data_context:
            return False  # the configuration early data depends on changed since the ticket
        assert offer.psk is not None
        identity = offer.psk.identities[0]
        claimed_age = ((identity.obfuscated_ticket_age - state.ticket_age_add) & 0xFFFFFFFF) / 1000
        return c.anti_replay.accept(
            identity.identity,
            expires_at=state.issued_at + state.ticket_lifetime,
            claimed_age=claimed_age,
            real_age=now - state.issued_at,
            now=now,
        )

    # The server's flight -------------------------------------------------------------
    def _send_server_flight(self, offer: ClientOffer) -> None:
        c = self.config
        ee: list[Extension] = []
        if offer.server_name is not None:
            ee.append(Extension(ET.server_name, b""))
        if self.alpn_protocol is not None:
            body = _alpn_chosen(self.alpn_protocol)
            ee.append(Extension(ET.application_layer_protocol_negotiation, body))
        if self.early_data_accepted:
            ee.append(Extension(ET.early_data, b""))
        if self.ech is not None and not self.ech.accepted:  # §7.1: the keys to retry with
            ee.append(Extension(ET.encrypted_client_hello, ech.encode_retry_configs(c.ech_keys)))
        if offer.record_size_limit is not None and c.record_size_limit is not None:
            ee.append(
                Extension(ET.record_size_limit, ext.encode_record_size_limit(c.record_size_limit))
            )
        if self.quic:
            params = c.quic_transport_parameters
            if c.quic_transport_parameters_for is not None and offer.transport_parameters:
                params = c.quic_transport_parameters_for(offer.transport_parameters)
            assert params is not None
            ee.append(Extension(ET.quic_transport_parameters, params))
        if self._fixed.extensions is not None:
            ee = self._fixed.extensions(HandshakeType.encrypted_extensions, ee)
        self._send(HANDSHAKE_EPOCH, EncryptedExtensions(tuple(ee)))
        if not self.resumed:
            if c.client_auth != ClientAuth.NONE:
                algs = ext.encode_u16_list(
                    [int(s) for s in c.signature_algorithms if SCHEME_INFO[s].handshake_allowed]
                )
                self._send(
                    HANDSHAKE_EPOCH,
                    CertificateRequest(b"", (Extension(ET.signature_algorithms, algs),)),
                )
            if not offer.signature_algorithms:
                raise ProtocolViolation(
                    "ClientHello has no signature_algorithms", AlertDescription.missing_extension
                )
            scheme = choose_signature_scheme(c.private_key, offer.signature_algorithms)
            entries = server_certificate_entries(c, offer.ocsp_requested)
            self._send(HANDSHAKE_EPOCH, Certificate(b"", entries))
            content = certificate_verify_content(self.transcript.digest(), server=True)
            self._send(
                HANDSHAKE_EPOCH, CertificateVerify(scheme, c.private_key.sign(scheme, content))
            )
            self._signature_scheme = scheme
        assert self.key_schedule is not None
        verify_data = self.key_schedule.finished_verify_data(
            self._server_handshake_key or self.server_handshake_secret, self.transcript.digest()
        )
        self._send(HANDSHAKE_EPOCH, Finished(verify_data))

    # The client's second flight ---------------------------------------------------------
    def _on_certificate(self, message: Certificate, raw: bytes, now: float) -> None:
        if message.certificate_request_context:
            raise ProtocolViolation(
                "client Certificate context must be empty", AlertDescription.illegal_parameter
            )
        self.transcript.add(raw)
        if not message.certificate_list:
            if self.config.client_auth == ClientAuth.REQUIRED:
                raise ProtocolViolation(
                    "a client certificate is required", AlertDescription.certificate_required
                )
            self.state = "WAIT_FINISHED"
            return
        chain = decode_certificate_chain(message.certificate_list)
        verify_peer_certificates(
            chain,
            roots=self.config.client_trust_roots,
            pins=(),
            name=None,
            purpose="client",
            at=validity_time(self.config.wall_clock),
        )
        self.peer_certificates = tuple(chain)
        self.state = "WAIT_CV"

    def _on_certificate_verify(self, message: CertificateVerify, raw: bytes, now: float) -> None:
        scheme = message.algorithm
        allowed = [s for s in self.config.signature_algorithms if SCHEME_INFO[s].handshake_allowed]
        if scheme not in allowed:
            raise ProtocolViolation(
                f"CertificateVerify scheme 0x{scheme:04x} not offered",
                AlertDescription.illegal_parameter,
            )
        content = certificate_verify_content(self.transcript.digest(), server=False)
        try:
            self.peer_certificates[0].public_key().verify(
                SignatureScheme(scheme), message.signature, content
            )
        except (InvalidSignatureError, UnsupportedAlgorithmError, CryptoError) as exc:
            raise ProtocolViolation(
                f"client CertificateVerify: {exc}", AlertDescription.decrypt_error
            ) from None
        self.transcript.add(raw)
        self.state = "WAIT_FINISHED"

    def _on_finished(self, message: Finished, raw: bytes, now: float) -> None:
        assert self.key_schedule is not None and self.cipher_suite is not None
        if len(message.verify_data) != self.key_schedule.hash_length:
            raise ProtocolViolation("Finished of the wrong length", AlertDescription.decode_error)
        if not self.key_schedule.check_finished(
            self._client_handshake_key or self.client_handshake_secret,
            self.transcript.digest(),
            message.verify_data,
        ):
            raise ProtocolViolation(
                "client Finished does not verify", AlertDescription.decrypt_error
            )
        self.transcript.add(raw)
        self._secret(
            ONE_RTT_EPOCH, False, self.client_application_secret, "CLIENT_TRAFFIC_SECRET_0"
        )
        self.state = "CONNECTED"
        self.handshake_complete = True
        if self.config.tickets_to_send and self.config.ticket_keys is not None:
            resumption = self.key_schedule.resumption_master_secret(self.transcript.digest())
            for _ in range(self.config.tickets_to_send):
                self._send_ticket(resumption, now)
        self._events.append(
            HandshakeComplete(
                cipher_suite=self.cipher_suite,
                group=self.group,
                alpn_protocol=self.alpn_protocol,
                resumed=self.resumed,
                early_data_accepted=self.early_data_accepted,
                peer_certificates=self.peer_certificates,
                server_name=self.server_name,
                signature_scheme=self._signature_scheme,
            )
        )

    def _send_ticket(self, resumption_master: bytes, now: float) -> None:
        c = self.config
        if c.ticket_keys is None or self.suite is None or self.cipher_suite is None:
            return
        index = self._tickets_sent
        self._tickets_sent += 1
        fixed = self._fixed.tickets[index] if index < len(self._fixed.tickets) else None
        if fixed is None:
            # §4.6.1: a nonce distinct per ticket of the connection; a fresh random age_add.
            nonce = index.to_bytes(8, "big")
            drawn = random_bytes(16)  # the age_add, then the sealing nonce
            age_add = int.from_bytes(drawn[:4], "big")
            lifetime = c.ticket_lifetime
        else:
            nonce, age_add, lifetime = (
                fixed.ticket_nonce,
                fixed.ticket_age_add,
                fixed.ticket_lifetime,
            )
        # The state is encoded straight from its fields (no TicketState per ticket).
        state = encode_ticket_state(
            self.cipher_suite,
            resumption_psk(self.suite, resumption_master, nonce),
            now,
            lifetime,
            age_add,
            c.max_early_data_size,
            self.alpn_protocol,
            self.server_name,
            tuple([cert.to_der() for cert in self.peer_certificates]),
            c.early_data_context,
            self.ticket_context,
        )
        sealed = fixed.ticket if fixed is not None else c.ticket_keys.seal_encoded(state, drawn[4:])
        if len(sealed) > 0xFFFF:  # §4.6.1: a client chain too large to seal: no ticket
            return
        extensions = ext.encode_ticket_extensions(c.max_early_data_size)
        message = new_session_ticket_message(lifetime, age_add, nonce, sealed, extensions)
        self._queue(ONE_RTT_EPOCH, message)
