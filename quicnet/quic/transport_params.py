"""Transport parameters (RFC 9000 §18, RFC 9221 §3), encoded and validated.

A violation raises :class:`~quicnet.quic.errors.TransportError` with
TRANSPORT_PARAMETER_ERROR, as §7.4 requires.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from quicnet.memo import BoundedMemo
from quicnet.quic.buffer import Reader, encode_varint
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


class TransportParameters(NamedTuple):
    """Every §18.2 parameter with its default; unknown ones are ignored on receipt.

    A named tuple (immutable, like the frozen dataclass it was): a handshake builds
    four, and a frozen dataclass's ``__init__`` pays an ``object.__setattr__`` per field.
    """

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
        """The extension's body: each parameter that is set (in id order), integers only
        when not at their default.

        The parameters other than the connection IDs, the reset token and the preferred
        address come from the configuration, the same for every connection: their
        encoding is remembered by their values (a few configurations per process).
        """
        static = _STATIC_VALUES(self)
        try:
            pieces = _STATIC_ENCODED.get(static)
        except TypeError:  # an unhashable value (a bytearray): encode it all
            return _encode_fields(self, _ENCODING)
        if pieces is None:
            pieces = _STATIC_ENCODED.remember(
                static, tuple(_encode_fields(self, run) for run in _STATIC_RUNS)
            )
        out: list[bytes] = []
        for piece, fields in _PLAN:
            if piece >= 0:
                out.append(pieces[piece])
                continue
            # The per-connection parameters, written here (each is bytes, or a preferred
            # address, when set): no call per run.
            for index, pid_bytes, preferred in fields:
                value: Any = self[index]  # bytes, or the PreferredAddress when ``preferred``
                if value is None:
                    continue
                body: bytes = value.encode() if preferred else value
                n = len(body)
                out.append(pid_bytes + (_ONE_BYTE[n] if n < 64 else encode_varint(n)) + body)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes, *, from_server: bool) -> TransportParameters:
        """Parse and validate the peer's parameters (§18.2, §7.4).

        A server reads the client's parameters three times in one handshake (to
        choose the version, to encode its own, to apply them): the last result is
        kept, and the same bytes again cost one comparison (the object is immutable).
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
        # A peer's connections send the same bytes but for their connection IDs and
        # reset token (and a preferred address): when everything outside those values
        # is byte for byte the last layout of this length's, every id, length and
        # configuration value is too, so the walk below (ids, lengths, §7.4's checks)
        # would find them where it found them then; only the values are read again.
        layout = _LAYOUTS.get((from_server, len(data)))
        if layout is not None:
            keep, outside, own_at, values = layout
            if b"".join(map(data.__getitem__, keep)) == outside:
                fields = list(values)
                for index, pos, stop, preferred in own_at:
                    fields[index] = (
                        PreferredAddress.decode(data[pos:stop]) if preferred else data[pos:stop]
                    )
                params: TransportParameters = _new_tuple(cls, fields)
                params.validate()
                return params
        return cls._walk(data, from_server)

    @classmethod
    def _walk(cls, data: bytes, from_server: bool) -> TransportParameters:
        # The parameters a peer's configuration sets (most of them) come back the same on
        # each of its connections: they are parsed once by their exact bytes, in order
        # (_decode_fields), and only the per-connection ones (connection IDs, the reset
        # token, the preferred address) are read here. Every id is still read and checked
        # against the others (§7.4: none twice), and validate() runs on each result.
        seen: set[int] = set()
        static: list[bytes] = []  # runs of the other parameters' bytes, in order
        own: list[tuple[int, Any]] = []  # (field position, value) of the per-connection ones
        own_at: list[tuple[int, int, int, bool]] = []  # (position, value start, end, kind)
        end = len(data)
        run = 0  # where the current run of other parameters started
        try:
            for start, pid, pos, stop in _parameters(data, seen):
                entry = _OWN_DECODING.get(pid)
                if entry is None:
                    continue
                if start > run:
                    static.append(data[run:start])
                run = stop
                index, name, kind, server_only = entry
                if server_only and not from_server:
                    raise _error(f"a client sent the server-only parameter {name}")
                preferred = kind is _KIND_PREFERRED_ADDRESS
                own_at.append((index, pos, stop, preferred))
                own.append(
                    (
                        index,
                        PreferredAddress.decode(data[pos:stop]) if preferred else data[pos:stop],
                    )
                )
        except IndexError:
            raise _error("malformed transport parameters: truncated field") from None
        if run < end:
            static.append(data[run:end])
        key = b"".join(static)
        values = _STATIC_DECODED.get(key)
        if values is None:  # from_server changes nothing here: no such parameter is server-only
            values = _STATIC_DECODED.remember(key, tuple(cls._decode_fields(key, from_server)))
        fields = list(values)
        for index, value in own:
            fields[index] = value
        params: TransportParameters = _new_tuple(cls, fields)
        params.validate()
        # This layout for the next decode of this length: the bytes outside the
        # per-connection values (their ids and lengths included), cut where they are.
        cuts = [0]
        for _, pos, stop, _ in own_at:
            cuts += (pos, stop)
        cuts.append(end)
        keep = tuple(slice(cuts[i], cuts[i + 1]) for i in range(0, len(cuts), 2))
        _LAYOUTS.remember(
            (from_server, end),
            (keep, b"".join(map(data.__getitem__, keep)), tuple(own_at), values),
        )
        return params

    @staticmethod
    def _decode_fields(data: bytes, from_server: bool) -> list[Any]:
        """Every parameter in ``data`` over the defaults, by position (§18.2, §7.4)."""
        fields = list(_DEFAULTS)  # by position; each parameter read replaces its default
        seen: set[int] = set()  # every id read: none may come twice (§7.4)
        try:  # an index past the end is a truncated field (IndexError, below)
            for _, pid, pos, stop in _parameters(data, seen):
                length = stop - pos
                integer = _INTEGER_FIELDS.get(pid)
                if integer is not None:  # most of them: no integer is server-only
                    # The varint (§16) must fill the field exactly: its first byte gives
                    # its size. (With length 0, ``first`` is the next field's: too long.)
                    first = data[pos]
                    if length == 1 and first < 0x40:  # the usual one-byte value
                        fields[integer[0]] = first
                    else:
                        size = 1 << (first >> 6)
                        if size != length:
                            if size > length:
                                raise _error("malformed transport parameters: truncated integer")
                            raise _error(f"{integer[1]} has trailing bytes")
                        value = int.from_bytes(data[pos:stop], "big") & _VARINT_MASK[size]
                        fields[integer[0]] = value
                    continue
                entry = _DECODING.get(pid)
                if entry is None:
                    continue  # §18.1: unknown (and reserved) parameters are ignored
                index, name, kind, server_only = entry
                if server_only and not from_server:
                    raise _error(f"a client sent the server-only parameter {name}")
                if kind is _KIND_FLAG:
                    if length:
                        raise _error("disable_active_migration must be empty")
                    fields[index] = True
                elif kind is _KIND_PREFERRED_ADDRESS:
                    fields[index] = PreferredAddress.decode(data[pos:stop])
                else:
                    fields[index] = data[pos:stop]
        except IndexError:
            raise _error("malformed transport parameters: truncated field") from None
        return fields

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
        # Each field by name, not by getattr in a loop: this runs for every handshake.
        if self.initial_max_streams_bidi > 1 << 60:
            raise _error("initial_max_streams_bidi above 2^60")
        if self.initial_max_streams_uni > 1 << 60:
            raise _error("initial_max_streams_uni above 2^60")
        if self.stateless_reset_token is not None and len(self.stateless_reset_token) != 16:
            raise _error("stateless_reset_token is not 16 bytes")
        cid = self.original_destination_connection_id
        if cid is not None and len(cid) > 20:
            raise _error("original_destination_connection_id longer than 20 bytes")
        cid = self.initial_source_connection_id
        if cid is not None and len(cid) > 20:
            raise _error("initial_source_connection_id longer than 20 bytes")
        cid = self.retry_source_connection_id
        if cid is not None and len(cid) > 20:
            raise _error("retry_source_connection_id longer than 20 bytes")

    def replace(self, **changes: object) -> TransportParameters:
        """A copy with ``changes`` applied."""
        return self._replace(**changes)  # type: ignore[arg-type]


