"""The relay in-process, on moto and the Pub/Sub emulator, when publishing is slow, fails, or is refused.

The publisher is the real one (PubSubPublisher): to the emulator behind a wrapper that delays
or fails its first call, or refuses one body the way Pub/Sub refuses an invalid request; or
to an address where nothing listens (Pub/Sub down).
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline.deadletter import decode_payload
from devkit.emulators import PubSubEmulator, free_port, wait_until
from pipeline.sqsrelay.relay import LocalDeadLetters, PermanentPublishError, PubSubPublisher, Relay
from tests.support.names import unique
from tests.support.pubsub import pull_until
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


class RefusesMarked:
    """Wraps a publisher: a request holding a body with ``marker`` is refused for good, as Pub/Sub
    refuses a request with one bad message (INVALID_ARGUMENT: the whole request, nothing stored)."""

    def __init__(self, inner: PubSubPublisher, marker: bytes):
        self.inner, self.marker = inner, marker

    def publish(self, messages: Any) -> list[str]:
        if any(self.marker in data for data, _ in messages):
            raise PermanentPublishError("InvalidArgument: the message is invalid")
        return self.inner.publish(messages)


def test_a_message_pubsub_refuses_is_dead_lettered_and_its_batch_mates_are_published(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, tmp_path: Path,
) -> None:
    topic = pubsub_emulator.create_topic(unique("refuse"))
    subscription = pubsub_emulator.create_subscription(topic, unique("refuse-sub"))
    queue = moto_sqs.create_queue()
    bodies = [json.dumps({"n": i}).encode() for i in range(9)] + [b'{"n": "REFUSE-ME"}']
    moto_sqs.send_all(queue, bodies)
    relay = Relay(moto_sqs.client, queue, RefusesMarked(PubSubPublisher(topic), b"REFUSE-ME"),
                  dead_letters=LocalDeadLetters(tmp_path), receivers=1, progress_seconds=3600)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: relay.stats.relayed + relay.stats.dead_lettered >= 10, timeout=60, what="batch settled")
    finally:
        relay.stop()
        thread.join(30)
    published = pull_until(pubsub_emulator, subscription, lambda got: sum(got.values()) >= 9, settle=1)
    assert published == Counter(bodies[:9])
    (path,) = [p for p in tmp_path.rglob("*.jsonl")]
    record = json.loads(path.read_bytes())
    assert record["error_type"] == "publish_refused" and "InvalidArgument" in record["message"]
    assert decode_payload(record) == bodies[9] and moto_sqs.depth(queue) == (0, 0)


def test_a_stop_while_pubsub_is_down_keeps_every_message_in_the_queue(
    moto_sqs: MotoSqsServer,
) -> None:
    queue = moto_sqs.create_queue(visibility_timeout=60)
    moto_sqs.send_all(queue, [json.dumps({"n": i}).encode() for i in range(25)])
    import grpc
    from google.pubsub_v1 import PublisherClient
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    nobody = grpc.insecure_channel(f"127.0.0.1:{free_port()}")  # the real client, with nothing listening
    down = PubSubPublisher("projects/demo-project/topics/unreachable", timeout=2,
                           client=PublisherClient(transport=PublisherGrpcTransport(channel=nobody)))
    relay = run_relay(moto_sqs, queue, down, lambda r: lambda: r.stats.released >= 20)
    assert relay.stats.relayed == 0
    visible, hidden = moto_sqs.depth(queue)
    assert visible + hidden == 25  # nothing deleted; handed back, hidden for a few seconds only
