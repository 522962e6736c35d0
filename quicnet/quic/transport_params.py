"""Transport parameters (RFC 9000 §18, RFC 9221 §3), encoded and validated.

A violation raises :class:`~quicnet.quic.errors.TransportError` with
TRANSPORT_PARAMETER_ERROR, as §7.4 requires.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from quicnet.quic.buffer import MAX_VARINT, Reader, encode_varint
from quicnet.quic.errors import TransportError, TransportErrorCode

__all__ = ["PreferredAddress", "TransportParameterId", "TransportParameters"]


class TransportParameterId(enum.IntEnum):
    """Transport parameter IDs (RFC 9000 §18.2, RFC 9221 §3, RFC 9368, ack-frequency §3)."""

    original_destination_connection_id = 0x00
    max_idle_timeout = 0x01
    stateless_reset_token = 0x02
    max_udp_payload_size = 0x03
    initial_max_data = 0x04
    initial_max_stream_data_bidi_local = 0x05
    initial_max_stream_data_bidi_remote = 0x06
    initial_max_stream_data_uni = 0x07
    initial_max_streams_bidi = 0x08
    initial_max_streams_uni = 0x09
    ack_delay_exponent = 0x0A
    max_ack_delay = 0x0B
    disable_active_migration = 0x0C
    preferred_address = 0x0D
    active_connection_id_limit = 0x0E
    initial_source_connection_id = 0x0F
    retry_source_connection_id = 0x10
    version_information = 0x11  # RFC 9368
    max_datagram_frame_size = 0x20  # RFC 9221
    min_ack_delay = 0xFF04DE1B  # draft-ietf-quic-ack-frequency §3 (microseconds)


_ID = TransportParameterId
_SERVER_ONLY = {
    _ID.original_destination_connection_id,
    _ID.preferred_address,
    _ID.retry_source_connection_id,
    _ID.stateless_reset_token,
}
_INTEGER = {
    _ID.max_idle_timeout,
    _ID.max_udp_payload_size,
    _ID.initial_max_data,
    _ID.initial_max_stream_data_bidi_local,
    _ID.initial_max_stream_data_bidi_remote,
    _ID.initial_max_stream_data_uni,
    _ID.initial_max_streams_bidi,
    _ID.initial_max_streams_uni,
    _ID.ack_delay_exponent,
    _ID.max_ack_delay,
    _ID.active_connection_id_limit,
    _ID.max_datagram_frame_size,
    _ID.min_ack_delay,
}
_CID = {
    _ID.original_destination_connection_id,
    _ID.initial_source_connection_id,
    _ID.retry_source_connection_id,
}


def _error(reason: str) -> TransportError:
    return TransportError(TransportErrorCode.TRANSPORT_PARAMETER_ERROR, reason)


@dataclass(frozen=True, slots=True)
class PreferredAddress:
    """A server's preferred_address (RFC 9000 §18.2, §9.6): IPv4 and IPv6 addresses and
    ports, a connection ID and its stateless reset token."""

    ipv4_address: bytes  # 4 bytes
    ipv4_port: int
    ipv6_address: bytes  # 16 bytes
    ipv6_port: int
    connection_id: bytes
    stateless_reset_token: bytes

    def encode(self) -> bytes:
        """The parameter's value as it goes on the wire."""
        return (
            self.ipv4_address
            + self.ipv4_port.to_bytes(2, "big")
            + self.ipv6_address
            + self.ipv6_port.to_bytes(2, "big")
            + bytes((len(self.connection_id),))
            + self.connection_id
            + self.stateless_reset_token
        )

    @classmethod
    def decode(cls, data: bytes) -> PreferredAddress:
        """Parse the parameter's value; TRANSPORT_PARAMETER_ERROR if it is malformed."""
        try:
            r = Reader(data)
            v4, p4, v6, p6 = r.read(4), r.uint(2), r.read(16), r.uint(2)
            cid = r.read(r.uint8())
            token = r.read(16)
        except TransportError:
            raise _error("preferred_address is truncated") from None
        if not r.at_end() or not 1 <= len(cid) <= 20:
            raise _error("preferred_address is malformed")
        return cls(v4, p4, v6, p6, cid, token)


#: The bytes, direction and result of the last successful decode (see ``decode``).
_last_decoded: tuple[bytes, bool, TransportParameters] | None = None


