"""qlog state events (quicnet.quic.qlog): the congestion controller's state, the path's
MTU and ECN validation, traced in the simulator and read back from the JSON-SEQ file."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from simnet import (
    LinkConfig,
    Simulation,
    StreamCollector,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
)
from test_qlog import close_and_wait, events, read_trace

from quicnet.quic.bbr import Bbr
from quicnet.quic.congestion import NewReno
from quicnet.quic.connection import QuicConnection
from quicnet.quic.cubic import Cubic
from quicnet.quic.ecn import CE, ECT0, NOT_ECT, EcnValidation
from quicnet.quic.pmtu import PmtuState

Record = dict[str, Any]


def _pair(tmp_path: Path, seed: int, **kwargs: Any) -> tuple[Simulation, QuicConnection]:
    client_config = {"qlog_dir": str(tmp_path), **kwargs.pop("client", {})}
    sim = make_pair(seed=seed, client=client_config, **kwargs)
    client = sim.client.impl
    assert isinstance(client, QuicConnection)
    return sim, client


def _upload(sim: Simulation, client: QuicConnection, size: int) -> None:
    handshake(sim)
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(3, [size]))
    sim.run_until(lambda: collector.complete(sent), timeout=120, what="upload")
    for stream_id, data in sent.items():
        assert bytes(collector.data[stream_id]) == data


def _client_trace(sim: Simulation, client: QuicConnection, tmp_path: Path) -> list[Record]:
    close_and_wait(sim)
    return read_trace(tmp_path / f"{client.original_destination_cid.hex()}_client.sqlog")


def _chain(updates: list[Record]) -> list[Any]:
    """The states in order, checking that each update starts where the last one ended."""
    for before, after in itertools.pairwise(updates):
        assert after["old"] == before["new"], (before, after)
    return [updates[0]["old"]] + [u["new"] for u in updates] if updates else []


def _remark(change: Callable[[int, int], int]) -> Callable[[int, bytes, float], int]:
    seen = [0]

    def ecn(codepoint: int, data: bytes, now: float) -> int:
        seen[0] += 1
        return change(seen[0], codepoint)

    return ecn


# Congestion control ---------------------------------------------------------------------------


@pytest.mark.parametrize("controller", ["newreno", "cubic"])
def test_loss_moves_the_window_controller_from_slow_start_to_recovery_and_on(
    tmp_path: Path, controller: str
) -> None:
    sim, client = _pair(
        tmp_path,
        21,
        client={"congestion_control": controller},
        c2s=LinkConfig(loss=0.02),
    )
    _upload(sim, client, 400_000)
    cc = client.recovery.cc
    events_before_close = cc.congestion_events
    trace = _client_trace(sim, client, tmp_path)
    updates = events(trace, "recovery:congestion_state_updated")
    states = _chain(updates)
    assert states[:3] == ["slow_start", "recovery", "congestion_avoidance"], states
    entries = [u for u in updates if u["new"] == "recovery"]
    assert 1 <= len(entries) <= events_before_close
    # Every reduction here came from a loss the trace shows: no ECN trigger.
    assert events(trace, "recovery:packet_lost")
    assert all(u.get("trigger") != "ECN" for u in updates)


def test_a_clean_transfer_stays_in_slow_start(tmp_path: Path) -> None:
    """No loss, no CE mark: nothing leaves slow start, so nothing is written."""
    sim, client = _pair(tmp_path, 22)
    _upload(sim, client, 100_000)
    assert client.recovery.cc.congestion_events == 0
    trace = _client_trace(sim, client, tmp_path)
    assert events(trace, "recovery:congestion_state_updated") == []


def test_ce_marks_enter_recovery_with_the_ecn_trigger(tmp_path: Path) -> None:
    sim, client = _pair(tmp_path, 23)
    sim.c2s.ecn = _remark(lambda i, cp: CE if cp == ECT0 and i % 60 == 0 else cp)
    _upload(sim, client, 400_000)
    assert client.recovery.packets_lost == 0 and client.recovery.cc.congestion_events > 0
    trace = _client_trace(sim, client, tmp_path)
    assert events(trace, "recovery:packet_lost") == []
    updates = events(trace, "recovery:congestion_state_updated")
    entries = [u for u in updates if u["new"] == "recovery"]
    assert entries and all(u["trigger"] == "ECN" for u in entries)
    assert _chain(updates)[0] == "slow_start"


def test_bbr_modes_are_traced(tmp_path: Path) -> None:
    bbr = {"congestion_control": "bbr"}
    sim, client = _pair(
        tmp_path,
        24,
        client=bbr,
        server=bbr,
        c2s=LinkConfig(latency=0.02, bandwidth=1_000_000, queue_limit=1 << 20),
    )
    _upload(sim, client, 1_000_000)
    cc = client.recovery.cc
    assert isinstance(cc, Bbr)
    final_mode = cc.mode
    trace = _client_trace(sim, client, tmp_path)
    states = _chain(events(trace, "recovery:congestion_state_updated"))
    assert states[:3] == ["startup", "drain", "probe_bw"], states
    assert states[-1] == final_mode


# Path MTU -------------------------------------------------------------------------------------


def test_the_pmtu_search_is_traced_until_done(tmp_path: Path) -> None:
    sim, client = _pair(tmp_path, 25)
    _upload(sim, client, 300_000)
    path = client.paths.current
    assert path is not None and path.pmtu.state == PmtuState.SEARCH_COMPLETE
    trace = _client_trace(sim, client, tmp_path)
    updates = events(trace, "connectivity:mtu_updated")
    # The optimistic probe at the ceiling passes (RFC 8899 §5.2) and nothing is left to
    # try: one event when the tracer sees both at once, else the size then "done".
    assert updates[0]["old"] == 1200 and [u["new"] for u in updates] in ([1452], [1452, 1452])
    assert updates[-1]["done"] is True and all(u["done"] is False for u in updates[:-1])


def test_a_black_hole_above_1280_ends_the_search_at_1280(tmp_path: Path) -> None:
    link = LinkConfig(mtu=1280)
    sim, client = _pair(tmp_path, 26, c2s=link, s2c=link)
    _upload(sim, client, 400_000)
    path = client.paths.current
    assert path is not None
    for _ in range(100):  # probes ride on traffic: keep some going until the search ends
        if path.pmtu.state == PmtuState.SEARCH_COMPLETE:
            break
        client.ping()
        sim.run_for(0.05)
    assert path.pmtu.state == PmtuState.SEARCH_COMPLETE
    trace = _client_trace(sim, client, tmp_path)
    updates = events(trace, "connectivity:mtu_updated")
    # Up the ladder to 1280; every larger size fails; the search ends there.
    assert updates[0] == {"old": 1200, "new": 1280, "done": False}
    assert updates[-1] == {"new": 1280, "done": True} and len(updates) == 2


# ECN ------------------------------------------------------------------------------------------


#: quic-events-06 §7.7 (-03 defines no ECN event): ECNStateUpdated and its ECNState.
ECN_STATES = {"testing", "unknown", "failed", "capable"}


def _ecn_updates(trace: list[Record]) -> list[Record]:
    """The trace's recovery:ecn_state_updated data, each checked against the draft's
    shape: ``old`` and ``new`` (``old`` optional there, always written here), nothing
    else, each one of the four ECNState values."""
    updates = events(trace, "recovery:ecn_state_updated")
    for data in updates:
        assert set(data) == {"old", "new"} and {data["old"], data["new"]} <= ECN_STATES, data
    assert not events(trace, "quic:ecn_state_updated")  # -09's name: not this qlog's draft
    return updates


def test_ecn_validation_reaching_capable_is_traced(tmp_path: Path) -> None:
    sim, client = _pair(tmp_path, 27)
    _upload(sim, client, 100_000)
    assert client.ecn.state == EcnValidation.CAPABLE
    trace = _client_trace(sim, client, tmp_path)
    states = _chain(_ecn_updates(trace))
    assert states[0] == "testing" and states[-1] == "capable"


def test_bleached_marks_trace_ecn_failing(tmp_path: Path) -> None:
    sim, client = _pair(tmp_path, 28)
    sim.c2s.ecn = _remark(lambda i, cp: NOT_ECT)
    _upload(sim, client, 100_000)
    assert client.ecn.state == EcnValidation.FAILED
    trace = _client_trace(sim, client, tmp_path)
    states = _chain(_ecn_updates(trace))
    assert states[-1] == "failed" and "capable" not in states


# The controllers' state names ------------------------------------------------------------------


class _Sent:
    def __init__(self, size: int, time_sent: float) -> None:
        self.size = size
        self.time_sent = time_sent


@pytest.mark.parametrize("controller", [NewReno, Cubic])
def test_recovery_lasts_until_a_packet_sent_after_it_is_acknowledged(
    controller: type[NewReno | Cubic],
) -> None:
    """RFC 9002 §7.3.2: acknowledgements of packets sent before the reduction keep the
    recovery period; the first one sent after it ends the period."""
    cc = controller(1200)
    assert cc.state_name == "slow_start"
    for t in (1.0, 2.0, 3.0):
        cc.on_packet_sent(1200, t)
    cc.on_congestion_event(1.0, 2.5)
    assert cc.state_name == "recovery"
    cc.on_packets_acked([_Sent(1200, 2.0)], 2.6)  # sent before the period began
    assert cc.state_name == "recovery"
    cc.on_packets_acked([_Sent(1200, 3.0)], 3.1)
    assert cc.state_name == "congestion_avoidance"
    cc.on_persistent_congestion()
    assert cc.state_name == "slow_start"
