"""Per-epoch CRYPTO streams and packet keys (RFC 9001 §4).

The keys of each epoch live in three places: the Initial and Handshake ones in that
epoch's :class:`CryptoSpace`, the 1-RTT ones in the connection's
:class:`~quicnet.quic.key_phases.OneRttKeys` (key updates), the 0-RTT ones on the
connection while 0-RTT lasts. :func:`send_key` and :func:`recv_key` say which key an
epoch's packets use now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.protection import PacketKey, initial_keys
from quicnet.quic.streams import ReceiveHalf, SendHalf
from quicnet.tls.events import INITIAL_EPOCH, ONE_RTT_EPOCH, ZERO_RTT_EPOCH, Epoch

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = [
    "DISCARDED",
    "CryptoSpace",
    "install_initial_keys",
    "new_crypto_spaces",
    "recv_key",
    "send_key",
]

#: A handshake flight arrives in a handful of packets; holes beyond this are an attack.
MAX_CRYPTO_FRAGMENTS = 64


class CryptoSpace:
    """CRYPTO data in both directions for one epoch, and its keys."""

    __slots__ = ("receiver", "recv_key", "send_key", "sender")

    def __init__(self, max_buffer: int) -> None:
        self.sender = SendHalf(1 << 62)
        self.receiver = ReceiveHalf(max_buffer)
        self.send_key: PacketKey | None = None
        self.recv_key: PacketKey | None = None

    def receive(self, offset: int, data: bytes) -> bytes:
        """Store a CRYPTO frame; return the newly contiguous bytes for TLS."""
        if offset + len(data) > self.receiver.max_stream_data:
            raise TransportError(
                TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, "CRYPTO data beyond the buffer limit"
            )
        self.receiver.receive(offset, data, False)
        if self.receiver.fragments > MAX_CRYPTO_FRAGMENTS:  # RFC 9000 §21.7
            raise TransportError(
                TransportErrorCode.CRYPTO_BUFFER_EXCEEDED, "CRYPTO data too fragmented"
            )
        out = self.receiver.read()
        if out:
            # The window slides as TLS consumes: the limit is on buffered, not total, data.
            self.receiver.max_stream_data = self.receiver.read_offset + self.receiver.window
        return out


#: What a discarded epoch's space becomes (RFC 9001 §4.9): no keys, nothing buffered,
#: one object for every connection (nothing reaches it once its keys are gone).
DISCARDED = CryptoSpace(0)


def new_crypto_spaces(max_buffer: int) -> list[CryptoSpace]:
    """A connection's CRYPTO spaces indexed by epoch (a list: cheaper than a dict per
    connection); 0-RTT has none of its own, its data counts as 1-RTT's (RFC 9001 §4.1.1)."""
    return [CryptoSpace(max_buffer), DISCARDED, CryptoSpace(max_buffer), CryptoSpace(max_buffer)]


def send_key(c: QuicConnection, epoch: Epoch) -> PacketKey | None:
    """The key that seals ``c``'s ``epoch`` packets (1-RTT: the current key phase's), or
    None."""
    if epoch == ONE_RTT_EPOCH:
        return c.keys.send
    if epoch == ZERO_RTT_EPOCH:
        return c.zero_rtt_send_key
    return c.spaces[epoch].send_key


def recv_key(c: QuicConnection, epoch: Epoch) -> PacketKey | None:
    """The key that opens the peer's ``epoch`` packets (1-RTT: the current key phase's),
    or None: not yet, or no longer, available."""
    if epoch == ZERO_RTT_EPOCH:
        return c.zero_rtt_recv_key
    return c.keys.recv if epoch == ONE_RTT_EPOCH else c.spaces[epoch].recv_key


def install_initial_keys(c: QuicConnection, destination_cid: bytes) -> None:
    """``c``'s Initial keys from the client's first Destination CID (RFC 9001 §5.2)."""
    space = c.spaces[INITIAL_EPOCH]
    space.send_key, space.recv_key = initial_keys(c.version, destination_cid, is_client=c.is_client)
