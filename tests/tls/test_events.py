"""The TLS events whose ``__init__`` is written out (each slot set through its
descriptor): every field is set, by position and by keyword, and they stay frozen."""

from __future__ import annotations

import dataclasses

import pytest

from quicnet.tls.events import HandshakeComplete, TrafficSecretReady


@pytest.mark.parametrize("cls", [TrafficSecretReady, HandshakeComplete])
def test_every_field_is_set_and_the_event_stays_frozen(cls: type) -> None:
    fields = dataclasses.fields(cls)
    values = {f.name: f"value {i}" for i, f in enumerate(fields)}  # distinct, none a default
    for event in (cls(*values.values()), cls(**values)):
        assert {f.name: getattr(event, f.name) for f in fields} == values
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, fields[0].name, "changed")
        moved = dataclasses.replace(event, **{fields[-1].name: "other"})
        assert getattr(moved, fields[-1].name) == "other"
        assert getattr(moved, fields[0].name) == "value 0"
    required = [f for f in fields if f.default is dataclasses.MISSING]
    defaults = cls(*(values[f.name] for f in required))
    for f in fields[len(required) :]:
        assert getattr(defaults, f.name) == f.default
