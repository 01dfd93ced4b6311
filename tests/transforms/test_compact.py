"""pipeline/transforms/compact.py: the Beam shell of `canvas-events compact`.

A retried bundle is how a runner answers a failure half-way through a partition. The case
that loses data if a retry reuses the first attempt's file names: the first attempt writes
its files (every row), deletes some of the old files, then fails (a batch delete on GCS can
fail after removing part of the batch); the retry reads only the old files left and must
not overwrite the first attempt's complete files with fewer rows.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from apache_beam.io.filesystems import FileSystems

from bench.lake_data import write_day
from pipeline.compact import list_output
from pipeline.core.compaction import plan_compaction
from pipeline.transforms.compact import _CompactPartitionFn
from tests.support.lake import OLD_DAYS, duckdb_counts


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

    fn = _CompactPartitionFn(str(out), 256 * 1024 * 1024)
    fn.setup()
    monkeypatch.setattr(FileSystems, "delete", staticmethod(delete_half_then_fail))
    with pytest.raises(_PartialDeleteFailure):
        list(fn.process(plan))
    assert duckdb_counts(f"{out}/**/*.parquet")[1] == distinct  # the first attempt lost nothing yet
    monkeypatch.setattr(FileSystems, "delete", staticmethod(real_delete))

    list(fn.process(plan))  # the runner retries the bundle with the same element

    assert duckdb_counts(f"{out}/**/*.parquet")[1] == distinct
