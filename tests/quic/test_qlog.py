"""qlog traces (quicnet.quic.qlog): files, JSON-SEQ records, and events that agree with
what the simulated network did."""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from simnet import (
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    make_pair,
    packet_types,
    payloads,
    send_on_new_streams,
)

from quicnet.crypto import dev_identity
from quicnet.io.udp import UdpClient, UdpServer
from quicnet.quic import (
    ConnectionState,
    ConnectionTerminated,
    HandshakeCompleted,
    QuicConfiguration,
    QuicVersion,
    SessionTicketReceived,
)
from quicnet.quic.connection import QuicConnection
from quicnet.quic.packets import PacketType, decode_packet_number

RS = "\x1e"
Record = dict[str, Any]


def read_trace(path: Path) -> list[Record]:
    """The records of a JSON-SEQ file (RFC 7464 §2: RS, a JSON text, LF), checked."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(RS), "a JSON-SEQ file starts with a record separator"
    chunks = text.split(RS)[1:]
    records = []
    for chunk in chunks:
        assert chunk.endswith("\n") and "\n" not in chunk[:-1], chunk[:80]
        records.append(json.loads(chunk))
    return records


def events(records: list[Record], name: str) -> list[Record]:
    return [r["data"] for r in records[1:] if r["name"] == name]


def numbers(records: list[Record], name: str, packet_type: str) -> set[int]:
    return {
        e["header"]["packet_number"]
        for e in events(records, name)
        if e["header"]["packet_type"] == packet_type
    }


def terminated(sim: Simulation) -> Callable[[], bool]:
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    return lambda: client.state == ConnectionState.TERMINATED and not sim.server.live_connections()


def close_and_wait(sim: Simulation) -> None:
    """End the connection on both sides, so the traces are finished and their files closed."""
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    client.close()
    sim.run_until(terminated(sim), timeout=30, what="both ends closed")


class OneRttDropper:
    """A link filter dropping a share of the client's 1-RTT-only datagrams, remembering
    the packet number of each one it dropped (header protection removed with the
    client's own key, RFC 9001 §5.4)."""

    def __init__(self, client: QuicConnection, share: float, seed: int) -> None:
        self.client = client
        self.share = share
        self.rng = random.Random(seed)
        self.largest = -1
        self.dropped: set[int] = set()

    def __call__(self, data: bytes, now: float) -> bool:
        key = self.client.keys.send
        if data[0] & 0x80 or key is None:
            return True  # a long header first: the handshake, left alone
        pn_offset = 1 + len(self.client.cids.current_peer_cid)
        _, truncated, pn_len = key.unprotect_header(data, pn_offset)
        pn = decode_packet_number(truncated, pn_len, self.largest)
        self.largest = max(self.largest, pn)
        if self.rng.random() < self.share:
            self.dropped.add(pn)
            return False
        return True


def test_lossy_transfer_traces_agree_with_the_network(tmp_path: Path) -> None:
    """Both sides trace one file each; the header is qlog 0.3 JSON-SEQ; what the server
    logged as received is what the client logged as sent minus what the link dropped,
    and the client logged the dropped packets as lost."""
    sim = make_pair(seed=11, client={"qlog_dir": str(tmp_path)}, server={"qlog_dir": str(tmp_path)})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    dropper = OneRttDropper(client, 0.15, seed=5)
    sim.c2s.filter = dropper
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(1, [60_000, 3_000]))
    sim.run_until(lambda: collector.complete(sent), timeout=60, what="transfer")
    # Everything up to here was either delivered or dropped by the link.
    last_data_pn = client.recovery.spaces[2].next_packet_number - 1
    sim.c2s.filter = None
    client.close(0, "done")
    sim.run_until(terminated(sim), timeout=30, what="both ends closed")

    odcid = client.original_destination_cid.hex()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{odcid}_client.sqlog", f"{odcid}_server.sqlog"]
    client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
    server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")

    for vantage, trace in (("client", client_trace), ("server", server_trace)):
        header = trace[0]
        assert header["qlog_format"] == "JSON-SEQ"
        assert header["qlog_version"] == "0.3"
        assert header["trace"]["vantage_point"]["type"] == vantage
        common = header["trace"]["common_fields"]
        assert common["ODCID"] == common["group_id"] == odcid
        assert common["time_format"] == "relative"
        times = [r["time"] for r in trace[1:]]
        assert times == sorted(times) and times[0] == 0.0
        for name in ("transport:packet_sent", "transport:packet_received"):
            for e in events(trace, name):
                assert isinstance(e["header"]["packet_number"], int)
                assert e["header"]["packet_type"] in ("initial", "handshake", "0RTT", "1RTT")
                assert e["frames"] and all("frame_type" in f for f in e["frames"])
                assert e["raw"]["length"] > e["raw"]["payload_length"] > 0

    # Each packet number space, both directions: nothing received that was not sent.
    for packet_type in ("initial", "handshake", "1RTT"):
        client_sent = numbers(client_trace, "transport:packet_sent", packet_type)
        server_sent = numbers(server_trace, "transport:packet_sent", packet_type)
        assert numbers(server_trace, "transport:packet_received", packet_type) <= client_sent
        assert numbers(client_trace, "transport:packet_received", packet_type) <= server_sent
        assert client_sent and server_sent

    # 1-RTT up to the end of the transfer: sent = received + dropped, exactly.
    sent_1rtt = {
        pn for pn in numbers(client_trace, "transport:packet_sent", "1RTT") if pn <= last_data_pn
    }
    received_1rtt = {
        pn
        for pn in numbers(server_trace, "transport:packet_received", "1RTT")
        if pn <= last_data_pn
    }
    assert dropper.dropped, "the filter dropped nothing: the test proves nothing"
    assert sent_1rtt - received_1rtt == dropper.dropped
    assert received_1rtt == sent_1rtt - dropper.dropped

    # Both ends render a packet's frames alike (ACK delays scaled by the sender's exponent).
    def by_number(trace: list[Record], name: str, packet_type: str) -> dict[int, Any]:
        return {
            e["header"]["packet_number"]: (e["frames"], e["raw"]["length"])
            for e in events(trace, name)
            if e["header"]["packet_type"] == packet_type
        }

    for packet_type in ("initial", "handshake", "1RTT"):
        for sender, receiver in ((client_trace, server_trace), (server_trace, client_trace)):
            sent_packets = by_number(sender, "transport:packet_sent", packet_type)
            for pn, seen in by_number(receiver, "transport:packet_received", packet_type).items():
                assert seen == sent_packets[pn], (packet_type, pn)

    lost = events(client_trace, "recovery:packet_lost")
    lost_numbers = {e["header"]["packet_number"] for e in lost}
    assert lost_numbers and lost_numbers <= dropper.dropped
    assert all(e["header"]["packet_type"] == "1RTT" for e in lost)
    assert all(e["trigger"] in ("reordering_threshold", "time_threshold") for e in lost)
    # What a lost packet carried is the stream data the sender had put in it.
    sent_frames = {
        e["header"]["packet_number"]: [f for f in e["frames"] if f["frame_type"] == "stream"]
        for e in events(client_trace, "transport:packet_sent")
        if e["header"]["packet_type"] == "1RTT"
    }
    for e in lost:
        assert e["frames"] == sent_frames[e["header"]["packet_number"]]

    # Stream frames as sent cover each payload exactly, fin on the last byte.
    for stream_id, data in sent.items():
        stream_frames = [
            f
            for e in events(client_trace, "transport:packet_sent")
            for f in e["frames"]
            if f["frame_type"] == "stream" and f["stream_id"] == stream_id
        ]
        covered = {b for f in stream_frames for b in range(f["offset"], f["offset"] + f["length"])}
        assert covered == set(range(len(data)))
        assert any(f.get("fin") and f["offset"] + f["length"] == len(data) for f in stream_frames)


