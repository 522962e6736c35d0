"""Errors the user causes in the network verbs are one-line reasons with exit 1.

Refused connections, names that do not resolve (``.invalid``, RFC 6761: no
network needed), ports out of range or in use, and malformed ``-pin`` values
are the user's to fix, never "internal error ... please report it" (exit 3).
A QUIC client whose server never answers gives up after its handshake
timeout, and one whose server closes with an error exits 1 naming the code.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Iterator

import pytest
from cli_helpers import Result, assert_one_line_error, run_subprocess

from quicnet.crypto import dev_identity
from quicnet.io.aio import serve
from quicnet.quic import QuicConfiguration, QuicConnection, QuicEvent, StreamDataReceived

Runner = Callable[..., Result]  # the qn fixture


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback TCP port that is bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_udp() -> Iterator[socket.socket]:
    """A loopback UDP socket that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def test_s_client_connection_refused(qn: Runner, refused_port: int) -> None:
    r = qn("s_client", "-connect", f"127.0.0.1:{refused_port}", "-insecure")
    assert_one_line_error(r, code=1, mentions="connection refused")


@pytest.mark.parametrize("verb", ["s_client", "q_client"])
def test_client_name_that_does_not_resolve(qn: Runner, verb: str) -> None:
    r = qn(verb, "-connect", "no-such-host.invalid:4433", "-insecure")
    assert_one_line_error(r, code=1, mentions="no-such-host.invalid")


@pytest.mark.parametrize("verb", ["s_client", "q_client"])
@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_client_bad_port(qn: Runner, verb: str, port: str) -> None:
    r = qn(verb, "-connect", f"127.0.0.1:{port}", "-insecure")
    assert_one_line_error(r, code=1, mentions="-connect")


@pytest.mark.parametrize("verb", ["s_server", "q_server"])
@pytest.mark.parametrize("accept", ["99999", "127.0.0.1:99999", "127.0.0.1:port"])
def test_server_bad_port(qn: Runner, verb: str, accept: str) -> None:
    r = qn(verb, "-accept", accept)
    assert_one_line_error(r, code=1, mentions="-accept")


@pytest.mark.parametrize("verb", ["s_server", "q_server"])
def test_server_name_that_does_not_resolve(qn: Runner, verb: str) -> None:
    r = qn(verb, "-accept", "no-such-host.invalid:0")
    assert_one_line_error(r, code=1, mentions="no-such-host.invalid")


@pytest.mark.parametrize(
    ("verb", "kind"), [("s_server", socket.SOCK_STREAM), ("q_server", socket.SOCK_DGRAM)]
)
def test_server_port_in_use(qn: Runner, verb: str, kind: int) -> None:
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        port = taken.getsockname()[1]
        r = qn(verb, "-accept", f"127.0.0.1:{port}")
    assert_one_line_error(r, code=1, mentions="in use")


@pytest.mark.parametrize("verb", ["s_client", "q_client"])
@pytest.mark.parametrize("pin", ["zz", "abcd", "00" * 31 + "0"])
def test_malformed_pin(qn: Runner, verb: str, pin: str, refused_port: int) -> None:
    r = qn(verb, "-connect", f"127.0.0.1:{refused_port}", "-pin", pin)
    assert_one_line_error(r, code=1, mentions="-pin")


def test_q_client_gives_up_after_its_handshake_timeout(silent_udp: socket.socket) -> None:
    """The server never answers: the client stops at -handshake_timeout, not the idle timeout."""
    port = silent_udp.getsockname()[1]
    p = run_subprocess(
        "q_client", "-connect", f"127.0.0.1:{port}", "-insecure", "-handshake_timeout", "0.5"
    )
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "handshake" in err and "0.5 s" in err, err
    # It did try: its Initials, padded to at least 1200 bytes (RFC 9000 §14.1), arrived.
    silent_udp.setblocking(False)
    first = silent_udp.recv(65536)
    assert len(first) >= 1200 and first[0] & 0xC0 == 0xC0


def _q_client_against(
    handle: Callable[[QuicConnection, QuicEvent], None], *args: str
) -> tuple[int, str]:
    """Run ``q_client`` (a child process, stdin b"hello") against an in-test server."""
    ident = dev_identity()
    config = QuicConfiguration(
        is_client=False,
        certificate_chain=ident.certificate_chain,
        private_key=ident.private_key,
    )

    async def scenario() -> tuple[int, str]:
        server = await serve("127.0.0.1", 0, config, handle)
        try:
            port = server.local_address[1]
            pin = ident.fingerprint.hex()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "quicnet", "q_client", "-connect", f"127.0.0.1:{port}", "-pin", pin),
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(b"hello"), 60)
            assert proc.returncode is not None
            return proc.returncode, err.decode()
        finally:
            await server.close()

    return asyncio.run(scenario())


def test_q_client_exits_1_when_the_server_closes_with_an_error() -> None:
    """The server closes with application error 0x10a: q_client says so and exits 1."""

    def handle(conn: QuicConnection, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            conn.close(0x10A, "go away")

    code, err = _q_client_against(handle)
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "0x10a" in err and "go away" in err, err


def test_q_client_timeout_on_an_unanswered_stream_is_a_one_line_error() -> None:
    """The handshake completes, the server never answers the stream: -timeout ends it."""

    def handle(conn: QuicConnection, event: QuicEvent) -> None:
        return None  # reads everything, answers nothing

    code, err = _q_client_against(handle, "-timeout", "0.5")
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "-timeout 0.5 s" in err, err
