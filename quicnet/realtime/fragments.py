"""Unreliable messages larger than one datagram: cut on the way out, joined on the way in.

The receiver's buffers are bounded three ways (docs/protocol.md, Messages in
datagrams): at most ``max_partial`` messages in reassembly, at most
``max_buffered`` bytes held, and a message whose fragments do not all arrive
within ``timeout`` seconds is dropped whole. Beyond a bound the oldest partial
message goes: a flood of fragments costs its sender its own messages, never
more memory.
"""

from __future__ import annotations

from quicnet.realtime.wire import RealtimeProtocolError, encode_datagram_header

__all__ = ["MIN_FRAGMENT", "Reassembler", "fragment", "max_fragments"]

#: Every fragment but a message's last carries at least this many bytes of payload,
#: so the number of fragments a message may have follows from its size limit.
MIN_FRAGMENT = 512


def max_fragments(max_message_size: int) -> int:
    """The most fragments a message within ``max_message_size`` bytes may come in."""
    return max(2, -(-max_message_size // MIN_FRAGMENT))


def fragment(
    channel: int, sequence: int | None, message_id: int, data: bytes, room: int
) -> list[bytes]:
    """``data`` as datagrams of at most ``room`` bytes, headers included (2 or more)."""
    # Headers grow with the varints of index and count; size for the largest.
    count = 2
    while True:
        header = encode_datagram_header(channel, sequence, (message_id, count - 1, count))
        chunk = room - len(header)
        if chunk < MIN_FRAGMENT:
            raise ValueError(f"{room} bytes per datagram leave no room for a fragment")
        needed = -(-len(data) // chunk)
        if needed <= count:
            break
        count = needed
    out = []
    for index in range(count):
        header = encode_datagram_header(channel, sequence, (message_id, index, count))
        out.append(header + data[index * chunk : (index + 1) * chunk])
    return out


class _Partial:
    __slots__ = ("channel", "count", "first_seen", "pieces", "sequence", "size")

    def __init__(self, channel: int, count: int, sequence: int | None, now: float) -> None:
        self.channel = channel
        self.count = count
        self.sequence = sequence
        self.first_seen = now
        self.pieces: dict[int, bytes] = {}
        self.size = 0


class Reassembler:
    """Joins one peer's fragmented messages, within bounds."""

    __slots__ = (
        "_max_count",
        "_partials",
        "buffered",
        "dropped",
        "max_buffered",
        "max_message",
        "max_partial",
        "timeout",
    )

    def __init__(
        self,
        max_message: int,
        *,
        max_partial: int = 16,
        max_buffered: int | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.max_message = max_message
        self._max_count = max_fragments(max_message)
        self.max_partial = max_partial
        self.max_buffered = max_buffered if max_buffered is not None else 4 * max_message
        self.timeout = timeout
        self._partials: dict[int, _Partial] = {}  # by message id, oldest first
        self.buffered = 0
        #: Messages dropped whole: a fragment late, missing, or pushed out by a bound.
        self.dropped = 0

    def add(
        self,
        channel: int,
        sequence: int | None,
        fragment_id: tuple[int, int, int],
        payload: bytes,
        now: float,
    ) -> bytes | None:
        """Take one fragment; return the whole message once its last fragment is in."""
        message_id, index, count = fragment_id
        if count > self._max_count:
            raise RealtimeProtocolError(
                f"a message in {count} fragments; at most {self._max_count}"
            )
        if index < count - 1 and len(payload) < MIN_FRAGMENT:
            raise RealtimeProtocolError(f"fragment {index} of {count} carries {len(payload)} bytes")
        self._expire(now)
        partial = self._partials.get(message_id)
        if partial is None:
            partial = _Partial(channel, count, sequence, now)
            self._partials[message_id] = partial
        elif partial.count != count or partial.channel != channel:
            raise RealtimeProtocolError(f"fragments of message {message_id} disagree")
        if index in partial.pieces:
            return None  # a duplicate: QUIC never delivers one, but a peer may send one
        partial.pieces[index] = payload
        partial.size += len(payload)
        self.buffered += len(payload)
        if partial.size > self.max_message:
            raise RealtimeProtocolError(f"a fragmented message over {self.max_message} bytes")
        if len(partial.pieces) == count:
            del self._partials[message_id]
            self.buffered -= partial.size
            pieces = partial.pieces
            return b"".join(pieces[i] for i in range(count))
        while len(self._partials) > self.max_partial or self.buffered > self.max_buffered:
            self._drop_oldest()
        return None

    def _expire(self, now: float) -> None:
        partials = self._partials
        while partials:
            oldest = next(iter(partials.values()))
            if now - oldest.first_seen < self.timeout:
                return
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        message_id = next(iter(self._partials))
        partial = self._partials.pop(message_id)
        self.buffered -= partial.size
        self.dropped += 1

    def drop_older(self, channel: int, sequence: int) -> None:
        """Forget a channel's partial messages numbered ``sequence`` or below (SEQUENCED:
        they could never be delivered now)."""
        for message_id, partial in list(self._partials.items()):
            old = partial.sequence is not None and partial.sequence <= sequence
            if old and partial.channel == channel:
                del self._partials[message_id]
                self.buffered -= partial.size
                self.dropped += 1

    def __len__(self) -> int:
        return len(self._partials)
