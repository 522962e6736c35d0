"""Tests for :mod:`quicnet.crypto.kex`: agreement, share formats, and malformed shares."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quicnet.crypto.errors import KeyExchangeError, UnsupportedAlgorithmError
from quicnet.crypto.kex import KeyShare, NamedGroup, respond_key_share

ALL_GROUPS = list(NamedGroup)

# (client share length, server share length, shared secret length)
SIZES = {
    NamedGroup.x25519: (32, 32, 32),
    NamedGroup.x448: (56, 56, 56),
    NamedGroup.secp256r1: (65, 65, 32),
    NamedGroup.secp384r1: (97, 97, 48),
    NamedGroup.secp521r1: (133, 133, 66),
    NamedGroup.X25519MLKEM768: (1216, 1120, 64),
}
EC_CURVES = {
    NamedGroup.secp256r1: ec.SECP256R1(),
    NamedGroup.secp384r1: ec.SECP384R1(),
    NamedGroup.secp521r1: ec.SECP521R1(),
}
EC_PRIMES = {
    NamedGroup.secp256r1: 2**256 - 2**224 + 2**192 + 2**96 - 1,
    NamedGroup.secp384r1: 2**384 - 2**128 - 2**96 + 2**32 - 1,
    NamedGroup.secp521r1: 2**521 - 1,
}

# Points of small order on Curve25519 (and non-canonical encodings of them); X25519
# with any of them yields the all-zero secret, which RFC 8446 §7.4.2 forbids.
X25519_SMALL_ORDER = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ec" + "ff" * 30 + "7f"),  # p - 1
    bytes.fromhex("ed" + "ff" * 30 + "7f"),  # p (= 0)
    bytes.fromhex("ee" + "ff" * 30 + "7f"),  # p + 1 (= 1)
]


def _ids(group: NamedGroup) -> str:
    return group.name


def test_named_group_code_points() -> None:
    """IANA TLS Supported Groups registry values."""
    assert NamedGroup.secp256r1 == 0x0017
    assert NamedGroup.secp384r1 == 0x0018
    assert NamedGroup.secp521r1 == 0x0019
    assert NamedGroup.x25519 == 0x001D
    assert NamedGroup.x448 == 0x001E
    assert NamedGroup.X25519MLKEM768 == 0x11EC
    assert set(SIZES) == set(NamedGroup)


# --- agreement ----------------------------------------------------------------------------


@pytest.mark.parametrize("group", ALL_GROUPS, ids=_ids)
def test_client_and_server_agree(group: NamedGroup) -> None:
    client_len, server_len, secret_len = SIZES[group]
    client = KeyShare(group)
    assert client.group is group
    assert len(client.key_exchange) == client_len
    server_share, server_secret = respond_key_share(group, client.key_exchange)
    assert len(server_share) == server_len
    assert len(server_secret) == secret_len
    assert client.shared_secret(server_share) == server_secret
    assert any(server_secret)


@pytest.mark.parametrize("group", ALL_GROUPS, ids=_ids)
def test_group_accepts_plain_int_code_point(group: NamedGroup) -> None:
    client = KeyShare(int(group))
    assert client.group is group
    server_share, secret = respond_key_share(int(group), client.key_exchange)
    assert client.shared_secret(server_share) == secret


@pytest.mark.parametrize("group", ALL_GROUPS, ids=_ids)
def test_shares_are_fresh(group: NamedGroup) -> None:
    a, b = KeyShare(group), KeyShare(group)
    assert a.key_exchange != b.key_exchange
    share1, secret1 = respond_key_share(group, a.key_exchange)
    share2, secret2 = respond_key_share(group, a.key_exchange)
    assert share1 != share2
    assert secret1 != secret2


@pytest.mark.parametrize("group", [g for g in ALL_GROUPS if g in EC_CURVES], ids=_ids)
def test_ec_shares_are_uncompressed_points_on_the_curve(group: NamedGroup) -> None:
    client = KeyShare(group)
    assert client.key_exchange[0] == 0x04
    # Parses as a point of the right curve.
    ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[group], client.key_exchange)
    server_share, _ = respond_key_share(group, client.key_exchange)
    assert server_share[0] == 0x04
    ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[group], server_share)


@pytest.mark.parametrize("group", [g for g in ALL_GROUPS if g in EC_CURVES], ids=_ids)
def test_ec_shared_secret_matches_pyca(group: NamedGroup) -> None:
    """The share is ECDH with the peer's point: the x coordinate (RFC 8446 §7.4.2)."""
    peer = ec.generate_private_key(EC_CURVES[group])
    peer_point = peer.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    client = KeyShare(group)
    expected = peer.exchange(
        ec.ECDH(),
        ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[group], client.key_exchange),
    )
    assert client.shared_secret(peer_point) == expected


