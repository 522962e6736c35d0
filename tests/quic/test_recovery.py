"""Loss detection, RTT estimation, NewReno and pacing (RFC 9002), unit by unit.

The RTT estimator is checked against RFC 9002 §5.3's formulas written out
here; loss detection against §6.1's packet and time thresholds; persistent
congestion against §7.6; NewReno against §7.3 and Appendix B.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quicnet.quic.congestion import NewReno, Pacer
from quicnet.quic.recovery import K_GRANULARITY, Recovery, RttEstimator, SentPacket

APP = 2  # the application-data packet number space
MDS = 1200


# RTT (§5) ------------------------------------------------------------------------------------


def test_rtt_initial_values() -> None:
    rtt = RttEstimator()
    assert rtt.smoothed_rtt == pytest.approx(0.333)
    assert rtt.rttvar == pytest.approx(0.333 / 2)
    assert not rtt.first_sample


def test_rtt_first_sample() -> None:
    rtt = RttEstimator()
    rtt.update(0.1, 0.05, handshake_confirmed=True, max_ack_delay=0.025)
    # §5.3: the first sample ignores ack_delay entirely.
    assert (rtt.latest_rtt, rtt.min_rtt, rtt.smoothed_rtt, rtt.rttvar) == (0.1, 0.1, 0.1, 0.05)


def test_rtt_subsequent_samples_by_hand() -> None:
    rtt = RttEstimator()
    rtt.update(0.100, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    # 0.2 s with a claimed 0.05 s ack delay, capped to max_ack_delay = 0.025.
    rtt.update(0.200, 0.050, handshake_confirmed=True, max_ack_delay=0.025)
    adjusted = 0.200 - 0.025
    assert rtt.min_rtt == 0.1
    assert rtt.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * abs(0.1 - adjusted))
    assert rtt.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * adjusted)
    # Before confirmation the peer's claimed delay is used uncapped.
    before = RttEstimator()
    before.update(0.100, 0.0, handshake_confirmed=False, max_ack_delay=0.025)
    before.update(0.200, 0.050, handshake_confirmed=False, max_ack_delay=0.025)
    assert before.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.150)
    # An ack delay that would take the sample below min_rtt is not subtracted.
    low = RttEstimator()
    low.update(0.100, 0.0, handshake_confirmed=True, max_ack_delay=0.025)
    low.update(0.110, 0.020, handshake_confirmed=True, max_ack_delay=0.025)
    assert low.smoothed_rtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.110)
    assert low.min_rtt == 0.1


def _reference_rtt(
    samples: list[tuple[float, float]], confirmed: bool, max_ack_delay: float
) -> tuple[float, float, float]:
    """RFC 9002 §5.3, transcribed: (min_rtt, smoothed_rtt, rttvar)."""
    min_rtt = smoothed = rttvar = 0.0
    for i, (latest, ack_delay) in enumerate(samples):
        if i == 0:
            min_rtt, smoothed, rttvar = latest, latest, latest / 2
            continue
        min_rtt = min(min_rtt, latest)
        if confirmed:
            ack_delay = min(ack_delay, max_ack_delay)
        adjusted = latest
        if latest >= min_rtt + ack_delay:
            adjusted = latest - ack_delay
        rttvar = 3 / 4 * rttvar + 1 / 4 * abs(smoothed - adjusted)
        smoothed = 7 / 8 * smoothed + 1 / 8 * adjusted
    return min_rtt, smoothed, rttvar


@settings(max_examples=200, deadline=None)
@given(
    samples=st.lists(
        st.tuples(st.floats(0.0005, 5.0), st.floats(0.0, 0.5)), min_size=1, max_size=30
    ),
    confirmed=st.booleans(),
    max_ack_delay=st.floats(0.0, 0.3),
)
def test_rtt_matches_the_rfc_formulas(
    samples: list[tuple[float, float]], confirmed: bool, max_ack_delay: float
) -> None:
    rtt = RttEstimator()
    for latest, delay in samples:
        rtt.update(latest, delay, handshake_confirmed=confirmed, max_ack_delay=max_ack_delay)
    min_rtt, smoothed, rttvar = _reference_rtt(samples, confirmed, max_ack_delay)
    assert rtt.min_rtt == pytest.approx(min_rtt)
    assert rtt.smoothed_rtt == pytest.approx(smoothed)
    assert rtt.rttvar == pytest.approx(rttvar)
    assert rtt.min_rtt <= min(s for s, _ in samples) + 1e-12


# Loss detection (§6.1) ---------------------------------------------------------------------------


class _Log:
    """Records which packets recovery reported acknowledged or lost (by packet number)."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.lost: list[int] = []

    def delivered(self, frames: Sequence[tuple[int, ...]], acked: bool) -> None:
        for (pn,) in frames:
            (self.acked if acked else self.lost).append(pn)


