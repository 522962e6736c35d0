"""OCSP stapling over QUIC (RFC 9001 §4: the TLS 1.3 handshake carries it as is).

A client that requires a staple (``QuicConfiguration.require_ocsp_staple``)
connects to a server that staples (``ocsp_staple``) a good response, and is
refused, with the TLS alert as a CRYPTO_ERROR (RFC 9001 §4.8), for a revoked
one or none. Simulated network and time: see ``simnet.py``.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from simnet import handshake, make_pair

from quicnet.crypto import generate_private_key, issue_certificate, make_ca, make_csr
from quicnet.crypto.ocsp import RevocationReason, build_ocsp_request
from quicnet.crypto.ocsp_responder import IndexEntry, OCSPResponder
from quicnet.quic import ConnectionState, ConnectionTerminated, QuicConnection

CRYPTO_ERROR = 0x100  # RFC 9001 §4.8: 0x100 + the TLS alert


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=QUIC Stapling CA", days=30)
    key = generate_private_key("EC")
    leaf = issue_certificate(make_csr(key, "/CN=localhost", names=["localhost"]), ca, ca_key)
    request = build_ocsp_request(leaf, ca, nonce=False).to_der()
    staples = {}
    for state in ("V", "R"):
        revoked = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) if state == "R" else None
        entry = IndexEntry(state, leaf.not_after, leaf.serial_number, "/CN=localhost", revoked,
                           RevocationReason.superseded if revoked else None)  # fmt: skip
        staples[state] = OCSPResponder(ca, ca, ca_key, {leaf.serial_number: entry}).respond(request)
    return {"ca": ca, "leaf": leaf, "key": key, "staples": staples}


def _pair(pki: dict[str, Any], staple: bytes | None) -> Any:
    return make_pair(
        seed=0,
        client={"trust_roots": (pki["ca"],), "require_ocsp_staple": True},
        server={
            "certificate_chain": (pki["leaf"],),
            "private_key": pki["key"],
            "ocsp_staple": staple,
        },
    )


def test_quic_client_accepts_a_good_staple(pki: dict[str, Any]) -> None:
    sim = _pair(pki, pki["staples"]["V"])
    handshake(sim)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    assert client.state == ConnectionState.CONNECTED


@pytest.mark.parametrize(("state", "alert"), [("R", 44), (None, 113)], ids=["revoked", "missing"])
def test_quic_client_refuses_a_bad_or_missing_staple(
    pki: dict[str, Any], state: str | None, alert: int
) -> None:
    sim = _pair(pki, pki["staples"][state] if state else None)
    sim.connect()
    sim.run_until(lambda: bool(sim.client.events_of(ConnectionTerminated)), what="refusal")
    [event] = sim.client.events_of(ConnectionTerminated)
    assert event.error_code == CRYPTO_ERROR + alert and not event.by_peer
    client = sim.client.impl
    assert isinstance(client, QuicConnection) and not client.handshake_complete
