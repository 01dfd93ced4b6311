"""GroupCommitPublisher against the real Pub/Sub emulator: shared RPCs, cancellation, a bounded queue.

The client is the real generated Publisher client; the only addition is a gate that holds the
first Publish RPC until the test has queued what it needs, so what shares which RPC is decided
by the test, not by thread timing.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest

from devkit.emulators import PubSubEmulator
from pipeline.receiver.publisher import GroupCommitPublisher, PublishQueueFull, make_publisher, publish_retry
from tests.support.names import unique

pytestmark = pytest.mark.slow

WAIT_SECONDS = 10.0


class GatedClient:
    """The real Publisher client; the first publish call waits for ``release`` and counts every call."""

    def __init__(self, client: Any):
        self._client = client
        self.held = threading.Event()
        self.release = threading.Event()
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    def publish(self, *, request: Any, **kwargs: Any) -> Any:
        with self._lock:
            first = not self.batch_sizes
            self.batch_sizes.append(len(request.messages))
        if first:
            self.held.set()
            assert self.release.wait(WAIT_SECONDS), "the test never released the first RPC"
        return self._client.publish(request=request, **kwargs)


@pytest.fixture
def topic_and_subscription(pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    for name, value in pubsub_emulator.env().items():
        monkeypatch.setenv(name, value)
    topic = pubsub_emulator.create_topic(unique("group"))
    return topic, pubsub_emulator.create_subscription(topic, unique("group-sub"))


def gated_publisher(topic: str, **options: Any) -> tuple[GroupCommitPublisher, GatedClient]:
    real = make_publisher(topic, timeout=5)._client
    client = GatedClient(real)
    return GroupCommitPublisher(client, topic, retry=publish_retry(5), timeout=5, **options), client


def test_messages_queued_behind_an_rpc_share_the_next_one(
    topic_and_subscription: tuple[str, str], pubsub_emulator: PubSubEmulator
) -> None:
    topic, subscription = topic_and_subscription
    publisher, client = gated_publisher(topic, rpcs=1)
    first = publisher.publish(b"first", {"n": "0"})
    assert client.held.wait(WAIT_SECONDS)
    queued = [publisher.publish(f"queued {i}".encode(), {"n": str(i + 1)}) for i in range(20)]
    client.release.set()

    ids = [f.result(timeout=WAIT_SECONDS) for f in [first, *queued]]
    assert len(set(ids)) == 21
    assert client.batch_sizes == [1, 20]  # one RPC for everything that waited
    messages = pubsub_emulator.pull(subscription, max_messages=21, timeout=20)
    assert sorted((m.data, dict(m.attributes)["n"], m.message_id) for m in messages) == sorted(
        [(b"first", "0", ids[0])] + [(f"queued {i}".encode(), str(i + 1), ids[i + 1]) for i in range(20)]
    )


def test_a_cancelled_message_is_never_sent(
    topic_and_subscription: tuple[str, str], pubsub_emulator: PubSubEmulator
) -> None:
    topic, subscription = topic_and_subscription
    publisher, client = gated_publisher(topic, rpcs=1)
    first = publisher.publish(b"first", {})
    assert client.held.wait(WAIT_SECONDS)
    given_up = publisher.publish(b"request gave up", {})
    kept = publisher.publish(b"kept", {})
    assert given_up.cancel()  # what a request does when it stops waiting (-> 503)
    assert not first.cancel()  # already in an RPC: it may land, so it cannot be cancelled
    client.release.set()

    first.result(timeout=WAIT_SECONDS)
    kept.result(timeout=WAIT_SECONDS)
    assert client.batch_sizes == [1, 1]
    assert sorted(m.data for m in pubsub_emulator.pull(subscription, max_messages=2, timeout=20)) == [b"first", b"kept"]
    assert pubsub_emulator.pull(subscription, max_messages=10, timeout=1) == []


def test_a_full_queue_refuses_at_once_instead_of_blocking(topic_and_subscription: tuple[str, str]) -> None:
    topic, _ = topic_and_subscription
    publisher, client = gated_publisher(topic, rpcs=1, max_queued_messages=2)
    futures: list[Future] = [publisher.publish(b"in flight", {})]
    assert client.held.wait(WAIT_SECONDS)
    futures += [publisher.publish(b"queued 1", {}), publisher.publish(b"queued 2", {})]
    with pytest.raises(PublishQueueFull):
        publisher.publish(b"one too many", {})
    client.release.set()
    assert all(f.result(timeout=WAIT_SECONDS) for f in futures)
    publisher.publish(b"room again", {}).result(timeout=WAIT_SECONDS)


def test_a_failed_rpc_fails_every_message_in_it(topic_and_subscription: tuple[str, str]) -> None:
    topic, _ = topic_and_subscription
    missing_topic = topic + "-missing"  # NotFound is not retried: it fails the whole batch at once
    publisher, client = gated_publisher(missing_topic, rpcs=1)
    first = publisher.publish(b"a", {})
    assert client.held.wait(WAIT_SECONDS)
    queued = [publisher.publish(b"b", {}), publisher.publish(b"c", {})]
    client.release.set()
    for future in [first, *queued]:
        with pytest.raises(Exception, match="(?i)not.?found"):
            future.result(timeout=WAIT_SECONDS)
    assert client.batch_sizes == [1, 2]