def test_states_metrics_and_close_are_traced(tmp_path: Path) -> None:
    """connection_state_updated runs through the handshake to closed; metrics carry the
    path's RTT (40 ms round trip on the simulated links); connection_closed says who
    closed and why."""
    sim = make_pair(seed=2, client={"qlog_dir": str(tmp_path)}, server={"qlog_dir": str(tmp_path)})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    client.close(7, "enough")
    sim.run_until(terminated(sim), timeout=30, what="both ends closed")
    odcid = client.original_destination_cid.hex()
    client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
    server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")

    def states(trace: list[Record]) -> list[str]:
        return [e["new"] for e in events(trace, "connectivity:connection_state_updated")]

    assert states(client_trace) == [
        "attempted",
        "handshake_complete",
        "handshake_confirmed",
        "closing",
        "closed",
    ]
    assert states(server_trace)[-4:] == [
        "handshake_complete",
        "handshake_confirmed",
        "draining",
        "closed",
    ]
    assert events(client_trace, "connectivity:connection_closed") == [
        {"owner": "local", "reason": "enough", "trigger": "error", "application_code": 7}
    ]
    assert events(server_trace, "connectivity:connection_closed") == [
        {"owner": "remote", "reason": "enough", "trigger": "error", "application_code": 7}
    ]
    # The CONNECTION_CLOSE the client sent is in its trace, as the server received it.
    closes = [
        f
        for e in events(client_trace, "transport:packet_sent")
        for f in e["frames"]
        if f["frame_type"] == "connection_close"
    ]
    assert closes and closes[0]["error_space"] == "application"
    assert closes[0]["error_code"] == 7 and closes[0]["reason"] == "enough"

    metrics = events(client_trace, "recovery:metrics_updated")
    min_rtts = [m["min_rtt"] for m in metrics if "min_rtt" in m]
    assert min_rtts and min_rtts[0] == pytest.approx(40.0)
    assert any("congestion_window" in m for m in metrics)
    assert any(m.get("bytes_in_flight", -1) == 0 for m in metrics)
    # The server's transport parameters reached the client's trace, ODCID included.
    remote = [p for p in events(client_trace, "transport:parameters_set") if p["owner"] == "remote"]
    assert remote and remote[0]["original_destination_connection_id"] == odcid
    alpn = events(client_trace, "transport:alpn_information")
    assert alpn and alpn[0]["chosen_alpn"] == client.alpn_protocol
    # Secrets never go into a trace: key_updated says which key, never its value.
    keys = events(client_trace, "security:key_updated")
    assert {k["key_type"] for k in keys} >= {"client_1rtt_secret", "server_1rtt_secret"}
    assert all(k["new"] == "" for k in keys)


