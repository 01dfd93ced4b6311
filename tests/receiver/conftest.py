"""Fixtures for the receiver: functions-framework serving it over real HTTP, the real Pub/Sub emulator behind."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator
from devkit.signing import DemoSigner

# Small enough that the 413 tests send little, large enough for every corpus payload (< 16 KiB).
TEST_MAX_BODY_BYTES = 64 * 1024


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def topic(pubsub_emulator: PubSubEmulator) -> str:
    return pubsub_emulator.create_topic(unique("receiver"))


@pytest.fixture
def subscription(pubsub_emulator: PubSubEmulator, topic: str) -> str:
    """A fresh subscription: it sees exactly what is published after the test starts."""
    return pubsub_emulator.create_subscription(topic, unique("sub"))


@pytest.fixture(scope="module")
def receiver(pubsub_emulator: PubSubEmulator, topic: str) -> Iterator[FunctionServer]:
    """The receiver without edge verification (unsigned JSON and JWS both accepted, published as is)."""
    env = {**pubsub_emulator.env(), "PUBSUB_TOPIC": topic, "MAX_BODY_BYTES": str(TEST_MAX_BODY_BYTES)}
    with FunctionServer(env) as server:
        yield server


@pytest.fixture(scope="module")
def signer() -> DemoSigner:
    return DemoSigner(kid="demo-key-1")


@pytest.fixture(scope="module")
def jwks_file(signer: DemoSigner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    signer.write_jwks(path)
    return path


@pytest.fixture(scope="module")
def verifying_topic(pubsub_emulator: PubSubEmulator) -> str:
    return pubsub_emulator.create_topic(unique("verified"))


@pytest.fixture(scope="module")
def verifying_receiver(
    pubsub_emulator: PubSubEmulator, verifying_topic: str, jwks_file: Path
) -> Iterator[FunctionServer]:
    """The receiver with edge verification against the DemoSigner's JWKS (unsigned refused by default)."""
    env = {**pubsub_emulator.env(), "PUBSUB_TOPIC": verifying_topic, "JWKS_URL": str(jwks_file)}
    with FunctionServer(env) as server:
        yield server
