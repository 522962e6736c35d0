"""RFC 8448's example handshakes replayed through the real TLS 1.3 engine.

Every input the traces publish (randoms, ephemeral keys, the server's RSA
key, the session ticket, the time the ticket is used) is handed to the
engine through :class:`~quicnet.tls.fixed.FixedInputs`; what the engine
writes must then be the trace's records byte for byte, and the secrets it
hands out (SSLKEYLOGFILE lines or TrafficSecretReady events) the trace's
secrets.

The one thing ``FixedInputs.extensions`` substitutes is the extension list
of a ClientHello or EncryptedExtensions, because the traces (made by NSS)
carry extensions quicnet does not implement: the legacy ``session_ticket``
and ``renegotiation_info``, ``padding``, FFDHE groups, DSA/SHA-1 signature
schemes. :class:`RfcExtensions` first checks that every extension the engine
built itself and must build (server_name, key_share, supported_versions, ...)
has the trace's exact body; only then does it return the trace's list.

Nothing that is randomized by design (RSA-PSS CertificateVerify, ECDSA) can
match: those signatures are verified instead, over the transcript.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from quicnet.crypto import (
    Aead,
    AeadAlgorithm,
    Certificate,
    NamedGroup,
    PrivateKey,
    SignatureScheme,
    derive_secret,
    digest,
    hkdf_expand_label,
    hmac_digest,
    load_certificate,
)
from quicnet.tls import (
    AlertDescription,
    ApplicationData,
    CipherSuite,
    ClientConfig,
    ConnectionClosed,
    Epoch,
    HandshakeComplete,
    ProtocolViolation,
    ServerConfig,
    SessionTicket,
    SessionTicketReceived,
    TLSClient,
    TLSConnection,
    TLSServer,
    TrafficSecretReady,
    UsageError,
)
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.extensions import decode_key_share_hrr, decode_pre_shared_key_client
from quicnet.tls.fixed import FixedInputs, FixedTicket
from quicnet.tls.messages import (
    Certificate as CertificateMessage,
)
from quicnet.tls.messages import (
    CertificateVerify,
    ClientHello,
    EncryptedExtensions,
    Extension,
    HandshakeReassembler,
    HandshakeType,
    NewSessionTicket,
    ServerHello,
    decode_message,
    encode_message,
)
from quicnet.tls.session import TicketState

# --- the trace text ---------------------------------------------------------------------------

VECTORS = Path(__file__).parents[1] / "crypto" / "vectors" / "rfc8448-tls13-vectors.txt"

_PAGE_FURNITURE = re.compile(
    r"^(Thomson\s+Expires\b.*\[Page \d+\]|Internet-Draft\s+TLS 1\.3 Traces\s.*)$"
)
_SECTION = re.compile(r"^(\d+)\.  \S")
_STEP = re.compile(r"^   \{(client|server)\}  (.+?):?$")
_FIELD = re.compile(r"^      ([A-Za-z][^()]*?) \((\d+) octets\):\s*(.*)$")
_KEY_FIELD = re.compile(r"^   ([a-z][a-z0-9 ()]*?):  ((?:[0-9a-f]{2} ?)+)$")
_HEX = re.compile(r"^\s+((?:[0-9a-f]{2} ?)+)$")


class Trace:
    """Section 2's RSA key and every ``{side}  step`` with its ``name (n octets)`` fields."""

    def __init__(self, text: str) -> None:
        lines = [
            line for line in text.replace("\f", "").splitlines() if not _PAGE_FURNITURE.match(line)
        ]
        self.rsa_key: dict[str, bytes] = {}
        self.steps: list[tuple[int, str, str, dict[str, bytes]]] = []
        section = 0
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if m := _SECTION.match(line):
                section = int(m.group(1))
            elif section == 2 and (m := _KEY_FIELD.match(line)):
                tokens = m.group(2).split()
                while i < len(lines) and (h := _HEX.match(lines[i])):
                    tokens += h.group(1).split()
                    i += 1
                self.rsa_key[m.group(1)] = bytes.fromhex("".join(tokens))
            elif m := _STEP.match(line):
                self.steps.append((section, m.group(1), m.group(2), {}))
            elif (m := _FIELD.match(line)) and self.steps:
                length = int(m.group(2))
                tokens = m.group(3).split() if length else []
                while len(tokens) < length:  # continuation lines, maybe across a page break
                    more = lines[i]
                    i += 1
                    if more.strip():
                        h = _HEX.match(more)
                        assert h is not None, f"unexpected line {more!r}"
                        tokens += h.group(1).split()
                assert len(tokens) == length, f"{m.group(1)}: {len(tokens)} != {length}"
                self.steps[-1][3][m.group(1)] = bytes.fromhex("".join(tokens))

    def get(self, section: int, side: str, title: str, name: str, nth: int = 0) -> bytes:
        found = [f for s, d, t, f in self.steps if (s, d, t) == (section, side, title)]
        if len(found) <= nth:
            raise KeyError(f"no step #{nth} {{{side}}} {title!r} in section {section}")
        return found[nth][name]


TRACE = Trace(VECTORS.read_text(encoding="ascii"))
H = "sha256"  # every trace negotiates TLS_AES_128_GCM_SHA256
NOW = 1_700_000_000.0
HANDSHAKE_RECORD, ALERT_RECORD, APPLICATION_RECORD, CCS_RECORD = 0x16, 0x15, 0x17, 0x14


def message(section: int, side: str, name: str, nth: int = 0) -> bytes:
    """A handshake message as the trace constructs it (header included)."""
    return TRACE.get(section, side, f"construct a {name} handshake message", name, nth)


def record(
    section: int, side: str, kind: str, nth: int = 0, field: str = "complete record"
) -> bytes:
    """A record the trace sends: kind is handshake, application_data, alert, change_cipher_spec."""
    return TRACE.get(section, side, f"send {kind} record", field, nth)


def secret(section: int, label: str) -> bytes:
    """A derived secret, e.g. ``c hs traffic`` (printed on the server side but res master)."""
    side = "client" if label in ("res master", "c e traffic") else "server"
    return TRACE.get(section, side, f'derive secret "tls13 {label}"', "expanded")


def extracted(section: int, name: str) -> bytes:
    return TRACE.get(section, "server", f'extract secret "{name}"', "secret")


def private_key_share(section: int, side: str, group: str = "x25519", nth: int = 0) -> bytes:
    return TRACE.get(section, side, f"create an ephemeral {group} key pair", "private key", nth)


def traffic_key(section: int, side: str, direction: str, what: str) -> Aead:
    """The record AEAD exactly as the trace prints its key and IV."""
    title = f"derive {direction} traffic keys for {what}"
    return Aead(
        AeadAlgorithm.AES_128_GCM,
        TRACE.get(section, side, title, "key expanded"),
        TRACE.get(section, side, title, "iv expanded"),
    )


def client_hello(section: int, nth: int = 0) -> ClientHello:
    if section == 4:  # "construct a ClientHello" stops before the binders there
        hello = decode_message(record(4, "client", "handshake", field="payload"))
    else:
        hello = decode_message(message(section, "client", "ClientHello", nth))
    assert isinstance(hello, ClientHello)
    return hello


def server_hello(section: int, nth: int = 0) -> ServerHello:
    hello = decode_message(message(section, "server", "ServerHello", nth))
    assert isinstance(hello, ServerHello)
    return hello


def encrypted_extensions(section: int) -> EncryptedExtensions:
    ee = decode_message(message(section, "server", "EncryptedExtensions"))
    assert isinstance(ee, EncryptedExtensions)
    return ee


