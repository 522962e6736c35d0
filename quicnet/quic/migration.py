"""A client moving its connection to a new local address (RFC 9000 §9.2, §9.4, §9.5).

The connection never knows its own address (it is sans-I/O): a driver that
opens a new socket tells it so with :meth:`QuicConnection.migrate
<quicnet.quic.connection.QuicConnection.migrate>`, and from then on every
datagram the connection hands out leaves from the new address. Moving means:

- the packets carry a peer connection ID never used before, and the old one is
  retired (§9.5: a CID is not reused from more than one local address), or kept
  for the old address alone while the driver still reads there (below);
- the path is validated again from the new address (§9.2, §8.2): a
  PATH_CHALLENGE, padded to 1200 bytes, goes out at once, and a PING (an
  IMMEDIATE_ACK to a server that offered the ACK frequency extension,
  draft-ietf-quic-ack-frequency §8.4) makes the first packet non-probing so the
  server moves too (§9.3);
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

A driver that keeps reading the old socket a while says so (``migrate(now,
old_local=address)``), hands the datagrams read there in with
``receive_datagram(..., local=address)`` and sends those
:meth:`~quicnet.quic.connection.QuicConnection.routed_datagrams` says leave from
there: the server re-validates the old address (§9.3.3), and the PATH_RESPONSE
must go back on the path the challenge came on (§8.2.2), from the old address
with the old CID (which went from there only, §9.5). Nothing else leaves from
there. The CID is retired when the driver stops reading there
(:func:`release_local`). Without ``old_local`` (or once the server retired that
CID) a challenge that reached the old socket is answered from the current
address, which §8.2.3 also accepts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic import ack_frequency
from quicnet.quic.errors import QuicUsageError
from quicnet.quic.events import Address
from quicnet.quic.states import ConnectionState

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = ["left_local", "migration_refused", "release_local", "start_migration"]


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
    # Unused server CIDs: not the current one, nor one another path keeps (the preferred
    # address's probes from this address, an address left and still read): §9.5, none
    # of them may leave from the next address.
    current = cids.current_peer_sequence
    kept = {s for s in c.paths.peer_cids_taken() if s in cids.peer and s != current}
    spare = len(cids.peer) - 1 - len(kept)
    if spare < 1:
        return "the server has not issued a spare connection ID yet (RFC 9000 §5.1.1)"
    if preferred is not None and preferred.probing() is not None and spare < 2:
        # §9.6.3: both server addresses are validated from the new address, one CID each.
        return (
            "the server's preferred address is being validated and the server has not "
            "issued two spare connection IDs yet, one per path (RFC 9000 §9.5, §9.6.3)"
        )
    return None


def start_migration(
    c: QuicConnection, now: float, *, port_only: bool, old_local: Address | None = None
) -> None:
    """From now on ``c``'s datagrams leave from a new local address.

    ``port_only``: only the local port changed (same host), so the congestion
    and RTT state is kept (RFC 9000 §9.4); otherwise both start afresh.
    ``old_local``: the address left, which the driver still reads (module docstring).
    """
    reason = migration_refused(c)
    if reason is not None:
        raise QuicUsageError(f"cannot migrate: {reason}")
    path = c.paths.current
    assert path is not None  # a connected client has its server's path
    preferred = c.preferred
    probing = None if preferred is None else preferred.before_local_move(c)
    # §9.5: a fresh CID (none another path carries); the old one retired, or kept for
    # the path from the old address alone while the driver reads there (§9.3.3).
    cids = c.cids
    previous = cids.peer[cids.current_peer_sequence]
    fresh = cids.spare_peer_cid(taken=c.paths.peer_cids_taken())
    assert fresh is not None  # migration_refused made sure
    cids.use_peer_cid(fresh.sequence_number, retire=old_local is None)
    if old_local is not None:
        c.paths.keep_left(path.address, old_local, previous)
    recovery = c.recovery
    if not port_only:
        # §9.4: packets sent on the old path no longer count toward the new one.
        recovery.switch_path(c.new_controller())
    # §9.2, §8.2: validate the path from the new address; challenges sent from the
    # old address prove nothing about it, and a response owed there cannot go.
    path.challenges = ()
    path.response = None
    c.paths.validate(path, now, recovery.pto_base())
    if preferred is not None and probing is not None:  # §9.6.3: concurrently
        preferred.after_local_move(c, probing, now)
    c.paths.migrations += 1
    # §9.2: a non-probing packet moves the server too; to a peer that offered the ACK
    # frequency extension, IMMEDIATE_ACK (draft-ietf-quic-ack-frequency §8.4) so that
    # its acknowledgment, which confirms the move, is not held back by an ACK delay.
    c.pending.queue_ping(immediate_ack=ack_frequency.peer_offered(c))


def left_local(c: QuicConnection, address: Address, local: Address) -> Address | None:
    """The local address a client left that a datagram from ``address`` reached at
    ``local``, when the path from there still keeps the server CID that left from
    there (the response goes back from there, §8.2.2); None: the datagram counts as
    received at the current address (no such path, or the server retired the CID)."""
    path = c.paths.get(address, local)
    if path is None or path.local is None or path is c.paths.current:
        return None
    cid = path.peer_cid
    if cid is None or cid.sequence_number not in c.cids.peer:
        return None
    return path.local


def release_local(c: QuicConnection, local: Address) -> None:
    """A client's driver no longer reads ``local``, an address it left: the server CID
    kept for it is retired (RETIRE_CONNECTION_ID, §5.1.2). Nothing for a server, or
    once the connection is closing."""
    if c.is_client and c.state in (ConnectionState.HANDSHAKE, ConnectionState.CONNECTED):
        c.paths.release_local(local)