@dataclass(frozen=True, slots=True)
class TransportParameters:
    """Every §18.2 parameter with its default; unknown ones are ignored on receipt."""

    original_destination_connection_id: bytes | None = None
    max_idle_timeout: int = 0  # milliseconds; 0 = none
    stateless_reset_token: bytes | None = None
    max_udp_payload_size: int = 65527
    initial_max_data: int = 0
    initial_max_stream_data_bidi_local: int = 0
    initial_max_stream_data_bidi_remote: int = 0
    initial_max_stream_data_uni: int = 0
    initial_max_streams_bidi: int = 0
    initial_max_streams_uni: int = 0
    ack_delay_exponent: int = 3
    max_ack_delay: int = 25  # milliseconds
    disable_active_migration: bool = False
    preferred_address: PreferredAddress | None = None
    active_connection_id_limit: int = 2
    initial_source_connection_id: bytes | None = None
    retry_source_connection_id: bytes | None = None
    max_datagram_frame_size: int | None = None  # RFC 9221: absent = no DATAGRAM frames
    version_information: bytes | None = None
    #: Microseconds; present: the sender takes ACK_FREQUENCY frames (ack-frequency §3).
    min_ack_delay: int | None = None

    def encode(self) -> bytes:
        """The extension's body: each parameter that is set, integers only when not at their
        default."""
        out = bytearray()
        for pid, name, integer, default in _TABLE:
            value = getattr(self, name)
            if value is None or (integer and value == default):
                continue
            if pid == _ID.disable_active_migration:
                if value:
                    out += encode_varint(pid) + b"\x00"
                continue
            if integer:
                body = encode_varint(value)
            elif pid == _ID.preferred_address:
                body = value.encode()
            else:
                body = value
            out += encode_varint(pid) + encode_varint(len(body)) + body
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes, *, from_server: bool) -> TransportParameters:
        """Parse and validate the peer's parameters (§18.2, §7.4).

        A server reads the client's parameters three times in one handshake (to
        choose the version, to encode its own, to apply them): the last result is
        kept, and the same bytes again cost one comparison (the object is frozen).
        """
        global _last_decoded
        last = _last_decoded
        if last is not None and last[1] is from_server and last[0] == data:
            return last[2]
        params = cls._decode(data, from_server=from_server)
        _last_decoded = (bytes(data), from_server, params)
        return params

    @classmethod
    def _decode(cls, data: bytes, *, from_server: bool) -> TransportParameters:
        values: dict[str, object] = {}
        seen: set[int] = set()
        r = Reader(data)
        try:
            while not r.at_end():
                pid = r.varint()
                body = r.read_varint_bytes()
                if pid in seen:
                    raise _error(f"transport parameter 0x{pid:x} appears twice")
                seen.add(pid)
                known = _KNOWN.get(pid)
                if known is None:
                    continue  # §18.1: unknown (and reserved) parameters are ignored
                if known in _SERVER_ONLY and not from_server:
                    raise _error(f"a client sent the server-only parameter {_NAMES[known]}")
                values[_NAMES[known]] = _decode_value(known, body)
        except TransportError as exc:
            if exc.error_code == TransportErrorCode.TRANSPORT_PARAMETER_ERROR:
                raise
            raise _error(f"malformed transport parameters: {exc.reason}") from None
        params = cls(**values)  # type: ignore[arg-type]
        params.validate()
        return params

    def validate(self) -> None:
        """Check the bounds §18.2 sets; TRANSPORT_PARAMETER_ERROR for the first value outside."""
        if self.max_udp_payload_size < 1200:
            raise _error("max_udp_payload_size below 1200")
        if self.ack_delay_exponent > 20:
            raise _error("ack_delay_exponent above 20")
        if self.max_ack_delay >= 1 << 14:
            raise _error("max_ack_delay of 2^14 ms or more")
        if self.min_ack_delay is not None and self.min_ack_delay > self.max_ack_delay * 1000:
            raise _error("min_ack_delay above max_ack_delay")  # ack-frequency §3
        if self.active_connection_id_limit < 2:
            raise _error("active_connection_id_limit below 2")
        for name in ("initial_max_streams_bidi", "initial_max_streams_uni"):
            if getattr(self, name) > 1 << 60:
                raise _error(f"{name} above 2^60")
        if self.stateless_reset_token is not None and len(self.stateless_reset_token) != 16:
            raise _error("stateless_reset_token is not 16 bytes")
        for name in (
            "original_destination_connection_id",
            "initial_source_connection_id",
            "retry_source_connection_id",
        ):
            value = getattr(self, name)
            if value is not None and len(value) > 20:
                raise _error(f"{name} longer than 20 bytes")

    def replace(self, **changes: object) -> TransportParameters:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _decode_value(pid: TransportParameterId, body: bytes) -> object:
    if pid in _INTEGER:
        r = Reader(body)
        value = r.varint()
        if not r.at_end():
            raise _error(f"{pid.name} has trailing bytes")
        if value > MAX_VARINT:
            raise _error(f"{pid.name} too large")
        return value
    if pid == _ID.disable_active_migration:
        if body:
            raise _error("disable_active_migration must be empty")
        return True
    if pid == _ID.preferred_address:
        return PreferredAddress.decode(body)
    if pid in _CID or pid in (_ID.stateless_reset_token, _ID.version_information):
        return body
    raise _error(f"unhandled parameter {pid.name}")  # pragma: no cover


# Tables read once per encode and decode instead of walking the enum (slow in Python).
_NAMES = {pid: pid.name for pid in _ID}
_KNOWN: dict[int, TransportParameterId] = {int(pid): pid for pid in _ID}
_DEFAULTS = TransportParameters()
_TABLE = tuple((pid, pid.name, pid in _INTEGER, getattr(_DEFAULTS, pid.name)) for pid in _ID)
