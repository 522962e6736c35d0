"""What reading ECN marks costs per datagram: recvfrom against recvmsg + the cmsg parse.

    python benchmarks/ecn_recv_cost.py [--count N] [--rounds R]

Sends ``N`` 64-byte datagrams over loopback, then drains them with the tick
driver's two ways (recvfrom, as without ECN, and ``quicnet.io.udp.read_socket_ecn``:
recvmsg with IP_RECVTOS on); prints the best of ``R``
rounds in microseconds per datagram. Linux only (elsewhere nothing reads marks).
Numbers, never assertions.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable, Sequence

from quicnet.io.udp import ECN_PLATFORM, enable_ecn, open_udp_socket, read_socket_ecn


def _read_plain(sock: socket.socket) -> list[tuple[bytes, object]]:
    """The tick driver's reader without ECN: recvfrom until the socket is empty."""
    out = []
    for _ in range(256):
        try:
            out.append(sock.recvfrom(65536))
        except BlockingIOError:
            break
    return out


def _per_datagram(reader: Callable[[socket.socket], Sequence[object]], ecn: bool, n: int) -> float:
    rx = open_udp_socket("127.0.0.1", 0)
    tx = open_udp_socket("127.0.0.1", 0)
    try:
        if ecn:
            assert enable_ecn(rx)
            tx.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 2)
        address = rx.getsockname()
        payload = b"x" * 64
        for _ in range(n):
            tx.sendto(payload, address)
        got = 0
        start = time.perf_counter()
        while got < n:
            got += len(reader(rx))
        return (time.perf_counter() - start) / n * 1e6
    finally:
        rx.close()
        tx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if not ECN_PLATFORM:
        print("no ECN on this platform: nothing to measure")
        return
    plain = min(_per_datagram(_read_plain, False, args.count) for _ in range(args.rounds))
    marked = min(_per_datagram(read_socket_ecn, True, args.count) for _ in range(args.rounds))
    print(f"recvfrom:            {plain:.2f} us/datagram")
    print(f"recvmsg + cmsg (ECN): {marked:.2f} us/datagram (+{marked - plain:.2f})")


if __name__ == "__main__":
    main()
