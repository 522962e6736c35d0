"""OCSP in the toolkit (RFC 6960): requests, the responder, verification, index.txt.

Interop with the ``openssl ocsp`` binary is in tests/cli/test_cli_ocsp.py; this
file checks quicnet against itself and against RFC 6960's rules, one typed
error per way a response can be wrong, and hypothesis on every parser.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quicnet.crypto import (
    Certificate,
    CryptoError,
    DecodeError,
    PrivateKey,
    generate_private_key,
    issue_certificate,
    make_ca,
    make_csr,
)
from quicnet.crypto.caindex import IndexEntry, parse_index
from quicnet.crypto.ocsp import (
    CertStatus,
    OCSPCertIdMismatch,
    OCSPCertificateRevoked,
    OCSPDecodeError,
    OCSPError,
    OCSPNonceMismatch,
    OCSPResponderError,
    OCSPSignatureError,
    OCSPStaleResponse,
    OCSPUnauthorizedSigner,
    OCSPUnknownStatus,
    ResponseStatus,
    RevocationReason,
    build_ocsp_request,
    load_ocsp_request,
    load_ocsp_response,
)
from quicnet.crypto.ocsp_responder import (
    OCSPResponder,
    index_status,
    issue_ocsp_signer,
    ocsp_error_response,
    read_index,
)

UTC = datetime.UTC
NOW = datetime.datetime.now(UTC).replace(microsecond=0)
REVOKED_AT = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclasses.dataclass
class Pki:
    ca: Certificate
    ca_key: PrivateKey
    good: Certificate
    revoked: Certificate
    absent: Certificate
    signer: Certificate
    signer_key: PrivateKey

    def index(self) -> dict[int, IndexEntry]:
        return {
            self.good.serial_number: IndexEntry(
                "V", self.good.not_after, self.good.serial_number, "/CN=good"
            ),
            self.revoked.serial_number: IndexEntry(
                "R",
                self.revoked.not_after,
                self.revoked.serial_number,
                "/CN=revoked",
                REVOKED_AT,
                RevocationReason.keyCompromise,
            ),
        }

    def responder(self, *, delegated: bool = True, **kwargs: object) -> OCSPResponder:
        if delegated:
            return OCSPResponder(self.ca, self.signer, self.signer_key, self.index(), **kwargs)  # type: ignore[arg-type]
        return OCSPResponder(self.ca, self.ca, self.ca_key, self.index(), **kwargs)  # type: ignore[arg-type]


def _leaf(ca: Certificate, ca_key: PrivateKey, name: str) -> Certificate:
    key = generate_private_key("EC")
    return issue_certificate(make_csr(key, f"/CN={name}", names=[name]), ca, ca_key, days=30)


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca_key = generate_private_key("EC")
    ca = make_ca(ca_key, "/CN=OCSP Test CA", days=60)
    signer_key = generate_private_key("EC")
    signer = issue_ocsp_signer(signer_key, "/CN=OCSP Test Responder", ca, ca_key)
    return Pki(
        ca,
        ca_key,
        _leaf(ca, ca_key, "good.example"),
        _leaf(ca, ca_key, "revoked.example"),
        _leaf(ca, ca_key, "absent.example"),
        signer,
        signer_key,
    )


def answer(
    pki: Pki, cert: Certificate, *, nonce: bool = True, now: datetime.datetime = NOW, **kw: object
) -> tuple[bytes, bytes | None]:
    request = build_ocsp_request(cert, pki.ca, nonce=nonce)
    return pki.responder(**kw).respond(request.to_der(), now=now), request.nonce


# Requests --------------------------------------------------------------------------------


def test_request_round_trips_with_a_16_byte_nonce(pki: Pki) -> None:
    request = build_ocsp_request(pki.good, pki.ca)
    again = load_ocsp_request(request.to_der())
    assert again.serial_number == pki.good.serial_number
    assert again.hash_algorithm == "sha1"
    assert request.nonce is not None and len(request.nonce) == 16
    assert again.nonce == request.nonce
    assert load_ocsp_request(request.to_pem()).to_der() == request.to_der()
    assert build_ocsp_request(pki.good, pki.ca, nonce=False).nonce is None


def test_request_for_a_certificate_the_issuer_did_not_issue_is_refused(pki: Pki) -> None:
    other_key = generate_private_key("EC")
    other = make_ca(other_key, "/CN=Other CA")
    with pytest.raises(CryptoError, match="did not issue"):
        build_ocsp_request(pki.good, other)


# The responder ----------------------------------------------------------------------------


@pytest.mark.parametrize("delegated", [True, False], ids=["delegated", "ca-signed"])
def test_good_revoked_unknown(pki: Pki, delegated: bool) -> None:
    der, nonce = answer(pki, pki.good, delegated=delegated)
    status = load_ocsp_response(der).verify(pki.good, pki.ca, nonce=nonce)
    assert status.status is CertStatus.GOOD
    assert status.require_good() is status
    assert status.this_update == NOW and status.next_update == NOW + datetime.timedelta(days=1)

    der, nonce = answer(pki, pki.revoked, delegated=delegated)
    status = load_ocsp_response(der).verify(pki.revoked, pki.ca, nonce=nonce)
    assert status.status is CertStatus.REVOKED
    assert status.revocation_time == REVOKED_AT
    assert status.revocation_reason is RevocationReason.keyCompromise
    with pytest.raises(OCSPCertificateRevoked) as revoked:
        status.require_good()
    assert revoked.value.alert == 44 and revoked.value.reason is RevocationReason.keyCompromise

    der, nonce = answer(pki, pki.absent, delegated=delegated)
    status = load_ocsp_response(der).verify(pki.absent, pki.ca, nonce=nonce)
    assert status.status is CertStatus.UNKNOWN
    with pytest.raises(OCSPUnknownStatus):
        status.require_good()


def test_delegated_response_carries_the_signer_and_echoes_the_nonce(pki: Pki) -> None:
    der, nonce = answer(pki, pki.good)
    response = load_ocsp_response(der)
    assert response.certificates == [pki.signer]
    assert response.nonce == nonce
    assert "Cert Status: good" in response.to_text()
    assert response.signer(pki.ca) == pki.signer


def test_malformed_request_and_other_ca_get_error_statuses(pki: Pki) -> None:
    bad = load_ocsp_response(pki.responder().respond(b"\x30\x03\x02\x01\x00"))
    assert bad.response_status is ResponseStatus.malformedRequest
    other_key = generate_private_key("EC")
    other_ca = make_ca(other_key, "/CN=Other CA")
    stranger = _leaf(other_ca, other_key, "stranger.example")
    request = build_ocsp_request(stranger, other_ca)
    response = load_ocsp_response(pki.responder().respond(request.to_der()))
    assert response.response_status is ResponseStatus.unauthorized
    with pytest.raises(OCSPResponderError) as info:
        response.verify(stranger, other_ca)
    assert info.value.status is ResponseStatus.unauthorized


def test_responder_refuses_a_signer_without_ocsp_signing(pki: Pki) -> None:
    key = generate_private_key("EC")
    plain = _leaf(pki.ca, pki.ca_key, "plain.example")  # serverAuth/clientAuth only
    with pytest.raises(CryptoError, match="key does not match"):
        OCSPResponder(pki.ca, plain, key, {})
    leaf_key = generate_private_key("EC")
    leaf = issue_certificate(make_csr(leaf_key, "/CN=x"), pki.ca, pki.ca_key)
    with pytest.raises(CryptoError, match="OCSPSigning"):
        OCSPResponder(pki.ca, leaf, leaf_key, {})


def test_error_response_cannot_be_successful() -> None:
    with pytest.raises(CryptoError):
        ocsp_error_response(ResponseStatus.successful)
    assert load_ocsp_response(ocsp_error_response(ResponseStatus.tryLater)).response_status == 3


# Verification failures, one typed error each ------------------------------------------------


def test_unrelated_signer_is_unauthorized(pki: Pki) -> None:
    """A responder of another CA, even with OCSPSigning, cannot vouch for this CA's certs."""
    other_key = generate_private_key("EC")
    other_ca = make_ca(other_key, "/CN=Other CA")
    rogue_key = generate_private_key("EC")
    rogue = issue_ocsp_signer(rogue_key, "/CN=Rogue Responder", other_ca, other_key)
    request = build_ocsp_request(pki.good, pki.ca)
    # The rogue answers as if for pki.ca: same CertID hashes, its own signature.
    forged = OCSPResponder(other_ca, rogue, rogue_key, pki.index())
    forged.issuer = pki.ca
    response = load_ocsp_response(forged.respond(request.to_der()))
    with pytest.raises(OCSPUnauthorizedSigner) as info:
        response.verify(pki.good, pki.ca)
    assert info.value.alert == 113


