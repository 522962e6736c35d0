"""examples/: each runs headless as a subprocess, on loopback port 0, for a couple of seconds.

The chat's server and clients and the game's server and bots are the
scripts themselves, as a user would start them; the tests read what they
print (a relayed chat line, each bot's summary).
"""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOT_LINE = re.compile(
    r"bot (\d+): (\d+) snapshots \((\d+) out of order\), (\d+) events, .*\((\d+) pings\)"
)


class Script:
    """An example running in a child process; its stdout lines on a queue."""

    def __init__(self, name: str, *args: str, stdin: str = "") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / name), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(stdin)
        self.proc.stdin.close()
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first line (from here on) that matches ``pattern``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        pytest.fail(f"no line matching {pattern!r}; output so far: {self.seen}")

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Wait for the exit; every line it printed."""
        self.proc.wait(timeout)
        while (line := self.lines.get(timeout=10)) is not None:
            self.seen.append(line)
        return self.seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@contextmanager
def running(name: str, *args: str, stdin: str = "") -> Iterator[Script]:
    script = Script(name, *args, stdin=stdin)
    try:
        yield script
    finally:
        script.stop()


def assert_every_bot_played(lines: list[str], bots: int) -> None:
    summaries = [m for line in lines if (m := BOT_LINE.match(line))]
    assert [int(m[1]) for m in summaries] == list(range(1, bots + 1)), lines
    for m in summaries:
        assert int(m[2]) > 0, f"bot {m[1]} received no snapshot"
        assert int(m[3]) == 0, f"bot {m[1]}: snapshots out of order on a SEQUENCED channel"
        assert int(m[4]) >= 1, f"bot {m[1]} received no event (its welcome)"
        assert int(m[5]) >= 1, f"bot {m[1]}: no ping came back"
    assert lines[-1] == "every bot received snapshots in order: yes"


@pytest.mark.parametrize("inputs", ["3", "1"])
def test_game_server_and_bots_in_one_process(inputs: str) -> None:
    with running("game_server.py", "--bots", "3", "--seconds", "2", "--inputs", inputs) as game:
        lines = game.finish()
    assert game.proc.returncode == 0, lines
    assert_every_bot_played(lines, 3)
    assert f"3 bots, 2.0 s at 30 Hz, inputs on channel {inputs}" in lines


def test_game_bots_against_a_server_in_another_process() -> None:
    with running("game_server.py", "--serve", "--port", "0") as server:
        address = server.expect(r"game server on (\S+):(\d+)")
        pin = server.expect(r"pin ([0-9A-F:]+)")[1]
        with running(
            "game_server.py",
            *("--connect", f"{address[1]}:{address[2]}", "--pin", pin),
            *("--bots", "2", "--seconds", "2"),
        ) as bots:
            lines = bots.finish()
        assert bots.proc.returncode == 0, lines
        assert_every_bot_played(lines, 2)
        server.expect(r"tick \d+: 2 players")  # the server saw both bots as players


def test_chat_relays_lines_replays_them_to_newcomers_and_refuses_a_taken_name() -> None:
    with running("chat.py", "--serve", "--port", "0") as server:
        address = server.expect(r"chat server on (\S+:\d+)")[1]
        pin = server.expect(r"pin ([0-9A-F:]+)")[1]
        join = ("--connect", address, "--pin", pin)
        with running(
            "chat.py", *join, "--name", "alice", "--seconds", "3", stdin="hello from alice\n"
        ) as alice:
            server.expect(r"^alice: hello from alice$")
            # Bob joins after the line was said: the server replays it to him.
            with (
                running("chat.py", *join, "--name", "bob", "--seconds", "1") as bob,
                running("chat.py", *join, "--name", "alice", "--seconds", "1") as impostor,
            ):
                bob_lines = bob.finish()
                impostor_lines = impostor.finish()
            alice_lines = alice.finish()
        server.expect(r"^\* alice left")
    assert any(line.startswith("* connected as bob") for line in bob_lines), bob_lines
    assert "alice: hello from alice" in bob_lines
    assert alice_lines[:2] == ["* connected as alice (peer 1)", "* alice joined"], alice_lines
    assert "alice: hello from alice" in alice_lines
    assert impostor.proc.returncode == 1
    assert any("refused" in line and "'alice' is taken" in line for line in impostor_lines), (
        impostor_lines
    )
