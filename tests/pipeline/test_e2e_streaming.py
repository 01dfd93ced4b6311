"""Streaming on the real Pub/Sub emulator with the BundleBasedDirectRunner.

Publishes signed events, re-signed duplicates and garbage on both sides of a window
boundary (5 s windows), waits for the files (a window fires some tens of seconds after
its end on this runner: STACK.md trap 3), then cancels. Every distinct event must be in
the output exactly once and every bad message in the dead letters with its attributes.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.main import build_pipeline
from devkit.signing import DemoSigner
from tests.pipeline.helpers import (
    corpus_payloads,
    dead_letters,
    expected_keys,
    output_keys,
    payload_of,
    sign,
    temp_files,
    wait_for,
)
from tests.support.names import unique

pytestmark = pytest.mark.slow

WINDOW_SECONDS = 5
FILES_DEADLINE = 150  # seconds; windows fire up to ~30 s late, plus a loaded 2-core machine


def _publish_all(emulator: Any, topic: str, messages: list[tuple[bytes, dict[str, str]]]) -> None:
    futures = [emulator.publisher.publish(emulator.topic_path(topic), data, **attrs) for data, attrs in messages]
    for future in futures:
        future.result(timeout=30)


def _keys_if_readable(out: Path) -> Counter[str]:
    if not any(out.rglob("*.parquet")):
        return Counter()
    return Counter(output_keys(out))


def test_streaming_from_pubsub_emulator(pubsub_emulator: Any, tmp_path: Path, signer: DemoSigner,
                                        jwks_file: Path) -> None:
    topic = pubsub_emulator.create_topic(unique("live-events"))
    subscription = pubsub_emulator.create_subscription(topic, unique("pipeline"))
    out, dlo = tmp_path / "out", tmp_path / "dead"

    payloads = [p for p in corpus_payloads() if "metadata" in p][:40]
    first, second = payloads[:20], payloads[20:]
    keys_first, keys_second = set(expected_keys(first)), set(expected_keys(second))
    assert len(keys_first) == 20 and len(keys_second) == 20 and not keys_first & keys_second

    before = [(sign(signer, p), {"batch": "1"}) for p in first]
    before += [(sign(signer, p, iat=1), {"batch": "1", "copy": "resigned"}) for p in first[:5]]
    before += [(b"garbage one", {"batch": "1", "origin": "test"}), (b"{}", {"batch": "1"})]
    after = [(sign(signer, p), {"batch": "2"}) for p in second]
    after += [(sign(signer, p, iat=2), {"batch": "2", "copy": "resigned"}) for p in first[5:10]]  # across windows
    after += [(b"garbage two", {"batch": "2", "origin": "test"})]
    garbage = {b"garbage one": "unknown_format", b"{}": "unsigned_not_allowed", b"garbage two": "unknown_format"}

    options = PipelineOptions([
        "--runner=BundleBasedDirectRunner", "--streaming",
        f"--input_subscription={subscription}", f"--output={out}", f"--dead_letter_output={dlo}",
        f"--jwks_url={jwks_file}", f"--window_seconds={WINDOW_SECONDS}",
    ])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    _publish_all(pubsub_emulator, topic, before)
    result = pipeline.run()
    try:
        # The first batch's files exist only once its window has closed: whatever is
        # published next arrives in a later window.
        wait_for(lambda: keys_first <= set(_keys_if_readable(out)), FILES_DEADLINE, what="first batch's files")
        first_files = {p.name for p in out.rglob("*.parquet")}
        _publish_all(pubsub_emulator, topic, after)
        wait_for(lambda: (keys_first | keys_second) <= set(_keys_if_readable(out)), FILES_DEADLINE,
                 what="second batch's files")
        wait_for(lambda: len(dead_letters(dlo)) >= len(garbage), FILES_DEADLINE, what="dead letters")
        keys = _keys_if_readable(out)
        records = dead_letters(dlo)
        leftovers = temp_files(out, dlo)
    finally:
        # A harmless message ends the runner's blocking pull, so cancel returns at once (trap 2).
        pubsub_emulator.publish(topic, b"stop", purpose="stop")
        result.cancel()

    assert keys == Counter(keys_first | keys_second)  # every event once: duplicates dropped across windows
    later_files = {p.name for p in out.rglob("*.parquet")} - first_files
    assert later_files and all(name.split("-")[1] > max(first_files).split("-")[1] for name in later_files)
    records = [r for r in records if r["attributes"].get("purpose") != "stop"]
    assert Counter((payload_of(r), r["error_type"]) for r in records) == Counter(garbage.items())
    assert {payload_of(r): r["attributes"].get("batch") for r in records} == {
        b"garbage one": "1", b"{}": "1", b"garbage two": "2"}
    assert not leftovers