def test_ca_signed_by_another_key_is_unauthorized(pki: Pki) -> None:
    """Same CA name, another key: the signature does not verify with the real CA's key."""
    impostor_key = generate_private_key("EC")
    impostor = make_ca(impostor_key, "/CN=OCSP Test CA", days=60)
    forged = OCSPResponder(impostor, impostor, impostor_key, pki.index())
    forged.issuer = pki.ca
    response = load_ocsp_response(forged.respond(build_ocsp_request(pki.good, pki.ca).to_der()))
    with pytest.raises((OCSPSignatureError, OCSPUnauthorizedSigner)):
        response.verify(pki.good, pki.ca)


def test_tampered_response_fails_the_signature(pki: Pki) -> None:
    der, _ = answer(pki, pki.revoked, delegated=False)
    # Flip the last byte of the signature (the DER ends with the signature BIT STRING
    # or the certificates; CA-signed responses carry no certificates).
    tampered = der[:-1] + bytes([der[-1] ^ 0x01])
    with pytest.raises(OCSPError) as info:
        load_ocsp_response(tampered).verify(pki.revoked, pki.ca)
    assert isinstance(info.value, OCSPSignatureError | OCSPDecodeError)


def test_signature_check_rejects_a_status_swap(pki: Pki) -> None:
    """Turn "unknown" into "good" inside the signed data: the signature must catch it."""
    der, _ = answer(pki, pki.absent, delegated=False, nonce=False)
    serial = pki.absent.serial_number
    body = serial.to_bytes((serial.bit_length() + 8) // 8, "big")
    serial_der = bytes([0x02, len(body)]) + body
    at = der.index(serial_der) + len(serial_der)  # CertID ends with the serial; certStatus follows
    assert der[at : at + 2] == b"\x82\x00"  # [2] IMPLICIT NULL: unknown
    swapped = der[:at] + b"\x80\x00" + der[at + 2 :]  # [0] IMPLICIT NULL: good
    response = load_ocsp_response(swapped)
    assert response.responses[0].status is CertStatus.GOOD  # it parses as good...
    with pytest.raises(OCSPSignatureError):  # ...but the CA never signed that
        response.verify(pki.absent, pki.ca)


def test_stale_and_future_responses(pki: Pki) -> None:
    old, _ = answer(pki, pki.good, now=NOW - datetime.timedelta(days=3), delegated=False)
    with pytest.raises(OCSPStaleResponse, match="expired"):
        load_ocsp_response(old).verify(pki.good, pki.ca)
    # Within the clock skew of nextUpdate it still passes.
    response = load_ocsp_response(old)
    at = NOW - datetime.timedelta(days=2) + datetime.timedelta(minutes=4)
    assert response.verify(pki.good, pki.ca, at=at).status is CertStatus.GOOD
    future, _ = answer(pki, pki.good, now=NOW + datetime.timedelta(hours=1))
    with pytest.raises(OCSPStaleResponse, match="future"):
        load_ocsp_response(future).verify(pki.good, pki.ca)
    assert (
        load_ocsp_response(future)
        .verify(pki.good, pki.ca, clock_skew=datetime.timedelta(hours=2))
        .status
        is CertStatus.GOOD
    )


def test_no_next_update_is_bounded_by_max_age(pki: Pki) -> None:
    der, _ = answer(pki, pki.good, validity=None, now=NOW - datetime.timedelta(hours=2))
    response = load_ocsp_response(der)
    assert response.responses[0].next_update is None
    assert response.verify(pki.good, pki.ca).status is CertStatus.GOOD  # default 1 day
    with pytest.raises(OCSPStaleResponse, match="too old"):
        response.verify(pki.good, pki.ca, max_age=datetime.timedelta(hours=1))
    with pytest.raises(OCSPStaleResponse, match="too old"):
        response.verify(pki.good, pki.ca, at=NOW + datetime.timedelta(days=2))


def test_nonce_must_match(pki: Pki) -> None:
    der, nonce = answer(pki, pki.good)
    assert nonce is not None
    with pytest.raises(OCSPNonceMismatch, match="differs"):
        load_ocsp_response(der).verify(pki.good, pki.ca, nonce=b"\x00" * 16)
    plain, _ = answer(pki, pki.good, nonce=False)
    with pytest.raises(OCSPNonceMismatch, match="echo"):
        load_ocsp_response(plain).verify(pki.good, pki.ca, nonce=nonce)


def test_response_about_another_certificate_is_a_cert_id_mismatch(pki: Pki) -> None:
    der, _ = answer(pki, pki.good)
    with pytest.raises(OCSPCertIdMismatch):
        load_ocsp_response(der).verify(pki.revoked, pki.ca)


def test_expired_delegate_is_unauthorized(pki: Pki) -> None:
    der, _ = answer(pki, pki.good)
    with pytest.raises((OCSPUnauthorizedSigner, OCSPStaleResponse)):
        load_ocsp_response(der).verify(pki.good, pki.ca, at=NOW + datetime.timedelta(days=45))


def test_trusted_responder_stands_in_for_the_ca(pki: Pki) -> None:
    """OpenSSL's -VAfile: a locally trusted responder need not be delegated by the CA."""
    other_key = generate_private_key("EC")
    other_ca = make_ca(other_key, "/CN=Other CA")
    local_key = generate_private_key("EC")
    local = issue_ocsp_signer(local_key, "/CN=Local Responder", other_ca, other_key)
    forged = OCSPResponder(other_ca, local, local_key, pki.index())
    forged.issuer = pki.ca
    response = load_ocsp_response(forged.respond(build_ocsp_request(pki.good, pki.ca).to_der()))
    status = response.verify(pki.good, pki.ca, trusted_responders=[local])
    assert status.status is CertStatus.GOOD


# OpenSSL's index.txt ------------------------------------------------------------------------

INDEX = (
    "V\t271205030458Z\t\t0A1B\tunknown\t/CN=a\n"
    "R\t271205030458Z\t251201000000Z,keyCompromise\t0A1C\tunknown\t/CN=b/O=Org\n"
    "R\t20501205030458Z\t251202000000Z\t0A1D\tcerts/0A1D.pem\t/CN=c\n"
    "R\t271205030458Z\t251203000000Z,keyTime,20251101000000Z\t0A1E\tunknown\t/CN=d\n"
    "R\t271205030458Z\t251204000000Z,holdInstruction,1.2.840.10040.2.2\t0A1F\tunknown\t/CN=e\n"
    "E\t240101000000Z\t\t0A20\tunknown\t/CN=f\n"
    "\n"
)


def test_parse_index_reads_openssl_lines() -> None:
    entries = parse_index(INDEX)
    assert [e.status for e in entries] == ["V", "R", "R", "R", "R", "E"]
    assert [index_status(e) for e in entries] == [CertStatus.GOOD] + [CertStatus.REVOKED] * 4 + [
        CertStatus.UNKNOWN
    ]
    assert entries[0].serial_number == 0x0A1B and entries[0].revoked_at is None
    assert entries[0].expires == datetime.datetime(2027, 12, 5, 3, 4, 58, tzinfo=UTC)
    assert entries[1].reason is RevocationReason.keyCompromise
    assert entries[1].revoked_at == datetime.datetime(2025, 12, 1, tzinfo=UTC)
    assert entries[1].subject == "/CN=b/O=Org"
    assert entries[2].reason is None and entries[2].expires.year == 2050
    assert entries[2].filename == "certs/0A1D.pem"
    assert entries[3].reason is RevocationReason.keyCompromise  # keyTime: a key compromise
    assert entries[4].reason is RevocationReason.certificateHold
    assert entries[5].expires.year == 2024


@pytest.mark.parametrize(
    "line",
    [
        "V\t271205030458Z\t\t0A1B\tunknown",  # five fields
        "X\t271205030458Z\t\t0A1B\tunknown\t/CN=a",  # unknown state
        "V\t2712050304Z\t\t0A1B\tunknown\t/CN=a",  # short time
        "V\t271205030458Z\t\tXYZ\tunknown\t/CN=a",  # serial not hex
        "R\t271205030458Z\t\t0A1B\tunknown\t/CN=a",  # revoked without a time
        "R\t271205030458Z\t251201000000Z,sleepy\t0A1B\tunknown\t/CN=a",  # unknown reason
    ],
)
def test_parse_index_rejects_malformed_lines(line: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_index(line + "\n")
    assert "line 1" in str(info.value)


def test_responder_from_index_rereads_the_file(pki: Pki, tmp_path: Path) -> None:
    index = tmp_path / "index.txt"
    line = (
        f"V\t{pki.good.not_after:%y%m%d%H%M%S}Z\t\t{pki.good.serial_number:X}\tunknown\t/CN=good\n"
    )
    index.write_text(line)
    responder = OCSPResponder.from_index(index, pki.ca, pki.signer, pki.signer_key)
    request = build_ocsp_request(pki.good, pki.ca).to_der()
    assert load_ocsp_response(responder.respond(request)).responses[0].status is CertStatus.GOOD
    index.write_text(line.replace("V\t", "R\t").replace("\t\t", "\t251201000000Z,superseded\t"))
    os.utime(index, ns=(1, 10**18))  # a different mtime, whatever the clock's resolution
    status = load_ocsp_response(responder.respond(request)).responses[0]
    assert status.status is CertStatus.REVOKED
    assert status.revocation_reason is RevocationReason.superseded
    assert read_index(index)[pki.good.serial_number].status == "R"


# Hypothesis: garbage in, typed errors out ---------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_response_loader_random_bytes(data: bytes) -> None:
    try:
        load_ocsp_response(data)
    except OCSPDecodeError as exc:
        assert exc.alert == 50  # decode_error


@FUZZ
@given(st.binary(max_size=300))
def test_request_loader_random_bytes(data: bytes) -> None:
    try:
        load_ocsp_request(data)
    except OCSPDecodeError as exc:
        assert exc.alert == 50


@pytest.fixture(scope="module")
def valid_response(pki: Pki) -> bytes:
    return answer(pki, pki.revoked)[0]


@FUZZ
@given(data=st.data())
def test_response_loader_mutated_valid_response(
    pki: Pki, valid_response: bytes, data: st.DataObject
) -> None:
    der = bytearray(valid_response)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(der) - 1))
        der[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(der)))
    mutated = bytes(der[:cut]) if data.draw(st.booleans()) else bytes(der)
    try:
        response = load_ocsp_response(mutated)
    except OCSPDecodeError as exc:
        assert exc.alert == 50
        return
    try:  # parsed: checking it gives a status or a typed error, nothing else
        response.verify(pki.revoked, pki.ca)
    except (OCSPError, CryptoError) as exc:
        assert exc.alert in (42, 44, 50, 113)


@FUZZ
@given(st.text(alphabet="VRE\t0123456789ABCDEFZ,/=CNkeyCompromise\n ", max_size=200))
def test_parse_index_random_text(text: str) -> None:
    try:
        entries = parse_index(text)
    except DecodeError as exc:
        assert "index.txt" in str(exc) and "line" in str(exc)
        return
    assert all(e.status in "VRE" for e in entries)
