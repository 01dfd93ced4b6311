"""The pure parts of compaction: which partitions and files, and which copy of an event stays."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pyarrow as pa
import pytest

from pipeline.core.compaction import (
    FileEntry,
    compact_file_name,
    parse_dates,
    plan_compaction,
    shard_count,
    stale_temp_files,
)
from pipeline.core.identity import dedupe_key
from pipeline.arrow import dedupe_keys, dedupe_table, rows_to_table
from pipeline.core.rows import COLUMN_INDEX
from bench.lake_data import template_rows
from schemas.events import Row

TODAY = date(2024, 3, 10)


def _entry(relative: str, size: int = 10, updated: float = 0.0) -> FileEntry:
    return FileEntry(relative, size, updated)


def test_plan_takes_visible_files_of_old_partitions_only() -> None:
    listing = [
        _entry("event_date=2024-03-08/event_name=a/part-1.parquet"),
        _entry("event_date=2024-03-08/event_name=a/part-2.parquet"),
        _entry("event_date=2024-03-08/event_name=a/.tmp-part-3.parquet.x"),  # hidden
        _entry("event_date=2024-03-08/event_name=a/_SUCCESS"),  # hidden
        _entry("event_date=2024-03-09/event_name=a/part-1.parquet"),  # 1 day old: busy
        _entry("event_date=2024-03-01/event_name=b/part-1.parquet"),
        _entry("event_date=2024-03-01/part-1.parquet"),  # not in a partition
        _entry("event_date=nonsense/event_name=b/part-1.parquet"),
        _entry("event_date=2024-03-01/event_name=b/deeper/part-1.parquet"),
    ]
    plans = plan_compaction(listing, today=TODAY)
    assert [(p.partition, [f.relative.rsplit("/", 1)[1] for f in p.files]) for p in plans] == [
        ("event_date=2024-03-01/event_name=b", ["part-1.parquet"]),
        ("event_date=2024-03-08/event_name=a", ["part-1.parquet", "part-2.parquet"]),
    ]
    assert not any(p.compact for p in plans)
    assert [p.partition for p in plan_compaction(listing, today=TODAY, older_than_days=0)][-1] == \
        "event_date=2024-03-09/event_name=a"
    only = plan_compaction(listing, today=TODAY, dates=[date(2024, 3, 9)])
    assert [p.partition for p in only] == ["event_date=2024-03-09/event_name=a"]


@pytest.mark.parametrize("names, compact", [
    ([compact_file_name("aaaa1111", 0)], True),
    ([compact_file_name("aaaa1111", 0), compact_file_name("aaaa1111", 1)], True),
    ([compact_file_name("aaaa1111", 0), compact_file_name("bbbb2222", 0)], False),  # two runs
    ([compact_file_name("aaaa1111", 0), "part-x.parquet"], False),  # new data beside it
    (["part-x.parquet"], False),  # a pipeline file: never checked for duplicates
])
def test_already_compact_means_one_compaction_runs_files_only(names: list[str], compact: bool) -> None:
    listing = [_entry(f"event_date=2024-01-01/event_name=a/{n}") for n in names]
    assert [p.compact for p in plan_compaction(listing, today=TODAY)] == [compact]


def test_stale_temps_shard_count_and_dates() -> None:
    old = _entry("event_date=2024-01-01/event_name=a/.tmp-compact-x.parquet.1", updated=1000.0)
    young = _entry("event_date=2024-01-01/event_name=a/.tmp-compact-y.parquet.1", updated=90_000.0)
    visible = _entry("event_date=2024-01-01/event_name=a/part.parquet", updated=0.0)
    assert stale_temp_files([old, young, visible], now=100_000.0) == [old]
    assert [shard_count(n, 100) for n in (0, 1, 100, 101, 1000)] == [1, 1, 1, 2, 10]
    assert parse_dates("2024-01-01, 2024-01-03") == [date(2024, 1, 1), date(2024, 1, 3)]
    with pytest.raises(ValueError, match="2024-13-01"):
        parse_dates("2024-01-01,2024-13-01")
    with pytest.raises(ValueError):
        plan_compaction([], today=TODAY, older_than_days=-1)


def _micros(hour: int) -> int:
    return int(datetime(2024, 1, 1, hour, tzinfo=timezone.utc).timestamp() * 1e6)


def test_dedupe_table_keeps_first_received_copy_and_sorts_by_event_time() -> None:
    templates = template_rows()
    canvas = next(t for t in templates if t[COLUMN_INDEX["request_id"]])
    job = next((t for t in templates if t[COLUMN_INDEX["job_id"]] and not t[COLUMN_INDEX["request_id"]]), None)
    rows = []
    for n, base in enumerate([canvas] + ([job] if job else [])):
        for copy, received in enumerate((5, 2, 9)):  # the copy received at hour 2 is the first
            row = list(base)
            row[COLUMN_INDEX["event_time"]] = _micros(1 + n)
            row[COLUMN_INDEX["received_at"]] = _micros(received)
            row[COLUMN_INDEX["kid"]] = f"copy-{copy}"
            rows.append(Row(*row))
    table = rows_to_table(rows)
    # Arrow's keys are the core's keys.
    assert dedupe_keys(table).to_pylist() == [
        dedupe_key({"request_id": r[COLUMN_INDEX["request_id"]], "job_id": r[COLUMN_INDEX["job_id"]],
                    "event_id": r[COLUMN_INDEX["event_id"]]}) for r in rows]
    kept, dropped = dedupe_table(table)
    assert dropped == len(rows) - kept.num_rows == 2 * kept.num_rows
    assert kept["kid"].to_pylist() == ["copy-1"] * kept.num_rows
    times = kept["event_time"].to_pylist()
    assert times == sorted(times)
    assert kept.schema == table.schema
    empty, none = dedupe_table(table.slice(0, 0))
    assert (empty.num_rows, none) == (0, 0)


def test_dedupe_table_unknown_receipt_loses_to_known() -> None:
    base = template_rows()[0]
    unknown = list(base)
    unknown[COLUMN_INDEX["received_at"]] = None
    unknown[COLUMN_INDEX["kid"]] = "unknown"
    known = list(base)
    known[COLUMN_INDEX["received_at"]] = _micros(23)
    known[COLUMN_INDEX["kid"]] = "known"
    kept, dropped = dedupe_table(rows_to_table([Row(*unknown), Row(*known)]))
    assert (kept["kid"].to_pylist(), dropped) == (["known"], 1)
    assert isinstance(kept, pa.Table)


def test_dedupe_rows_keeps_what_dedupe_table_keeps() -> None:
    """The pipeline's Row dedupe and compaction's Arrow dedupe are one rule."""
    import random

    from pipeline.core.rows import row_dict
    from tests.support.rows import dedupe_rows

    rng = random.Random(5)
    templates = template_rows()
    rows = []
    for n in range(300):
        row = list(templates[rng.randrange(40)])  # 40 events, each several times
        row[COLUMN_INDEX["received_at"]] = rng.choice([None, _micros(rng.randrange(24))])
        row[COLUMN_INDEX["kid"]] = rng.choice([None, "a", "b"])
        row[COLUMN_INDEX["user_agent"]] = f"copy {n}"  # tells the copies apart
        rows.append(Row(*row))
    kept_rows, dropped_rows = dedupe_rows(rows)
    kept_table, dropped_table = dedupe_table(rows_to_table(rows))
    assert dropped_rows == dropped_table == len(rows) - len(kept_rows)
    ids = lambda table_rows: sorted(r["user_agent"] for r in table_rows)  # noqa: E731
    assert ids(kept_table.to_pylist()) == ids(row_dict(r) for r in kept_rows)


def test_split_deduped_is_dedupe_rows_per_partition_and_window() -> None:
    """The batch replay's one Arrow pass over many partitions keeps, per (partition, window),
    exactly what the per-partition rule keeps, rows in (event_time, event_id) order; a key that
    repeats in another partition or window is not a duplicate there."""
    import random

    from pipeline.arrow import rows_to_keyed_table, split_deduped
    from pipeline.core.partition import partition_path
    from tests.support.rows import dedupe_rows

    rng = random.Random(11)
    templates = template_rows()
    rows, partitions, windows = [], [], []
    for n in range(400):
        row = list(templates[rng.randrange(60)])
        row[COLUMN_INDEX["received_at"]] = rng.choice([None, _micros(rng.randrange(24))])
        row[COLUMN_INDEX["kid"]] = rng.choice([None, "a", "b"])
        row[COLUMN_INDEX["user_agent"]] = f"copy {n}"
        if n % 7 == 0:  # the same event under another name: another partition
            row[COLUMN_INDEX["event_name"]] = "elsewhere"
        rows.append(Row(*row))
        partitions.append(partition_path(rows[-1]))
        windows.append(rng.choice([0, 300_000_000]))
    half = len(rows) // 2  # two batches, as two chunks of a bundle arrive
    tables = [rows_to_keyed_table(rows[:half], windows[:half]), rows_to_keyed_table(rows[half:], windows[half:])]
    parts, dropped = split_deduped(tables)

    groups: dict[tuple[str, int], list[Row]] = {}
    for row, partition, window in zip(rows, partitions, windows):
        groups.setdefault((partition, window), []).append(row)
    expected = {key: dedupe_rows(group)[0] for key, group in sorted(groups.items())}
    assert [key for key, _ in parts] == list(expected)
    for key, table in parts:
        assert table.column("user_agent").to_pylist() == [r[COLUMN_INDEX["user_agent"]] for r in expected[key]]
    assert dropped == len(rows) - sum(len(v) for v in expected.values()) > 0
