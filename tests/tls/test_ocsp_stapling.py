"""OCSP stapling in TLS 1.3 (RFC 8446 §4.4.2.1, RFC 6066 §8).

In memory: who asks, who staples, and a client that requires a staple failing
closed for every way the staple can be wrong. Against ``openssl``: its
``s_server -status_file`` staples to quicnet's client and ``quicnet s_client
-status``; its ``s_client -status`` reads what ``quicnet s_server
-status_file`` staples. Hypothesis on the two status_request decoders.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interop_helpers import Identity, Processes, quicnet_server, run_async
from test_negative_helpers import pump

import quicnet
from quicnet.crypto import (
    Certificate,
    PrivateKey,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.crypto.ocsp import RevocationReason, build_ocsp_request
from quicnet.crypto.ocsp_responder import IndexEntry, OCSPResponder, issue_ocsp_signer
from quicnet.tls import (
    AlertDescription,
    ClientConfig,
    ConfigurationError,
    ProtocolViolation,
    ServerConfig,
    TLSClient,
    TLSConnection,
    TLSError,
    TLSServer,
    open_connection,
)
from quicnet.tls import extensions as ext
from quicnet.tls.errors import DecodeError
from quicnet.tls.events import HandshakeComplete

REPO = Path(quicnet.__file__).resolve().parents[1]
UTC = datetime.UTC
BAD_STATUS = AlertDescription.bad_certificate_status_response
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclasses.dataclass
class Stapling:
    ca: Certificate
    ca_key: PrivateKey
    leaf: Certificate
    key: PrivateKey
    directory: Path

    def staple(
        self,
        state: str = "V",
        *,
        now: datetime.datetime | None = None,
        signer: tuple[Certificate, Certificate, PrivateKey] | None = None,
    ) -> bytes:
        """A DER OCSP response for the leaf: V good, R revoked, E unknown."""
        revoked = datetime.datetime(2025, 3, 1, tzinfo=UTC) if state == "R" else None
        entry = IndexEntry(state, self.leaf.not_after, self.leaf.serial_number, "/CN=localhost",
                           revoked, RevocationReason.keyCompromise if revoked else None)  # fmt: skip
        issuer, cert, key = signer or (self.ca, self.ca, self.ca_key)
        responder = OCSPResponder(issuer, cert, key, {self.leaf.serial_number: entry})
        if signer is not None:
            responder.issuer = self.ca  # answer about our CA's leaf, signed by someone else
        request = build_ocsp_request(self.leaf, self.ca, nonce=False)
        return responder.respond(request.to_der(), now=now)

    def file(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path

    def identity(self) -> Identity:
        return Identity((self.leaf,), self.key, self.ca, self.directory / "leaf.pem",
                        self.directory / "leaf.key", self.directory / "ca.pem")  # fmt: skip

    def server(self, staple: bytes | None) -> ServerConfig:
        return ServerConfig([self.leaf], self.key, ocsp_staple=staple)

    def client(self, **kwargs: object) -> ClientConfig:
        return ClientConfig(server_name="localhost", trust_roots=[self.ca], **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def s(tmp_path_factory: pytest.TempPathFactory) -> Stapling:
    directory = tmp_path_factory.mktemp("stapling")
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=Stapling CA", days=30)
    key = generate_private_key("EC")
    csr = make_csr(key, "/CN=localhost", names=["localhost", "127.0.0.1"])
    leaf = issue_certificate(csr, ca, ca_key, days=10)
    (directory / "ca.pem").write_bytes(ca.to_pem())
    (directory / "leaf.pem").write_bytes(leaf.to_pem())
    (directory / "leaf.key").write_bytes(key.to_pem())
    return Stapling(ca, ca_key, leaf, key, directory)


# In memory --------------------------------------------------------------------------------


def handshake(client_config: ClientConfig, server_config: ServerConfig) -> HandshakeComplete:
    """Run a whole handshake in memory; the client's HandshakeComplete."""
    now = time.time()
    client = TLSConnection.client(client_config)
    server = TLSConnection.server(server_config)
    client.start(now)
    pump(client, server, now)
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert done, "the handshake did not complete"
    return done[0]


