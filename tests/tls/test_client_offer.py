"""read_client_hello: what a server reads from a ClientHello, checked before it chooses.

Every ClientHello the checks let through becomes a ClientOffer; every other one is a
ProtocolViolation carrying its alert (RFC 8446 §4.1.2, §4.2, §9.2), never a stray
exception, whatever bytes its extensions hold.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.client_offer import HELLO_EXTENSIONS, ClientOffer, read_client_hello
from quicnet.tls.errors import ProtocolViolation
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import ClientHello, Extension

#: The alerts a refused ClientHello may carry: malformed bodies, and the §4.1.2/§4.2
#: rules read_client_hello checks.
_ALERTS = {
    AlertDescription.decode_error,
    AlertDescription.illegal_parameter,
    AlertDescription.missing_extension,
    AlertDescription.protocol_version,
}


def _hello(extensions: list[Extension], **fields: object) -> ClientHello:
    return ClientHello(os.urandom(32), b"", (0x1301,), tuple(extensions), **fields)  # type: ignore[arg-type]


def _versions() -> Extension:
    return Extension(ET.supported_versions, bytes((2,)) + ext.TLS13.to_bytes(2, "big"))


def test_a_plain_tls13_offer_is_read() -> None:
    offer = read_client_hello(_hello([_versions()]))
    assert isinstance(offer, ClientOffer)
    assert offer.suites == [0x1301] and offer.shares == {} and offer.psk is None


def test_no_tls13_is_a_protocol_version_alert() -> None:
    with pytest.raises(ProtocolViolation) as err:
        read_client_hello(_hello([]))
    assert err.value.alert == AlertDescription.protocol_version


def test_compression_other_than_null_is_illegal() -> None:
    with pytest.raises(ProtocolViolation) as err:
        read_client_hello(_hello([_versions()], legacy_compression_methods=b"\x01\x00"))
    assert err.value.alert == AlertDescription.illegal_parameter


def test_key_share_without_supported_groups_is_missing_an_extension() -> None:
    shares = Extension(ET.key_share, b"\x00\x00")
    with pytest.raises(ProtocolViolation) as err:
        read_client_hello(_hello([_versions(), shares]))
    assert err.value.alert == AlertDescription.missing_extension


@settings(max_examples=300, deadline=None)
@given(
    chosen=st.lists(
        st.tuples(st.sampled_from(HELLO_EXTENSIONS), st.binary(max_size=40)),
        max_size=8,
        unique_by=lambda e: e[0],
    ),
    versions_first=st.booleans(),
)
def test_any_extension_bytes_give_an_offer_or_a_protocol_violation(
    chosen: list[tuple[int, bytes]], versions_first: bool
) -> None:
    extensions = [Extension(t, data) for t, data in chosen]
    if versions_first:
        extensions.insert(0, _versions())
    try:
        offer = read_client_hello(_hello(extensions))
    except ProtocolViolation as exc:
        assert exc.alert in _ALERTS
    else:
        # TLS 1.3 was offered: ours, or random bytes that happen to list it
        assert versions_first or any(t == ET.supported_versions for t, _ in chosen)
        assert offer.suites == [0x1301]
        assert set(offer.shares) <= set(offer.groups)  # §4.2.8
        assert offer.early_data == any(t == ET.early_data for t, _ in chosen)