def _send(
    recovery: Recovery, log: _Log, pn: int, at: float, size: int = MDS, space: int = APP
) -> None:
    recovery.on_delivered = log.delivered
    recovery.spaces[space].next_packet_number = pn + 1
    recovery.on_packet_sent(space, SentPacket(pn, at, True, True, size, [(pn,)]))


def _recovery_with_rtt(rtt: float = 0.1) -> tuple[Recovery, _Log]:
    """A recovery whose first RTT sample (packet 0) was exactly ``rtt``."""
    recovery = Recovery(max_ack_delay=0.025, max_datagram_size=MDS)
    recovery.handshake_confirmed = True
    recovery.peer_completed_address_validation = True
    log = _Log()
    _send(recovery, log, 0, 0.0)
    recovery.on_ack_received(APP, ((0, 0),), 0.0, rtt)
    assert recovery.rtt.smoothed_rtt == rtt
    return recovery, log


def test_packet_threshold() -> None:
    recovery, log = _recovery_with_rtt()
    for pn in range(1, 7):
        _send(recovery, log, pn, 1.0 + pn * 0.001)
    acked, lost = recovery.on_ack_received(APP, ((5, 5),), 0.0, 1.02)
    assert [p.packet_number for p in acked] == [5]
    # 5 >= pn + 3 for pn 1 and 2; 3 and 4 wait for the time threshold.
    assert [p.packet_number for p in lost] == [1, 2]
    assert log.lost == [1, 2] and log.acked == [0, 5]
    assert recovery.spaces[APP].loss_time is not None
    assert sorted(recovery.spaces[APP].sent) == [3, 4, 6]


def test_time_threshold_via_the_timer() -> None:
    recovery, log = _recovery_with_rtt(0.1)
    _send(recovery, log, 1, 1.0)
    _send(recovery, log, 2, 1.01)
    recovery.on_ack_received(APP, ((2, 2),), 0.0, 1.11)
    assert log.lost == []
    loss_time, space = recovery.earliest_loss_time()
    # 9/8 x max(smoothed, latest) after packet 1 was sent.
    delay = 9 / 8 * max(recovery.rtt.smoothed_rtt, recovery.rtt.latest_rtt)
    assert space == APP and loss_time == pytest.approx(1.0 + delay)
    assert recovery.detect_lost_on_timer(APP, loss_time - 0.001) == []
    assert [p.packet_number for p in recovery.detect_lost_on_timer(APP, loss_time)] == [1]
    assert log.lost == [1]
    assert recovery.earliest_loss_time() == (None, 0)


def test_time_threshold_on_ack() -> None:
    recovery, log = _recovery_with_rtt(0.1)
    _send(recovery, log, 1, 1.0)
    _send(recovery, log, 2, 1.2)
    # Packet 1 was sent 0.2 s before this ACK of packet 2 arrives: more than 9/8 RTT.
    _acked, lost = recovery.on_ack_received(APP, ((2, 2),), 0.0, 1.3)
    assert [p.packet_number for p in lost] == [1]


def test_loss_timer_fires_exactly_once() -> None:
    """Handling the loss timer at the time it named must declare the loss (or move on).

    Computing the deadline as ``t + d`` but checking ``t <= now - d`` disagrees for
    some floats; across a few hundred send times, some hit it.
    """
    stalls = []
    for k in range(300):
        recovery, _ = _recovery_with_rtt(0.1)
        log = _Log()
        t0 = 1.0 + k * 0.0137
        _send(recovery, log, 1, t0)
        _send(recovery, log, 2, t0 + 0.001)
        recovery.on_ack_received(APP, ((2, 2),), 0.0, t0 + 0.101)
        loss_time, _ = recovery.earliest_loss_time()
        assert loss_time is not None and log.lost == []
        recovery.detect_lost_on_timer(APP, loss_time)
        again, _ = recovery.earliest_loss_time()
        if log.lost != [1] and (again is None or again <= loss_time):
            stalls.append(t0)
    assert stalls == []


