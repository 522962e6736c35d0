"""OpenSSL extension strings (``-addext``, ``-extfile``) reduced to what quicnet sets."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from quicnet.cli.common import CliError

__all__ = ["ExtensionSpec", "parse_extensions", "parse_extfile"]

# quicnet derives these from the certificate's role; asking for them is harmless.
_DERIVED = {
    "keyUsage",
    "extendedKeyUsage",
    "subjectKeyIdentifier",
    "authorityKeyIdentifier",
    "nsCertType",
    "nsComment",
}


@dataclass
class ExtensionSpec:
    """subjectAltName entries and basicConstraints, as requested."""

    names: list[str] = field(default_factory=list)
    has_names: bool = False
    is_ca: bool | None = None
    path_length: int | None = None


def _parse_san(value: str, spec: ExtensionSpec) -> None:
    spec.has_names = True
    for item in value.split(","):
        kind, sep, name = item.strip().partition(":")
        kind = kind.strip().upper()
        if not sep or kind not in ("DNS", "IP"):
            raise CliError(
                f"subjectAltName entry {item.strip()!r}: only DNS:name and IP:address are supported"
            )
        spec.names.append(f"{kind}:{name.strip()}")  # the kind decides, as in OpenSSL


def _parse_basic_constraints(value: str, spec: ExtensionSpec) -> None:
    for item in value.split(","):
        item = item.strip()
        key, _, v = item.partition(":")
        if item.lower() == "critical":
            continue
        if key.upper() == "CA":
            spec.is_ca = v.strip().upper() == "TRUE"
        elif key.lower() == "pathlen":
            try:
                spec.path_length = int(v)
            except ValueError:
                raise CliError(f"basicConstraints pathlen {v!r} is not a number") from None
        else:
            raise CliError(f"basicConstraints: cannot parse {item!r}")


def parse_extensions(items: list[str], spec: ExtensionSpec | None = None) -> ExtensionSpec:
    """Parse ``name=value`` strings as OpenSSL's ``-addext`` takes them."""
    spec = spec or ExtensionSpec()
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        value = value.strip()
        if not sep:
            raise CliError(f"extension {item!r}: expected name=value")
        if name == "subjectAltName":
            _parse_san(value, spec)
        elif name == "basicConstraints":
            _parse_basic_constraints(value, spec)
        elif name in _DERIVED:
            sys.stderr.write(f"note: {name} is set by quicnet from the certificate's role\n")
        else:
            raise CliError(
                f"extension {name!r} is not supported (supported: subjectAltName, basicConstraints)"
            )
    return spec


def parse_extfile(text: str, section: str | None = None) -> ExtensionSpec:
    """The ``name = value`` lines of an OpenSSL config file (one section, or all)."""
    current: str | None = None
    items = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1].strip()
            continue
        if section is None or current == section:
            items.append(line)
    return parse_extensions(items)
