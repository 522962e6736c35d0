"""What the client and server state machines share.

The engine is sans-I/O: handshake bytes come in with
:meth:`TLSEngine.receive` tagged with their :class:`Epoch`, bytes to send
come out of :meth:`TLSEngine.data_to_send` tagged the same way, and
:meth:`TLSEngine.next_event` hands out traffic secrets as they become ready,
the completed handshake, and session tickets. ``now`` is wall-clock seconds
(it dates tickets).
"""

from __future__ import annotations

from typing import ClassVar

from quicnet.crypto import Certificate, ExpandKey
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.config import ClientConfig, ServerConfig
from quicnet.tls.errors import ProtocolViolation, UsageError
from quicnet.tls.events import (
    HANDSHAKE_EPOCH,
    Epoch,
    EventQueue,
    TLSEvent,
    TrafficSecretReady,
)
from quicnet.tls.fixed import FixedInputs
from quicnet.tls.key_schedule import (
    CIPHER_SUITES,
    CipherSuite,
    KeySchedule,
    SuiteInfo,
    Transcript,
    export_keying_material,
)
from quicnet.tls.messages import (
    HandshakeMessage,
    HandshakeReassembler,
    decode_message,
    encode_message,
)

__all__ = ["TLSEngine"]

#: No fixed inputs (every handshake but a test vector's): one frozen instance for all,
#: whose mappings are only read.
_NOT_FIXED = FixedInputs()