def test_ack_of_unknown_and_duplicate_packets() -> None:
    recovery, log = _recovery_with_rtt()
    _send(recovery, log, 1, 1.0)
    assert recovery.on_ack_received(APP, ((0, 0),), 0.0, 1.1) == ([], [])  # already acked
    acked, _ = recovery.on_ack_received(APP, ((1, 1),), 0.0, 1.1)
    assert [p.packet_number for p in acked] == [1]
    assert recovery.on_ack_received(APP, ((1, 1),), 0.0, 1.2) == ([], [])
    assert log.acked == [0, 1]


def test_only_an_ack_of_the_largest_gives_an_rtt_sample() -> None:
    recovery, log = _recovery_with_rtt(0.1)
    _send(recovery, log, 1, 1.0)
    _send(recovery, log, 2, 1.0)
    recovery.on_ack_received(APP, ((2, 2),), 0.0, 1.3)  # sample 0.3
    assert recovery.rtt.latest_rtt == pytest.approx(0.3)
    recovery.on_ack_received(APP, ((2, 1),), 0.0, 5.0)  # largest (2) not newly acked
    assert recovery.rtt.latest_rtt == pytest.approx(0.3)


def test_pto_duration_and_backoff() -> None:
    recovery, _ = _recovery_with_rtt(0.1)
    base = 0.1 + max(4 * 0.05, K_GRANULARITY)
    assert recovery.pto_duration(0) == pytest.approx(base)
    assert recovery.pto_duration(APP) == pytest.approx(base + 0.025)
    recovery.pto_count = 3
    assert recovery.pto_duration(APP) == pytest.approx((base + 0.025) * 8)


def test_pto_timer_and_its_reset_on_ack() -> None:
    recovery, log = _recovery_with_rtt(0.1)
    _send(recovery, log, 1, 2.0)
    pto, space = recovery.pto_time(2.0, has_handshake_keys=True, is_client=True)
    assert space == APP and pto == pytest.approx(2.0 + recovery.pto_duration(APP))
    recovery.pto_count = 2
    _send(recovery, log, 2, 3.0)
    recovery.on_ack_received(APP, ((2, 1),), 0.0, 3.1)
    assert recovery.pto_count == 0
    assert recovery.pto_time(3.1, has_handshake_keys=True, is_client=True) == (None, 0)


def test_no_application_pto_before_the_handshake_is_confirmed() -> None:
    recovery = Recovery()
    log = _Log()
    _send(recovery, log, 0, 1.0, space=APP)
    _send(recovery, log, 0, 1.5, space=1)
    pto, space = recovery.pto_time(1.5, has_handshake_keys=True, is_client=False)
    assert space == 1 and pto == pytest.approx(1.5 + recovery.pto_duration(1))


def test_discarding_a_space_forgets_its_packets_without_loss() -> None:
    recovery = Recovery()
    log = _Log()
    _send(recovery, log, 0, 1.0, space=0)
    _send(recovery, log, 1, 1.0, space=0)
    assert recovery.bytes_in_flight == 2 * MDS
    recovery.discard_space(0)
    assert recovery.bytes_in_flight == 0
    assert log.lost == [] and log.acked == []
    assert recovery.spaces[0].discarded and not recovery.spaces[0].sent


# Persistent congestion (§7.6) ----------------------------------------------------------------


def _pc_setup() -> tuple[Recovery, _Log]:
    recovery, log = _recovery_with_rtt(0.1)  # duration = (0.1 + 4 * 0.05 + 0.025) * 3 = 0.975 s
    for pn in range(1, 21):
        _send(recovery, log, pn, 1.0 + pn * 0.1)
    return recovery, log


def test_persistent_congestion_when_everything_in_between_was_lost() -> None:
    recovery, _log = _pc_setup()
    recovery.on_ack_received(APP, ((20, 18),), 0.0, 3.2)
    # Packets 1-17 were all lost, spanning 1.6 s > 0.975 s.
    assert recovery.cc.congestion_window == 2 * MDS


def test_no_persistent_congestion_when_packets_in_between_were_acknowledged() -> None:
    recovery, log = _pc_setup()
    window = recovery.cc.congestion_window
    # Packets 2-10 and 18-20 arrive; 1 and 11-17 are lost, 1.6 s apart, but not all in between.
    recovery.on_ack_received(APP, ((20, 18), (10, 2)), 0.0, 3.2)
    assert 1 in log.lost and 17 in log.lost
    assert recovery.cc.congestion_window > 2 * MDS
    assert recovery.cc.congestion_window >= window // 2 - MDS


