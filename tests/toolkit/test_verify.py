"""Tests for :func:`quicnet.crypto.verify_chain`: every typed failure, the paths that pass,
and a cross-check against ``openssl verify``."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import given
from hypothesis import strategies as st
from toolkit_helpers import (
    DAY,
    T0,
    UTC,
    Chain,
    build_chain,
    needs_openssl,
    new_key,
    pyca_private,
    run_openssl,
)

from quicnet.crypto import (
    BadCertificateSignature,
    Certificate,
    CertificateError,
    CertificateExpired,
    CertificateNotYetValid,
    ChainOrderError,
    CryptoError,
    NameMismatch,
    NotACA,
    PathTooLong,
    PrivateKey,
    UnknownIssuer,
    UnsuitableCertificate,
    UnsupportedCriticalExtension,
    issue_certificate,
    make_ca,
    make_csr,
    self_signed_certificate,
    verify_chain,
)
from quicnet.crypto.names import dns_name_matches, ip_address_or_none

AT = T0 + 10 * DAY  # inside every default validity window of build_chain()
SECOND = datetime.timedelta(seconds=1)


def verify(
    chain: Chain | Sequence[Certificate],
    roots: Sequence[Certificate] | None = None,
    **kw: object,
) -> list[Certificate]:
    """verify_chain at AT by default, with a Chain's own presented certificates and root."""
    if isinstance(chain, Chain):
        roots = [chain.root] if roots is None else roots
        chain = chain.presented
    assert roots is not None
    kw.setdefault("at", AT)
    return verify_chain(chain, roots, **kw)  # type: ignore[arg-type]


def path_of(chain: Chain) -> list[Certificate]:
    """The validated path verify_chain returns for a Chain: leaf, intermediate, root."""
    return [chain.leaf, chain.intermediate, chain.root]


def pyca_name(cert: Certificate) -> x509.Name:
    return x509.load_der_x509_certificate(cert.to_der()).subject


