"""Helpers for the TLS 1.3 interop tests (imported only by ``test_interop_*.py``).

- :class:`Pki`: a throwaway CA on disk issuing server and client identities of
  any key type, as quicnet objects and as PEM files for OpenSSL / ``ssl``.
- :class:`Processes` / :class:`Proc`: child processes (``openssl``, ``python -m
  quicnet``) whose output is collected by threads, so a test waits for a line
  (with a timeout) instead of sleeping; everything is killed at teardown.
- :class:`Accepted`: connections a quicnet ``start_server`` accepted, queued
  for the test to drive.
- :class:`Relay`: a TCP relay that records both directions, to see on the
  wire what the endpoints did (e.g. a HelloRetryRequest).
- :func:`traffic_secrets`: the current 1-RTT traffic secrets of a quicnet
  connection, to check that KeyUpdate really switched keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from ci_support import require_openssl

from quicnet.crypto import (
    Certificate,
    PrivateKey,
    SignatureScheme,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.tls import ClientConfig, ServerConfig, TLSStreamWriter, start_server
from quicnet.tls.events import Epoch
from quicnet.tls.key_schedule import next_traffic_secret

T = TypeVar("T")

#: Tests that run the openssl binary: skipped without it, failed in CI (tests/conftest.py).
needs_openssl = pytest.mark.openssl

#: Upper bound for any one test's network activity (seconds).
TIMEOUT = 30.0
#: ServerHello.random of a HelloRetryRequest (RFC 8446 §4.1.3).
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
SERVER_NAME = "localhost"
BULK_SIZE = 20 * 1024 * 1024


def run_async(coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT) -> T:
    """Run ``coro`` in a fresh event loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def within(awaitable: Awaitable[T], timeout: float = TIMEOUT) -> T:
    return await asyncio.wait_for(awaitable, timeout)


def payload(size: int, seed: int) -> bytes:
    """Deterministic pseudo-random bytes (fast, reproducible in failure messages)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# PKI ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Identity:
    """A certificate chain and key, in memory and on disk."""

    chain: tuple[Certificate, ...]
    key: PrivateKey
    root: Certificate
    cert_file: Path
    key_file: Path
    ca_file: Path
    #: The intermediate CA certificate, for identities issued through one.
    intermediate_file: Path | None = None

    @property
    def leaf(self) -> Certificate:
        return self.chain[0]

    def server_config(self, **kwargs: Any) -> ServerConfig:
        return ServerConfig(certificate_chain=list(self.chain), private_key=self.key, **kwargs)


class Pki:
    """A CA (EC P-256) in ``directory`` that issues identities for any key type."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = generate_private_key("EC", curve="P-256")
        self.root = make_ca(self._key, f"/CN={name}", days=2, path_length=1)
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.root.to_pem())

    def issue_via_intermediate(
        self, label: str, *, subject: str = "/CN=localhost", names: Sequence[str] = (SERVER_NAME,)
    ) -> Identity:
        """A leaf (EC P-256) issued by a fresh intermediate CA under this root."""
        inter_key = generate_private_key("EC", curve="P-384")
        inter = issue_certificate(
            make_csr(inter_key, f"/CN={label} intermediate CA"),
            self.root,
            self._key,
            days=2,
            is_ca=True,
            path_length=0,
        )
        key = generate_private_key("EC", curve="P-256")
        leaf = issue_certificate(make_csr(key, subject, names=names), inter, inter_key, days=2)
        cert_file = self.directory / f"{label}.crt"
        key_file = self.directory / f"{label}.key"
        inter_file = self.directory / f"{label}-intermediate.crt"
        cert_file.write_bytes(leaf.to_pem())
        key_file.write_bytes(key.to_pem())
        inter_file.write_bytes(inter.to_pem())
        return Identity(
            (leaf, inter), key, self.root, cert_file, key_file, self.ca_file, inter_file
        )

    def issue(
        self,
        label: str,
        *,
        algorithm: str = "EC",
        curve: str = "P-256",
        subject: str = "/CN=localhost",
        names: Sequence[str] = (SERVER_NAME, "127.0.0.1"),
    ) -> Identity:
        key = generate_private_key(algorithm, curve=curve, rsa_bits=2048)
        leaf = issue_certificate(make_csr(key, subject, names=names), self.root, self._key, days=2)
        cert_file = self.directory / f"{label}.crt"
        key_file = self.directory / f"{label}.key"
        cert_file.write_bytes(leaf.to_pem())
        key_file.write_bytes(key.to_pem())
        return Identity((leaf,), key, self.root, cert_file, key_file, self.ca_file)


