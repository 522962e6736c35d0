"""ACK_FREQUENCY values that follow the path (draft-ietf-quic-ack-frequency §8):
:class:`AdaptiveAckFrequency` derives the Ack-Eliciting Threshold from the congestion
window and the Requested Max Ack Delay from the smoothed RTT, reviews them at most once
per RTT, and asks again when they changed materially or the path changed (§8.4)."""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Callable

import pytest
from adversary import Adversary
from hypothesis import given
from hypothesis import strategies as st
from simnet import (
    CLIENT_ADDR,
    SERVER_ADDR,
    LinkConfig,
    Simulation,
    StreamCollector,
    handshake,
    make_pair,
    payloads,
    send_on_new_streams,
    serve_download,
)

from quicnet.quic import AckFrequencyRequest, AdaptiveAckFrequency, QuicConnection, QuicUsageError
from quicnet.quic.ack_frequency import MAX_REQUESTED_ACK_DELAY_US, RequestValues
from quicnet.quic.recovery import K_GRANULARITY, Recovery

MSS = 1200


def fake_recovery(
    packets: float, srtt: float, *, sampled: bool = True, max_ack_delay: float = 0.025
) -> Recovery:
    """The state :meth:`AdaptiveAckFrequency.values` reads: a window of ``packets``
    maximum-sized packets and the smoothed RTT (``sampled``: from a real sample)."""
    return types.SimpleNamespace(  # type: ignore[return-value]
        cc=types.SimpleNamespace(congestion_window=int(packets * MSS)),
        pacer=types.SimpleNamespace(max_datagram_size=MSS),
        rtt=types.SimpleNamespace(smoothed_rtt=srtt, first_sample=sampled),
        max_ack_delay=max_ack_delay,
    )


# The derived values (§8.1) ------------------------------------------------------------------


def test_the_configuration_is_checked() -> None:
    for bad in (
        {"acks_per_rtt": 1},  # §8.1's one ACK per RTT leaves no room for the update lag
        {"max_ack_delay_floor": -0.001},
        {"max_ack_delay_floor": 16.384},  # 2^14 ms (RFC 9000 §18.2)
        {"reordering_threshold": -1},
    ):
        with pytest.raises(QuicUsageError):
            AdaptiveAckFrequency(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "packets", "srtt", "peer_min_us", "expected"),
    [
        # The initial window (10 packets): RFC 9000's every second packet; a quarter RTT.
        (AdaptiveAckFrequency(), 10, 0.040, 1000, (1, 10_000, 1)),
        # 120 packets: an ACK every 30 keeps four per window.
        (AdaptiveAckFrequency(), 120, 0.040, 1000, (29, 10_000, 1)),
        (AdaptiveAckFrequency(acks_per_rtt=8), 120, 0.040, 1000, (14, 5_000, 1)),
        # A LAN RTT: the delay stops at the floor, then at the peer's min_ack_delay.
        (AdaptiveAckFrequency(), 10, 0.002, 1000, (1, 1_000, 1)),
        (AdaptiveAckFrequency(max_ack_delay_floor=0.003), 10, 0.002, 1000, (1, 3_000, 1)),
        (AdaptiveAckFrequency(max_ack_delay_floor=0), 10, 0.002, 2000, (1, 2_000, 1)),
        # The delay above the RTT: a reordering threshold other than 1 would hold loss
        # detection back by more than an RTT (§8.1), so 1 it is.
        (AdaptiveAckFrequency(reordering_threshold=3), 10, 0.040, 1000, (1, 10_000, 3)),
        (AdaptiveAckFrequency(reordering_threshold=3), 10, 0.0005, 1000, (1, 1_000, 1)),
        # A 200 s RTT (a satellite gone wrong): still below 2^14 ms.
        (AdaptiveAckFrequency(acks_per_rtt=2), 2, 200.0, 1000, (1, (1 << 14) * 1000 - 1, 1)),
    ],
)
def test_the_values_follow_the_window_and_the_smoothed_rtt(
    request_: AdaptiveAckFrequency,
    packets: int,
    srtt: float,
    peer_min_us: int,
    expected: RequestValues,
) -> None:
    assert request_.values(peer_min_us, fake_recovery(packets, srtt)) == expected


def test_without_an_rtt_sample_the_delay_is_not_raised() -> None:
    """A new path before its first sample has kInitialRtt (333 ms), no estimate: the
    delay stays at what the peer may already be using (here 25 ms), not 83 ms."""
    request = AdaptiveAckFrequency()
    assert request.values(1000, fake_recovery(10, 0.333, sampled=False))[1] == 25_000
    assert request.values(1000, fake_recovery(10, 0.333, sampled=True))[1] == 83_250