def test_qlogdir_environment_variable_turns_tracing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QLOGDIR is the default of qlog_dir, read when the configuration is made; a
    directory that does not exist yet is created."""
    directory = tmp_path / "traces" / "here"
    monkeypatch.setenv("QLOGDIR", str(directory))
    sim = make_pair(seed=4)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.configuration.qlog_dir == str(directory)
    handshake(sim)
    odcid = client.original_destination_cid.hex()
    names = sorted(p.name for p in directory.iterdir())
    assert names == [f"{odcid}_client.sqlog", f"{odcid}_server.sqlog"]
    # Written through: the live connection's trace is already on disk.
    assert events(read_trace(directory / names[0]), "transport:packet_sent")
    close_and_wait(sim)


def test_tracing_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without QLOGDIR and qlog_dir, or with qlog_dir=None over QLOGDIR, no connection
    has a tracer and no file appears anywhere."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QLOGDIR", raising=False)
    sim = make_pair(seed=6)
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.tracer is None
    assert all(c.tracer is None for c in sim.server.live_connections())

    elsewhere = tmp_path / "env"
    monkeypatch.setenv("QLOGDIR", str(elsewhere))
    sim = make_pair(seed=7, client={"qlog_dir": None}, server={"qlog_dir": None})
    handshake(sim)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory_warns_and_the_connection_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A qlog_dir that cannot be created (under a regular file: refused even to root)
    logs one warning; the handshake and a transfer complete without a trace."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    directory = str(blocker / "qlog")
    caplog.set_level(logging.WARNING, logger="quicnet.quic")
    sim = make_pair(seed=8, client={"qlog_dir": directory}, server={"qlog_dir": directory})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(2, [20_000]))
    sim.run_until(lambda: collector.complete(sent), timeout=30, what="transfer")
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))
    assert client.tracer is None and client.recovery.loss_observer is None
    warnings = [r for r in caplog.records if "qlog" in r.getMessage()]
    assert len(warnings) == 1 and directory in warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert list(tmp_path.iterdir()) == [blocker]


def test_two_connections_with_the_same_odcid_do_not_overwrite(tmp_path: Path) -> None:
    """A second trace under a taken name gets a suffix (the file is opened exclusively)."""
    odcid = bytes(range(8))
    for seed in (1, 2):
        sim = make_pair(seed=seed, client={"qlog_dir": str(tmp_path)})
        client = sim.client.impl
        assert isinstance(client, QuicConnection)
        client.original_destination_cid = odcid  # before connect(): both use one ODCID
        assert client.tracer is not None
        client.tracer.path = str(tmp_path / f"{odcid.hex()}_client.sqlog")
        handshake(sim)
        close_and_wait(sim)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{odcid.hex()}_client-2.sqlog", f"{odcid.hex()}_client.sqlog"]
    for name in names:
        assert read_trace(tmp_path / name)[0]["trace"]["common_fields"]["ODCID"] == odcid.hex()


def test_udp_driver_on_loopback_writes_complete_traces(tmp_path: Path) -> None:
    """Real sockets: an echo over the UDP driver, then the server shuts down (it sends
    CONNECTION_CLOSE and drops its connections without a closing period). Both traces
    are on disk, the server's up to that CONNECTION_CLOSE, before anything is garbage
    collected or closed; the client's, after its draining period, ends "closed"."""
    ident = dev_identity()
    server = UdpServer(
        QuicConfiguration(
            is_client=False,
            certificate_chain=ident.certificate_chain,
            private_key=ident.private_key,
            qlog_dir=str(tmp_path),
        ),
        "127.0.0.1",
    )
    client = UdpClient(
        QuicConfiguration(
            server_name="localhost", trust_roots=[ident.trust_root], qlog_dir=str(tmp_path)
        ),
        server.local_address,
        local_host="127.0.0.1",
    )
    try:
        conn = client.connection
        deadline = time.monotonic() + 20
        echoed = bytearray()
        stream_id: int | None = None
        ended = server_closed = False
        while not ended:
            assert time.monotonic() < deadline, "the exchange did not finish"
            # Once it sent CONNECTION_CLOSE the server is gone, as after QuicServer.close().
            for server_conn, event in [] if server_closed else server.poll(0.002):
                data = getattr(event, "data", None)
                if data:
                    server_conn.send_stream_data(event.stream_id, data)
            for event in client.poll(0.002):
                if isinstance(event, HandshakeCompleted):
                    stream_id = conn.create_stream()
                    conn.send_stream_data(stream_id, b"ping over loopback")
                elif getattr(event, "data", None):
                    echoed += event.data
                    if echoed == b"ping over loopback":
                        server.endpoint.close(0, "bye")
                        server.flush()
                        server_closed = True
                elif isinstance(event, ConnectionTerminated):
                    ended = True
        assert echoed == b"ping over loopback" and stream_id is not None
        while conn.state != ConnectionState.TERMINATED:  # the draining period
            assert time.monotonic() < deadline, "the client never left draining"
            client.poll(0.005)

        odcid = conn.original_destination_cid.hex()
        server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")
        client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
        assert server_trace[0]["trace"]["vantage_point"]["type"] == "server"
        last = server_trace[-1]
        assert last["name"] == "transport:packet_sent"
        assert [f["frame_type"] for f in last["data"]["frames"]] == ["connection_close"]
        assert last["data"]["frames"][0]["reason"] == "bye"
        assert client_trace[-1]["name"] == "connectivity:connection_state_updated"
        assert client_trace[-1]["data"] == {"new": "closed"}
        assert any(
            f["frame_type"] == "stream" and f["stream_id"] == stream_id
            for e in events(client_trace, "transport:packet_received")
            for f in e["frames"]
        )
        assert conn.tracer is not None and conn.tracer.enabled is False  # closed
    finally:
        for abandoned in server.endpoint.connections.values():
            if abandoned.tracer is not None:
                abandoned.tracer.close()
        client.close_socket()
        server.close_socket()