#: Server key types: (algorithm, curve, the CertificateVerify scheme a TLS 1.3 peer must use).
KEY_TYPES: dict[str, tuple[str, str, SignatureScheme]] = {
    "ec-p256": ("EC", "P-256", SignatureScheme.ecdsa_secp256r1_sha256),
    "ec-p384": ("EC", "P-384", SignatureScheme.ecdsa_secp384r1_sha384),
    "ec-p521": ("EC", "P-521", SignatureScheme.ecdsa_secp521r1_sha512),
    "ed25519": ("Ed25519", "P-256", SignatureScheme.ed25519),
    "ed448": ("Ed448", "P-256", SignatureScheme.ed448),
    "rsa2048": ("RSA", "P-256", SignatureScheme.rsa_pss_rsae_sha256),
}
CLIENT_SUBJECT = "quicnet interop client"


class InteropPki:
    """Two CAs (servers, clients) and their identities, made on first use."""

    def __init__(self, directory: Path) -> None:
        self.server_ca = Pki(directory / "server-ca", "quicnet interop server CA")
        self.client_ca = Pki(directory / "client-ca", "quicnet interop client CA")
        self._cache: dict[tuple[str, str], Identity] = {}

    def server(self, kind: str = "ec-p256") -> Identity:
        if ("server", kind) not in self._cache:
            algorithm, curve, _ = KEY_TYPES[kind]
            self._cache["server", kind] = self.server_ca.issue(
                f"server-{kind}", algorithm=algorithm, curve=curve
            )
        return self._cache["server", kind]

    def client(self, kind: str = "ec-p256") -> Identity:
        if ("client", kind) not in self._cache:
            algorithm, curve, _ = KEY_TYPES[kind]
            self._cache["client", kind] = self.client_ca.issue(
                f"client-{kind}",
                algorithm=algorithm,
                curve=curve,
                subject=f"/CN={CLIENT_SUBJECT}",
                names=("client.example",),
            )
        return self._cache["client", kind]

    def chained_server(self) -> Identity:
        if ("server", "chained") not in self._cache:
            self._cache["server", "chained"] = self.server_ca.issue_via_intermediate(
                "server-chained", names=(SERVER_NAME, "127.0.0.1")
            )
        return self._cache["server", "chained"]

    def chained_client(self) -> Identity:
        if ("client", "chained") not in self._cache:
            self._cache["client", "chained"] = self.client_ca.issue_via_intermediate(
                "client-chained", subject=f"/CN={CLIENT_SUBJECT}", names=("client.example",)
            )
        return self._cache["client", "chained"]

    def client_config(self, **kwargs: Any) -> ClientConfig:
        """A quicnet client trusting the server CA, SNI ``localhost``."""
        kwargs.setdefault("server_name", SERVER_NAME)
        return ClientConfig(trust_roots=[self.server_ca.root], **kwargs)


def python_server_context(
    identity: Identity,
    *,
    client_ca: Path | None = None,
    alpn: Sequence[str] = (),
    curve: str | None = None,
) -> ssl.SSLContext:
    """A TLS 1.3-only ``ssl`` server context."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(identity.cert_file, identity.key_file)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if curve is not None:
        ctx.set_ecdh_curve(curve)  # with OpenSSL 3: the only group the server accepts
    return ctx


def python_client_context(
    ca_file: Path, *, identity: Identity | None = None, alpn: Sequence[str] = ()
) -> ssl.SSLContext:
    """A TLS 1.3-only ``ssl`` client context verifying the server against ``ca_file``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca_file)
    if identity is not None:
        ctx.load_cert_chain(identity.cert_file, identity.key_file)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


