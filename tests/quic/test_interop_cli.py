"""The q_server and q_client verbs against aioquic over hq-interop (HTTP/0.9).

``python -m quicnet q_server -www DIR`` runs in a subprocess and serves a 5 MB
file to an aioquic client; ``python -m quicnet q_client`` downloads from an
aioquic server. Both are checked by SHA-256. Each subprocess has a deadline
and is killed if it outlives the test.
"""

# The shared fixtures (stack, ident, peer_loop, ...) are imported from interop_peers and
# requested by name, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from interop_peers import (  # noqa: F401  (fixtures are used by name)
    ALPN,
    PeerApp,
    QuicnetServer,
    closing,
    hard_timeout,
    ident,
    load_stack,
    payload,
    peer_config,
    peer_loop,
    peer_server,
    pump,
    quicnet_server_config,
    relay,
    run_peer_client,
    sha256,
)

REPO = Path(__file__).resolve().parents[2]
TRAFFIC_SECRETS = (
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
)


def _quicnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "quicnet", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSLKEYLOGFILE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextlib.contextmanager
def _q_server(
    *args: str, timeout: float = 20.0, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], tuple[str, int]]]:
    """Start q_server; yield it and the address from its "ACCEPT host:port" line."""
    proc = subprocess.Popen(
        _quicnet("q_server", *args),
        cwd=REPO,
        env=env or _env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise AssertionError(f"q_server did not print ACCEPT: {line!r}")
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 1)
                if not chunk:
                    raise AssertionError(f"q_server closed stdout: {line!r}")
                line += chunk
        words = line.decode().split()
        assert words[0] == "ACCEPT", line
        host, _, port = words[1].rpartition(":")
        yield proc, (host, int(port))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def _secrets(lines: str) -> set[str]:
    return {line.strip() for line in lines.splitlines() if line.split(" ", 1)[0] in TRAFFIC_SECRETS}


def test_cli_q_server_www(tmp_path: Path, ident: Any, peer_loop: Any) -> None:
    """q_server -www DIR -retry serves a 5 MB file to an aioquic hq-interop client."""
    www = tmp_path / "www"
    www.mkdir()
    body = payload(5_000_000, seed=30)
    (www / "big.bin").write_bytes(body)
    keylog = tmp_path / "server-keys.txt"
    stack = load_stack("aioquic")
    client_keys = io.StringIO()
    args = ("-accept", "0", "-cert", str(ident.cert_path), "-key", str(ident.key_path))
    args += ("-www", str(www), "-retry", "-keylogfile", str(keylog))
    with _q_server(*args) as (proc, address), relay(address) as wire:
        held: dict[str, Any] = {}

        async def scenario(p: Any) -> bytes:
            held["proto"] = p
            return bytes(await p.get("/big.bin"))

        config = peer_config(stack, ident, is_client=True, secrets_log_file=client_keys)
        got = peer_loop.run(run_peer_client(stack, config, wire.address, scenario), timeout=45)
        assert proc.poll() is None, "q_server is still serving"
    assert len(got) == len(body)
    assert sha256(got) == sha256(body)
    assert held["proto"].alpn == ALPN
    assert wire.types["s2c"].get("retry", 0) >= 1, "-retry sent a Retry"
    # Both ends derived the same traffic secrets for the connection.
    client_secrets = _secrets(client_keys.getvalue())
    assert len(client_secrets) == len(TRAFFIC_SECRETS)
    assert client_secrets <= _secrets(keylog.read_text())


def _q_client(
    address: tuple[str, int],
    ident: Any,
    out: Path,
    *urls: str,
    options: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        _quicnet(
            "q_client",
            "-connect",
            f"{address[0]}:{address[1]}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ident.ca_path),
            "-out",
            str(out),
            "-timeout",
            "40",
            *options,
            *urls,
        ),
        cwd=REPO,
        env=env or _env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=50,
        check=False,
    )


def test_cli_q_client_download(tmp_path: Path, ident: Any, peer_loop: Any) -> None:
    """q_client downloads a 5 MB file and a small one from an aioquic hq-interop server."""
    files = {"/big.bin": payload(5_000_000, seed=31), "/small.txt": b"hello over hq-interop\n"}
    stack = load_stack("aioquic")
    app = PeerApp(files=files)
    out = tmp_path / "downloads"
    with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
        urls = [f"https://localhost{name}" for name in files]
        result = _q_client(ps.address, ident, out, *urls)
    assert result.returncode == 0, result.stderr.decode()
    assert sha256((out / "big.bin").read_bytes()) == sha256(files["/big.bin"])
    assert (out / "small.txt").read_bytes() == files["/small.txt"]
    (proto,) = app.protocols
    assert proto.alpn == ALPN
    assert len(proto.modes) == 2  # one stream per URL


def test_cli_q_client_refused_url(tmp_path: Path, ident: Any, peer_loop: Any) -> None:
    """A URL the aioquic server refuses (stream reset) makes q_client exit non-zero."""
    stack = load_stack("aioquic")
    app = PeerApp(files={"/here.txt": b"present\n"})
    out = tmp_path / "downloads"
    with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
        result = _q_client(
            ps.address, ident, out, "https://localhost/here.txt", "https://localhost/missing.txt"
        )
    assert result.returncode != 0
    assert b"missing.txt" in result.stderr
    assert (out / "here.txt").read_bytes() == b"present\n"
    assert not (out / "missing.txt").exists()


# Issue 10: q_client -migrate_after moves to a new local port mid-download.