def refused(client_config: ClientConfig, server_config: ServerConfig) -> ProtocolViolation:
    with pytest.raises(ProtocolViolation) as info:
        handshake(client_config, server_config)
    return info.value


def test_staple_only_when_asked(s: Stapling) -> None:
    staple = s.staple()
    assert handshake(s.client(), s.server(staple)).ocsp_staple is None
    assert handshake(s.client(ocsp_stapling=True), s.server(staple)).ocsp_staple == staple
    assert handshake(s.client(ocsp_stapling=True), s.server(None)).ocsp_staple is None


def test_client_asks_with_an_empty_ocsp_status_request(s: Stapling) -> None:
    client = TLSConnection.client(s.client(ocsp_stapling=True))
    client.start(time.time())
    hello = client.data_to_send()
    body = ext.encode_status_request()
    assert body == bytes.fromhex("0100000000")  # ocsp, no responder IDs, no extensions
    assert (ext.ExtensionType.status_request).to_bytes(2, "big") + len(body).to_bytes(
        2, "big"
    ) + body in hello
    plain = TLSConnection.client(s.client())
    plain.start(time.time())
    assert bytes.fromhex("000500050100000000") not in plain.data_to_send()


def test_required_good_staple_passes(s: Stapling) -> None:
    staple = s.staple()
    done = handshake(s.client(require_ocsp_staple=True), s.server(staple))
    assert done.ocsp_staple == staple
    # A server that refreshes its staple: the callable is asked per handshake.
    assert handshake(s.client(require_ocsp_staple=True), s.server(None).__class__(
        [s.leaf], s.key, ocsp_staple=lambda: staple)).ocsp_staple == staple  # fmt: skip


def test_required_staple_missing_fails_closed(s: Stapling) -> None:
    assert refused(s.client(require_ocsp_staple=True), s.server(None)).alert == BAD_STATUS


def test_required_staple_revoked_fails_with_certificate_revoked(s: Stapling) -> None:
    error = refused(s.client(require_ocsp_staple=True), s.server(s.staple("R")))
    assert error.alert == AlertDescription.certificate_revoked
    assert "revoked" in str(error)


def test_required_staple_unknown_fails_closed(s: Stapling) -> None:
    assert refused(s.client(require_ocsp_staple=True), s.server(s.staple("E"))).alert == BAD_STATUS


def test_required_staple_stale_fails_closed(s: Stapling) -> None:
    stale = s.staple(now=datetime.datetime.now(UTC) - datetime.timedelta(days=3))
    error = refused(s.client(require_ocsp_staple=True), s.server(stale))
    assert error.alert == BAD_STATUS and "expired" in str(error)


def test_required_staple_from_an_unauthorised_signer_fails_closed(s: Stapling) -> None:
    other_key = generate_private_key("EC")
    other = make_ca(other_key, "/CN=Other CA")
    rogue_key = generate_private_key("EC")
    rogue = issue_ocsp_signer(rogue_key, "/CN=Rogue", other, other_key)
    forged = s.staple(signer=(other, rogue, rogue_key))
    error = refused(s.client(require_ocsp_staple=True), s.server(forged))
    assert error.alert == BAD_STATUS


def test_required_staple_for_another_certificate_fails_closed(s: Stapling) -> None:
    key = generate_private_key("EC")
    other_leaf = issue_certificate(make_csr(key, "/CN=other"), s.ca, s.ca_key)
    other = dataclasses.replace(s, leaf=other_leaf).staple()
    assert refused(s.client(require_ocsp_staple=True), s.server(other)).alert == BAD_STATUS


def test_required_staple_that_is_not_ocsp_fails_closed(s: Stapling) -> None:
    error = refused(s.client(require_ocsp_staple=True), s.server(b"\x30\x03\x0a\x01\x00"))
    assert error.alert == BAD_STATUS


def test_require_ocsp_staple_needs_trust_roots(s: Stapling) -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig(insecure_skip_verify=True, require_ocsp_staple=True).validate()
    with pytest.raises(ConfigurationError):
        ClientConfig(
            pinned_fingerprints=[s.leaf.fingerprint()], require_ocsp_staple=True
        ).validate()


