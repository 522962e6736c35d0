"""The dev CA's revocations: OpenSSL's index.txt format, CRL numbers, ``openssl ca`` over it."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from toolkit_helpers import FUZZ, needs_openssl, run_openssl

from quicnet.crypto import (
    CertificateRevoked,
    CryptoError,
    DecodeError,
    RevocationReason,
    load_certificate,
    load_crl,
    verify_chain,
)
from quicnet.crypto.caindex import OPENSSL_REASONS, IndexEntry, format_index, parse_index
from quicnet.crypto.devca import DevCA

UTC = datetime.UTC


@pytest.fixture
def ca(tmp_path: Path) -> DevCA:
    return DevCA.init(tmp_path / "ca", "/O=Toolkit/CN=Revoking CA")


def test_init_writes_what_openssl_ca_wants(ca: DevCA) -> None:
    assert (ca.directory / "crlnumber").read_text() == "01\n"
    assert (ca.directory / "index.txt.attr").read_text() == "unique_subject = no\n"


def test_revoke_rewrites_the_index_line(ca: DevCA) -> None:
    a, b = ca.issue("/CN=a.test"), ca.issue("/CN=b.test")
    when = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    entry = ca.revoke(a.serial_number, RevocationReason.keyCompromise, at=when)
    assert entry.status == "R" and entry.reason is RevocationReason.keyCompromise
    lines = (ca.directory / "index.txt").read_text().splitlines()
    fields = lines[0].split("\t")
    assert fields[0] == "R"
    assert fields[2] == "260304050607Z,keyCompromise"
    assert int(fields[3], 16) == a.serial_number and len(fields[3]) % 2 == 0
    assert fields[5] == "/CN=a.test"
    assert lines[1].split("\t")[0] == "V"  # the other one is untouched
    assert [e.serial_number for e in ca.index()] == [a.serial_number, b.serial_number]
    with pytest.raises(CryptoError, match="already revoked"):
        ca.revoke(a.serial_number, RevocationReason.superseded)
    with pytest.raises(CryptoError, match="not in"):
        ca.revoke(0x1234)


def test_gencrl_lists_revocations_and_counts(ca: DevCA) -> None:
    a, b = ca.issue("/CN=a.test", names=["a.test"]), ca.issue("/CN=b.test", names=["b.test"])
    ca.revoke(a.serial_number, RevocationReason.cessationOfOperation)
    ca.revoke(b.serial_number)  # no reason: the line has only the date
    first = ca.gencrl(days=7)
    second = ca.gencrl()
    assert (first.crl_number, second.crl_number) == (1, 2)
    assert (ca.directory / "crlnumber").read_text() == "03\n"
    assert first.next_update is not None
    assert first.next_update - first.this_update == datetime.timedelta(days=7)
    reasons = {r.serial_number: r.reason for r in first.revocations}
    assert reasons == {
        a.serial_number: RevocationReason.cessationOfOperation,
        b.serial_number: None,
    }
    assert first.is_signed_by(ca.certificate)
    cert = load_certificate(a.certificate_path.read_bytes())
    with pytest.raises(CertificateRevoked, match="cessationOfOperation"):
        verify_chain([cert], [ca.certificate], crls=[first])


def test_hold_and_release(ca: DevCA) -> None:
    a = ca.issue("/CN=held.test")
    cert = load_certificate(a.certificate_path.read_bytes())
    ca.revoke(a.serial_number, RevocationReason.certificateHold)
    with pytest.raises(CertificateRevoked, match="certificateHold"):
        verify_chain([cert], [ca.certificate], crls=[ca.gencrl()])
    entry = ca.revoke(a.serial_number, RevocationReason.removeFromCRL)
    assert entry.status == "V" and entry.revoked_at is None
    assert verify_chain([cert], [ca.certificate], crls=[ca.gencrl()]) == [cert, ca.certificate]
    with pytest.raises(CryptoError, match="not on hold"):
        ca.revoke(a.serial_number, RevocationReason.removeFromCRL)
    # A hold can become a final revocation.
    ca.revoke(a.serial_number, RevocationReason.certificateHold)
    assert ca.revoke(a.serial_number, RevocationReason.keyCompromise).status == "R"


def test_reasons_openssl_ca_cannot_record_are_refused(ca: DevCA) -> None:
    a = ca.issue("/CN=x.test")
    with pytest.raises(CryptoError, match="privilegeWithdrawn"):
        ca.revoke(a.serial_number, RevocationReason.privilegeWithdrawn)
    assert ca.index()[0].status == "V"


def test_index_round_trip_and_generalized_time() -> None:
    entries = [
        IndexEntry("V", datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC), 0x0A, "/CN=a"),
        IndexEntry("V", datetime.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC), 0x1234, "/CN=b/O=x"),
        IndexEntry(
            "R",
            datetime.datetime(2030, 1, 1, tzinfo=UTC),
            0xABCDEF,
            "/CN=c",
            revoked_at=datetime.datetime(2026, 6, 1, tzinfo=UTC),
            reason=RevocationReason.certificateHold,
            reason_detail="holdInstructionReject",
        ),
        IndexEntry("E", datetime.datetime(1999, 1, 1, tzinfo=UTC), 1, "/CN=old"),
    ]
    text = format_index(entries)
    lines = text.splitlines()
    assert lines[0].split("\t")[1:4] == ["491231235959Z", "", "0A"]
    assert lines[1].split("\t")[1] == "20510102030405Z"  # GeneralizedTime from 2050
    assert lines[2].split("\t")[2] == "260601000000Z,holdInstruction,holdInstructionReject"
    assert lines[3].split("\t")[1] == "990101000000Z"  # 99 is 1999 (RFC 5280 §4.1.2.5.1)
    assert parse_index(text) == entries


@pytest.mark.parametrize(
    "line",
    [
        "V\t300101000000Z\t\t0A\tunknown",  # five fields
        "X\t300101000000Z\t\t0A\tunknown\t/CN=a",  # status
        "V\t3001010000Z\t\t0A\tunknown\t/CN=a",  # short time
        "V\t301301000000Z\t\t0A\tunknown\t/CN=a",  # month 13
        "V\t300101000000Z\t\tzz\tunknown\t/CN=a",  # serial
        "V\t300101000000Z\t260101000000Z\t0A\tunknown\t/CN=a",  # valid yet revoked
        "R\t300101000000Z\t\t0A\tunknown\t/CN=a",  # revoked without a date
        "R\t300101000000Z\t260101000000Z,sneezed\t0A\tunknown\t/CN=a",  # reason
    ],
)
def test_malformed_index_lines(line: str) -> None:
    with pytest.raises(DecodeError, match=r"index\.txt"):
        parse_index("V\t300101000000Z\t\t01\tunknown\t/CN=ok\n" + line + "\n")


@FUZZ
@given(st.text(alphabet=st.sampled_from("VRE\t\n,Z0123456789ABCDEF/=CNkey"), max_size=200))
def test_index_parser_garbage(text: str) -> None:
    try:
        entries = parse_index(text)
    except DecodeError:
        return
    assert parse_index(format_index(entries)) == entries


_moments = st.datetimes(
    min_value=datetime.datetime(1950, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.just(UTC),
).map(lambda d: d.replace(microsecond=0))


@FUZZ
@given(
    st.lists(
        st.builds(
            IndexEntry,
            status=st.just("V"),
            expires=_moments,
            serial_number=st.integers(0, 2**159),
            subject=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=30),
        ),
        max_size=5,
    ),
    st.lists(st.sampled_from(OPENSSL_REASONS) | st.none(), max_size=5),
)
def test_index_round_trip_property(entries: list[IndexEntry], reasons: list) -> None:
    revoked_at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    entries = [
        e.revoked(revoked_at, r) if i < len(reasons) else e
        for i, (e, r) in enumerate(zip(entries, reasons + [None] * len(entries), strict=False))
    ]
    # UTCTime only covers 1950-2049; GeneralizedTime the rest (expiry only).
    assert parse_index(format_index(entries)) == entries


@needs_openssl
def test_openssl_ca_reads_and_writes_our_directory(ca: DevCA) -> None:
    """``openssl ca`` revokes and makes a CRL over the dev CA's files; we read its result."""
    a = ca.issue("/CN=ours.test", names=["ours.test"])
    b = ca.issue("/CN=theirs.test", names=["theirs.test"])
    ca.revoke(a.serial_number, RevocationReason.superseded)
    config = ca.directory / "openssl.cnf"
    config.write_text(
        "[ca]\ndefault_ca = dev\n[dev]\n"
        f"dir = {ca.directory}\n"
        "database = $dir/index.txt\ncrlnumber = $dir/crlnumber\n"
        "certificate = $dir/ca.pem\nprivate_key = $dir/private/ca.key\n"
        "new_certs_dir = $dir/certs\nserial = $dir/serial\n"
        "default_md = sha256\ndefault_crl_days = 3\npolicy = any\n[any]\ncommonName = supplied\n"
    )
    r = run_openssl(
        "ca", "-config", config, "-revoke", b.certificate_path, "-crl_reason", "affiliationChanged"
    )
    assert r.returncode == 0, r.stderr
    # Our parser reads what openssl wrote; both revocations are there.
    reasons = {e.serial_number: e.reason for e in ca.index()}
    assert reasons == {
        a.serial_number: RevocationReason.superseded,
        b.serial_number: RevocationReason.affiliationChanged,
    }
    crl_path = ca.directory / "openssl.crl"
    r = run_openssl("ca", "-config", config, "-gencrl", "-out", crl_path)
    assert r.returncode == 0, r.stderr
    theirs = load_crl(crl_path.read_bytes())
    assert theirs.crl_number == 1  # from our crlnumber file
    assert {x.serial_number: x.reason for x in theirs.revocations} == reasons
    for entry in (a, b):
        cert = load_certificate(entry.certificate_path.read_bytes())
        with pytest.raises(CertificateRevoked):
            verify_chain([cert], [ca.certificate], crls=[theirs])
    # And the CRL number openssl advanced is the one we continue from.
    assert ca.gencrl().crl_number == 2


