"""The early-data context a server seals into its tickets (RFC 9001 §4.6.3).

Early data depends on what the server's configuration was when it issued the
ticket (over QUIC: its transport limits, RFC 9000 §7.4.1). A server accepts
0-RTT only with a ticket whose context equals its current one; any other
ticket still resumes the session, without early data.

The resumption context is stricter: a ticket issued under another one does not
resume at all (QUIC puts its version there, RFC 9369 §5).
"""

from __future__ import annotations

from test_negative_helpers import NOW, client_config, drain, pump, server_config

from quicnet.tls import (
    HandshakeComplete,
    SessionTicket,
    SessionTicketReceived,
    StrikeRegister,
    TicketKeys,
    TLSConnection,
)
from quicnet.tls.session import TicketState


def _ticket(keys: TicketKeys, context: bytes) -> SessionTicket:
    client = TLSConnection.client(client_config())
    server = TLSConnection.server(
        server_config(ticket_keys=keys, max_early_data_size=16384, early_data_context=context)
    )
    client.start(NOW)
    pump(client, server)
    tickets = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)]
    assert tickets and tickets[0].max_early_data_size == 16384
    return tickets[0]


def _resume(keys: TicketKeys, ticket: SessionTicket, context: bytes) -> HandshakeComplete:
    client = TLSConnection.client(client_config(session=ticket, enable_early_data=True))
    server = TLSConnection.server(
        server_config(
            ticket_keys=keys,
            max_early_data_size=16384,
            early_data_context=context,
            anti_replay=StrikeRegister(),
        )
    )
    client.start(NOW)
    client.send_early_data(b"early")
    pump(client, server)
    [done] = [e for e in drain(server) if isinstance(e, HandshakeComplete)]
    return done


def test_early_data_only_with_the_context_the_ticket_was_issued_under() -> None:
    keys = TicketKeys(key=bytes(range(32)))
    ticket = _ticket(keys, b"limits A")
    same = _resume(keys, ticket, b"limits A")
    assert same.resumed and same.early_data_accepted
    changed = _resume(keys, ticket, b"limits B")
    assert changed.resumed and not changed.early_data_accepted


def test_older_ticket_formats_open_with_empty_contexts() -> None:
    state = TicketState(
        0x1301, bytes(32), 1.0, 60, 7, 16384, None, None, (b"cert",), b"ctx", b"quic v1"
    )
    version_4 = state.encode()
    assert version_4[0] == 4 and TicketState.decode(version_4) == state
    # Version 3 is version 4 without the resumption context vector (one length byte),
    # version 2 is version 3 without the early-data context (two length bytes).
    version_3 = b"\x03" + version_4[1 : -(1 + len(b"quic v1"))]
    older = TicketState.decode(version_3)
    assert older.resumption_context == b"" and older.early_data_context == b"ctx"
    version_2 = b"\x02" + version_3[1:-5]
    old = TicketState.decode(version_2)
    assert old.early_data_context == b"" and old.peer_certificates == (b"cert",)
    assert old.resumption_context == b""


def _resume_with(keys: TicketKeys, issued: bytes, now: bytes) -> bool:
    """Issue a ticket under resumption context ``issued``; does it resume under ``now``?"""
    client = TLSConnection.client(client_config())
    server = TLSConnection.server(server_config(ticket_keys=keys, resumption_context=issued))
    client.start(NOW)
    pump(client, server)
    [fresh] = [e.ticket for e in drain(client) if isinstance(e, SessionTicketReceived)][:1]
    client = TLSConnection.client(client_config(session=fresh))
    server = TLSConnection.server(server_config(ticket_keys=keys, resumption_context=now))
    client.start(NOW)
    pump(client, server)
    [done] = [e for e in drain(server) if isinstance(e, HandshakeComplete)]
    [client_done] = [e for e in drain(client) if isinstance(e, HandshakeComplete)]
    assert client_done.resumed == done.resumed
    return done.resumed


def test_a_ticket_resumes_only_under_its_resumption_context() -> None:
    """RFC 9369 §5 (QUIC puts its version there): another context is a full handshake."""
    keys = TicketKeys(key=bytes(range(32)))
    assert _resume_with(keys, b"quic v1", b"quic v1")
    assert not _resume_with(keys, b"quic v1", b"quic v2")
    assert not _resume_with(keys, b"", b"quic v1")  # as a ticket from before the field
