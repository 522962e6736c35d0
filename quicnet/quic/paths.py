"""Network paths to the peer (RFC 9000 §8, §9): validation, the 3x limit, migration.

A :class:`Path` is one peer address as this endpoint sees it: whether the peer
proved it owns the address, how many bytes went each way (the anti-amplification
budget, §8), the PATH_CHALLENGE data outstanding on it, the PATH_RESPONSE
owed on it, and its own path MTU discovery (:mod:`~quicnet.quic.pmtu`: a new
path starts at 1200 bytes and searches again, RFC 9000 §14.3).
:class:`PathManager` holds the current path, the last validated one to fall
back to (§9.3.2), and a few others being probed, and decides what happens
when packets arrive from somewhere new. It never sends: the sender asks
it which frames each path needs and tells it what it sent.

It also decides which of the peer's connection IDs each path's packets carry
(RFC 9000 §9.5: none goes to two peer addresses, or leaves from two local
ones): the current path has the connection's current CID; a path the peer left
keeps the CID it had while it is re-validated (§9.3.3), and that CID is retired
once the validation ends, unless the peer comes back, when the path is current
again with it; a path the peer only probes gets a spare CID of its own. A client
that moved and still reads its old local address keeps, for the path from there,
the server CID that left from there, to answer the server's re-validation from
where it arrived (§8.2.2), until its driver stops reading there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quicnet.crypto import random_bytes
from quicnet.quic.cids import ConnectionIdManager, PeerCid
from quicnet.quic.congestion import CongestionController
from quicnet.quic.events import Address
from quicnet.quic.pmtu import PathMtu
from quicnet.quic.recovery import PathRecoveryState, Recovery

__all__ = [
    "MAX_PATHS",
    "MIN_PROBE_SIZE",
    "Path",
    "PathKey",
    "PathManager",
    "address_key",
    "path_key",
]

#: Paths tracked at once: the current one, the fallback and two being probed. An
#: attacker forwarding packets from many addresses only ever replaces the oldest probe.
MAX_PATHS = 4
#: PATH_CHALLENGE data outstanding per path; a response to any of them validates it.
MAX_CHALLENGES = 3
#: Room for a 1-RTT packet with PATH_RESPONSE and PATH_CHALLENGE (20-byte CID, 4-byte PN).
MIN_PROBE_SIZE = 64
#: RFC 9002 §6.2.2: the PTO of a path with no RTT sample (kInitialRtt 333 ms x 3).
INITIAL_PTO = 0.999

_log = logging.getLogger("quicnet.quic")


#: What identifies a path: the peer's host and port, and our own host and port when the
#: path runs from another local address than the default one (a server's preferred
#: address, RFC 9000 §9.6).
PathKey = tuple[str, int] | tuple[str, int, str, int]


def address_key(address: Address | Any) -> tuple[str, int]:
    """Host and port: what identifies a peer address (IPv6 flow info and scope aside)."""
    return (str(address[0]), int(address[1]))


def path_key(address: Address, local: Address | None) -> PathKey:
    """The key of the path to ``address`` from ``local`` (None: the default local address)."""
    if local is None:
        return (str(address[0]), int(address[1]))
    return (str(address[0]), int(address[1]), str(local[0]), int(local[1]))


class Path:
    """One peer address: validation state, bytes each way, challenges and responses."""

    __slots__ = (
        "address",
        "bytes_received",
        "bytes_sent",
        "challenge_due",
        "challenges",
        "chosen",
        "key",
        "local",
        "peer_cid",
        "pmtu",
        "recovery_state",
        "release_cid",
        "response",
        "validated",
        "validation_deadline",
    )

    def __init__(
        self,
        address: Address,
        *,
        validated: bool = False,
        pmtu_discovery: bool = True,
        local: Address | None = None,
    ) -> None:
        self.address = address
        #: The local address this path's datagrams leave from and arrive at; None: the
        #: default one (the driver's main socket). Another is a server's preferred
        #: address (RFC 9000 §9.6), or one a client left and still reads (§9.3.3).
        self.local = local
        self.key: PathKey = path_key(address, local)
        self.validated = validated
        #: A client chose this address from the server's authenticated transport
        #: parameters (its preferred_address): like the handshake's address, it is
        #: no amplification target, so no 3x limit applies while it is validated.
        self.chosen = False
        #: The peer's connection ID this path's probes carry when it is not the current
        #: one (RFC 9000 §9.5: no CID is used on two paths); None: the current one.
        self.peer_cid: PeerCid | None = None
        #: ``peer_cid`` is the one this path had while it was current: it is retired as
        #: soon as no probe is under way or owed on the path (§9.3.3's re-validation).
        self.release_cid = False
        #: Bytes of datagrams from this address that carried an authenticated packet, and
        #: bytes we sent to it: before validation the second is at most 3x the first (§8).
        self.bytes_received = 0
        self.bytes_sent = 0
        #: PATH_CHALLENGE data sent on this path and not yet answered (§8.2.1): a tuple
        #: of bytes, which the garbage collector stops tracking (a list it would not).
        self.challenges: tuple[bytes, ...] = ()
        #: When to send (another) PATH_CHALLENGE; None: no validation under way.
        self.challenge_due: float | None = None
        #: When validation is abandoned (§8.2.4).
        self.validation_deadline: float | None = None
        #: The data of the latest PATH_CHALLENGE received on this path, to echo (§8.2.2).
        self.response: bytes | None = None
        #: Congestion and RTT state kept while another path is current (§9.4).
        self.recovery_state: PathRecoveryState | None = None
        #: The largest datagram this path carries, and the search for a larger one.
        self.pmtu = PathMtu(enabled=pmtu_discovery)

    def budget(self) -> int:
        """Bytes we may still send to this address (§8.1, §9.3.1); large once validated."""
        if self.validated or self.chosen:
            return 1 << 62
        return max(0, 3 * self.bytes_received - self.bytes_sent)

    @property
    def validating(self) -> bool:
        """Path validation is under way (it has a deadline, §8.2.4)."""
        return self.validation_deadline is not None

    def __repr__(self) -> str:
        state = "validated" if self.validated else "unvalidated"
        via = "" if self.local is None else f" via {self.local[0]}:{self.local[1]}"
        return f"Path({self.key[0]}:{self.key[1]}{via}, {state})"


class PathManager:
    """The connection's paths: the current one, a fallback, and those being probed."""

    __slots__ = (
        "_paths",
        "active",
        "cids",
        "current",
        "fallback",
        "migrations",
        "pmtu_discovery",
        "routed",
    )

    def __init__(self, cids: ConnectionIdManager, *, pmtu_discovery: bool = True) -> None:
        #: The connection's CIDs: which of the peer's each path carries is decided here.
        self.cids = cids
        #: Each new path searches for its MTU (RFC 9000 §14.3); False: 1200 bytes throughout.
        self.pmtu_discovery = pmtu_discovery
        self.current: Path | None = None
        #: The last validated path before the current one: where a failed validation
        #: of the current path reverts to (§9.3.2).
        self.fallback: Path | None = None
        #: At most MAX_PATHS, so a list (a dict per connection costs more than the scan).
        self._paths: list[Path] = []
        #: Connection migrations the peer made (each change of the current path).
        self.migrations = 0
        #: Some path owes a response or is being validated (the sender's cheap check).
        self.active = False
        #: Datagrams built for paths that leave from another local address than the
        #: default one (a server's preferred address, RFC 9000 §9.6; a client's
        #: PATH_RESPONSE from an address it left, §8.2.2): (data, to, from, ECN
        #: codepoint), until the connection's ``routed_datagrams()`` takes them.
        self.routed: list[tuple[bytes, Address, Address, int]] = []

    # Setup -------------------------------------------------------------------------------
    def start(self, address: Address, *, validated: bool) -> Path:
        """The handshake's path (§8.1 validates it, or a Retry token did)."""
        path = Path(address, validated=validated, pmtu_discovery=self.pmtu_discovery)
        self._paths = [path]
        self.current = path
        return path

    def get(self, address: Address, local: Address | None = None) -> Path | None:
        """The path for ``address`` (by host and port) from ``local``, if there is one."""
        key = path_key(address, local)
        for path in self._paths:
            if path.key == key:
                return path
        return None

    def peer_cids_taken(self) -> tuple[int, ...]:
        """Sequence numbers of the peer's CIDs that paths probe with (§9.5: each has gone
        to that path's addresses only, so no other path may take it)."""
        return tuple(p.peer_cid.sequence_number for p in self._paths if p.peer_cid is not None)

    def paths(self) -> list[Path]:
        """Every path tracked (at most :data:`MAX_PATHS`)."""
        return list(self._paths)

    def path_for(self, address: Address, local: Address | None = None) -> Path:
        """The path for ``address`` (from ``local``), made if new; the oldest probe makes
        room (bounded)."""
        path = self.get(address, local)
        if path is not None:
            return path
        if len(self._paths) >= MAX_PATHS:
            for old in self._paths:
                if old is not self.current and old is not self.fallback:
                    self._drop(old)
                    break
        path = Path(address, pmtu_discovery=self.pmtu_discovery, local=local)
        self._paths.append(path)
        return path

    # Receiving -----------------------------------------------------------------------------
    def on_authenticated(self, address: Address, size: int, local: Address | None = None) -> Path:
        """A datagram from ``address`` (at ``local``) carried an authenticated packet: it
        earns budget."""
        current = self.current
        if current is not None and current.key == path_key(address, local):
            current.bytes_received += size
            return current
        path = self.path_for(address, local)
        path.bytes_received += size
        return path

    def on_challenge(self, path: Path, data: bytes) -> None:
        """§8.2.2: echo the latest challenge on the path it came on (one response owed)."""
        path.response = data
        self.active = True

    def on_response(self, data: bytes) -> Path | None:
        """§8.2.3: a response on any path validates the path its challenge was sent on."""
        for path in self._paths:
            if data in path.challenges:
                path.validated = True
                path.challenges = ()
                path.challenge_due = path.validation_deadline = None
                self.release_idle_cid(path)
                return path
        return None

    def migrate(
        self,
        address: Address,
        now: float,
        recovery: Recovery,
        new_controller: Callable[[], CongestionController],
        local: Address | None = None,
    ) -> tuple[Path, Path]:
        """§9.3: the peer's highest-numbered non-probing packet came from ``address``.

        Makes that path current, starts validating it unless it was validated before,
        and re-validates the previous one (§9.3.3), each with a CID of its own (§9.5,
        :meth:`_hand_over`). A new IP address (not only a new port) may not carry the
        old sending rate (§9.4): ``recovery`` gets fresh congestion and RTT state, or
        that of a path the connection comes back to. Returns ``(old, new)``.
        """
        pto = recovery.pto_base()
        old = self.current
        assert old is not None
        new = self.path_for(address, local)
        if old.validated:
            self.fallback = old
        self.current = new
        self.migrations += 1
        if not new.validated:
            self.validate(new, now, pto)
        if old.validated and not old.validating:
            # §9.3.3: a forwarded copy may have won the race; make the old path speak.
            self.validate(old, now, pto)
        self._hand_over(old, new)
        if old.key[0] != new.key[0]:
            restore, new.recovery_state = new.recovery_state, None
            old.recovery_state = recovery.switch_path(new_controller(), restore)
        return old, new

    def _hand_over(self, old: Path, new: Path) -> None:
        """``new`` is current instead of ``old``: which of the peer's CIDs each carries.

        §9.5: no CID goes to two peer addresses. ``new`` takes the CID it was probed
        with, if any (it went to its address only), else a spare one: the peer's
        choice of our CID binds none of ours (§5.1.2), so even after a NAT rebinding,
        where the peer kept its CID, ours changes. ``old``, still probed (§9.3.3) or
        owed a response, keeps the CID it had until that ends
        (:meth:`release_idle_cid`); otherwise that CID is retired now. With no spare
        CID both keep the current one: linkable (for a NAT rebinding §9.5 allows it),
        but the connection goes on; the next migration, once the peer has issued
        more, separates them again.
        """
        cids = self.cids
        own, new.peer_cid, new.release_cid = new.peer_cid, None, False
        previous = cids.current_peer_sequence
        if own is None or own.sequence_number not in cids.peer or own.sequence_number == previous:
            own = cids.spare_peer_cid(taken=self.peer_cids_taken())
        switched = own is not None and cids.use_peer_cid(own.sequence_number, retire=False)
        if not switched:
            _log.debug("no spare peer connection ID for the new path (RFC 9000 §9.5)")
        if old in self._paths and (old.validating or old.response is not None):
            old.peer_cid, old.release_cid = cids.peer.get(previous), True
        elif switched:
            cids.retire_peer_cid(previous)

    def release_idle_cid(self, path: Path) -> None:
        """Retire the CID ``path`` kept from when it was current (:meth:`_hand_over`) once
        no validation is under way on it and no response is owed there."""
        cid = path.peer_cid
        if path.release_cid and cid is not None and not path.validating and path.response is None:
            path.peer_cid, path.release_cid = None, False
            self.cids.retire_peer_cid(cid.sequence_number)

    def lend_cid(self, path: Path) -> bool:
        """Give ``path``, not the current one, a spare CID of the peer's for what it is
        sent (a response to the peer's probe, §9.5), kept while the path is tracked and
        taken along if it becomes current; False when none is spare."""
        if not self.cids.current_peer_cid:
            return True  # zero-length CIDs: none to keep apart, the path carries none too
        cid = self.cids.spare_peer_cid(taken=self.peer_cids_taken())
        if cid is None:
            return False
        path.peer_cid = cid
        return True

    def keep_left(self, address: Address, local: Address, cid: PeerCid) -> Path:
        """A client moved away from ``local`` and its driver still reads there: the path
        from there to ``address``, validated before, keeps ``cid``, the server CID that
        left from there (RFC 9000 §9.5: it leaves from nowhere else), for what it owes
        there: the PATH_RESPONSE to the server's re-validation (§9.3.3, §8.2.2). It
        carries nothing else and never becomes current; :meth:`release_local` ends it."""
        local = address_key(local)
        same = self.get(address, local)  # (that address left again: not while it is read)
        if same is not None and same is not self.current:
            self._drop(same)
        if len(self._paths) >= MAX_PATHS:  # an address left earlier goes first
            for older in self._paths:
                if older.local is not None and older is not self.current:
                    self._drop(older)
                    break
        path = self.path_for(address, local)
        path.validated = True  # the server's address, from where the client was
        path.peer_cid = cid
        return path

    def release_local(self, local: Address) -> None:
        """A client's driver no longer reads ``local``, a local address it left: the
        paths from there are forgotten and the server CIDs they kept retired (§5.1.2)."""
        key = address_key(local)
        for path in list(self._paths):
            left = path.local
            if left is not None and path is not self.current and address_key(left) == key:
                self._drop(path)

    def _drop(self, path: Path) -> None:
        """Forget ``path``: a CID that went there goes nowhere else (§9.5), it is retired."""
        self._paths.remove(path)
        cid, path.peer_cid = path.peer_cid, None
        if cid is not None:
            self.cids.retire_peer_cid(cid.sequence_number)

    def validate(self, path: Path, now: float, pto: float) -> None:
        """Start (or restart) path validation: a challenge now, give up after 3 PTOs."""
        path.challenge_due = now
        path.validation_deadline = now + 3 * max(pto, INITIAL_PTO)  # §8.2.4
        self.active = True

    def stop_validation(self, path: Path) -> None:
        """Give up validating ``path`` (a response that still comes validates nothing)."""
        path.challenges = ()
        path.challenge_due = path.validation_deadline = None
        self.release_idle_cid(path)

    # Sending ---------------------------------------------------------------------------------
    def challenge_due(self, path: Path, now: float) -> bool:
        """A PATH_CHALLENGE is due on ``path`` at ``now``."""
        due = path.challenge_due
        return due is not None and due <= now

    def new_challenge(self, path: Path, now: float, pto: float) -> bytes:
        """PATH_CHALLENGE data to send on ``path`` now; the next one after a PTO."""
        data = random_bytes(8)
        path.challenges = (*path.challenges[1 - MAX_CHALLENGES :], data)
        path.challenge_due = now + max(pto, 0.001)
        return data

    def paths_due(self, now: float) -> list[Path]:
        """Paths that owe a PATH_RESPONSE or a PATH_CHALLENGE now (and have budget for it)."""
        out = []
        busy = False
        for path in self._paths:
            if path.response is None and path.validation_deadline is None:
                continue
            busy = True
            if (path.response is not None or self.challenge_due(path, now)) and (
                path.budget() >= MIN_PROBE_SIZE
            ):
                out.append(path)
        self.active = busy
        return out

    # Path MTU black holes (RFC 8899 §4.3) ---------------------------------------------------
    def on_large_lost(self, large_acked_sent: float) -> None:
        """Recovery saw packets above 1200 bytes lost while none sent after them was
        acknowledged: the current path's MTU may have shrunk."""
        if self.current is not None:
            self.current.pmtu.on_large_lost(large_acked_sent)

    def on_probe_timeout(self, pto_count: int) -> None:
        """The application space's PTO fired ``pto_count`` times in a row: packets of the
        current path's size may no longer pass."""
        if self.current is not None:
            self.current.pmtu.on_probe_timeout(pto_count)

    # Timers ----------------------------------------------------------------------------------
    def next_timer(self) -> float | None:
        """The earliest challenge to send or validation to abandon.

        A challenge the 3x limit does not let out yet waits for the peer's next
        datagram, not for a timer (which would fire again at once).
        """
        best: float | None = None
        for path in self._paths:
            t = path.validation_deadline
            if t is not None and (best is None or t < best):
                best = t
            t = path.challenge_due
            if t is not None and (best is None or t < best) and path.budget() >= MIN_PROBE_SIZE:
                best = t
        return best

    def on_timer(
        self, now: float, recovery: Recovery, new_controller: Callable[[], CongestionController]
    ) -> bool:
        """Abandon validations past their deadline (§8.2.4).

        If the current path failed, fall back to the last validated one (§9.3.2), with
        the congestion state it had. Returns False when the current path failed and
        there is nothing to fall back to: the connection must end silently.
        """
        for path in list(self._paths):
            deadline = path.validation_deadline
            if deadline is None or now < deadline:
                continue
            self.stop_validation(path)
            if path is not self.current:
                if path is not self.fallback and not path.validated:
                    self._drop(path)
                continue
            fallback = self.fallback
            if fallback is None or fallback is path:
                return False
            self.current = fallback
            self.fallback = None
            self._paths.remove(path)
            self._hand_over(path, fallback)  # §9.5: the failed path's CID stays there
            if path.key[0] != fallback.key[0] and fallback.recovery_state is not None:
                restore, fallback.recovery_state = fallback.recovery_state, None
                recovery.switch_path(new_controller(), restore)
        return True
