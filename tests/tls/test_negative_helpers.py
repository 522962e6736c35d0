"""Shared machinery of the negative TLS tests (test_negative_*.py); it holds no tests.

The implementation under test is always a :class:`TLSConnection`. Its peer is
either hand-built records, or a :class:`Puppet`: a genuine quicnet engine
(:class:`TLSClient` / :class:`TLSServer`) behind a small record layer written
here, so a test can take the engine's handshake messages, change one, and
protect the result with the keys the genuine peer would use.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pytest

from quicnet.crypto import (
    Aead,
    Certificate,
    KeyShare,
    NamedGroup,
    PrivateKey,
    SignatureScheme,
    dev_identity,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.tls import (
    AlertDescription,
    ApplicationData,
    ClientConfig,
    Epoch,
    ProtocolViolation,
    ServerConfig,
    TLSClient,
    TLSConnection,
    TLSServer,
    TrafficSecretReady,
)
from quicnet.tls import extensions as ext
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.key_schedule import CIPHER_SUITES, traffic_aead
from quicnet.tls.messages import (
    ClientHello,
    Extension,
    HandshakeReassembler,
    decode_message,
    encode_message,
)

__all__ = [
    "ALERT",
    "APPLICATION_DATA",
    "CHANGE_CIPHER_SPEC",
    "HANDSHAKE",
    "NOW",
    "Msg",
    "Puppet",
    "alert_bytes",
    "assert_dead",
    "client_config",
    "client_hello",
    "connected_pair",
    "drain",
    "expect_violation",
    "hello_record",
    "identity",
    "pump",
    "record",
    "rsa_identity",
    "server_config",
    "split_records",
    "with_extension",
    "without_extension",
]

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
DUMMY_CCS = b"\x14\x03\x03\x00\x01\x01"

#: Wall-clock "now" for every engine call (tickets are dated with it).
NOW = time.time()


# Identities and configurations ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Identity:
    chain: tuple[Certificate, ...]
    key: PrivateKey
    root: Certificate


_IDENTITIES: dict[str, Identity] = {}


def identity(name: str = "server", **kwargs: Any) -> Identity:
    """A dev identity (ECDSA P-256 leaf for localhost), made once per name."""
    if name not in _IDENTITIES:
        dev = dev_identity(**kwargs)
        _IDENTITIES[name] = Identity(dev.certificate_chain, dev.private_key, dev.trust_root)
    return _IDENTITIES[name]


def rsa_identity() -> Identity:
    """An RSA 2048 leaf for localhost under an EC root (made once)."""
    if "rsa" not in _IDENTITIES:
        ca_key = generate_private_key("EC")
        ca = make_ca(ca_key, "/CN=negative tests RSA CA", days=30)
        key = generate_private_key("RSA")
        leaf = issue_certificate(
            make_csr(key, "/CN=localhost", names=["localhost"]), ca, ca_key, days=30
        )
        _IDENTITIES["rsa"] = Identity((leaf,), key, ca)
    return _IDENTITIES["rsa"]


def x400_san_certificate(ident: Identity | None = None) -> bytes:
    """The leaf's DER with its dNSName SAN entry retagged as an x400Address ([3]).

    RFC 5280 allows x400Address names; pyca/cryptography refuses to expose
    them (``UnsupportedGeneralNameType``). The signature no longer matches,
    which the peer must never get far enough to check.
    """
    der = (ident or identity()).chain[0].to_der()
    i = der.index(b"\x82\x09localhost")
    return der[:i] + b"\xa3" + der[i + 1 :]


def server_config(ident: Identity | None = None, **kwargs: Any) -> ServerConfig:
    ident = ident or identity()
    return ServerConfig(certificate_chain=ident.chain, private_key=ident.key, **kwargs)


def client_config(root: Certificate | None = None, **kwargs: Any) -> ClientConfig:
    kwargs.setdefault("server_name", "localhost")
    return ClientConfig(trust_roots=[root or identity().root], **kwargs)


# Records --------------------------------------------------------------------------------
def record(content_type: int, payload: bytes, version: bytes = b"\x03\x03") -> bytes:
    """One unprotected record (any length: the header is not checked here)."""
    return bytes((content_type,)) + version + len(payload).to_bytes(2, "big") + payload


def alert_bytes(alert: AlertDescription) -> bytes:
    """A fatal alert as an unprotected record: 15 03 03 00 02 02 XX."""
    return record(ALERT, bytes((2, alert)))


def split_records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """``(content_type, header, fragment)`` of each whole record in ``data``."""
    out = []
    while data:
        assert len(data) >= 5, f"a partial record header: {data.hex()}"
        length = int.from_bytes(data[3:5], "big")
        assert len(data) >= 5 + length, "a partial record"
        out.append((data[0], data[:5], data[5 : 5 + length]))
        data = data[5 + length :]
    return out


def drain(conn: TLSConnection) -> list[Any]:
    events = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


# The puppet peer --------------------------------------------------------------------------
@dataclasses.dataclass
class Msg:
    """One handshake message a puppet's engine wants to send, with its epoch."""

    epoch: Epoch
    raw: bytes

    @property
    def message(self) -> Any:
        return decode_message(self.raw)


