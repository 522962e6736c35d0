"""The TLS 1.3 record layer (RFC 8446 §5) over a byte stream such as TCP.

:class:`TLSConnection` wraps a client or server engine: TCP bytes in with
:meth:`~TLSConnection.receive_data`, TCP bytes out of
:meth:`~TLSConnection.data_to_send`, application data with
:meth:`~TLSConnection.send`, events from :meth:`~TLSConnection.next_event`.
It owns record protection, fragmentation, the middlebox-compatibility
ChangeCipherSpec (Appendix D.4), KeyUpdate (§4.6.3), alerts and close_notify.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

from quicnet.crypto import Aead, DecryptError
from quicnet.tls.alerts import AlertDescription, AlertLevel
from quicnet.tls.client import TLSClient
from quicnet.tls.config import ClientConfig, ServerConfig
from quicnet.tls.errors import AlertReceived, DecodeError, ProtocolViolation, TLSError, UsageError
from quicnet.tls.events import Epoch, HandshakeComplete, SessionTicketReceived, TrafficSecretReady
from quicnet.tls.key_schedule import CIPHER_SUITES, next_traffic_secret, traffic_aead
from quicnet.tls.keylog import key_log_from_environment
from quicnet.tls.messages import (
    HandshakeReassembler,
    HandshakeType,
    KeyUpdate,
    decode_message,
    encode_message,
)
from quicnet.tls.server import TLSServer

__all__ = ["ApplicationData", "ConnectionClosed", "RecordEvent", "TLSConnection"]

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
_CONTENT_TYPES = {CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA}
MAX_PLAINTEXT = 1 << 14
MAX_CIPHERTEXT = MAX_PLAINTEXT + 256
_HEADER = 5
_TAG = 16
# Send a KeyUpdate well before the AES-GCM limit of 2^24.5 full records (RFC 8446 §5.5).
KEY_UPDATE_AFTER_RECORDS = 1 << 23


@dataclass(frozen=True, slots=True)
class ApplicationData:
    """Application bytes from the peer; ``early`` for accepted 0-RTT data (server side)."""

    data: bytes
    early: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer sent close_notify: no more data will come."""


RecordEvent = ApplicationData | ConnectionClosed | HandshakeComplete | SessionTicketReceived


class _Protection:
    """One direction's AEAD with its sequence number (reset at each key change)."""

    __slots__ = ("aead", "epoch", "secret", "sequence")

    def __init__(self, epoch: Epoch, secret: bytes, aead: Aead) -> None:
        self.epoch = epoch
        self.secret = secret
        self.aead = aead
        self.sequence = 0