@needs_openssl
def test_openssl_hold_instruction_and_compromise_time_survive_our_rewrite(ca: DevCA) -> None:
    """``-crl_hold OID`` and ``-crl_compromise TIME`` write ``holdInstruction,OID`` and
    ``keyTime,TIME``; we read them, keep them through our own rewrite, and openssl still can."""
    held, broken, later = (ca.issue(f"/CN={n}.test") for n in ("held", "broken", "later"))
    config = ca.directory / "openssl.cnf"
    config.write_text(
        f"[ca]\ndefault_ca = dev\n[dev]\ndir = {ca.directory}\ndatabase = $dir/index.txt\n"
        "crlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/private/ca.key\n"
        "default_md = sha256\ndefault_crl_days = 3\n"
    )
    for flags in (
        ["-revoke", held.certificate_path, "-crl_hold", "holdInstructionReject"],
        ["-revoke", broken.certificate_path, "-crl_compromise", "20260101000000Z"],
    ):
        r = run_openssl("ca", "-config", config, *flags)
        assert r.returncode == 0, r.stderr
    entries = {e.serial_number: e for e in ca.index()}
    assert entries[held.serial_number].reason is RevocationReason.certificateHold
    assert entries[held.serial_number].reason_detail == "holdInstructionReject"
    assert entries[broken.serial_number].reason is RevocationReason.keyCompromise
    assert entries[broken.serial_number].reason_detail == "20260101000000Z"
    before = (ca.directory / "index.txt").read_text().splitlines()
    ca.revoke(later.serial_number, RevocationReason.superseded)  # we rewrite the whole file
    after = (ca.directory / "index.txt").read_text().splitlines()
    assert after[:2] == before[:2]
    r = run_openssl("ca", "-config", config, "-gencrl", "-out", ca.directory / "o.crl")
    assert r.returncode == 0, r.stderr
    reasons = {
        x.serial_number: x.reason
        for x in load_crl((ca.directory / "o.crl").read_bytes()).revocations
    }
    assert reasons == {
        held.serial_number: RevocationReason.certificateHold,
        broken.serial_number: RevocationReason.keyCompromise,
        later.serial_number: RevocationReason.superseded,
    }
