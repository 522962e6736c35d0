"""Tests for :mod:`quicnet.crypto.keys`: generation, encodings, signatures, loading, bad input."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from hypothesis import example, given
from hypothesis import strategies as st
from toolkit_helpers import (
    FIXED_ENCRYPTED_KEY,
    FIXED_KEY_PASSPHRASE,
    FUZZ,
    WRONG_PASSPHRASE_REJECTED_BY_PADDING,
    WRONG_PASSPHRASE_WITH_VALID_PADDING,
    needs_openssl,
    pem_unwrap,
    pem_wrap,
    run_openssl,
)

from quicnet.crypto import (
    KEY_ALGORITHMS,
    CryptoError,
    DecodeError,
    InvalidSignatureError,
    PassphraseError,
    PrivateKey,
    PublicKey,
    SignatureScheme,
    UnsupportedAlgorithmError,
    generate_private_key,
    load_private_key,
    load_public_key,
    make_ca,
)

S = SignatureScheme
RSA_SCHEMES = {
    S.rsa_pss_rsae_sha256,
    S.rsa_pss_rsae_sha384,
    S.rsa_pss_rsae_sha512,
    S.rsa_pkcs1_sha256,
    S.rsa_pkcs1_sha384,
    S.rsa_pkcs1_sha512,
}


@dataclass(frozen=True)
class KeyCase:
    algorithm: str
    kwargs: tuple[tuple[str, object], ...]
    description: str
    key_size: int
    curve: str | None
    schemes: frozenset[SignatureScheme]

    @property
    def id(self) -> str:
        return self.description.replace(" ", "-")

    def generate(self) -> PrivateKey:
        return generate_private_key(self.algorithm, **dict(self.kwargs))  # type: ignore[arg-type]


CASES = [
    KeyCase("Ed25519", (), "Ed25519", 0, None, frozenset({S.ed25519})),
    KeyCase("Ed448", (), "Ed448", 0, None, frozenset({S.ed448})),
    KeyCase("X25519", (), "X25519", 0, None, frozenset()),
    KeyCase("X448", (), "X448", 0, None, frozenset()),
    KeyCase(
        "EC", (("curve", "P-256"),), "EC P-256", 256, "P-256", frozenset({S.ecdsa_secp256r1_sha256})
    ),
    KeyCase(
        "EC", (("curve", "P-384"),), "EC P-384", 384, "P-384", frozenset({S.ecdsa_secp384r1_sha384})
    ),
    KeyCase(
        "EC", (("curve", "P-521"),), "EC P-521", 521, "P-521", frozenset({S.ecdsa_secp521r1_sha512})
    ),
    KeyCase("RSA", (("rsa_bits", 2048),), "RSA 2048", 2048, None, frozenset(RSA_SCHEMES)),
    KeyCase("RSA", (("rsa_bits", 3072),), "RSA 3072", 3072, None, frozenset(RSA_SCHEMES)),
    KeyCase("ML-KEM-768", (), "ML-KEM-768", 0, None, frozenset()),
    KeyCase("ML-DSA-44", (), "ML-DSA-44", 0, None, frozenset({S.mldsa44})),
    KeyCase("ML-DSA-65", (), "ML-DSA-65", 0, None, frozenset({S.mldsa65})),
    KeyCase("ML-DSA-87", (), "ML-DSA-87", 0, None, frozenset({S.mldsa87})),
]
SIGNING_CASES = [c for c in CASES if c.schemes]
NON_SIGNING_CASES = [c for c in CASES if not c.schemes]

#: Independent expectations: the pyca hash each ECDSA / RSA scheme must use.
SCHEME_HASH = {
    S.ecdsa_secp256r1_sha256: hashes.SHA256,
    S.ecdsa_secp384r1_sha384: hashes.SHA384,
    S.ecdsa_secp521r1_sha512: hashes.SHA512,
    S.rsa_pkcs1_sha256: hashes.SHA256,
    S.rsa_pkcs1_sha384: hashes.SHA384,
    S.rsa_pkcs1_sha512: hashes.SHA512,
    S.rsa_pss_rsae_sha256: hashes.SHA256,
    S.rsa_pss_rsae_sha384: hashes.SHA384,
    S.rsa_pss_rsae_sha512: hashes.SHA512,
}

DATA = b"quicnet toolkit: the quick brown fox jumps over the lazy dog"


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


_GENERATED: dict[str, PrivateKey] = {}


def _key_of(case: KeyCase) -> PrivateKey:
    """Each case's key, generated once for the module (RSA keygen is slow)."""
    if case.id not in _GENERATED:
        _GENERATED[case.id] = case.generate()
    return _GENERATED[case.id]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.id)
