"""Acknowledgment frequency (draft-ietf-quic-ack-frequency-13): when this endpoint
acknowledges, and what it asks of its peer.

An endpoint that sends the ``min_ack_delay`` transport parameter (§3) lets its peer
send ACK_FREQUENCY (§4) and IMMEDIATE_ACK (§5) frames. Until one arrives it
acknowledges as RFC 9000 §13.2.1 says: every second ack-eliciting packet, within
max_ack_delay, and at once when a packet arrives out of order or marked CE.
ACK_FREQUENCY changes the threshold, the delay and the reordering tolerance.

A data sender with a :class:`AckFrequencyRequest` configured sends one
ACK_FREQUENCY frame once the handshake is confirmed, if the peer supports it: a
game server whose clients send an input every tick asks them to wait a little
longer than a tick, and their acknowledgments ride on the inputs instead of
costing a datagram of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from quicnet.quic.buffer import encode_varint
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode

if TYPE_CHECKING:
    from quicnet.quic.recovery import PacketSpace, Recovery

__all__ = [
    "ACK_FREQUENCY",
    "IMMEDIATE_ACK",
    "MAX_REQUESTED_ACK_DELAY_US",
    "AckFrequencyRequest",
    "AckPolicy",
]

ACK_FREQUENCY = 0xAF  # §4 (two bytes as a varint: 0x40 0xaf)
IMMEDIATE_ACK = 0x1F  # §5
#: §4: a Requested Max Ack Delay of 2^14 ms or more is invalid (RFC 9000 §18.2's bound).
MAX_REQUESTED_ACK_DELAY_US = (1 << 14) * 1000


@dataclass(frozen=True, slots=True)
class AckFrequencyRequest:
    """What a data sender asks its peer (draft-ietf-quic-ack-frequency §4), sent once the
    handshake is confirmed and only to a peer that sent ``min_ack_delay``.

    ``max_ack_delay`` is in seconds; it is raised to the peer's ``min_ack_delay`` when
    below it. ``ack_eliciting_threshold`` ack-eliciting packets may arrive before the
    peer must acknowledge (1: every second one, RFC 9000's default); a
    ``reordering_threshold`` of 1 asks for an immediate ACK on any gap, 0 for none.
    """

    max_ack_delay: float
    ack_eliciting_threshold: int = 1
    reordering_threshold: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.max_ack_delay * 1e6 < MAX_REQUESTED_ACK_DELAY_US:
            raise QuicUsageError(
                f"AckFrequencyRequest.max_ack_delay must be above 0 and below 16.384 s "
                f"(RFC 9000 §18.2), not {self.max_ack_delay}"
            )
        for name in ("ack_eliciting_threshold", "reordering_threshold"):
            value = getattr(self, name)
            if not 0 <= value < 1 << 62:
                raise QuicUsageError(f"AckFrequencyRequest.{name} must be a varint, not {value}")


class AckPolicy:
    """When this endpoint sends an ACK for 1-RTT packets, and the one ACK_FREQUENCY frame
    it sends its peer (see the module docstring).

    The receive path reads ``ack_eliciting_threshold`` and ``max_ack_delay`` for each
    ack-eliciting packet and asks :meth:`ack_now` only when the packet arrived out of
    order, marked CE, or with a reordering threshold above 1 in force.
    """

    __slots__ = (
        "ack_eliciting_threshold",
        "largest_sequence",
        "last_ce",
        "max_ack_delay",
        "min_ack_delay_us",
        "reordering_threshold",
        "request",
    )

    def __init__(self, max_ack_delay: float, min_ack_delay_us: int | None) -> None:
        #: RFC 9000 §13.2.1's defaults until the peer's ACK_FREQUENCY changes them.
        self.max_ack_delay = max_ack_delay
        self.ack_eliciting_threshold = 1
        self.reordering_threshold = 1
        #: The min_ack_delay we advertise (µs); None: we take no ACK_FREQUENCY frames.
        self.min_ack_delay_us = min_ack_delay_us
        self.largest_sequence = -1  # of the ACK_FREQUENCY frames applied (§4)
        self.last_ce = -1  # the packet number of the last CE-marked packet (§6.4)
        #: The ACK_FREQUENCY frame we sent: (requested max ack delay in seconds, the
        #: frame's bytes), or None before it is sent.
        self.request: tuple[float, bytes] | None = None

    # Receiving: how we acknowledge -----------------------------------------------------
    def ack_now(self, space: PacketSpace, packet_number: int, previous: int, ce: bool) -> bool:
        """An ack-eliciting packet ``packet_number`` arrived after the largest ``previous``
        (its ECN mark CE when ``ce``): acknowledge at once (§6.2, §6.4; RFC 9000 §13.2.1)?"""
        threshold = self.reordering_threshold
        now_due = False
        if ce:
            # §6.4: above a threshold of 1 only the step from not-CE to CE is urgent.
            now_due = self.ack_eliciting_threshold <= 1 or self.last_ce != previous
            self.last_ce = packet_number
        if threshold == 0 or now_due:
            return now_due
        if threshold == 1:  # RFC 9000 §13.2.1: late, or beyond a gap
            return packet_number != previous + 1
        # §6.2: acknowledge when the smallest packet still missing above the Largest
        # Reported Missing (what our last ACK lets the sender declare lost) lies
        # ``threshold`` or more below the largest received.
        missing = max(space.largest_ack_sent - threshold + 1, space.received_floor)
        for start, stop in space.received:  # ascending [start, stop) ranges
            if missing < start:
                break  # ``missing`` was never received
            if missing < stop:
                missing = stop
        return space.largest_received - missing >= threshold

    def on_ack_frequency(
        self,
        sequence_number: int,
        ack_eliciting_threshold: int,
        requested_max_ack_delay_us: int,
        reordering_threshold: int,
    ) -> None:
        """Apply the peer's ACK_FREQUENCY frame (§4); PROTOCOL_VIOLATION if we never
        offered the extension or the requested delay is invalid."""
        if self.min_ack_delay_us is None:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "ACK_FREQUENCY without our min_ack_delay",
                ACK_FREQUENCY,
            )
        if not self.min_ack_delay_us <= requested_max_ack_delay_us < MAX_REQUESTED_ACK_DELAY_US:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "ACK_FREQUENCY requested max ack delay below min_ack_delay or 2^14 ms or more",
                ACK_FREQUENCY,
            )
        if sequence_number <= self.largest_sequence:
            return  # §4: an obsolete or repeated frame is ignored
        self.largest_sequence = sequence_number
        self.ack_eliciting_threshold = ack_eliciting_threshold
        self.max_ack_delay = requested_max_ack_delay_us / 1e6
        self.reordering_threshold = reordering_threshold

    def on_immediate_ack(self) -> None:
        """IMMEDIATE_ACK (§5) from a peer we never offered the extension to is a
        PROTOCOL_VIOLATION; otherwise the caller queues the ACK."""
        if self.min_ack_delay_us is None:
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                "IMMEDIATE_ACK without our min_ack_delay",
                IMMEDIATE_ACK,
            )

    # Sending: what we ask of the peer ---------------------------------------------------
    def make_request(
        self, request: AckFrequencyRequest, peer_min_ack_delay_us: int, recovery: Recovery
    ) -> None:
        """Encode the ACK_FREQUENCY frame (sequence 0) for ``request``; until it is
        acknowledged the PTO counts the larger of the two delays (§7)."""
        delay_us = max(round(request.max_ack_delay * 1e6), peer_min_ack_delay_us)
        delay_us = min(delay_us, MAX_REQUESTED_ACK_DELAY_US - 1)
        frame = (
            b"\x40\xaf\x00"  # type 0xaf as a two-byte varint, sequence number 0
            + encode_varint(request.ack_eliciting_threshold)
            + encode_varint(delay_us)
            + encode_varint(request.reordering_threshold)
        )
        self.request = (delay_us / 1e6, frame)
        recovery.max_ack_delay = max(recovery.max_ack_delay, delay_us / 1e6)

    def on_request_acked(self, recovery: Recovery) -> None:
        """The peer has our ACK_FREQUENCY: its max_ack_delay is what we asked (§7)."""
        if self.request is not None:
            recovery.max_ack_delay = self.request[0]
