"""quicnet: encrypted, low-latency networking for Python.

Layers, bottom up: :mod:`quicnet.crypto` (keys, certificates, AEAD, key
derivation over pyca/cryptography), :mod:`quicnet.tls` (TLS 1.3),
:mod:`quicnet.quic` (QUIC), :mod:`quicnet.realtime` (peers, channels and
delivery modes), and :mod:`quicnet.io` (the drivers that own sockets).

The real-time API is here at the top::

    import quicnet

    identity = quicnet.dev_identity()
    server = quicnet.Server(("127.0.0.1", 0), identity=identity)
    client = quicnet.Client(server.address, pin=identity.fingerprint)
    client.send(1, b"state")
    for event in server.poll(timeout=0.01):
        ...
"""

from quicnet.crypto import dev_identity
from quicnet.errors import QuicnetError
from quicnet.io.aio import run
from quicnet.io.realtime import Client, Server
from quicnet.io.realtime_aio import AsyncClient, AsyncServer, connect, serve
from quicnet.realtime import (
    Connected,
    ConnectRequest,
    Delivery,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    MessageTooLargeError,
    NotConnectedError,
    PeerConnected,
    PeerDisconnected,
    PeerMigrated,
    PeerStats,
    RealtimeEvent,
    RealtimeUsageError,
    Settings,
    UnknownChannelError,
    UnknownPeerError,
)

__all__ = [
    "AsyncClient",
    "AsyncServer",
    "Client",
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
    "QuicnetError",
    "RealtimeEvent",
    "RealtimeUsageError",
    "Server",
    "Settings",
    "UnknownChannelError",
    "UnknownPeerError",
    "__version__",
    "connect",
    "dev_identity",
    "run",
    "serve",
]

__version__ = "0.1.0.dev0"