def certificate_of(section: int, side: str = "server") -> Certificate:
    msg = decode_message(message(section, side, "Certificate"))
    assert isinstance(msg, CertificateMessage)
    return load_certificate(msg.certificate_list[0].cert_data)


def rfc_rsa_key() -> PrivateKey:
    """Section 2's RSA key, rebuilt from its published CRT parameters."""
    k = {name: int.from_bytes(value, "big") for name, value in TRACE.rsa_key.items()}
    public = rsa.RSAPublicNumbers(k["public exponent"], k["modulus (public)"])
    numbers = rsa.RSAPrivateNumbers(
        p=k["prime1"],
        q=k["prime2"],
        d=k["private exponent"],
        dmp1=k["exponent1"],
        dmq1=k["exponent2"],
        iqmp=k["coefficient"],
        public_numbers=public,
    )
    return PrivateKey(numbers.private_key())


RSA_KEY = rfc_rsa_key()
RSA_CERT = certificate_of(3)  # CN=rsa, self-signed, RSA 1024 (sections 3, 5, 7)
ECDSA_CERT = certificate_of(6)  # CN=ecdsa256 (section 6's server)


# --- small record-layer and key-schedule helpers -----------------------------------------------


def split_records(data: bytes) -> list[bytes]:
    out = []
    i = 0
    while i < len(data):
        end = i + 5 + int.from_bytes(data[i + 3 : i + 5], "big")
        out.append(data[i:end])
        i = end
    assert i == len(data), "the output does not end on a record boundary"
    return out


def aead_for(traffic_secret: bytes) -> Aead:
    key = hkdf_expand_label(H, traffic_secret, b"key", b"", 16)
    iv = hkdf_expand_label(H, traffic_secret, b"iv", b"", 12)
    return Aead(AeadAlgorithm.AES_128_GCM, key, iv)


def open_record(aead: Aead, seq: int, protected: bytes) -> tuple[int, bytes]:
    """(inner content type, content) of a TLSCiphertext."""
    assert protected[:3] == b"\x17\x03\x03"
    plaintext = aead.open(seq, protected[5:], protected[:5]).rstrip(b"\x00")
    return plaintext[-1], plaintext[:-1]


def seal_record(aead: Aead, seq: int, content_type: int, content: bytes) -> bytes:
    inner = content + bytes((content_type,))
    header = b"\x17\x03\x03" + (len(inner) + 16).to_bytes(2, "big")
    return header + aead.seal(seq, inner, header)


def split_messages(data: bytes) -> list[bytes]:
    reassembler = HandshakeReassembler()
    messages = reassembler.feed(data)
    assert len(reassembler) == 0
    return messages


def finished_verify_data(base_key: bytes, transcript: bytes) -> bytes:
    finished_key = hkdf_expand_label(H, base_key, b"finished", b"", 32)
    return hmac_digest(H, finished_key, digest(H, transcript))


def certificate_verify_content(transcript: bytes, *, server: bool) -> bytes:
    who = b"server" if server else b"client"
    return b" " * 64 + b"TLS 1.3, " + who + b" CertificateVerify\x00" + digest(H, transcript)


def message_hash(first_client_hello: bytes) -> bytes:
    """§4.4.1: what replaces ClientHello1 in the transcript after a HelloRetryRequest."""
    return bytes((HandshakeType.message_hash, 0, 0, 32)) + digest(H, first_client_hello)


def key_log(lines: Sequence[str], client_random: bytes) -> dict[str, bytes]:
    """SSLKEYLOGFILE lines as {label: secret}; every line names this connection."""
    secrets: dict[str, bytes] = {}
    for line in lines:
        label, random_hex, secret_hex = line.split(" ")
        assert random_hex == client_random.hex()
        assert label not in secrets, f"{label} logged twice"
        secrets[label] = bytes.fromhex(secret_hex)
    return secrets


def events(conn: TLSConnection | TLSClient | TLSServer) -> list[object]:
    out = []
    while (event := conn.next_event()) is not None:
        out.append(event)
    return out


# --- FixedInputs.extensions hook -------------------------------------------------------------

# Extensions the client engine builds itself; where the trace carries them, the engine's
# bodies must be the trace's.
CLIENT_BUILT = frozenset(
    {ET.server_name, ET.supported_versions, ET.key_share, ET.psk_key_exchange_modes}
    | {ET.record_size_limit, ET.early_data, ET.cookie}
)
SERVER_BUILT = frozenset({ET.server_name, ET.record_size_limit, ET.early_data})


class RfcExtensions:
    """Hook returning the trace's extension lists of ``msg_type`` messages in order.

    ``must_build`` names extensions the engine must have produced with the
    trace's exact bodies before the trace's list replaces its own. Messages of
    another type keep the engine's extensions.
    """

    def __init__(
        self,
        *lists: Sequence[Extension],
        must_build: Collection[int],
        msg_type: HandshakeType = HandshakeType.client_hello,
    ) -> None:
        self._lists = lists
        self._must_build = frozenset(must_build)
        self._msg_type = msg_type
        self.seen: list[tuple[HandshakeType, list[Extension]]] = []

    def __call__(self, msg_type: HandshakeType, built: list[Extension]) -> list[Extension]:
        if msg_type != self._msg_type:
            return built
        rfc = self._lists[len(self.seen)]
        self.seen.append((msg_type, list(built)))
        ours = {e.type: e.data for e in built}
        for ext in rfc:
            if ext.type in self._must_build:
                assert ext.type in ours, f"the engine did not build extension {ext.type}"
                assert ours[ext.type] == ext.data, f"extension {ext.type} differs from the trace"
        return [e for e in rfc if e.type != ET.pre_shared_key]  # the engine appends its own


# --- clients and servers set up as in the traces -------------------------------------------------


def client_fixed(section: int, hook: RfcExtensions | None, *, p256: bool = False) -> FixedInputs:
    hello = client_hello(section)
    keys = {NamedGroup.x25519: private_key_share(section, "client")}
    if p256:
        keys[NamedGroup.secp256r1] = private_key_share(section, "client", "P-256")
    return FixedInputs(
        random=hello.random,
        session_id=hello.legacy_session_id or None,
        key_share_private_keys=keys,
        extensions=hook,
    )


def client_config(section: int, lines: list[str], **overrides: object) -> ClientConfig:
    hello = client_hello(section)
    settings: dict[str, object] = {
        "server_name": "server",
        "pinned_fingerprints": [(ECDSA_CERT if section == 6 else RSA_CERT).fingerprint()],
        "cipher_suites": [CipherSuite(s) for s in hello.cipher_suites],
        "record_size_limit": 0x4001,
        # Section 7 is the only trace with a legacy_session_id (Appendix D.4).
        "middlebox_compatibility": bool(hello.legacy_session_id),
        "key_log": lines.append,
    }
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


def rfc_client(
    section: int, *, lines: list[str] | None = None, hook: bool = True, **overrides: object
) -> tuple[TLSConnection, RfcExtensions]:
    """The trace's client; ``hook=False`` sends the engine's own extensions instead."""
    lines = [] if lines is None else lines
    extensions = RfcExtensions(client_hello(section).extensions, must_build=CLIENT_BUILT)
    fixed = client_fixed(section, extensions if hook else None)
    client = TLSClient(client_config(section, lines, **overrides), fixed=fixed)
    return TLSConnection(client), extensions


def started(conn: TLSConnection) -> TLSConnection:
    conn.start(NOW)
    return conn


