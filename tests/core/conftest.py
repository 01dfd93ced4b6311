"""Fixtures for the verification tests: more RSA keys, and a real JWKS server on loopback.

``signer`` and ``jwks_file`` come from tests/conftest.py; ManualClock lives in tests/support/jwks.py.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from devkit.loopback import JwksServer
from devkit.signing import DemoSigner
from tests.support.jwks import ManualClock


@pytest.fixture(scope="session")
def other_signer() -> DemoSigner:
    """A legitimate key of another JWKS, not configured here (kid k2)."""
    return DemoSigner("k2")


@pytest.fixture(scope="session")
def attacker_key() -> DemoSigner:
    """An attacker's RSA key (kid attacker-1)."""
    return DemoSigner("attacker-1")


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(1000.0)
