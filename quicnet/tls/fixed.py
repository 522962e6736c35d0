"""Fixed inputs in place of fresh randomness, to reproduce published traces.

RFC 8448 gives every random, private key and ticket of its example
handshakes; with these values the engine must produce the same bytes. Never
use this outside tests: fixed randoms and keys destroy TLS's security.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from quicnet.tls.messages import Extension, HandshakeType
from quicnet.tls.session import TicketState

__all__ = ["FixedInputs", "FixedTicket"]


@dataclass(frozen=True)
class FixedTicket:
    """What a server puts in one NewSessionTicket instead of fresh values."""

    ticket_nonce: bytes
    ticket_age_add: int
    ticket: bytes
    ticket_lifetime: int


@dataclass(frozen=True)
class FixedInputs:
    """Values a test engine uses instead of fresh randomness (RFC 8448 traces only)."""

    random: bytes | None = None
    session_id: bytes | None = None
    #: group -> private key bytes for our key shares.
    key_share_private_keys: Mapping[int, bytes] = field(default_factory=dict, repr=False)
    #: Rewrites the extensions of ClientHello (client) or EncryptedExtensions
    #: (server) before they are sent (pre_shared_key stays last regardless).
    extensions: Callable[[HandshakeType, list[Extension]], list[Extension]] | None = None
    tickets: Sequence[FixedTicket] = ()
    #: Server: tickets (by identity) to accept with the given state, as if sealed by us.
    ticket_states: Mapping[bytes, TicketState] = field(default_factory=dict)
