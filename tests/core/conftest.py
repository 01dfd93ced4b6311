"""Fixtures for the verification tests: generated RSA keys, JWKS files, and a real JWKS server on loopback."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Iterator

import pytest

from devkit.loopback import JwksServer  # noqa: F401 - tests import it from here
from devkit.signing import DemoSigner


class ManualClock:
    """A clock the test moves by hand (for refetch intervals and token times)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port_url() -> str:
    """A loopback URL on a port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


@pytest.fixture(scope="session")
def signer() -> DemoSigner:
    """The key the configured JWKS holds (kid k1)."""
    return DemoSigner("k1")


@pytest.fixture(scope="session")
def other_signer() -> DemoSigner:
    """A legitimate key of another JWKS, not configured here (kid k2)."""
    return DemoSigner("k2")


@pytest.fixture(scope="session")
def attacker_key() -> DemoSigner:
    """An attacker's RSA key (kid attacker-1)."""
    return DemoSigner("attacker-1")


@pytest.fixture(scope="session")
def jwks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jwks")


@pytest.fixture(scope="session")
def jwks_file(jwks_dir: Path, signer: DemoSigner) -> Path:
    """A JWKS file holding only the k1 public key."""
    path = jwks_dir / "k1.json"
    signer.write_jwks(path)
    return path


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
