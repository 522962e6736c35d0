"""A client moving its connection to a new local address (RFC 9000 §9.2, §9.4, §9.5).

The connection never knows its own address (it is sans-I/O): a driver that
opens a new socket tells it so with :meth:`QuicConnection.migrate
<quicnet.quic.connection.QuicConnection.migrate>`, and from then on every
datagram the connection hands out leaves from the new address. Moving means:

- the packets carry a peer connection ID never used before, and the old one is
  retired (§9.5: a CID is not reused from more than one local address);
- the path is validated again from the new address (§9.2, §8.2): a
  PATH_CHALLENGE, padded to 1200 bytes, goes out at once, and a PING makes the
  first packet non-probing so the server moves too (§9.3);
- a new IP address starts congestion control and the RTT estimate afresh;
  a new port on the same host keeps them (§9.4 allows it for port-only changes).

What refuses a move (:class:`~quicnet.quic.errors.QuicUsageError`, nothing
changed): a server connection (only clients migrate, §9), a handshake not yet
confirmed (§9), a peer that sent ``disable_active_migration`` (§18.2; it concerns
the handshake's address: after a move to the server's preferred address, §9.6,
the client may migrate), a peer with zero-length connection IDs (§9.5: the paths
would be linkable), and no spare connection ID from the peer yet (§5.1.1).

A client that moves while it validates the server's preferred address (§9.6)
validates both server addresses from the new one (§9.6.3's SHOULD): the CID its
probes of the preferred address carried is retired like the current one, and the
preferred address is probed again with a third CID (so the move needs two spare
ones); whichever validation succeeds decides where the connection ends up, the
preferred address winning if both do (:mod:`~quicnet.quic.preferred_address`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic import ack_frequency
from quicnet.quic.errors import QuicUsageError
from quicnet.quic.states import ConnectionState

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = ["migration_refused", "start_migration"]


def migration_refused(c: QuicConnection) -> str | None:
    """Why ``c`` cannot move to a new local address now, or None when it can."""
    if not c.is_client:
        return "only a client migrates a connection (RFC 9000 §9)"
    if c.state not in (ConnectionState.HANDSHAKE, ConnectionState.CONNECTED):
        return "the connection is closed"
    if not c.handshake_confirmed:
        return "no migration before the handshake is confirmed (RFC 9000 §9)"
    params = c.remote_params
    preferred = c.preferred
    moved = preferred is not None and preferred.moved
    if params is not None and params.disable_active_migration and not moved:
        # §18.2: it concerns the handshake's address, not a preferred address moved to.
        return "the server sent disable_active_migration (RFC 9000 §18.2)"
    cids = c.cids
    if not cids.current_peer_cid:
        return "the server uses zero-length connection IDs (RFC 9000 §9.5)"
    # Unused server CIDs: not the current one, nor the one the preferred address's probes
    # carried from this address (§9.5: neither may leave from the next one).
    spare = len(cids.peer) - 1 - (preferred is not None and preferred.used_cid(c) is not None)
    if spare < 1:
        return "the server has not issued a spare connection ID yet (RFC 9000 §5.1.1)"
    if preferred is not None and preferred.probing() is not None and spare < 2:
        # §9.6.3: both server addresses are validated from the new address, one CID each.
        return (
            "the server's preferred address is being validated and the server has not "
            "issued two spare connection IDs yet, one per path (RFC 9000 §9.5, §9.6.3)"
        )
    return None


def start_migration(c: QuicConnection, now: float, *, port_only: bool) -> None:
    """From now on ``c``'s datagrams leave from a new local address.

    ``port_only``: only the local port changed (same host), so the congestion
    and RTT state is kept (RFC 9000 §9.4); otherwise both start afresh.
    """
    reason = migration_refused(c)
    if reason is not None:
        raise QuicUsageError(f"cannot migrate: {reason}")
    path = c.paths.current
    assert path is not None  # a connected client has its server's path
    preferred = c.preferred
    probing = None if preferred is None else preferred.before_local_move(c)
    # §9.5: a fresh CID (none another path carries), the old one retired.
    switched = c.cids.switch_peer_cid(taken=c.paths.peer_cids_taken())
    assert switched
    recovery = c.recovery
    if not port_only:
        # §9.4: packets sent on the old path no longer count toward the new one.
        recovery.switch_path(c.new_controller())
    # §9.2, §8.2: validate the path from the new address; challenges sent from the
    # old address prove nothing about it, and a response owed there cannot go.
    path.challenges.clear()
    path.response = None
    c.paths.validate(path, now, recovery.pto_base())
    if preferred is not None and probing is not None:  # §9.6.3: concurrently
        preferred.after_local_move(c, probing, now)
    c.paths.migrations += 1
    # §9.2: a non-probing packet moves the server too; to a peer that offered the ACK
    # frequency extension, IMMEDIATE_ACK (draft-ietf-quic-ack-frequency §8.4) so that
    # its acknowledgment, which confirms the move, is not held back by an ACK delay.
    c.pending.queue_ping(immediate_ack=ack_frequency.peer_offered(c))
