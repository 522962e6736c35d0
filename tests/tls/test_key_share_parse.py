"""A ClientHello's key_share (RFC 8446 §4.2.8): the one-entry reading and the general
one agree, and whatever the bytes, the parse is the encoding read back or a typed error."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from quicnet.tls import extensions as ext
from quicnet.tls.alerts import AlertDescription
from quicnet.tls.errors import DecodeError, ProtocolViolation

_ENTRY = st.builds(ext.KeyShareEntry, st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=80))


@given(st.lists(_ENTRY, max_size=4, unique_by=lambda e: e.group))
def test_entries_read_back(entries: list[ext.KeyShareEntry]) -> None:
    assert ext.decode_key_share_client(ext.encode_key_share_client(entries)) == entries


@given(st.binary(max_size=90))
@example(b"\x00\x05\x00\x1d\x00\x01\x07")  # one entry, exactly
@example(b"\x00\x05\x00\x1d\x00\x02\x07")  # its key_exchange truncated
@example(b"\x00\x04\x00\x1d\x00\x00")  # an empty key_exchange (§4.2.8: at least 1 byte)
@example(b"\x00\x00")  # no entry (a client asking for HelloRetryRequest)
def test_any_bytes_parse_to_their_encoding_or_a_typed_error(data: bytes) -> None:
    try:
        entries = ext.decode_key_share_client(data)
    except DecodeError:
        return
    except ProtocolViolation as exc:  # two shares of one group
        assert exc.alert is AlertDescription.illegal_parameter
        return
    assert ext.encode_key_share_client(entries) == data
    assert all(entry.key_exchange for entry in entries)


def test_one_entry_with_trailing_bytes_is_refused() -> None:
    with pytest.raises(DecodeError):
        ext.decode_key_share_client(b"\x00\x05\x00\x1d\x00\x01\x07\x00")  # 5 said, 6 follow
    with pytest.raises(DecodeError):
        ext.decode_key_share_client(b"\x00\x06\x00\x1d\x00\x01\x07\x00")  # a stray byte
