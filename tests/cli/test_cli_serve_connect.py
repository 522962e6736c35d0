"""``quicnet serve`` and ``quicnet connect`` as real processes on loopback.

The server binds port 0 and names the bound port on its first line
(``ACCEPT host:port``) and the exact ``quicnet connect`` command that pins
its development certificate; the clients are started with that command. A
line typed into one client reaches the other through the server; the end of
input, Ctrl-C (SIGINT) and the server's shutdown each end a session with its
reason; ``-sess_out``/``-sess_in`` reconnect with the first line in 0-RTT.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest
from cli_helpers import assert_one_line_error

import quicnet

DEADLINE = 20.0
#: The children import the quicnet under test (this checkout), whatever is installed.
ENV = {**os.environ, "PYTHONPATH": str(Path(quicnet.__file__).resolve().parents[1])}


class Lines:
    """The lines a child writes to one of its pipes, read as they come."""

    def __init__(self, pipe: IO[bytes] | None) -> None:
        assert pipe is not None
        self.fd = pipe.fileno()
        self.buffer = b""
        self.seen: list[str] = []
        self.closed = False

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self.fd, 65536)
        if not chunk:
            self.closed = True
            return
        self.buffer += chunk
        *done, self.buffer = self.buffer.split(b"\n")
        self.seen += [line.decode(errors="replace") for line in done]

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line (seen so far or to come) matching ``pattern``."""
        end = time.monotonic() + DEADLINE
        while True:
            for line in self.seen:
                if (match := re.search(pattern, line)) is not None:
                    return match
            left = end - time.monotonic()
            if left <= 0 or self.closed:
                raise AssertionError(f"no line matching {pattern!r} in {self.seen!r}")
            self._read(left)

    def rest(self) -> list[str]:
        """Every line, once the child has exited."""
        while not self.closed:
            self._read(DEADLINE)
        return self.seen


class Child:
    """A ``python -m quicnet ...`` child with its stdout and stderr read line by line."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quicnet", *argv],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=ENV,
        )
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def end_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self) -> int:
        code = self.proc.wait(timeout=DEADLINE)
        self.out.rest()
        self.err.rest()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=DEADLINE)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@contextmanager
def children(cwd: Path) -> Iterator[list[Child]]:
    """Children started during the block; any still running at its end are killed."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.kill()


def start_server(started: list[Child], cwd: Path) -> tuple[Child, list[str]]:
    """``quicnet serve -port 0``; the ``quicnet connect`` arguments it printed."""
    server = Child(["serve", "-port", "0", "-stats", "0"], cwd)
    started.append(server)
    accept = server.out.wait_for(r"^ACCEPT 127\.0\.0\.1:(\d+)$")
    port = int(accept.group(1))
    assert port > 0
    command = server.out.wait_for(r"^connect with: (quicnet connect .*)$").group(1)
    words = shlex.split(command)
    assert words[:3] == ["quicnet", "connect", f"127.0.0.1:{port}"]
    assert words[3] == "-pin" and re.fullmatch(r"[0-9a-f]{64}", words[4])
    return server, words[2:]


def start_client(started: list[Child], cwd: Path, args: list[str]) -> Child:
    client = Child(["connect", *args], cwd)
    started.append(client)
    return client


def test_a_line_goes_from_one_connect_to_the_other_through_serve(tmp_path: Path) -> None:
    with children(tmp_path) as started:
        server, args = start_server(started, tmp_path)
        bob = start_client(started, tmp_path, args)
        bob.err.wait_for(r"^connect: connected as peer 1$")
        alice = start_client(started, tmp_path, args)
        alice.err.wait_for(r"^connect: connected as peer 2$")
        server.out.wait_for(r"^peer 2 connected from 127\.0\.0\.1:\d+$")
        bob.out.wait_for(r"^\* peer 2 joined$")

        alice.type("hello from alice")
        bob.out.wait_for(r"^<peer 2> hello from alice$")
        bob.type("hi alice")
        alice.out.wait_for(r"^<peer 1> hi alice$")
        bob.type("/rtt")
        bob.err.wait_for(r"^connect: rtt \d+\.\d\d ms \(min ")

        # End of input: what was typed last still arrives, then the session closes.
        alice.type("bye")
        alice.end_input()
        assert alice.wait() == 0
        assert "connect: closed: end of input" in alice.err.seen
        bob.out.wait_for(r"^<peer 2> bye$")
        server.out.wait_for(r"^peer 2 disconnected: closed by peer \(end of input\)$")
        bob.out.wait_for(r"^\* peer 2 left: closed by peer \(end of input\)$")

        # Ctrl-C: a clean close with its reason.
        bob.proc.send_signal(signal.SIGINT)
        assert bob.wait() == 0
        assert "connect: closed: interrupted" in bob.err.seen
        server.out.wait_for(r"^peer 1 disconnected: closed by peer \(interrupted\)$")
        assert server.out.seen.count("peer 2: 16 bytes") == 1  # "hello from alice", once

        server.proc.send_signal(signal.SIGINT)
        assert server.wait() == 0
        assert server.out.seen[-1] == "shut down: 0 peers disconnected"
        assert server.err.rest() == []