def s3_client_after_server_flight(lines: list[str] | None = None) -> TLSConnection:
    conn = started(rfc_client(3, lines=lines)[0])
    assert conn.data_to_send() == record(3, "client", "handshake")
    conn.receive_data(record(3, "server", "handshake", 0), NOW)
    conn.receive_data(record(3, "server", "handshake", 1), NOW)
    return conn


# ================================================================================================
# Section 3: Simple 1-RTT Handshake, client side
# ================================================================================================


def test_trace_parser_reads_keys_and_page_spanning_records() -> None:
    assert len(TRACE.rsa_key["modulus (public)"]) == 128
    assert TRACE.rsa_key["public exponent"] == b"\x01\x00\x01"
    assert RSA_CERT.public_key() == RSA_KEY.public_key()
    flight = record(3, "server", "handshake", 1)  # straddles the page 8/9 break
    assert len(flight) == 679 and flight[:5] == bytes.fromhex("17030302a2")


def test_s3_client_hello_record_is_byte_exact() -> None:
    conn, hook = rfc_client(3)
    conn.start(NOW)
    assert conn.data_to_send() == record(3, "client", "handshake")
    # The engine's own extensions that the trace also has were built identically.
    (msg_type, built) = hook.seen[0]
    assert msg_type == HandshakeType.client_hello
    built_types = {e.type for e in built}
    assert {ET.server_name, ET.key_share, ET.supported_versions} <= built_types
    assert {ET.psk_key_exchange_modes, ET.record_size_limit} <= built_types


def test_s3_client_accepts_server_flight_and_sends_rfc_finished() -> None:
    conn = s3_client_after_server_flight()
    assert conn.data_to_send() == record(3, "client", "handshake", 1)
    assert conn.handshake_complete
    (done,) = events(conn)
    assert isinstance(done, HandshakeComplete)
    assert done.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert done.group == NamedGroup.x25519
    assert done.signature_scheme == SignatureScheme.rsa_pss_rsae_sha256
    assert done.peer_certificates == (RSA_CERT,)
    assert not done.resumed and done.server_name == "server"


def test_s3_client_key_log_is_the_rfc_secrets() -> None:
    lines: list[str] = []
    s3_client_after_server_flight(lines)
    assert key_log(lines, client_hello(3).random) == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": secret(3, "c hs traffic"),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": secret(3, "s hs traffic"),
        "CLIENT_TRAFFIC_SECRET_0": secret(3, "c ap traffic"),
        "SERVER_TRAFFIC_SECRET_0": secret(3, "s ap traffic"),
        "EXPORTER_SECRET": secret(3, "exp master"),
    }


def test_s3_client_engine_events_without_record_layer() -> None:
    """The sans-I/O engine: plaintext messages in per epoch, secrets out as events."""
    hook = RfcExtensions(client_hello(3).extensions, must_build=CLIENT_BUILT)
    client = TLSClient(client_config(3, []), fixed=client_fixed(3, hook))
    client.start(NOW)
    assert client.data_to_send() == [(Epoch.INITIAL, message(3, "client", "ClientHello"))]
    client.receive(Epoch.INITIAL, message(3, "server", "ServerHello"), NOW)
    flight = b"".join(
        message(3, "server", name)
        for name in ("EncryptedExtensions", "Certificate", "CertificateVerify", "Finished")
    )
    # Byte by byte: the reassembler must cope with any fragmentation.
    for i in range(len(flight)):
        client.receive(Epoch.HANDSHAKE, flight[i : i + 1], NOW)
    assert client.data_to_send() == [(Epoch.HANDSHAKE, message(3, "client", "Finished"))]
    got = events(client)
    secrets = [(e.epoch, e.is_write, e.secret) for e in got if isinstance(e, TrafficSecretReady)]
    assert secrets == [
        (Epoch.HANDSHAKE, False, secret(3, "s hs traffic")),
        (Epoch.HANDSHAKE, True, secret(3, "c hs traffic")),
        (Epoch.ONE_RTT, False, secret(3, "s ap traffic")),
        (Epoch.ONE_RTT, True, secret(3, "c ap traffic")),
    ]
    assert all(e.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256 for e in got[:4])  # type: ignore[union-attr]
    assert isinstance(got[-1], HandshakeComplete)
    client.receive(Epoch.ONE_RTT, message(3, "server", "NewSessionTicket"), NOW)
    (ticket_event,) = events(client)
    assert isinstance(ticket_event, SessionTicketReceived)
    psk = TRACE.get(3, "server", 'generate resumption secret "tls13 resumption"', "expanded")
    assert ticket_event.ticket.resumption_psk == psk


def test_s3_client_session_ticket_is_the_rfc_psk() -> None:
    conn = s3_client_after_server_flight()
    conn.data_to_send()
    events(conn)
    conn.receive_data(record(3, "server", "handshake", 2), NOW)
    (event,) = events(conn)
    assert isinstance(event, SessionTicketReceived)
    nst = decode_message(message(3, "server", "NewSessionTicket"))
    assert isinstance(nst, NewSessionTicket)
    ticket = event.ticket
    psk = TRACE.get(3, "server", 'generate resumption secret "tls13 resumption"', "expanded")
    assert ticket.resumption_psk == psk
    assert ticket.ticket == nst.ticket
    assert (ticket.ticket_lifetime, ticket.ticket_age_add) == (30, nst.ticket_age_add)
    assert ticket.max_early_data_size == 1024  # the ticket's early_data extension
    assert ticket.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert ticket.server_name == "server" and ticket.alpn_protocol is None
    assert ticket.received_at == NOW
    # What a client stores survives its own encodings.
    assert SessionTicket.from_bytes(ticket.to_bytes()) == ticket
    assert SessionTicket.from_pem(ticket.to_pem()) == ticket


def test_s3_application_data_and_close_notify() -> None:
    conn = s3_client_after_server_flight()
    conn.data_to_send()
    conn.receive_data(record(3, "server", "handshake", 2), NOW)
    events(conn)
    conn.send(record(3, "client", "application_data", field="payload"))
    assert conn.data_to_send() == record(3, "client", "application_data")
    conn.receive_data(record(3, "server", "application_data"), NOW)
    assert events(conn) == [
        ApplicationData(record(3, "server", "application_data", field="payload"))
    ]
    conn.close()
    assert conn.data_to_send() == record(3, "client", "alert")
    assert record(3, "client", "alert", field="payload") == b"\x01\x00"  # warning close_notify
    conn.receive_data(record(3, "server", "alert"), NOW)
    assert events(conn) == [ConnectionClosed()]
    assert conn.closed
    with pytest.raises(UsageError):
        conn.send(b"too late")


def test_s3_client_records_survive_arbitrary_tcp_segmentation() -> None:
    conn = started(rfc_client(3)[0])
    conn.data_to_send()
    stream = b"".join(record(3, "server", "handshake", n) for n in range(3))
    stream += record(3, "server", "application_data")
    for i in range(0, len(stream), 7):
        conn.receive_data(stream[i : i + 7], NOW)
    assert conn.data_to_send() == record(3, "client", "handshake", 1)
    got = events(conn)
    assert [type(e) for e in got] == [HandshakeComplete, SessionTicketReceived, ApplicationData]


# --- Section 3 client: the trace altered, re-protected with the trace's own keys ----------------


def _server_flight_with(**changes: bytes) -> bytes:
    """The server's encrypted flight with some messages replaced, sealed under the RFC key."""
    names = ("EncryptedExtensions", "Certificate", "CertificateVerify", "Finished")
    content = b"".join(changes.get(n, message(3, "server", n)) for n in names)
    return seal_record(aead_for(secret(3, "s hs traffic")), 0, HANDSHAKE_RECORD, content)


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 0x01,))


