"""The real-time layer's settings, shared by servers and clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from quicnet.realtime.errors import RealtimeUsageError
from quicnet.realtime.wire import Delivery

__all__ = ["DEFAULT_CHANNELS", "Settings"]

#: The channel table when none is given (as fastnet's).
DEFAULT_CHANNELS: Mapping[int, Delivery] = MappingProxyType(
    {
        0: Delivery.RELIABLE_ORDERED,
        1: Delivery.UNRELIABLE,
        2: Delivery.RELIABLE_UNORDERED,
        3: Delivery.SEQUENCED,
    }
)


def _default_channels() -> Mapping[int, Delivery]:
    return DEFAULT_CHANNELS


@dataclass(frozen=True)
class Settings:
    """How a server or client behaves; both ends must agree on ``channels``.

    Times are in seconds, sizes in bytes.
    """

    #: Channel id (0-255) -> delivery mode.
    channels: Mapping[int, Delivery] = field(default_factory=_default_channels)
    #: The largest reliable message sent or accepted.
    max_message_size: int = 16 << 20
    #: The largest unreliable (or sequenced) message, fragmented above one datagram.
    max_unreliable_message_size: int = 64 << 10
    #: A session with nothing heard for this long ends (IDLE_TIMEOUT).
    idle_timeout: float = 10.0
    #: A PING after this long without sending, so an idle session stays up.
    keepalive_interval: float | None = 2.0
    #: Key rotation: a QUIC key update after this many packets ...
    key_update_packets: int = 1 << 20
    #: ... or this many seconds into a key phase (None: by count only).
    key_update_interval: float | None = None
    #: A QUIC handshake not complete this long after it started fails (CONNECTION_FAILED).
    handshake_timeout: float = 10.0
    #: Server: a client that has not said HELLO this long after its handshake is closed.
    #: Client: a server that has not answered with WELCOME this long after the handshake
    #: completed ends the session (CONNECTION_FAILED).
    hello_timeout: float = 5.0
    #: Partial fragmented messages held per peer, and how long a missing fragment is awaited.
    max_partial_messages: int = 16
    reassembly_timeout: float = 2.0
    #: Messages a server holds from a client it has not admitted yet, and messages a
    #: client queues before its handshake (beyond that, unreliable ones are dropped).
    max_pending_messages: int = 1024
    #: QUIC streams the peer may open at once (each reliable-unordered message is one).
    max_streams: int = 1024
    #: 0-RTT (RFC 9001 §4.6). Server: issue tickets that allow it and accept it, at most
    #: once per ticket. Client: resuming with ``session=``, send the HELLO and the first
    #: messages in 0-RTT. Early data can be replayed to a server that shares the ticket
    #: keys but not the strike register (docs/realtime.md, "Reconnecting").
    early_data: bool = True
    #: Server: ask each client to hold its ACKs up to this long (draft-ietf-quic-ack-
    #: frequency, for clients that offer it, as quicnet's do): a client that sends every
    #: tick then carries its ACKs on its own messages instead of extra datagrams, which
    #: saves the server a receive per client per tick. A little over one tick suits
    #: (0.05 at 30 Hz); the cost is a longer probe timeout. None: RFC 9000's 25 ms.
    client_ack_delay: float | None = None

    def __post_init__(self) -> None:
        channels = dict(self.channels)
        if not channels:
            raise RealtimeUsageError("a channel table needs at least one channel")
        for channel, mode in channels.items():
            if not isinstance(channel, int) or not 0 <= channel <= 255:
                raise RealtimeUsageError(f"channel {channel!r} is not an integer 0-255")
            if not isinstance(mode, Delivery):
                raise RealtimeUsageError(f"channel {channel}: {mode!r} is not a Delivery mode")
        object.__setattr__(self, "channels", MappingProxyType(dict(sorted(channels.items()))))
        if self.max_message_size < 1 or self.max_unreliable_message_size < 1:
            raise RealtimeUsageError("message size limits must be positive")
        for name in ("idle_timeout", "handshake_timeout", "hello_timeout", "reassembly_timeout"):
            if not getattr(self, name) > 0:
                raise RealtimeUsageError(f"{name} must be positive")
        if self.client_ack_delay is not None and not 0 < self.client_ack_delay < 16.384:
            raise RealtimeUsageError("client_ack_delay must be above 0 and below 16.384 s")

    def channel_table(self) -> tuple[tuple[int, Delivery], ...]:
        """The table as HELLO carries it: (channel, mode) in ascending channel order."""
        return tuple(self.channels.items())
