"""What a server reads from a ClientHello (RFC 8446 §4.1.2, §4.2).

:func:`read_client_hello` checks what every ClientHello must satisfy before the
server chooses anything (TLS 1.3 offered, null compression, pre_shared_key last,
supported_groups and key_share together and consistent, psk_key_exchange_modes
beside a PSK) and returns a :class:`ClientOffer`: the extensions the server acts
on, each decoded once. Choosing among them is :class:`~quicnet.tls.server.TLSServer`'s.
"""

from __future__ import annotations

from typing import NamedTuple

from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import ProtocolViolation
from quicnet.tls.extensions import ExtensionType as ET
from quicnet.tls.messages import ClientHello
from quicnet.tls.stapling import wants_ocsp

__all__ = ["HELLO_EXTENSIONS", "ClientOffer", "read_client_hello"]


class ClientOffer(NamedTuple):
    """What the server read from a ClientHello (an internal record, built once a hello:
    a named tuple, where a frozen dataclass's ``__init__`` sets each of the 13 fields
    through ``object.__setattr__``)."""

    suites: list[int]
    groups: list[int]
    shares: dict[int, bytes]
    signature_algorithms: list[int]
    alpn: list[str] | None
    server_name: str | None
    psk_modes: list[int]
    psk: ext.OfferedPsks | None
    early_data: bool
    record_size_limit: int | None
    transport_parameters: bytes | None
    cookie: bytes | None
    ocsp_requested: bool = False


#: The ClientHello extensions ``read_client_hello`` reads, in the order it unpacks them.
HELLO_EXTENSIONS = (
    ET.supported_versions,
    ET.pre_shared_key,
    ET.supported_groups,
    ET.key_share,
    ET.signature_algorithms,
    ET.application_layer_protocol_negotiation,
    ET.server_name,
    ET.psk_key_exchange_modes,
    ET.early_data,
    ET.record_size_limit,
    ET.cookie,
    ET.quic_transport_parameters,
    ET.status_request,
)
_PRE_SHARED_KEY = ET.pre_shared_key


def read_client_hello(hello: ClientHello) -> ClientOffer:
    """The checks every ClientHello must pass before the server looks at it (RFC 8446
    §4.1.2, §4.2, §9.2; ProtocolViolation with the alert otherwise) and what it offers."""
    if hello.legacy_version <= 0x0300:  # Appendix D.5: SSL 3.0 or older
        raise ProtocolViolation(
            "ClientHello.legacy_version is 0x0300 or lower", AlertDescription.protocol_version
        )
    # One look-up table instead of a scan of the extensions per look-up (the first of a
    # type wins, as with ``hello.extension``).
    extensions = {e.type: e.data for e in reversed(hello.extensions)}
    # Every extension read below, in one pass (an enum member through its class costs
    # ~70 ns on Python 3.11; the tuple is built once).
    (
        versions_data,
        psk,
        groups_data,
        shares_data,
        sigs,
        alpn,
        sni,
        modes,
        early,
        limit,
        cookie,
        transport_parameters,
        status_request,
    ) = map(extensions.get, HELLO_EXTENSIONS)
    if versions_data is None or ext.TLS13 not in ext.decode_supported_versions_client(
        versions_data
    ):
        raise ProtocolViolation(
            "the client does not offer TLS 1.3", AlertDescription.protocol_version
        )
    if hello.legacy_compression_methods != b"\x00":
        raise ProtocolViolation(
            "TLS 1.3 ClientHello must offer only null compression",
            AlertDescription.illegal_parameter,
        )
    if psk is not None and any(e.type == _PRE_SHARED_KEY for e in hello.extensions[:-1]):
        raise ProtocolViolation(  # §4.2.11
            "pre_shared_key is not the last extension", AlertDescription.illegal_parameter
        )
    if (groups_data is None) != (shares_data is None):  # §9.2
        raise ProtocolViolation(
            "supported_groups and key_share must come together", AlertDescription.missing_extension
        )
    groups = ext.decode_u16_list(groups_data, "supported_groups") if groups_data else []
    shares = (
        {e.group: e.key_exchange for e in ext.decode_key_share_client(shares_data)}
        if shares_data
        else {}
    )
    for group in shares:
        if group not in groups:  # §4.2.8
            raise ProtocolViolation(
                "key share for a group not in supported_groups", AlertDescription.illegal_parameter
            )
    if early is not None:
        ext.decode_empty(early, "early_data")
    if psk is not None and modes is None:  # §4.2.9
        raise ProtocolViolation(
            "pre_shared_key without psk_key_exchange_modes", AlertDescription.missing_extension
        )
    return ClientOffer(
        suites=list(hello.cipher_suites),
        groups=groups,
        shares=shares,
        signature_algorithms=ext.decode_u16_list(sigs, "signature_algorithms") if sigs else [],
        alpn=ext.decode_alpn(alpn) if alpn is not None else None,
        server_name=ext.decode_server_name(sni) if sni is not None else None,
        psk_modes=ext.decode_psk_modes(modes) if modes is not None else [],
        psk=ext.decode_pre_shared_key_client(psk) if psk is not None else None,
        early_data=early is not None,
        record_size_limit=ext.decode_record_size_limit(limit) if limit is not None else None,
        transport_parameters=transport_parameters,
        cookie=ext.decode_cookie(cookie) if cookie is not None else None,
        ocsp_requested=wants_ocsp(status_request),
    )