@pytest.mark.parametrize(
    ("flight", "alert"),
    [
        pytest.param(
            lambda: _server_flight_with(
                CertificateVerify=_flip_last(message(3, "server", "CertificateVerify"))
            ),
            AlertDescription.decrypt_error,
            id="bad-certificate-verify-signature",
        ),
        pytest.param(
            lambda: _server_flight_with(Finished=_flip_last(message(3, "server", "Finished"))),
            AlertDescription.decrypt_error,
            id="bad-server-finished",
        ),
        pytest.param(
            lambda: _flip_last(record(3, "server", "handshake", 1)),
            AlertDescription.bad_record_mac,
            id="tampered-record",
        ),
        pytest.param(
            lambda: _server_flight_with(
                CertificateVerify=encode_message(
                    CertificateVerify(SignatureScheme.rsa_pss_rsae_sha384, b"\x00" * 128)
                )
            ),
            AlertDescription.decrypt_error,
            id="wrong-scheme-signature",
        ),
    ],
)
def test_s3_client_rejects_altered_server_flight(flight, alert: AlertDescription) -> None:  # type: ignore[no-untyped-def]
    conn = started(rfc_client(3)[0])
    conn.data_to_send()
    conn.receive_data(record(3, "server", "handshake"), NOW)
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(flight(), NOW)
    assert exc.value.alert == alert
    # The alert goes out under the client handshake key, exactly as the RFC derives it.
    (sent,) = split_records(conn.data_to_send())
    assert open_record(aead_for(secret(3, "c hs traffic")), 0, sent) == (
        ALERT_RECORD,
        bytes((2, alert)),
    )
    assert conn.closed and not conn.handshake_complete


def test_s3_client_rejects_an_unpinned_certificate() -> None:
    conn = started(rfc_client(3, pinned_fingerprints=[bytes(32)])[0])
    conn.data_to_send()
    conn.receive_data(record(3, "server", "handshake"), NOW)
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(record(3, "server", "handshake", 1), NOW)
    assert exc.value.alert == AlertDescription.bad_certificate


def test_s3_client_rejects_a_scheme_it_did_not_offer() -> None:
    conn = started(rfc_client(3, signature_algorithms=[SignatureScheme.ecdsa_secp256r1_sha256])[0])
    conn.data_to_send()
    conn.receive_data(record(3, "server", "handshake"), NOW)
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(record(3, "server", "handshake", 1), NOW)
    assert exc.value.alert == AlertDescription.illegal_parameter


def test_s3_client_spki_pin_also_authenticates() -> None:
    conn = started(rfc_client(3, pinned_fingerprints=[RSA_CERT.spki_fingerprint()])[0])
    conn.data_to_send()
    conn.receive_data(record(3, "server", "handshake"), NOW)
    conn.receive_data(record(3, "server", "handshake", 1), NOW)
    assert conn.data_to_send() == record(3, "client", "handshake", 1)


# ================================================================================================
# Section 3: server side
# ================================================================================================


def s3_server_config(lines: list[str], **overrides: object) -> ServerConfig:
    settings: dict[str, object] = {
        "certificate_chain": [RSA_CERT],
        "private_key": RSA_KEY,
        "middlebox_compatibility": False,
        "record_size_limit": 0x4001,
        "max_early_data_size": 1024,
        "ticket_lifetime": 30,
        "key_log": lines.append,
    }
    settings.update(overrides)
    return ServerConfig(**settings)  # type: ignore[arg-type]


def s3_fixed_ticket() -> FixedTicket:
    nst = decode_message(message(3, "server", "NewSessionTicket"))
    assert isinstance(nst, NewSessionTicket)
    return FixedTicket(nst.ticket_nonce, nst.ticket_age_add, nst.ticket, nst.ticket_lifetime)


def s3_ticket_states() -> dict[bytes, TicketState]:
    """Section 3's ticket as the server would have sealed it (section 4 resumes it)."""
    nst = decode_message(message(3, "server", "NewSessionTicket"))
    assert isinstance(nst, NewSessionTicket)
    psk = TRACE.get(3, "server", 'generate resumption secret "tls13 resumption"', "expanded")
    state = TicketState(
        cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        resumption_psk=psk,
        issued_at=NOW - 60.0,
        ticket_lifetime=nst.ticket_lifetime,
        ticket_age_add=nst.ticket_age_add,
        max_early_data_size=1024,
        alpn_protocol=None,
        server_name="server",
    )
    return {nst.ticket: state}


def rfc_server(
    section: int = 3,
    *,
    lines: list[str] | None = None,
    group: str = "x25519",
    config: ServerConfig | None = None,
    must_build: Collection[int] = SERVER_BUILT,
) -> tuple[TLSConnection, RfcExtensions]:
    lines = [] if lines is None else lines
    hook = RfcExtensions(
        encrypted_extensions(section).extensions,
        must_build=must_build,
        msg_type=HandshakeType.encrypted_extensions,
    )
    named = NamedGroup.x25519 if group == "x25519" else NamedGroup.secp256r1
    nth = 1 if section == 5 else 0  # section 5's first "ServerHello" is the HelloRetryRequest
    fixed = FixedInputs(
        random=server_hello(section, nth).random,
        key_share_private_keys={named: private_key_share(section, "server", group)},
        extensions=hook,
        tickets=[s3_fixed_ticket()],
        ticket_states=s3_ticket_states(),
    )
    server = TLSServer(config or s3_server_config(lines), fixed=fixed)
    return TLSConnection(server), hook


class ServerRun:
    """The section 3 server fed the RFC ClientHello, its flight decrypted with its logged keys."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.conn, self.hook = rfc_server(lines=self.lines)
        self.conn.receive_data(record(3, "client", "handshake"), NOW)
        self.records = split_records(self.conn.data_to_send())
        self.server_hello = self.records[0][5:]
        self.secrets = key_log(self.lines, client_hello(3).random)
        content_type, flight = open_record(
            aead_for(self.secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"]), 0, self.records[1]
        )
        assert content_type == HANDSHAKE_RECORD
        self.flight = split_messages(flight)

    @property
    def transcript(self) -> bytes:
        return message(3, "client", "ClientHello") + self.server_hello + b"".join(self.flight)


def test_s3_server_hello_is_the_rfc_one_but_for_random_and_order() -> None:
    run = ServerRun()
    assert [r[0] for r in run.records] == [HANDSHAKE_RECORD, APPLICATION_RECORD]
    ours = decode_message(run.server_hello)
    rfc = server_hello(3)
    assert isinstance(ours, ServerHello) and not ours.is_hello_retry_request
    assert len(ours.random) == 32
    order = [e.type for e in rfc.extensions]
    reordered = tuple(sorted(ours.extensions, key=lambda e: order.index(e.type)))
    # The x25519 share from the RFC's private key, TLS 1.3, suite, echo: all the RFC's.
    assert encode_message(replace(ours, random=rfc.random, extensions=reordered)) == message(
        3, "server", "ServerHello"
    )


def test_s3_server_hello_record_is_byte_exact() -> None:
    run = ServerRun()
    assert run.records[0] == record(3, "server", "handshake")


def test_s3_server_first_record_version_is_0303() -> None:
    """§5.1: only a client's initial ClientHello record may say 0x0301."""
    run = ServerRun()
    assert run.records[0][:3] == b"\x16\x03\x03"


def test_s3_server_hello_uses_fixed_random() -> None:
    run = ServerRun()
    ours = decode_message(run.server_hello)
    assert isinstance(ours, ServerHello)
    assert ours.random == server_hello(3).random


