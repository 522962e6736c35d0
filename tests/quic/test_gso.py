"""Batched datagram I/O in the drivers: UDP GSO sends and draining reads.

``DatagramSender`` (quicnet.io.udp, shared by both drivers) sends each run
of equal-size datagrams to one address, a shorter last one allowed, with
one ``sendmsg`` carrying ``UDP_SEGMENT``, and falls back to one ``sendto``
per datagram on a socket whose kernel refuses it. Real sockets on 127.0.0.1
and ::1, no mocks: loopback delivers a datagram before the send returns, so
a receiver with a timeout reads what was sent without waiting on a clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicnet.crypto import dev_identity
from quicnet.io.aio import connect, serve
from quicnet.io.udp import (
    ECN_PLATFORM,
    GSO_MAX_BYTES,
    GSO_MAX_SEGMENTS,
    DatagramSender,
    UdpClient,
    UdpServer,
    deliver_socket_ecn,
    enable_ecn,
    gso_batches,
    input_poller,
    open_udp_socket,
    read_socket_ecn,
)
from quicnet.quic import (
    Address,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicConfiguration,
    QuicConnection,
    QuicEvent,
    StreamDataReceived,
)

HOSTS = [pytest.param("127.0.0.1", id="ipv4"), pytest.param("::1", id="ipv6")]
#: Upper bound for any one wait; the waits end on data or events, this only stops a hang.
DEADLINE = 30.0


def _socket(host: str) -> socket.socket:
    """A non-blocking UDP socket on ``host``; skips where the host has no such loopback."""
    try:
        return open_udp_socket(host, 0)
    except OSError as exc:
        pytest.skip(f"no {host} loopback here: {exc}")


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sender socket, receiver socket) on the host the test is parametrized with."""
    host = request.param
    sender = _socket(host)
    receiver = _socket(host)
    receiver.settimeout(5.0)  # blocking with a bound: the data is already there
    yield sender, receiver
    sender.close()
    receiver.close()


def _datagrams(sizes: list[int], tag: bytes = b"") -> list[bytes]:
    """Datagrams of these sizes, each with its own bytes."""
    return [
        hashlib.shake_256(tag + i.to_bytes(4, "big")).digest(size) for i, size in enumerate(sizes)
    ]


def _receive(sock: socket.socket, count: int) -> list[bytes]:
    return [sock.recv(65536) for _ in range(count)]


def _assert_empty(sock: socket.socket) -> None:
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(65536)


def _why_no_gso() -> str:
    if not sys.platform.startswith("linux"):
        return f"UDP GSO is Linux-only (this is {sys.platform})"
    return "the kernel refused UDP_SEGMENT on this socket (no GSO here)"


# (a) one GSO send, separate datagrams at a plain receiver ----------------------------------


