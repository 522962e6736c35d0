"""The TLS exporter (RFC 8446 §7.5) over TCP: the exporter master secret is derived at
the first export (not on every handshake); both ends export the same keying material,
the value the EXPORTER_SECRET of the key log (derived at once for it) gives."""

from __future__ import annotations

import dataclasses

import pytest
from test_negative_helpers import client_config, connected_pair

from quicnet.tls import TLSConnection
from quicnet.tls.errors import UsageError
from quicnet.tls.key_schedule import CIPHER_SUITES, export_keying_material

LABEL = b"EXPERIMENTAL-quicnet-test"


def test_both_ends_export_what_the_logged_exporter_secret_gives() -> None:
    lines: list[str] = []
    client, server = connected_pair(dataclasses.replace(client_config(), key_log=lines.append))
    (logged,) = [line for line in lines if line.startswith("EXPORTER_SECRET ")]
    secret = bytes.fromhex(logged.split(" ")[2])
    ours = server.export_keying_material(LABEL, b"context", 48)  # the server logs nothing
    assert client.export_keying_material(LABEL, b"context", 48) == ours
    assert server.engine.cipher_suite is not None
    suite = CIPHER_SUITES[server.engine.cipher_suite]
    assert export_keying_material(suite, secret, LABEL, b"context", 48) == ours
    # Again (the secret kept), and another label or context gives other bytes.
    assert server.export_keying_material(LABEL, b"context", 48) == ours
    assert server.export_keying_material(LABEL, b"other", 48) != ours
    assert client.export_keying_material(b"EXPERIMENTAL-other", b"context", 48) != ours


def test_no_export_before_the_handshake() -> None:
    client = TLSConnection.client(client_config())
    with pytest.raises(UsageError):
        client.export_keying_material(LABEL, b"", 32)
