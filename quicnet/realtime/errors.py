"""What the real-time layer raises at its caller (the peer's mistakes close its session)."""

from __future__ import annotations

from quicnet.errors import QuicnetError

__all__ = [
    "MessageTooLargeError",
    "NotConnectedError",
    "RealtimeUsageError",
    "UnknownChannelError",
    "UnknownPeerError",
]


class RealtimeUsageError(QuicnetError):
    """The application used the API wrongly; nothing was sent."""


class UnknownPeerError(RealtimeUsageError, KeyError):
    """No connected peer has this id (never had, or it disconnected)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownChannelError(RealtimeUsageError, KeyError):
    """The channel is not in this side's channel table."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MessageTooLargeError(RealtimeUsageError, ValueError):
    """The message is larger than the channel's mode allows (``max_message_size`` or
    ``max_unreliable_message_size``)."""


class NotConnectedError(RealtimeUsageError):
    """The session has ended: nothing more can be sent on it."""
