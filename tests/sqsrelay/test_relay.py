"""`canvas-events sqs-relay` against a real SQS API server (moto) and the real Pub/Sub emulator.

The relay runs as the operator runs it (a subprocess of the CLI). Bodies must arrive in
Pub/Sub byte for byte with the receiver's attributes plus source/sqs_message_id, the queue
must end empty, and no way of stopping the relay may lose a message: kill -9 mid-run then a
restart delivers every body; SIGTERM publishes and deletes what is in flight and exits 0.
"""
from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.deadletter import decode_payload
from devkit.emulators import PubSubEmulator, wait_until
from tests.support.corpus import corpus_payloads as sample_payloads
from devkit.signing import DemoSigner
from tests.support.names import unique
from tests.support.pubsub import pull_until
from tests.support.moto_sqs import MotoSqsServer

NON_ASCII = '{"metadata":{"event_name":"logged_in"},"body":{"note":"naïve café ☃ 𝄞 日本語 \\u00e9"}}'


def corpus_bodies() -> list[bytes]:
    """Signed JWTs, Canvas JSON, Caliper envelopes, non-ASCII text and a body the pipeline will refuse."""
    payloads = sample_payloads()
    canvas = [p for p in payloads if "metadata" in p][:15]
    caliper = [p for p in payloads if "metadata" not in p][:10]
    signer = DemoSigner(kid="relay-key")
    signed = [signer.sign({**p, "iss": "https://live-events.canvas.instructure.com"}) for p in canvas[:10]]
    plain = [json.dumps(p, ensure_ascii=False).encode() for p in canvas + caliper]
    return signed + plain + [NON_ASCII.encode(), b"  not an event, kept anyway \t"]


def relayed_count(output: str) -> int:
    """N of the relay's last line, "stopped: relayed N, ..."."""
    return int(output.rsplit("stopped: relayed ", 1)[1].split(",", 1)[0])


def drain_queue(moto: MotoSqsServer, queue_url: str) -> list[bytes]:
    """Every body still in the queue (visible now), received and deleted."""
    bodies: list[bytes] = []
    while True:
        response = moto.client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = response.get("Messages") or []
        if not messages:
            return bodies
        bodies += [m["Body"].encode() for m in messages]
        moto.client.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])


@pytest.fixture
def topic_and_subscription(pubsub_emulator: PubSubEmulator) -> tuple[str, str]:
    topic = pubsub_emulator.create_topic(unique("relay"))
    return topic, pubsub_emulator.create_subscription(topic, unique("relay-sub"))


def test_bodies_arrive_byte_for_byte_with_the_receivers_attributes(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str],
    start_relay: Any,
) -> None:
    topic, subscription = topic_and_subscription
    queue = moto_sqs.create_queue()
    bodies = corpus_bodies()
    sent_before = time.time()
    ids = moto_sqs.send_all(queue, bodies)
    relay = start_relay(queue, topic, "--idle_exit_seconds=2", "--progress_seconds=1")
    assert relay.wait(timeout=60) == 0, relay.output()

    messages = pubsub_emulator.pull(subscription, max_messages=len(bodies), timeout=30)
    messages += pubsub_emulator.pull(subscription, max_messages=10, timeout=1)  # the stragglers
    # Every body, unchanged. An SQS standard queue is at-least-once, and moto's receive has no
    # lock between its visibility check and marking a message received, so under load two of
    # the relay's four concurrent receives can both get one message (seen: "relayed 38" of 37).
    # A copy must then be the same SQS message, byte for byte; the pipeline's dedupe drops it.
    assert set(m.data for m in messages) == set(bodies)
    copies = {(m.attributes["sqs_message_id"], m.data) for m in messages}
    assert len(copies) == len(bodies)  # each SQS message id carries its own body and no other
    by_id = {m.attributes["sqs_message_id"]: m for m in messages}
    assert set(by_id) == set(ids)
    signer_kid_seen = 0
    for message_id, body in zip(ids, bodies):
        attributes = dict(by_id[message_id].attributes)
        assert by_id[message_id].data == body
        assert attributes["source"] == "sqs"
        received = attributes.pop("received_at")
        assert received.endswith("Z") and abs(_epoch(received) - sent_before) < 60
        signed = body.count(b".") == 2 and not body.startswith((b"{", b" "))
        assert attributes["signed"] == ("true" if signed else "false")
        if signed:
            assert attributes["kid"] == "relay-key"
            signer_kid_seen += 1
        assert set(attributes) <= {"signed", "kid", "source", "sqs_message_id"}
    assert signer_kid_seen == 10
    assert moto_sqs.depth(queue) == (0, 0)  # every message deleted
    output = relay.output()
    assert f"relayed {len(messages)}" in output and "queue depth ~0" in output  # the progress line


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _wait_mid_run(moto: MotoSqsServer, queue: str, total: int) -> None:
    """Until the relay has taken some messages and not yet all (some are invisible: in its hands)."""
    def mid_run() -> bool:
        visible, hidden = moto.depth(queue)
        return hidden > 0 and visible < total
    wait_until(mid_run, timeout=60, what="relay mid-run", interval=0.01)


