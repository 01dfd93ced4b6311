"""HTTPS and SQS both on: the same events through the receiver and through the relay -> one row each.

Canvas signs every delivery on its own, so the copy that comes through SQS has other token bytes
than the one posted over HTTPS. Both go to the one topic; what the topic holds is then run
through the real pipeline (a batch run over the bodies, one per line: what the archive
subscription writes) and read back with DuckDB.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from devkit.emulators import FunctionServer, PubSubEmulator
from pipeline.main import run
from devkit.signing import DemoSigner
from tests.pipeline.helpers import corpus_payloads, expected_keys, output_keys, sign
from tests.receiver.client import post
from tests.support.names import unique
from tests.support.pubsub import pull_until
from tests.support.moto_sqs import MotoSqsServer


def test_the_same_events_over_https_and_sqs_are_one_row_each(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, start_relay: Any, tmp_path: Path,
    signer: DemoSigner, jwks_file: Path,
) -> None:
    topic = pubsub_emulator.create_topic(unique("both"))
    subscription = pubsub_emulator.create_subscription(topic, unique("both-sub"))
    jwks = jwks_file
    payloads = corpus_payloads()
    payloads = [p for p in payloads if "metadata" in p][:15] + [p for p in payloads if "metadata" not in p][:10]
    keys = expected_keys(payloads)
    assert len(set(keys)) == len(keys) == 25
    over_https = [sign(signer, p, iat=int(time.time()) - 5) for p in payloads]
    over_sqs = [sign(signer, p, iat=int(time.time())) for p in payloads]
    assert not set(over_https) & set(over_sqs)  # different bytes for the same events

    with FunctionServer({**pubsub_emulator.env(), "PUBSUB_TOPIC": topic}) as receiver:
        for body in over_https:
            assert post(receiver.url, body, content_type="application/jwt").status == 202
    queue = moto_sqs.create_queue()
    moto_sqs.send_all(queue, over_sqs)
    relay = start_relay(queue, topic, "--idle_exit_seconds=2")
    assert relay.wait(timeout=60) == 0, relay.output()

    expected = set(over_https + over_sqs)
    got = pull_until(pubsub_emulator, subscription, lambda bodies: set(bodies) >= expected)
    # Every body arrived. Pub/Sub (and a publish retried after a lost answer) is at-least-once,
    # so a body may come twice under load (a full test run once saw one); the run below reads
    # each distinct body once, and its dedupe makes each event's HTTPS and SQS copies one row.
    assert set(got) == expected
    deliveries = tmp_path / "topic.jsonl"
    deliveries.write_bytes(b"\n".join(sorted(got)) + b"\n")
    out, dead = tmp_path / "out", tmp_path / "dead"
    assert run([f"--input_files={deliveries}", f"--output={out}", f"--dead_letter_output={dead}",
                f"--jwks_url={jwks}", "--runner=DirectRunner"]) == 0
    assert Counter(output_keys(out)) == Counter(keys)  # 50 (or more) deliveries, 25 events, 25 rows
