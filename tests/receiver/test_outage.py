"""Pub/Sub goes away and comes back: the receiver answers 503 in time, and the sender's retries all land.

A private emulator (this test stops it), restarted on the same port as a fresh in-memory server.
"""
from __future__ import annotations

import time

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator
from tests.receiver.client import post

pytestmark = pytest.mark.slow

PUBLISH_TIMEOUT_SECONDS = 1.5


def post_until_accepted(url: str, body: bytes, deadline: float) -> int:
    """Retry like Canvas does (with backoff) until a 2xx; return the number of attempts."""
    delay, attempts = 0.1, 0
    while True:
        attempts += 1
        reply = post(url, body)
        if reply.status == 202:
            return attempts
        assert reply.status == 503, (reply.status, reply.body)
        if time.monotonic() > deadline:
            raise AssertionError(f"still 503 after {attempts} attempts")
        time.sleep(delay)  # a sender's retry backoff, not a wait for a condition we could observe
        delay = min(delay * 2, 1.0)


def test_outage_gives_503_within_the_timeout_and_retries_lose_nothing() -> None:
    emulator = PubSubEmulator(project="outage-project")
    emulator.start()
    server = None
    try:
        topic = emulator.create_topic("events")
        emulator.create_subscription(topic, "events-sub")
        env = {**emulator.env(), "PUBSUB_TOPIC": topic, "PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_TIMEOUT_SECONDS)}
        server = FunctionServer(env).start()
        assert post(server.url, b'{"before": 1}').status == 202

        emulator.stop()
        bodies = [f'{{"during_outage": {i}}}'.encode() for i in range(5)]
        for body in bodies:
            reply = post(server.url, body)
            assert reply.status == 503
            assert reply.json["status"] == "unavailable"
            assert reply.json["error"] == "publish_failed"
            assert reply.elapsed < PUBLISH_TIMEOUT_SECONDS + 1.0  # well inside Canvas's 15 s

        emulator = PubSubEmulator(project="outage-project", port=emulator.port)
        emulator.start()
        emulator.create_topic("events")
        emulator.create_subscription(topic, "events-sub")
        deadline = time.monotonic() + 60
        attempts = [post_until_accepted(server.url, body, deadline) for body in bodies]
        assert attempts[1:] == [1] * (len(bodies) - 1)  # once reconnected, no more failures

        received = [m.data for m in emulator.pull("events-sub", max_messages=len(bodies), timeout=20)]
        # Every acknowledged body was published; a 503 whose publish landed late could add a
        # duplicate (the pipeline dedupes), but never an unknown or missing body.
        assert set(received) == set(bodies)
        extras = [m.data for m in emulator.pull("events-sub", max_messages=len(bodies), timeout=1)]
        assert set(extras) <= set(bodies)
    finally:
        if server is not None:
            server.stop()
        emulator.stop()