def test_no_persistent_congestion_for_a_short_period() -> None:
    recovery, log = _recovery_with_rtt(0.1)
    for pn in range(1, 21):
        _send(recovery, log, pn, 1.0 + pn * 0.01)  # 20 packets within 0.2 s
    recovery.on_ack_received(APP, ((20, 18),), 0.0, 1.4)
    assert recovery.cc.congestion_window > 2 * MDS


def test_no_persistent_congestion_without_an_earlier_rtt_sample() -> None:
    recovery = Recovery(max_datagram_size=MDS)
    log = _Log()
    for pn in range(0, 20):
        _send(recovery, log, pn, 1.0 + pn * 0.1)
    recovery.on_ack_received(APP, ((19, 19),), 0.0, 3.2)
    assert len(log.lost) >= 2
    assert recovery.cc.congestion_window > 2 * MDS


# NewReno (§7, Appendix B) --------------------------------------------------------------------


class _P:
    def __init__(self, size: int, time_sent: float) -> None:
        self.size = size
        self.time_sent = time_sent


def test_initial_window() -> None:
    assert NewReno(1200).congestion_window == 12000
    assert NewReno(1500).congestion_window == 14720
    assert NewReno(1200).minimum_window == 2400


def test_slow_start_and_congestion_avoidance() -> None:
    cc = NewReno(MDS)
    for _ in range(10):
        cc.on_packet_sent(MDS, 1.0)
    assert cc.bytes_in_flight == 10 * MDS
    cc.on_packets_acked([_P(MDS, 1.0)] * 10, 1.1)
    assert cc.congestion_window == 12000 + 10 * MDS  # slow start: +1 per acked byte
    assert cc.bytes_in_flight == 0
    # A loss halves the window and ends slow start.
    cc.on_packet_sent(MDS, 1.0)
    cc.on_packets_lost([_P(MDS, 1.2)], 1.3)
    assert cc.congestion_window == 12000 and cc.ssthresh == 12000
    # Congestion avoidance: one datagram more per window's worth of acknowledged bytes.
    acked = [_P(MDS, 1.4)] * 10
    for _ in acked:
        cc.on_packet_sent(MDS, 1.0)
    cc.on_packets_acked(acked, 1.5)
    assert cc.congestion_window == 12000 + MDS


def test_one_reduction_per_recovery_period() -> None:
    cc = NewReno(MDS)
    cc.congestion_window = 48000
    for _ in range(4):
        cc.on_packet_sent(MDS, 1.0)
    cc.on_packets_lost([_P(MDS, 1.0)], 2.0)
    assert cc.congestion_window == 24000
    cc.on_packets_lost([_P(MDS, 1.5)], 2.1)  # sent before the recovery started: same event
    assert cc.congestion_window == 24000
    cc.on_packets_acked([_P(MDS, 1.9)], 2.2)  # no growth for packets from before recovery
    assert cc.congestion_window == 24000
    cc.on_packets_lost([_P(MDS, 2.5)], 3.0)  # sent after: a new congestion event
    assert cc.congestion_window == 12000
    assert cc.bytes_in_flight == 0


def test_window_never_below_the_minimum() -> None:
    cc = NewReno(MDS)
    for i in range(10):
        cc.on_packet_sent(MDS, 1.0)
        cc.on_packets_lost([_P(MDS, float(i))], float(i) + 0.5)
    assert cc.congestion_window == cc.minimum_window
    cc.on_persistent_congestion()
    assert cc.congestion_window == cc.minimum_window


def test_persistent_congestion_resets_to_the_minimum() -> None:
    cc = NewReno(MDS)
    cc.congestion_window = 100_000
    cc.on_persistent_congestion()
    assert cc.congestion_window == 2 * MDS


def test_discard_removes_bytes_in_flight_only() -> None:
    cc = NewReno(MDS)
    cc.on_packet_sent(MDS, 1.0)
    cc.on_packet_sent(300, 1.0)
    window = cc.congestion_window
    cc.discard([_P(MDS, 1.0), _P(300, 1.0)])
    assert cc.bytes_in_flight == 0 and cc.congestion_window == window


# Pacing (§7.7) -----------------------------------------------------------------------------------