def _moved_to(stderr: bytes) -> int:
    """The new local port from q_client's "migrated ... to HOST:PORT" line."""
    lines = [line for line in stderr.decode().splitlines() if "migrated" in line]
    assert len(lines) == 1, stderr.decode()
    return int(lines[0].split(" to ", 1)[1].split()[0].rpartition(":")[2])


def test_cli_q_client_migrates_from_an_aioquic_server(
    tmp_path: Path, ident: Any, peer_loop: Any
) -> None:
    """-migrate_after 1000000: the 5 MB download goes on from a new port; aioquic follows."""
    body = payload(5_000_000, seed=32)
    stack = load_stack("aioquic")
    app = PeerApp(files={"/big.bin": body})
    out = tmp_path / "downloads"
    with peer_server(peer_loop, stack, peer_config(stack, ident, is_client=False), app) as ps:
        result = _q_client(
            ps.address,
            ident,
            out,
            "https://localhost/big.bin",
            options=("-migrate_after", "1000000"),
        )
        (proto,) = app.protocols
        # aioquic's idea of where the client is now (its first network path).
        now_at = peer_loop.call(lambda: proto._quic._network_paths[0].addr[1])
    assert result.returncode == 0, result.stderr.decode()
    assert sha256((out / "big.bin").read_bytes()) == sha256(body)
    assert now_at == _moved_to(result.stderr)


def test_cli_q_client_migrates_from_q_server(tmp_path: Path, ident: Any) -> None:
    """The same against quicnet's q_server, whose qlog trace shows it validating the
    client's new path (PATH_CHALLENGE out, PATH_RESPONSE in, RFC 9000 §9.3)."""
    www = tmp_path / "www"
    www.mkdir()
    body = payload(5_000_000, seed=33)
    (www / "big.bin").write_bytes(body)
    qlogs = tmp_path / "qlog"
    qlogs.mkdir()
    out = tmp_path / "downloads"
    server_env = {**_env(), "QLOGDIR": str(qlogs)}
    args = ("-accept", "0", "-cert", str(ident.cert_path), "-key", str(ident.key_path))
    with _q_server(*args, "-www", str(www), env=server_env) as (_proc, address):
        result = _q_client(
            address, ident, out, "https://localhost/big.bin", options=("-migrate_after", "1000000")
        )
    assert result.returncode == 0, result.stderr.decode()
    assert sha256((out / "big.bin").read_bytes()) == sha256(body)
    _moved_to(result.stderr)
    (trace,) = qlogs.glob("*_server.sqlog")
    sent, received = set(), set()
    for record in trace.read_text().split("\x1e"):
        if "path_" not in record:
            continue
        event = json.loads(record)
        frames = {f["frame_type"] for f in event["data"].get("frames", ())}
        (sent if event["name"] == "transport:packet_sent" else received).update(frames)
    assert "path_challenge" in sent and "path_response" in received


def test_cli_q_client_does_not_migrate_from_a_server_that_disables_it(
    tmp_path: Path, ident: Any
) -> None:
    """A server that sent disable_active_migration (RFC 9000 §18.2): q_client says it is
    not moving, stays on its port, and the download completes."""
    body = payload(2_000_000, seed=34)
    server = QuicnetServer(
        quicnet_server_config(ident, disable_active_migration=True), {"/big.bin": body}
    )
    out = tmp_path / "downloads"
    with closing(server):
        address = server.address
        command = _quicnet("q_client", "-connect", f"{address[0]}:{address[1]}")
        command += ["-servername", "localhost", "-CAfile", str(ident.ca_path), "-out", str(out)]
        command += ["-migrate_after", "100000", "https://localhost/big.bin"]
        proc = subprocess.Popen(
            command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            pump(server, until=lambda: proc.poll() is not None, timeout=40)
            _, stderr = proc.communicate(5)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(5)
        (rec,) = server.connections
        assert rec.conn.path_migrations == 0
    assert proc.returncode == 0, stderr.decode()
    assert b"cannot migrate" in stderr and b"disable_active_migration" in stderr
    assert b"migrated from" not in stderr
    assert sha256((out / "big.bin").read_bytes()) == sha256(body)


def test_cli_q_client_migrate_after_needs_urls(ident: Any) -> None:
    result = _q_client(("127.0.0.1", 9), ident, Path("."), options=("-migrate_after", "10"))
    assert result.returncode != 0 and b"-migrate_after needs URLs" in result.stderr


# Issue 10: -cc picks the congestion controller on both verbs.


def test_cli_q_client_and_q_server_take_a_congestion_controller(tmp_path: Path, ident: Any) -> None:
    """q_server -cc cubic serves 2 MB to q_client -cc bbr; an unknown name is refused."""
    www = tmp_path / "www"
    www.mkdir()
    body = payload(2_000_000, seed=34)
    (www / "file.bin").write_bytes(body)
    out = tmp_path / "downloads"
    args = ("-accept", "0", "-cert", str(ident.cert_path), "-key", str(ident.key_path))
    with _q_server(*args, "-www", str(www), "-cc", "cubic") as (_proc, address):
        result = _q_client(
            address, ident, out, "https://localhost/file.bin", options=("-cc", "bbr")
        )
    assert result.returncode == 0, result.stderr.decode()
    assert sha256((out / "file.bin").read_bytes()) == sha256(body)
    refused = _q_client(("127.0.0.1", 9), ident, out, options=("-cc", "vegas"))
    assert refused.returncode != 0 and b"invalid choice: 'vegas'" in refused.stderr