class TLSConnection:
    """One TLS 1.3 connection over a reliable byte stream (sans-I/O)."""

    def __init__(self, engine: TLSClient | TLSServer) -> None:
        self.engine = engine
        self.is_client = engine.is_client
        self._inbuf = bytearray()
        self._out = bytearray()
        self._events: deque[RecordEvent] = deque()
        self._read: _Protection | None = None
        self._write: dict[Epoch, _Protection] = {}
        self._post_handshake = HandshakeReassembler()
        self._ccs_sent = False
        self._early_data_received = 0
        self._key_update_reply_queued = False
        self._early_data_sent = 0
        self.closed = False  # no more records in or out (alert or both close_notify)
        self.peer_closed = False
        self.local_closed = False
        self.first_record = True
        self._peer_protected_seen = False

    def _ccs_due(self) -> bool:
        """Appendix D.4: one dummy ChangeCipherSpec in middlebox-compatibility mode."""
        engine = self.engine
        if self._ccs_sent or not engine.config.middlebox_compatibility:
            return False
        # A server uses the mode only if the client asked (non-empty legacy_session_id).
        return isinstance(engine, TLSClient) or bool(engine.legacy_session_id)

    @classmethod
    def client(cls, config: ClientConfig) -> TLSConnection:
        """A client connection. Without ``config.key_log`` it appends its secrets to the
        file SSLKEYLOGFILE names, when it is set (:mod:`quicnet.tls.keylog`)."""
        if config.key_log is None:
            key_log = key_log_from_environment()
            if key_log is not None:
                config = dataclasses.replace(config, key_log=key_log)
        return cls(TLSClient(config))

    @classmethod
    def server(cls, config: ServerConfig) -> TLSConnection:
        """A server connection for ``config``."""
        return cls(TLSServer(config))

    # Public API -----------------------------------------------------------------------
    @property
    def handshake_complete(self) -> bool:
        """Whether this side has verified the peer's Finished and sent its own (RFC 8446 §4.4.4)."""
        return self.engine.handshake_complete

    def start(self, now: float) -> None:
        """Client: queue the ClientHello (and 0-RTT keys when a session allows)."""
        if not isinstance(self.engine, TLSClient):
            raise UsageError("only a client starts the handshake")
        self.engine.start(now)
        self._drain_engine()

    def receive_data(self, data: bytes, now: float) -> None:
        """Process bytes from the peer. A protocol error queues the alert, then raises."""
        if self.closed:
            return
        self._inbuf += data
        try:
            self._process_records(now)
        except TLSError as exc:
            if isinstance(exc, ProtocolViolation):
                self._fail(exc.alert)
            self.closed = True
            raise
        except Exception as exc:  # a bug must still end the connection cleanly
            self._fail(AlertDescription.internal_error)
            self.closed = True
            raise ProtocolViolation(
                f"internal error: {exc!r}", AlertDescription.internal_error
            ) from exc

    def _fail(self, alert: AlertDescription) -> None:
        """Send a fatal alert under the newest keys the peer can have.

        A client that just processed ServerHello has handshake keys the server
        also has, so they protect its alert. A server's unsent flight never
        reaches the client, so its alert uses the keys of what it did send.
        """
        if self.is_client:
            while (event := self.engine.next_event()) is not None:
                # The server reads our 1-RTT keys only after our Finished, never sent now.
                if (
                    isinstance(event, TrafficSecretReady)
                    and event.is_write
                    and event.epoch == Epoch.HANDSHAKE
                ):
                    suite = CIPHER_SUITES[event.cipher_suite]
                    self._write[event.epoch] = _Protection(
                        event.epoch, event.secret, traffic_aead(suite, event.secret)
                    )
        self._send_alert(alert)

    def data_to_send(self) -> bytes:
        """The records queued for the peer since the last call, as bytes for the transport."""
        out = bytes(self._out)
        self._out.clear()
        self._key_update_reply_queued = False
        return out

    def next_event(self) -> RecordEvent | None:
        """The oldest event not yet taken (data, close, completion, ticket), or None."""
        return self._events.popleft() if self._events else None

    def send(self, data: bytes) -> None:
        """Queue application data (after the handshake)."""
        if self.closed or self.local_closed:
            raise UsageError("the connection is closed for sending")
        if not self.engine.handshake_complete or Epoch.ONE_RTT not in self._write:
            raise UsageError("application data can be sent only after the handshake")
        self._write_records(Epoch.ONE_RTT, APPLICATION_DATA, data)

    def send_early_data(self, data: bytes) -> int:
        """Client: queue 0-RTT data; returns how many bytes went (the ticket's limit caps it).

        The server may still reject them: see ``HandshakeComplete.early_data_accepted``.
        """
        engine = self.engine
        if not isinstance(engine, TLSClient) or Epoch.ZERO_RTT not in self._write:
            raise UsageError("no early data can be sent (no session that allows it)")
        if engine.handshake_complete or not (
            engine.state == "WAIT_SH" or engine.early_data_accepted
        ):
            raise UsageError("early data can be sent only until the server's Finished")
        session = engine.config.session
        limit = session.max_early_data_size if session is not None else 0
        room = max(0, limit - self._early_data_sent)  # RFC 8446 §4.2.10
        chunk = data[:room]
        if chunk:
            self._write_records(Epoch.ZERO_RTT, APPLICATION_DATA, chunk)
            self._early_data_sent += len(chunk)
        return len(chunk)

    def key_update(self, *, request_peer: bool = True) -> None:
        """Send KeyUpdate and switch to the next sending key (§4.6.3)."""
        if not self.engine.handshake_complete or self.closed:
            raise UsageError("KeyUpdate needs a completed handshake")
        self._send_key_update(request_peer)

    def close(self) -> None:
        """Send close_notify; keep reading until the peer's close_notify."""
        if self.local_closed or self.closed:
            return
        self._send_alert(AlertDescription.close_notify)
        self.local_closed = True

    def export_keying_material(self, label: bytes, context: bytes, length: int) -> bytes:
        """``length`` bytes of the TLS exporter for ``label`` and ``context`` (RFC 8446 §7.5).

        Raises :class:`~quicnet.tls.errors.UsageError` before the handshake is complete.
        """
        return self.engine.export_keying_material(label, context, length)

    # Reading --------------------------------------------------------------------------
    def _process_records(self, now: float) -> None:
        buf = self._inbuf
        while len(buf) >= _HEADER and not self.closed:
            content_type = buf[0]
            length = int.from_bytes(buf[3:5], "big")
            if content_type not in _CONTENT_TYPES:
                raise ProtocolViolation(
                    f"unknown record type {content_type}", AlertDescription.unexpected_message
                )
            # §5.2: protected records (0-RTT ones before an HRR too) may carry 2^14 + 256.
            protected = self._read is not None or content_type == APPLICATION_DATA
            limit = MAX_CIPHERTEXT if protected else MAX_PLAINTEXT
            if length > limit:
                raise ProtocolViolation(
                    f"record of {length} bytes exceeds {limit}", AlertDescription.record_overflow
                )
            if len(buf) < _HEADER + length:
                return
            header = bytes(buf[:_HEADER])
            fragment = bytes(buf[_HEADER : _HEADER + length])
            del buf[: _HEADER + length]
            self._process_record(content_type, header, fragment, now)

    def _process_record(
        self, content_type: int, header: bytes, fragment: bytes, now: float
    ) -> None:
        if content_type == CHANGE_CIPHER_SPEC:
            # Appendix D.4: one unprotected 0x01 between the hellos and Finished is ignored;
            # §5: before the ClientHello it is an unexpected record.
            if (
                fragment != b"\x01"
                or self.engine.handshake_complete
                or self.engine.state == "START"
            ):
                raise ProtocolViolation(
                    "unexpected change_cipher_spec", AlertDescription.unexpected_message
                )
            return
        protection = self._read
        if content_type == ALERT and not self._peer_protected_seen:
            # A peer that failed before deriving keys (e.g. on our ServerHello) alerts in clear.
            self._dispatch(content_type, fragment, Epoch.INITIAL, now)
            return
        if protection is None:
            if content_type == APPLICATION_DATA and self._skippable_early_data(len(fragment)):
                return  # 0-RTT after our HelloRetryRequest: skipped (§4.2.10)
            if content_type == APPLICATION_DATA:
                raise ProtocolViolation(
                    "protected record before keys", AlertDescription.unexpected_message
                )
            self._dispatch(content_type, fragment, Epoch.INITIAL, now)
            return
        if content_type != APPLICATION_DATA:
            raise ProtocolViolation(
                f"record type {content_type} must be protected now",
                AlertDescription.unexpected_message,
            )
        try:
            plaintext = protection.aead.open(protection.sequence, fragment, header)
        except DecryptError:
            if self._skippable_early_data(len(fragment)):
                return
            raise ProtocolViolation(
                "record authentication failed", AlertDescription.bad_record_mac
            ) from None
        protection.sequence += 1
        self._peer_protected_seen = True
        # §5.4: the limit covers content type and padding; then strip the padding.
        if len(plaintext) > self._max_receive_plaintext() + 1:
            raise ProtocolViolation("record plaintext too long", AlertDescription.record_overflow)
        end = len(plaintext)
        while end and plaintext[end - 1] == 0:
            end -= 1
        if end == 0:
            raise ProtocolViolation(
                "protected record has no content type", AlertDescription.unexpected_message
            )
        inner_type = plaintext[end - 1]
        self._dispatch(inner_type, plaintext[: end - 1], protection.epoch, now)

    def _skippable_early_data(self, size: int) -> bool:
        """§4.2.10: a server that rejected 0-RTT skips undecryptable records, up to a limit."""
        engine = self.engine
        if (
            not isinstance(engine, TLSServer)
            or not engine.early_data_offered
            or engine.early_data_accepted
            or engine.handshake_complete
            or self._peer_protected_seen  # a record under handshake keys ends early data
        ):
            return False
        # After an HRR early data can only precede the second ClientHello.
        expected = ("WAIT_CH2",) if engine.hello_retry_sent else ("WAIT_FINISHED", "WAIT_CERT")
        if engine.state not in expected:
            return False
        # The plaintext is at most the record less its content type and tag (§5.2).
        self._count_early_data(max(0, size - 1 - _TAG))
        return True

    def _count_early_data(self, size: int) -> None:
        """§4.2.10, §4.6.1: more early data than max_early_data_size is unexpected_message."""
        assert isinstance(self.engine, TLSServer)
        self._early_data_received += size
        if self._early_data_received > self.engine.early_data_limit:
            raise ProtocolViolation(
                f"more than {self.engine.early_data_limit} bytes of early data",
                AlertDescription.unexpected_message,
            )

    def _max_receive_plaintext(self) -> int:
        limit = self.engine.local_record_size_limit
        return MAX_PLAINTEXT if limit is None else min(MAX_PLAINTEXT, limit - 1)

    def _dispatch(self, content_type: int, data: bytes, epoch: Epoch, now: float) -> None:
        if content_type == HANDSHAKE:
            if not data:
                raise ProtocolViolation(
                    "empty handshake record", AlertDescription.unexpected_message
                )
            if self.engine.handshake_complete:
                self._post_handshake_messages(data, now)
            else:
                self.engine.receive(epoch, data, now)
                self._drain_engine()
        elif content_type == ALERT:
            self._on_alert(data)
        elif content_type == APPLICATION_DATA:
            early = epoch == Epoch.ZERO_RTT
            if not (self.engine.handshake_complete and epoch == Epoch.ONE_RTT) and not early:
                raise ProtocolViolation(
                    "application data before the handshake completed",
                    AlertDescription.unexpected_message,
                )
            if early:
                self._count_early_data(len(data))
            if self.peer_closed:
                return  # §6.1: data after a closure alert is ignored
            if data:
                self._events.append(ApplicationData(data, early))
        else:  # change_cipher_spec inside protection
            raise ProtocolViolation(
                "protected change_cipher_spec", AlertDescription.unexpected_message
            )

    def _on_alert(self, data: bytes) -> None:
        if not data:  # §5.1: alerts are never fragmented, so never empty
            raise ProtocolViolation("empty alert record", AlertDescription.unexpected_message)
        if len(data) != 2:
            raise DecodeError("an alert is two bytes")
        level, description = data[0], data[1]
        if description == AlertDescription.close_notify:
            self.peer_closed = True
            self._events.append(ConnectionClosed())
            if self.local_closed:
                self.closed = True
            return
        if description == AlertDescription.user_canceled and level == AlertLevel.warning:
            return  # §6.1: followed by close_notify
        self.closed = True
        try:
            name = AlertDescription(description).name
        except ValueError:
            name = str(description)
        error = AlertReceived(f"the peer sent alert {name}", AlertDescription.internal_error)
        error.description = description
        raise error

    def _post_handshake_messages(self, data: bytes, now: float) -> None:
        messages = self._post_handshake.feed(data)
        for i, raw in enumerate(messages):
            if raw[0] == HandshakeType.key_update:
                # §5.1: a key change falls on a record boundary, so KeyUpdate ends its
                # record: at most one (one key derivation) per record.
                if i + 1 < len(messages) or len(self._post_handshake):
                    raise ProtocolViolation(
                        "data after KeyUpdate in its record", AlertDescription.unexpected_message
                    )
                self._on_key_update(raw)
            else:
                self.engine.receive(Epoch.ONE_RTT, raw, now)
                self._drain_engine()

    def _on_key_update(self, raw: bytes) -> None:
        message = decode_message(raw)
        assert isinstance(message, KeyUpdate)
        read = self._read
        assert read is not None and self.engine.suite is not None
        secret = next_traffic_secret(self.engine.suite, read.secret)
        self._read = _Protection(Epoch.ONE_RTT, secret, traffic_aead(self.engine.suite, secret))
        # §4.6.3: requests that arrive while our reply is still queued (not yet handed
        # out, no application data after it) are all answered by that one reply.
        if message.request_update and not self.local_closed and not self._key_update_reply_queued:
            self._send_key_update(False)
            self._key_update_reply_queued = True

    # Writing ---------------------------------------------------------------------------
    def _drain_engine(self) -> None:
        engine = self.engine
        while (event := engine.next_event()) is not None:
            if isinstance(event, TrafficSecretReady):
                suite = CIPHER_SUITES[event.cipher_suite]
                protection = _Protection(
                    event.epoch, event.secret, traffic_aead(suite, event.secret)
                )
                if event.is_write:
                    self._write[event.epoch] = protection
                else:
                    self._read = protection
            else:
                self._events.append(event)
        for epoch, data in engine.data_to_send():
            self._write_records(epoch, HANDSHAKE, data)

    def _max_send_plaintext(self) -> int:
        limit = self.engine.peer_record_size_limit
        return MAX_PLAINTEXT if limit is None else min(MAX_PLAINTEXT, limit - 1)

    def _write_records(self, epoch: Epoch, content_type: int, data: bytes) -> None:
        size = self._max_send_plaintext()
        if epoch == Epoch.INITIAL:
            version = b"\x03\x01" if self.first_record and self.is_client else b"\x03\x03"  # §5.1
            for i in range(0, len(data), size):
                chunk = data[i : i + size]
                self._out += (
                    bytes((content_type,)) + version + len(chunk).to_bytes(2, "big") + chunk
                )
            self.first_record = False
            # D.4: the server's dummy CCS follows its first handshake message (SH or HRR).
            if not self.is_client and self._ccs_due():
                self._write_dummy_ccs()
            return
        if self.is_client and self._ccs_due():
            self._write_dummy_ccs()  # D.4: after the ClientHello, before any protected record
        protection = self._write[epoch]
        if content_type == APPLICATION_DATA:
            self._key_update_reply_queued = False  # a later request needs its own reply
        for i in range(0, max(len(data), 1), size):
            inner = data[i : i + size] + bytes((content_type,))
            header = b"\x17\x03\x03" + (len(inner) + _TAG).to_bytes(2, "big")
            self._out += header + protection.aead.seal(protection.sequence, inner, header)
            protection.sequence += 1
        if (
            epoch == Epoch.ONE_RTT
            and content_type == APPLICATION_DATA
            and protection.sequence >= KEY_UPDATE_AFTER_RECORDS
        ):
            self._send_key_update(False)

    def _write_dummy_ccs(self) -> None:
        self._out += b"\x14\x03\x03\x00\x01\x01"
        self._ccs_sent = True

    def _send_key_update(self, request_peer: bool) -> None:
        suite = self.engine.suite
        assert suite is not None
        self._write_records(Epoch.ONE_RTT, HANDSHAKE, encode_message(KeyUpdate(request_peer)))
        current = self._write[Epoch.ONE_RTT]
        secret = next_traffic_secret(suite, current.secret)
        self._write[Epoch.ONE_RTT] = _Protection(Epoch.ONE_RTT, secret, traffic_aead(suite, secret))

    def _send_alert(self, description: AlertDescription) -> None:
        level = (
            AlertLevel.warning if description == AlertDescription.close_notify else AlertLevel.fatal
        )
        body = bytes((level, description))
        epoch = max(self._write, default=Epoch.INITIAL)
        if epoch == Epoch.ZERO_RTT and Epoch.ONE_RTT not in self._write:
            epoch = Epoch.INITIAL if Epoch.HANDSHAKE not in self._write else Epoch.HANDSHAKE
        if epoch == Epoch.INITIAL:
            self._out += b"\x15\x03\x03\x00\x02" + body
        else:
            self._write_records(epoch, ALERT, body)