@given(
    packets=st.floats(0.5, 1e7),
    srtt=st.floats(1e-6, 1000.0),
    sampled=st.booleans(),
    peer_max_ack_delay=st.floats(0.0, 16.383),
    peer_min_us=st.integers(0, MAX_REQUESTED_ACK_DELAY_US - 1),
    per_rtt=st.integers(2, 64),
    floor=st.floats(0.0, 16.383),
    reordering=st.integers(0, 1000),
)
def test_the_values_stay_within_the_drafts_bounds(
    packets: float,
    srtt: float,
    sampled: bool,
    peer_max_ack_delay: float,
    peer_min_us: int,
    per_rtt: int,
    floor: float,
    reordering: int,
) -> None:
    request = AdaptiveAckFrequency(per_rtt, floor, reordering)
    recovery = fake_recovery(packets, srtt, sampled=sampled, max_ack_delay=peer_max_ack_delay)
    threshold, delay_us, reordering_sent = request.values(peer_min_us, recovery)
    window = int(packets * MSS) // MSS
    assert threshold >= 1  # never fewer ACKs than RFC 9000's every second packet allows...
    if window >= 2 * per_rtt:  # ... and at least acks_per_rtt per window (§8.1)
        assert (threshold + 1) * per_rtt <= window
    # §4: at least the peer's min_ack_delay, below 2^14 ms; at least the floor.
    assert peer_min_us <= delay_us < MAX_REQUESTED_ACK_DELAY_US
    assert delay_us >= min(round(floor * 1e6), MAX_REQUESTED_ACK_DELAY_US - 1)
    # No longer than a fraction of the RTT (§8.1) unless a floor says so, and without a
    # sample no longer than what the peer may already use.
    cap = round(srtt * 1e6) // per_rtt
    if not sampled:
        cap = min(cap, round(peer_max_ack_delay * 1e6))
    assert delay_us <= max(cap, round(floor * 1e6), peer_min_us)
    assert reordering_sent == (reordering if delay_us <= round(srtt * 1e6) else 1)


@pytest.mark.parametrize(
    ("packets", "srtt", "new"),
    [
        (120, 0.040, None),  # what was asked
        (60, 0.040, None),  # NewReno halved the window: still two ACKs per window
        (84, 0.040, None),  # CUBIC's reduction
        (200, 0.050, None),  # growth and RTT drift short of a factor of two
        (250, 0.040, (61, 10_000, 1)),  # the window more than doubled
        (2, 0.040, (1, 10_000, 1)),  # persistent congestion: the minimum window
        (120, 0.080, (29, 20_000, 1)),  # the RTT doubled
        (120, 0.020, (29, 5_000, 1)),  # the RTT halved
    ],
)
def test_a_new_request_only_when_the_window_or_the_rtt_moved_by_a_factor_of_two(
    packets: int, srtt: float, new: RequestValues | None
) -> None:
    request = AdaptiveAckFrequency()
    current = request.values(1000, fake_recovery(120, 0.040))
    assert current == (29, 10_000, 1)
    assert request.update(current, 1000, fake_recovery(packets, srtt)) == new


def test_a_reordering_threshold_change_is_material() -> None:
    request = AdaptiveAckFrequency(reordering_threshold=3)
    current = request.values(1000, fake_recovery(10, 0.040))
    assert current == (1, 10_000, 3)
    # The RTT fell below the floor: the delay cannot fall with it, reordering must (§8.1).
    assert request.update(current, 1000, fake_recovery(10, 0.0009)) == (1, 1_000, 1)


# Two endpoints ------------------------------------------------------------------------------


class Watch:
    """Per step of a simulation: the requests the data sender made (time, sequence,
    values, window in packets), its reviews, and §7: the PTO never counts less than the
    max ack delay the peer is using, and leaves it out only while more ack-eliciting
    packets are in flight than the Ack-Eliciting Threshold the peer is using (with a
    Reordering Threshold other than 0). ``shortened`` counts the steps it did."""

    def __init__(self, sim: Simulation, sender: QuicConnection, receiver: QuicConnection) -> None:
        self.sender = sender
        self.receiver = receiver
        self.requests: list[tuple[float, int, RequestValues, int]] = []
        self.reviews: list[float] = []
        #: Losses the sender detected while the receiver used a threshold above 1.
        self.losses_under_threshold = 0
        self.shortened = 0
        self._lost = sender.recovery.packets_lost
        sim.checks.append(self)

    def __call__(self, sim: Simulation) -> None:
        acks = self.sender.acks
        recovery = self.sender.recovery
        request = acks.request
        if request is not None and (not self.requests or self.requests[-1][1] != request[2]):
            assert acks.request_values is not None
            packets = recovery.cc.congestion_window // MSS
            self.requests.append((sim.now, request[2], acks.request_values, packets))
        if math.isfinite(acks.review_at) and (
            not self.reviews or acks.review_at != self.reviews[-1]
        ):
            self.reviews.append(acks.review_at)
        # §7: the PTO counts the largest delay the peer may be using ...
        peer = self.receiver.acks
        assert recovery.max_ack_delay >= peer.max_ack_delay
        # ... and leaves it out only when the peer acknowledges without waiting for it.
        rtt = recovery.rtt
        pto = recovery.probe_timeout()
        rfc = rtt.smoothed_rtt + max(4 * rtt.rttvar, K_GRANULARITY)
        if pto < rfc + peer.max_ack_delay:
            in_flight = recovery.spaces[2].ack_eliciting_in_flight
            assert in_flight > peer.ack_eliciting_threshold and peer.reordering_threshold != 0
            assert pto == rfc
            self.shortened += 1
        if recovery.packets_lost > self._lost and self.receiver.acks.ack_eliciting_threshold > 1:
            self.losses_under_threshold += recovery.packets_lost - self._lost
        self._lost = recovery.packets_lost