def raw_issue(
    issuer: Certificate,
    issuer_key: PrivateKey,
    subject_key: PrivateKey,
    subject: str,
    extensions: Sequence[tuple[x509.ExtensionType, bool]],
    *,
    start: datetime.datetime = T0,
    days: int = 90,
) -> Certificate:
    """A certificate built directly with pyca: for profiles quicnet's issuer will not make."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(pyca_name(issuer))
        .public_key(pyca_private(subject_key).public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + days * DAY)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    cert = builder.sign(pyca_private(issuer_key), hashes.SHA256())  # type: ignore[arg-type]
    return Certificate.from_der(cert.public_bytes(serialization.Encoding.DER))


def ku(*, sign: bool = True, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def leaf_extensions(*names: str) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (ku(), True),
        (x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False),
    ]


def ca_extensions(path_length: int | None = None) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=True, path_length=path_length), True),
        (ku(cert_sign=True), True),
    ]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


# ------------------------------------------------------------------------------- passing


def test_valid_chain_returns_path_leaf_to_root(chain: Chain) -> None:
    path = verify(chain, name="a.example.com")
    assert path == [chain.leaf, chain.intermediate, chain.root]
    assert path[0].subject == "CN=a.example.com"
    assert path[-1].is_self_issued


def test_name_is_optional(chain: Chain) -> None:
    assert verify(chain) == [chain.leaf, chain.intermediate, chain.root]


def test_validation_at_explicit_times(chain: Chain) -> None:
    leaf = chain.leaf
    assert verify(chain, at=leaf.not_before) == path_of(chain)
    assert verify(chain, at=leaf.not_after) == path_of(chain)
    with pytest.raises(CertificateExpired):
        verify(chain, at=leaf.not_after + SECOND)
    with pytest.raises(CertificateNotYetValid):
        verify(chain, at=leaf.not_before - SECOND)


def test_default_time_is_now() -> None:
    fresh = build_chain(start=datetime.datetime.now(UTC) - DAY)
    assert verify_chain(fresh.presented, [fresh.root], name="a.example.com") == path_of(fresh)
    old = build_chain(start=T0, leaf_days=30)  # expired long ago
    with pytest.raises(CertificateExpired):
        verify_chain(old.presented, [old.root], name="a.example.com")


@pytest.mark.parametrize(
    "name",
    ["192.0.2.7", "2001:db8::7", "[2001:db8::7]", "2001:0db8:0000:0000:0000:0000:0000:0007"],
)
def test_ip_names(chain: Chain, name: str) -> None:
    assert verify(chain, name=name) == path_of(chain)


@pytest.mark.parametrize("name", ["A.EXAMPLE.COM", "a.example.com."])
def test_dns_names_are_case_and_dot_insensitive(chain: Chain, name: str) -> None:
    assert verify(chain, name=name) == path_of(chain)


def test_intermediates_in_any_order() -> None:
    root_key, k1, k2, leaf_key = new_key(), new_key(), new_key(), new_key()
    root = make_ca(root_key, "/CN=Order Root", not_before=T0)
    int1 = issue_certificate(
        make_csr(k1, "/CN=Order Int 1"), root, root_key, is_ca=True, not_before=T0
    )
    int2 = issue_certificate(make_csr(k2, "/CN=Order Int 2"), int1, k1, is_ca=True, not_before=T0)
    leaf = issue_certificate(
        make_csr(leaf_key, "/CN=o.example", names=["o.example"]), int2, k2, not_before=T0
    )
    expected = [leaf, int2, int1, root]
    assert verify([leaf, int2, int1], [root], name="o.example") == expected
    assert verify([leaf, int1, int2], [root], name="o.example") == expected
    assert verify([leaf, int1, int2, root], [root], name="o.example") == expected


def test_unrelated_certificates_are_ignored(chain: Chain) -> None:
    other = build_chain(prefix="Other ")
    noise = [other.leaf, other.intermediate, other.root, make_ca(new_key(), "/CN=Stray")]
    presented = [chain.leaf, noise[0], noise[3], chain.intermediate, noise[1], noise[2]]
    assert verify(presented, [chain.root]) == [chain.leaf, chain.intermediate, chain.root]
    # Several trust roots: the right one is picked.
    assert verify(chain, [other.root, noise[3], chain.root]) == [
        chain.leaf,
        chain.intermediate,
        chain.root,
    ]


def test_root_sent_in_the_chain(chain: Chain) -> None:
    presented = [chain.leaf, chain.intermediate, chain.root]
    assert verify(presented, [chain.root]) == presented


def test_intermediate_as_trust_anchor(chain: Chain) -> None:
    assert verify([chain.leaf], [chain.intermediate]) == [chain.leaf, chain.intermediate]


def test_pinned_self_signed_leaf() -> None:
    key = new_key()
    leaf = self_signed_certificate(
        key, "/CN=pinned", names=["pinned.example", "::1"], not_before=T0, days=30
    )
    assert verify([leaf], [leaf], name="pinned.example") == [leaf]
    assert verify([leaf], [leaf], name="::1") == [leaf]
    with pytest.raises(NameMismatch):
        verify([leaf], [leaf], name="other.example")
    with pytest.raises(CertificateExpired):
        verify([leaf], [leaf], at=T0 + 31 * DAY)


def test_pinned_ca_issued_leaf(chain: Chain) -> None:
    assert verify([chain.leaf], [chain.leaf], name="a.example.com") == [chain.leaf]


def test_client_purpose(chain: Chain) -> None:
    # quicnet's leaves carry serverAuth and clientAuth.
    for purpose in ("server", "client", "any"):
        assert verify(chain, purpose=purpose) == path_of(chain)


# --------------------------------------------------------------------------- time errors


def test_leaf_expired(chain: Chain) -> None:
    with pytest.raises(CertificateExpired, match=r"a\.example\.com"):
        verify(chain, at=T0 + 91 * DAY)


def test_leaf_not_yet_valid() -> None:
    c = build_chain(leaf_start=T0 + 20 * DAY)
    with pytest.raises(CertificateNotYetValid, match=r"a\.example\.com"):
        verify(c, at=T0 + 10 * DAY)
    assert verify(c, at=T0 + 21 * DAY) == path_of(c)
    with pytest.raises(CertificateNotYetValid):
        verify(build_chain(), at=T0 - DAY)


def _reissued_intermediate(c: Chain, *, days: int, start: datetime.datetime = T0) -> Certificate:
    """Another certificate for the same intermediate name and key (a renewal or an old copy)."""
    csr = make_csr(c.intermediate_key, "/O=Toolkit Tests/CN=Intermediate")
    return issue_certificate(
        csr, c.root, c.root_key, is_ca=True, path_length=0, days=days, not_before=start
    )


def test_intermediate_expired(chain: Chain) -> None:
    stale = _reissued_intermediate(chain, days=5)
    assert verify(chain) == path_of(chain)  # the current intermediate is fine at AT ...
    with pytest.raises(CertificateExpired, match="Intermediate"):  # ... the stale copy is not
        verify([chain.leaf, stale], [chain.root])


def test_intermediate_not_yet_valid(chain: Chain) -> None:
    future = _reissued_intermediate(chain, days=30, start=T0 + 20 * DAY)
    with pytest.raises(CertificateNotYetValid, match="Intermediate"):
        verify([chain.leaf, future], [chain.root])


def test_root_expired(chain: Chain) -> None:
    old_root = make_ca(chain.root_key, "/O=Toolkit Tests/CN=Root", not_before=T0, days=5)
    with pytest.raises(CertificateExpired, match="Root"):
        verify(chain, [old_root])


def test_stale_intermediate_copy_before_the_current_one(chain: Chain) -> None:
    stale = _reissued_intermediate(chain, days=5)
    # The stale copy is passed over for the current one, whatever the order.
    assert verify([chain.leaf, chain.intermediate, stale], [chain.root]) == path_of(chain)
    assert verify([chain.leaf, stale, chain.intermediate], [chain.root]) == path_of(chain)


# --------------------------------------------------------------------------------- names


def test_dns_name_mismatch(chain: Chain) -> None:
    for name in ("b.example.com", "example.com", "a.example.co", "xa.example.com"):
        with pytest.raises(NameMismatch):
            verify(chain, name=name)


@pytest.mark.parametrize("name", ["192.0.2.8", "2001:db8::8", "::1", "127.0.0.1"])
def test_ip_mismatch(chain: Chain, name: str) -> None:
    with pytest.raises(NameMismatch):
        verify(chain, name=name)


def test_ip_name_does_not_match_dns_entries() -> None:
    # A DNS SAN entry never satisfies an IP address, even one spelled like it.
    c = build_chain(names=["a.example.com", "10.0.0.1"])
    assert verify(c, name="10.0.0.1") == path_of(c)
    with pytest.raises(NameMismatch):
        verify(c, name="10.0.0.2")


def test_wildcard_rules() -> None:
    c = build_chain(names=["*.example.com"])
    for ok in ("a.example.com", "WWW.EXAMPLE.COM", "x-y.example.com"):
        assert verify(c, name=ok) == path_of(c)
    for bad in ("example.com", "a.b.example.com", "a.example.org", "aexample.com", ".example.com"):
        with pytest.raises(NameMismatch):
            verify(c, name=bad)


def test_no_common_name_fallback() -> None:
    c = build_chain(names=[])
    assert c.leaf.subject == "CN=leaf"
    assert c.leaf.dns_names == [] and c.leaf.ip_addresses == []
    assert verify(c) == path_of(c)  # fine without a name...
    with pytest.raises(NameMismatch):  # ...but the CN is never used as a name
        verify(c, name="leaf")
    key = new_key()
    cn_only = self_signed_certificate(key, "/CN=cn-only.example", not_before=T0)
    with pytest.raises(NameMismatch):
        verify([cn_only], [cn_only], name="cn-only.example")


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("example.com", "example.com", True),
        ("Example.COM", "example.com.", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "A.EXAMPLE.COM", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.com", "example.com", False),  # never a bare top-level suffix
        ("a*.example.com", "ab.example.com", False),  # partial-label wildcards are not honoured
        ("*.*.example.com", "a.b.example.com", False),
        ("a.*.example.com", "a.b.example.com", False),
        ("example.com", "www.example.com", False),
    ],
)
def test_dns_name_matches(pattern: str, host: str, expected: bool) -> None:
    assert dns_name_matches(pattern, host) is expected


# ------------------------------------------------------------------------ issuer errors


def test_root_missing(chain: Chain) -> None:
    other = build_chain(prefix="Other ")
    with pytest.raises(UnknownIssuer):
        verify(chain, [other.root])
    with pytest.raises(UnknownIssuer):
        verify(chain, [])
    with pytest.raises(UnknownIssuer):  # intermediate not sent
        verify([chain.leaf], [chain.root])


def test_self_signed_leaf_not_trusted(chain: Chain) -> None:
    leaf = self_signed_certificate(new_key(), "/CN=self", names=["self.example"], not_before=T0)
    with pytest.raises(UnknownIssuer, match="self-signed"):
        verify([leaf], [chain.root], name="self.example")


def ski_of(cert: Certificate) -> bytes:
    ext = x509.load_der_x509_certificate(cert.to_der()).extensions
    return ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def forge_ca(
    name: x509.Name,
    *,
    issuer_name: x509.Name,
    signer: PrivateKey,
    key: PrivateKey,
    ski: bytes | None,
) -> Certificate:
    """A CA certificate for ``key`` under a borrowed ``name``, optionally claiming a borrowed SKI."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(pyca_private(key).public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + 3650 * DAY)
    )
    for ext, critical in ca_extensions():
        builder = builder.add_extension(ext, critical=critical)
    if ski is not None:
        builder = builder.add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
    cert = builder.sign(pyca_private(signer), hashes.SHA256())  # type: ignore[arg-type]
    return Certificate.from_der(cert.public_bytes(serialization.Encoding.DER))


