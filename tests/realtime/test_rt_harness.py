"""The simulation's own checks catch what they exist for: a forged, crossed, duplicated,
reordered or stale message, a lost reliable one, and events out of their life cycle."""

from __future__ import annotations

import pytest
from rtsim import DeliveryLedger, EventOrder, InvariantViolation, RtNode, RtSim

from quicnet.realtime import (
    Connected,
    Delivery,
    Disconnected,
    DisconnectReason,
    MessageReceived,
    PeerConnected,
    PeerDisconnected,
)


def _ledger(mode: Delivery) -> DeliveryLedger:
    ledger = DeliveryLedger()
    for data in (b"m0", b"m1", b"m2"):
        ledger.record("a", "b", 7, mode, data)
    return ledger


@pytest.mark.parametrize("mode", list(Delivery))
def test_the_ledger_refuses_forged_crossed_and_duplicated_messages(mode: Delivery) -> None:
    ledger = _ledger(mode)
    with pytest.raises(InvariantViolation, match="never sent"):
        ledger.delivered("a", "b", 7, b"m9")
    with pytest.raises(InvariantViolation, match="never sent"):
        ledger.delivered("a", "b", 8, b"m0")  # another channel
    with pytest.raises(InvariantViolation, match="never sent"):
        ledger.delivered("c", "b", 7, b"m0")  # another sender
    ledger.delivered("a", "b", 7, b"m0")
    with pytest.raises(InvariantViolation, match="twice"):
        ledger.delivered("a", "b", 7, b"m0")


def test_the_ledger_holds_each_mode_to_its_order() -> None:
    ordered = _ledger(Delivery.RELIABLE_ORDERED)
    with pytest.raises(InvariantViolation, match="#1 delivered after 0"):
        ordered.delivered("a", "b", 7, b"m1")
    sequenced = _ledger(Delivery.SEQUENCED)
    sequenced.delivered("a", "b", 7, b"m2")
    with pytest.raises(InvariantViolation, match="#0 delivered after #2"):
        sequenced.delivered("a", "b", 7, b"m0")
    for mode in (Delivery.UNRELIABLE, Delivery.RELIABLE_UNORDERED):
        ledger = _ledger(mode)
        for data in (b"m2", b"m0", b"m1"):
            ledger.delivered("a", "b", 7, data)  # any order is within these modes
        assert ledger.flow("a", "b", 7).received == [2, 0, 1]


def test_the_ledger_counts_a_lost_reliable_message_as_a_failure() -> None:
    ledger = _ledger(Delivery.RELIABLE_UNORDERED)
    ledger.delivered("a", "b", 7, b"m0")
    assert not ledger.reliable_done()
    with pytest.raises(AssertionError, match="2 of 3 lost"):
        ledger.check_complete()
    unreliable = _ledger(Delivery.UNRELIABLE)
    unreliable.check_complete()  # losing these is within the contract
    assert unreliable.reliable_done()


def test_event_order_refuses_events_outside_a_session() -> None:
    sim = RtSim()
    server = sim.server
    assert server is not None
    client = sim.add_client()
    order = EventOrder()
    with pytest.raises(InvariantViolation, match="not connected"):
        order.check(server, MessageReceived(1, 0, b""))
    order.check(server, PeerConnected(1, ("10.0.0.1", 1)))
    with pytest.raises(InvariantViolation, match="given twice"):
        order.check(server, PeerConnected(1, ("10.0.0.1", 1)))
    order.check(server, PeerDisconnected(1, DisconnectReason.KICKED, "x"))
    with pytest.raises(InvariantViolation, match="not connected"):
        order.check(server, PeerDisconnected(1, DisconnectReason.KICKED, "x"))
    _client_order(order, client)


def _client_order(order: EventOrder, client: RtNode) -> None:
    with pytest.raises(InvariantViolation, match="before Connected"):
        order.check(client, MessageReceived(0, 0, b""))
    order.check(client, Connected(0, 3))
    with pytest.raises(InvariantViolation):
        order.check(client, Connected(0, 3))
    order.check(client, Disconnected(0, DisconnectReason.CLOSED, ""))
    with pytest.raises(InvariantViolation, match="after Disconnected"):
        order.check(client, MessageReceived(0, 0, b""))