class _Keys:
    def __init__(self, epoch: Epoch, aead: Aead) -> None:
        self.epoch = epoch
        self.aead = aead
        self.sequence = 0


class Puppet:
    """A genuine quicnet engine behind a record layer these tests control.

    ``receive`` reads what the implementation under test sent (decrypting with
    the engine's read keys and feeding handshake messages to the engine);
    ``flight`` hands out the engine's next handshake messages *unprotected*,
    to be changed at will and protected with :meth:`records` / :meth:`protect`.
    """

    def __init__(self, engine: TLSClient | TLSServer) -> None:
        self.engine = engine
        self.read: _Keys | None = None
        self.write: dict[Epoch, _Keys] = {}
        self.events: list[Any] = []
        self.received: list[tuple[int, bytes]] = []

    @classmethod
    def server(cls, config: ServerConfig | None = None) -> Puppet:
        return cls(TLSServer(config or server_config()))

    @classmethod
    def client(cls, config: ClientConfig | None = None, **kwargs: Any) -> Puppet:
        puppet = cls(TLSClient(config or client_config(), **kwargs))
        puppet.engine.start(NOW)  # type: ignore[union-attr]
        puppet._drain()
        return puppet

    def _drain(self) -> None:
        while (event := self.engine.next_event()) is not None:
            if isinstance(event, TrafficSecretReady):
                keys = _Keys(
                    event.epoch, traffic_aead(CIPHER_SUITES[event.cipher_suite], event.secret)
                )
                if event.is_write:
                    self.write[event.epoch] = keys
                else:
                    self.read = keys
            else:
                self.events.append(event)

    def receive(self, data: bytes, *, feed: bool = True) -> list[tuple[int, bytes]]:
        """Decrypt every record; feed handshake messages to the engine unless ``feed`` is off.

        Returns ``(content_type, plaintext)`` per record (the dummy CCS included).
        """
        out = []
        for content_type, header, fragment in split_records(data):
            if content_type == APPLICATION_DATA:
                assert self.read is not None, "a protected record before the puppet has keys"
                plaintext = self.read.aead.open(self.read.sequence, fragment, header)
                self.read.sequence += 1
                body = plaintext.rstrip(b"\x00")
                content_type, payload, epoch = body[-1], body[:-1], self.read.epoch
            else:
                payload, epoch = fragment, Epoch.INITIAL
            out.append((content_type, payload))
            if content_type == HANDSHAKE and feed:
                self.engine.receive(epoch, payload, NOW)
                self._drain()
        self.received += out
        return out

    def flight(self) -> list[Msg]:
        """The engine's pending handshake messages, one :class:`Msg` each."""
        self._drain()
        out = []
        for epoch, data in self.engine.data_to_send():
            for raw in HandshakeReassembler().feed(data):
                out.append(Msg(epoch, raw))
        return out

    def protect(
        self, epoch: Epoch, content_type: int, payload: bytes, *, padding: int = 0
    ) -> bytes:
        """One TLSCiphertext under this side's write key for ``epoch``."""
        keys = self.write[epoch]
        inner = payload + bytes((content_type,)) + bytes(padding)
        header = b"\x17\x03\x03" + (len(inner) + 16).to_bytes(2, "big")
        sealed = keys.aead.seal(keys.sequence, inner, header)
        keys.sequence += 1
        return header + sealed

    def records(self, messages: Sequence[Msg], *, one_per_message: bool = True) -> bytes:
        """Handshake messages as records: unprotected at INITIAL, else protected."""
        out = bytearray()
        groups: list[tuple[Epoch, bytes]] = []
        for m in messages:
            if not one_per_message and groups and groups[-1][0] == m.epoch:
                groups[-1] = (m.epoch, groups[-1][1] + m.raw)
            else:
                groups.append((m.epoch, m.raw))
        for epoch, payload in groups:
            if epoch == Epoch.INITIAL:
                out += record(HANDSHAKE, payload)
            else:
                out += self.protect(epoch, HANDSHAKE, payload)
        return bytes(out)

    def decrypt_alerts(self, data: bytes) -> list[bytes]:
        """Alert bodies in ``data`` (protected or not), other records ignored."""
        return [payload for ct, payload in self.receive(data, feed=False) if ct == ALERT]


# Building hellos -------------------------------------------------------------------------
def _share(group: int) -> bytes:
    return KeyShare(group).key_exchange


