"""qlog traces of QUIC connections, for qvis and other qlog tools.

One file per connection, ``<dir>/<odcid>_<client|server>.sqlog``, in the
JSON Text Sequences serialization (RFC 7464) of qlog: the main schema of
draft-ietf-quic-qlog-main-schema-04 (``"qlog_version": "0.3"``,
``"qlog_format": "JSON-SEQ"``, §6.2) and the QUIC events of
draft-ietf-quic-qlog-quic-events-03 (event names, fields and frame shapes as
written there; DATAGRAM frames, which that draft does not define yet, as
``{"frame_type": "datagram", "length": n}``; ECN validation, which it does not
define either, as ``recovery:ecn_state_updated`` of quic-events-06 §7.7, the first
revision to define it, still with the categories of -03: from -09 on it is
``quic:ecn_state_updated``, with the same fields).

Every record starts with the ASCII Record Separator (0x1E) and ends with a
newline; the first is the header (``QlogFileSeq``: the trace's vantage point
and ``common_fields`` with the ODCID, ``time_format`` "relative" and the
wall-clock ``reference_time`` in milliseconds), each later one an event whose
``time`` is milliseconds since the connection's first event.

The connection owns a :class:`QlogTracer` only when tracing is on
(``QuicConfiguration.qlog_dir``); every call site tests ``tracer is not
None``, so tracing off costs one attribute test per packet and builds
nothing. With tracing on, packets are logged from their plaintext, re-parsed
with the general frame parser. Secrets are never written: ``key_updated``
carries an empty ``new`` value (main schema §6.1.2 allows omitting raw
values); SSLKEYLOGFILE is the way to decrypt captures.

Each record goes to the file when it is written (line buffering), so what
was traced is on disk even if the connection is never closed; the file is
closed when the connection terminates. Nothing here raises into the
connection: a directory that cannot be written logs one warning per
directory and turns tracing off for that connection; a failed write later
does the same.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from quicnet.quic.negotiation import NO_COMMON_VERSION
from quicnet.quic.packets import parse_version_negotiation
from quicnet.quic.pmtu import PmtuState
from quicnet.quic.qlog_schema import (
    PACKET_TYPE,
    QLOG_FORMAT,
    QLOG_VERSION,
    SPACE_PACKET_TYPE,
    close_trigger,
    error_code_name,
    lost_frames,
    milliseconds,
    parameters_set,
    qlog_frames,
)
from quicnet.tls import Epoch

if TYPE_CHECKING:
    from quicnet.quic.connection import QuicConnection
    from quicnet.quic.events import Address, ConnectionTerminated
    from quicnet.quic.packets import LongHeader
    from quicnet.quic.recovery import Recovery, SentPacket

__all__ = ["RECORD_SEPARATOR", "QlogTracer"]

_log = logging.getLogger("quicnet.quic")

RECORD_SEPARATOR = "\x1e"  # RFC 7464 §2
_warned_directories: set[str] = set()


class QlogTracer:
    """Writes one connection's qlog trace; the connection calls it only when tracing is on.

    The calls are the connection's: :meth:`connection_started`, :meth:`packet_sent`,
    :meth:`packet_received`, :meth:`retry_received`, :meth:`version_negotiation`,
    :meth:`packet_dropped`, :meth:`packets_lost` (recovery's loss observer),
    :meth:`handshake_completed`, :meth:`handshake_confirmed`, :meth:`connection_ending`
    and :meth:`connection_terminated`. Key changes
    (``security:key_updated``, ``key_discarded``) and the peer's transport parameters
    are noticed at the next of these events. ``recovery:metrics_updated`` is written
    after whatever changed the metrics (a packet sent, received, lost), stamped with
    that time, listing only the fields that changed; so are the congestion controller's
    state (its ``state_name``), the path MTU and ECN validation, when they changed.
    ``now`` None means the latest
    time the tracer saw (for calls from places that have no clock reading).
    """

    __slots__ = (
        "_cc_state",
        "_confirmed",
        "_deferred",
        "_ecn_state",
        "_ended",
        "_file",
        "_generations",
        "_keys",
        "_last",
        "_lost",
        "_metrics",
        "_mtu",
        "_remote_params",
        "_start",
        "_touched",
        "_zero_rtt_sent",
        "c",
        "directory",
        "enabled",
        "path",
    )

    def __init__(self, connection: QuicConnection, directory: str) -> None:
        self.c = connection
        self.directory = directory
        vantage = "client" if connection.is_client else "server"
        #: The trace's file (``<odcid>_<vantage>.sqlog``; ``-2``, ``-3``... if taken).
        self.path = os.path.join(
            directory, f"{connection.original_destination_cid.hex()}_{vantage}.sqlog"
        )
        #: False once writing failed: every call returns at once.
        self.enabled = True
        self._file: IO[str] | None = None
        self._start: float | None = None  # `now` of the first event: time 0
        self._last = 0.0
        self._touched: float | None = None  # metrics may have changed since this time
        self._metrics: dict[str, float | int] = {}
        # What the state events compare with (None: not looked at yet): the controller's
        # state_name, the path's (MTU, search done), ECN validation; losses since then.
        self._cc_state: str | None = None
        self._mtu: tuple[int, bool] | None = None
        self._ecn_state: str | None = None
        self._lost = False
        self._keys: dict[str, object] = {}
        self._generations = [0, 0]  # 1-RTT key updates seen: sending, receiving
        self._remote_params: object = None
        self._confirmed = False
        self._ended = False
        #: Numbers of the 0-RTT packets we sent: they share the 1-RTT number space
        #: (RFC 9000 §12.3), so a loss there is labelled by what was sent.
        self._zero_rtt_sent: set[int] = set()
        #: A state change reported without a time (close() has no clock reading): it is
        #: written with the time of the next event (the CONNECTION_CLOSE sent).
        self._deferred: tuple[str, ConnectionTerminated] | None = None

    # Writing ----------------------------------------------------------------------------

    def detach(self) -> None:
        """Forget the connection, which ended (:meth:`QuicConnection.dispose
        <quicnet.quic.QuicConnection.dispose>`): no reference cycle is left through here."""
        del self.c

    def _open(self) -> bool:
        base, suffix = os.path.splitext(self.path)
        try:
            os.makedirs(self.directory, exist_ok=True)
            for attempt in range(1, 100):  # a second connection with the same ODCID
                path = self.path if attempt == 1 else f"{base}-{attempt}{suffix}"
                try:
                    # Line-buffered: each record reaches the file as it is written, so
                    # a trace survives a crash, os._exit, or a connection its driver
                    # abandons in the closing period (which never reaches terminate()).
                    self._file = open(  # noqa: SIM115
                        path, "x", buffering=1, encoding="utf-8", newline="\n"
                    )
                except FileExistsError:
                    continue
                self.path = path
                break
            else:
                raise FileExistsError(self.path)
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            self._disable(exc)
            return False
        c = self.c
        odcid = c.original_destination_cid.hex()
        header = {
            "qlog_version": QLOG_VERSION,
            "qlog_format": QLOG_FORMAT,
            "title": f"quicnet {'client' if c.is_client else 'server'} {odcid}",
            "trace": {
                "vantage_point": {
                    "name": "quicnet",
                    "type": "client" if c.is_client else "server",
                },
                "common_fields": {
                    "ODCID": odcid,
                    "group_id": odcid,
                    "protocol_type": ["QUIC"],
                    "time_format": "relative",
                    "reference_time": round(time.time() * 1000, 3),
                },
            },
        }
        self._write(header)
        return self.enabled

    def _detach(self) -> None:
        """Stop observing losses: a tracer that writes nothing costs recovery nothing."""
        recovery = self.c.recovery
        if recovery.loss_observer == self.packets_lost:
            recovery.loss_observer = None

    def _disable(self, exc: Exception) -> None:
        self.enabled = False
        self._detach()
        if self.directory not in _warned_directories:
            _warned_directories.add(self.directory)
            _log.warning("qlog: cannot write to %s (%s); not tracing", self.directory, exc)
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _write(self, record: dict[str, Any]) -> None:
        file = self._file
        if file is None:
            return
        try:
            text = json.dumps(record, separators=(",", ":"), allow_nan=False)
            file.write(RECORD_SEPARATOR + text + "\n")
        except (OSError, ValueError) as exc:  # ValueError: NaN or infinity is not JSON
            self._disable(exc)

    def _event(self, name: str, data: dict[str, Any], now: float | None) -> None:
        if not self.enabled or (self._file is None and not self._open()):
            return
        touched = self._touched
        if touched is not None:  # what changed the metrics came before this event
            self._touched = None
            self._sync_metrics(touched)
        deferred = self._deferred
        if deferred is not None and now is not None:
            self._deferred = None
            self.connection_ending(*deferred, now)
        self._write({"time": self._time(now), "name": name, "data": data})

    def _time(self, now: float | None) -> float:
        if now is None:
            now = self._last
        else:
            self._last = now
        if self._start is None:
            self._start = now
        return milliseconds(now - self._start)

    def flush(self) -> None:
        """Write what is buffered to the file."""
        file = self._file
        if file is not None:
            try:
                file.flush()
            except (OSError, ValueError) as exc:
                self._disable(exc)

    def close(self) -> None:
        """Write the last metrics and close the file; later calls write nothing."""
        if self.enabled and self._touched is not None:
            touched, self._touched = self._touched, None
            self._sync_metrics(touched)
        deferred, self._deferred = self._deferred, None
        if self.enabled and deferred is not None and self._start is not None:
            self.connection_ending(*deferred, self._last)
        self.enabled = False
        self._detach()
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                _log.warning("qlog: cannot finish %s (%s)", self.path, exc)

    # Metrics and what the connection's state says ------------------------------------------
    def _sync_metrics(self, when: float) -> None:
        """recovery:metrics_updated (quic-events §7.2) with the fields that changed."""
        recovery = self.c.recovery
        rtt, cc = recovery.rtt, recovery.cc
        values: dict[str, float | int] = {}
        if rtt.first_sample:
            values["min_rtt"] = milliseconds(rtt.min_rtt)
            values["smoothed_rtt"] = milliseconds(rtt.smoothed_rtt)
            values["latest_rtt"] = milliseconds(rtt.latest_rtt)
            values["rtt_variance"] = milliseconds(rtt.rttvar)
        values["congestion_window"] = cc.congestion_window
        values["bytes_in_flight"] = cc.bytes_in_flight
        ssthresh = getattr(cc, "ssthresh", None)
        if isinstance(ssthresh, int | float) and math.isfinite(ssthresh):
            values["ssthresh"] = int(ssthresh)
        last = self._metrics
        changed = {k: v for k, v in values.items() if last.get(k) != v}
        if changed:
            last.update(changed)
            self._write(
                {"time": self._time(when), "name": "recovery:metrics_updated", "data": changed}
            )
        self._sync_states(when)

    def _sync_states(self, when: float) -> None:
        """recovery:congestion_state_updated (quic-events -03 §7.3), connectivity:
        mtu_updated (§4.8) and recovery:ecn_state_updated (not in -03: -06 §7.7, ``old``
        and ``new``, each an ECNState: testing, unknown, failed or capable) when what
        they report changed, polled with the metrics; the first look only records where
        things start."""
        c = self.c
        cc = c.recovery.cc
        lost, self._lost = self._lost, False
        state = getattr(cc, "state_name", None)  # a custom controller may have none
        old = self._cc_state
        if isinstance(state, str) and state != old:
            self._cc_state = state
            if old is not None:
                data: dict[str, Any] = {"old": old, "new": state}
                if state == "recovery" and not lost:
                    data["trigger"] = "ECN"  # a reduction no loss explains: a CE mark
                elif (
                    state == "slow_start"
                    and lost
                    and cc.congestion_window <= getattr(cc, "minimum_window", 0)
                ):
                    data["trigger"] = "persistent_congestion"  # RFC 9002 §7.6.2
                self._write_at(when, "recovery:congestion_state_updated", data)
        path = c.paths.current
        if path is not None:
            pmtu = path.pmtu
            mtu = (pmtu.mtu, pmtu.state == PmtuState.SEARCH_COMPLETE)
            before = self._mtu
            if mtu != before:
                self._mtu = mtu
                if before is not None:
                    mtu_data: dict[str, Any] = {"new": mtu[0], "done": mtu[1]}
                    if before[0] != mtu[0]:
                        mtu_data = {"old": before[0], **mtu_data}
                    self._write_at(when, "connectivity:mtu_updated", mtu_data)
        ecn = c.ecn.state
        old = self._ecn_state
        if ecn != old:
            self._ecn_state = ecn
            if old is not None:
                # quic-events-06 §7.7 (RFC 9000 §A.4's states); -03 defines no ECN event.
                self._write_at(when, "recovery:ecn_state_updated", {"old": old, "new": ecn})

    def _write_at(self, when: float, name: str, data: dict[str, Any]) -> None:
        self._write({"time": self._time(when), "name": name, "data": data})

    def _poll(self, now: float | None) -> None:
        """Log what changed in the connection since the last event: keys, the peer's
        transport parameters, handshake confirmation."""
        c = self.c
        local, remote = ("client", "server") if c.is_client else ("server", "client")
        initial, handshake = c.spaces[Epoch.INITIAL], c.spaces[Epoch.HANDSHAKE]
        keys = c.keys
        for key_type, key in (
            (f"{local}_initial_secret", initial.send_key),
            (f"{remote}_initial_secret", initial.recv_key),
            (f"{local}_handshake_secret", handshake.send_key),
            (f"{remote}_handshake_secret", handshake.recv_key),
            (f"{local}_0rtt_secret", c.zero_rtt_send_key),
            (f"{remote}_0rtt_secret", c.zero_rtt_recv_key),
            (f"{remote}_1rtt_secret", keys.recv),  # before ours: who updated first
            (f"{local}_1rtt_secret", keys.send),
        ):
            seen = self._keys.get(key_type)
            if key is not seen:
                self._keys[key_type] = key
                self._key_changed(key_type, seen, key, now)
        params = c.remote_params
        if params is not None and params is not self._remote_params:
            self._remote_params = params
            self._event("transport:parameters_set", parameters_set(params, "remote"), now)
        if c.handshake_confirmed and not self._confirmed:
            self._confirmed = True
            self._state("handshake_confirmed", now)

    def _key_changed(self, key_type: str, old: object, new: object, now: float | None) -> None:
        """security:key_updated / key_discarded (quic-events §6). The secret itself is never
        logged: ``new`` is empty (main schema §6.1.2)."""
        if new is None:
            self._event("security:key_discarded", {"key_type": key_type}, now)
            return
        data: dict[str, Any] = {"key_type": key_type, "new": "", "trigger": "tls"}
        if key_type.endswith("1rtt_secret"):
            side = 0 if key_type.startswith("client") == self.c.is_client else 1
            if old is not None:  # a key update (RFC 9001 §6): who started it?
                generations = self._generations
                generations[side] += 1
                ahead = generations[1 - side] >= generations[side]
                # The side whose keys change second follows the one that started.
                ours = (side == 0) != ahead
                data["trigger"] = "local_update" if ours else "remote_update"
            data["generation"] = self._generations[side]
        self._event("security:key_updated", data, now)

    def _state(self, new: str, now: float | None) -> None:
        self._event("connectivity:connection_state_updated", {"new": new}, now)

    # The connection's calls ---------------------------------------------------------------
    def connection_started(self, address: Address, now: float) -> bool:
        """A client's connect() or a server connection's first datagram from ``address``:
        connection_started, our transport parameters, the "attempted" state. False when
        the trace cannot be written (the connection then drops its tracer)."""
        c = self.c
        data: dict[str, Any] = {"ip_version": "v6" if ":" in address[0] else "v4"}
        if c.is_client:
            data.update(dst_ip=address[0], dst_port=address[1])
            data.update(src_cid=c.host_cid.hex(), dst_cid=c.original_destination_cid.hex())
        else:
            data.update(src_ip=address[0], src_port=address[1], src_cid=c.host_cid.hex())
        self._event("connectivity:connection_started", data, now)
        versions = [f"{v:08x}" for v in c.configuration.supported_versions]
        side = "client_versions" if c.is_client else "server_versions"
        info: dict[str, Any] = {side: versions}
        if c.offered_version == c.version:  # else chosen by Version Negotiation, later
            info["chosen_version"] = f"{c.version:08x}"
        self._event("transport:version_information", info, now)
        self._event("transport:parameters_set", parameters_set(c.local_params, "local"), now)
        self._state("attempted", now)
        self._poll(now)
        return self.enabled

    def packet_sent(
        self,
        epoch: Epoch,
        packet_number: int,
        buffer: bytes | bytearray,
        payload_start: int,
        size: int,
        now: float,
    ) -> None:
        """transport:packet_sent from the plaintext ``buffer[payload_start:]`` of a packet
        of ``size`` bytes on the wire (called before recovery records it)."""
        if not self.enabled:
            return
        self._poll(now)
        payload = bytes(buffer[payload_start:])
        c = self.c
        exponent = c.local_params.ack_delay_exponent if epoch == Epoch.ONE_RTT else 3
        if epoch == Epoch.ZERO_RTT:
            self._zero_rtt_sent.add(packet_number)
        header: dict[str, Any] = {"packet_type": PACKET_TYPE[epoch], "packet_number": packet_number}
        if epoch != Epoch.ONE_RTT:
            # RFC 9369 §4.1: 0-RTT stays in the original version after a switch.
            version = c.versions.original if epoch == Epoch.ZERO_RTT else c.version
            header.update(
                version=f"{version:08x}",
                scid=c.host_cid.hex(),
                dcid=c.cids.current_peer_cid.hex(),
            )
        data = {
            "header": header,
            "frames": qlog_frames(payload, exponent),
            "raw": {"length": size, "payload_length": len(payload)},
        }
        self._event("transport:packet_sent", data, now)
        self._touched = now  # recovery counts it next

    def packet_received(
        self,
        epoch: Epoch,
        packet_number: int,
        payload: bytes,
        size: int,
        now: float,
        header: LongHeader | None = None,
    ) -> None:
        """transport:packet_received for an authenticated packet, before its frames act."""
        if not self.enabled:
            return
        self._poll(now)
        c = self.c
        params = c.remote_params
        exponent = 3
        if epoch == Epoch.ONE_RTT and params is not None:
            exponent = params.ack_delay_exponent
        qlog_header: dict[str, Any] = {
            "packet_type": PACKET_TYPE[epoch],
            "packet_number": packet_number,
        }
        if header is not None:
            qlog_header.update(
                version=f"{header.version:08x}",
                scid=header.source_cid.hex(),
                dcid=header.destination_cid.hex(),
            )
        data = {
            "header": qlog_header,
            "frames": qlog_frames(payload, exponent),
            "raw": {"length": size, "payload_length": len(payload)},
        }
        self._event("transport:packet_received", data, now)
        self._touched = now  # its frames act next (ACKs move the metrics)

    def version_negotiation(self, data: bytes, chosen: int | None, now: float) -> None:
        """A client's Version Negotiation packet (RFC 9000 §6.2): packet_received with the
        server's versions and version_information with the one chosen (none when no
        version is common), or packet_dropped when the packet is ignored (``chosen`` None)."""
        if not self.enabled:
            return
        if chosen is None:
            self.packet_dropped("version_negotiation", len(data), "unexpected_packet", now)
            return
        dcid, scid, versions = parse_version_negotiation(data)  # it parsed: chosen is set
        server_versions = [f"{v:08x}" for v in versions]
        data_out: dict[str, Any] = {
            "header": {
                "packet_type": "version_negotiation",
                "scid": scid.hex(),
                "dcid": dcid.hex(),
            },
            "supported_versions": server_versions,
            "raw": {"length": len(data)},
        }
        self._event("transport:packet_received", data_out, now)
        client_versions = [f"{v:08x}" for v in self.c.configuration.supported_versions]
        info: dict[str, Any] = {
            "client_versions": client_versions,
            "server_versions": server_versions,
        }
        if chosen != NO_COMMON_VERSION:
            info["chosen_version"] = f"{chosen:08x}"
        self._event("transport:version_information", info, now)

    def retry_received(self, header: LongHeader, size: int, accepted: bool, now: float) -> None:
        """A Retry (RFC 9000 §17.2.5): transport:packet_received when the client took it,
        else transport:packet_dropped ("unexpected_packet": a second one, a late one, or
        one whose integrity tag fails)."""
        if not self.enabled:
            return
        if not accepted:
            self.packet_dropped("retry", size, "unexpected_packet", now)
            return
        qlog_header = {
            "packet_type": "retry",
            "version": f"{header.version:08x}",
            "scid": header.source_cid.hex(),
            "dcid": header.destination_cid.hex(),
        }
        data = {
            "header": qlog_header,
            "retry_token": {"type": "retry", "length": len(header.token)},
            "raw": {"length": size},
        }
        self._event("transport:packet_received", data, now)

    def packet_dropped(
        self,
        packet_type: str,
        size: int,
        trigger: str,
        now: float,
        packet_number: int | None = None,
    ) -> None:
        """transport:packet_dropped (quic-events §5.7): a packet the connection could not use."""
        if not self.enabled:
            return
        header: dict[str, Any] = {"packet_type": packet_type}
        if packet_number is not None:
            header["packet_number"] = packet_number
        data = {"header": header, "raw": {"length": size}, "trigger": trigger}
        self._event("transport:packet_dropped", data, now)

    def packets_lost(self, space_id: int, lost: Sequence[SentPacket], now: float) -> None:
        """recovery:packet_lost (quic-events §7.5) for each packet loss detection gave up on;
        recovery calls this before it acts on the loss."""
        if not self.enabled:
            return
        largest = self.c.recovery.spaces[space_id].largest_acked
        zero_rtt = self._zero_rtt_sent if space_id == 2 else ()
        for packet in lost:
            pn = packet.packet_number
            packet_type = "0RTT" if pn in zero_rtt else SPACE_PACKET_TYPE[space_id]
            data: dict[str, Any] = {
                "header": {"packet_type": packet_type, "packet_number": pn},
                "frames": lost_frames(packet),
                # RFC 9002 §6.1.1: three later packets acknowledged; else the time threshold.
                "trigger": "reordering_threshold"
                if largest is not None and largest >= pn + 3
                else "time_threshold",
            }
            self._event("recovery:packet_lost", data, now)
        self._lost = True
        self._touched = now  # the congestion controller reacts next

    def attach(self, recovery: Recovery) -> None:
        """Observe ``recovery``'s losses (the connection's recovery, new or replaced)."""
        recovery.loss_observer = self.packets_lost

    def handshake_completed(self, alpn_protocol: str | None, now: float | None) -> None:
        """The TLS handshake completed: the ALPN protocol chosen and the new state."""
        if not self.enabled:
            return
        self._poll(now)
        if alpn_protocol is not None:
            self._event("transport:alpn_information", {"chosen_alpn": alpn_protocol}, now)
        self._state("handshake_complete", now)

    def handshake_confirmed(self) -> None:
        """The handshake is confirmed (RFC 9001 §4.1.2), while the connection acts on the
        packet last logged: the state and the Handshake keys dropped, at that packet's time."""
        if self.enabled:
            self._poll(None)

    def connection_ending(self, state: str, event: ConnectionTerminated, now: float | None) -> None:
        """The connection enters ``state`` ("closing", "draining" or "closed") for the
        reason in ``event``: connection_closed (once, quic-events §4.3), then the state;
        what is buffered goes to the file. Without ``now`` it waits for the next event's."""
        if not self.enabled:
            return
        if now is None:
            self._deferred = (state, event)
            return
        if not self._ended:
            self._ended = True
            data: dict[str, Any] = {
                "owner": "remote" if event.by_peer else "local",
                "reason": event.reason,
                "trigger": close_trigger(event),
            }
            if event.is_application:
                data["application_code"] = event.error_code
            else:
                data["connection_code"] = error_code_name(event.error_code)
            self._event("connectivity:connection_closed", data, now)
        self._state(state, now)
        self.flush()

    def connection_terminated(self, event: ConnectionTerminated | None, now: float | None) -> None:
        """The connection is gone: the "closed" state, the file finished and closed."""
        if self.enabled and event is not None and (now is not None or self._start is not None):
            when = self._last if now is None else now
            deferred, self._deferred = self._deferred, None
            if deferred is not None:
                self.connection_ending(*deferred, when)
            self.connection_ending("closed", event, when)
        self.close()
