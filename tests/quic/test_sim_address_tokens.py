"""Resuming across restarts, and NEW_TOKEN (RFC 9000 §8.1.3-8.1.4), on the simulated network.

The core runs on the monotonic ``now`` each simulation starts afresh; session
tickets and address tokens are dated by the configuration's injected wall
clock. A client that saved its ticket and token (bytes), "exits" and comes
back (new objects, its clock back at 0) to a server that restarted with the
same ticket keys and token secret resumes, sends 0-RTT that is accepted, and
skips the Retry the server demands of everyone else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st
from simnet import (
    Address,
    Simulation,
    StreamCollector,
    client_config,
    handshake,
    payloads,
    send_on_new_streams,
    server_config,
)

from quicnet.quic import (
    HandshakeCompleted,
    NewTokenReceived,
    QuicConnection,
    QuicEndpoint,
    QuicVersion,
    SessionTicketReceived,
)
from quicnet.quic.packets import PacketType, parse_long_header
from quicnet.quic.tokens import NEW_TOKEN_KIND, AddressTokenManager, RetryTokenManager
from quicnet.tls import SessionTicket, TicketKeys

SECRET = bytes(range(32))
V1, V2 = QuicVersion.V1, QuicVersion.V2
FIRST: Address = ("10.0.0.1", 50000)
#: Where the fake wall clock starts: now (simnet's certificates are valid for 30 days
#: from now); the monotonic clocks start wherever each simulation says.
EPOCH = float(int(time.time()))


@dataclass
class WallClock:
    """The injected wall clock (Unix seconds) both sides read for dates."""

    t: float = EPOCH

    def __call__(self) -> float:
        return self.t


def _endpoint(
    wall: WallClock,
    ticket_keys: TicketKeys,
    *,
    require_retry: bool = True,
    token_lifetime: float = 86400.0,
) -> QuicEndpoint:
    """A server (as after a restart: fresh objects) sharing keys and the token secret."""
    config = server_config(enable_early_data=True, ticket_keys=ticket_keys, wall_clock=wall)
    return QuicEndpoint(
        config,
        require_retry=require_retry,
        address_token_secret=SECRET,
        address_token_lifetime=token_lifetime,
    )


def _first_run(wall: WallClock, keys: TicketKeys) -> tuple[bytes, bytes]:
    """A first client earns a ticket and a token; returns them saved as bytes."""
    client = QuicConnection(client_config(wall_clock=wall))
    sim = Simulation(client, _endpoint(wall, keys), seed=7, start=5000.0, client_address=FIRST)
    handshake(sim)
    sim.run_until(
        lambda: (
            bool(sim.client.events_of(NewTokenReceived))
            and bool(sim.client.events_of(SessionTicketReceived))
        ),
        what="ticket and token",
    )
    [token] = sim.client.events_of(NewTokenReceived)
    assert token.token[0] == NEW_TOKEN_KIND
    ticket = sim.client.events_of(SessionTicketReceived)[0].ticket
    return ticket.to_bytes(), token.token


def _initial_tokens(sim: Simulation) -> list[bytes]:
    """The token field of every Initial the client sends (recorded on its link)."""
    seen: list[bytes] = []

    def tap(data: bytes, now: float) -> None:
        if data[0] & 0x80:
            header = parse_long_header(data)
            if header.packet_type == PacketType.INITIAL:
                seen.append(header.token)

    sim.c2s.taps.append(tap)
    return seen


def _second_run(
    wall: WallClock,
    keys: TicketKeys,
    saved_ticket: bytes,
    token: bytes,
    *,
    address: Address = ("10.0.0.1", 50999),
    token_lifetime: float = 86400.0,
) -> tuple[Simulation, QuicEndpoint, StreamCollector, dict[int, bytes], list[bytes]]:
    """The client process started again (monotonic clock at 0) against a restarted server."""
    endpoint = _endpoint(wall, keys, token_lifetime=token_lifetime)
    config = client_config(
        wall_clock=wall,
        session_ticket=SessionTicket.from_bytes(saved_ticket),
        enable_early_data=True,
        address_token=token,
    )
    client = QuicConnection(config)
    sim = Simulation(client, endpoint, seed=8, start=0.0, client_address=address)
    tokens = _initial_tokens(sim)
    collector = StreamCollector()
    sim.server.on_event = collector
    sim.connect()
    sent = send_on_new_streams(client, payloads(3, [900]))
    assert client.can_send_early_data
    sim.run_until(
        lambda: collector.complete(sent) and bool(sim.client.events_of(HandshakeCompleted)),
        what="resumed handshake",
    )
    return sim, endpoint, collector, sent, tokens


def test_resumes_with_0rtt_and_skips_retry_after_both_sides_restart() -> None:
    wall, keys = WallClock(), TicketKeys()
    saved, token = _first_run(wall, keys)
    wall.t += 3600  # an hour later, by the wall clock; the new run's monotonic clock is 0
    sim, endpoint, collector, sent, tokens = _second_run(wall, keys, saved, token)
    [done] = sim.client.events_of(HandshakeCompleted)
    assert done.session_resumed and done.early_data_accepted
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent
    # The NEW_TOKEN token validated the address: no Retry, though the server requires one.
    assert endpoint.stats.retries_sent == 0 and endpoint.stats.new_tokens_accepted == 1
    assert tokens and all(t == token for t in tokens)
    assert sim.server.connection.address_validated


def test_ticket_past_its_lifetime_by_the_wall_clock_is_not_resumed() -> None:
    wall, keys = WallClock(), TicketKeys()
    saved, _token = _first_run(wall, keys)
    # The monotonic clocks would call it young (0 vs 5000); the wall clock says 3 days.
    wall.t += 3 * 86400
    client = QuicConnection(
        client_config(
            wall_clock=wall,
            session_ticket=SessionTicket.from_bytes(saved),
            enable_early_data=True,
        )
    )
    assert not client.can_send_early_data
    sim = Simulation(client, _endpoint(wall, keys, require_retry=False), seed=9, start=0.0)
    handshake(sim)
    [done] = sim.client.events_of(HandshakeCompleted)
    assert not done.session_resumed and not done.early_data_accepted


def test_certificate_validity_is_checked_on_the_wall_clock() -> None:
    wall = WallClock(EPOCH + 40 * 86400)  # past the 30 days of simnet's certificate
    client = QuicConnection(client_config(wall_clock=wall))
    server = _endpoint(WallClock(), TicketKeys(), require_retry=False)
    sim = Simulation(client, server, seed=10)
    sim.connect()
    sim.run_until(lambda: client.termination is not None, what="handshake failure")
    assert client.termination is not None and "expired" in client.termination.reason
    assert not sim.client.events_of(HandshakeCompleted)


def test_token_from_another_ip_address_gets_a_retry() -> None:
    wall, keys = WallClock(), TicketKeys()
    saved, token = _first_run(wall, keys)
    sim, endpoint, _collector, _sent, tokens = _second_run(
        wall, keys, saved, token, address=("10.9.9.9", 50000)
    )
    assert endpoint.stats.retries_sent == 1 and endpoint.stats.new_tokens_accepted == 0
    assert tokens[0] == token and tokens[-1][0] != NEW_TOKEN_KIND  # then the Retry's
    # The 0-RTT sent before the Retry went again after it (RFC 9001 §4.6.2 is not a reject).
    assert sim.client.events_of(HandshakeCompleted)[0].session_resumed


def test_expired_token_gets_a_retry() -> None:
    wall, keys = WallClock(), TicketKeys()
    saved, token = _first_run(wall, keys)
    wall.t += 601  # past the restarted server's token lifetime (the ticket's is 2 hours)
    _sim, endpoint, _collector, _sent, _tokens = _second_run(
        wall, keys, saved, token, token_lifetime=600
    )
    assert endpoint.stats.retries_sent == 1 and endpoint.stats.new_tokens_accepted == 0


def test_forged_token_gets_a_retry() -> None:
    wall, keys = WallClock(), TicketKeys()
    saved, token = _first_run(wall, keys)
    forged = token[:-1] + bytes((token[-1] ^ 1,))
    _sim, endpoint, _collector, _sent, _tokens = _second_run(wall, keys, saved, forged)
    assert endpoint.stats.retries_sent == 1 and endpoint.stats.new_tokens_accepted == 0


def test_token_is_accepted_once() -> None:
    """§8.1.4: a replayed token (another connection, same IP) earns nothing."""
    manager = AddressTokenManager(SECRET)
    token = manager.create(("192.0.2.1", 1000), EPOCH, V1)
    assert manager.validate(token, ("192.0.2.1", 2000), EPOCH + 5, V1)  # another port is fine
    assert not manager.validate(token, ("192.0.2.1", 2000), EPOCH + 6, V1)
    assert not AddressTokenManager(SECRET).validate(token, ("192.0.2.2", 2000), EPOCH + 7, V1)


@given(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
    st.sampled_from(["localhost", "10.0.0.01", "1.2.3", "::ffff:10.0.0.1", "10.0.0.1 "]),
)
def test_token_is_bound_to_the_ipv4_address_it_was_issued_to(
    issued_to: str, other: str, not_dotted_quad: str
) -> None:
    """A token validates from its own IPv4 address (any port) and from no other, nor
    from a name that is no dotted-quad IPv4 address (a DNS name, leading zeros, three
    octets, trailing blank) or from the same address mapped into IPv6: those bind
    other bytes (the IPv4 address is read without ``ipaddress``, with the same rules)."""
    token = AddressTokenManager(SECRET).create((issued_to, 1000), EPOCH, V1)
    assert AddressTokenManager(SECRET).validate(token, (issued_to, 2), EPOCH, V1)
    if other != issued_to:
        assert not AddressTokenManager(SECRET).validate(token, (other, 1000), EPOCH, V1)
    assert not AddressTokenManager(SECRET).validate(token, (not_dotted_quad, 1000), EPOCH, V1)
    named = AddressTokenManager(SECRET).create((not_dotted_quad, 1), EPOCH, V1)
    assert AddressTokenManager(SECRET).validate(named, (not_dotted_quad, 1), EPOCH, V1)
    assert not AddressTokenManager(SECRET).validate(named, (issued_to, 1), EPOCH, V1)


def test_token_is_for_the_version_it_was_issued_under() -> None:
    """RFC 9369 §5: a v1 connection's token does not validate a v2 Initial."""
    token = AddressTokenManager(SECRET).create(("192.0.2.1", 1000), EPOCH, V1)
    assert not AddressTokenManager(SECRET).validate(token, ("192.0.2.1", 1), EPOCH, V2)
    assert AddressTokenManager(SECRET).validate(token, ("192.0.2.1", 1), EPOCH, V1)


def test_retry_and_new_token_tokens_are_not_interchangeable() -> None:
    retry = RetryTokenManager(SECRET)
    new = AddressTokenManager(SECRET)
    address = ("192.0.2.1", 1000)
    retry_token = retry.create(address, b"o" * 8, b"r" * 8, 10.0)
    new_token = new.create(address, EPOCH, V1)
    assert not new.validate(retry_token, address, EPOCH, V1)
    assert retry.validate(new_token, address, 10.0) is None
    assert retry.validate(retry_token, address, 10.0) is not None


@given(st.binary(max_size=80))
def test_token_parsing_never_raises(data: bytes) -> None:
    address = ("192.0.2.1", 1000)
    manager = AddressTokenManager(SECRET)
    assert manager.validate(data, address, EPOCH, V1) is False
    assert manager.validate(bytes((NEW_TOKEN_KIND,)) + data, address, EPOCH, V1) is False
    assert RetryTokenManager(SECRET).validate(data, address, 10.0) is None