def client_hello(
    *,
    suites: Sequence[int] = (0x1301,),
    extensions: Sequence[Extension] | None = None,
    compression: bytes = b"\x00",
    session_id: bytes = bytes(range(32)),
    legacy_version: int = 0x0303,
) -> ClientHello:
    """A valid TLS 1.3 ClientHello (x25519 share, ECDSA and Ed25519 schemes)."""
    if extensions is None:
        extensions = (
            Extension(ET.server_name, ext.encode_server_name("localhost")),
            Extension(ET.supported_groups, ext.encode_u16_list([NamedGroup.x25519])),
            Extension(
                ET.signature_algorithms,
                ext.encode_u16_list(
                    [SignatureScheme.ecdsa_secp256r1_sha256, SignatureScheme.ed25519]
                ),
            ),
            Extension(ET.supported_versions, ext.encode_supported_versions_client()),
            Extension(
                ET.key_share,
                ext.encode_key_share_client(
                    [ext.KeyShareEntry(NamedGroup.x25519, _share(NamedGroup.x25519))]
                ),
            ),
            Extension(ET.psk_key_exchange_modes, ext.encode_psk_modes()),
        )
    return ClientHello(
        random=bytes(32),
        legacy_session_id=session_id,
        cipher_suites=tuple(suites),
        extensions=tuple(extensions),
        legacy_version=legacy_version,
        legacy_compression_methods=compression,
    )


def hello_record(message: Any, version: bytes = b"\x03\x01") -> bytes:
    """A handshake message (dataclass or raw bytes) in one unprotected record."""
    raw = message if isinstance(message, bytes) else encode_message(message)
    return record(HANDSHAKE, raw, version)


def without_extension(message: Any, ext_type: int) -> Any:
    return dataclasses.replace(
        message, extensions=tuple(e for e in message.extensions if e.type != ext_type)
    )


def with_extension(message: Any, extension: Extension, *, replace: bool = True) -> Any:
    """``message`` with ``extension`` in place of the one of its type (or appended)."""
    items = list(message.extensions)
    for i, e in enumerate(items):
        if e.type == extension.type and replace:
            items[i] = extension
            break
    else:
        items.append(extension)
    return dataclasses.replace(message, extensions=tuple(items))


# Driving connections --------------------------------------------------------------------
def pump(client: TLSConnection, server: TLSConnection, now: float = NOW) -> None:
    """Exchange bytes until both sides are quiet."""
    for _ in range(20):
        c2s = client.data_to_send()
        if c2s:
            server.receive_data(c2s, now)
        s2c = server.data_to_send()
        if s2c:
            client.receive_data(s2c, now)
        if not c2s and not s2c:
            return
    raise AssertionError("the connections never went quiet")


def connected_pair(
    cc: ClientConfig | None = None, sc: ServerConfig | None = None
) -> tuple[TLSConnection, TLSConnection]:
    """A client and a server that completed the handshake (events drained)."""
    client = TLSConnection.client(cc or client_config())
    server = TLSConnection.server(sc or server_config())
    client.start(NOW)
    pump(client, server)
    assert client.handshake_complete and server.handshake_complete
    drain(client)
    drain(server)
    return client, server


def assert_dead(conn: TLSConnection) -> None:
    """Closed: later bytes are ignored, nothing is sent, no data is delivered."""
    assert conn.closed
    conn.receive_data(record(APPLICATION_DATA, bytes(40)) + record(HANDSHAKE, b"\x01"), NOW)
    conn.receive_data(b"\x17\x03\x03", NOW)
    assert conn.data_to_send() == b""
    assert not any(isinstance(e, ApplicationData) for e in drain(conn))


def expect_violation(
    conn: TLSConnection,
    data: bytes,
    alert: AlertDescription,
    *,
    peer: Puppet | None = None,
) -> ProtocolViolation:
    """Feed ``data``; the connection must raise ``alert``, send exactly it, and be dead.

    Without ``peer`` the alert must go out unprotected (15 03 03 00 02 02 XX);
    with one, as a protected record the peer decrypts (a dummy CCS may precede it).
    """
    drain(conn)
    with pytest.raises(ProtocolViolation) as info:
        conn.receive_data(data, NOW)
    assert info.value.alert == alert, f"{info.value.alert!r} ({info.value})"
    out = conn.data_to_send()
    if peer is None:
        assert out == alert_bytes(alert)
    else:
        kinds = [r[0] for r in split_records(out)]
        if kinds and kinds[0] == CHANGE_CIPHER_SPEC:
            assert out.startswith(DUMMY_CCS)
            kinds = kinds[1:]
        assert kinds == [APPLICATION_DATA], f"expected one protected record, got {kinds}"
        assert peer.decrypt_alerts(out) == [bytes((2, alert))]
    after = [e for e in drain(conn) if isinstance(e, ApplicationData)]
    assert after == [], "application data delivered from a broken connection"
    assert_dead(conn)
    return info.value


def start_client(config: ClientConfig | None = None) -> tuple[TLSConnection, ClientHello, bytes]:
    """A started client, its ClientHello and the record that carries it."""
    client = TLSConnection.client(config or client_config())
    client.start(NOW)
    data = client.data_to_send()
    (content_type, _, payload), *rest = split_records(data)
    assert content_type == HANDSHAKE and not rest
    hello = decode_message(payload)
    assert isinstance(hello, ClientHello)
    return client, hello, data


__all__ += ["DUMMY_CCS", "Identity", "start_client", "x400_san_certificate"]
