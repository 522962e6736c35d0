"""QLOGDIR and SSLKEYLOGFILE reach q_client and q_server, as docs/debugging.md says:
both CLIs as child processes on loopback, the variables set in their environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli_server, run_subprocess

from quicnet.crypto import dev_identity

LABELS = (
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET_0",
    "SERVER_TRAFFIC_SECRET_0",
    "EXPORTER_SECRET",
)


def test_q_client_and_q_server_trace_and_only_the_client_logs_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With both variables set for both processes: each side writes its qlog trace of the
    one connection, and the key log holds the client's secrets once (the server, which
    sees the same variable, writes none of its own)."""
    ident = dev_identity()
    cert, key, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.write_bytes(ident.certificate.to_pem())
    key.write_bytes(ident.private_key.to_pem())
    ca.write_bytes(ident.trust_root.to_pem())
    qlog, keys = tmp_path / "qlog", tmp_path / "keys.log"
    monkeypatch.setenv("QLOGDIR", str(qlog))
    monkeypatch.setenv("SSLKEYLOGFILE", str(keys))

    args = ("-accept", "127.0.0.1:0", "-cert", str(cert), "-key", str(key))
    with cli_server("q_server", *args) as server:
        result = run_subprocess(
            "q_client",
            "-connect",
            f"127.0.0.1:{server.port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ca),
            stdin=b"traced and logged",
        )
        server.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"traced and logged"

    names = sorted(p.name for p in qlog.iterdir())
    assert len(names) == 2
    client_name, server_name = names
    odcid = client_name.removesuffix("_client.sqlog")
    assert server_name == f"{odcid}_server.sqlog"
    for name, vantage in ((client_name, "client"), (server_name, "server")):
        records = [json.loads(r) for r in (qlog / name).read_text().split("\x1e")[1:]]
        assert records[0]["trace"]["vantage_point"]["type"] == vantage
        assert records[0]["trace"]["common_fields"]["ODCID"] == odcid
        frames = [
            f["frame_type"]
            for r in records[1:]
            if r["name"] == "transport:packet_received"
            for f in r["data"]["frames"]
        ]
        assert "stream" in frames  # the echo, each way
    client_records = (qlog / client_name).read_text().split("\x1e")[1:]
    assert json.loads(client_records[-1])["data"] == {"new": "closed"}

    lines = keys.read_text(encoding="ascii").splitlines()
    assert sorted(line.split(" ")[0] for line in lines) == sorted(LABELS)
    assert len({line.split(" ")[1] for line in lines}) == 1
