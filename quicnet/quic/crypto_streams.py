"""Per-epoch CRYPTO streams and packet keys (RFC 9001 §4)."""

from __future__ import annotations

from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.protection import PacketKey
from quicnet.quic.streams import ReceiveHalf, SendHalf

__all__ = ["DISCARDED", "CryptoSpace", "new_crypto_spaces"]

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
