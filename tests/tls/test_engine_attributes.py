"""The TLS engine keeps its state in slots: with the role's own attributes an engine has
~50, more than CPython 3.11 shares between instances' dictionaries (30 keys), so in a
dictionary each engine grew its own through resizes and its attribute accesses went
unspecialized. What is left in an engine's ``__dict__`` is the role's, under that limit,
through a whole handshake."""

from __future__ import annotations

import time

from quicnet.crypto import dev_identity
from quicnet.tls import ClientConfig, HandshakeComplete, ServerConfig, TLSConnection
from quicnet.tls.engine import TLSEngine

#: CPython 3.11's SHARED_KEYS_MAX_SIZE: instances' dictionaries share keys up to it.
SHARED_KEYS_LIMIT = 30


def test_engines_keep_only_their_role_in_a_dictionary_through_a_handshake() -> None:
    identity = dev_identity()
    client = TLSConnection.client(
        ClientConfig(server_name="localhost", trust_roots=[identity.trust_root])
    )
    server = TLSConnection.server(
        ServerConfig(certificate_chain=identity.certificate_chain, private_key=identity.private_key)
    )
    now = time.time()
    client.start(now)
    for _ in range(10):
        server.receive_data(client.data_to_send(), now)
        client.receive_data(server.data_to_send(), now)
        if client.handshake_complete and server.handshake_complete:
            break
    assert isinstance(client.next_event(), HandshakeComplete)
    engine_state = set(TLSEngine.__slots__)
    for connection in (client, server):
        engine = connection.engine
        assert not engine_state & set(vars(engine))  # the engine's state: slots only
        assert len(vars(engine)) < SHARED_KEYS_LIMIT
        assert engine.state == "CONNECTED" and engine.handshake_complete
