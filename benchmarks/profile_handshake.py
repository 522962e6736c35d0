"""Profile a QUIC handshake: a client and a server endpoint in memory.

    python benchmarks/profile_handshake.py [--count 200] [--calls] [--opcodes] [--profile]

One ``QuicEndpoint`` (the dev identity: P-256, X25519) and a fresh client
``QuicConnection`` per handshake; datagrams go across in memory until the
client is confirmed. Prints the median wall time of ``--count`` handshakes
(after 20 to warm up); ``--calls`` the Python calls per handshake (cProfile),
``--opcodes`` the Python opcodes per handshake (a ``sys.settrace`` opcode
count: deterministic, where the time is at the mercy of the machine),
``--profile`` the functions that take the most time. No sockets, no clock in
quicnet: the CPU of quicnet and pyca/cryptography only.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from types import FrameType
from typing import Any

from quicnet.crypto import dev_identity
from quicnet.quic import QuicConfiguration, QuicConnection
from quicnet.quic.endpoint import QuicEndpoint

_IDENTITY = dev_identity()
_SERVER = QuicConfiguration(
    is_client=False,
    certificate_chain=_IDENTITY.certificate_chain,
    private_key=_IDENTITY.private_key,
)
_CLIENT = QuicConfiguration(server_name="localhost", trust_roots=[_IDENTITY.trust_root])
_ENDPOINT = QuicEndpoint(_SERVER)


def handshake(i: int) -> None:
    """One handshake, the client at its own address; ``i`` also sets the clock."""
    now = 1.0 + i
    client = QuicConnection(_CLIENT)
    client.connect(("server", 1), now)
    for _ in range(6):
        for data, _ in client.datagrams_to_send(now):
            _ENDPOINT.receive_datagram(data, ("client", i), now)
        for data, _ in _ENDPOINT.datagrams_to_send(now):
            client.receive_datagram(data, ("server", 1), now)
        if client.handshake_confirmed:
            return
    raise RuntimeError(f"the handshake did not complete: {client.termination}")


def opcodes(count: int, first: int) -> float:
    """Python opcodes per handshake, over ``count`` handshakes."""
    counted = [0]

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counted[0] += 1
        return tracer

    sys.settrace(tracer)
    try:
        for i in range(count):
            handshake(first + i)
    finally:
        sys.settrace(None)
    return counted[0] / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--calls", action="store_true")
    parser.add_argument("--opcodes", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for i in range(20):
        handshake(i)
    times = []
    for i in range(args.count):
        start = time.perf_counter()
        handshake(100 + i)
        times.append(time.perf_counter() - start)
    print(f"handshake client+server median {statistics.median(times) * 1e3:.2f} ms")
    first = 100 + args.count
    if args.calls or args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for i in range(300):
            handshake(first + i)
        profile.disable()
        stats = pstats.Stats(profile)
        print(f"Python calls per handshake: {stats.total_calls / 300:.0f}")  # type: ignore[attr-defined]
        if args.profile:
            stats.sort_stats("tottime").print_stats(25)
        first += 300
    if args.opcodes:
        print(f"Python opcodes per handshake: {opcodes(50, first):.0f}")


if __name__ == "__main__":
    main()
