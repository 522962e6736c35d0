"""A client's side of version negotiation (RFC 9000 §6).

The client may offer a version it does not speak (to provoke Version
Negotiation, as the interop runner's test does): it then sends full-size
probes in that version until the server lists the versions it supports, and
starts the handshake in the first of its own supported versions the server
named. A Version Negotiation packet is acted on once, only before any other
packet arrived, and never if it lists the version offered (§6.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from quicnet.crypto import random_bytes
from quicnet.quic.errors import TransportError
from quicnet.quic.packets import MIN_INITIAL_DATAGRAM, parse_version_negotiation

__all__ = ["NO_COMMON_VERSION", "VersionNegotiation"]

#: What :meth:`VersionNegotiation.on_packet` returns when no version is shared.
NO_COMMON_VERSION = -1
_PROBES = 3
_PROBE_INTERVAL = 1.0


class VersionNegotiation:
    """The version offered, probes in it if we do not speak it, and the outcome."""

    __slots__ = ("_probe_due", "_probes_left", "negotiated", "offered")

    def __init__(self, offered: int, *, speaks_offered: bool) -> None:
        self.offered = offered
        self._probes_left = 0 if speaks_offered else _PROBES
        self._probe_due: float | None = None
        #: A Version Negotiation packet was acted on.
        self.negotiated = False

    def start(self, now: float) -> bool:
        """At connect(): True if the client must first probe with the unknown version."""
        if not self._probes_left:
            return False
        self._probe_due = now
        return True

    @property
    def probing(self) -> bool:
        """Probes in the offered version are under way, and no Version Negotiation came yet."""
        return self._probe_due is not None and not self.negotiated

    def next_timer(self) -> float | None:
        """When the next probe is due (None unless probing)."""
        return self._probe_due if self.probing else None

    def probe(self, now: float, dcid: bytes, scid: bytes) -> bytes | None:
        """A full-size long-header datagram in the offered version, when one is due.

        Raises TimeoutError when every probe went unanswered.
        """
        due = self._probe_due
        if due is None or now < due or self.negotiated:
            return None
        if not self._probes_left:
            self._probe_due = None
            raise TimeoutError("no Version Negotiation answered")
        self._probes_left -= 1
        self._probe_due = now + _PROBE_INTERVAL
        header = (
            bytes((0xC0 | random_bytes(1)[0] & 0x3F,))
            + self.offered.to_bytes(4, "big")
            + bytes((len(dcid),))
            + dcid
            + bytes((len(scid),))
            + scid
        )
        return header + random_bytes(MIN_INITIAL_DATAGRAM - len(header))

    def on_packet(self, data: bytes, host_cid: bytes, supported: Sequence[int]) -> int | None:
        """A Version Negotiation packet: the version to restart in, NO_COMMON_VERSION, or
        None when it is to be ignored (malformed, not for us, or listing our offer)."""
        if self.negotiated:
            return None
        try:
            dcid, _scid, versions = parse_version_negotiation(data)
        except TransportError:
            return None
        if dcid != host_cid or self.offered in versions:
            return None  # §6.2: a VN listing the version we offered is discarded
        common = [v for v in supported if v in versions]
        self.negotiated = True
        self._probe_due = None
        return common[0] if common else NO_COMMON_VERSION
