"""The ``quicnet`` command: OpenSSL's verbs and flags over :mod:`quicnet.crypto`."""
