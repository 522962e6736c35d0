"""What a closing connection keeps (RFC 9000 §10.2.1).

After sending CONNECTION_CLOSE a connection only answers packets with that
frame again, and never freely: anyone who can reach the connection's CID (or
spoof its peer's address) could otherwise make it send on demand. The answers
back off exponentially (the 1st, 2nd, 4th, 8th ... packet received gets one) and
the connection sends them only to its peer's address, within the path's
anti-amplification budget.
"""

from __future__ import annotations

from quicnet.quic.events import ConnectionTerminated
from quicnet.quic.frames import encode_connection_close

__all__ = ["ClosingState"]


class ClosingState:
    """The CONNECTION_CLOSE frame to repeat and when it is due again."""

    __slots__ = ("_answered_at", "_received", "application", "event", "frame", "send_due")

    def __init__(self, frame: bytes, application: bool, event: ConnectionTerminated) -> None:
        self.frame = frame
        #: An application close (0x1d), which becomes APPLICATION_ERROR before 1-RTT.
        self.application = application
        #: What the application is told once the closing period ends.
        self.event = event
        self.send_due = True  # the first CONNECTION_CLOSE goes at once
        self._received = 0
        self._answered_at = 1

    @classmethod
    def for_close(
        cls, error_code: int, frame_type: int | None, reason: str, application: bool
    ) -> ClosingState:
        """Closing with ``error_code``: the frame to send and the event to report."""
        frame = encode_connection_close(
            error_code, None if application else (frame_type or 0), reason.encode()[:200]
        )
        event = ConnectionTerminated(
            error_code, frame_type, reason, by_peer=False, is_application=application
        )
        return cls(frame, application, event)

    def on_packet_received(self) -> None:
        """§10.2.1: answer again only after exponentially more packets arrived."""
        self._received += 1
        if self._received >= self._answered_at:
            self._answered_at *= 2
            self.send_due = True
