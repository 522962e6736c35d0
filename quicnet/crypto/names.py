"""Distinguished names and subjectAltNames as users write them.

``/CN=example/O=Org`` (OpenSSL's ``-subj``) and ``CN=example,O=Org``
(RFC 4514) both parse; names in ``names=`` arguments are DNS names unless
they parse as IP addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

from quicnet.crypto.errors import DecodeError

__all__ = ["dns_name_matches", "ip_address_or_none", "parse_name", "san_entries"]

_ATTRS = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "SN": NameOID.SURNAME,
    "GN": NameOID.GIVEN_NAME,
    "TITLE": NameOID.TITLE,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
}


def ip_address_or_none(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``name`` as an IP address, or None when it is not one (a DNS name).

    An IPv6 address has a colon and an IPv4 one is dotted decimal: anything else is
    answered without the exceptions :func:`ipaddress.ip_address` raises for it.
    """
    if ":" not in name and not name.replace(".", "").isdigit():
        return None
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts = re.split(r"(?<!\\)" + re.escape(sep), text)
    return [p.replace("\\" + sep, sep) for p in parts]


def parse_name(subject: str) -> x509.Name:
    """Parse ``/CN=a/O=b`` or ``CN=a,O=b`` into an X.509 Name."""
    text = subject.strip()
    if not text:
        raise DecodeError("empty subject name")
    if not text.startswith("/"):
        # RFC 4514: most specific RDN first (the reverse of the encoding order).
        try:
            name = x509.Name.from_rfc4514_string(text, {k: v for k, v in _ATTRS.items()})
        except ValueError as exc:
            raise DecodeError(f"cannot parse subject {subject!r}: {exc}") from None
        if not len(name):
            raise DecodeError(f"no attributes in subject {subject!r}")
        return name
    parts = _split_unescaped(text[1:], "/")  # OpenSSL's -subj form, encoding order
    attributes = []
    for part in parts:
        if not part.strip():
            continue
        key, eq, value = part.partition("=")
        oid = _ATTRS.get(key.strip().upper())
        if not eq or oid is None:
            raise DecodeError(f"cannot parse subject component {part!r} (expected e.g. CN=name)")
        value = value.strip()
        if not value:
            raise DecodeError(f"subject component {key.strip()} has an empty value")
        try:
            attributes.append(x509.NameAttribute(oid, value))
        except ValueError as exc:  # e.g. C= must be two letters
            raise DecodeError(f"bad subject component {part!r}: {exc}") from None
    if not attributes:
        raise DecodeError(f"no attributes in subject {subject!r}")
    return x509.Name(attributes)


def san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    """DNS names and IP addresses as GeneralNames.

    ``DNS:name`` and ``IP:address`` say which; a bare name is an IP address
    if it parses as one, else a DNS name.
    """
    entries: list[x509.GeneralName] = []
    for name in names:
        kind, sep, value = name.partition(":")
        if sep and kind.upper() == "IP":
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(value.strip())))
            except ValueError:
                raise DecodeError(f"bad IP address {value.strip()!r} in subjectAltName") from None
            continue
        if sep and kind.upper() == "DNS":
            dns = value.strip().rstrip(".").lower()
            if not dns or any(c.isspace() for c in dns):
                raise DecodeError(f"bad DNS name {value!r} in subjectAltName")
            entries.append(x509.DNSName(dns))
            continue
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            dns = name.strip().rstrip(".").lower()
            if not dns or any(c.isspace() for c in dns):
                raise DecodeError(f"{name!r} is neither a DNS name nor an IP address") from None
            try:
                entries.append(x509.DNSName(dns))
            except ValueError as exc:
                raise DecodeError(f"bad DNS name {name!r}: {exc}") from None
    return entries


def dns_name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4: exact match, or ``*`` as the whole leftmost label of ``pattern``."""
    pattern = pattern.rstrip(".").lower()
    host = host.rstrip(".").lower()
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    rest = pattern[2:]
    head, dot, tail = host.partition(".")
    # The wildcard covers exactly one non-empty label and never a bare public suffix.
    return bool(dot) and bool(head) and tail == rest and "." in rest
