"""Transport parameters (RFC 9000 §18, RFC 9221 §3): encoding, decoding, validation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic import transport_params as tp
from quicnet.quic.buffer import MAX_VARINT
from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.transport_params import (
    PreferredAddress,
    TransportParameterId,
    TransportParameters,
)

TPE = TransportErrorCode.TRANSPORT_PARAMETER_ERROR


def v(value: int) -> bytes:
    if value < 1 << 6:
        return value.to_bytes(1, "big")
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 1 << 30:
        return (value | 0x8000_0000).to_bytes(4, "big")
    return (value | 0xC000_0000_0000_0000).to_bytes(8, "big")


def param(pid: int, body: bytes) -> bytes:
    return v(pid) + v(len(body)) + body


def decode_error(data: bytes, *, from_server: bool = True) -> TransportError:
    with pytest.raises(TransportError) as info:
        TransportParameters.decode(data, from_server=from_server)
    assert info.value.error_code == TPE
    return info.value


PREFERRED = PreferredAddress(
    ipv4_address=bytes((192, 0, 2, 1)),
    ipv4_port=443,
    ipv6_address=bytes(range(16)),
    ipv6_port=8443,
    connection_id=b"\x11" * 8,
    stateless_reset_token=b"\x22" * 16,
)


def test_empty_means_defaults() -> None:
    params = TransportParameters.decode(b"", from_server=True)
    assert params == TransportParameters()
    assert params.max_udp_payload_size == 65527
    assert params.ack_delay_exponent == 3 and params.max_ack_delay == 25
    assert params.active_connection_id_limit == 2
    assert params.max_datagram_frame_size is None  # absent: no DATAGRAM frames
    assert TransportParameters().encode() == b""


def test_full_server_parameters_round_trip() -> None:
    params = TransportParameters(
        original_destination_connection_id=b"\x83\x94\xc8\xf0\x3e\x51\x57\x08",
        max_idle_timeout=30_000,
        stateless_reset_token=b"\x33" * 16,
        max_udp_payload_size=1452,
        initial_max_data=1 << 22,
        initial_max_stream_data_bidi_local=1 << 20,
        initial_max_stream_data_bidi_remote=1 << 19,
        initial_max_stream_data_uni=1 << 18,
        initial_max_streams_bidi=100,
        initial_max_streams_uni=3,
        ack_delay_exponent=10,
        max_ack_delay=100,
        disable_active_migration=True,
        preferred_address=PREFERRED,
        active_connection_id_limit=8,
        initial_source_connection_id=b"\xaa" * 8,
        retry_source_connection_id=b"\xbb" * 20,
        max_datagram_frame_size=1200,
        version_information=bytes.fromhex("00000001000000016b3343cf"),
    )
    wire = params.encode()
    assert TransportParameters.decode(wire, from_server=True) == params
    # Spot-check the wire form of a few (RFC 9000 §18: id, length, value).
    assert param(0x01, v(30_000)) in wire
    assert param(0x0C, b"") in wire
    assert param(0x20, v(1200)) in wire


def test_zero_length_connection_ids_are_not_absent() -> None:
    params = TransportParameters(initial_source_connection_id=b"")
    decoded = TransportParameters.decode(params.encode(), from_server=False)
    assert decoded.initial_source_connection_id == b""


def test_unknown_and_reserved_parameters_are_ignored() -> None:
    wire = (
        param(31 * 5 + 27, b"grease")  # reserved (§18.1)
        + param(0x4000, b"")
        + param(0x04, v(1000))
        + param(0x3FFF_FFFF, bytes(40))
    )
    assert TransportParameters.decode(wire, from_server=False).initial_max_data == 1000


@pytest.mark.parametrize(
    ("wire", "from_server"),
    [
        (param(0x04, v(1)) + param(0x04, v(2)), True),  # a parameter twice
        (param(0x77, b"") + param(0x77, b""), True),  # even an unknown one
        (param(0x00, b"\x01" * 8), False),  # server-only, from a client
        (param(0x02, b"\x01" * 16), False),
        (param(0x0D, PREFERRED.encode()), False),
        (param(0x10, b"\x01" * 8), False),
        (param(0x03, v(1199)), True),  # max_udp_payload_size below 1200
        (param(0x0A, v(21)), True),  # ack_delay_exponent above 20
        (param(0x0B, v(1 << 14)), True),  # max_ack_delay of 2^14 ms
        (param(0x0E, v(1)), True),  # active_connection_id_limit below 2
        (param(0x08, v((1 << 60) + 1)), True),  # initial_max_streams above 2^60
        (param(0x09, v((1 << 60) + 1)), True),
        (param(0x02, b"\x01" * 15), True),  # reset token not 16 bytes
        (param(0x0F, b"\x01" * 21), True),  # CID longer than 20
        (param(0x00, b"\x01" * 21), True),
        (param(0x0C, b"\x00"), True),  # disable_active_migration with a body
        (param(0x04, v(5) + b"\x00"), True),  # integer with trailing bytes
        (param(0x04, b""), True),  # integer with no bytes
        (param(0x04, b"\x40"), True),  # truncated varint inside
        (param(0x0D, PREFERRED.encode()[:-1]), True),  # preferred_address truncated
        (param(0x0D, PREFERRED.encode() + b"\x00"), True),  # ... or too long
        (
            param(0x0D, PREFERRED.encode().replace(b"\x08" + b"\x11" * 8, b"\x00")),
            True,
        ),  # zero-length CID
        (v(0x04) + v(10) + v(1), True),  # body shorter than its length
        (v(0x04), True),  # no length at all
        (b"\x40", True),  # truncated id
    ],
)
def test_invalid_parameters(wire: bytes, from_server: bool) -> None:
    decode_error(wire, from_server=from_server)


def test_integer_parameters_a_client_may_send_are_checked_like_the_others() -> None:
    """Integers are read on a path of their own: each, sent twice, is refused as any other
    parameter is, and each is one a client may send (none is server-only, RFC 9000 §18.2)."""
    for pid in range(0x21):
        try:
            name = TransportParameterId(pid).name
        except ValueError:
            continue
        if name.startswith("initial_max") or name in (
            "max_idle_timeout",
            "ack_delay_exponent",
            "max_ack_delay",
            "active_connection_id_limit",
            "max_datagram_frame_size",
        ):
            one = param(pid, v(3 if name != "active_connection_id_limit" else 4))
            assert getattr(TransportParameters.decode(one, from_server=False), name) in (3, 4)
            assert "twice" in decode_error(one + one, from_server=False).reason


@pytest.mark.parametrize("size", [1, 2, 4, 8])
def test_integers_of_every_varint_size(size: int) -> None:
    """§16: an integer parameter's varint may take any of the four sizes, even one longer
    than its value needs; the size its first byte gives must fill the field exactly."""
    prefix = {1: 0x00, 2: 0x40, 4: 0x80, 8: 0xC0}[size]
    value = 37 if size == 1 else 1000 + size
    body = value.to_bytes(size, "big")
    body = bytes((body[0] | prefix,)) + body[1:]
    params = TransportParameters.decode(param(0x04, body), from_server=True)
    assert params.initial_max_data == value
    assert "trailing" in decode_error(param(0x04, body + b"\x00")).reason
    if size > 1:
        assert "truncated" in decode_error(param(0x04, body[:-1])).reason


def test_boundaries_that_are_valid() -> None:
    ok = (
        param(0x03, v(1200))
        + param(0x0A, v(20))
        + param(0x0B, v((1 << 14) - 1))
        + param(0x0E, v(2))
        + param(0x08, v(1 << 60))
        + param(0x0F, b"\x01" * 20)
    )
    params = TransportParameters.decode(ok, from_server=False)
    assert params.max_udp_payload_size == 1200 and params.initial_max_streams_bidi == 1 << 60


def test_preferred_address_round_trip() -> None:
    assert PreferredAddress.decode(PREFERRED.encode()) == PREFERRED
    assert len(PREFERRED.encode()) == 4 + 2 + 16 + 2 + 1 + 8 + 16


def test_ids_match_the_rfc() -> None:
    expected = {
        "original_destination_connection_id": 0x00,
        "max_idle_timeout": 0x01,
        "stateless_reset_token": 0x02,
        "max_udp_payload_size": 0x03,
        "initial_max_data": 0x04,
        "initial_max_stream_data_bidi_local": 0x05,
        "initial_max_stream_data_bidi_remote": 0x06,
        "initial_max_stream_data_uni": 0x07,
        "initial_max_streams_bidi": 0x08,
        "initial_max_streams_uni": 0x09,
        "ack_delay_exponent": 0x0A,
        "max_ack_delay": 0x0B,
        "disable_active_migration": 0x0C,
        "preferred_address": 0x0D,
        "active_connection_id_limit": 0x0E,
        "initial_source_connection_id": 0x0F,
        "retry_source_connection_id": 0x10,
        "version_information": 0x11,
        "max_datagram_frame_size": 0x20,
        "min_ack_delay": 0xFF04DE1B,  # draft-ietf-quic-ack-frequency §3
    }
    assert {p.name: int(p) for p in TransportParameterId} == expected


# Properties ------------------------------------------------------------------------------------

_cid = st.binary(max_size=20)
_params = st.builds(
    TransportParameters,
    original_destination_connection_id=st.one_of(st.none(), _cid),
    max_idle_timeout=st.integers(0, MAX_VARINT),
    stateless_reset_token=st.one_of(st.none(), st.binary(min_size=16, max_size=16)),
    max_udp_payload_size=st.integers(1200, MAX_VARINT),
    initial_max_data=st.integers(0, MAX_VARINT),
    initial_max_stream_data_bidi_local=st.integers(0, MAX_VARINT),
    initial_max_stream_data_bidi_remote=st.integers(0, MAX_VARINT),
    initial_max_stream_data_uni=st.integers(0, MAX_VARINT),
    initial_max_streams_bidi=st.integers(0, 1 << 60),
    initial_max_streams_uni=st.integers(0, 1 << 60),
    ack_delay_exponent=st.integers(0, 20),
    max_ack_delay=st.integers(0, (1 << 14) - 1),
    disable_active_migration=st.booleans(),
    preferred_address=st.one_of(st.none(), st.just(PREFERRED)),
    active_connection_id_limit=st.integers(2, MAX_VARINT),
    initial_source_connection_id=st.one_of(st.none(), _cid),
    retry_source_connection_id=st.one_of(st.none(), _cid),
    max_datagram_frame_size=st.one_of(st.none(), st.integers(0, MAX_VARINT)),
    version_information=st.one_of(st.none(), st.binary(max_size=12)),
    min_ack_delay=st.one_of(st.none(), st.integers(0, (1 << 14) * 1000 - 1)),
).filter(lambda p: p.min_ack_delay is None or p.min_ack_delay <= p.max_ack_delay * 1000)


@settings(max_examples=300, deadline=None)
@given(_params)
def test_round_trip(params: TransportParameters) -> None:
    assert TransportParameters.decode(params.encode(), from_server=True) == params


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_raise_only_transport_parameter_error(data: bytes, from_server: bool) -> None:
    try:
        TransportParameters.decode(data, from_server=from_server)
    except TransportError as exc:
        assert exc.error_code == TPE


@settings(max_examples=300, deadline=None)
@given(_params, st.data())
def test_mutated_parameters_raise_only_transport_parameter_error(
    params: TransportParameters, data: st.DataObject
) -> None:
    wire = bytearray(params.encode())
    if not wire:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(wire) - 1))
        wire[pos] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        TransportParameters.decode(bytes(wire[:cut]), from_server=True)
    except TransportError as exc:
        assert exc.error_code == TPE


def test_encoding_is_the_same_for_every_connection_of_a_configuration() -> None:
    """The configuration's parameters are encoded once and reused: connections that differ
    only in their connection IDs and reset token each get their own, in id order."""
    base = TransportParameters(
        max_idle_timeout=30_000, initial_max_data=1 << 20, max_datagram_frame_size=1200
    )
    for i in range(3):
        cid, token = bytes([i]) * 8, bytes([i]) * 16
        params = base.replace(
            original_destination_connection_id=cid,
            stateless_reset_token=token,
            initial_source_connection_id=cid[::-1] + b"x",
        )
        wire = params.encode()
        assert wire == (
            param(0x00, cid)
            + param(0x01, v(30_000))
            + param(0x02, token)
            + param(0x04, v(1 << 20))
            + param(0x0F, cid[::-1] + b"x")
            + param(0x20, v(1200))
        )
        assert TransportParameters.decode(wire, from_server=True) == params
    changed = base.replace(initial_max_data=5).encode()
    assert changed == param(0x01, v(30_000)) + param(0x04, v(5)) + param(0x20, v(1200))
    # A value that cannot be a dictionary key is still encoded (not remembered).
    odd = TransportParameters(version_information=bytearray(b"\x00\x00\x00\x01"))  # type: ignore[arg-type]
    assert odd.encode() == param(0x11, b"\x00\x00\x00\x01")


def test_a_configurations_parameters_parsed_once_still_give_each_connection_its_own() -> None:
    """The parameters other than the per-connection ones are parsed once by their bytes;
    each decode still reads its own connection IDs and token, checks every id against the
    others, and refuses a client's server-only parameter."""
    static_a = param(0x01, v(30_000)) + param(0x04, v(1 << 20))
    static_b = param(0x20, v(1200))
    for i in range(3):
        cid, token = bytes([i]) * 8, bytes([i + 1]) * 16
        wire = param(0x00, cid) + static_a + param(0x02, token) + param(0x0F, cid) + static_b
        got = TransportParameters.decode(wire, from_server=True)
        assert got == TransportParameters(
            original_destination_connection_id=cid,
            max_idle_timeout=30_000,
            stateless_reset_token=token,
            initial_max_data=1 << 20,
            initial_source_connection_id=cid,
            max_datagram_frame_size=1200,
        )
        # The same configuration bytes, in one run or cut elsewhere: the same values.
        client = TransportParameters.decode(
            static_a + static_b + param(0x0F, cid), from_server=False
        )
        assert client == got.replace(
            original_destination_connection_id=None, stateless_reset_token=None
        )
    # Another value of a configuration parameter is its own entry, not the last one's.
    other = param(0x01, v(5)) + param(0x04, v(1 << 20)) + param(0x0F, b"c") + static_b
    assert TransportParameters.decode(other, from_server=False).max_idle_timeout == 5
    # A parameter repeated across the connection IDs is still seen twice (§7.4).
    assert "twice" in str(decode_error(static_a + param(0x0F, b"c") + static_a))
    assert "twice" in str(decode_error(param(0x0F, b"c") + static_b + param(0x0F, b"d")))
    # A client's server-only parameter, with configuration bytes seen before (§7.4).
    assert "server-only" in str(
        decode_error(static_a + param(0x02, bytes(16)) + static_b, from_server=False)
    )
    # A malformed configuration parameter fails each time, remembered or not.
    bad = param(0x01, v(30_000) + b"\x00") + param(0x0F, b"c")
    for _ in range(2):
        assert "trailing" in str(decode_error(bad, from_server=False))


