"""Sets of integers kept as sorted, disjoint, half-open ranges.

Used for received packet numbers (ACK ranges) and for which stream/crypto
byte ranges have arrived or been acknowledged.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

__all__ = ["RangeSet"]


class RangeSet:
    """Sorted disjoint ``[start, stop)`` ranges with merge on insert.

    The ranges live in one flat list of boundaries, ``[start0, stop0, start1, stop1,
    ...]``: ranges never touch (adjacent ones merge), so the list is strictly
    increasing and one bisection says whether a value is inside a range (an odd
    insertion point) or between them (an even one). One list, not two: every
    connection holds several of these.
    """

    __slots__ = ("bounds",)

    def __init__(self) -> None:
        #: The flat boundary list, changed in place only (never rebound): the per-packet
        #: paths read it without a call, its truthiness for "any range?" and
        #: ``bounds[0]``, ``bounds[1]`` for the lowest range. Read-only outside.
        self.bounds: list[int] = []

    def __len__(self) -> int:
        return len(self.bounds) >> 1

    def __iter__(self) -> Iterator[tuple[int, int]]:
        b = self.bounds
        return iter(zip(b[0::2], b[1::2], strict=True))

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def __contains__(self, value: int) -> bool:
        return bool(bisect.bisect_right(self.bounds, value) & 1)

    def __repr__(self) -> str:
        return f"RangeSet({list(self)})"

    def add(self, start: int, stop: int | None = None) -> None:
        """Add ``[start, stop)`` (a single value when ``stop`` is None)."""
        if stop is None:
            stop = start + 1
        if stop <= start:
            return
        b = self.bounds
        # Fast path: appending at or just past the end (packet numbers, in-order data).
        if not b or start > b[-1]:
            b.append(start)
            b.append(stop)
            return
        if start >= b[-2]:
            if stop > b[-1]:
                b[-1] = stop
            return
        lo = bisect.bisect_left(b, start)  # boundaries below start stay
        if lo & 1:  # start is inside a range, or at its stop: that range merges
            lo -= 1
            start = b[lo]
        hi = bisect.bisect_right(b, stop)  # boundaries above stop stay
        if hi & 1:  # stop is inside a range, or at its start: that range merges
            stop = b[hi]
            hi += 1
        b[lo:hi] = (start, stop)

    def subtract(self, start: int, stop: int) -> None:
        """Remove ``[start, stop)``: two binary searches and one splice."""
        if stop <= start:
            return
        b = self.bounds
        lo = bisect.bisect_right(b, start)
        hi = bisect.bisect_left(b, stop)
        if lo == hi and not lo & 1:
            return  # no boundary inside [start, stop) and start in a gap: nothing to cut
        keep: list[int] = []
        if lo & 1:  # start is inside the range that begins at b[lo - 1]: cut it there
            if b[lo - 1] == start:
                lo -= 1
            else:
                keep.append(start)
        if hi & 1:  # stop is inside the range that ends at b[hi]: it resumes at stop
            if b[hi] == stop:
                hi += 1
            else:
                keep.append(stop)
        b[lo:hi] = keep

    def overlapping(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The ranges that intersect ``[start, stop)``, clipped to it."""
        b = self.bounds
        lo = bisect.bisect_right(b, start)
        lo -= lo & 1
        hi = bisect.bisect_left(b, stop)
        hi += hi & 1
        return [(max(b[i], start), min(b[i + 1], stop)) for i in range(lo, hi, 2)]

    def shift(self) -> tuple[int, int]:
        """Remove and return the lowest range."""
        b = self.bounds
        first = b[0], b[1]
        del b[:2]
        return first

    @property
    def first(self) -> tuple[int, int]:
        """The lowest range, ``(start, stop)``."""
        return self.bounds[0], self.bounds[1]

    def only(self) -> tuple[int, int] | None:
        """The single range ``(start, stop)`` when there is exactly one, else None."""
        b = self.bounds
        return (b[0], b[1]) if len(b) == 2 else None

    @property
    def last(self) -> tuple[int, int]:
        """The highest range, ``(start, stop)``."""
        return self.bounds[-2], self.bounds[-1]

    def descending(self) -> list[tuple[int, int]]:
        """Inclusive ``(largest, smallest)`` pairs, largest first (ACK frame order)."""
        b = self.bounds
        return [(b[i + 1] - 1, b[i]) for i in range(len(b) - 2, -1, -2)]

    def trim_below(self, value: int) -> None:
        """Forget everything below ``value`` (bounded memory for old packet numbers)."""
        b = self.bounds
        i = bisect.bisect_right(b, value)
        if i & 1:  # value is inside a range: it now starts there
            del b[: i - 1]
            b[0] = value
        else:
            del b[:i]
