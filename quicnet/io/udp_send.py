"""Sending a core's datagrams on a UDP socket: GSO batches and ECN marking.

:class:`DatagramSender` is what both drivers (:mod:`quicnet.io.udp`,
:mod:`quicnet.io.aio`) send with: runs of equal-sized datagrams go out in one
``sendmsg`` with UDP generic segmentation offload where Linux offers it, and
the socket's IP_TOS / IPV6_TCLASS follows the connection's ECN marking
(RFC 9000 §13.4). Receiving (:func:`~quicnet.io.udp.read_socket_ecn`) stays in
:mod:`quicnet.io.udp`. Every name here is importable from there too.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import sys
from collections.abc import Sequence

from quicnet.quic.events import Address

__all__ = [
    "ECN_PLATFORM",
    "GSO_MAX_BYTES",
    "GSO_MAX_SEGMENTS",
    "UDP_SEGMENT",
    "DatagramSender",
    "gso_batches",
]

# ECN (RFC 9000 §13.4; RFC 3168 §5): Linux hands each datagram's TOS byte (IPv4) or
# traffic class (IPv6) to recvmsg as a control message once IP_RECVTOS /
# IPV6_RECVTCLASS is on, and marks what the socket sends with IP_TOS / IPV6_TCLASS.
# Elsewhere nothing is read or marked: the core's validation fails and it stops marking.

ECN_PLATFORM = (
    sys.platform.startswith("linux")
    and hasattr(socket.socket, "recvmsg")
    and hasattr(socket, "IP_RECVTOS")
    and hasattr(socket, "IPV6_RECVTCLASS")
)


# UDP generic segmentation offload (Linux 4.18+): one sendmsg carries a buffer
# that the kernel cuts into datagrams of the size in the UDP_SEGMENT control
# message (the last one may be shorter). Python 3.11's socket module lacks the
# constant; 103 is its value in <linux/udp.h>.
UDP_SEGMENT: int = getattr(socket, "UDP_SEGMENT", 103)
GSO_MAX_SEGMENTS = 64  # the kernel's UDP_MAX_SEGMENTS (newer kernels take 128); more is EINVAL
GSO_MAX_BYTES = 65507  # the largest UDP payload over IPv4 (65527 over IPv6); more is EMSGSIZE
# A kernel (or path) that cannot segment for this socket answers with one of these.
_GSO_REFUSED = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})
_GSO_PLATFORM = sys.platform.startswith("linux") and hasattr(socket.socket, "sendmsg")


def gso_batches(
    datagrams: Sequence[tuple[bytes, Address]],
    max_segments: int = GSO_MAX_SEGMENTS,
    max_bytes: int = GSO_MAX_BYTES,
) -> list[tuple[list[bytes], Address]]:
    """Split ``datagrams`` into runs that one GSO send can carry, in order.

    A run goes to one address; its datagrams all have the size of the first
    but the last, which may be shorter (and then ends the run); it holds at
    most ``max_segments`` datagrams and ``max_bytes`` bytes. Empty datagrams
    travel alone (a zero-length segment cannot be expressed). The runs,
    concatenated, are ``datagrams``.
    """
    batches: list[tuple[list[bytes], Address]] = []
    segments: list[bytes] = []
    current: Address | None = None
    size = 0  # the open run's segment size; 0 once it cannot take more
    total = 0
    for data, address in datagrams:
        n = len(data)
        if (
            0 < n <= size
            and address == current
            and len(segments) < max_segments
            and total + n <= max_bytes
        ):
            segments.append(data)
            total += n
            if n < size:
                size = 0  # a shorter datagram is the last of its run
        else:
            segments = [data]
            current = address
            size = total = n
            batches.append((segments, address))
    return batches


class DatagramSender:
    """Sends a core's datagrams on one UDP socket, with GSO where Linux offers it.

    :meth:`send` groups the datagrams with :func:`gso_batches` and sends each
    run of two or more with one ``sendmsg`` carrying ``UDP_SEGMENT``, and a
    lone datagram with ``sendto``. The first send the kernel refuses (EIO,
    EINVAL, ENOPROTOOPT, EOPNOTSUPP) turns GSO off for this socket and goes
    out again one datagram at a time (a run too large for the path, EMSGSIZE,
    goes out one by one too, GSO staying on); a socket that does not know the
    option, or any platform but Linux, never tries. Nor does ``gso=False``.

    Counters, for tests and metrics: ``datagrams_sent`` (datagrams the kernel
    took), ``syscalls`` (send system calls made, refused ones included) and
    ``gso_sends`` (sendmsg calls that carried a run of datagrams). ``gso``
    tells whether GSO is still in use.

    With ``ecn`` (Linux), ``send(datagrams, marked)`` sends the first
    ``marked`` datagrams ECT(0) and the rest Not-ECT (RFC 9000 §13.4): the
    socket's IP_TOS / IPV6_TCLASS changes only when the marking does, so a
    connection that keeps its marking costs no system call for it.
    """

    def __init__(self, sock: socket.socket, *, gso: bool = True, ecn: bool = False) -> None:
        self.sock = sock
        self.gso = gso and _GSO_PLATFORM and _knows_udp_segment(sock)
        self.ecn = ecn and ECN_PLATFORM
        self._mark = 0  # the codepoint the socket sends with now
        self.datagrams_sent = 0
        self.syscalls = 0
        self.gso_sends = 0

    def send(self, datagrams: Sequence[tuple[bytes, Address]], marked: int = 0) -> None:
        """Send ``datagrams`` in order, the first ``marked`` ECT(0) when ECN is on; stop
        when the kernel buffer is full.

        A full buffer (EAGAIN) drops the rest, an other error the datagram (or
        run) it came from: recovery treats both as loss.
        """
        count = len(datagrams)
        if not count:
            return
        if self.ecn:
            if 0 < marked < count:  # a run marked, then the rest not
                self._marking(2)
                if self._send(datagrams[:marked]):
                    self._marking(0)
                    self._send(datagrams[marked:])
                return
            codepoint = 2 if marked else 0
            if codepoint != self._mark:
                self._marking(codepoint)
        if count == 1:  # the common case (an echo, a game tick): one sendto, no batching
            data, address = datagrams[0]
            self.syscalls += 1  # (_sendto, in place: once per datagram sent)
            try:
                self.sock.sendto(data, address[:2])
            except OSError:  # a full buffer, ICMP unreachable, EMSGSIZE: recovery's loss
                return
            self.datagrams_sent += 1
        else:
            self._send(datagrams)

    def _marking(self, codepoint: int) -> None:
        if codepoint != self._mark:
            if _set_ecn_mark(self.sock, codepoint):
                self._mark = codepoint
            else:
                self.ecn = False  # refused: Not-ECT from now on (validation fails)

    def _send(self, datagrams: Sequence[tuple[bytes, Address]]) -> bool:
        """Send in order; False when the kernel buffer filled up (the rest dropped)."""
        if not self.gso or len(datagrams) < 2:
            return all(self._sendto(data, address) for data, address in datagrams)
        for segments, address in gso_batches(datagrams):
            if len(segments) == 1:
                if not self._sendto(segments[0], address):
                    return False
            elif not self._sendmsg(segments, address):
                return False
        return True

    def _sendto(self, data: bytes, address: Address) -> bool:
        """One datagram; False when the kernel buffer is full (send does the same in place
        for a lone datagram: a change here goes there too)."""
        self.syscalls += 1
        try:
            self.sock.sendto(data, address[:2])
        except (BlockingIOError, InterruptedError):
            return False  # the kernel buffer is full: recovery treats it as loss
        except OSError:
            # ICMP unreachable surfaced on send, or EMSGSIZE (a PMTU probe larger than
            # the path the kernel knows): drop this one, recovery declares it lost.
            return True
        self.datagrams_sent += 1
        return True

    def _sendmsg(self, segments: list[bytes], address: Address) -> bool:
        """A run of datagrams in one GSO send; False when the kernel buffer is full."""
        self.syscalls += 1
        cmsg = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(segments[0])))]
        try:
            self.sock.sendmsg([b"".join(segments)], cmsg, 0, address[:2])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in _GSO_REFUSED:
                self.gso = False  # this socket cannot segment: plain sends from now on
            elif exc.errno != errno.EMSGSIZE:
                return True  # as for one datagram: drop the run
            # Refused as a run, so none of it left: each on its own, in order.
            return all(self._sendto(data, address) for data in segments)
        self.gso_sends += 1
        self.datagrams_sent += len(segments)
        return True


def _set_ecn_mark(sock: socket.socket, codepoint: int) -> bool:
    """Mark what ``sock`` sends from now on with ``codepoint``; False if refused."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, codepoint)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, codepoint)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, codepoint)
    except OSError:
        return False
    return True


def _knows_udp_segment(sock: socket.socket) -> bool:
    """The kernel knows the UDP_SEGMENT option (Linux 4.18+); sends may still refuse it."""
    try:
        sock.getsockopt(socket.SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True
