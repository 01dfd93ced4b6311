"""The writers on their own, each in a TestPipeline writing into a tmp dir: WritePartitionedParquet
(streaming's files per partition per window), WriteDeadLetters (JSON lines per window) and
WriteDedupedPartitions (the batch pipeline's one "group by partition, drop repeated dedupe keys,
write" step); the files read back by DuckDB or line by line."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
import duckdb
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window
from apache_beam.transforms.window import TimestampedValue

from bench.lake_data import template_rows
from pipeline.core.partition import partition_path
from pipeline.core.rows import COLUMN_INDEX
from pipeline.core.errors import EventError
from pipeline.deadletter import dead_letter_record, decode_payload
from pipeline.transforms.write import WriteDeadLetters, WriteDedupedPartitions, WritePartitionedParquet
from schemas.events import Row
from tests.support.rows import distinct_rows, with_values

ARRIVAL = 1_700_000_000  # seconds; a replay stamps every line with its start
WINDOW = "20231114T221000Z-20231114T221500Z"  # the 300 s window holding ARRIVAL


def _relative(root: Path):
    return lambda path: str(Path(path).relative_to(root))


def test_partitioned_parquet_one_file_per_partition_and_window_every_row_kept(tmp_path: Path) -> None:
    rows = distinct_rows(9)
    rows += [with_values(r, kid="retry") for r in rows[:3]]  # this writer keeps copies: dedupe is upstream
    partitions = sorted({partition_path(r) for r in rows})
    assert len(partitions) > 1

    with test_pipeline.TestPipeline() as p:
        files = (p | beam.Create([TimestampedValue(r, ARRIVAL) for r in rows])
                 | beam.WindowInto(window.FixedWindows(300))
                 | WritePartitionedParquet(str(tmp_path), run_id="testrun00002"))
        assert_that(files | beam.Map(_relative(tmp_path)), equal_to(
            [f"{part}/part-{WINDOW}-p0-s000-testrun00002.parquet" for part in partitions]))

    found = duckdb.sql(f"select request_id, job_id, event_id, kid from read_parquet('{tmp_path}/**/*.parquet', "
                       "hive_partitioning=true)").fetchall()
    expected = [(r[COLUMN_INDEX["request_id"]], r[COLUMN_INDEX["job_id"]], r[COLUMN_INDEX["event_id"]],
                 r[COLUMN_INDEX["kid"]]) for r in rows]
    assert sorted(found, key=repr) == sorted(expected, key=repr)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp file left


def test_partitioned_parquet_shards_past_max_rows(tmp_path: Path) -> None:
    rows = [with_values(distinct_rows(1)[0], kid=f"copy-{n}") for n in range(5)]  # one partition
    with test_pipeline.TestPipeline() as p:
        files = (p | beam.Create([TimestampedValue(r, ARRIVAL) for r in rows])
                 | beam.WindowInto(window.FixedWindows(300))
                 | WritePartitionedParquet(str(tmp_path), max_rows_per_file=2, run_id="testrun00003"))
        assert_that(files | beam.combiners.Count.Globally(), equal_to([3]))
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/**/*.parquet')").fetchall() == [(len(rows),)]


def test_dead_letters_one_jsonl_file_per_window_holding_the_original_bytes(tmp_path: Path) -> None:
    failed_at = datetime.fromtimestamp(ARRIVAL, timezone.utc)
    raws = [b"\xff garbage", b'{"metadata": {}}', b"eyJ.forged.token"]
    records = [dead_letter_record(stage="VerifyAndDecode", error=EventError("unknown_format", f"line {i}"),
                                  payload=raw, attributes={"n": i}, failed_at=failed_at) for i, raw in enumerate(raws)]
    with test_pipeline.TestPipeline() as p:
        files = (p | beam.Create([TimestampedValue(r, ARRIVAL) for r in records])
                 | beam.WindowInto(window.FixedWindows(300))
                 | WriteDeadLetters(str(tmp_path), run_id="testrun00004"))
        assert_that(files | beam.Map(_relative(tmp_path)), equal_to(
            [f"arrival_date=2023-11-14/part-{WINDOW}-p0-s000-testrun00004.jsonl"]))
    [path] = tmp_path.rglob("*.jsonl")
    written = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert sorted(decode_payload(r) for r in written) == sorted(raws)
    assert sorted(written, key=lambda r: r["payload"]) == sorted(records, key=lambda r: r["payload"])


def test_one_row_per_key_first_received_one_file_per_partition(tmp_path: Path) -> None:
    templates = template_rows()[:12]
    rows = []
    for n, base in enumerate(templates):
        for copy, received_s in enumerate((30, 10, 20)):  # the copy received at +10 s is first
            row = list(base)
            row[COLUMN_INDEX["received_at"]] = (ARRIVAL + received_s) * 1_000_000
            row[COLUMN_INDEX["kid"]] = f"copy-{copy}"
            rows.append(Row(*row))
    partitions = {partition_path(r) for r in rows}

    with test_pipeline.TestPipeline() as p:
        files = (p | beam.Create([TimestampedValue(r, ARRIVAL) for r in rows])
                 | WriteDedupedPartitions(str(tmp_path), window_seconds=300, run_id="testrun00001"))
        assert_that(files | beam.combiners.Count.Globally(), equal_to([len(partitions)]))

    found = duckdb.sql(f"select kid, count(*), count(distinct event_id) from read_parquet('{tmp_path}/**/*.parquet', "
                       "hive_partitioning=true) group by 1").fetchall()
    distinct = len({(r[COLUMN_INDEX["request_id"]], r[COLUMN_INDEX["job_id"]], r[COLUMN_INDEX["event_id"]])
                    for r in rows})
    assert found == [("copy-1", distinct, distinct)]
    names = [p.name for p in tmp_path.rglob("*.parquet")]
    window = "part-20231114T221000Z-20231114T221500Z-p0-s000-testrun00001.parquet"
    assert names == [window] * len(partitions)


def test_refuses_streaming_input() -> None:
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    p = beam.Pipeline(options=options)
    with pytest.raises(ValueError, match="bounded"):
        _ = p | TestStream().add_elements([1]) | WriteDedupedPartitions("/tmp/x", window_seconds=300)
