"""`canvas-events compact` on gs:// against the GCS emulator (Beam's gcsio, as on GCP).

The lake is uploaded with google-cloud-storage and checked with it: one object per
partition holding each event once, dead letters and hidden objects untouched, a second run
that leaves every object as it was (same name, same generation), kill -9 at random moments
followed by a rerun, and the Beam job translated for Dataflow.
"""
from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.lake_data import write_day
from pipeline.compact import main as compact_main
from pipeline.core.compaction import compact_run_of
from schemas.events import FILE_SCHEMA
from tests.support.lake import OLD_DAYS, kill_after_progress


@pytest.mark.slow
def test_compact_on_gcs_emulator(gcs_emulator: Any, anonymous_gcs: None,
                                 capfd: pytest.CaptureFixture[str]) -> None:
    bucket_name = f"lake-{uuid.uuid4().hex[:8]}"
    gcs_emulator.create_bucket(bucket_name)
    bucket = gcs_emulator.client.bucket(bucket_name)

    def put(relative: str, data: bytes) -> None:
        bucket.blob(f"events/{relative}").upload_from_string(data)

    made = [write_day("", day, names=2, windows=5, rows=150, seed=n, put=put) for n, day in enumerate(OLD_DAYS)]
    distinct = sum(m.distinct for m in made)
    bucket.blob(f"events/event_date={OLD_DAYS[0]}/event_name={made[0].names[0]}/.tmp-someone-writing").upload_from_string(b"x")
    bucket.blob("dead/arrival_date=2024-01-01/part-x.jsonl").upload_from_string(b'{"payload": "eA=="}\n')

    assert compact_main([f"--output=gs://{bucket_name}/events"]) == 0, capfd.readouterr().err[-2000:]

    blobs = {b.name: b for b in gcs_emulator.client.list_blobs(bucket_name)}
    generations = {n: (b.generation, b.updated) for n, b in blobs.items()}
    assert None not in generations.values()
    parquet = {n: b for n, b in blobs.items() if n.endswith(".parquet")}
    assert len(parquet) == 4 and all(compact_run_of(n.rsplit("/", 1)[1]) for n in parquet)
    tables = [pq.read_table(io.BytesIO(b.download_as_bytes())) for b in parquet.values()]
    assert all(t.schema.equals(FILE_SCHEMA, check_metadata=False) for t in tables)
    ids = pa.concat_tables(tables)["event_id"].to_pylist()
    assert len(ids) == len(set(ids)) == distinct
    assert blobs["dead/arrival_date=2024-01-01/part-x.jsonl"].download_as_bytes() == b'{"payload": "eA=="}\n'
    assert any(".tmp-someone-writing" in n for n in blobs)  # young: may belong to a live writer

    assert compact_main([f"--output=gs://{bucket_name}/events"]) == 0
    again = {b.name: (b.generation, b.updated) for b in gcs_emulator.client.list_blobs(bucket_name)}
    assert again == generations


@pytest.mark.slow
def test_compact_job_translates_for_dataflow(gcs_emulator: Any, anonymous_gcs: None,
                                             capfd: pytest.CaptureFixture[str]) -> None:
    """job=compact with --runner=DataflowRunner: planned from the (emulated) bucket, the graph
    built and translated offline (--dry_run, STACK.md trap 10), nothing compacted here."""
    bucket_name = "demo-bucket-compact"
    gcs_emulator.create_bucket(bucket_name)
    bucket = gcs_emulator.client.bucket(bucket_name)
    write_day("", OLD_DAYS[0], names=2, windows=3, rows=40, seed=1,
              put=lambda relative, data: bucket.blob(f"events/{relative}").upload_from_string(data))
    before = sorted(b.name for b in gcs_emulator.client.list_blobs(bucket_name))
    code = compact_main([f"--output=gs://{bucket_name}/events", "--runner=DataflowRunner", "--dry_run=true",
                         "--project=demo-project", "--region=us-central1", "--no_auth",
                         f"--temp_location=gs://{bucket_name}/tmp"])
    err = capfd.readouterr().err
    assert code == 0, err[-2000:]
    assert "2 partition(s) in scope, 2 to compact" in err
    assert sorted(b.name for b in gcs_emulator.client.list_blobs(bucket_name)) == before