def test_forged_intermediate(chain: Chain) -> None:
    """Same subject as the real intermediate, another key: the leaf's signature must fail."""
    name, root_name = pyca_name(chain.intermediate), pyca_name(chain.root)
    forger = new_key()
    # A forger copying the real intermediate's key identifier, or leaving it out.
    for ski in (ski_of(chain.intermediate), None):
        forged = forge_ca(name, issuer_name=root_name, signer=chain.root_key, key=forger, ski=ski)
        assert forged.subject == chain.intermediate.subject
        assert chain.root.issued(forged) and not forged.issued(chain.leaf)
        with pytest.raises(BadCertificateSignature):
            verify([chain.leaf, forged], [chain.root])
    # Self-signed under the same name, with the borrowed key identifier.
    self_forged = forge_ca(
        name, issuer_name=name, signer=forger, key=forger, ski=ski_of(chain.intermediate)
    )
    with pytest.raises(BadCertificateSignature):
        verify([chain.leaf, self_forged], [chain.root])


def test_same_name_other_ca_is_rejected(chain: Chain) -> None:
    """A genuinely different CA that happens to share the name (its own SKI) cannot issue it."""
    other = issue_certificate(
        make_csr(new_key(), "/O=Toolkit Tests/CN=Intermediate"),
        chain.root,
        chain.root_key,
        is_ca=True,
        not_before=T0,
    )
    assert other.subject == chain.intermediate.subject
    with pytest.raises((UnknownIssuer, BadCertificateSignature)):
        verify([chain.leaf, other], [chain.root])
    # Alongside the real intermediate, the right one is found whatever the order.
    for presented in (
        [chain.leaf, other, chain.intermediate],
        [chain.leaf, chain.intermediate, other],
    ):
        assert verify(presented, [chain.root]) == [chain.leaf, chain.intermediate, chain.root]