def test_pacer_allows_a_burst_then_spaces_packets() -> None:
    pacer = Pacer(MDS)
    assert pacer.next_send_time(1.0, MDS) is None  # no rate yet: unpaced
    pacer.update_rate(12000, 0.1)
    assert pacer.rate == pytest.approx(1.25 * 12000 / 0.1)
    for _ in range(10):  # the burst allowance: ten datagrams at once
        assert pacer.next_send_time(1.0, MDS) is None
        pacer.on_sent(1.0, MDS)
    wait = pacer.next_send_time(1.0, MDS)
    assert wait == pytest.approx(1.0 + MDS / pacer.rate)
    assert pacer.next_send_time(wait + 1e-9, MDS) is None
    # Idle time refills the bucket, but only up to the burst.
    pacer.on_sent(wait, MDS)
    assert pacer.next_send_time(100.0, 10 * MDS) is None
    assert pacer.next_send_time(100.0, 10 * MDS + 1) is not None


@settings(max_examples=200, deadline=None)
@given(
    cwnd=st.integers(2400, 10_000_000),
    srtt=st.floats(0.001, 2.0),
    sends=st.integers(1, 200),
)
def test_pacing_rate_is_respected_over_time(cwnd: int, srtt: float, sends: int) -> None:
    """Sending whenever allowed never exceeds burst + rate x elapsed."""
    pacer = Pacer(MDS)
    pacer.update_rate(cwnd, srtt)
    assert pacer.rate is not None
    now = start = 10.0
    sent = 0
    for _ in range(sends):
        wait = pacer.next_send_time(now, MDS)
        if wait is not None:
            assert wait > now or wait == pytest.approx(now)
            now = max(wait, now)
            if pacer.next_send_time(now, MDS) is not None:
                now += 1e-6  # see test_pacer_deadline_makes_progress
        pacer.on_sent(now, MDS)
        sent += MDS
    assert sent <= pacer.burst + pacer.rate * (now - start) + MDS + 1e-6


def test_pacer_deadline_makes_progress() -> None:
    """At the time the pacer named, either the packet may go or a later time is named."""
    stalls = []
    for i in range(200):
        pacer = Pacer(MDS)
        pacer.update_rate(12000 + 977 * i, 0.04 + 0.0013 * i)
        now = 1.0 + i * 0.123456
        pacer.on_sent(now, 10 * MDS)
        for _ in range(20):
            wait = pacer.next_send_time(now, MDS)
            if wait is None:
                pacer.on_sent(now, MDS)
                continue
            again = pacer.next_send_time(wait, MDS)
            if again is not None and again <= wait:
                stalls.append((i, wait))
                break
            now = wait
    assert stalls == []


def test_packets_sent_before_a_path_switch_give_the_new_path_no_rtt_sample() -> None:
    """RFC 9000 §9.4: packets sent on the old path MUST NOT contribute to RTT estimation
    (or congestion control) for the new one; the first sample comes from a packet sent
    on the new path."""
    recovery, log = _recovery_with_rtt(0.1)
    _send(recovery, log, 1, 1.0)  # on the old path
    recovery.switch_path(NewReno(MDS))
    assert not recovery.rtt.first_sample and recovery.cc.bytes_in_flight == 0
    recovery.on_ack_received(APP, ((1, 1),), 0.0, 1.5)  # e.g. read from the old socket
    assert not recovery.rtt.first_sample and log.acked == [0, 1]
    _send(recovery, log, 2, 1.6)  # on the new path
    recovery.on_ack_received(APP, ((2, 2),), 0.0, 1.9)
    assert recovery.rtt.first_sample and recovery.rtt.latest_rtt == pytest.approx(0.3)


@given(
    samples=st.lists(
        st.tuples(st.integers(1, 400_000), st.integers(0, 60_000)), min_size=2, max_size=8
    ),
    confirmed=st.booleans(),
)
def test_one_rtt_samples_match_the_estimator(
    samples: list[tuple[int, int]], confirmed: bool
) -> None:
    """The 1-RTT sample on_ack_received takes in place (handshake confirmed) moves every
    estimate exactly as RttEstimator.update does."""
    recovery = Recovery(max_ack_delay=0.025)
    recovery.handshake_confirmed = confirmed
    reference = RttEstimator()
    now = 1.0
    for pn, (rtt_us, delay_us) in enumerate(samples):
        sent_at = now
        recovery.on_one_rtt_sent(pn, sent_at, True, 100, [])
        now += rtt_us / 1e6
        recovery.on_ack_received(2, [(pn, pn)], delay_us / 1e6, now)
        reference.update(now - sent_at, delay_us / 1e6, confirmed, 0.025)
        got, want = recovery.rtt, reference
        assert (got.latest_rtt, got.min_rtt, got.smoothed_rtt, got.rttvar, got.jitter) == (
            want.latest_rtt,
            want.min_rtt,
            want.smoothed_rtt,
            want.rttvar,
            want.jitter,
        )
