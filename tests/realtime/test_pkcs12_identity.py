"""A PKCS#12 file (RFC 7292) as the real-time server's identity: ``identity=bundle.identity()``."""

from __future__ import annotations

import asyncio

import quicnet
from quicnet.crypto import export_pkcs12, load_pkcs12


def test_server_identity_from_a_p12() -> None:
    dev = quicnet.dev_identity()
    data = export_pkcs12(
        dev.private_key, dev.certificate, [dev.trust_root], name="game", password=b"pw"
    )
    identity = load_pkcs12(data, b"pw").identity()
    assert identity.certificate_chain == (dev.certificate,)  # the self-signed root stays home

    async def main() -> quicnet.RealtimeEvent:
        server = await quicnet.serve(("127.0.0.1", 0), identity=identity)
        try:
            # The client pins the leaf that went into the .p12: only that key can answer.
            client = await quicnet.connect(server.address, pin=dev.fingerprint)
            client.send(0, b"hello")
            event = await asyncio.wait_for(server.next_event(), 10)
            client.close()
            return event
        finally:
            server.close()

    assert isinstance(quicnet.run(main()), quicnet.PeerConnected)