def test_s3_server_hello_extension_order_is_the_rfc_one() -> None:
    run = ServerRun()
    ours = decode_message(run.server_hello)
    assert isinstance(ours, ServerHello)
    assert [e.type for e in ours.extensions] == [e.type for e in server_hello(3).extensions]


def test_s3_server_secrets_follow_the_rfc_key_schedule() -> None:
    """Same ECDHE as the trace, so the RFC's handshake/master secrets; our transcript."""
    run = ServerRun()
    hello_msgs = message(3, "client", "ClientHello") + run.server_hello
    handshake, master = extracted(3, "handshake"), extracted(3, "master")
    server_finished_msgs = hello_msgs + b"".join(run.flight)
    assert run.secrets == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": derive_secret(H, handshake, b"c hs traffic", hello_msgs),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": derive_secret(H, handshake, b"s hs traffic", hello_msgs),
        "SERVER_TRAFFIC_SECRET_0": derive_secret(H, master, b"s ap traffic", server_finished_msgs),
        "EXPORTER_SECRET": derive_secret(H, master, b"exp master", server_finished_msgs),
    }


def test_s3_server_encrypted_flight() -> None:
    run = ServerRun()
    ee, cert, cv_raw, fin = run.flight
    assert ee == message(3, "server", "EncryptedExtensions")
    assert cert == message(3, "server", "Certificate")
    # The engine answered server_name and record_size_limit itself (checked by the hook).
    (msg_type, built) = run.hook.seen[0]
    assert msg_type == HandshakeType.encrypted_extensions
    assert {e.type for e in built} == {ET.server_name, ET.record_size_limit}
    # RSA-PSS is randomized: verify it over the transcript with the RFC's public key.
    cv = decode_message(cv_raw)
    assert isinstance(cv, CertificateVerify)
    assert cv.algorithm == SignatureScheme.rsa_pss_rsae_sha256
    assert len(cv_raw) == len(message(3, "server", "CertificateVerify"))
    content = certificate_verify_content(run.transcript[: -len(cv_raw) - len(fin)], server=True)
    RSA_CERT.public_key().verify(cv.algorithm, cv.signature, content)
    s_hs = run.secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"]
    assert fin == b"\x14\x00\x00\x20" + finished_verify_data(s_hs, run.transcript[: -len(fin)])


def test_s3_server_rejects_the_rfc_client_finished_with_decrypt_error() -> None:
    """The RFC's client Finished covers the RFC's CertificateVerify, not ours."""
    run = ServerRun()
    c_hs = run.secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"]
    forged = seal_record(aead_for(c_hs), 0, HANDSHAKE_RECORD, message(3, "client", "Finished"))
    with pytest.raises(ProtocolViolation) as exc:
        run.conn.receive_data(forged, NOW)
    assert exc.value.alert == AlertDescription.decrypt_error
    assert not run.conn.handshake_complete and run.conn.closed
    (alert,) = split_records(run.conn.data_to_send())
    s_ap = run.secrets["SERVER_TRAFFIC_SECRET_0"]
    assert open_record(aead_for(s_ap), 0, alert) == (ALERT_RECORD, b"\x02\x33")
    assert "CLIENT_TRAFFIC_SECRET_0" not in key_log(run.lines, client_hello(3).random)


def test_s3_server_without_early_data_rejects_the_rfc_client_finished_record() -> None:
    """As sent in the trace (keys of another transcript), the record does not decrypt."""
    lines: list[str] = []
    run_conn, _ = rfc_server(lines=lines, config=s3_server_config(lines, max_early_data_size=0))
    run_conn.receive_data(record(3, "client", "handshake"), NOW)
    run_conn.data_to_send()
    with pytest.raises(ProtocolViolation) as exc:
        run_conn.receive_data(record(3, "client", "handshake", 1), NOW)
    assert exc.value.alert in (AlertDescription.bad_record_mac, AlertDescription.decrypt_error)
    assert not run_conn.handshake_complete and run_conn.closed


def test_s3_server_does_not_skip_bad_records_when_no_early_data_was_offered() -> None:
    """§4.2.10: undecryptable records are skipped only after rejecting offered 0-RTT."""
    run = ServerRun()  # the RFC server: max_early_data_size 1024, the client offers no 0-RTT
    with pytest.raises(ProtocolViolation) as exc:
        run.conn.receive_data(record(3, "client", "handshake", 1), NOW)
    assert exc.value.alert in (AlertDescription.bad_record_mac, AlertDescription.decrypt_error)
    assert run.conn.closed and not run.conn.handshake_complete


def test_s3_server_reproduces_the_rfc_secrets_and_flight() -> None:
    run = ServerRun()
    assert run.records[0] == record(3, "server", "handshake")
    assert run.secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == secret(3, "s hs traffic")
    assert run.secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"] == secret(3, "c hs traffic")
    rfc_key = traffic_key(3, "server", "write", "handshake data")
    content_type, flight = open_record(rfc_key, 0, run.records[1])
    assert content_type == HANDSHAKE_RECORD
    ee, cert, _cv, _fin = split_messages(flight)
    assert ee == message(3, "server", "EncryptedExtensions")
    assert cert == message(3, "server", "Certificate")
    with pytest.raises(ProtocolViolation) as exc:
        run.conn.receive_data(record(3, "client", "handshake", 1), NOW)
    assert exc.value.alert == AlertDescription.decrypt_error


def _s3_loopback(**config: object) -> tuple[TLSConnection, TLSConnection, list[str]]:
    """The RFC-configured client and server talk to each other to the end."""
    server_lines: list[str] = []
    server, _ = rfc_server(lines=server_lines, config=s3_server_config(server_lines, **config))
    client = started(rfc_client(3)[0])
    server.receive_data(client.data_to_send(), NOW)
    client.receive_data(server.data_to_send(), NOW)  # verifies our RSA-PSS CertificateVerify
    server.receive_data(client.data_to_send(), NOW)
    return client, server, server_lines


def test_s3_server_and_client_complete_and_agree() -> None:
    client, server, server_lines = _s3_loopback()
    assert client.handshake_complete and server.handshake_complete
    (server_done,) = events(server)
    assert isinstance(server_done, HandshakeComplete)
    assert server_done.server_name == "server" and server_done.group == NamedGroup.x25519
    assert server_done.signature_scheme == SignatureScheme.rsa_pss_rsae_sha256
    tickets = server.data_to_send()
    client.receive_data(tickets, NOW)
    got = events(client)
    assert [type(e) for e in got] == [
        HandshakeComplete,
        SessionTicketReceived,
        SessionTicketReceived,
    ]
    first = got[1].ticket  # type: ignore[attr-defined]
    # The first ticket takes the FixedTicket's nonce and age_add; the PSK sealed inside it
    # is the one the client derived.
    fixed = s3_fixed_ticket()
    assert first.ticket_age_add == fixed.ticket_age_add and first.max_early_data_size == 1024
    # A fixed ticket goes out as given (the trace's opaque bytes).
    assert first.ticket == fixed.ticket
    # Both ends logged the same secrets.
    server_secrets = key_log(server_lines, client_hello(3).random)
    s_ap = server_secrets["SERVER_TRAFFIC_SECRET_0"]
    _, tickets_plain = open_record(aead_for(s_ap), 0, split_records(tickets)[0])
    nst1, nst2 = (decode_message(m) for m in split_messages(tickets_plain))
    assert isinstance(nst1, NewSessionTicket) and isinstance(nst2, NewSessionTicket)
    assert nst1.ticket_nonce == fixed.ticket_nonce
    assert nst1.extensions == (Extension(ET.early_data, (1024).to_bytes(4, "big")),)
    assert nst2.ticket_nonce != nst1.ticket_nonce
    # Application data both ways.
    client.send(b"ping")
    server.receive_data(client.data_to_send(), NOW)
    assert events(server) == [ApplicationData(b"ping")]
    server.send(b"pong")
    client.receive_data(server.data_to_send(), NOW)
    assert events(client) == [ApplicationData(b"pong")]


