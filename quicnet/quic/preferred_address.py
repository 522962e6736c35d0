"""A server's preferred address (RFC 9000 §9.6): the server offers it, the client moves.

The server offers an IPv4 and/or IPv6 address (``QuicConfiguration.
preferred_address_v4`` / ``_v6``) with a connection ID of sequence 1 and its
stateless reset token in the preferred_address transport parameter (§18.2).
A path there is another *local* address of the server: the connection is told
which local address each datagram reached (``receive_datagram(..., local=)``)
and hands the datagrams that must leave from it apart from the others
(:meth:`QuicConnection.routed_datagrams
<quicnet.quic.connection.QuicConnection.routed_datagrams>`), so connections
without a preferred address pay nothing for it.

- **Client** (§9.6.1): once the handshake is confirmed, it validates a path to
  the offered address of its server's family (PATH_CHALLENGE, with the
  preferred address's CID, §9.5), and once the server answers from there it
  sends everything there and retires the old CID; a failed validation leaves
  it where it was. It accepts packets from that address from the moment it
  starts probing it, and from no other new address (§9.6). A client that moves to
  a new local address meanwhile validates both server addresses from there at once
  (§9.6.3), the preferred one with another CID (§9.5).
- **Server** (§9.6.2): it answers a PATH_CHALLENGE that reached the preferred
  address from there, probes the client from there too (with another of the
  client's CIDs), and sends its non-probing packets from the original address
  until both a non-probing packet with a new largest packet number arrived at
  the preferred address and that path is validated.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from quicnet.quic import ack_frequency
from quicnet.quic.events import Address
from quicnet.quic.paths import Path, address_key, path_key
from quicnet.quic.transport_params import PreferredAddress

if TYPE_CHECKING:
    from quicnet.quic.config import QuicConfiguration
    from quicnet.quic.connection import QuicConnection

__all__ = ["PreferredAddressState", "chosen_address", "offer"]

_ZERO_V4 = bytes(4)
_ZERO_V6 = bytes(16)


def offer(c: QuicConnection) -> PreferredAddress | None:
    """A server's preferred_address parameter, with a new CID of sequence 1 (§5.1.1),
    or None when none is configured (or the server uses zero-length CIDs, §18.2)."""
    config = c.configuration
    v4, v6 = config.preferred_address_v4, config.preferred_address_v6
    if c.is_client or c.cid_length == 0 or not ((v4 and v4[1]) or (v6 and v6[1])):
        return None
    entry = c.cids.issue_preferred()
    return PreferredAddress(
        ipaddress.IPv4Address(v4[0]).packed if v4 and v4[1] else _ZERO_V4,
        int(v4[1]) if v4 else 0,
        ipaddress.IPv6Address(v6[0]).packed if v6 and v6[1] else _ZERO_V6,
        int(v6[1]) if v6 else 0,
        entry.cid,
        entry.stateless_reset_token,
    )


def chosen_address(preferred: PreferredAddress, server: Address) -> Address | None:
    """The offered address of ``server``'s family (§9.6.3: a client SHOULD stay in its
    family; an IPv4-mapped server address takes the IPv4 offer, mapped), or None when
    the server offered none of that family or one a client must not go to: not a
    unicast address, or loopback offered by a server that is not (§21.5.6)."""
    try:
        current = ipaddress.ip_address(str(server[0]).split("%", 1)[0])
    except ValueError:
        return None
    mapped = isinstance(current, ipaddress.IPv6Address) and current.ipv4_mapped is not None
    offer: ipaddress.IPv4Address | ipaddress.IPv6Address
    if current.version == 4 or mapped:
        offer, port = ipaddress.IPv4Address(preferred.ipv4_address), preferred.ipv4_port
    else:
        offer, port = ipaddress.IPv6Address(preferred.ipv6_address), preferred.ipv6_port
    if port == 0 or offer.is_unspecified or offer.is_multicast:
        return None  # all zero: nothing offered in this family (§18.2)
    if offer == ipaddress.IPv4Address("255.255.255.255"):
        return None
    if offer.is_loopback and not current.is_loopback:
        return None  # §21.5.6: request forgery toward a service on the loopback
    if isinstance(offer, ipaddress.IPv6Address) and offer.ipv4_mapped is not None:
        return None  # an IPv4 address belongs in the IPv4 field
    host = offer.compressed
    return (f"::ffff:{host}" if mapped else host, port)


def _local_keys(config: QuicConfiguration) -> tuple[tuple[str, int], ...]:
    return tuple(
        address_key((ipaddress.ip_address(a[0]).compressed, a[1]))
        for a in (config.preferred_address_v4, config.preferred_address_v6)
        if a is not None and a[1]
    )


class PreferredAddressState:
    """A connection's side of §9.6: what a server offered, or where a client is moving."""

    __slots__ = ("local_keys", "moved", "path", "pending")

    def __init__(self, config: QuicConfiguration) -> None:
        #: A server's offered addresses, as path keys (empty for a client).
        self.local_keys = () if config.is_client else _local_keys(config)
        #: A client: the path to the preferred address being validated (None: none, or
        #: done). A server: unused.
        self.path: Path | None = None
        #: A server: the path at its preferred address that a non-probing packet
        #: reached before it was validated; it becomes current once it is (§9.6.2).
        self.pending: Path | None = None
        #: A client moved to the preferred address (disable_active_migration, which
        #: concerns the handshake's address, no longer holds it back, §18.2).
        self.moved = False

    # Receiving ------------------------------------------------------------------------
    def via(self, local: Address | None) -> Address | None:
        """The local address a datagram reached, when it is one of our preferred ones;
        None: the default address (what a client always has)."""
        if local is None or not self.local_keys:
            return None
        key = address_key(local)
        if key in self.local_keys:
            return key
        try:  # another spelling of the same address ("::0001" for "::1")
            key = (ipaddress.ip_address(key[0]).compressed, key[1])
        except ValueError:
            return None
        return key if key in self.local_keys else None

    def locate(
        self, current: Path, address: Address, local: Address | None, on_current: bool
    ) -> tuple[Address | None, bool]:
        """Which preferred address a datagram from ``address`` reached (None: the
        default one), and whether it came on the current path (address *and* local)."""
        via = self.via(local)
        if via is None and current.local is None:
            return None, on_current
        return via, path_key(address, via) == current.key

    def left_behind(self, c: QuicConnection) -> bool:
        """A server that moved to its preferred address got the datagram being processed
        at its original address (§9.6.2: it drops the newer packets that come there)."""
        current = c.paths.current
        return (
            not c.is_client
            and c.datagram_local is None
            and current is not None
            and current.local is not None
        )

    def on_arrival(self, c: QuicConnection, path: Path, now: float) -> None:
        """A server: an authenticated packet reached the preferred address on ``path``.
        §9.6.2: the server probes the client from there (as §9.6.3 asks for any new
        source address) with a CID of the client's not used on another path (§9.5)."""
        if path.validated or path.validating or path is c.paths.current:
            return
        if path.peer_cid is None:
            path.peer_cid = c.cids.spare_peer_cid(taken=c.paths.peer_cids_taken())
        c.paths.validate(path, now, c.recovery.pto_base())

    def on_non_probing(self, c: QuicConnection, address: Address, now: float) -> None:
        """The newest non-probing packet came from ``address`` (at the local address
        the datagram reached): the server follows once that path is validated (§9.6.2),
        a client never follows (§9)."""
        current = c.paths.current
        via = c.datagram_local
        if c.is_client or current is None or not c.handshake_confirmed:
            return
        if path_key(address, via) == current.key:
            return
        if via is None:  # the original address: ordinary migration rules (§9.3)
            c.on_peer_migrated(address, now)
            return
        path = c.paths.get(address, via)
        if path is None:
            return
        if path.validated:
            self._server_move(c, path)
        else:
            self.pending = path
            self.on_arrival(c, path, now)

    def on_validated(self, c: QuicConnection, path: Path) -> None:
        """A PATH_RESPONSE validated ``path``: the client moves there if it is the
        preferred address; the server, if a non-probing packet already came there."""
        if path is self.path:
            self.path = None
            self._client_move(c, path)
        elif path is self.pending:
            self.pending = None
            self._server_move(c, path)

    # The client's move ------------------------------------------------------------------
    def start(self, c: QuicConnection, now: float) -> None:
        """A client whose handshake is confirmed validates the server's preferred
        address (§9.6.1), with the preferred address's CID (or another unused one)."""
        params = c.remote_params
        current = c.paths.current
        if params is None or params.preferred_address is None or current is None:
            return
        if not c.configuration.use_preferred_address or self.moved or self.path is not None:
            return
        address = chosen_address(params.preferred_address, current.address)
        if address is None or path_key(address, None) == current.key:
            return
        taken = c.paths.peer_cids_taken()  # §9.5: one an address left keeps, say
        cid = c.cids.peer.get(1) or c.cids.spare_peer_cid(taken=taken)
        if cid is None or cid.sequence_number in (c.cids.current_peer_sequence, *taken):
            return  # retired already and no spare: stay (§9.6.1 is a SHOULD)
        path = c.paths.path_for(address)
        path.chosen = True  # from the authenticated handshake, as the server's address
        path.peer_cid = cid
        self.path = path
        c.paths.validate(path, now, c.recovery.pto_base())

    def _client_move(self, c: QuicConnection, path: Path) -> None:
        """§9.6.1: everything goes to the validated preferred address, with its CID."""
        paths = c.paths
        old = paths.current
        if old is None or path is old:
            return
        cid, path.peer_cid = path.peer_cid, None
        if cid is None or not c.cids.use_peer_cid(cid.sequence_number):
            # The CID went meanwhile: any fresh one no other path carries (§9.5).
            c.cids.switch_peer_cid(taken=c.paths.peer_cids_taken())
        if old.validating:
            # §9.6.3: the original address, validated concurrently from a new local
            # address, is moot now (and its probes may not carry this path's CID, §9.5).
            paths.stop_validation(old)
        self._switch(c, old, path)
        self.moved = True
        # A non-probing packet: the server moves too (§9.6.2); IMMEDIATE_ACK to a peer
        # that offered it (draft-ietf-quic-ack-frequency §8.4).
        c.pending.queue_ping(immediate_ack=ack_frequency.peer_offered(c))

    # The client moves while it validates (§9.6.3) -----------------------------------------
    def probing(self) -> Path | None:
        """A client's path to the preferred address while its validation is under way."""
        path = self.path
        return path if path is not None and path.validating else None

    def used_cid(self, c: QuicConnection) -> int | None:
        """The sequence number of the server CID the client's probes of the preferred
        address carry from its current local address (§9.5: it may leave from no other
        one), or None."""
        path = self.path
        cid = None if path is None else path.peer_cid
        if cid is None or cid.sequence_number not in c.cids.peer:
            return None
        return cid.sequence_number

    def before_local_move(self, c: QuicConnection) -> Path | None:
        """The client's local address is about to change: the CID of its probes of the
        preferred address is retired (§9.5). Returns the path if its validation goes on
        from the new address (§9.6.3); one that failed is forgotten (§9.6.1: the client
        stays on the original address)."""
        path = self.path
        if path is None:
            return None
        sequence = self.used_cid(c)
        if sequence is not None:
            c.cids.retire_peer_cid(sequence)
        path.peer_cid = None
        if not path.validating:
            self.path = None
            return None
        return path

    def after_local_move(self, c: QuicConnection, path: Path, now: float) -> None:
        """§9.6.3: validate the preferred address from the new local address too,
        concurrently with the original one, with a server CID no other path carries
        (§9.5; ``migration_refused`` made sure there is one). Challenges sent from the
        old address prove nothing about the new one (§8.2)."""
        path.peer_cid = c.cids.spare_peer_cid(taken=c.paths.peer_cids_taken())
        path.challenges = ()
        path.response = None
        c.paths.validate(path, now, c.recovery.pto_base())

    # The server's move -------------------------------------------------------------------
    def _server_move(self, c: QuicConnection, path: Path) -> None:
        """§9.6.2: from now on non-probing packets leave from the preferred address,
        with the client CID its probes used (§9.5)."""
        old = c.paths.current
        if old is None or path is old:
            return
        cid, path.peer_cid = path.peer_cid, None
        if cid is None or not c.cids.use_peer_cid(cid.sequence_number):
            c.cids.switch_peer_cid(taken=c.paths.peer_cids_taken())
        self._switch(c, old, path)

    def _switch(self, c: QuicConnection, old: Path, new: Path) -> None:
        paths = c.paths
        if old.validated:
            paths.fallback = old
        paths.current = new
        paths.migrations += 1
        if old.key[0] != new.key[0]:  # another peer IP address: fresh congestion (§9.4)
            restore, new.recovery_state = new.recovery_state, None
            old.recovery_state = c.recovery.switch_path(c.new_controller(), restore)
        if old.address != new.address:
            c.on_peer_address_changed(old.address, new.address)
        ack_frequency.on_path_confirmed(c)  # draft-ietf-quic-ack-frequency §8.4
