"""`canvas-events compact` on local disk, as an operator runs it: results read back by DuckDB.

Covers: exactly one row per event and the first-received copy kept, few files sorted by
event_time with the pipeline's schema, the scope rules (recent dates, --dates, dead
letters and hidden files untouched), idempotence (a second run touches nothing: same
files, same mtimes), files appearing or changing after the listing left alone, an
unreadable file reported and kept, and the Beam shell (DirectRunner) giving the same lake.
"""
from __future__ import annotations

import os
import re
import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from bench.lake_data import write_day
from pipeline.cli import main as cli_main
from pipeline.compact import compact_partition, list_output, main as compact_main
from pipeline.core.compaction import compact_run_of, plan_compaction
from pipeline.filenames import new_run_id
from schemas.events import FILE_SCHEMA
from tests.support.lake import OLD_DAYS, duckdb_counts, visible_files


def _lake(root: Path, *, rows: int = 1500, names: int = 4, windows: int = 12) -> int:
    distinct = 0
    for n, day in enumerate(OLD_DAYS):
        distinct += write_day(root, day, names=names, windows=windows, rows=rows, seed=n).distinct
    return distinct


def _summary(err: str) -> dict[str, float]:
    """The summary block at the end of a run's stderr: ``name  value`` lines."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+)\s+([0-9.]+)$", err, re.M)}


def _first_received(root: Path) -> dict[str, datetime]:
    return dict(duckdb.sql(f"select event_id, min(received_at) from read_parquet('{root}/**/*.parquet', "
                           "hive_partitioning=true) group by 1").fetchall())


def test_compact_leaves_one_row_per_event_in_one_file_per_partition(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events"
    distinct = _lake(out)
    recent_day = datetime.now(timezone.utc).date() - timedelta(days=1)
    recent = write_day(out, recent_day, names=2, windows=3, rows=60, seed=9)
    recent_files = sorted(p for p in out.rglob(f"event_date={recent_day}/**/*.parquet"))
    hidden = out / f"event_date={OLD_DAYS[0]}" / "event_name=_hidden_marker" / "_SUCCESS"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(b"")
    dead = tmp_path / "dead" / "arrival_date=2024-01-01" / "part-x.jsonl"
    dead.parent.mkdir(parents=True)
    dead.write_bytes(b'{"payload": "eA=="}\n')
    before_rows, before_distinct = duckdb_counts(f"{out}/**/*.parquet")
    assert before_rows > before_distinct == distinct + recent.distinct  # the lake holds duplicates
    first = _first_received(out)

    assert cli_main(["compact", f"--output={out}"]) == 0
    err = capfd.readouterr().err

    recent_duplicates = recent.rows - recent.distinct  # out of the default scope: still there
    assert duckdb_counts(f"{out}/**/*.parquet") == (before_distinct + recent_duplicates, before_distinct)
    assert _first_received(out) == first  # the copy received first is the one kept
    old = [p for p in visible_files(out) if f"event_date={recent_day}" not in str(p)]
    assert len(old) == 2 * 4 and all(compact_run_of(p.name) for p in old)
    assert sorted(p for p in out.rglob(f"event_date={recent_day}/**/*.parquet")) == recent_files
    assert hidden.exists() and dead.read_bytes() == b'{"payload": "eA=="}\n'
    for path in old:
        table = pq.read_table(path)
        assert table.schema.equals(FILE_SCHEMA, check_metadata=False)
        assert pq.read_schema(path).names == FILE_SCHEMA.names
        times = table["event_time"].to_pylist()
        assert times == sorted(times)
    assert "8 partition(s) in scope" in err
    summary = _summary(err)
    assert summary["duplicates_removed"] == before_rows - before_distinct - recent_duplicates
    assert (summary["partitions"], summary["files_after"]) == (8, 8)


def test_second_run_touches_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events"
    _lake(out, rows=400)
    assert compact_main([f"--output={out}"]) == 0
    state = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capfd.readouterr()
    assert compact_main([f"--output={out}"]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == state
    err = capfd.readouterr().err
    assert (_summary(err)["partitions_untouched"], _summary(err)["rows_read"]) == (8, 0)


def test_dates_option_limits_the_scope(tmp_path: Path) -> None:
    out = tmp_path / "events"
    _lake(out, rows=300)
    assert compact_main([f"--output={out}", f"--dates={OLD_DAYS[1]}"]) == 0
    by_day = {day: [p.name for p in visible_files(out / f"event_date={day}")] for day in OLD_DAYS}
    assert all(name.startswith("part-") for name in by_day[OLD_DAYS[0]])
    assert all(compact_run_of(name) for name in by_day[OLD_DAYS[1]]) and len(by_day[OLD_DAYS[1]]) == 4


def test_files_appearing_or_changing_after_the_listing_are_left(tmp_path: Path) -> None:
    out = tmp_path / "events"
    write_day(out, OLD_DAYS[0], names=1, windows=6, rows=120, seed=3)
    [plan] = plan_compaction(list_output(str(out)), today=date(2024, 2, 1))
    directory = out / plan.partition
    listed = sorted(directory.iterdir())
    # After the listing: one new file arrives, one listed file is rewritten (other content).
    newcomer = directory / "part-late-arrival.parquet"
    shutil.copy(listed[0], newcomer)
    changed = listed[1]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 5_000_000_000))

    result = compact_partition(str(out), plan, new_run_id(), 256 * 1024 * 1024)

    remaining = sorted(p.name for p in directory.iterdir())
    assert newcomer.name in remaining and changed.name in remaining
    assert [p for p in listed if p.exists()] == [changed]  # every other listed file was deleted
    assert result.left_changed == [str(changed)]
    assert len([n for n in remaining if compact_run_of(n)]) == 1


def test_unreadable_file_is_reported_and_kept(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events"
    write_day(out, OLD_DAYS[0], names=1, windows=4, rows=80, seed=4)
    directory = next((out / f"event_date={OLD_DAYS[0]}").iterdir())
    broken = directory / "part-broken.parquet"
    broken.write_bytes(b"not parquet at all")
    distinct = duckdb_counts(f"{directory}/part-2*.parquet")[1]
    assert compact_main([f"--output={out}"]) == 1
    assert broken.read_bytes() == b"not parquet at all"
    assert "1 unreadable file(s) left in place" in capfd.readouterr().err
    assert duckdb_counts(f"{directory}/compact-*.parquet") == (distinct, distinct)


def test_bad_options_exit_2(capfd: pytest.CaptureFixture[str]) -> None:
    assert compact_main(["--output=/x", "--dates=2024-02-30", "--target_file_mb=0"]) == 2
    err = capfd.readouterr().err
    assert "--dates: not a date (YYYY-MM-DD): '2024-02-30'" in err and "--target_file_mb" in err
    assert compact_main(["--output=/x", "--bogus=1"]) == 2


def test_target_file_mb_splits_large_partitions(tmp_path: Path) -> None:
    from pipeline.compact import encode_shards
    from pipeline.arrow import rows_to_table
    from bench.lake_data import template_rows
    table = rows_to_table(template_rows() * 20)
    shards = encode_shards(table, target_bytes=len(encode_shards(table, 1 << 40)[0]) // 3)
    assert len(shards) in (3, 4)
    assert sum(pq.read_table(__import__("io").BytesIO(s)).num_rows for s in shards) == table.num_rows


def test_beam_runner_gives_the_same_lake(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    local, beam = tmp_path / "local", tmp_path / "beam"
    _lake(local, rows=400)
    shutil.copytree(local, beam)
    assert compact_main([f"--output={local}"]) == 0
    capfd.readouterr()
    assert compact_main([f"--output={beam}", "--runner=DirectRunner"]) == 0
    err = capfd.readouterr().err
    assert "duplicates_removed" in err and err.count("-> 1 files") == 8  # progress per partition
    assert duckdb_counts(f"{beam}/**/*.parquet") == duckdb_counts(f"{local}/**/*.parquet")
    assert len(visible_files(beam)) == len(visible_files(local)) == 8
    assert sorted(duckdb.sql(f"select * exclude (event_date) from read_parquet('{beam}/**/*.parquet', "
                             "hive_partitioning=true)").fetchall(), key=repr) == \
        sorted(duckdb.sql(f"select * exclude (event_date) from read_parquet('{local}/**/*.parquet', "
                          "hive_partitioning=true)").fetchall(), key=repr)
