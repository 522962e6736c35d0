"""The probe datagrams a connection sends besides its data (RFC 9000 §6, §8.2, §14.4).

Two kinds are a single 1-RTT packet alone in its datagram, built with the
:class:`~quicnet.quic.sender.PacketSender`'s packet interface
(:meth:`~quicnet.quic.sender.PacketSender.new_packet`,
:meth:`~quicnet.quic.sender.PacketSender.seal`):

- path validation: PATH_CHALLENGE and/or PATH_RESPONSE toward a path being
  probed, expanded to 1200 bytes within that path's anti-amplification budget;
- PMTU probes: PING and PADDING at the size that path MTU discovery
  (:mod:`~quicnet.quic.pmtu`) tries next.

The third is a client's full-size probe in a version it offered but does not
speak (:mod:`~quicnet.quic.negotiation`), sent until Version Negotiation answers.

:meth:`~quicnet.quic.sender.PacketSender.datagrams_to_send` asks for them only
when a path is being probed or a PMTU probe is due: the 1-RTT datagrams of
the common case never come through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.ack_frequency import peer_offered
from quicnet.quic.packets import MIN_INITIAL_DATAGRAM
from quicnet.quic.records import PMTU_PROBE
from quicnet.tls.events import ONE_RTT_EPOCH

if TYPE_CHECKING:
    from quicnet.quic.paths import Path
    from quicnet.quic.pmtu import PathMtu
    from quicnet.quic.sender import PacketSender

__all__ = ["path_datagram", "pmtu_probe", "version_probe"]


def pmtu_probe(sender: PacketSender, pmtu: PathMtu, now: float) -> bytes:
    """The PMTU probe the path asks for: IMMEDIATE_ACK (PING to a peer without the
    ACK frequency extension) and PADDING filling the size tried (§14.4); empty when
    none is due now. It counts as in flight (RFC 8899 §4.4) and waits until the
    window also has room for a packet of the current size: it must not hold the next
    one until its own ACK (delayed by a peer without the extension) comes back."""
    c = sender.c
    remote = c.remote_params
    ceiling = c.configuration.udp_payload_limit
    if remote is not None:
        ceiling = min(ceiling, remote.max_udp_payload_size)
    probe = pmtu.next_probe(ceiling, now)
    if probe is None:
        return b""
    probe_id, size = probe
    cc = c.recovery.cc
    if cc.congestion_window - cc.bytes_in_flight < size + pmtu.mtu or c.closing is not None:
        pmtu.postpone()
        return b""
    packet = sender.new_packet(ONE_RTT_EPOCH)
    # The probe must be acknowledged: IMMEDIATE_ACK where the peer takes it, so its
    # ACK is not held for the peer's ACK delay (draft-ietf-quic-ack-frequency §8.3:
    # a sender SHOULD bundle one with PMTU probes); PING otherwise.
    packet.payload += b"\x1f" if peer_offered(c) else b"\x01"
    packet.payload += bytes(size - packet.size())  # PADDING to the size tried
    packet.ack_eliciting = True
    packet.frames.append((PMTU_PROBE, pmtu, probe_id, size))
    datagram = sender.seal(packet, now)
    c.recovery.mtu_probe = packet.pn  # its loss is no congestion signal
    return datagram


def path_datagram(sender: PacketSender, path: Path, now: float) -> bytes:
    """PATH_RESPONSE and/or PATH_CHALLENGE for ``path``, alone in a datagram.

    RFC 9000 §8.2.1-8.2.2: expanded to 1200 bytes, or as far as the path's 3x
    budget allows. It goes outside congestion control (§9.4 allows probes that
    exception): it is sent at most once per PTO and per challenge received.
    """
    c = sender.c
    paths = c.paths
    cid = path.peer_cid
    if cid is not None and cid.sequence_number not in c.cids.peer:
        path.peer_cid, path.release_cid = None, False  # the peer retired it (§5.1.2)
    if (
        path.peer_cid is None
        and path is not paths.current
        and (c.is_client or not paths.lend_cid(path))
    ):
        # §9.5: the current CID may not go to a second peer address. A client's other
        # server address is one it left (for the preferred one, §9.6); a server with no
        # spare CID of the client's cannot answer its probes (§9.5) until it issues one.
        path.response = None
        paths.stop_validation(path)
        return b""
    packet = sender.new_packet(ONE_RTT_EPOCH)
    if path.peer_cid is not None:  # §9.5: a CID of its own on a path not in use
        packet.header = packet.header[:1] + path.peer_cid.cid
    challenge = paths.challenge_due(path, now)
    budget = path.budget()
    if packet.overhead() + 9 * (challenge + (path.response is not None)) > budget:
        return b""  # the 3x limit leaves no room yet: wait for the peer's next datagram
    if path.response is not None:
        packet.payload += b"\x1b" + path.response
        path.response = None
    if challenge:
        packet.payload += b"\x1a" + paths.new_challenge(path, now, c.recovery.pto_base())
    packet.ack_eliciting = True
    size = min(MIN_INITIAL_DATAGRAM, budget)
    if packet.size() < size:
        packet.payload += bytes(size - packet.size())
    datagram = sender.seal(packet, now, in_flight=False)
    paths.release_idle_cid(path)  # the last probe owed on a path the peer left
    return datagram


def version_probe(sender: PacketSender, now: float) -> bytes | None:
    """A probe datagram in the unknown offered version, when one is due (RFC 9000 §6);
    the connection ends once every probe went unanswered."""
    c = sender.c
    try:
        return c.negotiation.probe(now, c.original_destination_cid, c.host_cid)
    except TimeoutError as exc:
        c.terminate(0, None, str(exc), by_peer=False)
        return None
