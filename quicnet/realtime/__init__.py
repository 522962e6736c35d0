"""The real-time layer: peers, channels and delivery modes over QUIC (quicnet-rt/1).

The sans-I/O cores (:class:`ServerCore`, :class:`ClientCore`) live here; the
socket-owning ``quicnet.Server``/``quicnet.Client`` and the asyncio
``quicnet.serve``/``quicnet.connect`` are in :mod:`quicnet.io.realtime` and
:mod:`quicnet.io.realtime_aio`. The wire format is ``docs/protocol.md``.
"""

from quicnet.realtime.client import ClientCore, client_configuration, parse_pin, parse_session
from quicnet.realtime.errors import (
    MessageTooLargeError,
    NotConnectedError,
    RealtimeUsageError,
    UnknownChannelError,
    UnknownPeerError,
)
from quicnet.realtime.events import (
    Connected,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
    PeerMigrated,
    RealtimeEvent,
)
from quicnet.realtime.server import (
    AcceptHook,
    ConnectRequest,
    ServerCore,
    server_configuration,
)
from quicnet.realtime.settings import DEFAULT_CHANNELS, Settings
from quicnet.realtime.stats import PeerStats
from quicnet.realtime.wire import ALPN, CloseCode, Delivery, RealtimeProtocolError

__all__ = [
    "ALPN",
    "AcceptHook",
    "DEFAULT_CHANNELS",
    "ClientCore",
    "CloseCode",
    "ConnectRequest",
    "Connected",
    "Delivery",
    "DisconnectReason",
    "Disconnected",
    "MessageReceived",
    "MessageTooLargeError",
    "NotConnectedError",
    "PeerConnected",
    "PeerDisconnected",
    "PeerMigrated",
    "PeerStats",
    "RealtimeEvent",
    "RealtimeProtocolError",
    "RealtimeUsageError",
    "ServerCore",
    "Settings",
    "UnknownChannelError",
    "UnknownPeerError",
    "client_configuration",
    "parse_pin",
    "parse_session",
    "server_configuration",
]