def test_forged_root(chain: Chain) -> None:
    name = pyca_name(chain.root)
    forger = new_key()
    impostor = forge_ca(name, issuer_name=name, signer=forger, key=forger, ski=ski_of(chain.root))
    assert impostor.subject == chain.root.subject
    with pytest.raises(BadCertificateSignature):
        verify(chain, [impostor])
    # A same-named root with its own key identifier is simply not the issuer.
    stranger = make_ca(new_key(), "/O=Toolkit Tests/CN=Root", not_before=T0)
    with pytest.raises((UnknownIssuer, BadCertificateSignature)):
        verify(chain, [stranger])
    # With an impostor and the real root both trusted, the real one is found.
    assert verify(chain, [impostor, stranger, chain.root])[-1] == chain.root


def test_leaf_issued_by_non_ca_intermediate(chain: Chain) -> None:
    not_ca_key = new_key()
    not_ca = issue_certificate(
        make_csr(not_ca_key, "/CN=Not A CA"), chain.root, chain.root_key, is_ca=False, not_before=T0
    )
    assert not not_ca.is_ca
    # quicnet's issuer refuses; build the bad leaf with pyca directly.
    with pytest.raises(CryptoError):
        issue_certificate(make_csr(new_key(), "/CN=x"), not_ca, not_ca_key)
    leaf = raw_issue(not_ca, not_ca_key, new_key(), "bad.example", leaf_extensions("bad.example"))
    assert not_ca.issued(leaf)
    with pytest.raises(NotACA):
        verify([leaf, not_ca], [chain.root], name="bad.example")


