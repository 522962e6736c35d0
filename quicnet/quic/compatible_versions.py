"""Compatible version negotiation (RFC 9368) between QUIC v1 and v2 (RFC 9369 §4).

Both sides send the version_information transport parameter (RFC 9368 §3): the
version the sender's handshake runs in ("chosen") and the versions it speaks,
a client's in its order of preference ("available").

A client starts in its configured ``version`` (the original version) and lists
``supported_versions``. A server that reads, in the client's list, a version it
speaks and that is compatible with the original one before the original itself,
switches to it (RFC 9368 §2.3): its CRYPTO data, and so every Initial, Handshake
and 1-RTT packet it sends, go in the negotiated version, while it still opens the
client's Initial and 0-RTT packets in the original version (RFC 9369 §4.1). The
client learns the negotiated version from the first server packet in another
version that opens under that version's Initial keys, and switches too; its
0-RTT packets stay in the original version.

Until it has read the client's parameters, a server that could switch sends nothing
(:func:`defers_initial_ack`), and once it has sent anything in the original version
it stays in it (:func:`on_initial_sent`): some clients take any packet in the
original version as the server's choice.

Downgrade protection (RFC 9368 §4): a client closes with VERSION_NEGOTIATION_ERROR
when the server's chosen version is not the one in use, when the version changed
and the server did not say so, or, after a Version Negotiation packet, when the
version it would have picked from the server's available versions is not the
one it picked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from quicnet.memo import BoundedMemo
from quicnet.quic.crypto_streams import install_initial_keys
from quicnet.quic.errors import QuicUsageError, TransportError, TransportErrorCode
from quicnet.quic.protection import PacketKey, initial_keys
from quicnet.quic.transport_params import TransportParameters
from quicnet.quic.versions import VERSION_PARAMS
from quicnet.tls import Epoch, TLSServer

if TYPE_CHECKING:
    from quicnet.quic.config import QuicConfiguration
    from quicnet.quic.connection import QuicConnection

__all__ = [
    "VersionInformation",
    "VersionState",
    "check_server_parameters",
    "compatible",
    "defers_initial_ack",
    "negotiated_version",
    "on_initial_sent",
    "on_other_version_opened",
    "other_version_key",
    "resumption_context",
    "server_parameters_for",
    "starting_versions",
    "switch_server",
]


#: version_information values that parsed, by their bytes: (chosen, available). Bounded:
#: a few values, of a few versions each (a peer may send a longer list; it is not kept).
_DECODED: BoundedMemo[bytes, tuple[int, tuple[int, ...]]] = BoundedMemo(16)
_DECODED_BODY_MAX = 64
#: Our version_information by (chosen, supported): a few per configuration. Bounded.
_LOCAL: dict[tuple[int, tuple[int, ...]], bytes] = {}
_LOCAL_MAX = 16


class VersionInformation:
    """The version_information transport parameter (RFC 9368 §3)."""

    __slots__ = ("available", "chosen")

    def __init__(self, chosen: int, available: Sequence[int]) -> None:
        self.chosen = chosen
        self.available = tuple(available)

    def encode(self) -> bytes:
        """The parameter's value: the chosen version, then each available one (32 bits each)."""
        return b"".join(v.to_bytes(4, "big") for v in (self.chosen, *self.available))

    @classmethod
    def decode(cls, body: bytes) -> VersionInformation:
        """Parse the value; TRANSPORT_PARAMETER_ERROR when malformed (RFC 9368 §3: a
        length that is not a positive multiple of 4, or a version 0).

        The versions of the last few values that parsed are remembered by their bytes
        (a peer's list is the same on every connection, and a server reads it twice)."""
        known = _DECODED.get(body)
        if known is not None:
            return cls(known[0], known[1])
        if not body or len(body) % 4:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR, "version_information is malformed"
            )
        versions = [int.from_bytes(body[i : i + 4], "big") for i in range(0, len(body), 4)]
        if 0 in versions:
            raise TransportError(
                TransportErrorCode.TRANSPORT_PARAMETER_ERROR, "version_information lists version 0"
            )
        info = cls(versions[0], versions[1:])
        if len(body) <= _DECODED_BODY_MAX:
            _DECODED.remember(bytes(body), (info.chosen, info.available))
        return info

    @classmethod
    def of(cls, params: TransportParameters) -> VersionInformation | None:
        """The parameter in ``params``, parsed, or None when absent."""
        raw = params.version_information
        return None if raw is None else cls.decode(raw)


def compatible(original: int, other: int) -> bool:
    """RFC 9369 §4: v1 and v2 are compatible with each other (and each with itself)."""
    return original in VERSION_PARAMS and other in VERSION_PARAMS