def _encode_fields(
    params: TransportParameters, fields: tuple[tuple[str, bytes, _Kind, object], ...]
) -> bytes:
    """``fields`` of ``params`` as they go on the wire (RFC 9000 §18)."""
    out: list[bytes] = []
    for name, pid_bytes, kind, default in fields:
        value = getattr(params, name)
        if value is None:
            continue
        if kind is _KIND_INTEGER:
            if value == default:
                continue
            body = encode_varint(value)
        elif kind is _KIND_FLAG:
            if value:
                out.append(pid_bytes + b"\x00")
            continue
        elif kind is _KIND_PREFERRED_ADDRESS:
            body = value.encode()
        else:
            body = value
        out.append(pid_bytes + encode_varint(len(body)) + body)
    return b"".join(out)


class _Kind(enum.Enum):
    """How a parameter's value goes on the wire."""

    INTEGER = 1  # a varint (§18.2's "integer" parameters)
    FLAG = 2  # zero-length: present means true
    PREFERRED_ADDRESS = 3
    BYTES = 4  # connection IDs, the reset token, version_information


#: Enum members read per packet or per handshake, as module constants: through its class a
#: member costs ~115 ns on Python 3.11 (EnumType defines __getattr__), a global ~10 ns.
_KIND_INTEGER, _KIND_FLAG = _Kind.INTEGER, _Kind.FLAG
_KIND_PREFERRED_ADDRESS = _Kind.PREFERRED_ADDRESS


