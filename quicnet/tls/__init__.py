"""Sans-I/O TLS 1.3 (RFC 8446): work in progress.

Landed so far: the handshake message codec (:mod:`~quicnet.tls.messages`),
extension bodies (:mod:`~quicnet.tls.extensions`), the key schedule and
transcript hash (:mod:`~quicnet.tls.key_schedule`), alerts and typed errors.
The client and server state machines, the record layer and the asyncio API
come next (issue 3).
"""
