"""When a connection must act without a packet arriving (RFC 9002 §6, RFC 9000 §10).

The loss and probe timers of recovery, the delayed ACK (§13.2.1), pacing, path
validation, version probes and the deadlines that end a connection (idle,
handshake, closing): :meth:`TimerDriver.next_timer` is the earliest of them and
:meth:`TimerDriver.handle_timer` runs what is due. Once the handshake is
confirmed only the application space is left, and a short path serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quicnet.quic.errors import TransportErrorCode
from quicnet.quic.records import requeue_crypto
from quicnet.quic.rtt import K_GRANULARITY
from quicnet.quic.states import CLOSING, CONNECTED, DRAINING
from quicnet.quic.zero_rtt import discard_keys_if_due
from quicnet.tls import Epoch

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection

__all__ = ["TimerDriver"]

#: Enum members read per packet or per handshake, as module constants: through its class a
#: member costs ~115 ns on Python 3.11 (EnumType defines __getattr__), a global ~10 ns.
_HANDSHAKE = Epoch.HANDSHAKE


class TimerDriver:
    """The connection's timers, over its recovery, deadlines, paths and sender."""

    __slots__ = ("c",)

    def __init__(self, connection: QuicConnection) -> None:
        self.c = connection

    def detach(self) -> None:
        """Forget the connection, which ended (:meth:`QuicConnection.dispose
        <quicnet.quic.QuicConnection.dispose>`): no reference cycle is left through here."""
        del self.c

    def next_timer(self) -> float | None:
        """The earliest time :meth:`handle_timer` must run, or None (the connection asks
        only until it has terminated)."""
        c = self.c
        state = c.state
        if state is not CONNECTED and (state is CLOSING or state is DRAINING):
            return c.deadlines.closing_ends
        recovery = c.recovery
        if not c.handshake_confirmed:
            return self._next_timer_handshake()
        # Only the application space is left (the common case), in one function: the
        # PTO without backoff (Recovery.pto_base) and the idle deadline
        # (ConnectionDeadlines.idle_deadline) computed in place: the endpoint asks after
        # every send.
        space = recovery.spaces[2]
        rtt = recovery.rtt
        variation = 4 * rtt.rttvar
        if variation < K_GRANULARITY:
            variation = K_GRANULARITY
        pto = rtt.smoothed_rtt + variation + recovery.max_ack_delay
        deadlines = c.deadlines
        idle_timeout = deadlines.idle_timeout
        last_activity = deadlines.last_activity
        if not idle_timeout or last_activity is None:
            best = None
        else:  # RFC 9000 §10.1: at least three PTOs
            three_ptos = 3 * pto
            best = last_activity + (idle_timeout if idle_timeout > three_ptos else three_ptos)
        loss = space.loss_time
        if loss is None and space.ack_eliciting_in_flight:
            # §8.1 / RFC 9002 §6.2.2.1: an amplification-limited server does not arm the PTO.
            current = c.paths.current
            anchor = space.time_of_last_ack_eliciting
            if anchor is not None and (
                current is None or current.validated or current.budget() > 0
            ):
                if space.ack_eliciting_in_flight > recovery.peer_ack_threshold:
                    pto = recovery.probe_timeout()  # without the ACK delay (ack-frequency §7)
                loss = anchor + pto * (1 << recovery.pto_count)  # RFC 9002 §6.2.1
        if loss is not None and (best is None or loss < best):
            best = loss
        t = space.ack_deadline
        if t is not None and (best is None or t < best):
            best = t
        t = c.sender.pacing_deadline
        if t is not None and (best is None or t < best):
            best = t
        if c.paths.active:
            t = c.paths.next_timer()
            if t is not None and (best is None or t < best):
                best = t
        zero_rtt = c.zero_rtt  # a server's 0-RTT keys, kept a while (RFC 9001 §4.9.3)
        if zero_rtt is not None:
            t = zero_rtt.discard_at
            if t is not None and (best is None or t < best):
                best = t
        configuration = c.configuration
        if configuration.keepalive_interval is not None:
            t = self._keepalive_deadline(configuration.keepalive_interval)
            if t is not None and (best is None or t < best):
                best = t
        if configuration.key_update_interval is not None:
            t = c.keys.update_deadline(configuration.key_update_interval)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _next_timer_handshake(self) -> float | None:
        """next_timer before the handshake is confirmed: every space may hold a timer."""
        c = self.c
        recovery = c.recovery
        best = c.deadlines.next(recovery.pto_base(), c.handshake_complete)
        loss_time, _ = recovery.earliest_loss_time()
        if loss_time is None and self._may_send_probe():
            loss_time, _ = recovery.pto_time(
                c.deadlines.last_activity or 0.0,
                has_handshake_keys=c.spaces[_HANDSHAKE].send_key is not None,
                is_client=c.is_client,
                zero_rtt_only=not c.handshake_complete,
            )
        for t in (
            loss_time,
            recovery.spaces[2].ack_deadline,
            c.sender.pacing_deadline,
            c.negotiation.next_timer(),
            c.paths.next_timer() if c.paths.active else None,
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def _keepalive_deadline(self, interval: float) -> float | None:
        """When a keepalive PING is due: ``interval`` after the last ack-eliciting packet
        sent, while nothing ack-eliciting is in flight (then the PTO keeps watch)."""
        c = self.c
        space = c.recovery.spaces[2]
        if space.ack_eliciting_in_flight or c.pending.ping:
            return None
        anchor = space.time_of_last_ack_eliciting or c.deadlines.last_activity
        return None if anchor is None else anchor + interval

    def _handle_one_rtt_deadlines(self, now: float) -> None:
        """The keepalive PING and the timed key update, when configured and due."""
        c = self.c
        configuration = c.configuration
        interval = configuration.keepalive_interval
        if interval is not None:
            keepalive = self._keepalive_deadline(interval)
            if keepalive is not None and now >= keepalive:
                c.pending.queue_ping()
        keys = c.keys
        update = keys.update_deadline(configuration.key_update_interval)
        if update is not None and now >= update:
            keys.initiate(c.recovery.spaces[2].next_packet_number)  # RFC 9001 §6.1

    def _may_send_probe(self) -> bool:
        c = self.c
        # §8.1 / RFC 9002 §6.2.2.1: an amplification-limited server does not arm the PTO.
        current = c.paths.current
        return current is None or current.validated or current.budget() > 0

    def handle_timer(self, now: float) -> None:
        """Run whatever timer is due at ``now`` (loss, probe, ACK delay, idle, paths, ...);
        the connection calls it only until it has terminated."""
        c = self.c
        state = c.state
        if state is CLOSING or state is DRAINING:
            ends = c.deadlines.closing_ends
            if ends is not None and now >= ends:
                c.terminate(0, None, "closed", by_peer=False, now=now)
            return
        if c.zero_rtt is not None:
            discard_keys_if_due(c, now)
        recovery = c.recovery
        ended = c.deadlines.expired(now, recovery.pto_base(), c.handshake_complete)
        if ended is not None:
            c.terminate(TransportErrorCode.NO_ERROR, None, ended, by_peer=False, now=now)
            return
        space = recovery.spaces[2]
        if space.ack_deadline is not None and now >= space.ack_deadline:
            space.ack_deadline = None
            space.ack_queued = True
        if c.paths.active:
            before = c.paths.current
            if not c.paths.on_timer(now, recovery, c.new_controller):
                # §9.3.2: no validated address left to fall back to: end silently.
                c.terminate(
                    TransportErrorCode.NO_ERROR,
                    None,
                    "path validation failed",
                    by_peer=False,
                    now=now,
                )
                return
            after = c.paths.current
            if before is not None and after is not None and after is not before:
                c.on_peer_address_changed(before.address, after.address)  # §9.3.2
        if c.handshake_confirmed:
            self._handle_one_rtt_deadlines(now)
        loss_time, space_id = recovery.earliest_loss_time()
        if loss_time is not None:
            if now >= loss_time:
                recovery.detect_lost_on_timer(space_id, now)
            return
        pto, space_id = recovery.pto_time(
            c.deadlines.last_activity or 0.0,
            has_handshake_keys=c.spaces[Epoch.HANDSHAKE].send_key is not None,
            is_client=c.is_client,
            zero_rtt_only=not c.handshake_complete,
        )
        if pto is not None and now >= pto and self._may_send_probe():
            recovery.arm_probes(space_id)
            if space_id == 2:  # repeated PTOs may be a PMTU black hole (RFC 8899 §4.3)
                c.paths.on_probe_timeout(recovery.pto_count)
            # Probes carry unacknowledged handshake data rather than a bare PING.
            requeue_crypto(c, 0)
            requeue_crypto(c, 1)
