"""BBR's application-limited samples and its response to loss.

- A sender that runs out of data with room in its window is app-limited
  (draft-cheng-iccrg-delivery-rate-estimation): the samples its packets give may
  raise the bandwidth estimate but never lower it, so a game sending 30 small
  messages a second after a download keeps the bottleneck's rate.
- Loss starts a recovery period in which the window is cut to what is in flight
  and grows only by what is delivered for a round trip (packet conservation),
  then the saved window comes back (draft-cardwell-iccrg-bbr-congestion-control-00
  §4.2.3.4).
"""

from __future__ import annotations

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

from quicnet.quic.bbr import Bbr, BbrMode

MDS = 1200
LINK_RATE = 1_000_000  # bytes per second, client to server
BBR = {"congestion_control": "bbr"}


class _P:
    """A sent packet as a controller sees it."""

    def __init__(self, size: int, time_sent: float) -> None:
        self.size = size
        self.time_sent = time_sent


class _Unmarked(Bbr):
    """BBR as it was without app-limited marking (the control)."""

    __slots__ = ()

    def on_app_limited(self, now: float) -> None:
        return


def _bottleneck(seed: int, loss: float = 0.0, client: dict[str, object] = BBR) -> Simulation:
    c2s = LinkConfig(latency=0.02, bandwidth=LINK_RATE, queue_limit=1 << 20, loss=loss)
    sim = make_pair(seed=seed, c2s=c2s, s2c=LinkConfig(latency=0.02), client=client, server=BBR)
    handshake(sim)
    return sim


def _download_then_30hz(app_limited_hook: bool) -> tuple[float, float, Bbr]:
    """A 1.5 MB upload fills the estimate; then 3 s of 200-byte datagrams at 30 Hz.
    Returns the estimate after the upload and after the datagrams."""
    config = BBR if app_limited_hook else {"congestion_controller": _Unmarked}
    sim = _bottleneck(seed=5, client=config)
    client = sim.client.connection
    cc = client.recovery.cc
    assert isinstance(cc, Bbr)
    assert isinstance(cc, _Unmarked) != app_limited_hook
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(5, [1_500_000]))
    sim.run_until(lambda: collector.complete(sent), what="upload")
    sim.run_for(0.2)  # the last acknowledgements
    after_upload = cc.btl_bw
    rounds = cc.round_count
    for _ in range(90):
        client.send_datagram(b"m" * 200)
        sim.run_for(1 / 30)
    assert cc.round_count - rounds > 20  # many more rounds than the filter's ten
    return after_upload, cc.btl_bw, cc


def test_an_app_limited_sender_keeps_its_bandwidth_estimate() -> None:
    before, after, cc = _download_then_30hz(app_limited_hook=True)
    assert before == pytest.approx(LINK_RATE, rel=0.15)
    assert after >= 0.9 * before  # 30 x 200 bytes a second did not pull it down
    assert cc.pacing_rate is not None and cc.pacing_rate >= 0.9 * before * 0.75


def test_without_app_limited_marking_the_estimate_collapses() -> None:
    """The control for the test above: the same run with the hook disabled ends with an
    estimate near the application's rate, so the marking is what keeps it."""
    before, after, _cc = _download_then_30hz(app_limited_hook=False)
    assert before == pytest.approx(LINK_RATE, rel=0.15)
    assert after < 0.2 * before


