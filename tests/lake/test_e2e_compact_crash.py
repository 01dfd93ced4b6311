"""Compaction the way production breaks it: a reader querying while it runs, kill -9, reruns.

The compaction runs as its own process (``python -m pipeline.cli compact``), as an operator
or a scheduler starts it. A reader (DuckDB, the local stand-in for BigQuery) counts
distinct events in a loop meanwhile: it may see duplicates, never fewer events than exist.
DuckDB lists the files and then opens them; when a file is deleted between the two it
raises an error (it never silently skips), which the reader retries: that is a failed
query, not a gap, and BigQuery's external tables behave the same way.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb

from bench.lake_data import write_day
from pipeline.core.compaction import compact_run_of
from tests.support.lake import OLD_DAYS, duckdb_counts, kill_after_progress, visible_files

ROOT = Path(__file__).resolve().parents[2]


def _lake(root: Path) -> int:
    return sum(write_day(root, day, names=12, windows=40, rows=6000, seed=n).distinct
               for n, day in enumerate(OLD_DAYS))


def _start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "compact", f"--output={out}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_reader_never_sees_fewer_events_than_exist(tmp_path: Path) -> None:
    out = tmp_path / "events"
    distinct = _lake(out)
    glob = f"{out}/**/*.parquet"
    proc = _start(out)
    seen, failed_reads, midway = [], 0, 0
    query = (f"select count(*), count(distinct event_id), bool_or(filename like '%/compact-%'), "
             f"bool_or(filename like '%/part-%') from read_parquet('{glob}', hive_partitioning=true, filename=true)")
    try:
        while proc.poll() is None:
            try:
                total, events, compacted, parts = duckdb.sql(query).fetchall()[0]
            except duckdb.Error:
                failed_reads += 1  # a file vanished between DuckDB's listing and its read: retry
                continue
            seen.append((total, events))
            midway += compacted and parts  # read while compaction was half done
    finally:
        if proc.poll() is None:
            proc.kill()
        stderr = proc.communicate()[1].decode()
    assert proc.returncode == 0, stderr[-2000:]
    assert midway >= 1, (len(seen), failed_reads)  # the reader really read a half-compacted lake
    assert all(d >= distinct for _, d in seen), [d for _, d in seen if d < distinct]
    assert min(total for total, _ in seen) >= distinct
    assert duckdb_counts(glob) == (distinct, distinct)


def _kill_at_a_random_moment(out: Path, rng: random.Random, partitions: int) -> bool:
    """Start a compaction and kill -9 it at a random moment: a random number of partitions
    in (each finished partition prints a line), then a random fraction of the next one.
    Returns whether it was killed (False: it finished first)."""
    return kill_after_progress(_start(out), rng, partitions, max_delay=0.08)


def test_kill_9_at_random_moments_then_rerun_converges(tmp_path: Path) -> None:
    out = tmp_path / "events"
    distinct = _lake(out)
    glob = f"{out}/**/*.parquet"
    rng = random.Random(20241202)
    kills = 0
    for _ in range(4):
        kills += _kill_at_a_random_moment(out, rng, partitions=2 * 12)
        assert duckdb_counts(glob)[1] == distinct  # after each crash: nothing lost
    assert kills >= 2  # most attempts really died mid-run
    final = _start(out)
    assert final.wait(timeout=120) == 0, final.stderr.read().decode()[-2000:]
    final.stderr.close()
    assert duckdb_counts(glob) == (distinct, distinct)
    by_partition: dict[Path, set[str | None]] = {}
    for path in visible_files(out):
        by_partition.setdefault(path.parent, set()).add(compact_run_of(path.name))
    assert len(by_partition) == 2 * 12
    assert all(len(runs) == 1 and None not in runs for runs in by_partition.values())
