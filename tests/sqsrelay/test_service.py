"""The relay as Cloud Run runs it: dead letters to a gs:// prefix (the GCS emulator), health on $PORT."""
from __future__ import annotations

import json
import signal
import urllib.request
from typing import Any

from pipeline.deadletter import decode_payload
from devkit.emulators import GcsEmulator, PubSubEmulator, free_port, http_ok, wait_until
from tests.support.names import unique
from tests.support.moto_sqs import MotoSqsServer


def test_dead_letters_go_to_a_gcs_prefix(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, gcs_emulator: GcsEmulator, start_relay: Any,
) -> None:
    bucket = unique("dead")
    gcs_emulator.create_bucket(bucket)
    topic = pubsub_emulator.create_topic(unique("gcs"))
    queue = moto_sqs.create_queue()
    big = b'{"metadata":{},"body":{"x":"' + b"z" * 3000 + b'"}}'
    (big_id,) = moto_sqs.send_all(queue, [big])
    relay = start_relay(queue, topic, "--idle_exit_seconds=2", "--max_message_bytes=2048",
                        f"--dead_letter_output=gs://{bucket}/dead-letter")
    assert relay.wait(timeout=60) == 0, relay.output()
    (blob,) = list(gcs_emulator.client.list_blobs(bucket))
    assert blob.name.startswith("dead-letter/sqs-relay/") and blob.name.endswith(".jsonl")
    (record,) = [json.loads(line) for line in blob.download_as_bytes().splitlines()]
    assert decode_payload(record) == big and record["attributes"]["sqs_message_id"] == big_id
    assert moto_sqs.depth(queue) == (0, 0)


def test_health_answers_on_port_while_running_and_sigterm_exits_0(
    moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, start_relay: Any,
) -> None:
    topic = pubsub_emulator.create_topic(unique("health"))
    queue = moto_sqs.create_queue()
    port = free_port()
    relay = start_relay(queue, topic, f"--health_port={port}")
    url = f"http://127.0.0.1:{port}/"
    wait_until(lambda: http_ok(url), timeout=60, what="health endpoint",
               abort=lambda: relay.output() if relay.proc.poll() is not None else None)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert json.loads(response.read()) == {"status": "ok", "relayed": 0, "dead_lettered": 0}
    relay.signal(signal.SIGTERM)
    assert relay.wait(timeout=30) == 0, relay.output()
    assert not http_ok(url)