# Child processes -----------------------------------------------------------------------
class Proc:
    """A child process whose stdout and stderr are collected by reader threads."""

    def __init__(
        self, argv: Sequence[object], *, cwd: Path | None = None, stdin: Any = subprocess.PIPE
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.popen = subprocess.Popen(
            self.argv, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._buffers = {"out": bytearray(), "err": bytearray()}
        self._eof = {"out": False, "err": False}
        self._cond = threading.Condition()
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._threads = [
            threading.Thread(target=self._collect, args=(name, stream), daemon=True)
            for name, stream in (("out", self.popen.stdout), ("err", self.popen.stderr))
        ]
        for thread in self._threads:
            thread.start()

    def _collect(self, name: str, stream: Any) -> None:
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:
                chunk = b""
            with self._cond:
                if not chunk:
                    self._eof[name] = True
                    self._cond.notify_all()
                    return
                self._buffers[name] += chunk
                self._cond.notify_all()

    @property
    def out(self) -> bytes:
        with self._cond:
            return bytes(self._buffers["out"])

    @property
    def err(self) -> bytes:
        with self._cond:
            return bytes(self._buffers["err"])

    @property
    def text(self) -> str:
        """stdout then stderr, decoded leniently (for assertions on messages)."""
        return (self.out + b"\n" + self.err).decode("utf-8", "replace")

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.argv)}\nexit status: {self.popen.poll()}\n"
            f"--- stdout ---\n{self.out[-6000:].decode('utf-8', 'replace')}\n"
            f"--- stderr ---\n{self.err[-6000:].decode('utf-8', 'replace')}"
        )

    def wait_for(
        self, pattern: bytes | str, *, stream: str = "any", timeout: float = TIMEOUT
    ) -> re.Match[bytes]:
        """Block until ``pattern`` (a regex, bytes or str) shows up on stdout/stderr."""
        raw = pattern.encode() if isinstance(pattern, str) else pattern
        regex = re.compile(raw)
        names = ("out", "err") if stream == "any" else (stream,)

        def find() -> re.Match[bytes] | None:
            for name in names:
                match = regex.search(self._buffers[name])
                if match:
                    return match
            return None

        with self._cond:
            self._cond.wait_for(lambda: find() is not None or all(self._eof.values()), timeout)
            match = find()
        if match is None:
            raise AssertionError(f"{pattern!r} did not appear\n{self.describe()}")
        return match

    async def expect(
        self, pattern: bytes | str, *, stream: str = "any", timeout: float = TIMEOUT
    ) -> re.Match[bytes]:
        """:meth:`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, pattern, stream=stream, timeout=timeout)

    def count(self, pattern: bytes | str) -> int:
        raw = pattern.encode() if isinstance(pattern, str) else pattern
        return len(re.findall(raw, self.out)) + len(re.findall(raw, self.err))

    def send(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self) -> None:
        stdin = self.popen.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait for the exit (and for all output); the exit status."""
        code = self.popen.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        return code

    async def exited(self, timeout: float = TIMEOUT) -> int:
        return await asyncio.to_thread(self.wait, timeout)

    def stop(self) -> None:
        self.close_stdin()
        if self.popen.poll() is None:
            self.popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)
        for thread in self._threads:
            thread.join(5)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


class Processes:
    """Starts child processes and kills whatever is left of them at teardown."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self._procs: list[Proc] = []

    def start(self, *argv: object, stdin: Any = subprocess.PIPE, cwd: Path | None = None) -> Proc:
        proc = Proc(argv, cwd=cwd or self.cwd, stdin=stdin)
        self._procs.append(proc)
        return proc

    def openssl(self, *args: object, **kwargs: Any) -> Proc:
        return self.start(require_openssl(), *args, **kwargs)

    def quicnet(self, *args: object, **kwargs: Any) -> Proc:
        return self.start(sys.executable, "-m", "quicnet", *args, **kwargs)

    def openssl_server(self, identity: Identity, *args: object, **kwargs: Any) -> tuple[Proc, int]:
        """``openssl s_server -tls1_3`` on 127.0.0.1, a free port; (process, port)."""
        proc = self.openssl(
            "s_server",
            "-tls1_3",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            identity.cert_file,
            "-key",
            identity.key_file,
            *args,
            **kwargs,
        )
        return proc, int(proc.wait_for(rb"ACCEPT 127\.0\.0\.1:(\d+)").group(1))

    def stop_all(self) -> None:
        for proc in self._procs:
            proc.stop()


# In-process servers ----------------------------------------------------------------------
W = TypeVar("W", TLSStreamWriter, asyncio.StreamWriter)


class Accepted(Generic[W]):
    """Connections accepted by a server (after its handshake), handed to the test in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[asyncio.StreamReader, W]] = asyncio.Queue()
        self.writers: list[W] = []

    def handler(self, reader: asyncio.StreamReader, writer: W) -> None:
        self.writers.append(writer)
        self._queue.put_nowait((reader, writer))

    async def next(self, timeout: float = TIMEOUT) -> tuple[asyncio.StreamReader, W]:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def empty(self) -> bool:
        return self._queue.empty()

    async def close_all(self) -> None:
        """Teardown: close what the test left open, without waiting for the peers."""
        for writer in self.writers:
            if isinstance(writer, TLSStreamWriter):
                writer.close()
            else:  # an ssl transport would wait (up to 30 s) for the peer's close_notify
                writer.transport.abort()
        for writer in self.writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def quicnet_server(
    config: ServerConfig,
) -> AsyncIterator[tuple[int, Accepted[TLSStreamWriter]]]:
    """A quicnet ``start_server`` on 127.0.0.1, a free port: (port, accepted connections)."""
    accepted: Accepted[TLSStreamWriter] = Accepted()
    server = await start_server(accepted.handler, "127.0.0.1", 0, config)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        await accepted.close_all()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def python_server(
    ctx: ssl.SSLContext,
) -> AsyncIterator[tuple[int, Accepted[asyncio.StreamWriter]]]:
    """An asyncio ``ssl`` server on 127.0.0.1, a free port: (port, accepted connections)."""
    accepted: Accepted[asyncio.StreamWriter] = Accepted()
    server = await asyncio.start_server(accepted.handler, "127.0.0.1", 0, ssl=ctx)
    try:
        yield server.sockets[0].getsockname()[1], accepted
    finally:
        server.close()
        await accepted.close_all()
        await server.wait_closed()