class TLSEngine(EventQueue[TLSEvent]):
    """Base of :class:`~quicnet.tls.client.TLSClient` and :class:`~quicnet.tls.server.TLSServer`;
    its events are traffic secrets, the handshake's completion and tickets."""

    # The engine's own state in slots: with the role's attributes (in the subclass's
    # __dict__) an engine has ~50, past what CPython 3.11 shares between instances'
    # dictionaries (30 keys), so each engine grew its own dictionary through resizes and
    # its attribute stores and loads went unspecialized.
    __slots__ = (
        "_client_handshake_key",
        "_exporter_hash",
        "_exporter_master_secret",
        "_fixed",
        "_key_log",
        "_outgoing",
        "_read_key_changes",
        "_reassembler",
        "_reassembly_epoch",
        "_server_handshake_key",
        "alpn_protocol",
        "cipher_suite",
        "client_application_secret",
        "client_handshake_secret",
        "client_random",
        "early_data_accepted",
        "group",
        "handshake_complete",
        "key_schedule",
        "local_record_size_limit",
        "peer_certificates",
        "peer_record_size_limit",
        "peer_transport_parameters",
        "quic",
        "resumed",
        "server_application_secret",
        "server_handshake_secret",
        "state",
        "suite",
        "transcript",
    )

    is_client: bool

    def __init__(
        self, config: ClientConfig | ServerConfig, *, quic: bool, fixed: FixedInputs | None
    ) -> None:
        config.validate()
        if quic and config.quic_transport_parameters is None:
            raise UsageError("a QUIC endpoint must set quic_transport_parameters")
        self.quic = quic
        self.state = "START"
        self._key_log = config.key_log
        self._fixed = fixed or _NOT_FIXED
        # What the handshake settles, for both roles.
        self.group: int | None = None
        self.resumed = False
        self.early_data_accepted = False
        self.peer_record_size_limit: int | None = None
        self.peer_transport_parameters: bytes | None = None
        self._events: list[TLSEvent] = []  # a few per handshake: a list is lighter
        self._outgoing: list[tuple[Epoch, bytearray]] = []
        self._reassembler = HandshakeReassembler()
        self._reassembly_epoch: Epoch | None = None
        self.transcript = Transcript()
        self.cipher_suite: CipherSuite | None = None
        self.suite: SuiteInfo | None = None
        self.key_schedule: KeySchedule | None = None
        self.client_random = b""
        self.alpn_protocol: str | None = None
        self.peer_certificates: tuple[Certificate, ...] = ()
        self.handshake_complete = False
        self._exporter_master_secret = b""
        #: The transcript hash the exporter master secret is derived from (RFC 8446 §7.1),
        #: set with the application secrets; the secret itself is derived at the first
        #: export (QUIC never exports), or at once when a key log wants it.
        self._exporter_hash = b""
        self.client_handshake_secret = b""
        #: The handshake traffic secrets keyed once (ExpandKey): the Finished keys and,
        #: over QUIC, the packet keys are expanded from them.
        self._client_handshake_key: ExpandKey | None = None
        self._server_handshake_key: ExpandKey | None = None
        self._read_key_changes = 0
        #: The record_size_limit we announced and the peer accepted (RFC 8449), if any.
        self.local_record_size_limit: int | None = None
        self.server_handshake_secret = b""
        #: Current application traffic secrets (for KeyUpdate on TCP).
        self.client_application_secret = b""
        self.server_application_secret = b""

    # The caller's side ------------------------------------------------------------
    def receive(self, epoch: Epoch, data: bytes, now: float) -> None:
        """Feed handshake bytes that arrived at ``epoch``; raises ProtocolViolation."""
        if (
            self._reassembly_epoch is not None
            and len(self._reassembler)
            and epoch != self._reassembly_epoch
        ):
            # §5.1: handshake messages must not span key changes.
            raise ProtocolViolation(
                "a handshake message spans a key change", AlertDescription.unexpected_message
            )
        self._reassembly_epoch = epoch
        messages = self._reassembler.feed(data)
        for i, raw in enumerate(messages):
            reads_before = self._read_key_changes
            message = decode_message(raw)
            self._handle(epoch, message, raw, now)
            if self._read_key_changes != reads_before and (
                i + 1 < len(messages) or len(self._reassembler)
            ):
                # §5.1: a key change must fall on a record boundary.
                raise ProtocolViolation(
                    "handshake data follows a key change in the same record",
                    AlertDescription.unexpected_message,
                )

    def data_to_send(self) -> list[tuple[Epoch, bytes]]:
        """Handshake bytes to send, in order, each with the epoch that must protect it."""
        out = [(epoch, bytes(buf)) for epoch, buf in self._outgoing if buf]
        self._outgoing.clear()
        return out

    def release_handshake_state(self) -> None:
        """Once the handshake is complete, drop what only the handshake needed.

        The transcript (with every handshake message in it), the handshake traffic
        secrets and each role's negotiation state go; tickets, KeyUpdate and the
        exporter keep working. A long-lived connection keeps a few hundred bytes of
        TLS instead of the whole handshake.
        """
        if not self.handshake_complete:
            raise UsageError("the handshake is not complete")
        self.transcript = Transcript()
        self.client_handshake_secret = self.server_handshake_secret = b""
        self._client_handshake_key = self._server_handshake_key = None
        self._release_role_state()

    def _release_role_state(self) -> None:
        """What a client or a server kept for the handshake only."""

    def export_keying_material(self, label: bytes, context: bytes, length: int) -> bytes:
        """RFC 8446 §7.5 exporter; available once the handshake is complete."""
        if not self._exporter_hash or self.suite is None or self.key_schedule is None:
            raise UsageError("keying material can be exported only after the handshake")
        if not self._exporter_master_secret:
            self._exporter_master_secret = self.key_schedule.exporter_master_secret(
                self._exporter_hash
            )
        return export_keying_material(
            self.suite, self._exporter_master_secret, label, context, length
        )

    # For the state machines ---------------------------------------------------------
    #: (state, message class, epoch) -> name of the handler; anything else is unexpected.
    TRANSITIONS: ClassVar[dict[tuple[str, type, Epoch], str]] = {}

    def _handle(self, epoch: Epoch, message: HandshakeMessage, raw: bytes, now: float) -> None:
        handler = self.TRANSITIONS.get((self.state, type(message), epoch))
        if handler is None:
            raise self._unexpected(message)
        getattr(self, handler)(message, raw, now)

    def _unexpected(self, message: HandshakeMessage) -> ProtocolViolation:
        return ProtocolViolation(
            f"unexpected {type(message).__name__} in state {self.state}",
            AlertDescription.unexpected_message,
        )

    def _send(self, epoch: Epoch, message: HandshakeMessage, *, transcript: bool = True) -> bytes:
        raw = encode_message(message)
        if transcript:
            self.transcript.add(raw)
        if self._outgoing and self._outgoing[-1][0] == epoch:  # as _queue, without its call
            self._outgoing[-1][1].extend(raw)
        else:
            self._outgoing.append((epoch, bytearray(raw)))
        return raw

    def _queue(self, epoch: Epoch, raw: bytes) -> None:
        """Queue the encoded message ``raw`` for ``epoch`` (not added to the transcript)."""
        if self._outgoing and self._outgoing[-1][0] == epoch:
            self._outgoing[-1][1].extend(raw)
        else:
            self._outgoing.append((epoch, bytearray(raw)))

    def _set_suite(self, suite: CipherSuite, psk: bytes | None = None) -> None:
        self.cipher_suite = suite
        self.suite = CIPHER_SUITES[suite]
        self.transcript.set_hash(self.suite.hash_name)
        self.key_schedule = KeySchedule(self.suite, psk)

    def _secret(
        self,
        epoch: Epoch,
        is_write: bool,
        secret: bytes,
        log_label: str,
        keyed: ExpandKey | None = None,
    ) -> None:
        assert self.cipher_suite is not None
        self._events.append(TrafficSecretReady(epoch, is_write, self.cipher_suite, secret, keyed))
        if not is_write:
            self._read_key_changes += 1
        if self._key_log is not None:
            self._log(log_label, secret)

    def _log(self, label: str, secret: bytes) -> None:
        if self._key_log is not None:
            self._key_log(f"{label} {self.client_random.hex()} {secret.hex()}")

    def _install_handshake_secrets(self, *, defer_server_read: bool = False) -> None:
        """After ServerHello: both handshake traffic secrets.

        A TCP server that accepted early data keeps reading 0-RTT records until
        EndOfEarlyData, so it asks for its read secret later (``defer_server_read``).
        """
        assert self.key_schedule is not None
        schedule = self.key_schedule
        client, server = schedule.handshake_traffic_secrets(self.transcript.digest())
        self.client_handshake_secret, self.server_handshake_secret = client, server
        # Each keyed once for its Finished key and the packet keys (RFC 8446 §4.4.4, §7.3).
        self._client_handshake_key = ExpandKey(schedule.hash_name, client)
        self._server_handshake_key = server_key = ExpandKey(schedule.hash_name, server)
        self._secret(
            HANDSHAKE_EPOCH,
            not self.is_client,
            server,
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            server_key,
        )
        if not defer_server_read:
            self._secret(
                HANDSHAKE_EPOCH,
                self.is_client,
                client,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                self._client_handshake_key,
            )

    def _derive_application_secrets(self) -> None:
        """After the server's Finished: the application secrets; the exporter master
        secret's transcript hash, the secret itself derived when first asked for (a key
        log gets it now)."""
        assert self.key_schedule is not None
        self.key_schedule.enter_master()
        transcript_hash = self.transcript.digest()
        self._exporter_hash = transcript_hash
        if self._key_log is not None:
            client, server, exporter = self.key_schedule.application_secrets(transcript_hash)
            self._exporter_master_secret = exporter
            self._log("EXPORTER_SECRET", exporter)
        else:
            client, server = self.key_schedule.application_traffic_secrets(transcript_hash)
        self.client_application_secret, self.server_application_secret = client, server
