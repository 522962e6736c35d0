"""Drivers that own sockets and clocks and run the sans-I/O QUIC core.

- :mod:`quicnet.io.udp`: non-blocking UDP for tick-driven loops (``poll``).
- :mod:`quicnet.io.aio`: asyncio (uvloop when installed).
"""
