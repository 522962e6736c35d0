"""The real-time tests reuse the QUIC tests' network simulator (tests/quic/simnet.py)."""

from __future__ import annotations

import sys
from pathlib import Path

_QUIC_TESTS = str(Path(__file__).resolve().parent.parent / "quic")
if _QUIC_TESTS not in sys.path:
    sys.path.append(_QUIC_TESTS)