def quic_handshake(client_config: ClientConfig, server_config: ServerConfig) -> HandshakeComplete:
    """The same engines in QUIC mode (RFC 9001 §4): bytes move by epoch, no record layer."""
    now = time.time()
    params = b"\x01\x02\x03\x04"  # opaque to TLS; QUIC's transport parameters
    client = TLSClient(
        dataclasses.replace(client_config, quic_transport_parameters=params), quic=True
    )
    server = TLSServer(
        dataclasses.replace(server_config, quic_transport_parameters=params), quic=True
    )
    client.start(now)
    for _ in range(10):
        moved = False
        for epoch, data in client.data_to_send():
            server.receive(epoch, data, now)
            moved = True
        for epoch, data in server.data_to_send():
            client.receive(epoch, data, now)
            moved = True
        if not moved:
            break
    events = []
    while (event := client.next_event()) is not None:
        events.append(event)
    done = [e for e in events if isinstance(e, HandshakeComplete)]
    assert done, "the QUIC-mode handshake did not complete"
    return done[0]


def test_stapling_in_quic_mode(s: Stapling) -> None:
    staple = s.staple()
    assert (
        quic_handshake(s.client(require_ocsp_staple=True), s.server(staple)).ocsp_staple == staple
    )
    with pytest.raises(ProtocolViolation) as info:
        quic_handshake(s.client(require_ocsp_staple=True), s.server(s.staple("R")))
    assert info.value.alert == AlertDescription.certificate_revoked
    with pytest.raises(ProtocolViolation) as info:
        quic_handshake(s.client(require_ocsp_staple=True), s.server(None))
    assert info.value.alert == BAD_STATUS


# The decoders -----------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=64))
def test_status_request_decoder_garbage(data: bytes) -> None:
    try:
        request = ext.decode_status_request(data)
    except DecodeError as exc:
        assert exc.alert == AlertDescription.decode_error
        return
    assert ext.encode_status_request(request) == data  # accepted: canonical


@FUZZ
@given(st.binary(max_size=64))
def test_certificate_status_decoder_garbage(data: bytes) -> None:
    try:
        staple = ext.decode_certificate_status(data)
    except DecodeError as exc:
        assert exc.alert == AlertDescription.decode_error
        return
    except TLSError as exc:  # a CertificateStatus of a type we never ask for
        assert exc.alert == AlertDescription.illegal_parameter and data[0] != 1
        return
    assert ext.encode_certificate_status(staple) == data


def test_status_request_decoder_examples() -> None:
    with pytest.raises(DecodeError):
        ext.decode_status_request(b"")
    with pytest.raises(DecodeError):
        ext.decode_status_request(bytes.fromhex("01000100"))  # truncated responder list
    with pytest.raises(DecodeError):
        ext.decode_status_request(bytes.fromhex("010002000000"))  # empty ResponderID
    request = ext.decode_status_request(bytes.fromhex("0100050003abcdef0002300a"))
    assert request.responder_ids == (bytes.fromhex("abcdef"),)
    assert request.request_extensions == bytes.fromhex("300a")
    assert ext.decode_status_request(b"\x02xyz").other == b"xyz"  # ocsp_multi: kept, not ours
    with pytest.raises(DecodeError):
        ext.decode_certificate_status(bytes.fromhex("01000000"))  # empty OCSPResponse


# Against openssl ----------------------------------------------------------------------------


@pytest.fixture
def procs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Processes:
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    group = Processes(tmp_path)
    yield group  # type: ignore[misc]
    group.stop_all()


@pytest.mark.openssl
def test_quicnet_client_verifies_openssl_s_server_staple(s: Stapling, procs: Processes) -> None:
    staple = s.staple()
    _, port = procs.openssl_server(s.identity(), "-status_file", s.file("good.der", staple), "-www")

    async def fetch() -> HandshakeComplete:
        _, writer = await open_connection("127.0.0.1", port, s.client(require_ocsp_staple=True))
        assert writer.handshake is not None
        writer.close()
        return writer.handshake

    assert run_async(fetch()).ocsp_staple == staple


