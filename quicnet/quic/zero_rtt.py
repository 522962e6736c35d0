"""0-RTT (RFC 9001 §4.6, RFC 9000 §7.4.1): what a client remembers, what a server
checks, and what follows when the server says no.

A client resuming with a ticket that allows early data sends stream data and
DATAGRAM frames in 0-RTT packets, within the limits the server gave on the
connection that issued the ticket: the transport parameters stored with it
(:func:`remembered_parameters`). A server seals the limits it advertises into
its tickets (:func:`early_data_context`) and accepts 0-RTT only while they are
unchanged; a client whose 0-RTT was accepted checks that the server did not
lower them (:func:`check_not_reduced`).

When the server rejects 0-RTT, it processed none of those packets
(:func:`on_rejected`): the client sends every stream's data again in 1-RTT,
under the server's new limits and with the same stream IDs, and reports the
DATAGRAMs lost. A server keeps its 0-RTT receive keys three PTOs past the
handshake, for reordered packets, then drops them (RFC 9001 §4.9.3).
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from quicnet.memo import BoundedMemo
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.events import DatagramLost
from quicnet.quic.transport_params import TransportParameters
from quicnet.tls import SessionTicket

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = [
    "LIMITS",
    "ZeroRtt",
    "check_not_reduced",
    "discard_keys_if_due",
    "early_data_context",
    "on_rejected",
    "remembered_parameters",
    "start_sending",
]

#: The limits a server that accepts 0-RTT must not lower (RFC 9000 §7.4.1; RFC 9221 §3
#: adds max_datagram_frame_size for a client that sends DATAGRAMs in 0-RTT).
LIMITS = (
    "active_connection_id_limit",
    "initial_max_data",
    "initial_max_stream_data_bidi_local",
    "initial_max_stream_data_bidi_remote",
    "initial_max_stream_data_uni",
    "initial_max_streams_bidi",
    "initial_max_streams_uni",
    "max_datagram_frame_size",
)

#: RFC 9000 §7.4.1: never remembered; the new connection's values (or defaults) apply.
_NOT_REMEMBERED: dict[str, object] = {
    "ack_delay_exponent": 3,
    "max_ack_delay": 25,
    "min_ack_delay": None,  # draft-ietf-quic-ack-frequency §3: MUST NOT be remembered
    "initial_source_connection_id": None,
    "original_destination_connection_id": None,
    "preferred_address": None,
    "retry_source_connection_id": None,
    "stateless_reset_token": None,
}

#: What an absent max_datagram_frame_size counts as: below every size (no DATAGRAMs).
_ABSENT = -1


def _limit(params: TransportParameters, name: str) -> int:
    value: int | None = getattr(params, name)
    return _ABSENT if value is None else value


def remembered_parameters(ticket: SessionTicket | None) -> TransportParameters | None:
    """The server's parameters stored with ``ticket``, as 0-RTT may use them (RFC 9000
    §7.4.1), or None: no ticket, none stored, or stored bytes that do not parse (then
    the client sends no 0-RTT)."""
    if ticket is None or ticket.transport_parameters is None:
        return None
    try:
        params = TransportParameters.decode(ticket.transport_parameters, from_server=True)
    except TransportError:
        return None
    return params.replace(**_NOT_REMEMBERED)


#: ``early_data_context`` by the limits' values: they come from the configuration, the
#: same for every connection of a server (a few configurations per process; bounded).
_CONTEXTS: BoundedMemo[tuple[int | None, ...], bytes] = BoundedMemo(32)
_limit_values = operator.attrgetter(*LIMITS)


def early_data_context(params: TransportParameters) -> bytes:
    """A server's 0-RTT limits as it seals them into its tickets (RFC 9001 §4.6.3): a
    ticket issued under other limits gets no 0-RTT (RFC 9000 §7.4.1: a server that
    accepts must not lower them, and "cannot be supported" means reject)."""
    values = _limit_values(params)
    context = _CONTEXTS.get(values)
    if context is not None:
        return context
    out = bytearray(b"quic 0-rtt limits")
    for name in LIMITS:
        out += (_limit(params, name) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
    return _CONTEXTS.remember(values, bytes(out))


def check_not_reduced(remembered: TransportParameters, params: TransportParameters) -> None:
    """A server that accepted 0-RTT must not lower a limit the client used (RFC 9000
    §7.4.1, RFC 9221 §3): PROTOCOL_VIOLATION if it did."""
    for name in LIMITS:
        if _limit(params, name) < _limit(remembered, name):
            raise TransportError(
                TransportErrorCode.PROTOCOL_VIOLATION,
                f"0-RTT accepted with {name} lowered from {getattr(remembered, name)} "
                f"to {getattr(params, name)}",
            )


class ZeroRtt:
    """A connection's 0-RTT bookkeeping while it lasts: a client's remembered
    parameters until the handshake completes, a server's deadline for its 0-RTT
    receive keys."""

    __slots__ = ("discard_at", "remembered")

    def __init__(
        self, *, remembered: TransportParameters | None = None, discard_at: float | None = None
    ) -> None:
        #: Client: the limits 0-RTT packets stay within (RFC 9000 §7.4.1).
        self.remembered = remembered
        #: Server: when the 0-RTT receive keys go (RFC 9001 §4.9.3).
        self.discard_at = discard_at


def start_sending(c: QuicConnection) -> None:
    """A client offered early data: its 0-RTT packets follow the remembered limits."""
    remembered = remembered_parameters(c.configuration.session_ticket)
    if remembered is None:  # make_tls offers early data only when they parse
        c.zero_rtt_send_key = None
        return
    c.zero_rtt = ZeroRtt(remembered=remembered)
    c.streams.set_remote_parameters(remembered)


def on_rejected(c: QuicConnection) -> None:
    """RFC 9001 §4.6.2: the server processed none of our 0-RTT packets.

    They leave recovery as neither acknowledged nor lost to congestion control
    (RFC 9002 §6.4); what they carried is reported lost: DATAGRAMs as
    DatagramLost (when ``datagram_ack_events`` asks for their fates), and every
    stream starts sending over, from offset 0, counted against the server's new
    limits (RFC 9001 §4.6.2: "reset the state of all streams"). Stream IDs stay:
    a stream beyond the server's new MAX_STREAMS waits for more. DATAGRAMs still
    queued that the new limit no longer allows are lost too.
    """
    params = c.remote_params
    assert params is not None
    c.recovery.abandon_space(2)
    c.streams.restart_sending(params)
    limit = c.max_datagram_size
    report = c.configuration.datagram_ack_events  # as for every other DATAGRAM's fate
    kept: list[tuple[int, bytes]] = []
    for datagram_id, data in c.datagram_queue:
        if limit is not None and len(data) <= limit:
            kept.append((datagram_id, data))
        elif report:
            c.event_queue.append(DatagramLost(datagram_id))
    c.datagram_queue[:] = kept  # in place: the DATAGRAM channel holds this list


def discard_keys_if_due(c: QuicConnection, now: float) -> None:
    """A server drops its 0-RTT receive keys once their time is up (RFC 9001 §4.9.3)."""
    state = c.zero_rtt
    if state is not None and state.discard_at is not None and now >= state.discard_at:
        c.zero_rtt_recv_key = None
        c.zero_rtt = None