def test_leaf_issued_by_self_signed_non_ca_root() -> None:
    key = new_key()
    root = self_signed_certificate(key, "/CN=Plain Root", is_ca=False, not_before=T0)
    leaf = raw_issue(root, key, new_key(), "p.example", leaf_extensions("p.example"))
    with pytest.raises(NotACA):
        verify([leaf], [root], name="p.example")


def test_ca_without_key_cert_sign(chain: Chain) -> None:
    key = new_key()
    no_sign = raw_issue(
        chain.root,
        chain.root_key,
        key,
        "No CertSign CA",
        [(x509.BasicConstraints(ca=True, path_length=None), True), (ku(cert_sign=False), True)],
    )
    leaf = issue_certificate(
        make_csr(new_key(), "/CN=n.example", names=["n.example"]), no_sign, key, not_before=T0
    )
    with pytest.raises(UnsuitableCertificate, match="keyCertSign"):
        verify([leaf, no_sign], [chain.root])


# ---------------------------------------------------------------------------- path length


def _ladder(root_path_length: int | None, depth: int, int_path_length: int | None = None):  # type: ignore[no-untyped-def]
    """root -> depth intermediates -> leaf; returns (presented chain, root)."""
    root_key = new_key()
    root = make_ca(root_key, "/CN=Ladder Root", path_length=root_path_length, not_before=T0)
    issuer, issuer_key, presented = root, root_key, []
    for i in range(depth):
        key = new_key()
        inter = issue_certificate(
            make_csr(key, f"/CN=Ladder Int {i}"),
            issuer,
            issuer_key,
            is_ca=True,
            path_length=int_path_length if i == 0 else None,
            not_before=T0,
        )
        presented.insert(0, inter)
        issuer, issuer_key = inter, key
    leaf = issue_certificate(
        make_csr(new_key(), "/CN=l.example", names=["l.example"]), issuer, issuer_key, not_before=T0
    )
    return [leaf, *presented], root


@pytest.mark.parametrize(
    ("root_path_length", "depth", "ok"),
    [
        (0, 0, True),
        (0, 1, False),
        (0, 2, False),
        (1, 1, True),
        (1, 2, False),
        (2, 2, True),
        (None, 3, True),
    ],
)
def test_root_path_length(root_path_length: int | None, depth: int, ok: bool) -> None:
    presented, root = _ladder(root_path_length, depth)
    if ok:
        assert len(verify(presented, [root])) == depth + 2
    else:
        with pytest.raises(PathTooLong):
            verify(presented, [root])


def test_intermediate_path_length() -> None:
    presented, root = _ladder(None, 2, int_path_length=0)  # Int 0 (pathlen 0) issued Int 1
    with pytest.raises(PathTooLong, match="Ladder Int 0"):
        verify(presented, [root])
    presented, root = _ladder(None, 2, int_path_length=1)
    assert verify(presented, [root]) == [*presented, root]


def test_depth_limit() -> None:
    presented, root = _ladder(None, 8)
    assert len(verify(presented, [root])) == 10
    presented, root = _ladder(None, 12)
    with pytest.raises(PathTooLong):
        verify(presented, [root])


# --------------------------------------------------------------------------- extensions


UNKNOWN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.55555.7.1")


@pytest.mark.parametrize("critical", [True, False])
def test_unknown_extension_on_leaf(chain: Chain, critical: bool) -> None:
    exts = [
        *leaf_extensions("u.example"),
        (x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), critical),
    ]
    leaf = raw_issue(chain.intermediate, chain.intermediate_key, new_key(), "u.example", exts)
    assert (UNKNOWN_OID in leaf.critical_extension_oids()) is critical
    if critical:
        for _ in range(2):  # the critical OIDs are parsed once; the check runs every time
            with pytest.raises(UnsupportedCriticalExtension, match=UNKNOWN_OID.dotted_string):
                verify([leaf, chain.intermediate], [chain.root], name="u.example")
    else:
        path = verify([leaf, chain.intermediate], [chain.root], name="u.example")
        assert path == [leaf, chain.intermediate, chain.root]


