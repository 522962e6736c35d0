"""What the TLS handshake does to a QUIC connection (RFC 9001 §4).

The TLS engine hands out secrets, handshake messages and its completion; this
module installs the packet keys for each epoch, queues the CRYPTO data, checks
and applies the peer's transport parameters, completes and confirms the
handshake (§4.1.1-4.1.2) and discards the keys of finished epochs (§4.9).
It works on the connection's public state and keeps only its own bookkeeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic import ack_frequency, zero_rtt
from quicnet.quic.compatible_versions import check_server_parameters, switch_server
from quicnet.quic.crypto_streams import DISCARDED
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.events import HandshakeCompleted, SessionTicketReceived
from quicnet.quic.paths import address_key
from quicnet.quic.preferred_address import PreferredAddressState
from quicnet.quic.protection import PacketKey, recv_key
from quicnet.quic.recovery import EPOCH_SPACE
from quicnet.quic.tls_setup import QUIC_MAX_EARLY_DATA, peer_transport_parameters
from quicnet.quic.transport_params import PreferredAddress
from quicnet.tls import (
    AlertDescription,
    Epoch,
    HandshakeComplete,
    ProtocolViolation,
    TLSClient,
    TLSServer,
    TrafficSecretReady,
)
from quicnet.tls import SessionTicketReceived as TLSSessionTicket
from quicnet.tls.events import HANDSHAKE_EPOCH
from quicnet.tls.key_schedule import CIPHER_SUITES
from quicnet.tls.tickets import TicketReceiver

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.events import Address

__all__ = ["MAX_SESSION_TICKETS", "FinishedTLS", "HandshakeDriver"]

#: Session tickets per connection handed to the application; more are ignored.
MAX_SESSION_TICKETS = 4

#: Enum members read per packet or per handshake, as module constants: through its class a
#: member costs ~115 ns on Python 3.11 (EnumType defines __getattr__), a global ~10 ns.
_INITIAL, _ZERO_RTT, _HANDSHAKE, _ONE_RTT = (
    Epoch.INITIAL,
    Epoch.ZERO_RTT,
    Epoch.HANDSHAKE,
    Epoch.ONE_RTT,
)


class FinishedTLS:
    """What stays of a QUIC server's TLS engine once the handshake is confirmed
    (a client keeps a :class:`~quicnet.tls.tickets.TicketReceiver` instead).

    QUIC carries no TLS message from a client after its Finished (RFC 9001 §6:
    no KeyUpdate; no post-handshake authentication), so the engine, its
    transcript and key schedule go, and only the handshake's outcome stays.
    """

    __slots__ = (
        "alpn_protocol",
        "cipher_suite",
        "early_data_accepted",
        "group",
        "peer_certificates",
        "peer_transport_parameters",
        "resumed",
        "server_name",
        "state",
    )

    def __init__(self, engine: TLSServer) -> None:
        self.state = engine.state
        self.cipher_suite = engine.cipher_suite
        self.group = engine.group
        self.alpn_protocol = engine.alpn_protocol
        self.resumed = engine.resumed
        self.early_data_accepted = engine.early_data_accepted
        self.peer_certificates = engine.peer_certificates
        self.peer_transport_parameters = engine.peer_transport_parameters
        self.server_name: str | None = getattr(engine, "server_name", None)

    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        """Any TLS message from the client now is an error: unexpected_message (RFC 9001 §6)."""
        raise ProtocolViolation(
            "a TLS message after the handshake", AlertDescription.unexpected_message
        )

    def next_event(self) -> None:
        """None: the engine is gone, nothing more happens."""
        return None

    def take_events(self) -> tuple[()]:
        """Nothing: the engine is gone, nothing more happens."""
        return ()

    def data_to_send(self) -> list[tuple[Epoch, bytes]]:
        """Nothing: no handshake bytes are left to send."""
        return []


class HandshakeDriver:
    """Turns TLS's output into the connection's keys, parameters and state."""

    __slots__ = ("_discarded", "_released", "_tickets", "c")

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection
        self._tickets = 0
        self._released = False
        self._discarded: tuple[Epoch, ...] = ()  # a tuple: smaller than a set, at most 2

    def detach(self) -> None:
        """Forget the connection, which ended (:meth:`QuicConnection.dispose
        <quicnet.quic.QuicConnection.dispose>`): no reference cycle is left through here."""
        del self.c

    def drain(self, now: float) -> None:
        """Act on what TLS produced: new keys, handshake completion, tickets, CRYPTO data."""
        c = self.c
        tls = c.tls
        if not c.is_client and c.remote_params is None and tls.peer_transport_parameters:
            # RFC 9368 §2.3: move to the negotiated version before any handshake key exists.
            switch_server(c, tls.peer_transport_parameters)
        for event in tls.take_events():  # handling an event makes no TLS event
            if isinstance(event, TrafficSecretReady):
                self._install_secret(event)
            elif isinstance(event, HandshakeComplete):
                self._on_complete(event, now)
            elif isinstance(event, TLSSessionTicket):
                if event.ticket.max_early_data_size not in (0, QUIC_MAX_EARLY_DATA):
                    raise TransportError(  # RFC 9001 §4.6.1
                        TransportErrorCode.PROTOCOL_VIOLATION,
                        f"NewSessionTicket max_early_data_size {event.ticket.max_early_data_size}",
                    )
                # A peer may send any number of NewSessionTicket messages; keep a few.
                self._tickets += 1
                if self._tickets <= MAX_SESSION_TICKETS:
                    # RFC 9369 §5: the ticket is the negotiated version's (TLS made it so
                    # from _on_complete on).
                    ticket = event.ticket
                    if ticket.quic_version != c.version:
                        ticket = ticket.for_quic_version(c.version)
                    c.event_queue.append(SessionTicketReceived(ticket))
        for epoch, data in tls.data_to_send():
            c.spaces[epoch if epoch != _ZERO_RTT else _ONE_RTT].sender.write(data, False)
            if epoch == _ONE_RTT:
                c.pending.waiting = True  # post-handshake CRYPTO goes with the control frames
        # The server learns them from the ClientHello it accepts (after a HelloRetryRequest,
        # from the second one); the TLS engine refuses a ClientHello without them.
        if not c.is_client and c.remote_params is None and tls.peer_transport_parameters:
            self._set_remote_params(tls.peer_transport_parameters)
        if c.handshake_confirmed and not self._released:
            self._release()

    def _release(self) -> None:
        """After confirmation the engine goes: a server keeps the handshake's outcome,
        a client that and a ticket receiver (the server's tickets arrive later)."""
        tls = self.c.tls
        if self._released or isinstance(tls, FinishedTLS | TicketReceiver):
            return
        self._released = True
        if isinstance(tls, TLSClient):
            self.c.tls = tls.ticket_receiver()
        else:
            self.c.tls = FinishedTLS(tls)

    def _install_secret(self, event: TrafficSecretReady) -> None:
        c = self.c
        suite = CIPHER_SUITES[event.cipher_suite]
        # RFC 9369 §4.1: 0-RTT stays in the original version.
        version = c.versions.original if event.epoch == _ZERO_RTT else c.version
        if event.epoch == _ONE_RTT and not event.is_write and event.keyed is None:
            # RFC 9001 §6.3: the next phase's key derived ahead, its secret with the keys.
            c.keys.install_recv(*recv_key(suite.aead, suite.hash_name, event.secret, version))
            return
        key = PacketKey(suite.aead, suite.hash_name, event.secret, version, keyed=event.keyed)
        if event.epoch == _ZERO_RTT:
            if event.is_write:
                c.zero_rtt_send_key = key
                zero_rtt.start_sending(c)
            else:
                c.zero_rtt_recv_key = key
        elif event.epoch == _ONE_RTT:
            if event.is_write:
                c.keys.send = key
                c.zero_rtt_send_key = None  # RFC 9001 §4.9.3, §5.6: no 0-RTT after 1-RTT
            else:
                c.keys.install_recv(key)
        elif event.is_write:
            c.spaces[event.epoch].send_key = key
        else:
            c.spaces[event.epoch].recv_key = key

    def _set_remote_params(self, raw: bytes | None) -> None:
        c = self.c
        params = peer_transport_parameters(
            raw,
            from_server=c.is_client,
            peer_initial_source_cid=c.peer_initial_source_cid,
            original_destination_cid=c.original_destination_cid,
            retry_source_cid=c.retry_source_cid,
        )
        if c.is_client:
            check_server_parameters(c, params)  # RFC 9368 §4: no downgrade
        if c.is_client and params.stateless_reset_token is not None:
            c.cids.set_peer_reset_token(params.stateless_reset_token)
        if c.is_client and params.preferred_address is not None:
            self._preferred_address_cid(params.preferred_address)
        c.remote_params = params
        c.recovery.max_ack_delay = params.max_ack_delay / 1000
        c.deadlines.negotiate_idle_timeout(params.max_idle_timeout / 1000)
        c.streams.set_remote_parameters(params)

    def _preferred_address_cid(self, preferred: PreferredAddress) -> None:
        """RFC 9000 §5.1.1, §9.6.3: the CID of a server's preferred_address is its
        sequence 1, usable on any path; the client moves to the address once the
        handshake is confirmed (:mod:`~quicnet.quic.preferred_address`)."""
        cids = self.c.cids
        if not cids.current_peer_cid:  # §18.2: not with a zero-length CID
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
                "preferred_address from a server with a zero-length connection ID",
            )
        cids.on_new_connection_id(
            1,
            0,
            preferred.connection_id,
            preferred.stateless_reset_token,
            peer_uses_empty_cid=False,
        )
        self.c.preferred = PreferredAddressState(self.c.configuration)  # moved to at §9.6.1

    def _on_complete(self, event: HandshakeComplete, now: float) -> None:
        c = self.c
        early = c.zero_rtt
        if c.is_client:
            if isinstance(c.tls, TLSClient):  # its tickets are this version's (RFC 9369 §5)
                c.tls.quic_version = c.version
            self._set_remote_params(c.tls.peer_transport_parameters)
            if early is not None and early.remembered is not None:
                c.zero_rtt = None  # 1-RTT from now on, with the server's new parameters
                if event.early_data_accepted:
                    assert c.remote_params is not None
                    zero_rtt.check_not_reduced(early.remembered, c.remote_params)
        c.on_handshake_complete(event.alpn_protocol)
        limit = (c.remote_params.active_connection_id_limit if c.remote_params else 2) - 1
        c.cids.issue(min(limit, 7) - (len(c.cids.local) - 1))  # a preferred_address CID counts
        if not c.is_client:
            c.pending.queue_handshake_done()
            self.confirm()  # §4.1.2: the server confirms at completion
            if c.zero_rtt_recv_key is not None:
                # RFC 9001 §4.9.3: reordered 0-RTT packets may still come, for a while.
                c.zero_rtt = zero_rtt.ZeroRtt(discard_at=now + 3 * c.recovery.pto_base())
        c.event_queue.append(
            HandshakeCompleted(event.alpn_protocol, event.resumed, event.early_data_accepted)
        )
        if early is not None and c.is_client and not event.early_data_accepted:
            zero_rtt.on_rejected(c)  # RFC 9001 §4.6.2: send it all again in 1-RTT

    def confirm(self) -> None:
        """RFC 9001 §4.1.2: the handshake is confirmed (HANDSHAKE_DONE, or the server)."""
        c = self.c
        if c.handshake_confirmed:
            return
        c.handshake_confirmed = True
        c.recovery.handshake_confirmed = True
        c.recovery.peer_completed_address_validation = True
        self.discard_epoch(HANDSHAKE_EPOCH)
        ack_frequency.ask(c)  # draft-ietf-quic-ack-frequency §3: a peer that offered it
        if c.tracer is not None:
            c.tracer.handshake_confirmed()
        if c.is_client:
            self._release()  # HANDSHAKE_DONE arrived: nothing of the handshake is needed

    def on_long_header_packet(self, epoch: Epoch, peer_scid: bytes, address: Address) -> None:
        """An authenticated Initial, Handshake or 0-RTT packet with the peer's source CID."""
        c = self.c
        if not c.received_first_packet:
            c.received_first_packet = True
            c.peer_initial_source_cid = peer_scid
            c.cids.set_initial_peer(peer_scid)  # RFC 9000 §7.2: from now on, the peer's own CID
        if not c.is_client and epoch == _HANDSHAKE:
            current = c.paths.current
            if current is not None and address_key(address) == current.key:
                current.validated = True  # RFC 9000 §8.1: a Handshake packet proves the address
                c.deadlines.on_address_validated()
            self.discard_epoch(_INITIAL)  # RFC 9001 §4.9.1

    def discard_epoch(self, epoch: Epoch) -> None:
        """RFC 9001 §4.9: drop keys and recovery state of a finished epoch."""
        if epoch in self._discarded:
            return
        self._discarded += (epoch,)
        self.c.spaces[epoch] = DISCARDED
        self.c.recovery.discard_space(EPOCH_SPACE[epoch])
