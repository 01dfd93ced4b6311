"""AckLedger on the real Pub/Sub emulator: nothing is acknowledged before its window is written,
and a held message does not come back while the ledger keeps extending its deadline."""
from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from apache_beam.utils.timestamp import Duration

from pipeline.transforms.held_acks import AckLedger, is_local_runner
from tests.pipeline.helpers import wait_for


@pytest.fixture
def subscription(pubsub_emulator: Any) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    topic = pubsub_emulator.create_topic(f"held-{tag}")
    return topic, pubsub_emulator.create_subscription(topic, f"held-{tag}", ack_deadline_seconds=10)


def _publish(emulator: Any, topic: str, n: int) -> None:
    for i in range(n):
        emulator.publish(topic, f"message {i}".encode())


def test_only_messages_stamped_before_a_written_window_end_are_acknowledged(
    pubsub_emulator: Any, subscription: tuple[str, str]
) -> None:
    topic, sub = subscription
    _publish(pubsub_emulator, topic, 3)
    ledger = AckLedger(sub, renew_every=2, deadline_seconds=10)
    try:
        received, stamp = wait_for(lambda: (r := ledger.pull_and_hold()) and r[0] and r, 30, what="a pull")
        assert ledger.held() == len(received)
        assert ledger.release_before(stamp) == 0  # the window ending at the stamp excludes it
        assert ledger.held() == len(received)
        assert ledger.release_before(stamp + Duration(micros=1)) == len(received)
        assert ledger.held() == 0 and ledger.acknowledged == len(received)
    finally:
        ledger.close()


def test_a_held_message_is_not_redelivered_past_the_subscription_deadline(
    pubsub_emulator: Any, subscription: tuple[str, str]
) -> None:
    topic, sub = subscription
    _publish(pubsub_emulator, topic, 2)
    ledger = AckLedger(sub, renew_every=2, deadline_seconds=10)
    try:
        wait_for(lambda: ledger.pull_and_hold()[0] or ledger.held(), 30, what="a pull")
        held = ledger.held()
        others = pubsub_emulator.subscriber
        deadline = time.monotonic() + 14  # past the subscription's 10 s ack deadline
        while time.monotonic() < deadline:
            response = _pull_quietly(others, sub)
            assert not response, "a held message was redelivered"
        assert ledger.held() == held
        ledger.stop_reading()
    finally:
        ledger.close()


def _pull_quietly(client: Any, sub: str) -> list[Any]:
    from google.api_core import exceptions

    try:
        return list(client.pull(request={"subscription": sub, "max_messages": 10}, timeout=2, retry=None)
                    .received_messages)
    except exceptions.DeadlineExceeded:
        return []


@pytest.mark.parametrize("runner, local", [
    ("", True), ("DirectRunner", True), ("BundleBasedDirectRunner", True),
    ("apache_beam.runners.direct.direct_runner.BundleBasedDirectRunner", True),
    ("DataflowRunner", False), ("PrismRunner", False), ("PortableRunner", False),
])
def test_only_the_local_python_runners_use_the_held_reader(runner: str, local: bool) -> None:
    assert is_local_runner(runner) is local
