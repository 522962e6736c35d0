"""The deadlines that end a connection without a word from the peer.

- the idle timeout (RFC 9000 §10.1): the smaller of both sides' max_idle_timeout,
  at least three PTOs, restarted by every packet received and by the first
  ack-eliciting packet sent after one;
- the handshake timeout (a local limit, not an RFC timer): a handshake not
  complete by then is abandoned, so a client whose server never answers gives
  up in seconds rather than after the idle timeout;
- the half-open limit (a server endpoint's defence, RFC 9000 §21.1): a server
  connection whose client has not proved its address by then is dropped.
"""

from __future__ import annotations

__all__ = ["ConnectionDeadlines"]


class ConnectionDeadlines:
    """Idle, handshake and half-open deadlines of one connection (seconds, caller's clock)."""

    __slots__ = (
        "_half_open_since",
        "closing_ends",
        "handshake_deadline",
        "handshake_timeout",
        "idle_timeout",
        "last_activity",
        "restart_on_send",
    )

    def __init__(self, idle_timeout: float, handshake_timeout: float | None) -> None:
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        #: When the idle timer last restarted (None: not started yet).
        self.last_activity: float | None = None
        #: The first ack-eliciting packet sent from now on restarts the idle timer too.
        self.restart_on_send = False
        self.handshake_deadline: float | None = None
        self._half_open_since: float | None = None
        #: The end of the closing or draining period (RFC 9000 §10.2), once it started.
        self.closing_ends: float | None = None

    @property
    def started(self) -> bool:
        """The timers are armed (:meth:`start` ran)."""
        return self.last_activity is not None

    def start(self, now: float, *, half_open_timeout: float | None = None) -> None:
        """Arm the timers: a client at connect(), a server at its first datagram.

        With ``half_open_timeout`` the handshake must prove the peer's address by
        then (see :meth:`on_address_validated`), whatever the handshake timeout.
        """
        if self.last_activity is None:
            self.last_activity = now
        timeout = self.handshake_timeout
        if timeout and self.handshake_deadline is None:
            self.handshake_deadline = now + timeout
        if half_open_timeout is not None:
            self._half_open_since = now
            deadline = now + half_open_timeout
            if self.handshake_deadline is None or deadline < self.handshake_deadline:
                self.handshake_deadline = deadline

    def on_address_validated(self) -> None:
        """The client proved its address: only the handshake timeout applies now."""
        since, self._half_open_since = self._half_open_since, None
        if since is not None:
            timeout = self.handshake_timeout
            self.handshake_deadline = since + timeout if timeout else None

    def negotiate_idle_timeout(self, peer_seconds: float) -> None:
        """§10.1: each side uses the smaller of the two advertised values (0: none)."""
        if peer_seconds:
            mine = self.idle_timeout
            self.idle_timeout = min(mine, peer_seconds) if mine else peer_seconds

    def on_packet_received(self, now: float) -> None:
        """§10.1: a packet that authenticated restarts the idle timer."""
        self.last_activity = now
        self.restart_on_send = True

    def on_ack_eliciting_sent(self, now: float) -> None:
        """§10.1: so does the first ack-eliciting packet sent after a receipt."""
        if self.restart_on_send:
            self.restart_on_send = False
            self.last_activity = now

    def idle_deadline(self, pto: float) -> float | None:
        """When the connection idles out, given the PTO without backoff (§10.1: >= 3 PTOs)."""
        if not self.idle_timeout or self.last_activity is None:
            return None
        three_ptos = 3 * pto
        return self.last_activity + (
            self.idle_timeout if self.idle_timeout > three_ptos else three_ptos
        )

    def next(self, pto: float, handshake_complete: bool) -> float | None:
        """The earliest of these deadlines still relevant."""
        idle = self.idle_deadline(pto)
        handshake = None if handshake_complete else self.handshake_deadline
        if idle is None or handshake is None:
            return idle if handshake is None else handshake
        return min(idle, handshake)

    def expired(self, now: float, pto: float, handshake_complete: bool) -> str | None:
        """Why the connection must end at ``now`` (a reason for its event), or None."""
        deadline = self.handshake_deadline
        if deadline is not None and not handshake_complete and now >= deadline:
            since = self._half_open_since
            if since is not None:
                return (
                    f"handshake timeout: the client's address unproven after {deadline - since:g} s"
                )
            return f"handshake timeout: not completed within {self.handshake_timeout or 0.0:g} s"
        idle = self.idle_deadline(pto)
        if idle is not None and now >= idle:
            return "idle timeout"
        return None