@pytest.mark.openssl
def test_quicnet_client_refuses_openssl_s_server_revoked_staple(
    s: Stapling, procs: Processes
) -> None:
    server, port = procs.openssl_server(
        s.identity(), "-status_file", s.file("r.der", s.staple("R")), "-www"
    )

    async def fetch() -> None:
        await open_connection("127.0.0.1", port, s.client(require_ocsp_staple=True))

    with pytest.raises(ProtocolViolation) as info:
        run_async(fetch())
    assert info.value.alert == AlertDescription.certificate_revoked
    server.wait_for("certificate revoked|SSL alert number 44")


@pytest.mark.openssl
def test_quicnet_client_without_staple_from_openssl_fails_closed(
    s: Stapling, procs: Processes
) -> None:
    server, port = procs.openssl_server(s.identity(), "-www")

    async def fetch() -> None:
        await open_connection("127.0.0.1", port, s.client(require_ocsp_staple=True))

    with pytest.raises(ProtocolViolation) as info:
        run_async(fetch())
    assert info.value.alert == BAD_STATUS
    server.wait_for("bad certificate status response|SSL alert number 113")


@pytest.mark.openssl
def test_quicnet_s_client_status_against_openssl(s: Stapling, procs: Processes) -> None:
    _, port = procs.openssl_server(
        s.identity(), "-status_file", s.file("good.der", s.staple()), "-www"
    )
    client = procs.quicnet("s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", s.directory / "ca.pem",
                           "-servername", "localhost", "-status")  # fmt: skip
    client.wait_for("OCSP staple verify OK: good")
    client.wait_for("Cert Status: good")
    client.close_stdin()
    assert client.wait() == 0, client.describe()


@pytest.mark.openssl
@pytest.mark.parametrize("state", [None, "R"], ids=["no-staple", "revoked"])
def test_quicnet_s_client_status_required_fails_closed(
    s: Stapling, procs: Processes, state: str | None
) -> None:
    extra = ["-status_file", s.file("st.der", s.staple(state))] if state else []
    _, port = procs.openssl_server(s.identity(), *extra, "-www")
    client = procs.quicnet("s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", s.directory / "ca.pem",
                           "-servername", "localhost", "-status_required")  # fmt: skip
    assert client.wait() == 1, client.describe()
    errors = client.err.decode().strip().splitlines()
    assert len(errors) == 1 and "Traceback" not in client.text
    assert ("revoked" if state else "stapled no OCSP response") in errors[0]


@pytest.mark.openssl
def test_openssl_s_client_status_against_quicnet_s_server(s: Stapling, procs: Processes) -> None:
    server = procs.quicnet("s_server", "-accept", "0", "-cert", s.directory / "leaf.pem", "-key",
                           s.directory / "leaf.key", "-status_file", s.file("good.der", s.staple()),
                           "-www", "-naccept", "1")  # fmt: skip
    port = int(server.wait_for(rb"ACCEPT 127\.0\.0\.1:(\d+)").group(1))
    client = procs.openssl("s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-status",
                           "-servername", "localhost", "-CAfile", s.directory / "ca.pem",
                           "-verify_return_error")  # fmt: skip
    client.wait_for("OCSP Response Status: successful")
    client.wait_for("Cert Status: good")
    client.wait_for(r"Verify return code: 0 \(ok\)")
    client.close_stdin()
    client.wait()
    assert "OCSP Response Status: successful (0x0)" in client.text
    assert "Cert Status: good" in client.text


@pytest.mark.openssl
@pytest.mark.parametrize("ask", [True, False], ids=["status", "no-status"])
def test_quicnet_server_staples_only_when_asked(s: Stapling, procs: Processes, ask: bool) -> None:
    """openssl s_client -tlsextdebug lists the leaf's status_request only after -status."""

    async def run() -> str:
        async with quicnet_server(s.server(s.staple())) as (port, _):
            client = procs.openssl(
                "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-servername", "localhost",
                "-CAfile", s.directory / "ca.pem", "-tlsextdebug", *(["-status"] if ask else []),
            )  # fmt: skip
            await client.expect(r"Verify return code: 0 \(ok\)")
            client.close_stdin()
            await client.exited()
            return client.text

    text = run_async(run())
    assert ('TLS server extension "status request" (id=5)' in text) is ask
    assert ("Cert Status: good" in text) is ask
