"""Connection IDs (RFC 9000 §5.1, §19.15-16): the ones we issue and the peer's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quicnet.crypto import HmacKey, constant_time_eq, random_bytes
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.pending import PendingFrames

__all__ = ["ConnectionIdManager", "PeerCid"]


@dataclass(slots=True)
class LocalCid:
    """A connection ID we issued, with its sequence number and reset token (§5.1.1)."""

    sequence_number: int
    cid: bytes
    stateless_reset_token: bytes


@dataclass(slots=True)
class PeerCid:
    """A connection ID the peer issued (§5.1.1); the reset token of CID 0 comes only
    in a server's transport parameters (§18.2), so a server never has one for it."""

    sequence_number: int
    cid: bytes
    stateless_reset_token: bytes | None


#: The key of ``_default_reset_token``: one per process, keyed once.
_RESET_KEY = HmacKey("sha256", random_bytes(32))


def _default_reset_token(cid: bytes) -> bytes:
    """A stateless reset token for ``cid`` (RFC 9000 §10.3.2), keyed once per process."""
    return _RESET_KEY.digest(cid)[:16]


class ConnectionIdManager:
    """Issues our CIDs (with reset tokens) and tracks the peer's."""

    __slots__ = (
        "_next_local_sequence",
        "_reset_token_for",
        "_retire_prior_to",
        "_retiring",
        "cid_length",
        "current_peer_cid",
        "current_peer_sequence",
        "local",
        "our_limit",
        "peer",
        "pending",
        "routing_changes",
    )

    def __init__(
        self,
        initial_local_cid: bytes,
        *,
        cid_length: int,
        reset_token_for: Callable[[bytes], bytes] | None,
        active_connection_id_limit: int,
        pending: PendingFrames | None = None,
    ) -> None:
        self.cid_length = cid_length
        if reset_token_for is None:  # the endpoint's own, or one keyed for this process
            reset_token_for = _default_reset_token
        self._reset_token_for = reset_token_for
        # Sequence 0's token goes only in a server's stateless_reset_token transport
        # parameter (RFC 9000 §18.2): made when asked (first_reset_token), so a client,
        # whose first CID is never sent with one (§5.1.1), makes none.
        self.local: dict[int, LocalCid] = {0: LocalCid(0, initial_local_cid, b"")}
        self._next_local_sequence = 1
        self.peer: dict[int, PeerCid] = {}
        self.current_peer_sequence = 0
        #: The peer's connection ID our packets carry now (that of current_peer_sequence;
        #: kept as bytes: every packet sent reads it).
        self.current_peer_cid = b""
        self._retire_prior_to = 0  # the peer's highest retire_prior_to
        self.our_limit = active_connection_id_limit  # what we told the peer we keep
        #: Where NEW_CONNECTION_ID (ours) and RETIRE_CONNECTION_ID (the peer's) wait.
        self.pending = pending if pending is not None else PendingFrames()
        #: The peer's CIDs we retired and the peer has not acknowledged retiring (§5.1.2):
        #: a peer that keeps us retiring faster than it acknowledges is stopped.
        # A tuple of ints: short, smaller than a set, and (holding only ints) untracked by
        # the garbage collector, unlike a list; rebuilt on the rare change.
        self._retiring: tuple[int, ...] = ()
        #: Routing changes for the endpoint: (cid, added?); the endpoint empties it (sets
        #: ``()``) once applied. A tuple of tuples of atomics, which the garbage collector
        #: stops tracking, where a list would stay one more tracked object per connection.
        self.routing_changes: tuple[tuple[bytes, bool], ...] = ()

    # Ours ---------------------------------------------------------------------------
    def issue(self, count: int) -> None:
        """Issue ``count`` more CIDs (zero-length CIDs cannot have siblings)."""
        length = self.cid_length
        if length == 0 or count <= 0:
            return
        fresh = random_bytes(length * count)  # one read of the OS source for all of them
        for start in range(0, length * count, length):
            cid = fresh[start : start + length]
            entry = LocalCid(self._next_local_sequence, cid, self._reset_token_for(cid))
            self.local[entry.sequence_number] = entry
            self._next_local_sequence += 1
            self.pending.queue_new_connection_id(entry)
            self.routing_changes += ((cid, True),)

    def first_reset_token(self) -> bytes:
        """The stateless reset token of our sequence-0 CID (a server's transport
        parameter, RFC 9000 §18.2), made at the first ask."""
        entry = self.local[0]
        if not entry.stateless_reset_token:
            entry.stateless_reset_token = self._reset_token_for(entry.cid)
        return entry.stateless_reset_token

    def issue_preferred(self) -> LocalCid:
        """Sequence 1, for a server's preferred_address transport parameter (RFC 9000
        §5.1.1, §18.2): routed like the others, sent in no NEW_CONNECTION_ID frame."""
        cid = random_bytes(self.cid_length)
        entry = LocalCid(self._next_local_sequence, cid, self._reset_token_for(cid))
        self.local[entry.sequence_number] = entry
        self._next_local_sequence += 1
        self.routing_changes += ((cid, True),)
        return entry

    def on_retire(self, sequence_number: int, packet_dcid: bytes) -> None:
        """RETIRE_CONNECTION_ID from the peer (§19.16)."""
        if sequence_number >= self._next_local_sequence:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "RETIRE_CONNECTION_ID for a CID never issued"
            )
        entry = self.local.get(sequence_number)
        if entry is None:
            return
        if entry.cid == packet_dcid:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION, "RETIRE_CONNECTION_ID for the CID in use"
            )
        del self.local[sequence_number]
        self.routing_changes += ((entry.cid, False),)
        self.issue(1)

    def is_local(self, cid: bytes) -> bool:
        """``cid`` is one of ours, issued and not retired."""
        return any(e.cid == cid for e in self.local.values())

    # The peer's -------------------------------------------------------------------------
    def set_initial_peer(self, cid: bytes, stateless_reset_token: bytes | None = None) -> None:
        """Make ``cid`` the peer's only CID, sequence 0 (§7.2): the client's first DCID,
        then the SCID of the peer's first packet or of a Retry."""
        self.peer = {0: PeerCid(0, cid, stateless_reset_token)}
        self._use(0)

    def set_peer_reset_token(self, token: bytes) -> None:
        """The server's stateless_reset_token transport parameter belongs to CID 0."""
        if 0 in self.peer:
            self.peer[0].stateless_reset_token = token

    def _retire_below(self, retire_prior_to: int, taken: tuple[int, ...]) -> None:
        """A NEW_CONNECTION_ID's Retire Prior To rose (§5.1.2). (A method apart: its
        comprehensions made cells of the caller's arguments on every frame.)"""
        self._retire_prior_to = retire_prior_to
        retired = [s for s in self.peer if s < retire_prior_to]
        for seq in retired:
            del self.peer[seq]
        # Move off a retired CID first: retiring may end the connection, and its
        # CONNECTION_CLOSE still needs a CID to go out with.
        if self.current_peer_sequence not in self.peer:
            free = [seq for seq in self.peer if seq not in taken]
            self._use(min(free) if free else min(self.peer))
        for seq in retired:
            self._retire(seq)

    def _use(self, sequence_number: int) -> None:
        self.current_peer_sequence = sequence_number
        self.current_peer_cid = self.peer[sequence_number].cid

    def on_new_connection_id(
        self,
        sequence_number: int,
        retire_prior_to: int,
        cid: bytes,
        stateless_reset_token: bytes,
        peer_uses_empty_cid: bool,
        taken: tuple[int, ...] = (),
    ) -> None:
        """NEW_CONNECTION_ID from the peer (§19.15), its fields already checked for
        encoding (the length of ``cid``, ``retire_prior_to`` <= ``sequence_number``).
        ``taken``: the peer CIDs other paths hold, which a forced move off a retired
        current CID avoids (§9.5: each has left only towards its own path)."""
        if peer_uses_empty_cid:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "NEW_CONNECTION_ID from a peer with a zero-length CID",
            )
        existing = self.peer.get(sequence_number)
        if existing is not None:
            if existing.cid != cid or existing.stateless_reset_token != stateless_reset_token:
                raise TransportError(
                    TransportErrorCode.PROTOCOL_VIOLATION,
                    "NEW_CONNECTION_ID reuses a sequence number",
                )
            return
        if sequence_number < self._retire_prior_to:
            self._retire(sequence_number)  # already retired: retire at once
            return
        self.peer[sequence_number] = PeerCid(sequence_number, cid, stateless_reset_token)
        if retire_prior_to > self._retire_prior_to:
            self._retire_below(retire_prior_to, taken)
        if len(self.peer) > self.our_limit:
            raise TransportError(
                TransportErrorCode.CONNECTION_ID_LIMIT_ERROR,
                "the peer issued more CIDs than our limit",
            )

    def switch_peer_cid(self, *, taken: tuple[int, ...] = ()) -> bool:
        """Move to an unused peer CID (for migration), not one of ``taken`` (those other
        paths probe with); False if none is spare."""
        spare = [s for s in self.peer if s != self.current_peer_sequence and s not in taken]
        if not spare:
            return False
        old = self.current_peer_sequence
        self._use(min(spare))
        del self.peer[old]
        self._retire(old)
        return True

    def spare_peer_cid(self, *, taken: tuple[int, ...] = ()) -> PeerCid | None:
        """An unused peer CID (not the current one, nor one of ``taken``), lowest first."""
        for seq in sorted(self.peer):
            if seq != self.current_peer_sequence and seq not in taken:
                return self.peer[seq]
        return None

    def use_peer_cid(self, sequence_number: int, *, retire: bool = True) -> bool:
        """Send with the peer's CID ``sequence_number`` from now on, retiring the current
        one (a path probed with it became current, RFC 9000 §9.5) unless ``retire`` is
        False (the previous path still probes with it); False if it is gone."""
        old = self.current_peer_sequence
        if sequence_number not in self.peer or sequence_number == old:
            return False
        self._use(sequence_number)
        if retire:
            del self.peer[old]
            self._retire(old)
        return True

    def retire_peer_cid(self, sequence_number: int) -> None:
        """Retire the peer's CID ``sequence_number``, not the current one: a path that
        probed with it now probes from another local address (RFC 9000 §9.5)."""
        if sequence_number in self.peer and sequence_number != self.current_peer_sequence:
            del self.peer[sequence_number]
            self._retire(sequence_number)

    def _retire(self, sequence_number: int) -> None:
        """Queue RETIRE_CONNECTION_ID once per sequence number until it is acknowledged."""
        if sequence_number in self._retiring:
            return
        # §5.1.2: tracking at least twice active_connection_id_limit; beyond that it is
        # the peer's doing, and CONNECTION_ID_LIMIT_ERROR.
        if len(self._retiring) >= 2 * max(self.our_limit, 2):
            raise TransportError(
                TransportErrorCode.CONNECTION_ID_LIMIT_ERROR,
                "the peer made us retire too many connection IDs at once",
            )
        self._retiring += (sequence_number,)
        self.pending.queue_retire_connection_id(sequence_number)

    @property
    def retirements_outstanding(self) -> int:
        """The peer's CIDs retired and not yet acknowledged as retired (§5.1.2)."""
        return len(self._retiring)

    def on_retire_delivered(self, sequence_number: int, acked: bool) -> None:
        """A RETIRE_CONNECTION_ID frame was acknowledged (done) or lost (sent again)."""
        if acked:
            if sequence_number in self._retiring:
                self._retiring = tuple(s for s in self._retiring if s != sequence_number)
        elif sequence_number in self._retiring:
            self.pending.queue_retire_connection_id(sequence_number)

    def is_stateless_reset(self, datagram: bytes) -> bool:
        """RFC 9000 §10.3.1: the last 16 bytes equal a token the peer gave us."""
        if len(datagram) < 21:
            return False
        tail = datagram[-16:]
        return any(
            p.stateless_reset_token is not None and constant_time_eq(p.stateless_reset_token, tail)
            for p in self.peer.values()
        )
