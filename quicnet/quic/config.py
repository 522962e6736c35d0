"""QUIC configuration: transport limits plus the TLS identity and trust."""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from quicnet.crypto import (
    Certificate,
    CertificateRevocationList,
    NamedGroup,
    PrivateKey,
    RevocationCheck,
)
from quicnet.quic.ack_frequency import AckFrequencyRequest, AdaptiveAckFrequency
from quicnet.quic.congestion import CongestionController
from quicnet.quic.controllers import CONTROLLERS, new_controller
from quicnet.quic.errors import QuicUsageError
from quicnet.quic.versions import QuicVersion
from quicnet.tls import CipherSuite, SessionTicket, StrikeRegister, TicketKeys
from quicnet.tls.config import DEFAULT_CIPHER_SUITES, DEFAULT_GROUPS
from quicnet.tls.ech import ECHKey
from quicnet.tls.keylog import key_log_from_environment

__all__ = [
    "DEFAULT_MAX_UDP_PAYLOAD_SIZE",
    "QLOGDIR",
    "QuicConfiguration",
    "qlog_dir_from_environment",
]

#: The environment variable naming the directory for qlog traces (qlog main schema §7.1).
QLOGDIR = "QLOGDIR"


#: The default ceiling of PMTU discovery: a 1500-byte Ethernet MTU less the IPv6 (40) and
#: UDP (8) headers, which fits IPv4 as well.
DEFAULT_MAX_UDP_PAYLOAD_SIZE = 1452


def qlog_dir_from_environment() -> str | None:
    """The directory ``QLOGDIR`` names, or None when it is unset or empty."""
    return os.environ.get(QLOGDIR) or None


