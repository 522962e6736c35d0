"""What ``q_client -sess_out`` saves and ``-sess_in`` loads: a QUIC session.

One PEM block, ``QUICNET QUIC SESSION``, holding the QUIC version of the
connection that earned it, the server's NEW_TOKEN token (RFC 9000 §8.1.3;
may be empty) and the TLS session ticket (:meth:`SessionTicket.to_bytes`).
Tickets and tokens belong to the version they were issued under (RFC 9369
§5), so a client resuming one starts in that version.
"""

from __future__ import annotations

from dataclasses import dataclass

from quicnet.cli.common import CliError
from quicnet.crypto.errors import DecodeError as CryptoDecodeError
from quicnet.crypto.pem import pem_decode, pem_encode
from quicnet.tls import SessionTicket
from quicnet.tls.errors import DecodeError

__all__ = ["QuicSession"]

_LABEL = "QUICNET QUIC SESSION"


@dataclass(frozen=True)
class QuicSession:
    """A session ticket, the address-validation token and their QUIC version."""

    version: int
    ticket: SessionTicket
    token: bytes = b""

    def to_pem(self) -> bytes:
        """The PEM block ``-sess_out`` writes."""
        body = (
            self.version.to_bytes(4, "big")
            + len(self.token).to_bytes(2, "big")
            + self.token
            + self.ticket.to_bytes()
        )
        return pem_encode(_LABEL, body)

    @classmethod
    def from_pem(cls, data: bytes) -> QuicSession:
        """Parse what :meth:`to_pem` wrote; CliError when it is not one."""
        try:
            raw = pem_decode(_LABEL, data)
        except CryptoDecodeError as exc:
            raise CliError(f"the session file: {exc}") from None
        if len(raw) < 6 or len(raw) < 6 + int.from_bytes(raw[4:6], "big"):
            raise CliError("the session file is truncated")
        size = int.from_bytes(raw[4:6], "big")
        try:
            ticket = SessionTicket.from_bytes(raw[6 + size :])
        except DecodeError as exc:
            raise CliError(f"the session file holds no usable ticket: {exc}") from None
        return cls(int.from_bytes(raw[:4], "big"), ticket, raw[6 : 6 + size])
