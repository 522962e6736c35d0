"""A UDP socket wrapper that counts the datagrams read from it (tests of which socket a
peer's packets reached, e.g. a server's preferred address)."""

from __future__ import annotations

import socket
from typing import Any


class CountingSocket:
    """Wraps ``sock``; ``received`` counts the datagrams the drivers read from it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0

    def recvfrom(self, size: int) -> tuple[bytes, Any]:
        data, address = self.sock.recvfrom(size)
        self.received += 1
        return data, address

    def recvmsg(self, size: int, ancillary: int) -> tuple[bytes, Any, int, Any]:
        got = self.sock.recvmsg(size, ancillary)  # how the drivers read when ECN is on
        self.received += 1
        return got

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)