@dataclass
class QuicConfiguration:
    """Everything a QUIC endpoint needs; the defaults suit a game or an RPC link."""

    is_client: bool = True
    alpn_protocols: Sequence[str] = ("quicnet",)
    # TLS identity (server; optional client certificate) and trust (client).
    certificate_chain: Sequence[Certificate] = ()
    private_key: PrivateKey | None = None
    server_name: str | None = None
    trust_roots: Sequence[Certificate] = ()
    pinned_fingerprints: Sequence[bytes] = ()
    insecure_skip_verify: bool = False
    #: Client: check the certificate's name against server_name (required unless pinned).
    verify_server_name: bool = True
    #: Client: CRLs for the server's chain and whose status must be known
    #: (see :class:`quicnet.tls.ClientConfig`); a revoked server fails the handshake.
    crls: Sequence[CertificateRevocationList] = ()
    revocation_check: RevocationCheck | None = None
    #: Client: ask for a stapled OCSP response, or refuse a server without a good, fresh
    #: one (``quicnet.tls.ClientConfig``); server: the DER response (or a callable giving
    #: the current one) it staples when asked (RFC 8446 §4.4.2.1).
    ocsp_stapling: bool = False
    require_ocsp_staple: bool = False
    ocsp_staple: bytes | Callable[[], bytes | None] | None = None
    #: Encrypted Client Hello (draft-ietf-tls-esni): client, the ECHConfigList to seal
    #: the real ClientHello to, or GREASE without one; server, its ECH keys.
    #: See ``quicnet.tls.ClientConfig`` / ``ServerConfig``.
    ech_configs: bytes | None = None
    ech_grease: bool = False
    ech_keys: Sequence[ECHKey] = ()
    cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES
    groups: Sequence[NamedGroup] = DEFAULT_GROUPS
    #: Called with each NSS key log line (SSLKEYLOGFILE format). A client without one
    #: appends to the file ``SSLKEYLOGFILE`` names, if set when the configuration is
    #: made (quicnet.tls.keylog; see :meth:`client_key_log`).
    key_log: Callable[[str], None] | None = None
    #: Where each connection writes its qlog trace, ``<odcid>_<client|server>.sqlog``
    #: (see :mod:`quicnet.quic.qlog`). The default is the ``QLOGDIR`` environment
    #: variable when the configuration is made; None turns tracing off even when it is set.
    qlog_dir: str | None = field(default_factory=qlog_dir_from_environment)
    session_ticket: SessionTicket | None = None
    ticket_keys: TicketKeys | None = field(default_factory=TicketKeys)
    #: Server: NewSessionTickets sent after each handshake (RFC 8446 §4.6.1; 0: none).
    #: One by default: a QUIC client resumes one connection at a time and keeps the
    #: newest ticket, and each ticket costs the server a PSK derivation and a seal.
    session_tickets: int = 1
    #: Client: send 0-RTT with ``session_ticket`` when it allows; server: issue tickets
    #: that allow 0-RTT and accept it (RFC 9001 §4.6). 0-RTT data can be replayed.
    enable_early_data: bool = False
    #: Server: the tickets that already carried 0-RTT (RFC 8446 §8); every connection
    #: of a configuration shares it. Servers sharing ``ticket_keys`` should share it too.
    anti_replay: StrikeRegister = field(default_factory=StrikeRegister)
    #: Seconds a handshake may take before the connection gives up (None: only the
    #: idle timeout applies); a client is not left waiting on a server that never answers.
    handshake_timeout: float | None = 10.0
    # Transport parameters (RFC 9000 §18.2), in seconds and bytes.
    idle_timeout: float = 30.0
    initial_max_data: int = 4 << 20
    initial_max_stream_data: int = 1 << 20
    initial_max_streams_bidi: int = 128
    initial_max_streams_uni: int = 128
    max_datagram_frame_size: int | None = 65535  # None: no DATAGRAM frames (RFC 9221)
    #: Received datagrams waiting for the application; beyond this new ones are dropped.
    max_received_datagrams: int = 1024
    #: Report each DATAGRAM sent as DatagramAcknowledged or DatagramLost (RFC 9221 §5.2
    #: lets a sender know). Off by default: an application that does not ask (the
    #: real-time layer, most users of DATAGRAM) pays no event object per datagram.
    datagram_ack_events: bool = False
    ack_delay_exponent: int = 3
    max_ack_delay: float = 0.025
    #: The least delay we are willing to hold an ACK for, sent as min_ack_delay: the peer
    #: may then tune our acknowledgments with ACK_FREQUENCY frames (draft-ietf-quic-ack-
    #: frequency §3; quicnet.quic.ack_frequency). None: the extension is not offered.
    min_ack_delay: float | None = 0.001
    #: Ask a peer that offers the extension to acknowledge less (or more) often:
    #: fixed values (AckFrequencyRequest), e.g. a game server whose clients send an input
    #: each tick, where a delay a little over one tick lets their ACKs ride on the
    #: inputs; or values that follow the path's congestion window and RTT
    #: (AdaptiveAckFrequency), for a bulk sender. None: the peer keeps RFC 9000's defaults.
    ack_frequency: AckFrequencyRequest | AdaptiveAckFrequency | None = None
    active_connection_id_limit: int = 4
    connection_id_length: int = 8
    #: Ask the peer not to move the connection to a new address (RFC 9000 §18.2; only
    #: clients move, §9); a client that moves anyway is still validated and followed.
    disable_active_migration: bool = False
    #: Server: the preferred address it offers, IPv4 and/or IPv6 ``(host, port)`` (RFC
    #: 9000 §9.6; the drivers bind a socket there); clients that move carry on there.
    preferred_address_v4: tuple[str, int] | None = None
    preferred_address_v6: tuple[str, int] | None = None
    #: Client: move to a preferred address the server offers, of the family of the
    #: server's address, once the handshake is confirmed and the path validated (§9.6.1).
    use_preferred_address: bool = True
    #: The largest UDP payload we accept (the transport parameter, RFC 9000 §18.2) and
    #: the largest path MTU discovery tries to send, 1200-65527. None: 1452
    #: (DEFAULT_MAX_UDP_PAYLOAD_SIZE, Ethernet's under IPv6 and IPv4), which the drivers
    #: raise on a loopback address (quicnet.io.udp.loopback_configuration).
    max_udp_payload_size: int | None = None
    #: Search each path for a packet size above 1200 bytes (DPLPMTUD, RFC 8899 as
    #: RFC 9000 §14.3 profiles it); False keeps every packet at 1200 bytes.
    pmtu_discovery: bool = True
    #: The version to start with (a client's original version, RFC 9368 §2).
    version: int = QuicVersion.V1
    #: The versions spoken, most preferred first (empty: ``version`` first, then the
    #: others). A client lists them in version_information and a server switches to the
    #: first one it speaks that is compatible (RFC 9368 §2.3): ``version=V1,
    #: supported_versions=(V2, V1)`` prefers v2 and falls back to v1 in one round trip.
    supported_versions: Sequence[int] = ()
    #: The congestion controller, by name: ``"newreno"`` (RFC 9002 §7), ``"cubic"``
    #: (RFC 9438) or ``"bbr"`` (BBRv1); see :mod:`quicnet.quic.controllers`.
    congestion_control: str = "newreno"
    #: A factory (from the maximum datagram size) that overrides ``congestion_control``.
    congestion_controller: Callable[[int], CongestionController] | None = None
    #: ECN (RFC 9000 §13.4): count the marks of what arrives and report them in ACK_ECN,
    #: mark what is sent ECT(0) while the path validates, react to CE. The drivers read
    #: and set the marks on Linux; elsewhere validation fails and marking stops.
    ecn: bool = True
    #: Send a PING after this many seconds without sending anything ack-eliciting, once
    #: the handshake is confirmed (None: never); keeps NAT bindings and the idle timer alive.
    keepalive_interval: float | None = None
    #: Start a 1-RTT key update after this many packets in one key phase (RFC 9001
    #: §6.6; capped at 2^22, well inside AES-GCM's confidentiality limit) ...
    key_update_packets: int = 1 << 22
    #: ... or this many seconds after the phase's first packet (None: by count only).
    key_update_interval: float | None = None
    #: Bytes of CRYPTO data buffered per epoch before CRYPTO_BUFFER_EXCEEDED.
    max_crypto_buffer: int = 1 << 16
    #: Wall-clock seconds (Unix time): what needs a date, session tickets' issue and
    #: age (RFC 8446 §4.6.1) and certificate validity, reads it; everything else runs on
    #: the ``now`` passed in. Tests inject a fake one.
    wall_clock: Callable[[], float] = time.time
    #: Client: an address-validation token from a NEW_TOKEN frame of an earlier
    #: connection to the same server (RFC 9000 §8.1.3), sent in the first Initial.
    address_token: bytes = b""
    #: A client's writer for the file ``SSLKEYLOGFILE`` named when the configuration was
    #: made (None: unset, or a server): read once here, not per connection.
    _environment_key_log: Callable[[str], None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def udp_payload_limit(self) -> int:
        """``max_udp_payload_size``, or its default when None."""
        return self.max_udp_payload_size or DEFAULT_MAX_UDP_PAYLOAD_SIZE

    @property
    def min_ack_delay_us(self) -> int | None:
        """The min_ack_delay we advertise, in microseconds: ``min_ack_delay``, but never
        above the max_ack_delay we send (whole milliseconds; ack-frequency §3)."""
        if self.min_ack_delay is None:
            return None
        return min(round(self.min_ack_delay * 1e6), int(self.max_ack_delay * 1000) * 1000)

    def client_key_log(self) -> Callable[[str], None] | None:
        """Where a client connection logs its TLS secrets: ``key_log``, else the file
        ``SSLKEYLOGFILE`` named when this configuration was made (as ``qlog_dir``
        follows ``QLOGDIR``), else None."""
        return self.key_log if self.key_log is not None else self._environment_key_log

    def __post_init__(self) -> None:
        if self.is_client:  # servers never read SSLKEYLOGFILE (quicnet.tls.keylog)
            self._environment_key_log = key_log_from_environment()
        if not self.supported_versions:
            spoken = (QuicVersion.V1, QuicVersion.V2)
            first = (self.version,) if self.version in spoken else ()
            self.supported_versions = (*first, *(v for v in spoken if v not in first))
        for name in ("keepalive_interval", "key_update_interval"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise QuicUsageError(f"{name} must be a positive number of seconds, not {value}")
        if self.max_udp_payload_size is not None and not 1200 <= self.max_udp_payload_size <= 65527:
            raise QuicUsageError(
                f"max_udp_payload_size must be 1200-65527 (RFC 9000 §18.2), "
                f"not {self.max_udp_payload_size}"
            )
        if self.congestion_control not in CONTROLLERS:
            raise QuicUsageError(
                f"congestion_control must be one of {', '.join(CONTROLLERS)}, "
                f"not {self.congestion_control!r}"
            )
        for name, family in (("preferred_address_v4", 4), ("preferred_address_v6", 6)):
            value = getattr(self, name)
            if value is not None:
                try:
                    ok = ipaddress.ip_address(value[0]).version == family
                except ValueError:
                    ok = False
                if not ok or not 0 <= int(value[1]) < 65536:
                    raise QuicUsageError(f"{name} must be an IPv{family} (host, port), not {value}")
        if self.min_ack_delay is not None and not self.min_ack_delay > 0:
            raise QuicUsageError(
                f"min_ack_delay must be a positive number of seconds, not {self.min_ack_delay}"
            )
        if self.session_tickets < 0:
            raise QuicUsageError(f"session_tickets must be 0 or more, not {self.session_tickets}")
        if self.key_update_packets < 1:
            raise QuicUsageError(
                f"key_update_packets must be at least 1, not {self.key_update_packets}"
            )

    def new_congestion_controller(self, max_datagram_size: int) -> CongestionController:
        """A fresh controller as configured (a new connection or path)."""
        if self.congestion_controller is not None:
            return self.congestion_controller(max_datagram_size)
        return new_controller(self.congestion_control, max_datagram_size)
