"""Where the pipeline writes: gs:// against the GCS emulator, and the Dataflow translation.

gs:// output: Beam's gcsio looks up Google default credentials first and, with none on
the machine, retries with backoff for about 17 s before going anonymous (STACK.md trap 8).
There is no option for "anonymous" on that path (``--no_auth`` is only read by the
Dataflow client), so the test pre-answers Beam's process-wide credential cache with
"none", which is what the lookup would conclude, and restores it afterwards.
"""
from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.core.identity import dedupe_key
from pipeline.main import build_pipeline, run
from devkit.signing import DemoSigner
from schemas.events import FILE_SCHEMA
from tests.pipeline.helpers import corpus_payloads, expected_keys, sign


@pytest.mark.slow
def test_writes_to_gcs_emulator(gcs_emulator: Any, anonymous_gcs: None, tmp_path: Path, signer: DemoSigner,
                                jwks_file: Path, capfd: pytest.CaptureFixture[str]) -> None:
    bucket = f"events-{uuid.uuid4().hex[:8]}"
    gcs_emulator.create_bucket(bucket)
    jwks = jwks_file
    payloads = corpus_payloads()[:30]
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n".join([sign(signer, p) for p in payloads] + [b"garbage"]) + b"\n")

    code = run([
        f"--input_files={source}", f"--output=gs://{bucket}/events", f"--dead_letter_output=gs://{bucket}/dead",
        f"--jwks_url={jwks}", "--runner=DirectRunner",
    ])
    assert code == 0, capfd.readouterr().err[-2000:]

    blobs = {b.name: b for b in gcs_emulator.client.list_blobs(bucket)}
    parquet = [n for n in blobs if n.endswith(".parquet")]
    assert parquet and all(n.startswith("events/event_date=") for n in parquet)
    assert not [n for n in blobs if n.rsplit("/", 1)[-1].startswith(".")]  # no temp objects left
    keys = []
    for name in parquet:
        table = pq.read_table(io.BytesIO(blobs[name].download_as_bytes()))
        assert table.schema.names == FILE_SCHEMA.names
        keys += [dedupe_key(r) for r in table.select(["request_id", "job_id", "event_id"]).to_pylist()]
    assert Counter(keys) == Counter(set(expected_keys(payloads)))
    dead = [n for n in blobs if n.startswith("dead/") and n.endswith(".jsonl")]
    records = [json.loads(line) for n in dead for line in blobs[n].download_as_bytes().splitlines()]
    assert [(r["error_type"], r["payload"]) for r in records] == [("unknown_format", "Z2FyYmFnZQ==")]


def test_dataflow_dry_run_translates_the_graph(tmp_path: Path) -> None:
    """The whole graph (streaming and batch) translates for Dataflow offline (STACK.md trap 10)."""
    jwks = tmp_path / "jwks.json"
    DemoSigner(kid="k").write_jwks(jwks)
    common = [
        "--runner=DataflowRunner", "--dry_run=true", "--project=demo-project", "--region=us-central1", "--no_auth",
        "--temp_location=gs://demo-bucket/tmp", "--output=gs://demo-bucket/events", "--dead_letter_output=gs://demo-bucket/dead",
        f"--jwks_url={jwks}",
    ]
    for source in ("--input_subscription=projects/demo-project/subscriptions/live-events", "--input_files=gs://demo-bucket/in/*.txt"):
        options = PipelineOptions(common + [source], streaming=source.startswith("--input_sub"))
        pipeline = beam.Pipeline(options=options)
        outputs = build_pipeline(pipeline, options)
        assert set(outputs) == {"deliveries", "events", "rows", "dead_letters", "files", "dead_letter_files"}
        pipeline.run()  # dry run: translated and validated, not submitted
        labels = {t.full_label for t in pipeline.transforms_stack[0].parts}
        assert "WriteDeadLetters" in labels
        if source.startswith("--input_sub"):
            assert {"VerifyAndDecode", "NormalizeEvents", "DedupeEvents", "WritePartitionedParquet"} <= labels
        else:  # batch: one fused decode step, then one group-by-partition-dedupe-write step
            assert {"DecodeToPartitions", "WriteDedupedPartitions"} <= labels
            assert not {"VerifyAndDecode", "NormalizeEvents", "DedupeEvents"} & labels


def test_run_with_dataflow_dry_run_returns_0(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    DemoSigner(kid="k").write_jwks(jwks)
    assert run([
        "--runner=DataflowRunner", "--dry_run=true", "--project=demo-project", "--region=us-central1", "--no_auth",
        "--temp_location=gs://demo-bucket/tmp", "--output=gs://demo-bucket/events", "--dead_letter_output=gs://demo-bucket/dead",
        f"--jwks_url={jwks}", "--input_subscription=projects/demo-project/subscriptions/live-events",
    ]) == 0
