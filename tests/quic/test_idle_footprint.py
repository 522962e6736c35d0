"""What an idle connection keeps for the garbage collector to track (issue 8).

Every surviving tracked object counts toward the collector's thresholds, so
queues of rare frames and small counters are not lists until they hold
something: the pending NEW_CONNECTION_ID / RETIRE_CONNECTION_ID / MAX_STREAMS /
MAX_STREAM_DATA queues start (and, drained, end) as the shared empty tuple, the
stream limits, unanswered PATH_CHALLENGE data, retired-CID bookkeeping and the
endpoint's routing changes are tuples of atomics, which a collection untracks.
"""

from __future__ import annotations

import gc

from simnet import handshake, make_pair

from quicnet.quic import QuicConnection
from quicnet.quic.endpoint import QuicEndpoint


def _connected() -> tuple[QuicConnection, QuicConnection]:
    sim = make_pair(seed=31)
    handshake(sim)
    sim.run_for(1.0)  # NEW_CONNECTION_IDs sent and acknowledged both ways
    client = sim.client.impl
    endpoint = sim.server.impl
    assert isinstance(client, QuicConnection) and isinstance(endpoint, QuicEndpoint)
    (server,) = set(endpoint.connections.values())
    return client, server


def test_an_idle_connection_keeps_no_list_for_its_rare_frames_or_stream_limits() -> None:
    for conn in _connected():
        pending = conn.pending
        assert pending.new_connection_ids == () and pending.retire_connection_ids == ()
        assert pending.max_streams == () and pending.max_stream_data == ()
        assert len(conn.cids.local) > 1  # CIDs were issued: the queue was used, then dropped
        gc.collect()
        gc.collect()  # a tuple of tuples: the inner ones are untracked first
        streams = conn.streams
        for small in (
            streams.max_streams_local,
            streams.max_streams_remote,
            streams.opened_remote,
            streams.next_local_index,
            conn.cids.routing_changes,
            conn.paths.current.challenges,
        ):
            assert isinstance(small, tuple) and not gc.is_tracked(small)


def test_a_queued_frame_gets_its_own_list_and_the_empty_tuple_stays_shared() -> None:
    client, server = _connected()
    client.pending.queue_max_streams(True)
    client.pending.queue_max_streams(True)  # once per stream type
    assert client.pending.max_streams == [True]
    assert server.pending.max_streams == ()  # the other connection's is untouched
