"""WriteDedupedPartitions: the batch pipeline's one "group by partition, drop repeated dedupe
keys, write" step, with a TestPipeline; the files read back by DuckDB."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import duckdb
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from bench.lake_data import template_rows
from pipeline.core.partition import partition_path
from pipeline.core.rows import COLUMN_INDEX
from pipeline.transforms.write import WriteDedupedPartitions
from schemas.events import Row

ARRIVAL = 1_700_000_000  # seconds; a replay stamps every line with its start


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