def download(
    server: dict[str, object],
    size: int,
    *,
    link: LinkConfig | None = None,
    seed: int = 1,
    timeout: float = 60.0,
    attack: Callable[[Simulation], object] | None = None,
) -> tuple[Simulation, Watch, float]:
    """The client fetches ``size`` bytes from the server: the simulation, the watch on the
    server's requests, and the simulated seconds the download took (checked intact).
    ``attack`` starts as the request goes out."""
    sim = make_pair(
        seed=seed,
        c2s=link or LinkConfig(latency=0.02),
        s2c=link or LinkConfig(latency=0.02),
        server=server,
        client={"congestion_control": server.get("congestion_control", "newreno")},
        use_endpoint=False,
    )
    body = payloads(seed, [size])[0]
    down = serve_download(sim, body)
    handshake(sim)
    client = sim.client.connection
    watch = Watch(sim, sim.server.connection, client)
    start = sim.now
    sent = send_on_new_streams(client, [b"get"])
    if attack is not None:
        attack(sim)
    sim.run_until(lambda: down.complete(sent), timeout=timeout, max_steps=2_000_000)
    assert bytes(down.data[next(iter(sent))]) == body
    return sim, watch, sim.now - start


def test_the_threshold_follows_the_window_as_slow_start_grows_it() -> None:
    """A 2 MB download over a 40 ms RTT: the first request (at handshake confirmation)
    asks for RFC 9000's threshold and a quarter of the RTT; as slow start doubles the
    window the server asks again, with the next sequence numbers and larger thresholds,
    at most once per RTT, and the client applies the newest. It acknowledges about a
    tenth as often as without a request."""
    plain = download({}, 2_000_000)
    baseline_acks = plain[0].c2s.stats.datagrams
    sim, watch, took = download({"ack_frequency": AdaptiveAckFrequency()}, 2_000_000)
    server = sim.server.connection
    client = sim.client.connection
    requests = watch.requests
    assert requests[0][1:3] == (0, (1, 10_000, 1))
    assert [r[1] for r in requests] == list(range(len(requests)))  # §4: 0, 1, 2, ...
    assert len(requests) >= 4
    thresholds = [r[2][0] for r in requests]
    assert thresholds == sorted(thresholds) and thresholds[-1] >= 40  # slow start, no loss
    for _, _, (threshold, delay_us, _), packets in requests:
        assert threshold == 1 or (threshold + 1) * 4 <= packets  # four ACKs per window
        assert 9_000 <= delay_us <= 11_000  # a quarter of the 40 ms RTT
    # The client applied the newest.
    assert client.acks.largest_sequence == requests[-1][1]
    assert client.acks.ack_eliciting_threshold == thresholds[-1]
    assert client.acks.max_ack_delay == requests[-1][2][1] / 1e6
    # At most one review, and so at most one request, per RTT (§8.1).
    min_rtt = server.recovery.rtt.min_rtt
    assert min_rtt >= 0.04
    for earlier, later in itertools.pairwise(watch.reviews):
        assert later - earlier >= min_rtt
    for earlier_r, later_r in itertools.pairwise(requests):
        assert later_r[0] - earlier_r[0] >= min_rtt
    assert len(watch.reviews) <= took / min_rtt + 2
    # Far fewer ACKs; the transfer is hardly slower (the pacer spreads the bursts, §8.2).
    assert sim.c2s.stats.datagrams * 5 < baseline_acks
    assert took < plain[2] * 1.1


def test_a_fixed_request_stays_as_configured() -> None:
    """The game server's kind of request is never reviewed: one frame, whatever the
    window does."""
    sim, watch, _ = download({"ack_frequency": AckFrequencyRequest(0.05)}, 1_000_000)
    server = sim.server.connection
    assert [r[1:3] for r in watch.requests] == [(0, (1, 50_000, 1))]
    assert watch.reviews == [] and server.acks.review_at == math.inf
    assert sim.client.connection.acks.max_ack_delay == 0.05