def test_retry_is_traced_and_both_files_keep_the_original_dcid(tmp_path: Path) -> None:
    """After a Retry the server's connection is keyed by the Retry's CID, yet its trace
    is named, like the client's, by the client's first DCID; the client logs the Retry
    it took, whose source CID the server announces as retry_source_connection_id."""
    sim = make_pair(
        seed=9,
        client={"qlog_dir": str(tmp_path)},
        server={"qlog_dir": str(tmp_path)},
        endpoint={"require_retry": True},
    )
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    odcid = client.original_destination_cid.hex()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{odcid}_client.sqlog",
        f"{odcid}_server.sqlog",
    ]
    client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
    server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")
    retries = [
        e
        for e in events(client_trace, "transport:packet_received")
        if e["header"]["packet_type"] == "retry"
    ]
    assert len(retries) == 1 and retries[0]["retry_token"]["length"] > 0
    assert retries[0]["header"]["dcid"] == client.host_cid.hex()
    assert client.retry_source_cid is not None
    assert retries[0]["header"]["scid"] == client.retry_source_cid.hex()
    local = [p for p in events(server_trace, "transport:parameters_set") if p["owner"] == "local"]
    assert local[0]["retry_source_connection_id"] == client.retry_source_cid.hex()
    assert local[0]["original_destination_connection_id"] == odcid
    # The Initial after the Retry goes to the Retry's source CID.
    initials = [
        e
        for e in events(client_trace, "transport:packet_sent")
        if e["header"]["packet_type"] == "initial"
    ]
    assert initials[0]["header"]["dcid"] == odcid
    assert initials[1]["header"]["dcid"] == client.retry_source_cid.hex()
    close_and_wait(sim)


