"""Sans-I/O QUIC (RFC 9000/9001/9002/9221/9369): work in progress.

Landed so far: versions (v1, v2), packet and header protection with
reusable contexts, packet headers (long, short, Version Negotiation, Retry),
packet-number coding, frames, transport parameters, varints. The connection,
recovery, streams and the server endpoint come next (issue 4).
"""