def test_unknown_critical_extension_on_intermediate(chain: Chain) -> None:
    key = new_key()
    inter = raw_issue(
        chain.root,
        chain.root_key,
        key,
        "Odd Intermediate",
        [*ca_extensions(), (x509.UnrecognizedExtension(UNKNOWN_OID, b"\x05\x00"), True)],
    )
    leaf = issue_certificate(
        make_csr(new_key(), "/CN=o.example", names=["o.example"]), inter, key, not_before=T0
    )
    with pytest.raises(UnsupportedCriticalExtension):
        verify([leaf, inter], [chain.root])


def test_client_only_leaf_is_unsuitable_for_a_server(chain: Chain) -> None:
    exts = [
        *leaf_extensions("c.example"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
    ]
    leaf = raw_issue(chain.intermediate, chain.intermediate_key, new_key(), "c.example", exts)
    presented = [leaf, chain.intermediate]
    with pytest.raises(UnsuitableCertificate):
        verify(presented, [chain.root], purpose="server")
    assert verify(presented, [chain.root], purpose="client") == [*presented, chain.root]
    assert verify(presented, [chain.root], purpose="any") == [*presented, chain.root]


def test_server_only_leaf_is_unsuitable_for_a_client(chain: Chain) -> None:
    exts = [
        *leaf_extensions("s.example"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ]
    leaf = raw_issue(chain.intermediate, chain.intermediate_key, new_key(), "s.example", exts)
    with pytest.raises(UnsuitableCertificate):
        verify([leaf, chain.intermediate], [chain.root], purpose="client")
    path = verify([leaf, chain.intermediate], [chain.root], purpose="server")
    assert path == [leaf, chain.intermediate, chain.root]


def test_any_eku_and_missing_eku_are_accepted(chain: Chain) -> None:
    any_eku = [
        *leaf_extensions("x.example"),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]), False),
    ]
    for exts in (any_eku, leaf_extensions("x.example")):
        leaf = raw_issue(chain.intermediate, chain.intermediate_key, new_key(), "x.example", exts)
        expected = [leaf, chain.intermediate, chain.root]
        assert verify([leaf, chain.intermediate], [chain.root], purpose="server") == expected
        assert verify([leaf, chain.intermediate], [chain.root], purpose="client") == expected


def test_leaf_without_digital_signature(chain: Chain) -> None:
    exts = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (ku(sign=False, cert_sign=False), True),
        (x509.SubjectAlternativeName([x509.DNSName("k.example")]), False),
    ]
    leaf = raw_issue(chain.intermediate, chain.intermediate_key, new_key(), "k.example", exts)
    with pytest.raises(UnsuitableCertificate, match="digitalSignature"):
        verify([leaf, chain.intermediate], [chain.root], purpose="any")


# ---------------------------------------------------------------------- name constraints


def _constrained(
    chain: Chain,
    permitted: list[x509.GeneralName] | None,
    excluded: list[x509.GeneralName] | None = None,
) -> tuple[Certificate, PrivateKey]:
    key = new_key()
    inter = raw_issue(
        chain.root,
        chain.root_key,
        key,
        "Constrained CA",
        [*ca_extensions(), (x509.NameConstraints(permitted, excluded), True)],
    )
    return inter, key


def _leaf_under(inter: Certificate, key: PrivateKey, *names: str) -> Certificate:
    return issue_certificate(
        make_csr(new_key(), f"/CN={names[0]}", names=names), inter, key, not_before=T0
    )


def _assert_constraint_violation(presented: list[Certificate], root: Certificate) -> None:
    with pytest.raises(CertificateError, match="name constraints") as info:
        verify(presented, [root])
    assert type(info.value) is CertificateError


def test_permitted_dns_subtree(chain: Chain) -> None:
    inter, key = _constrained(chain, [x509.DNSName("example.com")])
    for ok in ("example.com", "a.example.com", "a.b.example.com"):
        leaf = _leaf_under(inter, key, ok)
        assert verify([leaf, inter], [chain.root], name=ok) == [leaf, inter, chain.root]
    for bad in ("other.org", "evilexample.com", "example.com.evil.org"):
        _assert_constraint_violation([_leaf_under(inter, key, bad), inter], chain.root)
    # One name outside the subtree is enough to fail.
    _assert_constraint_violation(
        [_leaf_under(inter, key, "a.example.com", "a.other.org"), inter], chain.root
    )


