"""1-RTT packet protection keys and their key phases (RFC 9001 §6).

One object holds what a key update touches: the sending key and its phase
bit, the current and next receiving keys (the next ones derived ahead, so a
packet with a flipped bit is opened without a timing signal, §6.3), the old
ones for late packets, and when an update may start again (§6.1: after the
peer acknowledged a packet of the current phase). Updates start by
themselves well before the AEAD confidentiality limit (§6.6).
"""

from __future__ import annotations

from quicnet.quic.errors import TransportError, TransportErrorCode
from quicnet.quic.protection import PacketKey

__all__ = ["KEY_UPDATE_PACKETS", "OneRttKeys"]

#: Packets sealed in one key phase before an update (AES-GCM's limit is 2^23, §6.6).
KEY_UPDATE_PACKETS = 1 << 22


class OneRttKeys:
    """The 1-RTT keys of one connection, both directions, across key updates."""

    __slots__ = (
        "first_packet_in_phase",
        "key_phase",
        "next_recv",
        "packets_in_phase",
        "phase_started",
        "previous_recv",
        "recv",
        "recv_phase",
        "send",
        "update_after_packets",
        "update_confirmed",
        "updates",
    )

    def __init__(self, update_after_packets: int = KEY_UPDATE_PACKETS) -> None:
        self.send: PacketKey | None = None
        self.recv: PacketKey | None = None
        self.key_phase = 0  # the bit we send
        self.recv_phase = 0  # the bit of the keys in ``recv``
        self.next_recv: PacketKey | None = None
        self.previous_recv: PacketKey | None = None
        self.packets_in_phase = 0
        #: The peer acknowledged a packet sent in the current phase (§6.1).
        self.update_confirmed = True
        self.first_packet_in_phase = 0
        self.updates = 0
        #: Packets sealed in one phase before an automatic update (at most the AEAD's
        #: limit, §6.6).
        self.update_after_packets = min(update_after_packets, KEY_UPDATE_PACKETS)
        #: When the first packet of the current sending phase was sealed (None: not yet).
        self.phase_started: float | None = None

    def install_recv(self, key: PacketKey, next_secret: bytes | None = None) -> None:
        """The peer's first 1-RTT key; the next phase's is derived ahead (RFC 9001 §6.3),
        from ``next_secret`` when the caller derived it (else here)."""
        self.recv = key
        self.next_recv = key.next_generation(next_secret)

    def open_flipped(
        self,
        header: bytes,
        ciphertext: bytes | memoryview,
        packet_number: int,
        phase: int,
        largest_received: int,
        *,
        may_follow: bool,
        next_packet_number: int,
    ) -> bytes:
        """Open a packet whose key-phase bit differs from ``recv_phase`` (§6.2-6.3).

        An older packet number uses the previous keys; a newer one the next keys,
        and authenticating one is the peer's key update, which we follow. Nothing
        changes unless the packet decrypts (DecryptError propagates): a forged bit
        flip is just a packet that does not open. ``may_follow`` False (a server
        before its handshake completed) makes an authenticated update an error.
        """
        previous = self.previous_recv
        if previous is not None and packet_number < largest_received:
            return previous.open(header, ciphertext, packet_number)
        current = self.recv
        assert current is not None
        following = self.next_recv or current.next_generation()
        payload = following.open(header, ciphertext, packet_number)
        if not may_follow:
            raise TransportError(
                TransportErrorCode.KEY_UPDATE_ERROR, "key update before the handshake was confirmed"
            )
        self.previous_recv = current
        self.recv = following
        self.next_recv = following.next_generation()
        self.recv_phase = phase
        if phase != self.key_phase:  # the peer started it: follow (§6.2)
            self.update_send(next_packet_number)
        return payload

    def update_send(self, next_packet_number: int) -> None:
        """Move the sending side to the next key phase."""
        send = self.send
        assert send is not None
        self.send = send.next_generation()
        self.first_packet_in_phase = next_packet_number
        self.key_phase ^= 1
        self.packets_in_phase = 0
        self.phase_started = None
        self.updates += 1

    def initiate(self, next_packet_number: int) -> None:
        """Start a key update (§6.1); the caller checked it is allowed."""
        self.update_send(next_packet_number)
        self.update_confirmed = False

    def on_acked(self, largest_acked_packet: int) -> None:
        """§6.1: an acknowledged packet of the current phase allows the next update."""
        if not self.update_confirmed and largest_acked_packet >= self.first_packet_in_phase:
            self.update_confirmed = True

    def due(self) -> bool:
        """Enough packets for an automatic update (§6.6), and one may start."""
        return self.packets_in_phase >= self.update_after_packets and self.update_confirmed

    def update_deadline(self, interval: float | None) -> float | None:
        """When a timed update falls due (``interval`` seconds into the phase), or None."""
        if interval is None or self.phase_started is None or not self.update_confirmed:
            return None
        return self.phase_started + interval
