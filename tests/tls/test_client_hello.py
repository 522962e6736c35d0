"""The ClientHello a client sends follows its configuration, connection after connection
(the extensions a configuration fixes are encoded once and remembered by its values)."""

from __future__ import annotations

import pytest

from quicnet.crypto import dev_identity
from quicnet.tls import ClientConfig, TLSClient
from quicnet.tls import extensions as ext
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import ClientHello, decode_message

_ROOT = dev_identity().trust_root


def _hello(**options: object) -> ClientHello:
    client = TLSClient(ClientConfig(trust_roots=[_ROOT], **options))  # type: ignore[arg-type]
    client.start(1.0)
    [(_, raw)] = client.data_to_send()
    hello = decode_message(raw)
    assert isinstance(hello, ClientHello)
    return hello


@pytest.mark.parametrize("round_", [1, 2])
def test_each_hello_carries_its_own_configuration(round_: int) -> None:
    """Two configurations alternate (twice: the second time from what was remembered);
    each hello names its own server, ALPN and record size limit, with a fresh share."""
    a = _hello(server_name="a.example", alpn_protocols=["h3"])
    b = _hello(server_name="b.example", alpn_protocols=["hq-interop", "h3"], record_size_limit=512)
    ip = _hello(server_name="127.0.0.1", verify_server_name=False)
    assert ext.decode_server_name(a.extension(ET.server_name) or b"") == "a.example"
    assert ext.decode_server_name(b.extension(ET.server_name) or b"") == "b.example"
    assert ip.extension(ET.server_name) is None  # RFC 6066 §3: no IP literal in SNI
    assert ext.decode_alpn(a.extension(ET.application_layer_protocol_negotiation) or b"") == ["h3"]
    assert ext.decode_alpn(b.extension(ET.application_layer_protocol_negotiation) or b"") == [
        "hq-interop",
        "h3",
    ]
    assert a.extension(ET.record_size_limit) is None
    assert b.extension(ET.record_size_limit) is not None
    assert a.extension(ET.key_share) != _hello(server_name="a.example").extension(ET.key_share)
    types = [e.type for e in b.extensions]
    assert types.index(ET.signature_algorithms) < types.index(ET.key_share)
    assert types.index(ET.key_share) < types.index(ET.application_layer_protocol_negotiation)
