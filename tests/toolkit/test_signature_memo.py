"""The memo of signature checks behind :meth:`Certificate.issued`: a pair that passed is
remembered by its exact DER bytes, and nothing else about the chain is.

The tests look at the memo itself (``certs._SIGNED``), on a fresh one each, since what it
holds is the claim: only successes, only the exact bytes, never more than its bound.
"""

from __future__ import annotations

import datetime

import pytest
from toolkit_helpers import DAY, T0, Chain, build_chain, new_key

from quicnet.crypto import (
    BadCertificateSignature,
    Certificate,
    CertificateExpired,
    CertificateNotYetValid,
    CertificateRevoked,
    NameMismatch,
    Revocation,
    RevocationReason,
    UnknownIssuer,
    issue_certificate,
    make_ca,
    make_crl,
    make_csr,
    verify_chain,
)
from quicnet.crypto import certs as certs_module

AT = T0 + 10 * DAY
SECOND = datetime.timedelta(seconds=1)


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> set[tuple[bytes, bytes]]:
    """A fresh, empty memo for one test (the process-wide one is left as it was)."""
    fresh: set[tuple[bytes, bytes]] = set()
    monkeypatch.setattr(certs_module, "_SIGNED", fresh)
    return fresh


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


def _path(chain: Chain) -> list[Certificate]:
    return [chain.leaf, chain.intermediate, chain.root]


def _pairs(chain: Chain) -> set[tuple[bytes, bytes]]:
    return {
        (chain.leaf.to_der(), chain.intermediate.to_der()),
        (chain.intermediate.to_der(), chain.root.to_der()),
    }


def test_a_verified_chain_leaves_its_signatures_and_nothing_else(
    chain: Chain, memo: set[tuple[bytes, bytes]]
) -> None:
    assert verify_chain(chain.presented, [chain.root], name="a.example.com", at=AT) == _path(chain)
    assert memo == _pairs(chain)
    # Verifying again finds both and adds nothing.
    assert verify_chain(chain.presented, [chain.root], name="a.example.com", at=AT) == _path(chain)
    assert memo == _pairs(chain)


def test_remembered_signatures_still_fail_every_other_check(
    chain: Chain, memo: set[tuple[bytes, bytes]]
) -> None:
    """With both signatures remembered, the same chain still fails on time, name,
    revocation and trust, each time it is asked, and passes again after."""
    assert verify_chain(chain.presented, [chain.root], name="a.example.com", at=AT) == _path(chain)
    assert memo == _pairs(chain)
    revoked_leaf = make_crl(
        chain.intermediate,
        chain.intermediate_key,
        [Revocation(chain.leaf.serial_number, T0 + DAY, RevocationReason.keyCompromise)],
        crl_number=1,
        this_update=T0 + DAY,
    )
    for _ in range(2):
        with pytest.raises(CertificateExpired):
            verify_chain(chain.presented, [chain.root], at=chain.leaf.not_after + SECOND)
        with pytest.raises(CertificateExpired):  # the intermediate's validity too
            verify_chain(chain.presented, [chain.root], at=chain.intermediate.not_after + SECOND)
        with pytest.raises(CertificateNotYetValid):
            verify_chain(chain.presented, [chain.root], at=chain.leaf.not_before - SECOND)
        with pytest.raises(NameMismatch):
            verify_chain(chain.presented, [chain.root], name="b.example.org", at=AT)
        with pytest.raises(CertificateRevoked):
            verify_chain(chain.presented, [chain.root], at=AT, crls=[revoked_leaf])
        other_root = make_ca(new_key(), "/O=Elsewhere/CN=Root", not_before=T0)
        with pytest.raises(UnknownIssuer):  # a root that is not trusted stays untrusted
            verify_chain(chain.presented, [other_root], at=AT)
    assert verify_chain(chain.presented, [chain.root], name="a.example.com", at=AT)[-1] == (
        chain.root
    )


def test_a_tampered_signature_is_not_a_hit(chain: Chain, memo: set[tuple[bytes, bytes]]) -> None:
    """The leaf with one byte of its signature changed parses, but its bytes are not the
    remembered ones: its signature is checked, fails, and the failure is not remembered."""
    assert verify_chain(chain.presented, [chain.root], at=AT) == _path(chain)
    der = chain.leaf.to_der()
    tampered = Certificate.from_der(der[:-1] + bytes((der[-1] ^ 0x01,)))
    assert tampered.subject == chain.leaf.subject
    for _ in range(2):
        assert not chain.intermediate.issued(tampered)
        with pytest.raises(BadCertificateSignature):
            verify_chain([tampered, chain.intermediate], [chain.root], at=AT)
    assert memo == _pairs(chain)
    # The genuine leaf is still a hit.
    assert chain.intermediate.issued(chain.leaf)


def test_a_failed_check_is_not_remembered(chain: Chain, memo: set[tuple[bytes, bytes]]) -> None:
    """A pair whose signature does not verify (the root did not sign the leaf) stays out."""
    for _ in range(2):
        assert not chain.root.issued(chain.leaf)
    assert memo == set()


def test_the_memo_is_bounded(
    chain: Chain, memo: set[tuple[bytes, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never more than _SIGNED_MAX pairs (it starts over when full), and no pair larger
    than _SIGNED_PAIR_MAX bytes: whoever presents chains, the memory it holds is bounded."""
    monkeypatch.setattr(certs_module, "_SIGNED_MAX", 3)
    leaves = [
        issue_certificate(
            make_csr(new_key(), f"/CN=leaf{i}.example"),
            chain.intermediate,
            chain.intermediate_key,
            not_before=T0,
        )
        for i in range(8)
    ]
    for leaf in leaves:
        assert chain.intermediate.issued(leaf)
        assert (leaf.to_der(), chain.intermediate.to_der()) in memo
        assert 1 <= len(memo) <= 3
    # Each one still passes after it was dropped (its signature checked again).
    assert all(chain.intermediate.issued(leaf) for leaf in leaves)
    assert len(memo) <= 3
    # A pair over the size bound is checked every time and never kept.
    memo.clear()
    pair_size = len(leaves[0].to_der()) + len(chain.intermediate.to_der())
    monkeypatch.setattr(certs_module, "_SIGNED_PAIR_MAX", pair_size - 1)
    assert chain.intermediate.issued(leaves[0])
    assert memo == set()