def local_version_information(version: int, supported: Sequence[int]) -> bytes:
    """Ours: ``version`` chosen, the ``supported`` ones we speak available (it included)."""
    key = (version, tuple(supported))
    encoded = _LOCAL.get(key)
    if encoded is not None:
        return encoded
    available = [v for v in supported if v in VERSION_PARAMS]
    if version not in available:
        available.append(version)
    encoded = VersionInformation(version, available).encode()
    if len(_LOCAL) < _LOCAL_MAX:
        _LOCAL[key] = encoded
    return encoded


def negotiated_version(
    original: int, client: VersionInformation | None, server_supported: Sequence[int]
) -> int:
    """The server's choice (RFC 9368 §2.3): the first of the client's available versions
    that it speaks and that is compatible, unless the original comes first."""
    if client is None:
        return original
    for version in client.available:
        if version == original:
            return original
        if version in server_supported and compatible(original, version):
            return version
    return original


def _client_information(raw: bytes, original: int) -> VersionInformation | None:
    info = VersionInformation.of(TransportParameters.decode(raw, from_server=False))
    if info is None:
        return None
    if info.chosen not in info.available:
        raise TransportError(
            TransportErrorCode.TRANSPORT_PARAMETER_ERROR,
            "version_information: the chosen version is not available",
        )
    if info.chosen != original:  # RFC 9368 §4: not the version the client's Initial used
        raise TransportError(
            TransportErrorCode.VERSION_NEGOTIATION_ERROR,
            f"the client chose 0x{info.chosen:08x} in a 0x{original:08x} Initial",
        )
    return info


def starting_versions(c: QuicConfiguration) -> tuple[int, int]:
    """The version a connection offers first and the one it speaks.

    The configured ``version``, except: a client may offer one it does not speak, to
    probe, then speaks the first of ``supported_versions`` it does (RFC 9000 §6; a
    server, or a client speaking none, gets QuicUsageError); and a client resuming with
    a session ticket from another version it speaks starts in that one, the only one
    the ticket may start (RFC 9369 §5; the server that issued it meant to keep it, §6).
    """
    known = [v for v in c.supported_versions if v in VERSION_PARAMS]
    if c.version not in VERSION_PARAMS:
        if not c.is_client or not known:
            raise QuicUsageError(f"unsupported QUIC version 0x{c.version:08x}")
        return c.version, known[0]
    ticket = c.session_ticket if c.is_client else None
    if ticket is not None and ticket.quic_version in known:
        return ticket.quic_version, ticket.quic_version
    return c.version, c.version


def resumption_context(version: int) -> bytes:
    """What a server seals into its tickets and requires of a ticket to resume with it:
    the QUIC version (RFC 9369 §5, tickets are specific to the version that issued them)."""
    return b"quic version " + version.to_bytes(4, "big")


def server_parameters_for(
    params: TransportParameters,
    original: int,
    supported: Sequence[int],
    encoded: bytes | None = None,
    state: VersionState | None = None,
) -> Callable[[bytes], bytes]:
    """For the TLS server: our encoded parameters once the client's are known, with the
    negotiated version as chosen (RFC 9368 §3). ``encoded`` is ``params.encode()`` when
    the caller has it: the answer when the version stays the one ``params`` names.
    ``state`` is the connection's: one that is ``committed`` chooses the original."""

    def encode(client_raw: bytes) -> bytes:
        client = _client_information(client_raw, original)
        committed = state is not None and state.committed
        version = original if committed else negotiated_version(original, client, supported)
        info = local_version_information(version, supported)
        if encoded is not None and info == params.version_information:
            return encoded
        return params.replace(version_information=info).encode()

    return encode


class VersionState:
    """A connection's versions: the original one, and what switching left behind."""

    __slots__ = ("committed", "original", "original_initial_recv", "switched")

    def __init__(self, original: int) -> None:
        #: The version of the client's first Initial (after Version Negotiation, the new one).
        self.original = original
        #: Server: the key that still opens the client's original-version Initials.
        self.original_initial_recv: PacketKey | None = None
        #: The connection moved to a negotiated version.
        self.switched = False
        #: Server: it sent a packet in the original version before reading the client's
        #: parameters, and so stays in it (see :func:`on_initial_sent`).
        self.committed = False


def switch_server(c: QuicConnection, client_raw: bytes) -> None:
    """A server read the client's parameters: move to the negotiated version, before any
    key of the handshake exists, keeping the original Initial key to open the client's."""
    state = c.versions
    version = negotiated_version(
        state.original,
        _client_information(client_raw, state.original),
        c.configuration.supported_versions,
    )
    if version == c.version or state.switched or state.committed:
        return
    state.switched = True
    state.original_initial_recv = c.spaces[Epoch.INITIAL].recv_key
    c.version = version
    install_initial_keys(c, c.retry_source_cid or c.original_destination_cid)
    if isinstance(c.tls, TLSServer):  # RFC 9369 §5: tickets are the negotiated version's
        c.tls.ticket_context = resumption_context(version)


