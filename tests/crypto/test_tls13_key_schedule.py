"""Known-answer tests for the TLS 1.3 key schedule against RFC 8448.

The vectors are not retyped: :class:`Rfc8448` parses the trace text in
``vectors/rfc8448-tls13-vectors.txt`` (page headers and footers removed) into steps
like ``{server}  derive secret "tls13 c hs traffic":`` with their named hex
fields, and the tests look values up by section, side, step and field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from quicnet.crypto.aead import Aead, AeadAlgorithm
from quicnet.crypto.errors import DecryptError
from quicnet.crypto.hashes import Hasher, digest, hmac_digest
from quicnet.crypto.kdf import derive_secret, hkdf_expand, hkdf_expand_label, hkdf_extract
from quicnet.crypto.kex import KeyShare, NamedGroup

# A verbatim copy of the RFC 8448 text ships next to the tests; QUICNET_SPECS_DIR
# may point at a directory holding the same file (e.g. a shared specs checkout).
RFC8448 = (
    Path(os.environ.get("QUICNET_SPECS_DIR") or Path(__file__).parent / "vectors")
    / "rfc8448-tls13-vectors.txt"
)

# Every trace in RFC 8448 negotiates TLS_AES_128_GCM_SHA256.
H = "sha256"
HASH_LEN = 32
ZEROS = bytes(HASH_LEN)
AES128 = AeadAlgorithm.AES_128_GCM

# ContentType of the TLSInnerPlaintext, and the trace steps that send each kind of record.
ALERT = 0x15
HANDSHAKE = 0x16
APPLICATION_DATA = 0x17
HS_RECORD = "send handshake record"
APP_RECORD = "send application_data record"
ALERT_RECORD = "send alert record"


# --- RFC 8448 trace parser ----------------------------------------------------------------


@dataclass
class Step:
    section: int
    side: str
    title: str
    fields: dict[str, bytes] = field(default_factory=dict)


_PAGE_FURNITURE = re.compile(
    r"^(Thomson\s+Expires .*\[Page \d+\]|Internet-Draft\s+TLS 1\.3 Traces\b.*)$"
)
_SECTION = re.compile(r"^(\d+)\.  \S")
_STEP = re.compile(r"^   \{(client|server)\}  (.*?):?\s*$")
_FIELD = re.compile(r"^      (\S[^():]*?) \((\d+) octets\):  (.*)$")
_HEX_LINE = re.compile(r"^\s+((?:[0-9a-f]{2} ?)+)$")


class Rfc8448:
    """The hex fields of every trace step of RFC 8448."""

    def __init__(self, text: str) -> None:
        lines = [ln for ln in text.replace("\f", "").splitlines() if not _PAGE_FURNITURE.match(ln)]
        self.steps: list[Step] = []
        section = 0
        step: Step | None = None
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if m := _SECTION.match(line):
                section = int(m.group(1))
                step = None
            elif m := _STEP.match(line):
                step = Step(section, m.group(1), m.group(2))
                self.steps.append(step)
            elif (m := _FIELD.match(line)) and step is not None:
                name, length, rest = m.group(1), int(m.group(2)), m.group(3)
                tokens = rest.split() if length else []
                # The value continues on more-indented lines, possibly across a page break.
                while len(tokens) < length:
                    cont = lines[i]
                    i += 1
                    if not cont.strip():
                        continue
                    hm = _HEX_LINE.match(cont)
                    assert hm, f"unexpected line in {step.title!r} {name!r}: {cont!r}"
                    tokens += hm.group(1).split()
                assert len(tokens) == length, f"{step.title!r} {name!r}: length mismatch"
                assert name not in step.fields, f"duplicate field {name!r} in {step.title!r}"
                step.fields[name] = bytes.fromhex("".join(tokens))

    def find(self, section: int, side: str, title: str) -> list[Step]:
        return [
            s for s in self.steps if s.section == section and s.side == side and s.title == title
        ]

    def get(self, section: int, side: str, title: str, name: str, nth: int = 0) -> bytes:
        steps = self.find(section, side, title)
        if len(steps) <= nth:
            raise KeyError(f"no step #{nth} {{{side}}} {title!r} in section {section}")
        return steps[nth].fields[name]


_TRACE = Rfc8448(RFC8448.read_text(encoding="ascii"))


def v(section: int, side: str, title: str, name: str, nth: int = 0) -> bytes:
    return _TRACE.get(section, side, title, name, nth)


def test_parser_found_the_traces() -> None:
    """Guards the parser: enough steps, and values that span a page break come out whole."""
    assert {s.section for s in _TRACE.steps} == {3, 4, 5, 6, 7}
    assert len([s for s in _TRACE.steps if s.fields]) > 150
    # This record straddles the page 8/9 break; the count in "(679 octets)" was checked.
    record = v(3, "server", "send handshake record", "complete record", nth=1)
    assert len(record) == 679
    assert record[:5] == bytes.fromhex("17030302a2")
    assert record[-4:] == bytes.fromhex("1476cff0")
    assert v(3, "server", 'calculate finished "tls13 finished"', "hash") == b""


# --- generic checks over every step of every trace ----------------------------------------


def _steps_with(*names: str) -> list[Step]:
    return [s for s in _TRACE.steps if all(n in s.fields for n in names)]


def _step_id(step: Step) -> str:
    return re.sub(r"\W+", "_", f"s{step.section}_{step.side}_{step.title}").strip("_")


_EXPAND_TRIPLES = [
    (step, info, out)
    for step in _steps_with("PRK")
    for info, out in (
        ("info", "expanded"),
        ("key info", "key expanded"),
        ("iv info", "iv expanded"),
    )
    if info in step.fields and out in step.fields
]


@pytest.mark.parametrize(
    ("step", "info", "out"),
    _EXPAND_TRIPLES,
    ids=[f"{_step_id(s)}_{o.replace(' ', '_')}" for s, _, o in _EXPAND_TRIPLES],
)
def test_every_hkdf_expand_in_rfc8448(step: Step, info: str, out: str) -> None:
    f = step.fields
    assert hkdf_expand(H, f["PRK"], f[info], len(f[out])) == f[out]


_LABELLED = [
    s
    for s in _steps_with("PRK", "hash", "expanded")
    if re.search(r'"tls13 ([^"]+)"', s.title) is not None
]


@pytest.mark.parametrize("step", _LABELLED, ids=[_step_id(s) for s in _LABELLED])
def test_every_hkdf_expand_label_in_rfc8448(step: Step) -> None:
    m = re.search(r'"tls13 ([^"]+)"', step.title)
    assert m is not None
    label = m.group(1).encode("ascii")
    f = step.fields
    expected = f["expanded"]
    assert hkdf_expand_label(H, f["PRK"], label, f["hash"], len(expected)) == expected
    # The HkdfLabel encoding itself is printed as "info".
    assert f["info"] == (
        len(expected).to_bytes(2, "big")
        + bytes((6 + len(label),))
        + b"tls13 "
        + label
        + bytes((len(f["hash"]),))
        + f["hash"]
    )


_KEY_IV = _steps_with("PRK", "key expanded", "iv expanded")


@pytest.mark.parametrize("step", _KEY_IV, ids=[_step_id(s) for s in _KEY_IV])
def test_every_traffic_key_and_iv_in_rfc8448(step: Step) -> None:
    f = step.fields
    assert hkdf_expand_label(H, f["PRK"], b"key", b"", 16) == f["key expanded"]
    assert hkdf_expand_label(H, f["PRK"], b"iv", b"", 12) == f["iv expanded"]


_EXTRACTS = _steps_with("IKM", "secret")


@pytest.mark.parametrize("step", _EXTRACTS, ids=[_step_id(s) for s in _EXTRACTS])
def test_every_hkdf_extract_in_rfc8448(step: Step) -> None:
    f = step.fields
    salt = f.get("salt", b"")  # "salt:  0 (all zero octets)" has no hex block
    assert hkdf_extract(H, salt, f["IKM"]) == f["secret"]
    if not salt:
        assert hkdf_extract(H, ZEROS, f["IKM"]) == f["secret"]


_FINISHED = _steps_with("expanded", "finished")


@pytest.mark.parametrize("step", _FINISHED, ids=[_step_id(s) for s in _FINISHED])
def test_every_finished_key_in_rfc8448(step: Step) -> None:
    """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)."""
    f = step.fields
    assert hkdf_expand_label(H, f["PRK"], b"finished", b"", HASH_LEN) == f["expanded"]


_KEY_PAIRS = [s for s in _TRACE.steps if re.fullmatch(r"create an ephemeral \S+ key pair", s.title)]
_GROUPS = {"x25519": NamedGroup.x25519, "P-256": NamedGroup.secp256r1}


@pytest.mark.parametrize("step", _KEY_PAIRS, ids=[_step_id(s) for s in _KEY_PAIRS])
def test_every_ephemeral_public_key_in_rfc8448(step: Step) -> None:
    group = _GROUPS[step.title.split()[3]]
    share = KeyShare.from_private_bytes(group, step.fields["private key"])
    assert share.group is group
    assert share.key_exchange == step.fields["public key"]


_SERVER_KEY_PAIRS = [s for s in _KEY_PAIRS if s.side == "server"]


@pytest.mark.parametrize(
    "server", _SERVER_KEY_PAIRS, ids=[f"s{s.section}" for s in _SERVER_KEY_PAIRS]
)
def test_every_ecdhe_shared_secret_in_rfc8448(server: Step) -> None:
    """Both sides reach the IKM of 'extract secret "handshake"' (after HRR in section 5)."""
    group = _GROUPS[server.title.split()[3]]
    client = _TRACE.find(server.section, "client", server.title)[-1]
    c = KeyShare.from_private_bytes(group, client.fields["private key"])
    s = KeyShare.from_private_bytes(group, server.fields["private key"])
    expected = v(server.section, "server", 'extract secret "handshake"', "IKM")
    assert c.shared_secret(server.fields["public key"]) == expected
    assert s.shared_secret(client.fields["public key"]) == expected


# --- Section 3: Simple 1-RTT Handshake ----------------------------------------------------

S3_CH = v(3, "client", "construct a ClientHello handshake message", "ClientHello")
S3_SH = v(3, "server", "construct a ServerHello handshake message", "ServerHello")
S3_EE = v(3, "server", "construct a EncryptedExtensions handshake message", "EncryptedExtensions")
S3_CERT = v(3, "server", "construct a Certificate handshake message", "Certificate")
S3_CV = v(3, "server", "construct a CertificateVerify handshake message", "CertificateVerify")
S3_SFIN = v(3, "server", "construct a Finished handshake message", "Finished")
S3_CFIN = v(3, "client", "construct a Finished handshake message", "Finished")


def _s3(side: str, title: str, name: str, nth: int = 0) -> bytes:
    return v(3, side, title, name, nth)


@pytest.mark.parametrize("side", ["client", "server"])
def test_s3_x25519_public_keys(side: str) -> None:
    title = "create an ephemeral x25519 key pair"
    share = KeyShare.from_private_bytes(NamedGroup.x25519, _s3(side, title, "private key"))
    assert share.group is NamedGroup.x25519
    assert share.key_exchange == _s3(side, title, "public key")


def test_s3_key_shares_appear_in_hellos() -> None:
    title = "create an ephemeral x25519 key pair"
    assert _s3("client", title, "public key") in S3_CH
    assert _s3("server", title, "public key") in S3_SH


def test_s3_x25519_shared_secret() -> None:
    title = "create an ephemeral x25519 key pair"
    client = KeyShare.from_private_bytes(NamedGroup.x25519, _s3("client", title, "private key"))
    server = KeyShare.from_private_bytes(NamedGroup.x25519, _s3("server", title, "private key"))
    expected = _s3("server", 'extract secret "handshake"', "IKM")
    assert client.shared_secret(server.key_exchange) == expected
    assert server.shared_secret(client.key_exchange) == expected


@dataclass
class Schedule:
    """Every secret of one full handshake, computed only with the API under test."""

    early: bytes
    derived_hs: bytes
    handshake: bytes
    c_hs: bytes
    s_hs: bytes
    derived_ms: bytes
    master: bytes
    c_ap: bytes
    s_ap: bytes
    exp_master: bytes
    res_master: bytes


def _schedule(
    psk: bytes,
    ecdhe: bytes,
    hello_msgs: bytes,
    server_fin_msgs: bytes,
    client_fin_msgs: bytes,
) -> Schedule:
    early = hkdf_extract(H, b"", psk)
    derived_hs = derive_secret(H, early, b"derived", b"")
    handshake = hkdf_extract(H, derived_hs, ecdhe)
    derived_ms = derive_secret(H, handshake, b"derived", b"")
    master = hkdf_extract(H, derived_ms, ZEROS)
    return Schedule(
        early=early,
        derived_hs=derived_hs,
        handshake=handshake,
        c_hs=derive_secret(H, handshake, b"c hs traffic", hello_msgs),
        s_hs=derive_secret(H, handshake, b"s hs traffic", hello_msgs),
        derived_ms=derived_ms,
        master=master,
        c_ap=derive_secret(H, master, b"c ap traffic", server_fin_msgs),
        s_ap=derive_secret(H, master, b"s ap traffic", server_fin_msgs),
        exp_master=derive_secret(H, master, b"exp master", server_fin_msgs),
        res_master=derive_secret(H, master, b"res master", client_fin_msgs),
    )


def _s3_schedule() -> Schedule:
    title = "create an ephemeral x25519 key pair"
    client = KeyShare.from_private_bytes(NamedGroup.x25519, _s3("client", title, "private key"))
    ecdhe = client.shared_secret(_s3("server", title, "public key"))
    hello = S3_CH + S3_SH
    server_fin = hello + S3_EE + S3_CERT + S3_CV + S3_SFIN
    return _schedule(ZEROS, ecdhe, hello, server_fin, server_fin + S3_CFIN)


S3 = _s3_schedule()


def test_s3_early_secret() -> None:
    expected = _s3("server", 'extract secret "early"', "secret")
    assert S3.early == expected
    assert hkdf_extract(H, ZEROS, ZEROS) == expected


def test_s3_derived_and_handshake_secret() -> None:
    assert S3.derived_hs == _s3("server", 'derive secret for handshake "tls13 derived"', "expanded")
    assert S3.handshake == _s3("server", 'extract secret "handshake"', "secret")


def test_s3_transcript_hashes() -> None:
    assert digest(H, S3_CH + S3_SH) == _s3("server", 'derive secret "tls13 c hs traffic"', "hash")
    server_fin = S3_CH + S3_SH + S3_EE + S3_CERT + S3_CV + S3_SFIN
    assert digest(H, server_fin) == _s3("server", 'derive secret "tls13 c ap traffic"', "hash")
    assert digest(H, server_fin + S3_CFIN) == _s3(
        "client", 'derive secret "tls13 res master"', "hash"
    )
    # The same transcript hash, built incrementally with a forked Hasher.
    t = Hasher(H)
    for msg in (S3_CH, S3_SH):
        t.update(msg)
    at_server_hello = t.copy()
    for msg in (S3_EE, S3_CERT, S3_CV, S3_SFIN):
        t.update(msg)
    assert at_server_hello.digest() == digest(H, S3_CH + S3_SH)
    assert t.digest() == digest(H, server_fin)


def test_s3_handshake_traffic_secrets() -> None:
    assert S3.c_hs == _s3("server", 'derive secret "tls13 c hs traffic"', "expanded")
    assert S3.s_hs == _s3("server", 'derive secret "tls13 s hs traffic"', "expanded")


def test_s3_master_secret() -> None:
    assert S3.derived_ms == _s3("server", 'derive secret for master "tls13 derived"', "expanded")
    assert S3.master == _s3("server", 'extract secret "master"', "secret")


def test_s3_application_and_exporter_secrets() -> None:
    assert S3.c_ap == _s3("server", 'derive secret "tls13 c ap traffic"', "expanded")
    assert S3.s_ap == _s3("server", 'derive secret "tls13 s ap traffic"', "expanded")
    assert S3.exp_master == _s3("server", 'derive secret "tls13 exp master"', "expanded")


def test_s3_resumption_master_secret() -> None:
    assert S3.res_master == _s3("client", 'derive secret "tls13 res master"', "expanded")


@pytest.mark.parametrize(
    ("side", "title", "secret_name"),
    [
        ("server", "derive write traffic keys for handshake data", "s_hs"),
        ("server", "derive read traffic keys for handshake data", "c_hs"),
        ("server", "derive write traffic keys for application data", "s_ap"),
        ("client", "derive write traffic keys for application data", "c_ap"),
    ],
)
def test_s3_traffic_keys(side: str, title: str, secret_name: str) -> None:
    secret = getattr(S3, secret_name)
    assert _s3(side, title, "PRK") == secret
    assert hkdf_expand_label(H, secret, b"key", b"", 16) == _s3(side, title, "key expanded")
    assert hkdf_expand_label(H, secret, b"iv", b"", 12) == _s3(side, title, "iv expanded")


def test_s3_finished() -> None:
    title = 'calculate finished "tls13 finished"'
    s_key = hkdf_expand_label(H, S3.s_hs, b"finished", b"", HASH_LEN)
    assert s_key == _s3("server", title, "expanded")
    s_verify = hmac_digest(H, s_key, digest(H, S3_CH + S3_SH + S3_EE + S3_CERT + S3_CV))
    assert s_verify == _s3("server", title, "finished")
    assert bytes.fromhex("14000020") + s_verify == S3_SFIN

    c_key = hkdf_expand_label(H, S3.c_hs, b"finished", b"", HASH_LEN)
    assert c_key == _s3("client", title, "expanded")
    c_verify = hmac_digest(H, c_key, digest(H, S3_CH + S3_SH + S3_EE + S3_CERT + S3_CV + S3_SFIN))
    assert c_verify == _s3("client", title, "finished")
    assert bytes.fromhex("14000020") + c_verify == S3_CFIN


def _ticket_nonce(new_session_ticket: bytes) -> bytes:
    # type(1) length(3) ticket_lifetime(4) ticket_age_add(4) ticket_nonce<0..255>
    nonce_len = new_session_ticket[12]
    return new_session_ticket[13 : 13 + nonce_len]


S3_NST = v(3, "server", "construct a NewSessionTicket handshake message", "NewSessionTicket")


def test_s3_resumption_psk() -> None:
    title = 'generate resumption secret "tls13 resumption"'
    nonce = _ticket_nonce(S3_NST)
    assert nonce == _s3("server", title, "hash") == b"\x00\x00"
    psk = hkdf_expand_label(H, S3.res_master, b"resumption", nonce, HASH_LEN)
    assert psk == _s3("server", title, "expanded")


# --- record protection --------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    name: str
    secret: str  # the Schedule attribute that keys it
    seq: int
    content_type: int
    side: str
    title: str
    nth: int


def _traffic_aead(secret: bytes) -> Aead:
    key = hkdf_expand_label(H, secret, b"key", b"", 16)
    iv = hkdf_expand_label(H, secret, b"iv", b"", 12)
    return Aead(AES128, key, iv)


def _check_record(aead: Aead, seq: int, record: bytes, payload: bytes, content_type: int) -> None:
    header, body = record[:5], record[5:]
    assert header[:3] == bytes.fromhex("170303")
    assert int.from_bytes(header[3:5], "big") == len(body)
    inner = payload + bytes((content_type,))  # TLSInnerPlaintext, no padding in RFC 8448
    assert aead.open(seq, body, header) == inner
    assert aead.seal(seq, inner, header) == body
    # The wrong sequence number must not authenticate.
    with pytest.raises(DecryptError):
        aead.open(seq + 1, body, header)


S3_RECORDS = [
    Record("server EE..Finished", "s_hs", 0, HANDSHAKE, "server", HS_RECORD, 1),
    Record("client Finished", "c_hs", 0, HANDSHAKE, "client", HS_RECORD, 1),
    Record("NewSessionTicket", "s_ap", 0, HANDSHAKE, "server", HS_RECORD, 2),
    Record("client app data", "c_ap", 0, APPLICATION_DATA, "client", APP_RECORD, 0),
    Record("server app data", "s_ap", 1, APPLICATION_DATA, "server", APP_RECORD, 0),
    Record("client alert", "c_ap", 1, ALERT, "client", ALERT_RECORD, 0),
    Record("server alert", "s_ap", 2, ALERT, "server", ALERT_RECORD, 0),
]


@pytest.mark.parametrize("rec", S3_RECORDS, ids=[r.name for r in S3_RECORDS])
def test_s3_records(rec: Record) -> None:
    aead = _traffic_aead(getattr(S3, rec.secret))
    record = _s3(rec.side, rec.title, "complete record", rec.nth)
    payload = _s3(rec.side, rec.title, "payload", rec.nth)
    _check_record(aead, rec.seq, record, payload, rec.content_type)


def test_s3_server_handshake_record_is_ee_through_finished() -> None:
    """Server handshake key/iv as printed in the RFC, sequence 0, record header as AAD."""
    title = "derive write traffic keys for handshake data"
    aead = Aead(AES128, _s3("server", title, "key expanded"), _s3("server", title, "iv expanded"))
    record = _s3("server", "send handshake record", "complete record", nth=1)
    plaintext = aead.open(0, record[5:], record[:5])
    assert plaintext == S3_EE + S3_CERT + S3_CV + S3_SFIN + bytes((HANDSHAKE,))
    tampered = record[:-1] + bytes((record[-1] ^ 1,))
    with pytest.raises(DecryptError):
        aead.open(0, tampered[5:], tampered[:5])


# --- Section 4: Resumed 0-RTT Handshake ---------------------------------------------------

S4_CH_PREFIX = v(4, "client", "calculate PSK binder", "ClientHello prefix")
S4_CH = v(4, "client", "send handshake record", "payload", nth=0)  # with binders
S4_SH = v(4, "server", "construct a ServerHello handshake message", "ServerHello")
S4_EE = v(4, "server", "construct a EncryptedExtensions handshake message", "EncryptedExtensions")
S4_SFIN = v(4, "server", "construct a Finished handshake message", "Finished")
S4_EOED = v(4, "client", "construct a EndOfEarlyData handshake message", "EndOfEarlyData")
S4_CFIN = v(4, "client", "construct a Finished handshake message", "Finished")


def _s4(side: str, title: str, name: str, nth: int = 0) -> bytes:
    return v(4, side, title, name, nth)


def _s4_psk() -> bytes:
    return hkdf_expand_label(H, S3.res_master, b"resumption", _ticket_nonce(S3_NST), HASH_LEN)


def _s4_schedule() -> Schedule:
    title = "create an ephemeral x25519 key pair"
    client = KeyShare.from_private_bytes(NamedGroup.x25519, _s4("client", title, "private key"))
    ecdhe = client.shared_secret(_s4("server", title, "public key"))
    hello = S4_CH + S4_SH
    server_fin = hello + S4_EE + S4_SFIN
    return _schedule(_s4_psk(), ecdhe, hello, server_fin, server_fin + S4_EOED + S4_CFIN)


S4 = _s4_schedule()


def test_s4_psk_and_early_secret() -> None:
    title = 'extract secret "early"'
    assert _s4_psk() == _s4("client", title, "IKM")
    assert S4.early == _s4("client", title, "secret")


@pytest.mark.parametrize("side", ["client", "server"])
def test_s4_x25519_keys_and_shared_secret(side: str) -> None:
    title = "create an ephemeral x25519 key pair"
    share = KeyShare.from_private_bytes(NamedGroup.x25519, _s4(side, title, "private key"))
    assert share.key_exchange == _s4(side, title, "public key")
    peer = _s4("server" if side == "client" else "client", title, "public key")
    assert share.shared_secret(peer) == _s4("server", 'extract secret "handshake"', "IKM")


def test_s4_psk_binder() -> None:
    title = "calculate PSK binder"
    binder_key = derive_secret(H, S4.early, b"res binder", b"")
    assert binder_key == _s4("client", title, "PRK")
    binder_hash = digest(H, S4_CH_PREFIX)
    assert binder_hash == _s4("client", title, "binder hash")
    finished_key = hkdf_expand_label(H, binder_key, b"finished", b"", HASH_LEN)
    assert finished_key == _s4("client", title, "expanded")
    binder = hmac_digest(H, finished_key, binder_hash)
    assert binder == _s4("client", title, "finished")
    # The full ClientHello is the prefix followed by the binders list with this binder.
    assert S4_CH_PREFIX + bytes.fromhex("002120") + binder == S4_CH


def test_s4_early_traffic_secrets() -> None:
    c_e = derive_secret(H, S4.early, b"c e traffic", S4_CH)
    assert c_e == _s4("client", 'derive secret "tls13 c e traffic"', "expanded")
    e_exp = derive_secret(H, S4.early, b"e exp master", S4_CH)
    assert e_exp == _s4("client", 'derive secret "tls13 e exp master"', "expanded")
    title = "derive write traffic keys for early application data"
    assert hkdf_expand_label(H, c_e, b"key", b"", 16) == _s4("client", title, "key expanded")
    assert hkdf_expand_label(H, c_e, b"iv", b"", 12) == _s4("client", title, "iv expanded")


def test_s4_handshake_secrets() -> None:
    assert S4.derived_hs == _s4("server", 'derive secret for handshake "tls13 derived"', "expanded")
    assert S4.handshake == _s4("server", 'extract secret "handshake"', "secret")
    assert S4.c_hs == _s4("server", 'derive secret "tls13 c hs traffic"', "expanded")
    assert S4.s_hs == _s4("server", 'derive secret "tls13 s hs traffic"', "expanded")
    assert S4.derived_ms == _s4("server", 'derive secret for master "tls13 derived"', "expanded")
    assert S4.master == _s4("server", 'extract secret "master"', "secret")


def test_s4_application_secrets() -> None:
    assert S4.c_ap == _s4("server", 'derive secret "tls13 c ap traffic"', "expanded")
    assert S4.s_ap == _s4("server", 'derive secret "tls13 s ap traffic"', "expanded")
    assert S4.exp_master == _s4("server", 'derive secret "tls13 exp master"', "expanded")
    assert S4.res_master == _s4("client", 'derive secret "tls13 res master"', "expanded")


def test_s4_finished() -> None:
    title = 'calculate finished "tls13 finished"'
    s_key = hkdf_expand_label(H, S4.s_hs, b"finished", b"", HASH_LEN)
    s_verify = hmac_digest(H, s_key, digest(H, S4_CH + S4_SH + S4_EE))
    assert s_verify == _s4("server", title, "finished")
    assert S4_SFIN[4:] == s_verify
    c_key = hkdf_expand_label(H, S4.c_hs, b"finished", b"", HASH_LEN)
    c_verify = hmac_digest(H, c_key, digest(H, S4_CH + S4_SH + S4_EE + S4_SFIN + S4_EOED))
    assert c_verify == _s4("client", title, "finished")
    assert S4_CFIN[4:] == c_verify


def _s4_early_aead() -> Aead:
    return _traffic_aead(derive_secret(H, S4.early, b"c e traffic", S4_CH))


S4_RECORDS = [
    Record("0-RTT app data", "early", 0, APPLICATION_DATA, "client", APP_RECORD, 0),
    Record("EndOfEarlyData", "early", 1, HANDSHAKE, "client", HS_RECORD, 1),
    Record("server EE+Finished", "s_hs", 0, HANDSHAKE, "server", HS_RECORD, 1),
    Record("client Finished", "c_hs", 0, HANDSHAKE, "client", HS_RECORD, 2),
    Record("client app data", "c_ap", 0, APPLICATION_DATA, "client", APP_RECORD, 1),
    Record("server app data", "s_ap", 0, APPLICATION_DATA, "server", APP_RECORD, 0),
    Record("client alert", "c_ap", 1, ALERT, "client", ALERT_RECORD, 0),
    Record("server alert", "s_ap", 1, ALERT, "server", ALERT_RECORD, 0),
]


@pytest.mark.parametrize("rec", S4_RECORDS, ids=[r.name for r in S4_RECORDS])
def test_s4_records(rec: Record) -> None:
    aead = _s4_early_aead() if rec.secret == "early" else _traffic_aead(getattr(S4, rec.secret))
    record = _s4(rec.side, rec.title, "complete record", rec.nth)
    payload = _s4(rec.side, rec.title, "payload", rec.nth)
    _check_record(aead, rec.seq, record, payload, rec.content_type)