def test_excluded_dns_subtree(chain: Chain) -> None:
    inter, key = _constrained(chain, None, [x509.DNSName("secret.example.com")])
    public = _leaf_under(inter, key, "public.example.com")
    assert verify([public, inter], [chain.root]) == [public, inter, chain.root]
    _assert_constraint_violation(
        [_leaf_under(inter, key, "x.secret.example.com"), inter], chain.root
    )
    _assert_constraint_violation([_leaf_under(inter, key, "secret.example.com"), inter], chain.root)


def test_permitted_ip_subtree(chain: Chain) -> None:
    inter, key = _constrained(
        chain,
        [
            x509.IPAddress(ipaddress.ip_network("10.0.0.0/8")),
            x509.IPAddress(ipaddress.ip_network("2001:db8::/32")),
        ],
    )
    for name in ("10.1.2.3", "2001:db8::5"):
        leaf = _leaf_under(inter, key, name)
        assert verify([leaf, inter], [chain.root], name=name) == [leaf, inter, chain.root]
    _assert_constraint_violation([_leaf_under(inter, key, "192.168.1.1"), inter], chain.root)
    _assert_constraint_violation([_leaf_under(inter, key, "2001:db9::1"), inter], chain.root)
    # Only IP subtrees are given, so DNS names are unconstrained.
    dns_leaf = _leaf_under(inter, key, "anything.example")
    assert verify([dns_leaf, inter], [chain.root]) == [dns_leaf, inter, chain.root]


def test_root_name_constraints_apply_to_intermediates(chain: Chain) -> None:
    """A constraint on a CA covers every certificate below it, not just the next one."""
    root_key = new_key()
    builder_root = make_ca(root_key, "/CN=Unconstrained Root", not_before=T0)
    c_int, c_key = _constrained(
        Chain(builder_root, root_key, builder_root, root_key, builder_root, root_key),
        [x509.DNSName("example.com")],
    )
    sub_key = new_key()
    sub = issue_certificate(
        make_csr(sub_key, "/CN=Sub CA"), c_int, c_key, is_ca=True, not_before=T0
    )
    bad_leaf = _leaf_under(sub, sub_key, "www.other.org")
    _assert_constraint_violation([bad_leaf, sub, c_int], builder_root)
    good_leaf = _leaf_under(sub, sub_key, "www.example.com")
    assert verify([good_leaf, sub, c_int], [builder_root]) == [good_leaf, sub, c_int, builder_root]


# ---------------------------------------------------------------------- malformed input


def test_empty_chain() -> None:
    with pytest.raises(CertificateError):
        verify_chain([], [])


def test_duplicate_extension_in_presented_leaf(chain: Chain) -> None:
    der = chain.leaf.to_der()
    ski = b"\x06\x03\x55\x1d\x0e"  # subjectKeyIdentifier -> a second keyUsage
    assert der.count(ski) == 1
    with pytest.raises(CryptoError):
        bad = Certificate.from_der(der.replace(ski, b"\x06\x03\x55\x1d\x0f"))
        verify([bad, chain.intermediate], [chain.root])


def test_malformed_issuer_name_in_presented_leaf(chain: Chain) -> None:
    der = chain.leaf.to_der()
    # The issuer Name is the first "Intermediate" string; retag its UTF8String as BOOLEAN.
    i = der.index(b"\x0c\x0cIntermediate")
    with pytest.raises(CryptoError):
        bad = Certificate.from_der(der[:i] + b"\x01" + der[i + 1 :])
        verify([bad, chain.intermediate], [chain.root])


# ----------------------------------------------------------------------------- alerts


@pytest.mark.parametrize(
    ("error", "alert"),
    [
        (CertificateError, 42),
        (CertificateExpired, 45),
        (CertificateNotYetValid, 45),
        (NameMismatch, 42),
        (UnknownIssuer, 48),
        (BadCertificateSignature, 42),
        (NotACA, 42),
        (PathTooLong, 42),
        (UnsupportedCriticalExtension, 43),
        (UnsuitableCertificate, 43),
        (ChainOrderError, 42),
    ],
)
def test_alerts(error: type[CertificateError], alert: int) -> None:
    assert issubclass(error, CertificateError)
    assert issubclass(error, CryptoError)
    assert error.alert == alert
    assert error("x").alert == alert


