"""Bounded memos: results of a pure function kept by its exact inputs.

Used where the same inputs come back on every connection: a configuration's values,
or the bytes a peer sends in each handshake (its certificate chain, ALPN list, server
name). A memo keeps only what a recomputation would give (parses and encodings of
exact bytes, checks that passed on exact bytes), never per-connection state or keys,
and it empties itself rather than grow past its limit: a stream of new inputs, an
attacker's, costs recomputation, never memory.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["BoundedMemo"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class BoundedMemo(dict[_K, _V]):
    """A dict of at most ``limit`` entries: :meth:`remember` empties it when full.

    Look-ups are a dict's own (``get``, ``in``), at a dict's speed.
    """

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        #: The most entries kept; storing one more first forgets them all.
        self.limit = limit

    def remember(self, key: _K, value: _V) -> _V:
        """Keep ``value`` for ``key`` (emptying the memo first when it is full); return
        ``value``."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