@pytest.mark.parametrize("cc", ["newreno", "cubic", "bbr"])
def test_a_lossy_transfer_completes_and_losses_are_detected_under_a_raised_threshold(
    cc: str,
) -> None:
    """A 5 MB/s path with 1% loss and 1% reordering: the data arrives intact, the server
    detects losses while the client acknowledges only after several packets (the gap
    still brings an immediate ACK: Reordering Threshold 1), and it takes about as long
    as with RFC 9000's acknowledgments."""
    link = LinkConfig(
        latency=0.02,
        loss=0.01,
        reorder=0.01,
        reorder_delay=0.01,
        bandwidth=5e6,
        queue_limit=100_000,
    )
    options: dict[str, object] = {"congestion_control": cc}
    _, _, plain = download(options, 3_000_000, link=link, timeout=120.0)
    options["ack_frequency"] = AdaptiveAckFrequency()
    sim, watch, took = download(options, 3_000_000, link=link, timeout=120.0)
    assert sim.s2c.stats.dropped > 10
    assert max(r[2][0] for r in watch.requests) >= 3
    assert watch.losses_under_threshold > 0
    assert took < plain * 1.35


def test_after_a_migration_the_new_path_gets_fresh_values() -> None:
    """The client uploads with an adaptive request; its window grows and the server
    acknowledges every few dozen packets. It moves to an address whose path has a
    quarter of the RTT: once the move is confirmed it asks again (§8.4) with the fresh
    window's threshold, and as soon as the new path's RTT is measured a delay a quarter
    of that; the upload completes."""
    sim = make_pair(
        client={"ack_frequency": AdaptiveAckFrequency()},
        c2s=LinkConfig(latency=0.02),
        s2c=LinkConfig(latency=0.02),
    )
    collector = StreamCollector()
    sim.server.on_event = collector
    handshake(sim)
    client = sim.client.connection
    server = sim.server.connection
    watch = Watch(sim, client, server)
    sent = send_on_new_streams(client, payloads(3, [6_000_000]))
    sim.run_until(lambda: server.acks.ack_eliciting_threshold >= 20, what="a grown threshold")
    before = client.acks.request
    assert before is not None and before[2] >= 2
    # The new path: another address, a 10 ms RTT.
    sim.c2s.config.latency = sim.s2c.config.latency = 0.005
    sim.rebind_client(("10.0.7.1", CLIENT_ADDR[1]))
    client.migrate(sim.now, port_only=False)
    sim.run_until(lambda: client.paths.current is not None and not client.paths.current.validating)
    after = client.acks.request
    assert after is not None and after[2] == before[2] + 1
    assert client.acks.request_values is not None
    assert client.acks.request_values[0] == 1  # the fresh window: the initial one
    sim.run_until(lambda: server.acks.max_ack_delay <= 0.003, what="the new RTT's delay")
    assert server.acks.max_ack_delay >= 0.0022  # a quarter of about 10 ms
    sim.run_until(lambda: collector.complete(sent), timeout=60.0, max_steps=2_000_000)
    assert bytes(collector.data[next(iter(sent))]) == next(iter(sent.values()))
    assert server.acks.largest_sequence == client.acks.request[2]  # type: ignore[index]
    assert server.acks.ack_eliciting_threshold > 1  # the new window grew too
    assert server.peer_address == sim.client.address
    assert watch.requests[-1][1] > after[2]


def test_the_pto_leaves_out_the_ack_delay_only_while_the_peer_would_not_wait() -> None:
    """§7 under attack: once the client acknowledges only every dozen packets, every
    other datagram each way is dropped for 50 ms and everything delivered is replayed.
    At every step the watch checks that the server's PTO leaves out the client's
    max_ack_delay only while more ack-eliciting packets are in flight than the client's
    Ack-Eliciting Threshold (and never with a Reordering Threshold of 0); it did so for
    much of the transfer, which completes intact."""

    def attack(sim: Simulation) -> None:
        adversary = Adversary(sim, seed=7)
        armed = [False]

        def when_the_threshold_grew(sim: Simulation) -> None:
            values = sim.server.connection.acks.request_values
            if not armed[0] and values is not None and values[0] >= 11:
                armed[0] = True
                adversary.thin_and_replay(SERVER_ADDR, CLIENT_ADDR, duration=0.05)
                adversary.thin_and_replay(CLIENT_ADDR, SERVER_ADDR, duration=0.05)

        sim.checks.append(when_the_threshold_grew)

    sim, watch, _ = download(
        {"ack_frequency": AdaptiveAckFrequency(reordering_threshold=3)},
        2_000_000,
        attack=attack,
    )
    assert sim.server.connection.recovery.packets_lost > 10
    assert watch.losses_under_threshold > 0
    assert watch.shortened > 100