def test_s3_server_new_session_ticket_is_the_rfc_one() -> None:
    _, server, server_lines = _s3_loopback(ticket_lifetime=7200)  # the FixedTicket says 30
    s_ap = key_log(server_lines, client_hello(3).random)["SERVER_TRAFFIC_SECRET_0"]
    _, plain = open_record(aead_for(s_ap), 0, split_records(server.data_to_send())[0])
    assert split_messages(plain)[0] == message(3, "server", "NewSessionTicket")


# ================================================================================================
# Section 4: Resumed 0-RTT Handshake, client side
# ================================================================================================


def s4_session() -> tuple[SessionTicket, float]:
    """The ticket of section 3, and a clock at which its obfuscated age is the trace's."""
    nst = decode_message(message(3, "server", "NewSessionTicket"))
    assert isinstance(nst, NewSessionTicket)
    psk = TRACE.get(3, "server", 'generate resumption secret "tls13 resumption"', "expanded")
    hello = decode_message(record(4, "client", "handshake", field="payload"))
    assert isinstance(hello, ClientHello)
    pre_shared_key = hello.extension(ET.pre_shared_key)
    assert pre_shared_key is not None
    age = decode_pre_shared_key_client(pre_shared_key).identities[0].obfuscated_ticket_age
    age_ms = (age - nst.ticket_age_add) & 0xFFFFFFFF
    received_at = NOW - 60.0
    ticket = SessionTicket(
        ticket=nst.ticket,
        resumption_psk=psk,
        cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        ticket_lifetime=nst.ticket_lifetime,
        ticket_age_add=nst.ticket_age_add,
        received_at=received_at,
        max_early_data_size=1024,
        server_name="server",
        alpn_protocol=None,
    )
    now = received_at + (age_ms + 0.5) / 1000  # half a millisecond in: no float rounding
    assert ticket.obfuscated_age(now) == age
    return ticket, now


def s4_client(lines: list[str] | None = None) -> tuple[TLSConnection, float, RfcExtensions]:
    ticket, now = s4_session()
    conn, hook = rfc_client(4, lines=lines, session=ticket, enable_early_data=True)
    conn.start(now)
    return conn, now, hook


def test_s4_client_hello_with_binder_is_byte_exact() -> None:
    conn, _, hook = s4_client()
    assert conn.data_to_send() == record(4, "client", "handshake")
    (_, built) = hook.seen[0]
    assert ET.early_data in {e.type for e in built}  # the engine decided to offer 0-RTT


def test_s4_binder_depends_on_the_psk() -> None:
    ticket, now = s4_session()
    wrong = replace(ticket, resumption_psk=bytes(32))
    conn, _ = rfc_client(4, session=wrong, enable_early_data=True)
    conn.start(now)
    sent = conn.data_to_send()
    expected = record(4, "client", "handshake")
    assert len(sent) == len(expected)
    assert sent[:-32] == expected[:-32] and sent[-32:] != expected[-32:]  # only the binder


def test_s4_early_data_record_is_byte_exact() -> None:
    conn, _, _ = s4_client()
    conn.data_to_send()
    conn.send_early_data(record(4, "client", "application_data", field="payload"))
    assert conn.data_to_send() == record(4, "client", "application_data")


def test_s4_client_sends_rfc_end_of_early_data_and_finished() -> None:
    lines: list[str] = []
    conn, now, _ = s4_client(lines)
    conn.data_to_send()
    conn.send_early_data(record(4, "client", "application_data", field="payload"))
    conn.data_to_send()
    conn.receive_data(record(4, "server", "handshake", 0), now)
    conn.receive_data(record(4, "server", "handshake", 1), now)
    assert conn.data_to_send() == record(4, "client", "handshake", 1) + record(
        4, "client", "handshake", 2
    )
    (done,) = events(conn)
    assert isinstance(done, HandshakeComplete)
    assert done.resumed and done.early_data_accepted
    assert done.peer_certificates == () and done.signature_scheme is None
    assert key_log(lines, client_hello(4).random) == {
        "CLIENT_EARLY_TRAFFIC_SECRET": secret(4, "c e traffic"),
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": secret(4, "c hs traffic"),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": secret(4, "s hs traffic"),
        "CLIENT_TRAFFIC_SECRET_0": secret(4, "c ap traffic"),
        "SERVER_TRAFFIC_SECRET_0": secret(4, "s ap traffic"),
        "EXPORTER_SECRET": secret(4, "exp master"),
    }
    # After the handshake, 1-RTT data and the closing alerts, all as in the trace.
    conn.send(record(4, "client", "application_data", 1, field="payload"))
    assert conn.data_to_send() == record(4, "client", "application_data", 1)
    conn.receive_data(record(4, "server", "application_data"), now)
    assert events(conn) == [
        ApplicationData(record(4, "server", "application_data", field="payload"))
    ]
    conn.close()
    assert conn.data_to_send() == record(4, "client", "alert")
    conn.receive_data(record(4, "server", "alert"), now)
    assert events(conn) == [ConnectionClosed()]
    with pytest.raises(UsageError):
        conn.send_early_data(b"no longer")


def test_s4_client_refuses_a_server_finished_of_another_psk() -> None:
    """The server flight re-sealed by the trace's keys but with a Finished from section 3."""
    conn, now, _ = s4_client()
    conn.data_to_send()
    conn.receive_data(record(4, "server", "handshake", 0), now)
    content = message(4, "server", "EncryptedExtensions") + message(3, "server", "Finished")
    flight = seal_record(aead_for(secret(4, "s hs traffic")), 0, HANDSHAKE_RECORD, content)
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(flight, now)
    assert exc.value.alert == AlertDescription.decrypt_error


def test_s4_expired_ticket_is_not_offered() -> None:
    ticket, now = s4_session()
    conn, _ = rfc_client(4, hook=False, session=ticket, enable_early_data=True)
    conn.start(now + 31)  # the ticket lives 30 s
    hello = decode_message(conn.data_to_send()[5:])
    assert isinstance(hello, ClientHello)
    assert hello.extension(ET.pre_shared_key) is None
    with pytest.raises(UsageError):
        conn.send_early_data(b"x")