def case_key(request: pytest.FixtureRequest) -> tuple[KeyCase, PrivateKey]:
    return request.param, _key_of(request.param)


@pytest.fixture(scope="module", params=SIGNING_CASES, ids=lambda c: c.id)
def signing_key(request: pytest.FixtureRequest) -> tuple[KeyCase, PrivateKey]:
    return request.param, _key_of(request.param)


# --------------------------------------------------------------------------- generation


def test_cases_cover_every_algorithm() -> None:
    assert {c.algorithm for c in CASES} == set(KEY_ALGORITHMS)


def test_generated_key_describes_itself(case_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = case_key
    public = key.public_key()
    for k in (key, public):
        assert k.algorithm == case.algorithm
        assert k.description == case.description
        assert k.key_size == case.key_size
        assert k.curve == case.curve
        assert k.can_sign == bool(case.schemes)
    assert case.description in repr(key)
    assert case.description in repr(public)


def test_signature_schemes_listed(case_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = case_key
    assert set(key.signature_schemes) == case.schemes
    assert set(key.public_key().signature_schemes) == case.schemes
    assert len(set(key.signature_schemes)) == len(key.signature_schemes)


def test_algorithm_names_are_case_insensitive() -> None:
    assert generate_private_key("ed25519").algorithm == "Ed25519"
    assert generate_private_key("ml_dsa_44").algorithm == "ML-DSA-44"
    assert generate_private_key("ecdsa", curve="secp384r1").description == "EC P-384"
    assert generate_private_key("EC", curve="prime256v1").curve == "P-256"


def test_fresh_keys_differ() -> None:
    a, b = generate_private_key("Ed25519"), generate_private_key("Ed25519")
    assert a.public_key() != b.public_key()
    assert a.public_key().fingerprint() != b.public_key().fingerprint()


@pytest.mark.parametrize("name", ["DSA", "RSA-PSS", "Ed25518", "", "P-256", "X9"])
def test_unknown_algorithm_is_unsupported(name: str) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        generate_private_key(name)


@pytest.mark.parametrize("bits", [512, 1024, 2047, 8193, 16384])
def test_rsa_sizes_outside_2048_to_8192_are_unsupported(bits: int) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        generate_private_key("RSA", rsa_bits=bits)


@pytest.mark.parametrize("curve", ["P-224", "secp256k1", "brainpoolP256r1", "X25519"])
def test_unknown_curve_is_unsupported(curve: str) -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        generate_private_key("EC", curve=curve)


# ------------------------------------------------------------------- PKCS#8 round trips


@pytest.mark.parametrize(
    "password", [None, b"correct horse battery staple"], ids=["plain", "encrypted"]
)
@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_private_key_round_trip(
    case_key: tuple[KeyCase, PrivateKey], encoding: str, password: bytes | None
) -> None:
    case, key = case_key
    plain_der = key.to_der()
    data = key.to_pem(password) if encoding == "PEM" else key.to_der(password)
    if encoding == "PEM":
        label = b"ENCRYPTED PRIVATE KEY" if password else b"PRIVATE KEY"
        assert data.startswith(b"-----BEGIN " + label + b"-----\n")
        assert data.rstrip().endswith(b"-----END " + label + b"-----")
    if password:
        assert plain_der not in data  # really encrypted
    loaded = load_private_key(data, password)
    assert loaded.description == case.description
    assert loaded.to_der() == plain_der
    assert loaded.public_key() == key.public_key()
    assert loaded.public_key().fingerprint() == key.public_key().fingerprint()


def test_plain_pkcs8_matches_pyca(case_key: tuple[KeyCase, PrivateKey]) -> None:
    """The DER is real PKCS#8 that an independent reader accepts as the same key."""
    _, key = case_key
    other = serialization.load_der_private_key(key.to_der(), None)
    assert (
        other.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == key.public_key().to_der()
    )


def test_public_key_round_trip(case_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = case_key
    public = key.public_key()
    pem, der = public.to_pem(), public.to_der()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    for data in (pem, der):
        loaded = load_public_key(data)
        assert loaded == public
        assert hash(loaded) == hash(public)
        assert loaded.description == case.description
        assert loaded.to_der() == der
        assert loaded.fingerprint() == public.fingerprint()


def test_fingerprint_is_hash_of_spki(case_key: tuple[KeyCase, PrivateKey]) -> None:
    _, key = case_key
    public = key.public_key()
    der = public.to_der()
    assert public.fingerprint() == hashlib.sha256(der).digest()
    assert public.fingerprint("sha384") == hashlib.sha384(der).digest()
    reloaded = load_private_key(key.to_pem(b"pw"), b"pw").public_key()
    assert reloaded.fingerprint() == hashlib.sha256(der).digest()


def test_public_key_of_other_key_differs(case_key: tuple[KeyCase, PrivateKey]) -> None:
    _, key = case_key
    other = generate_private_key("Ed25519").public_key()
    assert key.public_key() != other
    assert key.public_key() != key  # a private key is not its public key


# ----------------------------------------------------------------------------- signatures


def test_sign_and_verify_every_listed_scheme(signing_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = signing_key
    assert set(key.signature_schemes) == case.schemes
    public = load_public_key(key.public_key().to_pem())  # a verifier that only has the SPKI
    for scheme in key.signature_schemes:
        signature = key.sign(scheme, DATA)
        public.verify(scheme, signature, DATA)
        key.public_key().verify(int(scheme), signature, DATA)  # plain int code points too
        with pytest.raises(InvalidSignatureError):
            public.verify(scheme, signature, DATA + b"!")
        with pytest.raises(InvalidSignatureError):
            public.verify(scheme, signature, flip(DATA, 0))
        for index in (0, len(signature) // 2, len(signature) - 1):
            with pytest.raises(InvalidSignatureError):
                public.verify(scheme, flip(signature, index), DATA)
        with pytest.raises(InvalidSignatureError):
            public.verify(scheme, signature[:-1], DATA)


def test_signature_does_not_verify_under_another_key(
    signing_key: tuple[KeyCase, PrivateKey], rsa_key: PrivateKey
) -> None:
    case, key = signing_key
    other = case.generate() if case.algorithm != "RSA" else rsa_key
    scheme = key.signature_schemes[0]
    with pytest.raises(InvalidSignatureError):
        other.public_key().verify(scheme, key.sign(scheme, DATA), DATA)


@pytest.mark.parametrize("scheme", sorted(SCHEME_HASH), ids=lambda s: s.name)
def test_scheme_uses_the_right_hash_and_padding(
    scheme: SignatureScheme, rsa_key: PrivateKey
) -> None:
    """Check each ECDSA/RSA signature with pyca directly, hash and padding spelled out here."""
    if scheme.name.startswith("ecdsa"):
        curve = {
            S.ecdsa_secp256r1_sha256: "P-256",
            S.ecdsa_secp384r1_sha384: "P-384",
            S.ecdsa_secp521r1_sha512: "P-521",
        }[scheme]
        key = generate_private_key("EC", curve=curve)
    else:
        key = rsa_key
    signature = key.sign(scheme, DATA)
    pyca_public = serialization.load_der_public_key(key.public_key().to_der())
    hash_cls = SCHEME_HASH[scheme]

    def pyca_verify(hash_cls: type[hashes.HashAlgorithm]) -> None:
        """pyca's verify: returns nothing, raises InvalidSignature on a mismatch."""
        if scheme.name.startswith("ecdsa"):
            pyca_public.verify(signature, DATA, ec.ECDSA(hash_cls()))
        elif scheme.name.startswith("rsa_pkcs1"):
            pyca_public.verify(signature, DATA, padding.PKCS1v15(), hash_cls())
        else:
            pss = padding.PSS(padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
            pyca_public.verify(signature, DATA, pss, hash_cls())

    pyca_verify(hash_cls)  # the scheme's own hash and padding: accepted
    other = hashes.SHA384 if hash_cls is hashes.SHA256 else hashes.SHA256
    with pytest.raises(InvalidSignature):  # so the check above does tell hashes apart
        pyca_verify(other)


def test_default_signature_scheme_is_first_listed(case_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = case_key
    if not case.schemes:
        with pytest.raises(UnsupportedAlgorithmError):
            key.default_signature_scheme()
    else:
        assert key.default_signature_scheme() == key.signature_schemes[0]
        assert key.default_signature_scheme() in case.schemes


def test_rsa_prefers_pss(rsa_key: PrivateKey) -> None:
    assert rsa_key.default_signature_scheme() == S.rsa_pss_rsae_sha256


def test_key_refuses_schemes_of_other_families(case_key: tuple[KeyCase, PrivateKey]) -> None:
    case, key = case_key
    public = key.public_key()
    foreign = [s for s in SignatureScheme if s not in case.schemes]
    assert foreign
    for scheme in foreign:
        with pytest.raises(UnsupportedAlgorithmError):
            key.sign(scheme, DATA)
        with pytest.raises(UnsupportedAlgorithmError):
            public.verify(scheme, b"\x00" * 64, DATA)


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "scheme"),
    [
        ("EC", {"curve": "P-256"}, S.ecdsa_secp384r1_sha384),
        ("EC", {"curve": "P-384"}, S.ecdsa_secp256r1_sha256),
        ("Ed25519", {}, S.rsa_pss_rsae_sha256),
        ("Ed25519", {}, S.ed448),
        ("Ed448", {}, S.ed25519),
        ("ML-DSA-44", {}, S.mldsa65),
        ("ML-DSA-65", {}, S.ed25519),
    ],
)
def test_named_cross_family_refusals(
    algorithm: str, kwargs: dict[str, str], scheme: SignatureScheme
) -> None:
    key = generate_private_key(algorithm, **kwargs)
    with pytest.raises(UnsupportedAlgorithmError):
        key.sign(scheme, DATA)


def test_rsa_key_refuses_ecdsa_and_rsa_pss_pss(rsa_key: PrivateKey) -> None:
    for scheme in (S.ecdsa_secp256r1_sha256, S.rsa_pss_pss_sha256, S.ed25519, S.mldsa44):
        with pytest.raises(UnsupportedAlgorithmError):
            rsa_key.sign(scheme, DATA)


@pytest.mark.parametrize("code", [0x0000, 0x1234, 0xFFFF, 0x0402])
def test_unknown_scheme_code_is_unsupported(code: int) -> None:
    key = generate_private_key("Ed25519")
    with pytest.raises(UnsupportedAlgorithmError):
        key.sign(code, DATA)
    with pytest.raises(UnsupportedAlgorithmError):
        key.public_key().verify(code, b"\x00" * 64, DATA)


@pytest.mark.parametrize("case", NON_SIGNING_CASES, ids=lambda c: c.id)
def test_kem_and_ecdh_keys_do_not_sign(case: KeyCase) -> None:
    key = case.generate()
    assert key.signature_schemes == ()
    assert key.public_key().signature_schemes == ()
    assert not key.can_sign
    for scheme in (S.ed25519, S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256, S.mldsa65):
        with pytest.raises(UnsupportedAlgorithmError):
            key.sign(scheme, DATA)
    with pytest.raises(CryptoError):
        make_ca(key, "/CN=cannot sign")


# --------------------------------------------------------------------------------- RSA-PSS


def _pyca_rsa(key: PrivateKey):  # type: ignore[no-untyped-def]
    return serialization.load_der_private_key(key.to_der(), None)


@pytest.mark.parametrize(
    ("scheme", "hash_cls"),
    [
        (S.rsa_pss_rsae_sha256, hashes.SHA256),
        (S.rsa_pss_rsae_sha384, hashes.SHA384),
        (S.rsa_pss_rsae_sha512, hashes.SHA512),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_rsa_pss_salt_length_is_digest_length(
    rsa_key: PrivateKey, scheme: SignatureScheme, hash_cls: type[hashes.HashAlgorithm]
) -> None:
    signature = rsa_key.sign(scheme, DATA)
    assert len(signature) == 256
    pyca_public = serialization.load_der_public_key(rsa_key.public_key().to_der())
    # Verifies with the exact salt length RFC 8446 mandates...
    exact = padding.PSS(padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
    pyca_public.verify(signature, DATA, exact, hash_cls())
    # ...and not with another one.
    other = padding.PSS(padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size + 1)
    with pytest.raises(InvalidSignature):
        pyca_public.verify(signature, DATA, other, hash_cls())
    # quicnet's own verifier accepts it, and rejects it under any other RSA scheme.
    rsa_key.public_key().verify(scheme, signature, DATA)
    for wrong in RSA_SCHEMES - {scheme}:
        with pytest.raises(InvalidSignatureError):
            rsa_key.public_key().verify(wrong, signature, DATA)


def test_rsa_pss_verify_rejects_other_salt_lengths(rsa_key: PrivateKey) -> None:
    """A PSS signature with a maximal salt (valid PSS, wrong for TLS 1.3) must not verify."""
    pyca_key = _pyca_rsa(rsa_key)
    public = rsa_key.public_key()
    good = pyca_key.sign(
        DATA, padding.PSS(padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    public.verify(S.rsa_pss_rsae_sha256, good, DATA)
    for salt in (padding.PSS.MAX_LENGTH, 0, 20):
        odd = pyca_key.sign(
            DATA, padding.PSS(padding.MGF1(hashes.SHA256()), salt_length=salt), hashes.SHA256()
        )
        with pytest.raises(InvalidSignatureError):
            public.verify(S.rsa_pss_rsae_sha256, odd, DATA)


def test_rsa_pss_is_randomised_and_pkcs1_is_not(rsa_key: PrivateKey) -> None:
    assert rsa_key.sign(S.rsa_pss_rsae_sha256, DATA) != rsa_key.sign(S.rsa_pss_rsae_sha256, DATA)
    assert rsa_key.sign(S.rsa_pkcs1_sha256, DATA) == rsa_key.sign(S.rsa_pkcs1_sha256, DATA)


def test_pss_signature_does_not_pass_as_pkcs1(rsa_key: PrivateKey) -> None:
    signature = rsa_key.sign(S.rsa_pkcs1_sha256, DATA)
    with pytest.raises(InvalidSignatureError):
        rsa_key.public_key().verify(S.rsa_pss_rsae_sha256, signature, DATA)


# ---------------------------------------------------------------------------------- loading


@needs_openssl
def test_load_traditional_pkcs1_rsa_from_openssl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "rsa.pem"
    result = run_openssl("genrsa", "-traditional", "-out", path, "2048")
    assert result.returncode == 0, result.stderr
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    key = load_private_key(pem)
    assert key.description == "RSA 2048"
    pub = run_openssl("rsa", "-in", path, "-pubout", "-outform", "DER")
    assert pub.returncode == 0, pub.stderr
    assert key.public_key().to_der() == pub.stdout
    signature = key.sign(S.rsa_pss_rsae_sha256, DATA)
    load_public_key(pub.stdout).verify(S.rsa_pss_rsae_sha256, signature, DATA)


@needs_openssl
def test_load_sec1_ec_from_openssl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ec.pem"
    result = run_openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", path)
    assert result.returncode == 0, result.stderr
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = load_private_key(pem)
    assert key.description == "EC P-256"
    pub = run_openssl("ec", "-in", path, "-pubout", "-outform", "DER")
    assert pub.returncode == 0, pub.stderr
    assert key.public_key().to_der() == pub.stdout
    # SEC1 as DER too.
    der = run_openssl("ec", "-in", path, "-outform", "DER")
    assert der.returncode == 0, der.stderr
    assert load_private_key(der.stdout).public_key() == key.public_key()


@needs_openssl
def test_load_ec_key_after_ec_parameters_block(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``openssl ecparam -genkey`` without -noout writes EC PARAMETERS first."""
    result = run_openssl("ecparam", "-genkey", "-name", "secp384r1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"-----BEGIN EC PARAMETERS-----")
    assert load_private_key(result.stdout).description == "EC P-384"


@needs_openssl
def test_load_encrypted_traditional_pem_from_openssl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "ec.pem"
    assert (
        run_openssl("ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", plain).returncode
        == 0
    )
    enc = run_openssl("ec", "-in", plain, "-aes256", "-passout", "pass:sesame")
    assert enc.returncode == 0, enc.stderr
    assert b"Proc-Type: 4,ENCRYPTED" in enc.stdout
    key = load_private_key(enc.stdout, b"sesame")
    assert key.public_key() == load_private_key(plain.read_bytes()).public_key()
    with pytest.raises(CryptoError):  # random salt: see test_wrong_passphrase
        load_private_key(enc.stdout, b"open sesame")
    with pytest.raises(PassphraseError):
        load_private_key(enc.stdout)


@needs_openssl
def test_openssl_reads_our_encrypted_pkcs8(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = generate_private_key("EC", curve="P-384")
    path = tmp_path / "key.pem"
    path.write_bytes(key.to_pem(b"hunter2"))
    result = run_openssl(
        "pkey", "-in", path, "-passin", "pass:hunter2", "-pubout", "-outform", "DER"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == key.public_key().to_der()
    wrong = run_openssl("pkey", "-in", path, "-passin", "pass:hunter3", "-pubout")
    assert wrong.returncode != 0


def test_certificate_then_key_in_one_file() -> None:
    key = generate_private_key("EC")
    cert = make_ca(key, "/CN=bundle")
    bundle = b"some comment\n" + cert.to_pem() + b"\n" + key.to_pem()
    assert load_private_key(bundle).public_key() == key.public_key()
    encrypted = cert.to_pem() + key.to_pem(b"pw")
    assert load_private_key(encrypted, b"pw").public_key() == key.public_key()
    with pytest.raises(DecodeError):
        load_private_key(cert.to_pem())  # a certificate alone holds no key


def test_public_key_after_other_blocks() -> None:
    key = generate_private_key("Ed25519")
    data = key.to_pem() + key.public_key().to_pem()
    assert load_public_key(data) == key.public_key()
    with pytest.raises(DecodeError):
        load_public_key(key.to_pem())


def test_wrong_passphrase_fixed_key() -> None:
    key = load_private_key(FIXED_ENCRYPTED_KEY, FIXED_KEY_PASSPHRASE)
    assert key.description == "EC P-256"
    der = pem_unwrap(FIXED_ENCRYPTED_KEY)
    assert load_private_key(der, FIXED_KEY_PASSPHRASE).to_der() == key.to_der()
    for data in (FIXED_ENCRYPTED_KEY, der):
        with pytest.raises(PassphraseError):
            load_private_key(data, WRONG_PASSPHRASE_REJECTED_BY_PADDING)
        with pytest.raises(PassphraseError):
            load_private_key(data, FIXED_KEY_PASSPHRASE[:-1])


def test_wrong_passphrase_with_valid_padding_is_a_passphrase_error() -> None:
    with pytest.raises(PassphraseError):
        load_private_key(FIXED_ENCRYPTED_KEY, WRONG_PASSPHRASE_WITH_VALID_PADDING)


def test_wrong_passphrase(case_key: tuple[KeyCase, PrivateKey]) -> None:
    # Fresh encryptions have random salts, so about 1 wrong passphrase in 256 gets past the
    # padding check and comes out as DecodeError (the bug above); assert the common ground here.
    _, key = case_key
    for data in (key.to_pem(b"right"), key.to_der(b"right")):
        for wrong in (b"wrong", b"righ", b"right "):
            with pytest.raises(CryptoError):
                load_private_key(data, wrong)
        assert load_private_key(data, b"right").public_key() == key.public_key()


def test_missing_passphrase_for_encrypted_key() -> None:
    key = generate_private_key("Ed25519")
    for data in (key.to_pem(b"secret"), key.to_der(b"secret")):
        with pytest.raises(PassphraseError):
            load_private_key(data)
        with pytest.raises(PassphraseError):
            load_private_key(data, None)


def test_passphrase_for_plain_key_is_ignored() -> None:
    key = generate_private_key("EC")
    for data in (key.to_pem(), key.to_der()):
        assert load_private_key(data, b"unneeded").public_key() == key.public_key()


# -------------------------------------------------------------------------------- bad input


def _assert_only_crypto_errors(call, data: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        result = call(data)
    except CryptoError:
        return
    except Exception as exc:  # pragma: no cover - the failure this test exists to catch
        pytest.fail(f"{call.__name__} raised {type(exc).__module__}.{type(exc).__name__}: {exc}")
    # Whatever loads must be a usable key.
    assert isinstance(result, PrivateKey | PublicKey)
    assert result.description


def _loaders(password: bytes | None = None):  # type: ignore[no-untyped-def]
    def private(data: bytes) -> PrivateKey:
        return load_private_key(data, password)

    private.__name__ = f"load_private_key(password={password!r})"
    return (private, load_public_key)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_raise_only_crypto_errors(data: bytes) -> None:
    for loader in (*_loaders(), *_loaders(b"pw")):
        _assert_only_crypto_errors(loader, data)


@FUZZ
@given(
    label=st.sampled_from(
        ["PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY"]
    ),
    body=st.binary(max_size=400),
)
def test_random_pem_bodies_raise_only_crypto_errors(label: str, body: bytes) -> None:
    data = pem_wrap(label, body)
    for loader in (*_loaders(), *_loaders(b"pw")):
        _assert_only_crypto_errors(loader, data)


def test_random_bytes_are_decode_errors() -> None:
    for data in (b"", b"\x00", b"hello", b"-----BEGIN PRIVATE KEY-----\n", b"\x30\x03\x02\x01\x00"):
        with pytest.raises(DecodeError):
            load_private_key(data)
        with pytest.raises(DecodeError):
            load_public_key(data)


# Encodings to fuzz: one module-level key of each kind, encoded every way.
_FUZZ_KEYS = {
    "Ed25519": generate_private_key("Ed25519"),
    "EC": generate_private_key("EC", curve="P-384"),
    "X448": generate_private_key("X448"),
    "ML-DSA-44": generate_private_key("ML-DSA-44"),
    "ML-KEM-768": generate_private_key("ML-KEM-768"),
}


def _encodings(key: PrivateKey) -> dict[str, tuple[bytes, bytes | None]]:
    return {
        "der": (key.to_der(), None),
        "pem": (key.to_pem(), None),
        "enc-der": (key.to_der(b"pw"), b"pw"),
        "enc-pem": (key.to_pem(b"pw"), b"pw"),
    }


@pytest.mark.parametrize("name", sorted(_FUZZ_KEYS))
def test_every_truncation_of_a_key_raises_only_crypto_errors(name: str) -> None:
    key = _FUZZ_KEYS[name]
    for fmt, (data, password) in _encodings(key).items():
        step = max(1, len(data) // 150)
        for n in range(0, len(data) - 1, step):
            with pytest.raises(CryptoError):
                load_private_key(data[:n], password)
        assert load_private_key(data, password).public_key() == key.public_key(), fmt
    for data in (key.public_key().to_der(), key.public_key().to_pem()):
        for n in range(0, len(data) - 1, max(1, len(data) // 150)):
            with pytest.raises(CryptoError):
                load_public_key(data[:n])


def test_truncated_rsa_key_raises_only_crypto_errors(rsa_key: PrivateKey) -> None:
    blobs = [
        (load_private_key, rsa_key.to_der()),
        (load_private_key, rsa_key.to_pem()),
        (load_public_key, rsa_key.public_key().to_der()),
        (load_public_key, rsa_key.public_key().to_pem()),
    ]
    for loader, data in blobs:
        for n in range(0, len(data) - 1, max(1, len(data) // 60)):
            with pytest.raises(CryptoError):
                loader(data[:n])


@FUZZ
@given(data=st.data())
def test_truncations_sampled_raise_only_crypto_errors(data: st.DataObject) -> None:
    key = _FUZZ_KEYS[data.draw(st.sampled_from(sorted(_FUZZ_KEYS)))]
    blob, password = _encodings(key)[
        data.draw(st.sampled_from(["der", "pem", "enc-der", "enc-pem"]))
    ]
    n = data.draw(st.integers(0, len(blob) - 2))
    with pytest.raises(CryptoError):
        load_private_key(blob[:n], password)


def _corrupt(blob: bytes, index: int, value: int) -> bytes:
    out = bytearray(blob)
    out[index % len(out)] = value
    return bytes(out)


@FUZZ
@given(
    name=st.sampled_from(sorted(_FUZZ_KEYS)),
    pem=st.booleans(),
    index=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
def test_corrupted_public_keys_raise_only_crypto_errors(
    name: str, pem: bool, index: int, value: int
) -> None:
    public = _FUZZ_KEYS[name].public_key()
    blob = public.to_pem() if pem else public.to_der()
    _assert_only_crypto_errors(load_public_key, _corrupt(blob, index, value))


@FUZZ
@given(
    name=st.sampled_from(["EC", "ML-DSA-44", "ML-KEM-768"]),
    fmt=st.sampled_from(["der", "pem", "enc-der"]),
    index=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
def test_corrupted_private_keys_raise_only_crypto_errors(
    name: str, fmt: str, index: int, value: int
) -> None:
    blob, password = _encodings(_FUZZ_KEYS[name])[fmt]
    (private, _) = _loaders(password)
    _assert_only_crypto_errors(private, _corrupt(blob, index, value))


def test_corrupted_rsa_private_key_bytes_raise_only_crypto_errors(rsa_key: PrivateKey) -> None:
    # Loading an RSA key checks it (primality tests and all), so sample: the ASN.1 framing at
    # the start, then a spread of positions through the integers.
    blob = rsa_key.to_der()
    positions = [*range(0, 40, 3), *range(40, len(blob), len(blob) // 10)]
    for index in positions:
        _assert_only_crypto_errors(load_private_key, _corrupt(blob, index, blob[index] ^ 0x80))


# Byte 11 of an Ed25519/X25519/Ed448/X448 PKCS#8 is the last arc of the algorithm OID
# (1.3.101.110-113). Rewriting it names one of the sibling algorithms, whose key length differs.
_ARCS = {"X25519": 110, "X448": 111, "Ed25519": 112, "Ed448": 113}


@pytest.mark.parametrize(
    ("algorithm", "oid_arc"),
    # X25519 and Ed25519 keys are both 32 bytes: swapping their OIDs yields a valid key.
    [
        (a, arc)
        for a in _ARCS
        for b, arc in _ARCS.items()
        if b != a and {a, b} != {"X25519", "Ed25519"}
    ],
)
def test_pkcs8_with_a_sibling_curve_oid_is_a_crypto_error(algorithm: str, oid_arc: int) -> None:
    der = generate_private_key(algorithm).to_der()
    assert der[7:11] == bytes.fromhex("06032b65")  # OID 1.3.101.x
    with pytest.raises(CryptoError):
        load_private_key(_corrupt(der, 11, oid_arc))


@FUZZ
@given(
    name=st.sampled_from(["Ed25519", "X448"]),
    index=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
@example(name="Ed25519", index=11, value=0x6F)  # the X448 OID on an Ed25519 key
def test_corrupted_curve25519_family_private_keys_raise_only_crypto_errors(
    name: str, index: int, value: int
) -> None:
    blob = _FUZZ_KEYS[name].to_der()
    _assert_only_crypto_errors(load_private_key, _corrupt(blob, index, value))