_VARINT_MASK = {2: (1 << 14) - 1, 4: (1 << 30) - 1, 8: (1 << 62) - 1}


def _parameters(data: bytes, seen: set[int]) -> Iterator[tuple[int, int, int, int]]:
    """Each parameter of ``data`` in order (§18: id, length, value) as ``(start, id,
    value start, value end)``, its id added to ``seen``. A field running past the end,
    or an id already in ``seen`` (§7.4), is a TRANSPORT_PARAMETER_ERROR; a length byte
    past the end is an IndexError for the caller to report as truncated."""
    pos, end = 0, len(data)
    while pos < end:
        start = pos
        pid = data[pos]  # ids and lengths mostly one-byte varints: read at once
        length = data[pos + 1] if pid < 0x40 else 0x40
        if length < 0x40:
            pos += 2
        else:
            if pid < 0x40:
                pos += 1
            else:
                pid, pos = _varint(data, pos, end, "parameter id")
            length = data[pos]
            if length < 0x40:
                pos += 1
            else:
                length, pos = _varint(data, pos, end, "parameter length")
        stop = pos + length
        if stop > end:
            raise _error("malformed transport parameters: truncated field")
        if pid in seen:
            raise _error(f"transport parameter 0x{pid:x} appears twice")
        seen.add(pid)
        yield start, pid, pos, stop
        pos = stop


