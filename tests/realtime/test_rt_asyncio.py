"""The asyncio API on loopback: ``quicnet.serve``/``quicnet.connect``/``events()`` on the
default loop, on uvloop, and through ``quicnet.run`` (uvloop when installed)."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import quicnet

IDENTITY = quicnet.dev_identity()
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
Runner = Callable[[Coroutine[Any, Any, Any]], Any]


def _uvloop_run(main: Coroutine[Any, Any, Any]) -> Any:
    import uvloop

    return uvloop.run(main)


RUNNERS: dict[str, Runner] = {"asyncio": asyncio.run, "quicnet.run": quicnet.run}
if HAVE_UVLOOP:
    RUNNERS["uvloop"] = _uvloop_run


async def _exchange() -> tuple[str, list[object], list[object]]:
    """A server echoing, a client sending on every channel; the events of each side."""
    loop_module = type(asyncio.get_running_loop()).__module__
    server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY)
    client = await quicnet.connect(server.address, pin=IDENTITY.fingerprint)
    server_events: list[object] = []
    client_events: list[object] = []
    try:
        assert client.connected and client.client_id in server.peers

        async def serve() -> None:
            async for event in server.events():
                server_events.append(event)
                if isinstance(event, quicnet.MessageReceived):
                    server.send(event.peer, event.channel, event.data)
                if isinstance(event, quicnet.PeerDisconnected):
                    return

        async def play() -> None:
            got: set[int] = set()
            client.send(0, b"ordered")
            client.send(2, b"unordered" * 500)
            while len(got) < 4:
                for channel in {1, 3} - got:  # unreliable: again until the echo
                    client.send(channel, b"datagram %d" % channel)
                try:
                    event = await asyncio.wait_for(client.next_event(), 0.05)
                except TimeoutError:
                    continue
                client_events.append(event)
                if isinstance(event, quicnet.MessageReceived):
                    got.add(event.channel)
            assert client.stats().messages_in >= 4
            client.close("done")
            async for event in client.events():  # the Disconnected comes last, then it ends
                client_events.append(event)

        async with asyncio.timeout(30):  # only stops a broken run
            await asyncio.gather(serve(), play())
    finally:
        client.close()
        server.close()
    return loop_module, server_events, client_events


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_serve_connect_and_events(runner: str) -> None:
    loop_module, server_events, client_events = RUNNERS[runner](_exchange())
    if runner == "uvloop" or (runner == "quicnet.run" and HAVE_UVLOOP):
        assert loop_module.startswith("uvloop")
    received = [e for e in client_events if isinstance(e, quicnet.MessageReceived)]
    assert {(e.channel, e.data) for e in received} >= {
        (0, b"ordered"),
        (2, b"unordered" * 500),
        (1, b"datagram 1"),
        (3, b"datagram 3"),
    }
    assert [e.channel for e in received if e.channel in (0, 2)].count(0) == 1
    assert client_events[-1] == quicnet.Disconnected(0, quicnet.DisconnectReason.CLOSED, "done")
    assert isinstance(server_events[0], quicnet.PeerConnected)
    peer = server_events[0].peer
    assert server_events[-1] == quicnet.PeerDisconnected(
        peer, quicnet.DisconnectReason.CLOSED_BY_PEER, "done"
    )


def test_uvloop_is_what_quicnet_run_uses_when_installed() -> None:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    module = quicnet.run(which())
    assert module.startswith("uvloop") == HAVE_UVLOOP


def test_connect_refuses_an_unverifiable_or_wrongly_pinned_server() -> None:
    async def main() -> str:
        server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY)
        try:
            with pytest.raises(quicnet.RealtimeUsageError, match="cannot be verified"):
                await quicnet.connect(server.address)
            client = await quicnet.connect(server.address, pin=bytes(32), wait_connected=False)
            async with asyncio.timeout(30):
                event = await client.next_event()
            assert isinstance(event, quicnet.Disconnected)
            with pytest.raises(ConnectionError):
                await client.wait_connected()
            return f"{event.reason.name}: {event.message}"
        finally:
            server.close()

    outcome = asyncio.run(main())
    assert outcome == "CERTIFICATE_REJECTED: peer certificate matches no pinned fingerprint"


@pytest.mark.parametrize("clients", [0, 3])
def test_server_events_end_after_close_with_every_sessions_end(clients: int) -> None:
    """``async for e in server.events()`` in one task ends when another closes the server,
    after the SERVER_SHUTDOWN of every session (it hung with no peer, and kept only the
    first PeerDisconnected with several)."""

    async def main() -> tuple[list[object], list[object]]:
        server = await quicnet.serve(("127.0.0.1", 0), identity=IDENTITY)
        peers = [
            await quicnet.connect(server.address, pin=IDENTITY.fingerprint) for _ in range(clients)
        ]
        seen: list[object] = []

        async def consume() -> None:
            async for event in server.events():
                seen.append(event)
                if len(seen) == clients:  # every PeerConnected: time to close
                    server.close("maintenance")

        try:
            async with asyncio.timeout(30):  # only stops a broken run
                task = asyncio.create_task(consume())
                if not clients:
                    await asyncio.sleep(0)  # a yield (no wait): the consumer is now in events()
                    server.close("maintenance")
                await task
                told = [[e async for e in p.events()][-1] for p in peers]
        finally:
            for p in peers:
                p.close()
            server.close()
        return seen, told

    seen, told = asyncio.run(main())
    connected = [e.peer for e in seen if isinstance(e, quicnet.PeerConnected)]
    assert len(connected) == clients
    assert seen[clients:] == [
        quicnet.PeerDisconnected(p, quicnet.DisconnectReason.SERVER_SHUTDOWN, "maintenance")
        for p in connected
    ]
    assert (
        told
        == [quicnet.Disconnected(0, quicnet.DisconnectReason.SERVER_SHUTDOWN, "maintenance")]
        * clients
    )