def test_version_negotiation_is_traced(tmp_path: Path) -> None:
    """A client offering a version the server does not speak logs the Version
    Negotiation packet with the server's versions and the version chosen from them; its
    first version_information chose nothing yet."""
    unknown = 0x1A2A3A4A
    sim = make_pair(
        seed=12,
        client={"qlog_dir": str(tmp_path), "version": unknown},
        server={"supported_versions": (QuicVersion.V1,)},
    )
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    assert client.version == QuicVersion.V1
    trace = read_trace(tmp_path / f"{client.original_destination_cid.hex()}_client.sqlog")
    (vn,) = [
        e
        for e in events(trace, "transport:packet_received")
        if e["header"]["packet_type"] == "version_negotiation"
    ]
    # v1 and a reserved version the server greases with (RFC 9000 §6.3, 0x?a?a?a?a).
    versions = vn["supported_versions"]
    assert "00000001" in versions
    assert all(v == "00000001" or int(v, 16) & 0x0F0F0F0F == 0x0A0A0A0A for v in versions)
    assert vn["header"]["dcid"] == client.host_cid.hex()
    first, second = events(trace, "transport:version_information")
    assert "chosen_version" not in first
    assert second["server_versions"] == versions and second["chosen_version"] == "00000001"
    close_and_wait(sim)


