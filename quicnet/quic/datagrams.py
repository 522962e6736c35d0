"""Unreliable datagrams (RFC 9221): the DATAGRAM payloads a connection sends and receives.

The application queues payloads with
:meth:`~quicnet.quic.connection.QuicConnection.send_datagram`; each gets an id
that its :class:`~quicnet.quic.events.DatagramAcknowledged` or
:class:`~quicnet.quic.events.DatagramLost` event names later. The sender takes
them from the front of the connection's ``datagram_queue`` (the list this
channel appends to). Received payloads become
:class:`~quicnet.quic.events.DatagramReceived` events, at most
``max_received_datagrams`` of them waiting at once: datagrams are unreliable,
so beyond that bound new ones are dropped (§5) rather than held.
"""

from __future__ import annotations

from quicnet.quic.errors import QuicUsageError
from quicnet.quic.events import DatagramReceived, QuicEvent
from quicnet.quic.transport_params import TransportParameters

__all__ = ["DatagramChannel", "max_payload"]


def max_payload(params: TransportParameters | None) -> int | None:
    """The largest DATAGRAM payload a peer with ``params`` accepts (None: not negotiated)."""
    if params is None or params.max_datagram_frame_size is None:
        return None
    # A DATAGRAM frame must fit one packet: leave room for headers, tag and frame overhead.
    limit = params.max_datagram_frame_size - 3
    return limit if limit < 1200 - 60 else 1200 - 60


class DatagramChannel:
    """The ids of queued DATAGRAMs and the bound on received ones waiting for the application."""

    __slots__ = ("_limit_of", "dropped", "events", "max_received", "next_id", "queue", "queued")

    def __init__(
        self, queue: list[tuple[int, bytes]], events: list[QuicEvent], max_received: int
    ) -> None:
        #: Payloads to send with their ids, oldest first (the connection's ``datagram_queue``).
        self.queue = queue
        self.events = events
        self.max_received = max_received
        self.next_id = 0
        #: Received payloads waiting in the event queue, and how many were dropped (§5).
        self.queued = 0
        self.dropped = 0
        #: The peer's parameters last asked about and their payload limit (max_payload,
        #: a pure function of the immutable parameters: computed once per set).
        self._limit_of: tuple[TransportParameters | None, int | None] = (None, None)

    def payload_limit(self, params: TransportParameters | None) -> int | None:
        """:func:`max_payload` of ``params`` (kept for the last parameters asked about)."""
        cached, limit = self._limit_of
        if params is not cached:
            limit = max_payload(params)
            self._limit_of = (params, limit)
        return limit

    def send(self, data: bytes, params: TransportParameters | None) -> int:
        """Queue ``data`` (at most :meth:`payload_limit` bytes for the peer's ``params``;
        None: the peer takes no DATAGRAM frames); returns its id. QuicUsageError when it
        cannot go."""
        cached, limit = self._limit_of  # (payload_limit, in place: once per DATAGRAM)
        if params is not cached:
            limit = max_payload(params)
            self._limit_of = (params, limit)
        if limit is None:
            raise QuicUsageError("the peer does not accept DATAGRAM frames")
        if len(data) > limit:
            raise QuicUsageError(f"datagram of {len(data)} bytes exceeds the limit of {limit}")
        datagram_id = self.next_id
        self.next_id += 1
        self.queue.append((datagram_id, bytes(data)))
        return datagram_id

    def on_received(self, data: bytes) -> None:
        """A DATAGRAM frame's payload, for the application unless too many wait (§5)."""
        if self.queued < self.max_received:
            self.queued += 1
            self.events.append(DatagramReceived(data))
        else:  # the application is not reading: drop
            self.dropped += 1
