"""Setting the slots of a frozen dataclass at a lower cost than its generated ``__init__``.

A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__`` (which
checks the call and looks the name up), some 1,300 machine instructions a field on
Python 3.11. The ``__set__`` of a slot's member descriptor bypasses the frozen
``__setattr__`` just the same, for about half. The few frozen classes built several
times per handshake write their ``__init__`` with these setters; they stay frozen
dataclasses (equality, hash, repr, ``dataclasses.replace``), and
``tests/test_slots.py`` checks that every field is set.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["slot_setters"]


def slot_setters(cls: type, names: str) -> tuple[Callable[[object, object], None], ...]:
    """The ``__set__`` of each slot of ``cls`` named in ``names`` (space-separated)."""
    return tuple(cls.__dict__[name].__set__ for name in names.split())
