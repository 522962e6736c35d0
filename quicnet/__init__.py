"""quicnet: encrypted, low-latency networking for Python.

Layers, bottom up: :mod:`quicnet.crypto` (keys, certificates, AEAD, key
derivation over pyca/cryptography), then TLS 1.3, QUIC and the real-time layer.
"""

from quicnet.errors import QuicnetError

__all__ = ["QuicnetError", "__version__"]

__version__ = "0.1.0.dev0"
