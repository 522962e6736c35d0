"""Shared PKI and engines of the ECH tests (test_ech*.py); it holds no tests.

One CA issues one leaf naming both the hidden name and the public name: the
client-facing server presents it whether or not it accepts ECH, so a rejected
client can authenticate it for the public name (draft-ietf-tls-esni §6.1.7).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from quicnet.crypto import generate_private_key, issue_certificate, make_ca, make_csr
from quicnet.tls import ClientConfig, ServerConfig, TLSConnection
from quicnet.tls.ech import ECHKey, encode_ech_config_list, generate_ech_key

__all__ = ["NOW", "PUBLIC", "SECRET", "Pki", "client", "pki", "pump", "server"]

NOW = 1_700_000_000.0
SECRET = "secret.example"
PUBLIC = "public.example"


@dataclasses.dataclass
class Pki:
    ca: Any
    leaf: Any
    key: Any
    ech: ECHKey
    other_ech: ECHKey

    @property
    def configs(self) -> bytes:
        return encode_ech_config_list([self.ech.config])


_PKI: list[Pki] = []


def pki() -> Pki:
    """Made once per test session."""
    if not _PKI:
        ca_key = generate_private_key("EC")
        ca = make_ca(ca_key, "/CN=ECH test CA", days=30)
        key = generate_private_key("EC")
        leaf = issue_certificate(
            make_csr(key, f"/CN={SECRET}", names=[SECRET, PUBLIC, "localhost"]), ca, ca_key, days=30
        )
        ech = generate_ech_key(PUBLIC, config_id=7, maximum_name_length=32)
        other = generate_ech_key(PUBLIC, config_id=9)
        _PKI.append(Pki(ca, leaf, key, ech, other))
    return _PKI[0]


def client(**kwargs: Any) -> ClientConfig:
    p = pki()
    kwargs.setdefault("server_name", SECRET)
    kwargs.setdefault("trust_roots", [p.ca])
    return ClientConfig(**kwargs)


def server(**kwargs: Any) -> ServerConfig:
    p = pki()
    kwargs.setdefault("ech_keys", [p.ech])
    return ServerConfig(certificate_chain=[p.leaf], private_key=p.key, **kwargs)


def pump(c: TLSConnection, s: TLSConnection, wire: list[bytes] | None = None) -> None:
    """Exchange bytes until both sides are quiet; ``wire`` collects what the client sent."""
    for _ in range(20):
        c2s = c.data_to_send()
        if wire is not None and c2s:
            wire.append(c2s)
        if c2s:
            s.receive_data(c2s, NOW)
        s2c = s.data_to_send()
        if s2c:
            c.receive_data(s2c, NOW)
        if not c2s and not s2c:
            return
    raise AssertionError("the connections never went quiet")