def _outcome(wire: bytes, from_server: bool) -> object:
    TransportParameters.decode(b"", from_server=from_server)  # not the last bytes decoded
    try:
        return TransportParameters.decode(wire, from_server=from_server)
    except TransportError as exc:
        assert exc.error_code == TPE
        return str(exc)


@settings(max_examples=300, deadline=None)
@given(_params, st.booleans(), st.data())
def test_a_remembered_layout_reads_what_a_fresh_walk_reads(
    params: TransportParameters, from_server: bool, data: st.DataObject
) -> None:
    """A decode remembers the layout of its bytes (everything outside the per-connection
    values); bytes of that length are read through it when all of that is the same, else
    walked again. Either way: the result, or the error, of a walk with no layout kept."""
    wire = params.encode()
    _outcome(wire, from_server)  # its layout, when it decodes, is remembered
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(0, 4)) if wire else 0):
        mutated[data.draw(st.integers(0, len(wire) - 1))] ^= data.draw(st.integers(1, 255))
    got = _outcome(bytes(mutated), from_server)
    tp._LAYOUTS.clear()
    assert _outcome(bytes(mutated), from_server) == got


def test_connections_with_one_layout_each_get_their_own_values() -> None:
    """Connections of one peer configuration: the same layout, their own connection IDs,
    token and preferred address; a configuration value that changes is read again, a
    repeated id is still refused (§7.4), and a client still may not send a server-only one."""
    static_a = param(0x01, v(30_000)) + param(0x04, v(1 << 20))
    static_b = param(0x20, v(1200))
    for i in range(4):
        cid, token = bytes([i, 1, 2, 3, 4, 5, 6, 7]), bytes([i + 1]) * 16
        preferred = PreferredAddress(
            bytes((192, 0, 2, i)), 443 + i, bytes(range(i, i + 16)), 8443, cid[::-1], token
        )
        wire = (
            param(0x00, cid)
            + static_a
            + param(0x02, token)
            + param(0x0D, preferred.encode())
            + param(0x0F, cid[:4])
            + static_b
        )
        assert TransportParameters.decode(wire, from_server=True) == TransportParameters(
            original_destination_connection_id=cid,
            max_idle_timeout=30_000,
            stateless_reset_token=token,
            initial_max_data=1 << 20,
            preferred_address=preferred,
            initial_source_connection_id=cid[:4],
            max_datagram_frame_size=1200,
        )
    # The same length, another configuration value (30,001 is also two bytes).
    other = wire.replace(v(30_000), v(30_001))
    assert len(other) == len(wire)
    assert TransportParameters.decode(other, from_server=True).max_idle_timeout == 30_001
    # The same length, an id changed outside the values: walked, and refused (§7.4).
    twice = param(0x0F, b"ab") + param(0x01, v(5))
    TransportParameters.decode(twice, from_server=False)
    assert "twice" in str(decode_error(param(0x0F, b"ab") + param(0x0F, b"c"), from_server=False))
    # A client's bytes of a server's layout: the server-only check runs again.
    server = param(0x02, bytes(16)) + static_b
    TransportParameters.decode(server, from_server=True)
    assert "server-only" in str(decode_error(server, from_server=False))
    # A malformed preferred address in a remembered layout is still refused.
    address = preferred.encode()
    at = wire.index(address) + 24  # the connection ID's length (§18.2)
    broken = wire[:at] + b"\x00" + wire[at + 1 :]
    assert "preferred_address" in str(decode_error(broken))
