"""SSLKEYLOGFILE (quicnet.tls.keylog): the NSS key log lines clients append, checked by
decrypting real packets with the logged secrets and against OpenSSL's own log."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from pathlib import Path

import pytest

from quicnet.crypto import AeadAlgorithm, DecryptError, dev_identity
from quicnet.quic import QuicConfiguration, QuicConnection, SessionTicketReceived
from quicnet.quic import frames as fr
from quicnet.quic.buffer import Reader
from quicnet.quic.endpoint import QuicEndpoint
from quicnet.quic.packets import PacketType, decode_packet_number, parse_long_header
from quicnet.quic.protection import PacketKey, initial_keys
from quicnet.tls import CipherSuite, ClientConfig, ServerConfig, open_connection, start_server
from quicnet.tls.keylog import key_log_file
from tests.quic.simnet import Simulation, client_config, handshake, make_pair, server_config

LINE = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]+)$")
TRAFFIC_LABELS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
}
AES128 = (CipherSuite.TLS_AES_128_GCM_SHA256,)
TIMEOUT = 20.0
SECOND = ("10.0.0.1", 50001)  # a second client of the same endpoint


def parse_log(path: Path) -> list[tuple[str, str, bytes]]:
    """(label, client_random hex, secret) per line; every line must be well formed."""
    out = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.startswith("#"):  # OpenSSL's header comment
            continue
        match = LINE.match(line)
        assert match is not None, f"not an NSS key log line: {line!r}"
        label, random, secret = match.groups()
        out.append((label, random, bytes.fromhex(secret)))
    return out


def secrets_by_label(lines: list[tuple[str, str, bytes]], random: str) -> dict[str, bytes]:
    return {label: secret for label, r, secret in lines if r == random}


class Capture:
    """Every datagram on the simulated wire, by direction."""

    def __init__(self, sim: Simulation) -> None:
        self.client_address = sim.client.address
        self.up: list[bytes] = []
        self.down: list[bytes] = []
        sim.wiretaps.append(self.tap)

    def tap(self, src: tuple[str, int], dst: tuple[str, int], data: bytes, now: float) -> None:
        (self.up if src == self.client_address else self.down).append(data)


def open_long(datagram: bytes, wanted: PacketType, key: PacketKey) -> bytes:
    """The plaintext of the first ``wanted`` packet in a datagram (RFC 9001 §5)."""
    start = 0
    while start < len(datagram) and datagram[start] & 0x80:
        header = parse_long_header(datagram, start)
        if header.packet_type == wanted:
            packet = datagram[start : header.end]
            pn_offset = header.pn_offset - start
            first, truncated, pn_len = key.unprotect_header(packet, pn_offset)
            pn = decode_packet_number(truncated, pn_len, -1)
            aad = bytes((first,)) + packet[1:pn_offset] + truncated.to_bytes(pn_len, "big")
            return key.open(aad, packet[pn_offset + pn_len :], pn)
        start = header.end
    raise LookupError(f"no {wanted.name} packet in the datagram")


def open_short(datagram: bytes, cid_length: int, key: PacketKey, largest: int) -> bytes:
    """The plaintext of a 1-RTT packet (RFC 9001 §5.4, §5.3)."""
    pn_offset = 1 + cid_length
    first, truncated, pn_len = key.unprotect_header(datagram, pn_offset)
    pn = decode_packet_number(truncated, pn_len, largest)
    aad = bytes((first,)) + datagram[1:pn_offset] + truncated.to_bytes(pn_len, "big")
    return key.open(aad, datagram[pn_offset + pn_len :], pn)


def frames_of(payload: bytes) -> list[fr.Frame]:
    reader = Reader(payload)
    out = []
    while not reader.at_end():
        out.append(fr.parse_frame(reader, reader.varint()))
    return out


def key_from(secret: bytes, version: int) -> PacketKey:
    """Packet protection keys from a logged secret, with the stack's own derivation."""
    return PacketKey(AeadAlgorithm.AES_128_GCM, "sha256", secret, version)


