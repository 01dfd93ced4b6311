"""The relay in-process, on moto and the Pub/Sub emulator, with a publish that is slow or fails at first.

The publisher here is the real one (PubSubPublisher to the emulator) behind a wrapper that
delays or fails its first call: the way production meets a slow or unavailable Pub/Sub.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from pipeline.devtools.emulators import PubSubEmulator, wait_until
from pipeline.sqsrelay.relay import PubSubPublisher, Relay
from tests.sqsrelay.conftest import unique
from tests.sqsrelay.test_relay import pull_until
from tests.support.moto_sqs import MotoSqsServer


class FirstCall:
    """Wraps a publisher: the first call sleeps ``delay`` s first, or raises ``error``."""

    def __init__(self, inner: PubSubPublisher, *, delay: float = 0.0, error: Exception | None = None):
        self.inner, self.delay, self.error = inner, delay, error
        self.calls = 0
        self._lock = threading.Lock()

    def publish(self, messages: Any) -> list[str]:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if first and self.error is not None:
            raise self.error
        if first:
            time.sleep(self.delay)
        return self.inner.publish(messages)


def run_relay(moto: MotoSqsServer, queue: str, publisher: Any, until: Any) -> Relay:
    relay = Relay(moto.client, queue, publisher, receivers=2, progress_seconds=3600)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(until(relay), timeout=60, what="relay progress", interval=0.05)
    finally:
        relay.stop()
        thread.join(30)
    assert not thread.is_alive()
    return relay


def test_a_publish_longer_than_the_visibility_timeout_is_not_handed_out_twice(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator,
) -> None:
    topic = pubsub_emulator.create_topic(unique("slow"))
    subscription = pubsub_emulator.create_subscription(topic, unique("slow-sub"))
    queue = moto_sqs.create_queue(visibility_timeout=3)
    bodies = [json.dumps({"n": i}).encode() for i in range(10)]
    moto_sqs.send_all(queue, bodies)
    slow = FirstCall(PubSubPublisher(topic), delay=7)  # more than 2 visibility timeouts
    relay = run_relay(moto_sqs, queue, slow, lambda r: lambda: r.stats.relayed >= 10)
    published = pull_until(pubsub_emulator, subscription, lambda got: sum(got.values()) >= 10, settle=1)
    assert published == Counter(bodies)  # each once: the other receive loop never got them again
    assert relay.stats.relayed == 10 and moto_sqs.depth(queue) == (0, 0)


def test_a_failed_publish_hands_the_messages_back_and_they_are_relayed_later(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator,
) -> None:
    topic = pubsub_emulator.create_topic(unique("fail"))
    subscription = pubsub_emulator.create_subscription(topic, unique("fail-sub"))
    queue = moto_sqs.create_queue(visibility_timeout=60)  # they come back only because they were handed back
    bodies = [json.dumps({"n": i}).encode() for i in range(5)]
    moto_sqs.send_all(queue, bodies)
    failing = FirstCall(PubSubPublisher(topic), error=RuntimeError("Pub/Sub unavailable"))
    relay = run_relay(moto_sqs, queue, failing, lambda r: lambda: r.stats.relayed >= 5)
    assert relay.stats.released >= 1  # the first batch went back, hidden for 5 s, then came round again
    published = pull_until(pubsub_emulator, subscription, lambda got: sum(got.values()) >= 5, settle=1)
    assert published == Counter(bodies) and moto_sqs.depth(queue) == (0, 0)
