"""Issue 10, part 4: replay an archive into the live lake, compact, and count one row per event.

As an operator does it: the streaming pipeline (Pub/Sub emulator, BundleBasedDirectRunner)
writes some events into ``events/``; then an archive that overlaps them (some streamed
events again, re-signed, plus events the stream never saw) is replayed in batch into the
SAME output; then ``canvas-events compact``. Before compaction the lake holds every event
(the replay's files sit beside the stream's, nothing overwritten) and the overlap twice;
after it, exactly one row per event.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.cli import main as cli_main
from pipeline.main import build_pipeline, run
from devkit.signing import DemoSigner
from tests.pipeline.helpers import corpus_payloads, expected_keys, output_keys, sign, temp_files, wait_for
from tests.support.names import unique

pytestmark = pytest.mark.slow

FILES_DEADLINE = 150  # seconds: a streaming window fires up to ~30 s after its end (STACK.md trap 3)


def test_stream_then_overlapping_replay_then_compact_leaves_one_row_per_event(
        pubsub_emulator: Any, tmp_path: Path, signer: DemoSigner, jwks_file: Path) -> None:
    topic = pubsub_emulator.create_topic(unique("live"))
    subscription = pubsub_emulator.create_subscription(topic, unique("pipe"))
    out, dlo = tmp_path / "events", tmp_path / "dead"

    payloads = [p for p in corpus_payloads() if "metadata" in p][:45]
    streamed, archived = payloads[:30], payloads[15:]  # 15 events in both
    stream_keys, all_keys = set(expected_keys(streamed)), set(expected_keys(payloads))
    assert len(all_keys) == 45

    options = PipelineOptions([
        "--runner=BundleBasedDirectRunner", "--streaming", f"--input_subscription={subscription}",
        f"--output={out}", f"--dead_letter_output={dlo}", f"--jwks_url={jwks_file}", "--window_seconds=5"])
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, options)
    for payload in streamed:
        pubsub_emulator.publisher.publish(pubsub_emulator.topic_path(topic), sign(signer, payload)).result(timeout=30)
    result = pipeline.run()
    try:
        wait_for(lambda: any(out.rglob("*.parquet")) and stream_keys <= set(output_keys(out)),
                 FILES_DEADLINE, what="the streamed events' files")
    finally:
        pubsub_emulator.publish(topic, b"stop", purpose="stop")  # ends the blocking pull (trap 2)
        result.cancel()

    archive = tmp_path / "raw.jsonl"
    archive.write_bytes(b"\n".join(sign(signer, p, iat=1_700_000_000) for p in archived) + b"\n")
    assert run([f"--input_files={archive}", f"--output={out}", f"--dead_letter_output={dlo}",
                f"--jwks_url={jwks_file}", "--allow_expired_tokens", "--runner=DirectRunner"]) == 0
    before = Counter(output_keys(out))
    assert set(before) == all_keys  # nothing overwritten: every event of both runs is there
    assert sum(before.values()) == 45 + 15  # the overlap twice, until compaction

    assert cli_main(["compact", f"--output={out}"]) == 0
    assert Counter(output_keys(out)) == Counter(all_keys)  # exactly one row per event
    assert not temp_files(out)
