"""What a QUIC connection builds from its configuration for the handshake (RFC 9001 §4,
§8.2): its transport parameters, the TLS client or server that carries them, and the
check of the peer's parameters against the handshake's connection IDs (RFC 9000 §7.3).

Pure functions: nothing here keeps state of a connection.
"""

from __future__ import annotations

from quicnet.quic.compatible_versions import (
    VersionState,
    local_version_information,
    resumption_context,
    server_parameters_for,
)
from quicnet.quic.config import QuicConfiguration
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.transport_params import PreferredAddress, TransportParameters
from quicnet.quic.zero_rtt import early_data_context, remembered_parameters
from quicnet.tls import ClientConfig, ServerConfig, TLSClient, TLSServer

__all__ = [
    "QUIC_MAX_EARLY_DATA",
    "local_transport_parameters",
    "make_tls",
    "peer_transport_parameters",
]


def local_transport_parameters(
    c: QuicConfiguration,
    *,
    initial_source_cid: bytes,
    original_destination_cid: bytes | None = None,
    retry_source_cid: bytes | None = None,
    stateless_reset_token: bytes | None = None,
    version: int | None = None,
    preferred_address: PreferredAddress | None = None,
) -> TransportParameters:
    """Our transport parameters (RFC 9000 §18.2); the server-only ones given by a server."""
    return TransportParameters(
        original_destination_connection_id=original_destination_cid,
        max_idle_timeout=int(c.idle_timeout * 1000),
        stateless_reset_token=stateless_reset_token,
        max_udp_payload_size=c.udp_payload_limit,
        initial_max_data=c.initial_max_data,
        initial_max_stream_data_bidi_local=c.initial_max_stream_data,
        initial_max_stream_data_bidi_remote=c.initial_max_stream_data,
        initial_max_stream_data_uni=c.initial_max_stream_data,
        initial_max_streams_bidi=c.initial_max_streams_bidi,
        initial_max_streams_uni=c.initial_max_streams_uni,
        ack_delay_exponent=c.ack_delay_exponent,
        max_ack_delay=int(c.max_ack_delay * 1000),
        active_connection_id_limit=c.active_connection_id_limit,
        disable_active_migration=c.disable_active_migration,
        preferred_address=preferred_address,
        initial_source_connection_id=initial_source_cid,
        retry_source_connection_id=retry_source_cid,
        max_datagram_frame_size=c.max_datagram_frame_size,
        min_ack_delay=c.min_ack_delay_us,
        # RFC 9368 §3 (RFC 9369 §4: a v2 endpoint must send it).
        version_information=local_version_information(
            c.version if version is None else version, c.supported_versions
        ),
    )


def peer_transport_parameters(
    raw: bytes | None,
    *,
    from_server: bool,
    peer_initial_source_cid: bytes | None,
    original_destination_cid: bytes,
    retry_source_cid: bytes | None,
) -> TransportParameters:
    """Decode the peer's transport parameters and authenticate the handshake's CIDs
    with them (RFC 9000 §7.3); TRANSPORT_PARAMETER_ERROR on any mismatch."""
    if raw is None:
        raise TransportError(
            TransportErrorCode.TRANSPORT_PARAMETER_ERROR, "no transport parameters"
        )
    params = TransportParameters.decode(raw, from_server=from_server)
    mismatch = None
    if params.initial_source_connection_id != peer_initial_source_cid:
        mismatch = "initial_source_connection_id"
    elif from_server:
        if params.original_destination_connection_id != original_destination_cid:
            mismatch = "original_destination_connection_id"
        elif params.retry_source_connection_id != retry_source_cid:
            mismatch = "retry_source_connection_id"
    if mismatch is not None:
        raise TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, f"{mismatch} mismatch")
    return params


#: RFC 9001 §4.6.1: a QUIC server's tickets allow 0-RTT with this sentinel, or not at all.
QUIC_MAX_EARLY_DATA = 0xFFFFFFFF


def make_tls(
    c: QuicConfiguration,
    params: TransportParameters,
    version: int | None = None,
    versions: VersionState | None = None,
) -> TLSClient | TLSServer:
    """A fresh TLS engine in QUIC mode for ``c`` (a client or a server) carrying our
    transport parameters ``params``, for a connection starting in QUIC ``version``
    (by default the configured one).

    RFC 9369 §5: a client offers no ticket received on a connection of another version,
    and 0-RTT only with one of this version (not with one saved before quicnet kept the
    version); a server resumes only tickets it issued for this version.

    A client without ``c.key_log`` appends its secrets to the file SSLKEYLOGFILE
    named when ``c`` was made (:meth:`QuicConfiguration.client_key_log`); a server logs
    only to ``c.key_log``.
    A server's ``versions`` (its connection's) can keep it in the original version.
    """
    transport_parameters = params.encode()
    if version is None:
        version = c.version
    if c.is_client:
        ticket = c.session_ticket
        if ticket is not None and ticket.quic_version not in (None, version):
            ticket = None
        # RFC 9000 §7.4.1: 0-RTT only with the server's parameters remembered.
        early_data = (
            c.enable_early_data
            and ticket is not None
            and ticket.quic_version == version
            and remembered_parameters(ticket) is not None
        )
        return TLSClient(
            ClientConfig(
                server_name=c.server_name,
                alpn_protocols=c.alpn_protocols,
                trust_roots=c.trust_roots,
                pinned_fingerprints=c.pinned_fingerprints,
                insecure_skip_verify=c.insecure_skip_verify,
                verify_server_name=c.verify_server_name,
                crls=c.crls,
                revocation_check=c.revocation_check,
                ocsp_stapling=c.ocsp_stapling,
                require_ocsp_staple=c.require_ocsp_staple,
                ech_configs=c.ech_configs,
                ech_grease=c.ech_grease,
                cipher_suites=c.cipher_suites,
                groups=c.groups,
                key_share_groups=c.groups[:1],  # the others by HelloRetryRequest
                certificate_chain=c.certificate_chain,
                private_key=c.private_key,
                session=ticket,
                enable_early_data=early_data,
                quic_transport_parameters=transport_parameters,
                middlebox_compatibility=False,  # RFC 9001 §8.4
                key_log=c.client_key_log(),
                wall_clock=c.wall_clock,
            ),
            quic=True,
        )
    if c.private_key is None:
        raise QuicUsageError("a QUIC server needs certificate_chain and private_key")
    return TLSServer(
        ServerConfig(
            certificate_chain=c.certificate_chain,
            private_key=c.private_key,
            alpn_protocols=c.alpn_protocols,
            cipher_suites=c.cipher_suites,
            groups=c.groups,
            ticket_keys=c.ticket_keys,
            tickets_to_send=c.session_tickets,
            max_early_data_size=QUIC_MAX_EARLY_DATA if c.enable_early_data else 0,
            anti_replay=c.anti_replay,
            early_data_context=early_data_context(params),
            resumption_context=resumption_context(version),
            quic_transport_parameters=transport_parameters,
            quic_transport_parameters_for=server_parameters_for(
                params, c.version, c.supported_versions, transport_parameters, versions
            ),
            middlebox_compatibility=False,
            key_log=c.key_log,
            ocsp_staple=c.ocsp_staple,
            ech_keys=c.ech_keys,
            wall_clock=c.wall_clock,
        ),
        quic=True,
    )
