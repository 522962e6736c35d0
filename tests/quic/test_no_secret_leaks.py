"""No secret of a QUIC connection shows in what it prints (issue 7: "no secret may
appear in a repr, log or error").

A simulated connection with both sides' TLS secrets collected through ``key_log``,
a session ticket, a qlog trace on both sides, every ``quicnet`` log record at DEBUG,
and a peer that breaks the rules (the server's error reaches the client in a
CONNECTION_CLOSE reason): none of the texts may hold a secret, in hex or as bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from adversary import seal_one_rtt
from simnet import handshake, make_pair

from quicnet.quic import ConnectionTerminated, SessionTicketReceived, TransportErrorCode
from quicnet.quic.frames import encode_stream


def _forms(secret: bytes) -> list[str]:
    """How a secret could show in text: hex (either case) or its bytes repr."""
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1]]


def test_no_secret_in_events_logs_errors_or_qlog(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="quicnet")
    lines: list[str] = []
    options = {"key_log": lines.append, "qlog_dir": str(tmp_path)}
    sim = make_pair(seed=48, client=dict(options), server=dict(options))
    handshake(sim)
    client = sim.client.connection
    client.send_datagram(b"hello")
    sim.run_for(0.5)  # the session tickets arrive
    # RFC 9000 §19.8: STREAM data on a stream the server opened for sending only.
    server_uni = 3
    frame = encode_stream(server_uni, 0, b"x", False)
    sim.waive("protocol errors", reason="the client's sealed frame breaks §19.8 on purpose")
    sim.inject(seal_one_rtt(client, frame), sim.client.address, sim.server.address)
    sim.run_for(1.0)
    [closed] = sim.client.events_of(ConnectionTerminated)
    assert closed.by_peer and closed.error_code == TransportErrorCode.STREAM_STATE_ERROR

    secrets = [bytes.fromhex(line.split()[2]) for line in lines]
    tickets = [e.ticket for e in sim.client.events_of(SessionTicketReceived)]
    assert tickets
    secrets += [t.resumption_psk for t in tickets]
    assert len(secrets) >= 8  # both sides' handshake and traffic secrets, and the PSKs

    texts = [caplog.text, repr(client.termination), str(closed.reason)]
    for node in (sim.client, sim.server):
        texts += [repr(e) for e in node.events] + [str(e) for e in node.events]
    traces = sorted(tmp_path.glob("*.sqlog"))
    assert len(traces) == 2
    texts += [p.read_text() for p in traces]
    for text in texts:
        for secret in secrets:
            for form in _forms(secret):
                assert form not in text, f"a secret ({secret.hex()[:8]}...) in {text[:80]!r}"