def test_s4_server_resumes_with_the_rfc_psk_and_accepts_early_data() -> None:
    """Our server cannot open the trace's ticket, so it gets its own ticket for the same PSK.

    The early and handshake secrets then are the trace's (same PSK, same ECDHE); the
    transcript, hence the derived traffic secrets, differs only by the ticket identity.
    """
    rfc_ticket, now = s4_session()
    lines: list[str] = []
    config = s3_server_config(lines)
    keys = config.ticket_keys
    assert keys is not None
    state = TicketState(
        cipher_suite=CipherSuite.TLS_AES_128_GCM_SHA256,
        resumption_psk=rfc_ticket.resumption_psk,
        issued_at=rfc_ticket.received_at,
        ticket_lifetime=30,
        ticket_age_add=rfc_ticket.ticket_age_add,
        max_early_data_size=1024,
        alpn_protocol=None,
        server_name="server",
    )
    session = replace(rfc_ticket, ticket=keys.seal(state))
    hook = RfcExtensions(
        encrypted_extensions(4).extensions,
        must_build=SERVER_BUILT,
        msg_type=HandshakeType.encrypted_extensions,
    )
    fixed = FixedInputs(
        key_share_private_keys={NamedGroup.x25519: private_key_share(4, "server")},
        extensions=hook,
    )
    server = TLSConnection(TLSServer(config, fixed=fixed))
    client, _ = rfc_client(4, session=session, enable_early_data=True)
    client.start(now)
    early = record(4, "client", "application_data", field="payload")
    client.send_early_data(early)
    hello_records = client.data_to_send()
    server.receive_data(hello_records, now)
    sh_record, flight = split_records(server.data_to_send())
    client.receive_data(sh_record + flight, now)
    server.receive_data(client.data_to_send(), now)  # EndOfEarlyData, Finished
    got = events(server)
    assert got[0] == ApplicationData(early, early=True)
    done = got[1]
    assert isinstance(done, HandshakeComplete)
    assert done.resumed and done.early_data_accepted and done.peer_certificates == ()
    assert ee_of(flight, lines) == message(4, "server", "EncryptedExtensions")
    hello = split_records(hello_records)[0][5:]
    sh = decode_message(sh_record[5:])
    assert isinstance(sh, ServerHello)
    assert sh.extension(ET.pre_shared_key) == b"\x00\x00"
    assert sh.extension(ET.key_share) == server_hello(4).extension(ET.key_share)
    early_secret = TRACE.get(4, "client", 'extract secret "early"', "secret")
    secrets = key_log(lines, client_hello(4).random)
    assert secrets["CLIENT_EARLY_TRAFFIC_SECRET"] == derive_secret(
        H, early_secret, b"c e traffic", hello
    )
    assert secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == derive_secret(
        H, extracted(4, "handshake"), b"s hs traffic", hello + sh_record[5:]
    )


def ee_of(flight: bytes, lines: list[str]) -> bytes:
    """The first message of a server's encrypted flight, opened with its logged key."""
    s_hs = next(ln.split()[2] for ln in lines if ln.startswith("SERVER_HANDSHAKE"))
    _, content = open_record(aead_for(bytes.fromhex(s_hs)), 0, flight)
    return split_messages(content)[0]


def test_s4_server_resumes_the_rfc_client_hello() -> None:
    _, now = s4_session()
    conn, _ = rfc_server(4, must_build=())
    conn.receive_data(record(4, "client", "handshake"), now)
    sh = decode_message(split_records(conn.data_to_send())[0][5:])
    assert isinstance(sh, ServerHello)
    assert sh.extension(ET.pre_shared_key) == b"\x00\x00"


# ================================================================================================
# Section 5: HelloRetryRequest
# ================================================================================================


def s5_client(lines: list[str] | None = None) -> tuple[TLSConnection, RfcExtensions]:
    lines = [] if lines is None else lines
    hook = RfcExtensions(
        client_hello(5).extensions,
        client_hello(5, 1).extensions,
        must_build=CLIENT_BUILT | {ET.supported_groups},
    )
    groups = [NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]
    config = client_config(5, lines, groups=groups)
    client = TLSClient(config, fixed=client_fixed(5, hook, p256=True))
    return TLSConnection(client), hook


def test_s5_both_client_hellos_are_byte_exact() -> None:
    conn, hook = s5_client()
    conn.start(NOW)
    assert conn.data_to_send() == record(5, "client", "handshake")
    conn.receive_data(record(5, "server", "handshake"), NOW)  # the HelloRetryRequest
    assert conn.data_to_send() == record(5, "client", "handshake", 1)
    # The second hello: the engine echoed the cookie and sent only the P-256 share.
    (_, second) = hook.seen[1]
    hrr = server_hello(5)
    assert hrr.is_hello_retry_request
    cookie = hrr.extension(ET.cookie)
    assert cookie is not None
    built = {e.type: e.data for e in second}
    assert built[ET.cookie] == cookie
    ch2_share = client_hello(5, 1).extension(ET.key_share)
    assert built[ET.key_share] == ch2_share
    assert ET.early_data not in built


def test_s5_client_completes_with_rfc_finished() -> None:
    lines: list[str] = []
    conn, _ = s5_client(lines)
    conn.start(NOW)
    conn.data_to_send()
    conn.receive_data(record(5, "server", "handshake"), NOW)
    conn.data_to_send()
    conn.receive_data(record(5, "server", "handshake", 1), NOW)
    conn.receive_data(record(5, "server", "handshake", 2), NOW)
    assert conn.data_to_send() == record(5, "client", "handshake", 2)
    (done,) = events(conn)
    assert isinstance(done, HandshakeComplete) and done.group == NamedGroup.secp256r1
    assert key_log(lines, client_hello(5).random) == {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": secret(5, "c hs traffic"),
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": secret(5, "s hs traffic"),
        "CLIENT_TRAFFIC_SECRET_0": secret(5, "c ap traffic"),
        "SERVER_TRAFFIC_SECRET_0": secret(5, "s ap traffic"),
        "EXPORTER_SECRET": secret(5, "exp master"),
    }
    conn.close()
    assert conn.data_to_send() == record(5, "client", "alert")
    conn.receive_data(record(5, "server", "alert"), NOW)
    assert events(conn) == [ConnectionClosed()]


def test_s5_client_rejects_a_second_hello_retry_request() -> None:
    conn, _ = s5_client()
    conn.start(NOW)
    conn.data_to_send()
    conn.receive_data(record(5, "server", "handshake"), NOW)
    conn.data_to_send()
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(record(5, "server", "handshake"), NOW)
    assert exc.value.alert == AlertDescription.unexpected_message


def test_s5_server_asks_for_p256_and_accepts_the_rfc_second_hello() -> None:
    """Our server sends no cookie, so only its choices and its key schedule can be checked."""
    lines: list[str] = []
    config = s3_server_config(lines, groups=[NamedGroup.secp256r1, NamedGroup.secp384r1])
    conn, _ = rfc_server(5, lines=lines, group="P-256", config=config)
    conn.receive_data(record(5, "client", "handshake"), NOW)
    (hrr_record,) = split_records(conn.data_to_send())
    hrr = decode_message(hrr_record[5:])
    rfc_hrr = server_hello(5)
    assert isinstance(hrr, ServerHello) and hrr.is_hello_retry_request
    assert hrr.cipher_suite == rfc_hrr.cipher_suite
    selected = hrr.extension(ET.key_share)
    rfc_selected = rfc_hrr.extension(ET.key_share)
    assert selected is not None and rfc_selected is not None
    assert decode_key_share_hrr(selected) == decode_key_share_hrr(rfc_selected) == 0x0017
    conn.receive_data(record(5, "client", "handshake", 1), NOW)
    sh_record, flight_record = split_records(conn.data_to_send())
    sh = decode_message(sh_record[5:])
    assert isinstance(sh, ServerHello)
    assert sh.extension(ET.key_share) == server_hello(5, 1).extension(ET.key_share)
    hello_msgs = (
        message_hash(message(5, "client", "ClientHello"))
        + hrr_record[5:]
        + message(5, "client", "ClientHello", 1)
        + sh_record[5:]
    )
    secrets = key_log(lines, client_hello(5).random)
    handshake = extracted(5, "handshake")  # the P-256 ECDHE is the trace's
    assert secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"] == derive_secret(
        H, handshake, b"s hs traffic", hello_msgs
    )
    assert secrets["CLIENT_HANDSHAKE_TRAFFIC_SECRET"] == derive_secret(
        H, handshake, b"c hs traffic", hello_msgs
    )
    _, flight = open_record(aead_for(secrets["SERVER_HANDSHAKE_TRAFFIC_SECRET"]), 0, flight_record)
    ee, cert, _cv, _fin = split_messages(flight)
    assert ee == message(5, "server", "EncryptedExtensions")
    assert cert == message(5, "server", "Certificate")