@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_a_run_leaves_in_one_gso_send_and_arrives_as_separate_datagrams(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sock, receiver = pair
    data = _datagrams([1200] * 10 + [300])
    to: Address = receiver.getsockname()
    sender = DatagramSender(sock)
    sender.send([(d, to) for d in data])
    assert _receive(receiver, 11) == data  # 11 datagrams, same bytes, same order
    _assert_empty(receiver)
    assert sender.datagrams_sent == 11
    if not sender.gso:
        pytest.skip(_why_no_gso())
    assert (sender.gso_sends, sender.syscalls) == (1, 1)


@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_a_lone_datagram_is_one_sendto_and_nothing_to_send_is_no_system_call(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sock, receiver = pair
    to: Address = receiver.getsockname()
    sender = DatagramSender(sock, ecn=ECN_PLATFORM)
    sender.send([])
    sender.send([], 1)
    assert (sender.syscalls, sender.datagrams_sent) == (0, 0)
    data = _datagrams([100, 100, 100], b"lone")
    for one in data:
        sender.send([(one, to)])
    assert _receive(receiver, 3) == data
    _assert_empty(receiver)
    assert (sender.syscalls, sender.gso_sends, sender.datagrams_sent) == (3, 0, 3)


def _codepoints(receiver: socket.socket) -> list[tuple[int, int]]:
    """(first byte, ECN bits) of every datagram queued on ``receiver`` (prepared by
    enable_ecn), in order, as the drivers read them (read_socket_ecn)."""
    receiver.setblocking(False)  # sendto already queued them: no waiting
    return [(data[0], ecn) for data, _address, ecn in read_socket_ecn(receiver)]


@pytest.mark.skipif(
    not ECN_PLATFORM, reason="ECN marks are read and set only on Linux (IP_RECVTOS, IP_TOS)"
)
@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_each_lone_datagram_leaves_with_the_marking_its_call_asked_for(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    # RFC 9000 §13.4: the socket's marking changes only when the core's does, and a
    # lone datagram (the fast path) is no exception.
    sock, receiver = pair
    assert enable_ecn(receiver)
    to: Address = receiver.getsockname()
    sender = DatagramSender(sock, ecn=True)
    asked = [1, 1, 0, 1, 0, 0, 1]
    for i, marked in enumerate(asked):
        sender.send([(bytes([i]) * 40, to)], marked)
    assert _codepoints(receiver) == [(i, 2 if m else 0) for i, m in enumerate(asked)]
    # A run split in two: the first ``marked`` ECT(0), the rest Not-ECT.
    sender.send([(bytes([9]) * 40, to)] * 3, 2)
    assert _codepoints(receiver) == [(9, 2), (9, 2), (9, 0)]
    _assert_empty(receiver)


@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_mixed_sizes_and_addresses_arrive_in_order_in_one_send_per_run(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sock, first = pair
    second = _socket(first.getsockname()[0])
    second.settimeout(5.0)
    try:
        a: Address = first.getsockname()
        b: Address = second.getsockname()
        sizes = [1200] * 5 + [1200] * 3 + [1200, 1200, 700] + [1300, 40] + [60]
        dest = [a] * 5 + [b] * 3 + [a] * 3 + [a] * 2 + [b]
        data = _datagrams(sizes, b"mixed")
        batch = list(zip(data, dest, strict=True))
        # a x5 | b x3 | a 1200 1200 700 | a 1300 40 | b 60: five runs.
        assert [len(segments) for segments, _ in gso_batches(batch)] == [5, 3, 3, 2, 1]
        sender = DatagramSender(sock)
        sender.send(batch)
        assert _receive(first, 10) == [d for d, to in batch if to == a]
        assert _receive(second, 4) == [d for d, to in batch if to == b]
        _assert_empty(first)
        _assert_empty(second)
        assert sender.datagrams_sent == len(batch)
        if not sender.gso:
            pytest.skip(_why_no_gso())
        assert (sender.gso_sends, sender.syscalls) == (4, 5)  # the lone 60 goes by sendto
    finally:
        second.close()


# (b) the grouping ------------------------------------------------------------------------

_ADDRESSES: list[Address] = [("127.0.0.1", 4433), ("127.0.0.1", 4434), ("::1", 4433, 0, 0)]
# Runs of one size to one address, so that the segment and byte caps come into play.
_RUNS = st.lists(
    st.one_of(
        st.tuples(
            st.one_of(st.sampled_from([0, 1, 1199, 1200, 1252]), st.integers(0, 3000)),
            st.sampled_from(_ADDRESSES),
            st.integers(1, 140),
        ),
        st.tuples(
            st.sampled_from([20000, 32768, 65507]), st.sampled_from(_ADDRESSES), st.integers(1, 4)
        ),
    ),
    max_size=8,
)


@given(_RUNS)
def test_gso_batches_split_any_sequence_into_runs_the_kernel_takes(
    runs: list[tuple[int, Address, int]],
) -> None:
    datagrams = [
        (bytes([i % 256]) * size, address)
        for i, (size, address) in enumerate(
            (size, address) for size, address, count in runs for _ in range(count)
        )
    ]
    batches = gso_batches(datagrams)
    # Concatenated, the runs are the input, in order.
    assert [(d, address) for segments, address in batches for d in segments] == datagrams
    for segments, _ in batches:
        assert 1 <= len(segments) <= GSO_MAX_SEGMENTS
        assert sum(map(len, segments)) <= GSO_MAX_BYTES  # <= 65535, and IPv4's 65507 too
        size = len(segments[0])
        assert all(len(d) == size for d in segments[:-1])  # equal segments...
        assert len(segments[-1]) <= size  # ...but a shorter last one
        assert size > 0 or len(segments) == 1  # an empty datagram travels alone
    # And a run ends only where the next datagram cannot join it.
    for (segments, address), (following, next_address) in itertools.pairwise(batches):
        size, head = len(segments[0]), len(following[0])
        assert (
            next_address != address
            or len(segments[-1]) < size
            or not 0 < head <= size
            or len(segments) == GSO_MAX_SEGMENTS
            or sum(map(len, segments)) + head > GSO_MAX_BYTES
        )


def test_gso_batches_cap_runs_at_64_segments_and_ipv4s_largest_payload() -> None:
    to: Address = ("127.0.0.1", 4433)
    by_count = gso_batches([(b"x" * 1000, to)] * 100)
    assert [len(segments) for segments, _ in by_count] == [64, 36]
    by_bytes = gso_batches([(b"x" * 1200, to)] * 100)  # 54 x 1200 = 64800 <= 65507
    assert [len(segments) for segments, _ in by_bytes] == [54, 46]
    shorter_last = gso_batches([(b"x" * 1200, to)] * 54 + [(b"y" * 708, to)])
    assert [len(segments) for segments, _ in shorter_last] == [54, 1]  # 65508 > 65507
    assert gso_batches([]) == []


# (c) the fallback ------------------------------------------------------------------------


@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_a_sender_told_not_to_use_gso_sends_each_datagram(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sock, receiver = pair
    to: Address = receiver.getsockname()
    data = _datagrams([1200] * 10 + [300], b"plain")
    sender = DatagramSender(sock, gso=False)
    sender.send([(d, to) for d in data])
    assert _receive(receiver, 11) == data
    _assert_empty(receiver)
    assert (sender.gso, sender.gso_sends, sender.syscalls, sender.datagrams_sent) == (
        False,
        0,
        11,
        11,
    )


@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_a_socket_whose_kernel_refuses_gso_falls_back_and_loses_nothing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Without UDP checksums Linux refuses segmentation (EINVAL) but sends datagrams."""
    sock, receiver = pair
    sender = DatagramSender(sock)
    if not sender.gso:
        pytest.skip(_why_no_gso())
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.SOL_UDP, 101, 1)  # UDP_NO_CHECK6_TX
        receiver.setsockopt(socket.SOL_UDP, 102, 1)  # UDP_NO_CHECK6_RX: accept them
    else:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_NO_CHECK", 11), 1)
    to: Address = receiver.getsockname()
    first = _datagrams([1200] * 10 + [300], b"first")
    sender.send([(d, to) for d in first])
    assert _receive(receiver, 11) == first  # the refused run went out one by one
    if sender.gso_sends:
        pytest.skip("this kernel segments even without UDP checksums: no refusal to test")
    assert not sender.gso  # and GSO is off for this socket from now on
    assert (sender.syscalls, sender.datagrams_sent) == (1 + 11, 11)
    second = _datagrams([1200] * 5, b"second")
    sender.send([(d, to) for d in second])
    assert _receive(receiver, 5) == second
    _assert_empty(receiver)
    assert (sender.gso_sends, sender.syscalls, sender.datagrams_sent) == (0, 12 + 5, 16)


# (d) QUIC over both drivers --------------------------------------------------------------

BODY = hashlib.shake_256(b"gso bulk").digest(2 << 20)


def _configs() -> tuple[QuicConfiguration, QuicConfiguration]:
    # Ethernet-sized datagrams, as on a network: on loopback the drivers would otherwise
    # let PMTU discovery reach 65487 bytes, one datagram per GSO run.
    ident = dev_identity()
    server = QuicConfiguration(
        is_client=False,
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
        max_udp_payload_size=1452,
    )
    client = QuicConfiguration(
        server_name="localhost", trust_roots=[ident.trust_root], max_udp_payload_size=1452
    )
    return server, client


@pytest.mark.parametrize("host", HOSTS)
def test_bulk_upload_over_the_tick_driven_driver_uses_gso(host: str) -> None:
    _socket(host).close()  # skips without this loopback
    server_config, client_config = _configs()
    server = UdpServer(server_config, host)
    client = UdpClient(client_config, server.local_address[:2])
    try:
        got = bytearray()
        done = False
        deadline = time.monotonic() + DEADLINE
        while not done:
            assert time.monotonic() < deadline, f"stuck at {len(got)} of {len(BODY)} bytes"
            for event in client.poll(0.002):
                assert not isinstance(event, ConnectionTerminated), event
                if isinstance(event, HandshakeCompleted):
                    stream_id = client.connection.create_stream()
                    client.connection.send_stream_data(stream_id, BODY, end_stream=True)
            for _, event in server.poll(0.002):
                assert not isinstance(event, ConnectionTerminated), event
                if isinstance(event, StreamDataReceived):
                    got += event.data
                    done = event.end_stream
        assert bytes(got) == BODY
        sender = client.sender
        assert sender.datagrams_sent > len(BODY) // 1452  # the largest datagram (PMTU)
        if not sender.gso:
            pytest.skip(_why_no_gso())
        assert sender.gso_sends > 0
        assert sender.syscalls < sender.datagrams_sent  # runs, not one call per datagram
    finally:
        client.close_socket()
        server.close_socket()


@pytest.mark.parametrize("host", HOSTS)
def test_bulk_download_over_the_asyncio_driver_uses_gso(host: str) -> None:
    _socket(host).close()
    server_config, client_config = _configs()

    def handler(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.end_stream:
            conn.send_stream_data(event.stream_id, BODY, end_stream=True)

    async def scenario() -> tuple[bytes, DatagramSender]:
        server = await serve(host, 0, server_config, handler)
        client = await asyncio.wait_for(
            connect(host, server.local_address[1], client_config), DEADLINE
        )
        try:
            stream_id = client.connection.create_stream()
            client.send_stream_data(stream_id, b"GET", end_stream=True)
            got = bytearray()
            async for event in client.events():
                assert not isinstance(event, ConnectionTerminated), event
                if isinstance(event, StreamDataReceived):
                    got += event.data
                    if event.end_stream:
                        break
            return bytes(got), server.sender
        finally:
            await client.close()
            await server.close()

    got, sender = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    assert got == BODY
    assert sender.datagrams_sent > len(BODY) // 1452  # the largest datagram (PMTU)
    if not sender.gso:
        pytest.skip(_why_no_gso())
    assert sender.gso_sends > 0
    assert sender.syscalls < sender.datagrams_sent


# Reads: every queued datagram per wakeup --------------------------------------------------

QUEUED = 200  # below the drivers' 256 reads per wakeup (a bound that keeps a flood fair)


def _flood(to: Address) -> None:
    family = socket.AF_INET6 if ":" in to[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as peer:
        for i in range(QUEUED):
            peer.sendto(b"\x00" + i.to_bytes(2, "big") * 20, to[:2])  # junk: dropped


@pytest.mark.parametrize("host", HOSTS)
def test_one_poll_of_the_tick_driven_driver_reads_every_queued_datagram(host: str) -> None:
    _socket(host).close()
    server = UdpServer(_configs()[0], host)
    try:
        _flood(server.local_address)
        server.poll(0.0)
        _assert_empty(server.sock)
    finally:
        server.close_socket()


@pytest.mark.parametrize("host", HOSTS)
def test_one_wakeup_of_the_asyncio_driver_reads_every_queued_datagram(host: str) -> None:
    _socket(host).close()

    async def scenario() -> None:
        server = await serve(host, 0, _configs()[0], lambda conn, event: None)
        try:
            _flood(server.local_address)
            server._readable()  # what the loop calls once the socket is readable
            assert server.sock is not None
            _assert_empty(server.sock)
        finally:
            await server.close()

    asyncio.run(scenario())


class _CountingReads:
    """A socket whose recvmsg calls are counted (deliver_socket_ecn reads only that)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reads = 0

    def recvmsg(self, size: int, ancillary: int) -> Any:
        self.reads += 1
        return self.sock.recvmsg(size, ancillary)


@pytest.mark.skipif(
    not ECN_PLATFORM, reason="the drivers read with recvmsg and ECN marks only on Linux"
)
@pytest.mark.parametrize("count", [0, 1, 2, 5])
@pytest.mark.parametrize("pair", HOSTS, indirect=True)
def test_a_wakeup_delivers_every_queued_datagram_and_one_ends_without_an_empty_read(
    pair: tuple[socket.socket, socket.socket], count: int
) -> None:
    """deliver_socket_ecn with the socket's input_poller: every datagram queued is
    handed on, in order, with its codepoint; a lone one (the usual wakeup) is the only
    read, where draining would read again to find the socket empty (BlockingIOError)."""
    sock, receiver = pair
    assert enable_ecn(receiver)
    receiver.setblocking(False)
    to: Address = receiver.getsockname()
    DatagramSender(sock, ecn=True).send([(bytes([i]) * 50, to) for i in range(count)], count)
    got: list[tuple[bytes, int, float]] = []
    counting = _CountingReads(receiver)
    deliver_socket_ecn(
        cast(socket.socket, counting),
        lambda data, _address, now, ecn: got.append((data, ecn, now)),
        7.0,
        input_poller(receiver),
    )
    assert got == [(bytes([i]) * 50, 2, 7.0) for i in range(count)]
    # One read for one datagram; otherwise each, then the one that finds none.
    assert counting.reads == (1 if count == 1 else count + 1)
    _assert_empty(receiver)
