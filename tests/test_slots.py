"""The frozen dataclasses whose ``__init__`` is written out with slot setters
(quicnet.slots): every field is set, by position and by keyword, the parameters are the
fields in order with their defaults, and the instances stay frozen dataclasses."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from quicnet.quic.events import DatagramReceived, HandshakeCompleted, StreamDataReceived
from quicnet.tls.events import HandshakeComplete, TrafficSecretReady
from quicnet.tls.messages import ClientHello, NewSessionTicket, ServerHello
from quicnet.tls.session import SessionTicket

WRITTEN_OUT = [
    TrafficSecretReady,
    HandshakeComplete,
    ClientHello,
    ServerHello,
    NewSessionTicket,
    SessionTicket,
    HandshakeCompleted,
    DatagramReceived,
    StreamDataReceived,
]


@pytest.mark.parametrize("cls", WRITTEN_OUT)
def test_every_field_is_set_and_the_instance_stays_frozen(cls: type) -> None:
    fields = dataclasses.fields(cls)
    # The written __init__ takes the fields, in order, with the same defaults.
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert [p.name for p in parameters] == [f.name for f in fields]
    for p, f in zip(parameters, fields, strict=True):
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected
    values = {f.name: f"value {i}" for i, f in enumerate(fields)}  # distinct, none a default
    for instance in (cls(*values.values()), cls(**values)):
        assert {f.name: getattr(instance, f.name) for f in fields} == values
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(instance, fields[0].name, "changed")
        last = [f for f in fields if f.compare][-1].name
        moved = dataclasses.replace(instance, **{last: "other"})
        assert getattr(moved, last) == "other"
        assert moved != instance
        assert dataclasses.replace(moved, **{last: values[last]}) == instance
        assert hash(cls(**values)) == hash(instance)
