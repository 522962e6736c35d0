"""The session file q_client -sess_out writes and -sess_in reads."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quicnet.cli.common import CliError
from quicnet.cli.quic_session import QuicSession
from quicnet.quic import QuicVersion
from quicnet.tls import SessionTicket

TICKET = SessionTicket(
    ticket=b"t" * 40,
    resumption_psk=b"p" * 32,
    cipher_suite=0x1301,
    ticket_lifetime=7200,
    ticket_age_add=12345,
    received_at=1_800_000_000.25,
    max_early_data_size=0xFFFFFFFF,
    server_name="localhost",
    alpn_protocol="hq-interop",
    transport_parameters=b"\x04\x01\x10",
)


def test_round_trip() -> None:
    saved = QuicSession(QuicVersion.V2, TICKET, b"\x02token")
    assert QuicSession.from_pem(saved.to_pem()) == saved
    assert QuicSession.from_pem(QuicSession(QuicVersion.V1, TICKET).to_pem()).token == b""


def test_not_a_session() -> None:
    with pytest.raises(CliError):
        QuicSession.from_pem(TICKET.to_pem())  # a TLS session alone is not a QUIC one


@given(st.binary(max_size=200))
def test_parsing_arbitrary_bodies_fails_cleanly(body: bytes) -> None:
    pem = b"-----BEGIN QUICNET QUIC SESSION-----\n" + base64.encodebytes(body)
    pem += b"-----END QUICNET QUIC SESSION-----\n"
    try:
        parsed = QuicSession.from_pem(pem)
    except CliError:
        return  # the only error a malformed file may raise
    assert parsed.to_pem() == QuicSession.from_pem(parsed.to_pem()).to_pem()
