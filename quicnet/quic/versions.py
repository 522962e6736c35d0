"""QUIC versions and their per-version constants (RFC 9001 §5.2, RFC 9369 §3)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["VERSION_PARAMS", "QuicVersion", "VersionParams", "is_reserved_version"]


class QuicVersion(enum.IntEnum):
    """The QUIC versions spoken: 1 (RFC 9000) and 2 (RFC 9369)."""

    V1 = 0x00000001
    V2 = 0x6B3343CF


@dataclass(frozen=True, slots=True)
class VersionParams:
    """What differs between versions: the Initial salt, HKDF labels and Retry integrity
    key (RFC 9001 §5.2, §5.8; RFC 9369 §3.3), and the long-header type bits (§3.2)."""

    initial_salt: bytes
    key_label: bytes
    iv_label: bytes
    hp_label: bytes
    ku_label: bytes
    retry_key: bytes
    retry_nonce: bytes
    #: Long-header type bits for Initial, 0-RTT, Handshake, Retry.
    initial_type: int
    zero_rtt_type: int
    handshake_type: int
    retry_type: int


VERSION_PARAMS: dict[int, VersionParams] = {
    QuicVersion.V1: VersionParams(
        initial_salt=bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
        key_label=b"quic key",
        iv_label=b"quic iv",
        hp_label=b"quic hp",
        ku_label=b"quic ku",
        retry_key=bytes.fromhex("be0c690b9f66575a1d766b54e368c84e"),
        retry_nonce=bytes.fromhex("461599d35d632bf2239825bb"),
        initial_type=0,
        zero_rtt_type=1,
        handshake_type=2,
        retry_type=3,
    ),
    QuicVersion.V2: VersionParams(
        initial_salt=bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
        key_label=b"quicv2 key",
        iv_label=b"quicv2 iv",
        hp_label=b"quicv2 hp",
        ku_label=b"quicv2 ku",
        retry_key=bytes.fromhex("8fb4b01b56ac48e260fbcbcead7ccc92"),
        retry_nonce=bytes.fromhex("d86969bc2d7c6d9990efb04a"),
        initial_type=1,
        zero_rtt_type=2,
        handshake_type=3,
        retry_type=0,
    ),
}


def is_reserved_version(version: int) -> bool:
    """RFC 9000 §15: versions 0x?a?a?a?a are reserved to exercise negotiation."""
    return version & 0x0F0F0F0F == 0x0A0A0A0A
