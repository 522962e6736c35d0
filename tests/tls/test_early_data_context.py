"""The early-data context a server seals into its tickets (RFC 9001 §4.6.3).

Early data depends on what the server's configuration was when it issued the
ticket (over QUIC: its transport limits, RFC 9000 §7.4.1). A server accepts
0-RTT only with a ticket whose context equals its current one; any other
ticket still resumes the session, without early data.
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


def test_a_version_2_ticket_opens_with_an_empty_context() -> None:
    state = TicketState(0x1301, bytes(32), 1.0, 60, 7, 16384, None, None, (b"cert",), b"ctx")
    version_3 = state.encode()
    assert version_3[0] == 3 and TicketState.decode(version_3) == state
    # Version 2 is version 3 without the context vector (its two length bytes).
    version_2 = b"\x02" + version_3[1:-5]
    old = TicketState.decode(version_2)
    assert old.early_data_context == b"" and old.peer_certificates == (b"cert",)
