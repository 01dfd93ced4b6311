"""Fixtures for the receiver: functions-framework serving it over real HTTP, the real Pub/Sub emulator behind.

``signer`` and ``jwks_file`` come from tests/conftest.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator
from tests.receiver.client import TEST_MAX_BODY_BYTES
from tests.support.names import unique


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