def _varint(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """The varint (RFC 9000 §16) at ``pos`` ending by ``end``, and the position after it."""
    if pos >= end:
        raise _error(f"malformed transport parameters: truncated {what}")
    first = data[pos]
    if first < 0x40:
        return first, pos + 1
    size = 1 << (first >> 6)
    if pos + size > end:
        raise _error(f"malformed transport parameters: truncated {what}")
    return int.from_bytes(data[pos : pos + size], "big") & _VARINT_MASK[size], pos + size


def _kind(pid: TransportParameterId) -> _Kind:
    if pid in _INTEGER:
        return _Kind.INTEGER
    if pid == _ID.disable_active_migration:
        return _Kind.FLAG
    if pid == _ID.preferred_address:
        return _Kind.PREFERRED_ADDRESS
    return _Kind.BYTES


# Tables read once per encode and decode instead of walking the enum (slow in Python).
_DEFAULTS = TransportParameters()
#: Each field's position in the tuple, by name (the class's annotations, in field order).
_FIELD_INDEX = {name: i for i, name in enumerate(TransportParameters.__annotations__)}
assert len(_FIELD_INDEX) == len(_DEFAULTS)
#: (field name, encoded id, kind, default) in id order, for ``encode``.
_ENCODING = tuple(
    (pid.name, encode_varint(pid), _kind(pid), getattr(_DEFAULTS, pid.name)) for pid in _ID
)
#: What differs from one connection to the next; the rest comes from the configuration.
_PER_CONNECTION = {
    _ID.original_destination_connection_id,
    _ID.stateless_reset_token,
    _ID.preferred_address,
    _ID.initial_source_connection_id,
    _ID.retry_source_connection_id,
}


def _runs() -> tuple[tuple[tuple[tuple[str, bytes, _Kind, object], ...], ...], tuple[int, ...]]:
    """``_ENCODING`` cut into runs of per-connection and of configuration parameters, with
    for each run its index among the configuration runs (-1 for a per-connection one)."""
    runs: list[list[tuple[str, bytes, _Kind, object]]] = []
    static: list[bool] = []
    for entry, pid in zip(_ENCODING, _ID, strict=True):
        is_static = pid not in _PER_CONNECTION
        if not static or static[-1] != is_static:
            runs.append([])
            static.append(is_static)
        runs[-1].append(entry)
    indices, n = [], 0
    for is_static in static:
        indices.append(n if is_static else -1)
        n += is_static
    return tuple(tuple(run) for run in runs), tuple(indices)


_RUNS, _PIECE_OF_RUN = _runs()
#: ``_RUNS`` for ``encode``: a configuration run by the index of its encoded piece; a
#: per-connection run (piece -1) by its fields as (tuple index, encoded id, whether it
#: is the preferred address). Every per-connection parameter is bytes or that address.
_PLAN = tuple(
    (
        piece,
        ()
        if piece >= 0
        else tuple(
            (_FIELD_INDEX[name], pid_bytes, kind is _KIND_PREFERRED_ADDRESS)
            for name, pid_bytes, kind, _ in run
        ),
    )
    for run, piece in zip(_RUNS, _PIECE_OF_RUN, strict=True)
)
assert all(
    kind in (_Kind.BYTES, _Kind.PREFERRED_ADDRESS)
    for run, piece in zip(_RUNS, _PIECE_OF_RUN, strict=True)
    if piece < 0
    for _, _, kind, _ in run
)
#: A varint length below 64, as one byte (RFC 9000 §16).
_ONE_BYTE = tuple(bytes((n,)) for n in range(64))
_STATIC_RUNS = tuple(run for run, piece in zip(_RUNS, _PIECE_OF_RUN, strict=True) if piece >= 0)
_STATIC_VALUES = operator.attrgetter(*(pid.name for pid in _ID if pid not in _PER_CONNECTION))
#: Encoded configuration runs by the values they encode (bounded).
_STATIC_ENCODED: BoundedMemo[object, tuple[bytes, ...]] = BoundedMemo(32)

#: id -> (field position, name, kind, server-only), for ``decode``: the parameters other
#: than the integers, which ``_INTEGER_FIELDS`` gives (none of them is server-only).
_DECODING: dict[int, tuple[int, str, _Kind, bool]] = {
    int(pid): (
        _FIELD_INDEX[pid.name],
        pid.name,
        _kind(pid),
        pid in _SERVER_ONLY,
    )
    for pid in _ID
    if pid not in _INTEGER
}
#: id -> (field position, name) of the integer parameters.
_INTEGER_FIELDS: dict[int, tuple[int, str]] = {
    int(pid): (_FIELD_INDEX[pid.name], pid.name) for pid in _ID if pid in _INTEGER
}
#: id -> (field position, name, kind, server-only) of the per-connection parameters.
_OWN_DECODING = {pid: entry for pid, entry in _DECODING.items() if pid in _PER_CONNECTION}
assert all(kind is not _KIND_FLAG for _, _, kind, _ in _OWN_DECODING.values())
assert not any(int(pid) in _INTEGER_FIELDS for pid in _PER_CONNECTION | _SERVER_ONLY)
assert _SERVER_ONLY <= _PER_CONNECTION
#: Parsed configuration parameters (their field values by position, the rest defaults)
#: by their exact bytes: a few peer configurations per process (bounded).
_STATIC_DECODED: BoundedMemo[bytes, tuple[Any, ...]] = BoundedMemo(32)
#: The last layout of a peer's parameters by (from_server, length): which slices hold
#: everything but the per-connection values, those bytes, each per-connection value's
#: (field position, start, end, whether it is the preferred address), and the
#: configuration values (bounded; see ``_decode``).
_Layout = tuple[tuple[slice, ...], bytes, tuple[tuple[int, int, int, bool], ...], tuple[Any, ...]]
_LAYOUTS: BoundedMemo[tuple[bool, int], _Layout] = BoundedMemo(32)
#: A TransportParameters from its fields in order, in C (the NamedTuple's ``__new__`` is
#: Python, with keywords).
_new_tuple = tuple.__new__
