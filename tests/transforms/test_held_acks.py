"""AckLedger on the real Pub/Sub emulator: nothing is acknowledged before its window is written,
and a held message does not come back while the ledger keeps extending its deadline."""
from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator

import pytest
from apache_beam.utils.timestamp import Duration

from pipeline.options import is_local_runner
from pipeline.transforms.held_acks import AckLedger
from tests.pipeline.helpers import wait_for


@pytest.fixture
def subscription(pubsub_emulator: Any) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    topic = pubsub_emulator.create_topic(f"held-{tag}")
    return topic, pubsub_emulator.create_subscription(topic, f"held-{tag}", ack_deadline_seconds=10)


@contextmanager
def _published_then_held(emulator: Any, subscription: tuple[str, str], n: int) -> Iterator[AckLedger]:
    """Publish ``n`` messages, then an AckLedger on the subscription (closed at the end)."""
    topic, sub = subscription
    for i in range(n):
        emulator.publish(topic, f"message {i}".encode())
    ledger = AckLedger(sub, renew_every=2, deadline_seconds=10)
    try:
        yield ledger
    finally:
        ledger.close()


def test_only_messages_stamped_before_a_written_window_end_are_acknowledged(
    pubsub_emulator: Any, subscription: tuple[str, str]
) -> None:
    with _published_then_held(pubsub_emulator, subscription, 3) as ledger:
        received, stamp = wait_for(lambda: (r := ledger.pull_and_hold()) and r[0] and r, 30, what="a pull")
        assert ledger.held() == len(received)
        assert ledger.release_before(stamp) == 0  # the window ending at the stamp excludes it
        assert ledger.held() == len(received)
        assert ledger.release_before(stamp + Duration(micros=1)) == len(received)
        assert ledger.held() == 0 and ledger.acknowledged == len(received)


def test_a_held_message_is_not_redelivered_past_the_subscription_deadline(
    pubsub_emulator: Any, subscription: tuple[str, str]
) -> None:
    sub = subscription[1]
    with _published_then_held(pubsub_emulator, subscription, 2) as ledger:
        wait_for(lambda: ledger.pull_and_hold()[0] or ledger.held(), 30, what="a pull")
        held = ledger.held()
        others = pubsub_emulator.subscriber
        deadline = time.monotonic() + 14  # past the subscription's 10 s ack deadline
        while time.monotonic() < deadline:
            response = _pull_quietly(others, sub)
            assert not response, "a held message was redelivered"
        assert ledger.held() == held
        ledger.stop_reading()


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
