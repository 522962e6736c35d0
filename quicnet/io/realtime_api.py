"""What the tick-driven and the asyncio real-time drivers share.

The application's calls (``send``, ``broadcast``, ``stats`` ...) are the same
on :class:`quicnet.Server` and :func:`quicnet.serve`'s server, and on
:class:`quicnet.Client` and :func:`quicnet.connect`'s client: they act on the
sans-I/O core and then let the driver send (:meth:`ServerCalls._sent`). So
are the arguments that make a core: an identity, settings or keywords, a
CA file or pins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from quicnet.crypto import Certificate, PrivateKey, load_certificates
from quicnet.quic import Address
from quicnet.realtime import (
    AcceptHook,
    ClientCore,
    Delivery,
    PeerStats,
    ServerCore,
    Settings,
    server_configuration,
)
from quicnet.tls import SessionTicket

__all__ = [
    "ClientCalls",
    "Identity",
    "ServerCalls",
    "make_settings",
    "new_server_core",
    "trust_roots_from",
]


class Identity(Protocol):
    """A server's certificate chain and private key (``quicnet.dev_identity()`` is one)."""

    @property
    def certificate_chain(self) -> Sequence[Certificate]:
        """The certificates the server sends, leaf first (RFC 8446 §4.4.2)."""

    @property
    def private_key(self) -> PrivateKey:
        """The private key of the leaf certificate, which signs CertificateVerify."""


def make_settings(
    settings: Settings | None, channels: Mapping[int, Delivery] | None, options: dict[str, Any]
) -> Settings:
    """The settings from a ready object, or from ``channels`` and keyword options."""
    if settings is not None:
        if channels is not None or options:
            raise TypeError("give settings= or channels= and options, not both")
        return settings
    if channels is not None:
        options["channels"] = channels
    return Settings(**options)


def trust_roots_from(
    cafile: str | Path | None, trust_roots: Sequence[Certificate]
) -> list[Certificate]:
    """``trust_roots`` and the certificates of the PEM file ``cafile``."""
    roots = list(trust_roots)
    if cafile is not None:
        roots += load_certificates(Path(cafile).read_bytes())
    return roots


def new_server_core(
    identity: Identity,
    settings: Settings,
    *,
    accept: AcceptHook | None,
    max_connections: int,
    qlog: str | os.PathLike[str] | None,
) -> ServerCore:
    """A server core for ``identity`` (the arguments of :class:`quicnet.Server`)."""
    configuration = server_configuration(
        identity.certificate_chain, identity.private_key, settings, qlog=qlog
    )
    return ServerCore(configuration, settings, accept=accept, max_connections=max_connections)


class ServerCalls:
    """A real-time server's calls for the application, over its :class:`ServerCore`."""

    core: ServerCore

    def _sent(self) -> None:
        """Something was queued: the driver sends it (now, or at the end of a batch)."""
        raise NotImplementedError

    @property
    def peers(self) -> list[int]:
        """The ids of the connected peers."""
        return self.core.peers

    def send(self, peer: int, channel: int, data: bytes) -> None:
        """Send ``data`` to ``peer`` on ``channel`` (UnknownPeerError, UnknownChannelError,
        MessageTooLargeError: nothing is sent)."""
        self.core.send(peer, channel, data)
        self._sent()

    def broadcast(self, channel: int, data: bytes, *, exclude: int | Iterable[int] = ()) -> None:
        """Send ``data`` on ``channel`` to every connected peer but ``exclude``."""
        self.core.broadcast(channel, data, exclude=exclude)
        self._sent()

    def disconnect(self, peer: int, reason: str = "kicked") -> None:
        """End ``peer``'s session (it sees KICKED and ``reason``)."""
        self.core.disconnect(peer, reason)
        self._sent()

    def stats(self, peer: int) -> PeerStats:
        """``peer``'s RTT, jitter, loss, bytes and packets each way, congestion window (a
        peer that has gone: its figures when its session ended)."""
        return self.core.stats(peer)

    def address_of(self, peer: int) -> Address:
        """Where ``peer``'s packets come from now (its last validated address)."""
        return self.core.address_of(peer)


class ClientCalls:
    """A real-time client's calls for the application, over its :class:`ClientCore`."""

    core: ClientCore

    def _sent(self) -> None:
        """Something was queued: the driver sends it (now, or at the end of a batch)."""
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        """The server admitted us and the session goes on."""
        return self.core.connected

    @property
    def client_id(self) -> int | None:
        """The id the server gave us (None until Connected)."""
        return self.core.client_id

    @property
    def session(self) -> SessionTicket | None:
        """The latest session ticket the server sent (None until one came, shortly after
        Connected): give it, or its ``to_bytes()``, as ``session=`` to a later client to
        resume. It holds a secret key: keep it as private as a password."""
        return self.core.session_ticket

    @property
    def early_data_accepted(self) -> bool | None:
        """Whether the server accepted our 0-RTT (None until the handshake completes)."""
        return self.core.early_data_accepted

    def send(self, channel: int, data: bytes) -> None:
        """Send ``data`` on ``channel`` (before Connected, it waits and goes then)."""
        self.core.send(channel, data)
        self._sent()

    def stats(self) -> PeerStats:
        """The session's RTT, jitter, loss, bytes and packets each way, congestion window."""
        return self.core.stats()
