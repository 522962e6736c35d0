"""The ClientHello extensions a client configuration fixes (RFC 8446 §4.1.2, §4.2).

Most of what a ClientHello offers comes from the configuration alone: the server
name (RFC 6066 §3), OCSP stapling (RFC 6066 §8), supported_groups,
signature_algorithms, supported_versions, ALPN (RFC 7301), record_size_limit
(RFC 8449) and psk_key_exchange_modes. They are encoded once per set of values
(a few per process) and shared by every connection of those values; what changes per
connection (key shares, cookie, transport parameters, ECH, early data, the PSK)
the client adds around them.
"""

from __future__ import annotations

from quicnet.memo import BoundedMemo
from quicnet.tls import extensions as ext
from quicnet.tls.auth import is_ip_address
from quicnet.tls.config import ClientConfig
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import Extension

__all__ = ["PSK_MODES", "fixed_extensions"]

#: psk_key_exchange_modes (§4.2.9): psk_dhe_ke only, the same in every ClientHello.
PSK_MODES = Extension(ET.psk_key_exchange_modes, ext.encode_psk_modes())

_Key = tuple[str | None, bool, tuple[int, ...], tuple[int, ...], tuple[str, ...], int | None]
_Fixed = tuple[tuple[Extension, ...], tuple[Extension, ...]]

#: The encoded extensions by the values they come from; bounded all the same.
_FIXED: BoundedMemo[_Key, _Fixed] = BoundedMemo(32)


def fixed_extensions(config: ClientConfig, name: str | None) -> _Fixed:
    """The extensions ``config`` fixes for a ClientHello naming ``name`` (None: no
    server_name), as (those before key_share, those after it)."""
    key = (
        name,
        config.ocsp_stapling or config.require_ocsp_staple,
        tuple(config.groups),
        tuple(config.signature_algorithms),
        tuple(config.alpn_protocols),
        config.record_size_limit,
    )
    fixed = _FIXED.get(key)
    if fixed is None:
        fixed = _FIXED.remember(key, _encode(key))
    return fixed


def _encode(key: _Key) -> _Fixed:
    name, ocsp, groups, signature_algorithms, alpn_protocols, record_size_limit = key
    before: list[Extension] = []
    if name and not is_ip_address(name):  # RFC 6066 §3: no IP literals in SNI
        before.append(Extension(ET.server_name, ext.encode_server_name(name)))
    if ocsp:  # RFC 6066 §8
        before.append(Extension(ET.status_request, ext.encode_status_request()))
    before.append(Extension(ET.supported_groups, ext.encode_u16_list(list(groups))))
    before.append(
        Extension(ET.signature_algorithms, ext.encode_u16_list(list(signature_algorithms)))
    )
    before.append(Extension(ET.supported_versions, ext.encode_supported_versions_client()))
    after: list[Extension] = []
    if alpn_protocols:
        after.append(
            Extension(ET.application_layer_protocol_negotiation, ext.encode_alpn(alpn_protocols))
        )
    if record_size_limit is not None:
        after.append(
            Extension(ET.record_size_limit, ext.encode_record_size_limit(record_size_limit))
        )
    return (tuple(before), tuple(after))