def test_from_private_bytes_secp256r1_matches_pyca() -> None:
    scalar = bytes.fromhex("137b20ef0ca19c55dc62fcb087dbdcde1503cbea087e99f6894c85efad647e4d")
    expected = (
        ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    share = KeyShare.from_private_bytes(NamedGroup.secp256r1, scalar)
    assert share.key_exchange == expected


def test_x25519_rfc7748_section_6_1() -> None:
    """RFC 7748 §6.1 Diffie-Hellman test vector."""
    alice = KeyShare.from_private_bytes(
        NamedGroup.x25519,
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    )
    bob = KeyShare.from_private_bytes(
        NamedGroup.x25519,
        bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
    )
    assert alice.key_exchange == bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert bob.key_exchange == bytes.fromhex(
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    )
    shared = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert alice.shared_secret(bob.key_exchange) == shared
    assert bob.shared_secret(alice.key_exchange) == shared


# --- X25519MLKEM768 layout (draft-ietf-tls-ecdhe-mlkem) -----------------------------------


def test_hybrid_server_side_layout() -> None:
    """Client share = ek (1184) || x25519 (32); server = ct (1088) || x25519 (32);
    secret = ML-KEM secret (32) || X25519 secret (32)."""
    kem = mlkem.MLKEM768PrivateKey.generate()
    dh = x25519.X25519PrivateKey.generate()
    client_share = kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw()
    assert len(client_share) == 1216
    server_share, secret = respond_key_share(NamedGroup.X25519MLKEM768, client_share)
    assert len(server_share) == 1120
    ct, server_dh = server_share[:1088], server_share[1088:]
    kem_secret = kem.decapsulate(ct)
    dh_secret = dh.exchange(x25519.X25519PublicKey.from_public_bytes(server_dh))
    assert secret[:32] == kem_secret
    assert secret[32:] == dh_secret
    assert secret == kem_secret + dh_secret


def test_hybrid_client_side_layout() -> None:
    client = KeyShare(NamedGroup.X25519MLKEM768)
    ek = mlkem.MLKEM768PublicKey.from_public_bytes(client.key_exchange[:1184])
    kem_secret, ct = ek.encapsulate()
    dh = x25519.X25519PrivateKey.generate()
    dh_secret = dh.exchange(x25519.X25519PublicKey.from_public_bytes(client.key_exchange[1184:]))
    secret = client.shared_secret(ct + dh.public_key().public_bytes_raw())
    assert secret == kem_secret + dh_secret


# --- malformed shares ---------------------------------------------------------------------


@pytest.mark.parametrize("peer", X25519_SMALL_ORDER, ids=lambda p: p[:4].hex())
def test_x25519_small_order_points_rejected(peer: bytes) -> None:
    client = KeyShare(NamedGroup.x25519)
    with pytest.raises(KeyExchangeError):
        client.shared_secret(peer)
    with pytest.raises(KeyExchangeError):
        respond_key_share(NamedGroup.x25519, peer)


@pytest.mark.parametrize("peer", X25519_SMALL_ORDER[:3], ids=lambda p: p[:4].hex())
def test_hybrid_x25519_small_order_rejected(peer: bytes) -> None:
    client = KeyShare(NamedGroup.X25519MLKEM768)
    with pytest.raises(KeyExchangeError):
        respond_key_share(NamedGroup.X25519MLKEM768, client.key_exchange[:1184] + peer)
    server_share, _ = respond_key_share(NamedGroup.X25519MLKEM768, client.key_exchange)
    with pytest.raises(KeyExchangeError):
        client.shared_secret(server_share[:1088] + peer)


def test_x448_zero_point_rejected() -> None:
    client = KeyShare(NamedGroup.x448)
    for peer in (bytes(56), b"\x01" + bytes(55)):
        with pytest.raises(KeyExchangeError):
            client.shared_secret(peer)
        with pytest.raises(KeyExchangeError):
            respond_key_share(NamedGroup.x448, peer)


@pytest.mark.parametrize("group", ALL_GROUPS, ids=_ids)
def test_wrong_length_rejected(group: NamedGroup) -> None:
    client = KeyShare(group)
    good_client = client.key_exchange
    good_server, _ = respond_key_share(group, good_client)
    for bad in (b"", good_client[:-1], good_client + b"\x00", good_client[:1]):
        with pytest.raises(KeyExchangeError):
            respond_key_share(group, bad)
    for bad in (b"", good_server[:-1], good_server + b"\x00", good_server[:1]):
        with pytest.raises(KeyExchangeError):
            client.shared_secret(bad)


def _ec_point(group: NamedGroup) -> tuple[int, int, int]:
    """(x, y, coordinate length) of a fresh public point."""
    share = KeyShare(group).key_exchange
    n = (len(share) - 1) // 2
    return int.from_bytes(share[1 : 1 + n], "big"), int.from_bytes(share[1 + n :], "big"), n


@pytest.mark.parametrize("group", list(EC_CURVES), ids=_ids)
def test_ec_compressed_and_hybrid_encodings_rejected(group: NamedGroup) -> None:
    x, y, n = _ec_point(group)
    compressed = bytes((0x02 | (y & 1),)) + x.to_bytes(n, "big")
    client = KeyShare(group)
    for bad in (
        compressed,  # RFC 8446 §4.2.8.2: only the uncompressed form is allowed
        compressed + bytes(n),  # right length, wrong form byte
        bytes((0x06 | (y & 1),)) + x.to_bytes(n, "big") + y.to_bytes(n, "big"),  # "hybrid" form
        b"\x00",  # point at infinity
    ):
        with pytest.raises(KeyExchangeError):
            client.shared_secret(bad)
        with pytest.raises(KeyExchangeError):
            respond_key_share(group, bad)


@pytest.mark.parametrize("group", list(EC_CURVES), ids=_ids)
def test_ec_point_not_on_curve_rejected(group: NamedGroup) -> None:
    x, y, n = _ec_point(group)
    p = EC_PRIMES[group]
    client = KeyShare(group)
    bad_points = [
        (x, (y + 1) % p),  # off the curve
        (0, 0),
        (p, y),  # x not reduced mod p
        (x, y + p),  # y not reduced mod p (fits in the field length only for P-521)
    ]
    for bx, by in bad_points:
        if bx >= 2 ** (8 * n) or by >= 2 ** (8 * n):
            continue
        bad = b"\x04" + bx.to_bytes(n, "big") + by.to_bytes(n, "big")
        with pytest.raises(KeyExchangeError):
            client.shared_secret(bad)
        with pytest.raises(KeyExchangeError):
            respond_key_share(group, bad)


def test_hybrid_malformed_mlkem_encapsulation_key_rejected() -> None:
    """An ek whose coefficients are not reduced mod q fails FIPS 203's input check."""
    dh = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    with pytest.raises(KeyExchangeError):
        respond_key_share(NamedGroup.X25519MLKEM768, b"\xff" * 1184 + dh)


def test_key_exchange_error_is_illegal_parameter_and_not_value_error() -> None:
    assert KeyExchangeError.alert == 47
    assert not issubclass(KeyExchangeError, ValueError)


def test_unsupported_group() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        KeyShare(0x0100)  # ffdhe2048 is not offered
    with pytest.raises(UnsupportedAlgorithmError):
        respond_key_share(0x9999, bytes(32))
    with pytest.raises(UnsupportedAlgorithmError):
        KeyShare.from_private_bytes(NamedGroup.X25519MLKEM768, bytes(32))


# --- fuzzing: random peer shares only ever raise KeyExchangeError --------------------------

_CLIENTS: dict[NamedGroup, KeyShare] = {}


def _client(group: NamedGroup) -> KeyShare:
    if group not in _CLIENTS:
        _CLIENTS[group] = KeyShare(group)
    return _CLIENTS[group]


def _peer_bytes(group: NamedGroup) -> st.SearchStrategy[bytes]:
    client_len, server_len, _ = SIZES[group]
    strategies = [st.binary(max_size=160)]
    for n in {client_len, server_len}:
        strategies.append(st.binary(min_size=n, max_size=n))
        strategies.append(st.binary(min_size=n - 1, max_size=n - 1).map(lambda b: b"\x04" + b))
    if group is NamedGroup.X25519MLKEM768:
        # A valid encapsulation key with a random X25519 part.
        ek = _client(group).key_exchange[:1184]
        strategies.append(st.binary(min_size=32, max_size=32).map(lambda b: ek + b))
    return st.one_of(strategies)


_FUZZ = st.sampled_from(ALL_GROUPS).flatmap(lambda g: st.tuples(st.just(g), _peer_bytes(g)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FUZZ)
def test_fuzz_respond_key_share(case: tuple[NamedGroup, bytes]) -> None:
    group, peer = case
    _, server_len, secret_len = SIZES[group]
    try:
        share, secret = respond_key_share(group, peer)
    except KeyExchangeError:
        return
    assert len(peer) == SIZES[group][0]
    assert len(share) == server_len
    assert len(secret) == secret_len


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_FUZZ)
def test_fuzz_client_shared_secret(case: tuple[NamedGroup, bytes]) -> None:
    group, peer = case
    _, server_len, secret_len = SIZES[group]
    try:
        secret = _client(group).shared_secret(peer)
    except KeyExchangeError:
        return
    assert len(peer) == server_len
    assert len(secret) == secret_len