def test_raised_errors_carry_their_alert(chain: Chain) -> None:
    with pytest.raises(CertificateExpired) as expired:
        verify(chain, at=T0 + 400 * DAY)
    assert expired.value.alert == 45
    with pytest.raises(UnknownIssuer) as unknown:
        verify(chain, [])
    assert unknown.value.alert == 48


# ----------------------------------------------------------------------------- openssl


def _openssl_verify(tmp_path, c: Chain, at: datetime.datetime):  # type: ignore[no-untyped-def]
    (tmp_path / "root.pem").write_bytes(c.root.to_pem())
    (tmp_path / "int.pem").write_bytes(c.intermediate.to_pem())
    (tmp_path / "leaf.pem").write_bytes(c.leaf.to_pem())
    return run_openssl(
        "verify",
        "-CAfile",
        tmp_path / "root.pem",
        "-untrusted",
        tmp_path / "int.pem",
        "-attime",
        str(int(at.timestamp())),
        "-purpose",
        "sslserver",
        tmp_path / "leaf.pem",
    )


@needs_openssl
def test_openssl_agrees_on_a_good_chain(tmp_path, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    result = _openssl_verify(tmp_path, chain, AT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert b"leaf.pem: OK" in result.stdout
    assert verify(chain, name="a.example.com") == path_of(chain)


@needs_openssl
def test_openssl_agrees_on_an_expired_chain(tmp_path, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    at = T0 + 100 * DAY
    result = _openssl_verify(tmp_path, chain, at)
    assert result.returncode != 0
    assert b"certificate has expired" in result.stdout + result.stderr
    with pytest.raises(CertificateExpired):
        verify(chain, at=at)


@needs_openssl
def test_openssl_agrees_on_a_not_yet_valid_chain(tmp_path, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    at = T0 - DAY
    result = _openssl_verify(tmp_path, chain, at)
    assert result.returncode != 0
    assert b"not yet valid" in result.stdout + result.stderr
    with pytest.raises(CertificateNotYetValid):
        verify(chain, at=at)


def test_parsed_certificates_are_reused_but_verified_every_time(chain: Chain) -> None:
    """Certificate.from_der hands back the certificate it parsed from the same bytes (what a
    client meets on every handshake), and verify_chain still checks it every time: after a
    chain verified once, the same parsed leaf fails against a forged root, a wrong name and
    a time outside its validity, then passes again."""
    leaf = Certificate.from_der(chain.leaf.to_der())
    assert Certificate.from_der(bytes(bytearray(chain.leaf.to_der()))) is leaf  # equal bytes
    presented = [leaf, Certificate.from_der(chain.intermediate.to_der())]
    assert verify(presented, [chain.root], name="a.example.com")[0] is leaf
    name = pyca_name(chain.root)
    forger = new_key()
    impostor = forge_ca(name, issuer_name=name, signer=forger, key=forger, ski=ski_of(chain.root))
    with pytest.raises(BadCertificateSignature):
        verify(presented, [impostor])
    with pytest.raises(NameMismatch):
        verify(presented, [chain.root], name="b.example.org")
    with pytest.raises(CertificateExpired):
        verify(presented, [chain.root], at=leaf.not_after + SECOND)
    assert verify(presented, [chain.root], name="a.example.com")[-1] == chain.root


def test_a_bad_der_is_rejected_every_time() -> None:
    """Only parses that succeed are remembered: the same malformed bytes fail each time."""
    for _ in range(2):
        with pytest.raises(CryptoError):
            Certificate.from_der(b"\x30\x03\x02\x01\x00")


def _reference_ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "name",
    [
        "localhost", "a.example.com", "192.0.2.1", "::1", "2001:db8::1", "fe80::1%eth0",
        "1.2.3", "1.2.3.4.5", "01.2.3.4", "256.1.1.1", "", ".", "...", "1234", "\u0661.\u0662.\u0663.\u0664",
        "::ffff:192.0.2.1", "1.2.3.4 ", "example.com:443",
    ],
)  # fmt: skip
def test_ip_address_or_none_agrees_with_ipaddress(name: str) -> None:
    """The shortcut for names that cannot be addresses answers what ipaddress does."""
    assert ip_address_or_none(name) == _reference_ip(name)


@given(st.text(alphabet="0123456789abcdef.:%[]xyz ", max_size=45))
def test_ip_address_or_none_agrees_with_ipaddress_on_any_text(name: str) -> None:
    assert ip_address_or_none(name) == _reference_ip(name)
