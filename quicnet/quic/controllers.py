"""The congestion controllers a connection can be configured with, by name."""

from __future__ import annotations

from collections.abc import Callable

from quicnet.quic.bbr import Bbr
from quicnet.quic.congestion import CongestionController, NewReno
from quicnet.quic.cubic import Cubic

__all__ = ["CONTROLLERS", "new_controller"]

#: ``QuicConfiguration.congestion_control`` names and what they build (from the
#: maximum datagram size). NewReno (RFC 9002 §7) is the default.
CONTROLLERS: dict[str, Callable[[int], CongestionController]] = {
    "newreno": NewReno,
    "cubic": Cubic,
    "bbr": Bbr,
}


def new_controller(name: str, max_datagram_size: int) -> CongestionController:
    """A fresh controller of the kind ``name`` names (one of :data:`CONTROLLERS`)."""
    return CONTROLLERS[name](max_datagram_size)
