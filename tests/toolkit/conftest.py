"""Fixtures for the crypto toolkit tests."""

from __future__ import annotations

import pytest
from toolkit_helpers import Chain, build_chain

from quicnet.crypto import PrivateKey, generate_private_key


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    """One RSA-2048 key per module: RSA key generation is slow."""
    return generate_private_key("RSA", rsa_bits=2048)


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()