async def ping_pong(
    client: tuple[asyncio.StreamReader, Any],
    server: tuple[asyncio.StreamReader, Any],
    tag: bytes = b"",
) -> None:
    """One message each way; both must arrive intact."""
    (c_reader, c_writer), (s_reader, s_writer) = client, server
    up, down = b"client says hello " + tag, b"server says hello " + tag
    c_writer.write(up)
    await c_writer.drain()
    assert await read_exactly(s_reader, len(up)) == up
    s_writer.write(down)
    await s_writer.drain()
    assert await read_exactly(c_reader, len(down)) == down


class Relay:
    """A TCP relay on 127.0.0.1 recording what each side sent."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.to_server = bytearray()
        self.to_client = bytearray()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for task in (
            asyncio.ensure_future(self._copy(reader, up_writer, self.to_server)),
            asyncio.ensure_future(self._copy(up_reader, writer, self.to_client)),
        ):
            self._tasks.add(task)

    @staticmethod
    async def _copy(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                record += data
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.close()

    def server_hello_messages(self) -> list[bytes]:
        """Every ServerHello (HRR included) in the server's cleartext records, whole."""
        messages = []
        data = bytes(self.to_client)
        pos = 0
        while pos + 5 <= len(data) and data[pos] in (20, 22):  # handshake or CCS, unprotected
            length = int.from_bytes(data[pos + 3 : pos + 5], "big")
            body = data[pos + 5 : pos + 5 + length]
            if data[pos] == 22 and body[:1] == b"\x02":
                messages.append(body[: 4 + int.from_bytes(body[1:4], "big")])
            pos += 5 + length
        return messages

    def server_hellos(self) -> list[bytes]:
        """The random of every ServerHello (HRR included)."""
        return [m[6:38] for m in self.server_hello_messages()]

    @staticmethod
    def extensions(server_hello: bytes) -> dict[int, bytes]:
        """The extensions (type -> data) of a ServerHello / HRR message."""
        pos = 38
        pos += 1 + server_hello[pos] + 2 + 1  # session id, cipher suite, compression
        end = pos + 2 + int.from_bytes(server_hello[pos : pos + 2], "big")
        pos += 2
        found = {}
        while pos < end:
            length = int.from_bytes(server_hello[pos + 2 : pos + 4], "big")
            found[int.from_bytes(server_hello[pos : pos + 2], "big")] = server_hello[
                pos + 4 : pos + 4 + length
            ]
            pos += 4 + length
        return found

    def saw_hello_retry(self) -> bool:
        return HRR_RANDOM in self.server_hellos()


# quicnet internals observed ----------------------------------------------------------------
def traffic_secrets(writer: TLSStreamWriter) -> tuple[bytes, bytes]:
    """(read, write) 1-RTT traffic secrets of the connection now.

    There is no public accessor: this reads the record layer's protection state,
    the only place where a KeyUpdate (ours or the peer's) is visible.
    """
    conn = writer.connection
    read = conn._read
    assert read is not None and read.epoch == Epoch.ONE_RTT
    return read.secret, conn._write[Epoch.ONE_RTT].secret


def next_secret(writer: TLSStreamWriter, secret: bytes, times: int = 1) -> bytes:
    """``secret`` after ``times`` KeyUpdates (RFC 8446 §7.2), for the connection's suite."""
    suite = writer.connection.engine.suite
    assert suite is not None
    for _ in range(times):
        secret = next_traffic_secret(suite, secret)
    return secret


async def read_exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await within(reader.readexactly(size))


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    return await within(reader.read())


async def hash_stream(reader: asyncio.StreamReader, size: int | None = None) -> tuple[str, int]:
    """SHA-256 and length of what ``reader`` gives: ``size`` bytes, or up to EOF."""
    h = hashlib.sha256()
    n = 0
    while size is None or n < size:
        chunk = await reader.read(min(1 << 16, size - n) if size is not None else 1 << 16)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n