# The operator's process, minus Beam's ~17 s search for Google credentials (STACK.md trap 8).
ANONYMOUS_CLI = ("from apache_beam.internal.gcp import auth; "
                 "auth._Credentials._credentials_init, auth._Credentials._credentials = True, None; "
                 "import sys; from pipeline.cli import main; sys.exit(main(sys.argv[1:]))")


def _bucket_events(client: Any, bucket_name: str) -> tuple[list[str], dict[str, set[str | None]]]:
    ids, runs = [], {}
    for blob in client.list_blobs(bucket_name, prefix="events/"):
        directory, _, name = blob.name.rpartition("/")
        if name.startswith((".", "_")):
            continue
        ids += pq.read_table(io.BytesIO(blob.download_as_bytes()), columns=["event_id"])["event_id"].to_pylist()
        runs.setdefault(directory, set()).add(compact_run_of(name))
    return ids, runs


def _gcs_lake(gcs_emulator: Any, bucket_name: str) -> int:
    """Two old days of 4 event names x 8 windows in a new bucket, under events/; the distinct events."""
    gcs_emulator.create_bucket(bucket_name)
    bucket = gcs_emulator.client.bucket(bucket_name)
    made = [write_day("", day, names=4, windows=8, rows=400, seed=n,
                      put=lambda relative, data: bucket.blob(f"events/{relative}").upload_from_string(data))
            for n, day in enumerate(OLD_DAYS)]
    return sum(m.distinct for m in made)


@pytest.mark.slow
def test_kill_9_on_gcs_then_rerun_converges(gcs_emulator: Any) -> None:
    bucket_name = f"crash-{uuid.uuid4().hex[:8]}"
    distinct = _gcs_lake(gcs_emulator, bucket_name)
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", ANONYMOUS_CLI, "compact", f"--output=gs://{bucket_name}/events"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        kills += kill_after_progress(proc, rng, partitions=8, max_delay=0.1)
        assert len(set(_bucket_events(gcs_emulator.client, bucket_name)[0])) == distinct  # nothing lost
    assert kills >= 2
    final = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-2000:]
    ids, runs = _bucket_events(gcs_emulator.client, bucket_name)
    assert len(ids) == len(set(ids)) == distinct
    assert len(runs) == 8 and all(len(r) == 1 and None not in r for r in runs.values())


@pytest.mark.slow
def test_reader_on_gcs_never_sees_fewer_events_than_exist(gcs_emulator: Any) -> None:
    """A reader lists the objects and reads each (as an external table does) in a loop while
    compaction runs on gs://: it may count duplicates, never fewer events. An object deleted
    between its listing and its read fails that read (NotFound), which the reader retries."""
    from google.api_core.exceptions import NotFound

    bucket_name = f"reader-{uuid.uuid4().hex[:8]}"
    distinct = _gcs_lake(gcs_emulator, bucket_name)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", ANONYMOUS_CLI, "compact", f"--output=gs://{bucket_name}/events"],
                            cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen, failed, midway = [], 0, 0
    try:
        while proc.poll() is None:
            try:
                ids, runs = _bucket_events(gcs_emulator.client, bucket_name)
            except NotFound:
                failed += 1
                continue
            seen.append(len(set(ids)))
            names = set().union(*runs.values())
            midway += None in names and len(names) > 1  # old part files and new compacted ones at once
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1].decode()
    assert proc.returncode == 0, stderr[-2000:]
    assert midway >= 1, (seen, failed)  # the reader really read while compaction was half done
    assert min(seen) >= distinct, seen
    ids, _ = _bucket_events(gcs_emulator.client, bucket_name)
    assert len(ids) == len(set(ids)) == distinct