def _undecided(c: QuicConnection) -> bool:
    """A server that could still switch: it speaks a version compatible with the
    original, has not read the client's parameters, and has sent nothing yet."""
    state = c.versions
    return (
        not c.is_client
        and c.remote_params is None
        and not state.switched
        and not state.committed
        and any(
            v != c.version and compatible(c.version, v) for v in c.configuration.supported_versions
        )
    )


def on_initial_sent(c: QuicConnection) -> None:
    """A server sent an Initial before reading the client's parameters: it is in the
    original version, and the connection stays in it.

    RFC 9369 §4.1 lets a server answer in the original version and switch later (an
    ACK of the first half of a ClientHello split over packets, RFC 9368 §2.3), and
    makes a CRYPTO frame in it (a HelloRetryRequest) the choice of that version. Some
    clients (qh3) take any authenticated original-version packet as the choice and then
    drop the negotiated version's: the handshake would stall. Staying is always allowed:
    the original version is in the client's list.
    """
    if not c.is_client and not c.versions.switched and c.remote_params is None:
        c.versions.committed = True


def defers_initial_ack(c: QuicConnection, hello_grew: bool) -> bool:
    """Whether a server holds the ACK of an ack-eliciting original-version Initial: while
    the client's ClientHello is still arriving (``hello_grew``: this packet brought new
    CRYPTO data) and the version is open. The ACK then goes with the ServerHello, in the
    negotiated version (RFC 9369 §4.1: the server "might" need to answer earlier, it need
    not). A packet that brings nothing new (the client's PTO probe: its hello lost a
    packet) is acknowledged at once, in the original version, which the server then keeps
    (:func:`on_initial_sent`): a client may resend the lost part only once acknowledged.
    """
    return hello_grew and _undecided(c)


def other_version_key(c: QuicConnection, version: int, epoch: Epoch) -> PacketKey | None:
    """The key for a long-header packet in ``version``, not the connection's; None drops it.

    A server opens the client's Initial and 0-RTT packets in the original version
    (RFC 9369 §4.1); a client that has not switched tries the Initial keys of a
    compatible version it offered (the server's choice, RFC 9368 §2.3), unless the
    server already sent CRYPTO data in the original version: that chose it (§4.1).
    """
    state = c.versions
    if not c.is_client:
        if not state.switched or version != state.original:
            return None
        if epoch == Epoch.INITIAL:
            return state.original_initial_recv if c.spaces[epoch].recv_key is not None else None
        return c.zero_rtt_recv_key if epoch == Epoch.ZERO_RTT else None
    if (
        state.switched
        or epoch != Epoch.INITIAL
        or c.spaces[Epoch.INITIAL].receiver.highest_offset  # CRYPTO came in the original
        or c.spaces[Epoch.HANDSHAKE].recv_key is not None
        or version not in c.configuration.supported_versions
        or not compatible(c.version, version)
    ):
        return None
    dcid = c.retry_source_cid or c.original_destination_cid
    return initial_keys(version, dcid, is_client=True)[1]


def on_other_version_opened(c: QuicConnection, version: int) -> None:
    """A packet in ``version`` opened: a client now speaks the negotiated version."""
    if c.is_client and not c.versions.switched:
        c.versions.switched = True
        c.version = version
        install_initial_keys(c, c.retry_source_cid or c.original_destination_cid)


def check_server_parameters(c: QuicConnection, params: TransportParameters) -> None:
    """A client's downgrade check of the server's version_information (RFC 9368 §4)."""
    info = VersionInformation.of(params)
    negotiated = c.negotiation.negotiated  # a Version Negotiation packet was acted on
    if info is None:
        if negotiated or c.versions.switched:
            raise TransportError(
                TransportErrorCode.VERSION_NEGOTIATION_ERROR,
                "the version changed and the server sent no version_information",
            )
        return
    if info.chosen != c.version:
        raise TransportError(
            TransportErrorCode.VERSION_NEGOTIATION_ERROR,
            f"the server chose 0x{info.chosen:08x}, the connection runs 0x{c.version:08x}",
        )
    if negotiated:
        ours = [v for v in c.configuration.supported_versions if v in VERSION_PARAMS]
        would = next((v for v in ours if v in info.available), None)
        if would != c.versions.original:
            raise TransportError(
                TransportErrorCode.VERSION_NEGOTIATION_ERROR,
                "Version Negotiation led away from a version both sides speak (a downgrade)",
            )
