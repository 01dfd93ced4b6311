"""pipeline/transforms/compact.py: the Beam shell of `canvas-events compact`, which is the
batch replay's RewritePartitions given compaction plans.

A retried bundle is how a runner answers a failure half-way through a partition. The case
that loses data if a retry reuses the first attempt's file names: the first attempt writes
its files (every row), deletes some of the old files, then fails (a batch delete on GCS can
fail after removing part of the batch); the retry reads only the old files left and must
not overwrite the first attempt's complete files with fewer rows.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems

from bench.lake_data import write_day
from pipeline.arrow import table_to_ipc
from pipeline.compact import list_output
from pipeline.core.compaction import plan_compaction
from pipeline.transforms.write import FOLD_WINDOW, RewritePartitions, _RewritePartitionFn, fold_element
from schemas.events import FILE_SCHEMA
from tests.support.lake import OLD_DAYS, duckdb_counts, visible_files


class _PartialDeleteFailure(Exception):
    pass


def test_a_retry_after_a_half_done_delete_loses_no_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "events"
    write_day(out, OLD_DAYS[0], names=1, windows=8, rows=400, seed=5)
    [plan] = plan_compaction(list_output(str(out)), today=date(2024, 2, 1))
    assert len(plan.files) >= 4
    _, distinct = duckdb_counts(f"{out}/**/*.parquet")

    real_delete = FileSystems.delete

    def delete_half_then_fail(paths: list[str]) -> None:
        real_delete(paths[: len(paths) // 2])
        raise _PartialDeleteFailure("batch delete failed after removing part of the batch")

    fn = _RewritePartitionFn(str(out), 50_000, "unused000001", target_file_bytes=256 * 1024 * 1024)
    fn.setup()
    key, value = fold_element(plan)
    monkeypatch.setattr(FileSystems, "delete", staticmethod(delete_half_then_fail))
    with pytest.raises(_PartialDeleteFailure):
        list(fn.process((key, [value])))
    assert duckdb_counts(f"{out}/**/*.parquet")[1] == distinct  # the first attempt lost nothing yet
    monkeypatch.setattr(FileSystems, "delete", staticmethod(real_delete))

    list(fn.process((key, [value])))  # the runner retries the bundle with the same element

    assert duckdb_counts(f"{out}/**/*.parquet")[1] == distinct


def test_one_transform_folds_a_partition_and_writes_a_replay_together(tmp_path: Path) -> None:
    """RewritePartitions is both jobs: in one pipeline it compacts a partition (its files
    folded: read, deduplicated, rewritten, deleted) together with new rows keyed to that fold
    (copies of stored events among them), and writes a replay's rows, keyed by their arrival
    window, for another partition. Every event is left exactly once."""
    out = tmp_path / "events"
    write_day(out, OLD_DAYS[0], names=1, windows=6, rows=300, seed=9)
    [plan] = plan_compaction(list_output(str(out)), today=date(2024, 2, 1))
    stored = pq.read_table(list(out.rglob("*.parquet"))).select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
    stored_ids = set(stored["event_id"].to_pylist())
    copies = stored.slice(0, 40)  # replayed copies of stored events
    fresh = stored.slice(40, 30).set_column(  # new events of the same partition
        FILE_SCHEMA.get_field_index("event_id"), FILE_SCHEMA.field("event_id"),
        pa.array([f"replayed-{i}" for i in range(30)], pa.string()))
    other = f"{plan.partition}_elsewhere"  # the same events in another partition are not duplicates there
    elsewhere = stored.slice(0, 25)
    window = (1_700_000_000_000_000, 1_700_000_300_000_000)
    elements = [fold_element(plan),
                ((plan.partition, *FOLD_WINDOW), table_to_ipc(pa.concat_tables([copies, fresh]))),
                ((other, *window), table_to_ipc(elsewhere))]
    with beam.Pipeline() as p:
        _ = p | beam.Create(elements, reshuffle=False) | RewritePartitions(str(out), run_id="replayrun001")

    folded = visible_files(out / plan.partition)
    assert len(folded) == 1 and folded[0].name.startswith("compact-")  # old files deleted after
    assert not set(f.relative for f in plan.files) & {str(f.relative_to(out)) for f in visible_files(out)}
    ids = pq.read_table(folded[0])["event_id"].to_pylist()
    assert sorted(ids) == sorted(stored_ids | {f"replayed-{i}" for i in range(30)})  # each once
    [written] = visible_files(out / other)
    assert "replayrun001" in written.name
    assert sorted(pq.read_table(written)["event_id"].to_pylist()) == sorted(elsewhere["event_id"].to_pylist())
