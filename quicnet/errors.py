"""The root of quicnet's exception tree.

Every error the library raises on purpose derives from :class:`QuicnetError`,
so ``except QuicnetError`` catches all of them and nothing else.
"""

from __future__ import annotations

__all__ = ["QuicnetError"]


class QuicnetError(Exception):
    """Base class of every error quicnet raises on purpose."""