def test_quic_client_logs_secrets_that_decrypt_its_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSLKEYLOGFILE set, a QUIC client appends the four traffic secrets under the
    ClientHello's random, and they are the real ones: each opens the packets of its
    direction and epoch captured on the wire, as Wireshark would."""
    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    sim = make_pair(seed=1, client={"cipher_suites": AES128})
    capture = Capture(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    stream_id = client.create_stream()
    client.send_stream_data(stream_id, b"read me with wireshark", end_stream=True)
    sim.run_for(0.5)

    lines = parse_log(log)
    assert {label for label, _, _ in lines} >= TRAFFIC_LABELS
    assert len({r for _, r, _ in lines}) == 1  # one connection, one client_random

    # The client_random is the ClientHello's (RFC 8446 §4.1.2), read off the wire.
    version = client.version
    _, client_initial = initial_keys(version, client.original_destination_cid, is_client=False)
    hello = open_long(capture.up[0], PacketType.INITIAL, client_initial)
    crypto = next(f for f in frames_of(hello) if isinstance(f, fr.CryptoFrame))
    assert crypto.offset == 0 and crypto.data[0] == 1  # ClientHello
    client_random = crypto.data[6:38].hex()
    assert {r for _, r, _ in lines} == {client_random}
    secrets = secrets_by_label(lines, client_random)

    # Handshake packets, each direction, under the logged handshake secrets.
    server_hs = key_from(secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"], version)
    client_hs = key_from(secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"], version)
    server_flight = open_long(capture.down[0], PacketType.HANDSHAKE, server_hs)
    assert any(isinstance(f, fr.CryptoFrame) for f in frames_of(server_flight))
    client_flight = next(d for d in capture.up if _has_handshake(d))
    finished = open_long(client_flight, PacketType.HANDSHAKE, client_hs)
    assert any(isinstance(f, fr.CryptoFrame) for f in frames_of(finished))

    # 1-RTT: the client's stream data, and the server's HANDSHAKE_DONE.
    client_1rtt = key_from(secrets["CLIENT_TRAFFIC_SECRET_0"], version)
    server_1rtt = key_from(secrets["SERVER_TRAFFIC_SECRET_0"], version)
    cid_length = client.cid_length
    streams = [
        f
        for d in capture.up
        if not d[0] & 0x80
        for f in frames_of(open_short(d, cid_length, client_1rtt, 0))
        if isinstance(f, fr.StreamFrame)
    ]
    assert any(f.stream_id == stream_id and f.data == b"read me with wireshark" for f in streams)
    server_frames = [
        f
        for d in capture.down
        if not d[0] & 0x80
        for f in frames_of(open_short(d, cid_length, server_1rtt, 0))
    ]
    assert any(isinstance(f, fr.HandshakeDoneFrame) for f in server_frames)


def _long_types(datagram: bytes) -> list[PacketType]:
    """The types of the long-header packets a datagram starts with."""
    out = []
    start = 0
    while start < len(datagram) and datagram[start] & 0x80:
        header = parse_long_header(datagram, start)
        out.append(header.packet_type)
        start = header.end
    return out


def _has_handshake(datagram: bytes) -> bool:
    return PacketType.HANDSHAKE in _long_types(datagram)


def test_a_wrong_secret_would_not_open_the_packets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above has teeth: the other direction's secret fails to open a packet."""
    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    sim = make_pair(seed=2, client={"cipher_suites": AES128})
    capture = Capture(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    (random,) = {r for _, r, _ in parse_log(log)}
    secrets = secrets_by_label(parse_log(log), random)
    wrong = key_from(secrets["CLIENT_TRAFFIC_SECRET_0"], client.version)
    datagram = next(d for d in capture.down if not d[0] & 0x80)
    with pytest.raises(DecryptError):
        open_short(datagram, client.cid_length, wrong, 0)


def test_two_connections_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second connection adds its lines after the first one's (append, never truncate)."""
    log = tmp_path / "keys.log"
    log.write_text("# kept\n", encoding="ascii")
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    handshake(make_pair(seed=3))
    first = log.read_text(encoding="ascii")
    handshake(make_pair(seed=4))
    second = log.read_text(encoding="ascii")
    assert second.startswith(first) and first.startswith("# kept\n")
    lines = parse_log(log)
    randoms = list(dict.fromkeys(r for _, r, _ in lines))
    assert len(randoms) == 2
    for random in randoms:
        assert set(secrets_by_label(lines, random)) >= TRAFFIC_LABELS


def test_explicit_key_log_wins_and_servers_never_use_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SSLKEYLOGFILE set, a client's configured key_log gets the lines instead of
    the file, and the server (QUIC here) writes nothing to the file: the file never
    appears."""
    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    received: list[str] = []
    sim = make_pair(seed=5, client={"key_log": received.append})
    handshake(sim)
    assert not log.exists()
    labels = {line.split(" ")[0] for line in received}
    assert labels >= TRAFFIC_LABELS
    assert all(LINE.match(line) for line in received)


def test_unwritable_key_log_file_warns_once_and_handshakes_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A SSLKEYLOGFILE that cannot be opened (its directory is a regular file: refused
    even to root) logs one warning however many lines and connections; every handshake
    completes."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    path = str(blocker / "keys.log")
    monkeypatch.setenv("SSLKEYLOGFILE", path)
    caplog.set_level(logging.WARNING, logger="quicnet.tls")
    for seed in (6, 7):
        sim = make_pair(seed=seed)
        handshake(sim)
        client = sim.client.impl
        assert isinstance(client, QuicConnection) and client.handshake_confirmed
    warnings = [r for r in caplog.records if path in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


# TLS over TCP ----------------------------------------------------------------------------


def _write_identity(directory: Path) -> tuple[ClientConfig, ServerConfig, Path, Path]:
    ident = dev_identity()
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(c.to_pem() for c in ident.certificate_chain))
    key.write_bytes(ident.private_key.to_pem())
    client = ClientConfig(server_name="localhost", trust_roots=[ident.trust_root])
    server = ServerConfig(
        certificate_chain=list(ident.certificate_chain), private_key=ident.private_key
    )
    return client, server, cert, key


def test_tcp_client_logs_the_same_secrets_as_openssl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TLS-over-TCP client against Python's ``ssl`` server on loopback: with
    SSLKEYLOGFILE set it logs the lines OpenSSL logs on the server side (its
    ``keylog_filename``) for the same connection, line for line."""
    ours, theirs = tmp_path / "client.log", tmp_path / "openssl-server.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(ours))
    client_config, _, cert, key = _write_identity(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.keylog_filename = str(theirs)

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx)
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await open_connection("127.0.0.1", port, client_config)
            writer.write(b"hello")
            await writer.drain()
            assert await reader.readexactly(5) == b"hello"
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    our_lines = parse_log(ours)
    assert {label for label, _, _ in our_lines} >= TRAFFIC_LABELS
    assert sorted(our_lines) == sorted(parse_log(theirs))


def test_tcp_server_never_writes_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quicnet TLS-over-TCP server with SSLKEYLOGFILE set logs nothing there (the
    client here logs to its own callback)."""
    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    client_config, server_config, _, _ = _write_identity(tmp_path)
    received: list[str] = []
    client_config.key_log = received.append

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(5))
        await writer.drain()
        writer.close()

    async def main() -> None:
        server = await start_server(echo, "127.0.0.1", 0, server_config)
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await open_connection("127.0.0.1", port, client_config)
            writer.write(b"hello")
            await writer.drain()
            assert await reader.readexactly(5) == b"hello"
            writer.close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert not log.exists()
    assert {line.split(" ")[0] for line in received} >= TRAFFIC_LABELS


def test_a_path_the_os_refuses_outright_warns_instead_of_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key_log_file whose path has a NUL byte (ValueError from the OS layer, not
    OSError) warns once; its calls, made from inside a handshake, never raise."""
    writer = key_log_file("keys\x00.log")
    caplog.set_level(logging.WARNING, logger="quicnet.tls")
    writer("CLIENT_TRAFFIC_SECRET_0 " + "00" * 32 + " " + "11" * 32)
    writer("SERVER_TRAFFIC_SECRET_0 " + "00" * 32 + " " + "22" * 32)
    assert len([r for r in caplog.records if "keys" in r.getMessage()]) == 1


def test_zero_rtt_client_logs_the_early_secret_that_opens_its_0rtt_packets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed client sending 0-RTT also logs CLIENT_EARLY_TRAFFIC_SECRET, and that
    secret opens the 0-RTT packets on the wire (RFC 9001 §5.1, §4.6)."""
    first = make_pair(seed=20, server={"enable_early_data": True})
    handshake(first)
    first.run_for(0.5)
    tickets = first.client.events_of(SessionTicketReceived)
    assert tickets

    log = tmp_path / "keys.log"
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    client = QuicConnection(
        client_config(
            session_ticket=tickets[0].ticket, enable_early_data=True, cipher_suites=AES128
        )
    )
    sim = Simulation(
        client, first.server.impl, seed=21, start=first.now + 1.0, client_address=SECOND
    )
    capture = Capture(sim)
    sim.connect()
    stream_id = client.create_stream()
    client.send_stream_data(stream_id, b"early words", end_stream=True)
    sim.run_until(lambda: client.handshake_confirmed, timeout=30, what="handshake")

    lines = parse_log(log)
    (random,) = {r for _, r, _ in lines}
    secrets = secrets_by_label(lines, random)
    assert "CLIENT_EARLY_TRAFFIC_SECRET" in secrets
    early = key_from(secrets["CLIENT_EARLY_TRAFFIC_SECRET"], client.version)
    early_frames = [
        f
        for d in capture.up
        if PacketType.ZERO_RTT in _long_types(d)
        for f in frames_of(open_long(d, PacketType.ZERO_RTT, early))
    ]
    assert any(
        isinstance(f, fr.StreamFrame) and f.stream_id == stream_id and f.data == b"early words"
        for f in early_frames
    )


def test_quic_client_reads_the_variable_when_its_configuration_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QUIC configuration reads SSLKEYLOGFILE once, when it is made (not per
    connection): a client configuration made before the variable was set logs nothing,
    one made after logs each of its connections; a server's never names the file, and a
    configured key_log wins."""
    log = tmp_path / "keys.log"
    monkeypatch.delenv("SSLKEYLOGFILE", raising=False)
    before = client_config()
    assert before.client_key_log() is None
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    handshake(_pair(before, 30))
    assert not log.exists()
    after = client_config()
    assert after.client_key_log() is key_log_file(str(log))
    monkeypatch.delenv("SSLKEYLOGFILE")  # read already: the configuration keeps it
    handshake(_pair(after, 31))
    handshake(_pair(after, 32))
    lines = parse_log(log)
    randoms = {r for _, r, _ in lines}
    assert len(randoms) == 2
    for random in randoms:
        assert set(secrets_by_label(lines, random)) >= TRAFFIC_LABELS
    received: list[str] = []
    monkeypatch.setenv("SSLKEYLOGFILE", str(log))
    assert client_config(key_log=received.append).client_key_log() == received.append
    assert server_config().client_key_log() is None
    server = make_pair(seed=33, use_endpoint=False).server.impl
    assert isinstance(server, QuicConnection)
    assert server.tls.config.key_log is None


def _pair(config: QuicConfiguration, seed: int) -> Simulation:
    """A client of ``config`` and a fresh endpoint, not yet connected."""
    return Simulation(QuicConnection(config), QuicEndpoint(server_config()), seed=seed)