def test_kill_9_mid_run_then_a_restart_delivers_every_body(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str],
    start_relay: Any,
) -> None:
    topic, subscription = topic_and_subscription
    queue = moto_sqs.create_queue(visibility_timeout=2)  # what the killed relay held comes back in 2 s
    bodies = [json.dumps({"metadata": {"n": i}, "body": {"pad": "é" * 200}}, ensure_ascii=False).encode()
              for i in range(300)]
    moto_sqs.send_all(queue, bodies)
    first = start_relay(queue, topic, "--receivers=2")
    _wait_mid_run(moto_sqs, queue, len(bodies))
    first.signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    visible, hidden = moto_sqs.depth(queue)
    assert visible + hidden > 0, "the kill came too late to test anything"

    second = start_relay(queue, topic, "--idle_exit_seconds=4")
    assert second.wait(timeout=120) == 0, second.output()
    assert "visibility timeout is 2 s" in second.output()  # warned: copies likely with so short a timeout
    published = pull_until(pubsub_emulator, subscription, lambda got: set(got) >= set(bodies))
    assert set(published) == set(bodies)  # every body at least once; copies are the pipeline's dedupe's job
    assert moto_sqs.depth(queue) == (0, 0)


def test_sigterm_finishes_in_flight_work_deletes_it_and_exits_0(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str],
    start_relay: Any,
) -> None:
    topic, subscription = topic_and_subscription
    queue = moto_sqs.create_queue(visibility_timeout=2)
    bodies = [json.dumps({"metadata": {"n": i}, "body": {}}).encode() for i in range(300)]
    moto_sqs.send_all(queue, bodies)
    relay = start_relay(queue, topic)
    _wait_mid_run(moto_sqs, queue, len(bodies))
    relay.signal(signal.SIGTERM)
    assert relay.wait(timeout=30) == 0, relay.output()
    # (Copies are possible: at least once; moto also hands a message to two concurrent receives now and then.)
    relayed = relayed_count(relay.output())
    published = pull_until(pubsub_emulator, subscription, lambda got: sum(got.values()) >= relayed)
    assert published and sum(published.values()) == relayed
    left = Counter(drain_queue(moto_sqs, queue))
    hidden_after_exit = moto_sqs.depth(queue)[1]
    # Nothing published is still in the queue, and what was not published is all still there
    # (visible, or hidden until its 2 s visibility timeout ends if a receive was cut short).
    if hidden_after_exit:
        wait_until(lambda: moto_sqs.depth(queue)[1] == 0, timeout=10, what="hidden messages to come back")
        left += Counter(drain_queue(moto_sqs, queue))
    assert not set(published) & set(left)
    assert set(published) | set(left) == set(bodies)
    assert "SIGTERM" in relay.output() and "stopped: relayed" in relay.output()


def test_a_body_pubsub_cannot_take_goes_to_the_dead_letters_with_the_reason(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, topic_and_subscription: tuple[str, str],
    start_relay: Any, tmp_path: Path,
) -> None:
    topic, subscription = topic_and_subscription
    queue = moto_sqs.create_queue()
    big = ('{"metadata":{},"body":{"text":"' + "ü" * 40_000 + '"}}').encode()  # 80 KB over the 64 KB limit
    small = [json.dumps({"metadata": {"n": i}, "body": {}}).encode() for i in range(5)]
    (big_id, *_) = moto_sqs.send_all(queue, [big, *small])
    dead = tmp_path / "dead"
    relay = start_relay(queue, topic, "--idle_exit_seconds=2", f"--dead_letter_output={dead}",
                        "--max_message_bytes=65536")
    assert relay.wait(timeout=60) == 0, relay.output()
    assert pull_until(pubsub_emulator, subscription, lambda got: sum(got.values()) >= 5) == Counter(small)
    (path,) = [p for p in dead.rglob("*") if p.is_file()]
    assert path.relative_to(dead).parts[0] == "sqs-relay" and not path.name.startswith(".")
    (record,) = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert decode_payload(record) == big
    assert record["error_type"] == "oversized" and "65536" in record["message"]
    assert record["stage"] == "sqs_relay" and record["attributes"]["sqs_message_id"] == big_id
    assert moto_sqs.depth(queue) == (0, 0)


def test_without_a_dead_letter_place_such_a_body_stays_in_the_queue(
    moto_sqs: MotoSqsServer, topic_and_subscription: tuple[str, str], start_relay: Any,
) -> None:
    topic, _ = topic_and_subscription
    queue = moto_sqs.create_queue(visibility_timeout=60)
    moto_sqs.send_all(queue, [b'{"metadata":{},"body":{"text":"' + b"a" * 5000 + b'"}}', b"{}"])
    relay = start_relay(queue, topic, "--idle_exit_seconds=2", "--max_message_bytes=4096")
    assert relay.wait(timeout=60) == 0, relay.output()
    assert moto_sqs.depth(queue) == (0, 1)  # the big one: not deleted, hidden until it comes back
    assert "no --dead_letter_output" in relay.output() and "oversized" in relay.output()


def test_a_queue_that_cannot_be_used_is_one_clear_line_and_exit_1(
    moto_sqs: MotoSqsServer, topic_and_subscription: tuple[str, str], start_relay: Any,
) -> None:
    topic, _ = topic_and_subscription
    relay = start_relay(f"{moto_sqs.endpoint}/123456789012/no-such-queue", topic)
    assert relay.wait(timeout=60) == 1
    (line,) = relay.output().strip().splitlines()
    assert line.startswith("canvas-events sqs-relay: cannot use the queue") and "NonExistentQueue" in line


def test_usage_errors_exit_2(start_relay: Any, moto_sqs: MotoSqsServer) -> None:
    relay = start_relay("not-a-url", "my-topic")
    assert relay.wait(timeout=60) == 2
    output = relay.output()
    assert "--queue_url must be the queue's URL" in output and "--topic must be projects/PROJECT/topics/NAME" in output