def test_app_limited_samples_may_raise_the_estimate() -> None:
    cc = Bbr(MDS)
    cc.on_packet_sent(MDS, 0.0)
    cc.on_app_limited(0.0)  # the packet just sent, and the next, are app-limited
    cc.on_packets_acked([_P(MDS, 0.0)], 0.1)
    assert cc.btl_bw == pytest.approx(MDS / 0.1)  # the first sample: above nothing
    for i in range(1, 30):  # one packet per 100 ms RTT, every one app-limited
        cc.on_packet_sent(MDS // 4, i * 0.1)
        cc.on_app_limited(i * 0.1)
        cc.on_packets_acked([_P(MDS // 4, i * 0.1)], i * 0.1 + 0.1)
    assert cc.btl_bw == pytest.approx(MDS / 0.1)  # lower samples left it alone
    assert not cc.filled_pipe and cc.mode == BbrMode.STARTUP  # no plateau was seen
    # A packet sent after everything app-limited was delivered counts in full.
    cc.on_packet_sent(MDS // 4, 3.1)
    cc.on_packets_acked([_P(MDS // 4, 3.1)], 3.2)
    assert cc.btl_bw == pytest.approx(MDS / 0.1)  # the max of the window: still there


# Loss ---------------------------------------------------------------------------------


def _steady(cc: Bbr, rtt: float, rounds: int) -> float:
    """``rounds`` round trips of ten packets each; returns the time after them."""
    t = 0.0
    for _ in range(rounds):
        for _ in range(10):
            cc.on_packet_sent(MDS, t)
        cc.on_packets_acked([_P(MDS, t)] * 10, t + rtt)
        t += rtt
    return t


def test_loss_cuts_the_window_to_packet_conservation_and_recovery_restores_it() -> None:
    cc = Bbr(MDS)
    t = _steady(cc, 0.05, 40)
    assert cc.mode == BbrMode.PROBE_BW
    for _ in range(20):  # a window's worth in flight at t
        cc.on_packet_sent(MDS, t)
    before = cc.congestion_window
    cc.on_packets_acked([_P(MDS, t)] * 2, t + 0.05)  # two arrive, ...
    cc.on_packets_lost([_P(MDS, t)] * 3, t + 0.05)  # ... three are declared lost
    assert cc.in_recovery and cc.packet_conservation
    assert cc.prior_cwnd >= before
    # Cut to what is in flight plus what the acknowledgement delivered.
    assert cc.congestion_window == max(15 * MDS + 2 * MDS, cc.minimum_window)
    assert cc.congestion_window < cc.prior_cwnd
    # During conservation, the window follows what is delivered.
    lost_at, t = t, t + 0.051  # the next packet leaves after the recovery period began
    cc.on_packet_sent(MDS, t)
    cc.on_packets_acked([_P(MDS, lost_at)] * 4, t + 0.01)
    assert cc.congestion_window == 17 * MDS  # no growth beyond in flight + delivered
    # Another loss in the same period trims it by what was lost.
    cc.on_packets_lost([_P(MDS, lost_at)], t + 0.02)
    assert cc.congestion_events == 1 and cc.congestion_window == 16 * MDS
    # A packet sent after the period began is acknowledged: the window comes back.
    cc.on_packets_acked([_P(MDS, t)], t + 0.06)
    assert not cc.in_recovery and not cc.packet_conservation
    assert cc.congestion_window >= min(cc.prior_cwnd, before)


def test_a_spurious_loss_ends_the_recovery_it_started() -> None:
    cc = Bbr(MDS)
    t = _steady(cc, 0.05, 40)
    for _ in range(20):
        cc.on_packet_sent(MDS, t)
    before = cc.congestion_window
    cc.on_packets_lost([_P(MDS, t)], t + 0.05)
    assert cc.in_recovery and cc.congestion_window < before
    cc.undo_congestion_event()
    assert not cc.in_recovery and not cc.packet_conservation
    assert cc.congestion_window >= before


def test_a_lossy_bottleneck_shows_recovery_periods_that_cut_and_restore_the_window() -> None:
    sim = _bottleneck(seed=9, loss=0.01)
    client = sim.client.connection
    cc = client.recovery.cc
    assert isinstance(cc, Bbr)
    entries: list[tuple[int, int]] = []  # (window saved, window in recovery)
    exits: list[tuple[int, int]] = []  # (window saved, window after)
    was = [False]

    def watch(_sim: object) -> None:
        if cc.in_recovery and not was[0]:
            entries.append((cc.prior_cwnd, cc.congestion_window))
        elif was[0] and not cc.in_recovery and cc.congestion_recovery_start_time is not None:
            exits.append((cc.prior_cwnd, cc.congestion_window))
        was[0] = cc.in_recovery

    sim.checks.append(watch)
    collector = StreamCollector()
    sim.server.on_event = collector
    sent = send_on_new_streams(client, payloads(9, [3_000_000]))
    sim.run_until(lambda: collector.complete(sent), timeout=120.0, what="lossy upload")
    assert {sid: bytes(collector.data[sid]) for sid in sent} == sent
    assert sim.c2s.stats.dropped > 10
    assert len(entries) >= 3 and len(exits) >= 3
    assert all(during < saved for saved, during in entries)  # each entry cut the window
    restored = [after >= saved for saved, after in exits]
    assert sum(restored) >= len(exits) // 2  # and leaving gave it back (unless capped)
    assert cc.btl_bw == pytest.approx(LINK_RATE, rel=0.2)  # the model ignored the loss