def test_connect_resumes_a_saved_session_in_zero_rtt(tmp_path: Path) -> None:
    with children(tmp_path) as started:
        server, args = start_server(started, tmp_path)
        first = start_client(started, tmp_path, [*args, "-sess_out", "session.pem"])
        first.err.wait_for(r"^connect: connected as peer 1$")
        first.type("first visit")
        server.out.wait_for(r"^peer 1: 11 bytes$")
        first.end_input()
        assert first.wait() == 0
        saved = tmp_path / "session.pem"
        assert saved.read_bytes().startswith(b"-----BEGIN QUICNET TLS SESSION-----")
        assert saved.stat().st_mode & 0o077 == 0  # it holds a secret key

        again = start_client(started, tmp_path, [*args, "-sess_in", "session.pem"])
        again.type("back again")
        again.err.wait_for(r"^connect: connecting to .*, resuming a saved session \(0-RTT\)$")
        again.err.wait_for(r"^connect: connected as peer 2, 0-RTT accepted$")
        server.out.wait_for(r"^peer 2: 10 bytes$")

        # The server shuts down: the client's session ends with that reason, exit 0.
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        assert "shut down: 1 peer disconnected" in server.out.seen
        assert again.wait() == 0
        assert again.err.seen[-1] == "connect: closed: server shutdown"


def test_connect_refuses_to_run_unverified(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "quicnet", "connect", "127.0.0.1:7777"],
        cwd=tmp_path,
        capture_output=True,
        timeout=DEADLINE,
        stdin=subprocess.DEVNULL,
        env=ENV,
    )
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "-pin" in err


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["connect", "127.0.0.1:7777", "-pin", "abcd"], "64 hex digits"),
        (["connect", "nowhere", "-insecure"], "HOST:PORT"),
        (["serve", "-port", "70000"], "-port"),
        (["serve", "-key", "k.pem"], "-key needs -cert"),
    ],
)
def test_bad_flags_are_one_line_errors(qn: object, argv: list[str], mentions: str) -> None:
    result = qn(*argv)  # type: ignore[operator]
    assert_one_line_error(result, mentions=mentions)


def test_serve_with_cert_and_key_and_connect_by_ca_file(tmp_path: Path) -> None:
    identity = quicnet.dev_identity()
    (tmp_path / "server.pem").write_bytes(identity.certificate.to_pem())
    (tmp_path / "server.key").write_bytes(identity.private_key.to_pem())
    (tmp_path / "ca.pem").write_bytes(identity.trust_root.to_pem())
    with children(tmp_path) as started:
        server = Child(
            ["serve", "-port", "0", "-stats", "0.2", "-cert", "server.pem", "-key", "server.key"],
            tmp_path,
        )
        started.append(server)
        port = int(server.out.wait_for(r"^ACCEPT 127\.0\.0\.1:(\d+)$").group(1))
        # The fingerprint printed is the certificate's: the command pins it.
        server.out.wait_for(rf"^connect with: .* -pin {identity.fingerprint.hex()}$")
        client = start_client(
            started,
            tmp_path,
            [f"127.0.0.1:{port}", "-CAfile", "ca.pem", "-servername", "localhost", "-rtt", "0.2"],
        )
        client.type("verified by name")
        server.out.wait_for(r"^peer 1: 16 bytes$")
        server.out.wait_for(r"^stats: peer 1 rtt \d+\.\d\d ms .* messages in 1 out 0$")
        client.err.wait_for(r"^connect: rtt \d+\.\d\d ms")  # -rtt: periodically
        client.end_input()
        assert client.wait() == 0


def test_serve_stops_after_seconds(tmp_path: Path) -> None:
    with children(tmp_path) as started:
        server = Child(["serve", "-port", "0", "-seconds", "0.3"], tmp_path)
        started.append(server)
        assert server.wait() == 0
        assert server.out.seen[0].startswith("ACCEPT 127.0.0.1:")
        assert server.out.seen[-1] == "shut down: 0 peers disconnected"
