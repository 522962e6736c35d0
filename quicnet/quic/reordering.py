"""Spurious loss detection: packets declared lost that were only reordered.

RFC 9002 §6.1 declares a packet lost once enough later packets (§6.1.1) or enough
time (§6.1.2) passed; on a path that reorders, some of those packets arrive after
all and their acknowledgement comes late. :class:`SpuriousLosses` remembers the
application-space packets declared lost, for a few round trips and only while there
are some (it costs an ACK nothing otherwise), so that loss recovery can raise the
threshold that condemned them and undo the congestion response when every loss of
the last congestion event turns out to have been reordering (the way RFC 9438 §4.9
describes for CUBIC, and Linux TCP's undo does).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["MAX_SUSPECTS", "SpuriousLosses"]

#: Packets declared lost that are watched for a late acknowledgement, at most.
MAX_SUSPECTS = 256


class _Lost(Protocol):
    packet_number: int
    time_sent: float


class SpuriousLosses:
    """The application space's recent losses, and whether their congestion event can be
    undone."""

    __slots__ = ("count", "event", "generation", "pending", "suspects", "undo_possible", "undone")

    def __init__(self) -> None:
        #: Packet number -> (time sent, declared by the time threshold, event generation).
        self.suspects: dict[int, tuple[float, bool, int]] = {}
        #: Losses proved spurious over the connection's life.
        self.count = 0
        #: Congestion events undone because all their losses proved spurious.
        self.undone = 0
        #: The congestion event being watched, and how many of its losses are unproven.
        self.generation = 0
        #: The controller's ``congestion_events`` once it reduced for that event.
        self.event = 0
        self.pending = 0
        self.undo_possible = False

    def on_lost(
        self,
        space_id: int,
        packets: Sequence[_Lost],
        largest_acked: int,
        packet_threshold: int,
        new_event: bool,
        events: int,
    ) -> None:
        """In-flight ``packets`` of ``space_id`` were declared lost; ``new_event``: the
        controller reduced its window for them (a new recovery period began), and its
        ``congestion_events`` is now ``events``."""
        if new_event:
            self.event = events
            self.generation += 1
            self.pending = 0
            self.undo_possible = True
        if not packets:
            return
        if space_id != 2:
            self.undo_possible = False  # Initial and Handshake losses are not watched
            return
        suspects = self.suspects
        generation = self.generation
        for p in packets:
            if len(suspects) >= MAX_SUSPECTS:
                self.undo_possible = False  # one of them could not be watched
                return
            pn = p.packet_number
            suspects[pn] = (p.time_sent, largest_acked - pn < packet_threshold, generation)
            self.pending += 1

    def take_acknowledged(
        self, ranges: Sequence[tuple[int, int]], now: float, horizon: float
    ) -> list[tuple[int, float, bool]]:
        """The suspects an ACK frame's ``ranges`` (descending ``(largest, smallest)``)
        acknowledge, as ``(packet number, time sent, by time)``; they and the ones sent
        more than ``horizon`` seconds ago (really lost) are forgotten."""
        suspects = self.suspects
        found: list[tuple[int, float, bool]] = []
        gone: list[int] = []
        for pn, (time_sent, by_time, generation) in suspects.items():
            acked = False
            for high, low in ranges:
                if pn > high:
                    break  # in the gap above this range: not acknowledged
                if pn >= low:
                    acked = True
                    break
            if acked:
                found.append((pn, time_sent, by_time))
                gone.append(pn)
                if generation == self.generation:
                    self.pending -= 1
            elif time_sent + horizon < now:
                gone.append(pn)
                if generation == self.generation:
                    self.undo_possible = False  # a real loss in the event
        for pn in gone:
            del suspects[pn]
        self.count += len(found)
        return found

    def undo_due(self, events: int) -> bool:
        """True once, when every loss of the watched congestion event proved spurious and
        the controller (at ``events`` congestion events) has not reduced since, for
        another loss or an ECN-CE mark."""
        if events != self.event:
            self.undo_possible = False
        if self.undo_possible and self.pending == 0:
            self.undo_possible = False
            self.undone += 1
            return True
        return False
