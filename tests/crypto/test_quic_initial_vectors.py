"""Known-answer tests for QUIC packet protection: RFC 9001 Appendix A.

Short values are typed in from the RFC; the long packets (the client
Initial's CRYPTO frame and protected packet, the server Initial, the Retry)
are read from the RFC text (``vectors/rfc9001-appendix-a.txt``) by
:func:`hex_paragraph`, which takes the hex paragraph that follows a given
sentence of Appendix A.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from quicnet.crypto.aead import Aead, AeadAlgorithm, HeaderProtection
from quicnet.crypto.errors import DecryptError
from quicnet.crypto.kdf import hkdf_expand, hkdf_expand_label, hkdf_extract

# ``vectors/rfc9001-appendix-a.txt`` is Appendix A of RFC 9001, verbatim; QUICNET_SPECS_DIR
# may point at a directory holding the full ``rfc9001.txt`` instead.
_SPEC = (
    Path(os.environ["QUICNET_SPECS_DIR"]) / "rfc9001.txt"
    if os.environ.get("QUICNET_SPECS_DIR")
    else Path(__file__).parent / "vectors" / "rfc9001-appendix-a.txt"
)
_RFC9001 = _SPEC.read_text(encoding="utf-8")
# The headings at column 0 (the table of contents has them indented).
_APPENDIX_A = _RFC9001[
    _RFC9001.index("\nAppendix A.  Sample Packet Protection\n") : _RFC9001.index(
        "\nAppendix B.  AEAD Algorithm Analysis\n"
    )
]
_HEX_ROW = re.compile(r"^   [0-9a-f]+(?: [0-9a-f]+)*$")


def hex_paragraph(after: str) -> bytes:
    """The hex rows of the first paragraph after the text ``after`` in Appendix A."""
    start = _APPENDIX_A.index(after) + len(after)
    lines = _APPENDIX_A[start:].splitlines()
    i = 0
    while not _HEX_ROW.match(lines[i]):  # skip the rest of the prose paragraph
        i += 1
    rows = []
    while i < len(lines) and _HEX_ROW.match(lines[i]):
        rows.append(lines[i])
        i += 1
    return bytes.fromhex("".join("".join(rows).split()))


H = "sha256"
AES128 = AeadAlgorithm.AES_128_GCM
CHACHA = AeadAlgorithm.CHACHA20_POLY1305

INITIAL_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
CLIENT_DCID = bytes.fromhex("8394c8f03e515708")

INITIAL_SECRET = bytes.fromhex("7db5df06e7a69e432496adedb00851923595221596ae2ae9fb8115c1e9ed0a44")
CLIENT_INITIAL_SECRET = bytes.fromhex(
    "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
)
CLIENT_KEY = bytes.fromhex("1f369613dd76d5467730efcbe3b1a22d")
CLIENT_IV = bytes.fromhex("fa044b2f42a3fd3b46fb255c")
CLIENT_HP = bytes.fromhex("9f50449e04a0e810283a1e9933adedd2")
SERVER_INITIAL_SECRET = bytes.fromhex(
    "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b"
)
SERVER_KEY = bytes.fromhex("cf3a5331653c364c88f0f379b6067e37")
SERVER_IV = bytes.fromhex("0ac1493ca1905853b0bba03e")
SERVER_HP = bytes.fromhex("c206b8d9b9f0f37644430b490eeaa314")


# --- A.1 Keys -----------------------------------------------------------------------------


def test_hkdf_label_infos() -> None:
    """The HkdfLabel encodings listed at the top of A.1 drive HKDF-Expand-Label."""
    infos = {
        b"client in": ("00200f746c73313320636c69656e7420696e00", 32),
        b"server in": ("00200f746c7331332073657276657220696e00", 32),
        b"quic key": ("00100e746c7331332071756963206b657900", 16),
        b"quic iv": ("000c0d746c733133207175696320697600", 12),
        b"quic hp": ("00100d746c733133207175696320687000", 16),
    }
    for label, (info_hex, length) in infos.items():
        info = bytes.fromhex(info_hex)
        assert hkdf_expand_label(H, INITIAL_SECRET, label, b"", length) == hkdf_expand(
            H, INITIAL_SECRET, info, length
        ), label


def test_initial_secret() -> None:
    assert hkdf_extract(H, INITIAL_SALT_V1, CLIENT_DCID) == INITIAL_SECRET


def test_client_initial_secret_and_keys() -> None:
    secret = hkdf_expand_label(H, INITIAL_SECRET, b"client in", b"", 32)
    assert secret == CLIENT_INITIAL_SECRET
    assert hkdf_expand_label(H, secret, b"quic key", b"", 16) == CLIENT_KEY
    assert hkdf_expand_label(H, secret, b"quic iv", b"", 12) == CLIENT_IV
    assert hkdf_expand_label(H, secret, b"quic hp", b"", 16) == CLIENT_HP


def test_server_initial_secret_and_keys() -> None:
    secret = hkdf_expand_label(H, INITIAL_SECRET, b"server in", b"", 32)
    assert secret == SERVER_INITIAL_SECRET
    assert hkdf_expand_label(H, secret, b"quic key", b"", 16) == SERVER_KEY
    assert hkdf_expand_label(H, secret, b"quic iv", b"", 12) == SERVER_IV
    assert hkdf_expand_label(H, secret, b"quic hp", b"", 16) == SERVER_HP


# --- packet protection helpers (RFC 9001 §5.3, §5.4) --------------------------------------


def protect(
    aead: Aead, hp: HeaderProtection, header: bytes, pn_length: int, pn: int, payload: bytes
) -> bytes:
    """Seal ``payload`` under the unprotected ``header`` and apply header protection."""
    pn_offset = len(header) - pn_length
    protected_payload = aead.seal(pn, payload, header)
    sample_offset = pn_offset + 4
    sample = (header + protected_payload)[sample_offset : sample_offset + 16]
    mask = hp.mask(sample)
    first = header[0] ^ (mask[0] & (0x0F if header[0] & 0x80 else 0x1F))
    pn_bytes = bytes(
        b ^ m for b, m in zip(header[pn_offset:], mask[1 : 1 + pn_length], strict=True)
    )
    return bytes((first,)) + header[1:pn_offset] + pn_bytes + protected_payload


def unprotect(
    aead: Aead, hp: HeaderProtection, packet: bytes, pn_offset: int, largest_pn: int
) -> tuple[bytes, int, bytes]:
    """Remove header protection, decode the packet number and open the payload."""
    mask = hp.mask(packet[pn_offset + 4 : pn_offset + 20])
    first = packet[0] ^ (mask[0] & (0x0F if packet[0] & 0x80 else 0x1F))
    pn_length = (first & 0x03) + 1
    pn_bytes = bytes(
        b ^ m for b, m in zip(packet[pn_offset : pn_offset + pn_length], mask[1:], strict=False)
    )
    truncated = int.from_bytes(pn_bytes, "big")
    # RFC 9000 Appendix A.3, packet number decoding.
    expected = largest_pn + 1
    win = 1 << (pn_length * 8)
    candidate = (expected & ~(win - 1)) | truncated
    if candidate <= expected - win // 2 and candidate < (1 << 62) - win:
        candidate += win
    elif candidate > expected + win // 2 and candidate >= win:
        candidate -= win
    header = bytes((first,)) + packet[1:pn_offset] + pn_bytes
    payload = aead.open(candidate, packet[pn_offset + pn_length :], header)
    return header, candidate, payload


# --- A.2 Client Initial -------------------------------------------------------------------

A2_CRYPTO_FRAME = hex_paragraph("frames to make a 1162-byte payload:")
A2_HEADER = bytes.fromhex("c300000001088394c8f03e5157080000449e00000002")
A2_PACKET = hex_paragraph("The resulting protected packet is:")
A2_PAYLOAD = A2_CRYPTO_FRAME + bytes(1162 - len(A2_CRYPTO_FRAME))


def test_a2_vectors_parsed() -> None:
    assert len(A2_CRYPTO_FRAME) == 245
    assert A2_CRYPTO_FRAME[:4] == bytes.fromhex("060040f1")
    # header incl. the 4-byte packet number (22) + payload (1162) + tag (16)
    assert len(A2_PACKET) == 1200
    assert A2_PACKET[:22] == bytes.fromhex("c000000001088394c8f03e5157080000449e7b9aec34")


def test_a2_header_protection_mask() -> None:
    hp = HeaderProtection(AES128, CLIENT_HP)
    mask = hp.mask(bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b"))
    assert mask == bytes.fromhex("437b9aec36")


def test_a2_payload_ciphertext() -> None:
    aead = Aead(AES128, CLIENT_KEY, CLIENT_IV)
    sealed = aead.seal(2, A2_PAYLOAD, A2_HEADER)
    assert len(sealed) == 1162 + 16
    assert sealed[:16] == bytes.fromhex("d1b1c98dd7689fb8ec11d242b123dc9b")  # the sample
    assert sealed == A2_PACKET[22:]


def test_a2_full_protected_packet() -> None:
    aead = Aead(AES128, CLIENT_KEY, CLIENT_IV)
    hp = HeaderProtection(AES128, CLIENT_HP)
    assert protect(aead, hp, A2_HEADER, 4, 2, A2_PAYLOAD) == A2_PACKET


def test_a2_unprotect() -> None:
    aead = Aead(AES128, CLIENT_KEY, CLIENT_IV)
    hp = HeaderProtection(AES128, CLIENT_HP)
    header, pn, payload = unprotect(aead, hp, A2_PACKET, pn_offset=18, largest_pn=-1)
    assert (header, pn, payload) == (A2_HEADER, 2, A2_PAYLOAD)


def test_a2_wrong_keys_fail() -> None:
    """The server's Initial key must not open the client's packet; nor may a wrong pn."""
    ciphertext = A2_PACKET[22:]
    with pytest.raises(DecryptError):
        Aead(AES128, SERVER_KEY, SERVER_IV).open(2, ciphertext, A2_HEADER)
    with pytest.raises(DecryptError):
        Aead(AES128, CLIENT_KEY, CLIENT_IV).open(3, ciphertext, A2_HEADER)
    with pytest.raises(DecryptError):  # AAD must be the unprotected header
        Aead(AES128, CLIENT_KEY, CLIENT_IV).open(2, ciphertext, A2_PACKET[:22])


# --- A.3 Server Initial -------------------------------------------------------------------

A3_PAYLOAD = hex_paragraph("frame, a CRYPTO frame, and no PADDING frames:")
A3_HEADER = bytes.fromhex("c1000000010008f067a5502a4262b50040750001")
A3_PACKET = hex_paragraph("The final protected packet is then:")


def test_a3_vectors_parsed() -> None:
    assert len(A3_PAYLOAD) == 99
    assert len(A3_PACKET) == len(A3_HEADER) + len(A3_PAYLOAD) + 16
    # Length field 0x4075 = 117 = pn (2) + payload (99) + tag (16)
    assert int.from_bytes(A3_HEADER[16:18], "big") & 0x3FFF == 2 + len(A3_PAYLOAD) + 16


def test_a3_header_protection_mask() -> None:
    hp = HeaderProtection(AES128, SERVER_HP)
    assert hp.mask(bytes.fromhex("2cd0991cd25b0aac406a5816b6394100")) == bytes.fromhex("2ec0d8356a")


def test_a3_full_protected_packet() -> None:
    aead = Aead(AES128, SERVER_KEY, SERVER_IV)
    hp = HeaderProtection(AES128, SERVER_HP)
    packet = protect(aead, hp, A3_HEADER, 2, 1, A3_PAYLOAD)
    assert packet[:20] == bytes.fromhex("cf000000010008f067a5502a4262b5004075c0d9")
    assert packet == A3_PACKET


def test_a3_unprotect() -> None:
    aead = Aead(AES128, SERVER_KEY, SERVER_IV)
    hp = HeaderProtection(AES128, SERVER_HP)
    header, pn, payload = unprotect(aead, hp, A3_PACKET, pn_offset=18, largest_pn=0)
    assert (header, pn, payload) == (A3_HEADER, 1, A3_PAYLOAD)


# --- A.4 Retry ----------------------------------------------------------------------------

RETRY_KEY_V1 = bytes.fromhex("be0c690b9f66575a1d766b54e368c84e")
RETRY_NONCE_V1 = bytes.fromhex("461599d35d632bf2239825bb")
A4_RETRY = hex_paragraph("value is not included in the final Retry packet:")


def _retry_pseudo_packet(odcid: bytes, retry_without_tag: bytes) -> bytes:
    # RFC 9001 §5.8: ODCID Length (8) || Original Destination Connection ID || Retry packet
    return bytes((len(odcid),)) + odcid + retry_without_tag


def test_a4_retry_integrity_tag() -> None:
    assert len(A4_RETRY) == 36
    retry, tag = A4_RETRY[:-16], A4_RETRY[-16:]
    assert retry.endswith(b"token")
    pseudo = _retry_pseudo_packet(CLIENT_DCID, retry)
    aead = Aead(AES128, RETRY_KEY_V1, RETRY_NONCE_V1)
    assert aead.seal(0, b"", pseudo) == tag
    assert aead.open(0, tag, pseudo) == b""


def test_a4_retry_tag_binds_odcid() -> None:
    retry, tag = A4_RETRY[:-16], A4_RETRY[-16:]
    aead = Aead(AES128, RETRY_KEY_V1, RETRY_NONCE_V1)
    other = bytes.fromhex("8394c8f03e515709")
    assert aead.seal(0, b"", _retry_pseudo_packet(other, retry)) != tag
    with pytest.raises(DecryptError):
        aead.open(0, tag, _retry_pseudo_packet(other, retry))


# --- A.5 ChaCha20-Poly1305 short header packet --------------------------------------------

A5_SECRET = bytes.fromhex("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
A5_KEY = bytes.fromhex("c6d98ff3441c3fe1b2182094f69caa2ed4b716b65488960a7a984979fb23e1c8")
A5_IV = bytes.fromhex("e0459b3474bdd0e44a41c144")
A5_HP = bytes.fromhex("25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4")
A5_KU = bytes.fromhex("1223504755036d556342ee9361d253421a826c9ecdf3c7148684b36b714881f9")
A5_PN = 654360564
A5_HEADER = bytes.fromhex("4200bff4")
A5_CIPHERTEXT = bytes.fromhex("655e5cd55c41f69080575d7999c25a5bfb")
A5_PACKET = bytes.fromhex("4cfe4189655e5cd55c41f69080575d7999c25a5bfb")


def test_a5_keys() -> None:
    assert hkdf_expand_label(H, A5_SECRET, b"quic key", b"", 32) == A5_KEY
    assert hkdf_expand_label(H, A5_SECRET, b"quic iv", b"", 12) == A5_IV
    assert hkdf_expand_label(H, A5_SECRET, b"quic hp", b"", 32) == A5_HP


def test_a5_key_update_secret() -> None:
    assert hkdf_expand_label(H, A5_SECRET, b"quic ku", b"", 32) == A5_KU


def test_a5_nonce() -> None:
    assert Aead(CHACHA, A5_KEY, A5_IV).nonce(A5_PN) == bytes.fromhex("e0459b3474bdd0e46d417eb0")


def test_a5_payload_ciphertext() -> None:
    aead = Aead(CHACHA, A5_KEY, A5_IV)
    assert aead.seal(A5_PN, b"\x01", A5_HEADER) == A5_CIPHERTEXT
    assert aead.open(A5_PN, A5_CIPHERTEXT, A5_HEADER) == b"\x01"


def test_a5_header_protection_mask() -> None:
    hp = HeaderProtection(CHACHA, A5_HP)
    assert hp.mask(bytes.fromhex("5e5cd55c41f69080575d7999c25a5bfb")) == bytes.fromhex("aefefe7d03")


def test_a5_full_protected_packet() -> None:
    aead = Aead(CHACHA, A5_KEY, A5_IV)
    hp = HeaderProtection(CHACHA, A5_HP)
    # pn 654360564 = 0x27 00 bf f4, sent truncated to 3 bytes (49140 = 0x00bff4).
    assert A5_PN & 0xFFFFFF == int.from_bytes(A5_HEADER[1:], "big") == 49140
    assert protect(aead, hp, A5_HEADER, 3, A5_PN, b"\x01") == A5_PACKET


def test_a5_unprotect() -> None:
    aead = Aead(CHACHA, A5_KEY, A5_IV)
    hp = HeaderProtection(CHACHA, A5_HP)
    header, pn, payload = unprotect(aead, hp, A5_PACKET, pn_offset=1, largest_pn=A5_PN - 1)
    assert (header, pn, payload) == (A5_HEADER, A5_PN, b"\x01")
