"""The states of a QUIC connection (RFC 9000 §10: closing and draining)."""

from __future__ import annotations

import enum

__all__ = ["CLOSING", "CONNECTED", "DRAINING", "HANDSHAKE", "TERMINATED", "ConnectionState"]


class ConnectionState(enum.Enum):
    """A connection's life (RFC 9000 §10): HANDSHAKE until TLS completes, CONNECTED,
    then CLOSING or DRAINING, and TERMINATED once nothing more is sent or received."""

    HANDSHAKE = "handshake"
    CONNECTED = "connected"
    CLOSING = "closing"  # we sent CONNECTION_CLOSE (§10.2.1)
    DRAINING = "draining"  # the peer did (§10.2.2)
    TERMINATED = "terminated"


# The members as module constants, for the per-packet paths: on Python 3.11 every
# ``ConnectionState.X`` lookup goes through ``EnumType.__getattr__`` (~70 ns, several
# times a global's cost; 3.12 dropped that hook).
HANDSHAKE = ConnectionState.HANDSHAKE
CONNECTED = ConnectionState.CONNECTED
CLOSING = ConnectionState.CLOSING
DRAINING = ConnectionState.DRAINING
TERMINATED = ConnectionState.TERMINATED
