"""Sets of integers kept as sorted, disjoint, half-open ranges.

Used for received packet numbers (ACK ranges) and for which stream/crypto
byte ranges have arrived or been acknowledged.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

__all__ = ["RangeSet"]


class RangeSet:
    """Sorted disjoint ``[start, stop)`` ranges with merge on insert."""

    __slots__ = ("_starts", "_stops")

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []

    def __len__(self) -> int:
        return len(self._starts)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(zip(self._starts, self._stops, strict=True))

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __contains__(self, value: int) -> bool:
        i = bisect.bisect_right(self._starts, value) - 1
        return i >= 0 and value < self._stops[i]

    def __repr__(self) -> str:
        return f"RangeSet({list(self)})"

    def add(self, start: int, stop: int | None = None) -> None:
        """Add ``[start, stop)`` (a single value when ``stop`` is None)."""
        if stop is None:
            stop = start + 1
        if stop <= start:
            return
        starts, stops = self._starts, self._stops
        # Fast path: appending at or just past the end (packet numbers, in-order data).
        if not starts or start > stops[-1]:
            starts.append(start)
            stops.append(stop)
            return
        if start >= starts[-1]:
            if stop > stops[-1]:
                stops[-1] = stop
            return
        lo = bisect.bisect_left(stops, start)  # first range that ends at/after start
        hi = bisect.bisect_right(starts, stop)  # ranges starting after stop are untouched
        if lo < hi:
            start = min(start, starts[lo])
            stop = max(stop, stops[hi - 1])
        starts[lo:hi] = [start]
        stops[lo:hi] = [stop]

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``: two binary searches and one splice."""
        if stop <= start:
            return
        starts, stops = self._starts, self._stops
        lo = bisect.bisect_right(stops, start)  # first range that ends after start
        hi = bisect.bisect_left(starts, stop)  # ranges from here on start at/after stop
        if lo >= hi:
            return
        new_starts: list[int] = []
        new_stops: list[int] = []
        if starts[lo] < start:
            new_starts.append(starts[lo])
            new_stops.append(start)
        if stops[hi - 1] > stop:
            new_starts.append(stop)
            new_stops.append(stops[hi - 1])
        starts[lo:hi] = new_starts
        stops[lo:hi] = new_stops

    def overlapping(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The ranges that intersect ``[start, stop)``, clipped to it."""
        starts, stops = self._starts, self._stops
        lo = bisect.bisect_right(stops, start)
        hi = bisect.bisect_left(starts, stop)
        return [(max(starts[i], start), min(stops[i], stop)) for i in range(lo, hi)]

    def shift(self) -> tuple[int, int]:
        """Remove and return the lowest range."""
        return self._starts.pop(0), self._stops.pop(0)

    @property
    def first(self) -> tuple[int, int]:
        """The lowest range, ``(start, stop)``."""
        return self._starts[0], self._stops[0]

    @property
    def last(self) -> tuple[int, int]:
        """The highest range, ``(start, stop)``."""
        return self._starts[-1], self._stops[-1]

    def descending(self) -> list[tuple[int, int]]:
        """Inclusive ``(largest, smallest)`` pairs, largest first (ACK frame order)."""
        return [
            (e - 1, s) for s, e in zip(reversed(self._starts), reversed(self._stops), strict=True)
        ]

    def trim_below(self, value: int) -> None:
        """Forget everything below ``value`` (bounded memory for old packet numbers)."""
        while self._starts and self._stops[0] <= value:
            self.shift()
        if self._starts and self._starts[0] < value:
            self._starts[0] = value
