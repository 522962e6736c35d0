"""A client's first flight, started over: after Version Negotiation (RFC 9000 §6.2)
or after a Retry (RFC 9000 §17.2.5).

Both happen at most once, before any other packet from the server, and both
send again what the first flight carried: VN in a new version with fresh TLS
and Initial state, Retry under Initial keys derived from the Retry's source CID.
What 0-RTT packets carried goes again too (RFC 9001 §4.6.2: neither rejects 0-RTT,
but the packets before it are lost to the server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.compatible_versions import local_version_information
from quicnet.quic.crypto_streams import install_initial_keys, new_crypto_spaces
from quicnet.quic.errors import TransportErrorCode
from quicnet.quic.negotiation import NO_COMMON_VERSION
from quicnet.quic.packets import retry_is_valid
from quicnet.quic.records import requeue_crypto
from quicnet.quic.tls_setup import make_tls

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = ["on_retry", "on_version_negotiation"]


def on_version_negotiation(c: QuicConnection, data: bytes, now: float) -> None:
    """§6.2: restart in a version both sides support, once, before any other packet."""
    if c.received_first_packet:
        return
    chosen = c.negotiation.on_packet(data, c.host_cid, c.configuration.supported_versions)
    if c.tracer is not None:
        c.tracer.version_negotiation(data, chosen, now)
    if chosen is None:
        return
    if chosen == NO_COMMON_VERSION:
        c.terminate(TransportErrorCode.NO_ERROR, None, "no common QUIC version", by_peer=True)
        return
    c.version = chosen
    c.versions.original = chosen  # the new original version (RFC 9368 §2.1)
    c.local_params = c.local_params.replace(
        version_information=local_version_information(chosen, c.configuration.supported_versions)
    )
    c.recovery.abandon_space(2)
    c.recovery = c.new_recovery()
    c.spaces = new_crypto_spaces(c.configuration.max_crypto_buffer)
    c.zero_rtt_send_key = None  # the new ClientHello brings its own 0-RTT key, or none
    c.tls = make_tls(c.configuration, c.local_params, c.version)
    c.start_tls(now)


def on_retry(c: QuicConnection, packet: bytes, source_cid: bytes, token: bytes) -> bool:
    """§17.2.5: accept one valid Retry before any other packet from the server; False
    when this one is ignored."""
    if not c.is_client or c.received_first_packet or c.retry_happened or not token:
        return False
    if source_cid == c.original_destination_cid:  # RFC 9000 §17.2.5.1
        return False
    if not retry_is_valid(packet, c.original_destination_cid, c.version):
        return False
    c.retry_happened = True
    c.retry_source_cid = source_cid
    c.retry_token = token
    c.cids.set_initial_peer(source_cid)
    install_initial_keys(c, source_cid)
    # Everything sent in Initial packets goes again under the new keys (§17.2.5.3).
    requeue_crypto(c, 0)
    c.recovery.discard_space(0, keep_space=True)
    c.recovery.abandon_space(2)
    return True