def test_a_full_disk_mid_connection_stops_the_trace_not_the_connection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The trace file's descriptor is pointed at /dev/full once the handshake is done
    (every write then fails with ENOSPC, as on a full disk): one warning, tracing stops,
    and the transfer still completes."""
    sim = make_pair(seed=13, client={"qlog_dir": str(tmp_path)})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    tracer = client.tracer
    assert tracer is not None and tracer.enabled
    trace = Path(tracer.path)
    fds = [
        int(fd.name)
        for fd in Path("/proc/self/fd").iterdir()
        if fd.exists() and fd.resolve() == trace.resolve()
    ]
    assert len(fds) == 1
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, fds[0])
    finally:
        os.close(full)
    caplog.set_level(logging.WARNING, logger="quicnet.quic")
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(3, [30_000]))
    sim.run_until(lambda: collector.complete(sent), timeout=30, what="transfer")
    assert tracer.enabled is False and client.recovery.loss_observer is None
    warnings = [r for r in caplog.records if "qlog" in r.getMessage()]
    assert len(warnings) == 1 and str(tmp_path) in warnings[0].getMessage()
    close_and_wait(sim)
    assert client.state == ConnectionState.TERMINATED


def test_zero_rtt_packets_are_traced_and_a_lost_one_is_labelled_0rtt(tmp_path: Path) -> None:
    """A resumed client sends stream data in 0-RTT; the link drops one 0-RTT-only
    datagram. Both traces log 0RTT packets, the server received only what the client
    sent, and the loss is logged as a 0RTT packet although 0-RTT and 1-RTT share one
    packet number space (RFC 9000 §12.3)."""
    first = make_pair(seed=40, server={"enable_early_data": True, "qlog_dir": str(tmp_path)})
    handshake(first)
    first.run_for(0.5)
    tickets = first.client.events_of(SessionTicketReceived)
    assert tickets
    endpoint = first.server.impl
    client = QuicConnection(
        client_config(
            session_ticket=tickets[0].ticket, enable_early_data=True, qlog_dir=str(tmp_path)
        )
    )
    sim = Simulation(
        client, endpoint, seed=41, start=first.now + 1.0, client_address=("10.0.0.1", 50001)
    )
    zero_rtt_only = 0

    def drop_second_zero_rtt_datagram(data: bytes, now: float) -> bool:
        nonlocal zero_rtt_only
        if packet_types(data) == [PacketType.ZERO_RTT]:
            zero_rtt_only += 1
            return zero_rtt_only != 2
        return True

    sim.c2s.filter = drop_second_zero_rtt_datagram
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.connect()
    sent = send_on_new_streams(client, payloads(4, [9_000]))
    sim.run_until(lambda: collector.complete(sent), timeout=30, what="early data delivered")
    sim.run_for(1.0)
    assert zero_rtt_only >= 2, "fewer than two 0-RTT-only datagrams: nothing was dropped"

    odcid = client.original_destination_cid.hex()
    client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
    server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")
    sent_0rtt = numbers(client_trace, "transport:packet_sent", "0RTT")
    received_0rtt = numbers(server_trace, "transport:packet_received", "0RTT")
    assert sent_0rtt and received_0rtt and received_0rtt < sent_0rtt
    lost = [e["header"] for e in events(client_trace, "recovery:packet_lost")]
    lost_0rtt = {h["packet_number"] for h in lost if h["packet_type"] == "0RTT"}
    assert lost_0rtt and lost_0rtt <= sent_0rtt - received_0rtt
    assert not {h["packet_number"] for h in lost if h["packet_type"] == "1RTT"} & sent_0rtt
    keys = {k["key_type"] for k in events(client_trace, "security:key_updated")}
    assert "client_0rtt_secret" in keys
    close_and_wait(sim)


def test_an_impossible_directory_name_warns_and_both_ends_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A qlog_dir the OS refuses outright (a NUL byte: ValueError, not OSError) turns
    tracing off with a warning; neither the client nor the server's endpoint (which
    aborts a connection whose code raises) loses its connection to it."""
    directory = "qlog\x00here"
    caplog.set_level(logging.WARNING, logger="quicnet.quic")
    sim = make_pair(seed=14, client={"qlog_dir": directory}, server={"qlog_dir": directory})
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    assert client.tracer is None
    assert [c.state for c in sim.server.live_connections()] == [ConnectionState.CONNECTED]
    warnings = [r for r in caplog.records if "qlog" in r.getMessage()]
    assert len(warnings) == 1


def test_a_preferred_address_is_traced(tmp_path: Path) -> None:
    """quic-events §5.3: the server's parameters_set carries its preferred_address (IPv4
    and IPv6 halves, the CID and reset token); the client logs the same as remote."""
    sim = make_pair(
        seed=36,
        client={"qlog_dir": str(tmp_path)},
        server={"qlog_dir": str(tmp_path), "preferred_address_v4": ("10.0.0.3", 4444)},
    )
    sim.add_server_address(("10.0.0.3", 4444))
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    handshake(sim)
    odcid = client.original_destination_cid.hex()
    server_trace = read_trace(tmp_path / f"{odcid}_server.sqlog")
    client_trace = read_trace(tmp_path / f"{odcid}_client.sqlog")
    local = [p for p in events(server_trace, "transport:parameters_set") if p["owner"] == "local"]
    remote = [p for p in events(client_trace, "transport:parameters_set") if p["owner"] == "remote"]
    preferred = client.remote_params.preferred_address if client.remote_params else None
    assert preferred is not None
    expected = {
        "ip_v4": "10.0.0.3",
        "port_v4": 4444,
        "ip_v6": "::",
        "port_v6": 0,
        "connection_id": preferred.connection_id.hex(),
        "stateless_reset_token": preferred.stateless_reset_token.hex(),
    }
    assert local[0]["preferred_address"] == expected
    assert remote[0]["preferred_address"] == expected
    close_and_wait(sim)