# ================================================================================================
# Section 6: Client Authentication, client side
# ================================================================================================

# The trace does not publish the client's private key. The client signs with section 2's RSA
# key instead, while presenting the trace's client certificate (set after construction, so a
# ClientConfig key/certificate consistency check does not stand in the way).
CLIENT_CERT = certificate_of(6, "client")


def s6_client(lines: list[str]) -> TLSConnection:
    hook = RfcExtensions(client_hello(6).extensions, must_build=CLIENT_BUILT)
    config = client_config(6, lines, certificate_chain=[RSA_CERT], private_key=RSA_KEY)
    client = TLSClient(config, fixed=client_fixed(6, hook))
    client.config.certificate_chain = [CLIENT_CERT]
    return TLSConnection(client)


def test_s6_client_authenticates_with_the_rfc_certificate() -> None:
    lines: list[str] = []
    conn = started(s6_client(lines))
    assert conn.data_to_send() == record(6, "client", "handshake")
    conn.receive_data(record(6, "server", "handshake"), NOW)
    conn.receive_data(record(6, "server", "handshake", 1), NOW)
    (done,) = events(conn)
    assert isinstance(done, HandshakeComplete)
    assert done.peer_certificates == (ECDSA_CERT,)
    assert done.signature_scheme == SignatureScheme.ecdsa_secp256r1_sha256
    sent = conn.data_to_send()
    expected = record(6, "client", "handshake", 1)
    assert sent[:5] == expected[:5]  # one record of the same length
    # The trace's own client handshake key opens what we sent.
    c_hs = traffic_key(6, "server", "read", "handshake data")
    content_type, content = open_record(c_hs, 0, sent)
    assert content_type == HANDSHAKE_RECORD
    cert, cv_raw, fin = split_messages(content)
    assert cert == message(6, "client", "Certificate")
    # The signed content is the trace's: the RFC's CertificateVerify verifies over it with
    # the RFC's client certificate, ours with the key we signed with.
    server_msgs = ("EncryptedExtensions", "CertificateRequest", "Certificate")
    transcript = (
        message(6, "client", "ClientHello")
        + message(6, "server", "ServerHello")
        + b"".join(message(6, "server", n) for n in server_msgs)
        + message(6, "server", "CertificateVerify")
        + message(6, "server", "Finished")
        + cert
    )
    content_signed = certificate_verify_content(transcript, server=False)
    rfc_cv = decode_message(message(6, "client", "CertificateVerify"))
    ours = decode_message(cv_raw)
    assert isinstance(rfc_cv, CertificateVerify) and isinstance(ours, CertificateVerify)
    CLIENT_CERT.public_key().verify(rfc_cv.algorithm, rfc_cv.signature, content_signed)
    assert ours.algorithm == rfc_cv.algorithm == SignatureScheme.rsa_pss_rsae_sha256
    RSA_KEY.public_key().verify(ours.algorithm, ours.signature, content_signed)
    c_hs_secret = secret(6, "c hs traffic")
    assert fin == b"\x14\x00\x00\x20" + finished_verify_data(c_hs_secret, transcript + cv_raw)
    # Secrets up to the server Finished do not depend on the client's signature.
    secrets = key_log(lines, client_hello(6).random)
    assert secrets["CLIENT_TRAFFIC_SECRET_0"] == secret(6, "c ap traffic")
    assert secrets["SERVER_TRAFFIC_SECRET_0"] == secret(6, "s ap traffic")
    assert secrets["EXPORTER_SECRET"] == secret(6, "exp master")


def test_s6_client_without_certificate_answers_with_an_empty_one() -> None:
    conn = started(rfc_client(6)[0])
    conn.data_to_send()
    conn.receive_data(record(6, "server", "handshake"), NOW)
    conn.receive_data(record(6, "server", "handshake", 1), NOW)
    _, content = open_record(
        traffic_key(6, "server", "read", "handshake data"), 0, conn.data_to_send()
    )
    cert, fin = split_messages(content)
    assert decode_message(cert) == CertificateMessage(b"", ())
    assert decode_message(fin).verify_data == finished_verify_data(  # type: ignore[union-attr]
        secret(6, "c hs traffic"),
        b"".join(
            message(6, side, name)
            for side, name in [
                ("client", "ClientHello"),
                ("server", "ServerHello"),
                ("server", "EncryptedExtensions"),
                ("server", "CertificateRequest"),
                ("server", "Certificate"),
                ("server", "CertificateVerify"),
                ("server", "Finished"),
            ]
        )
        + cert,
    )


def test_s6_client_config_rejects_a_certificate_of_another_key() -> None:
    config = client_config(6, [], certificate_chain=[CLIENT_CERT], private_key=RSA_KEY)
    try:
        config.validate()
    except UsageError:
        return
    raise AssertionError("ClientConfig.validate accepted a certificate of another key")


# ================================================================================================
# Section 7: Compatibility Mode (Appendix D.4)
# ================================================================================================


def test_s7_client_compatibility_mode_is_byte_exact() -> None:
    lines: list[str] = []
    conn = started(rfc_client(7, lines=lines)[0])
    assert conn.data_to_send() == record(7, "client", "handshake")
    conn.receive_data(record(7, "server", "handshake"), NOW)
    conn.receive_data(record(7, "server", "change_cipher_spec"), NOW)
    conn.receive_data(record(7, "server", "handshake", 1), NOW)
    # The dummy ChangeCipherSpec, then the Finished.
    assert conn.data_to_send() == record(7, "client", "change_cipher_spec") + record(
        7, "client", "handshake", 1
    )
    assert key_log(lines, client_hello(7).random)["CLIENT_TRAFFIC_SECRET_0"] == secret(
        7, "c ap traffic"
    )
    conn.close()
    assert conn.data_to_send() == record(7, "client", "alert")
    conn.receive_data(record(7, "server", "alert"), NOW)
    assert events(conn)[-1] == ConnectionClosed()


def test_s7_client_rejects_change_cipher_spec_after_the_handshake() -> None:
    conn = started(rfc_client(7)[0])
    conn.data_to_send()
    for data in (
        record(7, "server", "handshake"),
        record(7, "server", "change_cipher_spec"),
        record(7, "server", "handshake", 1),
    ):
        conn.receive_data(data, NOW)
    with pytest.raises(ProtocolViolation) as exc:
        conn.receive_data(record(7, "server", "change_cipher_spec"), NOW)
    assert exc.value.alert == AlertDescription.unexpected_message


def test_s7_server_sends_change_cipher_spec_after_server_hello() -> None:
    lines: list[str] = []
    config = s3_server_config(lines, middlebox_compatibility=True)
    conn, _ = rfc_server(7, lines=lines, config=config)
    conn.receive_data(record(7, "client", "handshake"), NOW)
    sh, ccs, flight = split_records(conn.data_to_send())
    assert ccs == record(7, "server", "change_cipher_spec")
    hello = decode_message(sh[5:])
    assert isinstance(hello, ServerHello)
    assert hello.legacy_session_id_echo == client_hello(7).legacy_session_id
    assert hello.extension(ET.key_share) == server_hello(7).extension(ET.key_share)
    assert flight[0] == APPLICATION_RECORD
