"""A chat room over quicnet: one server, any number of clients, each in its own terminal.

    python examples/chat.py --serve                   # prints the address and the pin
    python examples/chat.py --connect 127.0.0.1:7777 --pin AB:CD:... --name alice

Type a line and press Enter to say it; Ctrl-D (Ctrl-Z Enter on Windows) or
Ctrl-C leaves. Everything goes on channel 0, RELIABLE_ORDERED: every line
arrives, once, in the order it was said. The server relays each line to
everyone and replays the last few to whoever joins.

``--seconds S`` ends either side after S seconds (for scripted runs: a
client whose input ends stays until then, so it still sees what others say).
"""

from __future__ import annotations

import argparse
import collections
import queue
import sys
import threading
import time

import quicnet


class Channel:
    """The channel this chat uses. (A dotted name: in a ``match`` pattern a bare name
    would capture whatever is there, a dotted one compares.)"""

    CHAT = 0  # channel 0 of the default table: RELIABLE_ORDERED


HISTORY = 20  # lines a newcomer is shown


# The server ------------------------------------------------------------------------------------


def serve(host: str, port: int, seconds: float | None) -> None:
    # A fresh development certificate (from a throwaway CA); clients trust it by its
    # fingerprint, the "pin", so no CA is needed on their side.
    identity = quicnet.dev_identity()
    names: dict[int, str] = {}  # peer id -> the name its client gave

    def accept(request: quicnet.ConnectRequest) -> bool | str:
        # Runs once per client, after the encrypted handshake and before PeerConnected.
        # The client's token is its name here; returning a string refuses it with that text.
        name = request.token.decode("utf-8", "replace").strip() or f"guest{request.peer}"
        if name in names.values():
            return f"the name {name!r} is taken"
        names[request.peer] = name
        return True

    server = quicnet.Server((host, port), identity=identity, accept=accept)
    host, port = server.address
    print(f"chat server on {host}:{port}", flush=True)
    print(f"pin {identity.fingerprint_text}", flush=True)
    print(
        f"join with: python examples/chat.py --connect {host}:{port}"
        f" --pin {identity.fingerprint_text} --name NAME",
        flush=True,
    )
    history: collections.deque[bytes] = collections.deque(maxlen=HISTORY)

    def say(line: str) -> None:
        print(line, flush=True)
        data = line.encode()
        history.append(data)
        server.broadcast(Channel.CHAT, data)  # to every connected peer

    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            # poll() sends what is due, waits up to the timeout for packets, and returns
            # what happened meanwhile. A chat needs no tick: wait up to 0.1 s at a time.
            for event in server.poll(timeout=0.1):
                match event:
                    case quicnet.PeerConnected(peer=peer):
                        with server.batch():  # the replay leaves in as few packets as it can
                            for old in history:
                                server.send(peer, Channel.CHAT, old)
                        say(f"* {names[peer]} joined")
                    case quicnet.MessageReceived(peer=peer, channel=Channel.CHAT, data=data):
                        say(f"{names[peer]}: {data.decode('utf-8', 'replace')}")
                    case quicnet.PeerDisconnected(peer=peer, reason=reason):
                        say(f"* {names.pop(peer, '?')} left ({reason.value})")
    except KeyboardInterrupt:
        pass
    finally:
        server.close()  # every client sees SERVER_SHUTDOWN


# The client ------------------------------------------------------------------------------------


def read_lines(into: queue.Queue[str | None]) -> None:
    """Stdin, line by line, from a thread: the network loop never blocks on the keyboard."""
    for line in sys.stdin:
        into.put(line.rstrip("\n"))
    into.put(None)  # end of input


def chat(address: tuple[str, int], pin: str, name: str, seconds: float | None) -> int:
    # The client verifies the server by its certificate's fingerprint; the name rides
    # along as the connect token, for the server's accept hook.
    client = quicnet.Client(address, pin=pin, token=name.encode())
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=read_lines, args=(lines,), daemon=True).start()
    deadline = None if seconds is None else time.monotonic() + seconds
    typing = True
    try:
        while deadline is None or time.monotonic() < deadline:
            # What was typed goes out at once; before Connected it waits and goes then.
            while typing and not lines.empty():
                line = lines.get()
                if line is None:
                    typing = False
                    if deadline is None:
                        return 0  # Ctrl-D: leave
                elif line:
                    client.send(Channel.CHAT, line.encode())
            for event in client.poll(timeout=0.05):
                match event:
                    case quicnet.Connected(client_id=me):
                        print(f"* connected as {name} (peer {me})", flush=True)
                    case quicnet.MessageReceived(channel=Channel.CHAT, data=data):
                        print(data.decode("utf-8", "replace"), flush=True)
                    case quicnet.Disconnected(reason=reason, message=message):
                        print(f"* disconnected: {reason.value} {message}", flush=True)
                        return 1
    except KeyboardInterrupt:
        pass
    finally:
        client.close()  # the others see us leave
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--serve", action="store_true", help="run the chat server")
    role.add_argument("--connect", metavar="HOST:PORT", help="join the server there")
    parser.add_argument("--host", default="127.0.0.1", help="server: the address to bind")
    parser.add_argument("--port", type=int, default=7777, help="server: the port (0: any)")
    parser.add_argument("--pin", help="client: the server's fingerprint, as it printed it")
    parser.add_argument("--name", default="", help="client: the name others see")
    parser.add_argument("--seconds", type=float, help="leave after this many seconds")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.host, args.port, args.seconds)
        return 0
    if not args.pin:
        parser.error("--connect needs --pin (the server prints it)")
    host, _, port = args.connect.rpartition(":")
    return chat((host.strip("[]"), int(port)), args.pin, args.name, args.seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
