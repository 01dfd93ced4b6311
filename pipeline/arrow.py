"""Rows -> Arrow tables and Parquet bytes, and the dedupe of rows that share a key.

Everything that decides what a file contains lives here, pure and testable without Beam:
a stable row order, sharding of very large partitions, the Arrow encoding of ``Row`` values
(int microseconds go straight into the ``timestamp('us', tz='UTC')`` columns, so timestamps
never become ``datetime`` objects again) and the choice of one copy per dedupe key, in Arrow
for whole files (compaction) and in plain Python for the few rows of one window.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.identity import dedupe_key
from pipeline.core.rows import COLUMN_INDEX
from schemas.events import FILE_SCHEMA, Row

COMPRESSION = "zstd"  # BigQuery external tables and DuckDB read zstd Parquet
# Free-text columns: min/max statistics on them prune nothing and, at these sizes, were
# about a sixth of a small file's bytes. Every other column keeps its statistics.
UNSTATISTICAL_COLUMNS = frozenset({"body", "metadata", "url", "referrer", "user_agent"})
MAX_ROWS_PER_FILE = 100_000
DICTIONARY_MIN_ROWS = 1_000

_FILE_WIDTH = len(FILE_SCHEMA)
# Rows are read by position (see schemas.events.Row).
_EVENT_TIME, _EVENT_ID, _RECEIVED_AT, _KID = (COLUMN_INDEX[c] for c in ("event_time", "event_id", "received_at", "kid"))


def sort_key(row: Row) -> tuple[int, str]:
    return (row[_EVENT_TIME], row[_EVENT_ID])


def sorted_rows(rows: Iterable[Row]) -> list[Row]:
    """Rows in (event_time, event_id) order: the same bytes on every retry, tighter row groups."""
    return sorted(rows, key=sort_key)


def shard(items: Sequence[Any], max_items: int = MAX_ROWS_PER_FILE) -> list[Sequence[Any]]:
    """Split into consecutive chunks of at most ``max_items`` (at least one chunk)."""
    if max_items < 1:
        raise ValueError("max_items must be positive")
    return [items[i:i + max_items] for i in range(0, len(items), max_items)] or [items]


def rows_to_table(rows: Sequence[Row]) -> pa.Table:
    """Arrow table of the file columns, built column by column from rows.

    ``event_name`` (last in a Row) lives in the path, not in the file. Int
    microseconds go straight into the ``timestamp('us', tz='UTC')`` columns.
    """
    columns = list(zip(*rows)) if rows else [()] * _FILE_WIDTH
    arrays = [pa.array(columns[i], type=field.type) for i, field in enumerate(FILE_SCHEMA)]
    return pa.Table.from_arrays(arrays, schema=FILE_SCHEMA)


def table_to_parquet_bytes(table: pa.Table, compression: str = COMPRESSION,
                           row_group_size: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    statistics = [name for name in table.schema.names if name not in UNSTATISTICAL_COLUMNS]
    # Dictionaries pay off over many rows; in a streaming window's few rows they cost CPU and bytes.
    pq.write_table(table, sink, compression=compression, write_statistics=statistics,
                   row_group_size=row_group_size, use_dictionary=table.num_rows >= DICTIONARY_MIN_ROWS)
    return sink.getvalue().to_pybytes()


def dedupe_keys(table: pa.Table) -> pa.ChunkedArray:
    """``pipeline.core.identity.dedupe_key`` of every row of a file table, computed by Arrow."""
    request, job, event = table["request_id"], table["job_id"], table["event_id"]
    has_request = pc.fill_null(pc.not_equal(request, ""), False)
    has_job = pc.fill_null(pc.not_equal(job, ""), False)
    prefix = pc.if_else(has_request, pc.binary_join_element_wise("r:", request, ""),
                        pc.if_else(has_job, pc.binary_join_element_wise("j:", job, ""), "-"))
    return pc.binary_join_element_wise(prefix, event, "|")


_UNKNOWN_LAST = 2**63 - 1


def _receipt(row: Row) -> tuple[int, str]:
    received = row[_RECEIVED_AT]
    return (_UNKNOWN_LAST if received is None else received, row[_KID] or "")


def dedupe_rows(rows: Iterable[Row]) -> tuple[list[Row], int]:
    """``dedupe_table`` for Rows, in plain Python: the same copy kept (first received,
    then smallest kid; equal copies by position), rows sorted by (event_time, event_id).
    Cheaper than Arrow's group-by for the few rows of one partition of one window."""
    best: dict[str, Row] = {}
    count = 0
    for row in rows:
        count += 1
        key = dedupe_key(row)
        current = best.get(key)
        if current is None or _receipt(row) < _receipt(current):
            best[key] = row
    return sorted_rows(best.values()), count - len(best)


def dedupe_table(table: pa.Table) -> tuple[pa.Table, int]:
    """One row per dedupe key, the copy received first; returns (rows, duplicates dropped).

    "First" is the smallest ``received_at`` (unknown last); copies received at the same
    moment (one replay stamps every line alike) are told apart by ``kid`` and then by
    their position, so the choice does not depend on the order files were listed in when
    the copies are equal. The rows come back sorted by (event_time, event_id), which
    makes row-group statistics on event_time prune.
    """
    count = table.num_rows
    if count == 0:
        return table, 0
    received = pc.fill_null(table["received_at"].cast(pa.int64()), _UNKNOWN_LAST)
    keyed = pa.table({"k": dedupe_keys(table), "r": received, "kid": pc.fill_null(table["kid"], "")})
    order = pc.sort_indices(keyed, sort_keys=[("r", "ascending"), ("kid", "ascending")])
    in_order = pa.table({"k": keyed["k"].take(order), "i": pa.array(range(count), pa.int64())})
    firsts = in_order.group_by("k", use_threads=False).aggregate([("i", "min")])["i_min"]
    kept = table.take(order.take(firsts))
    kept = kept.take(pc.sort_indices(kept, sort_keys=[("event_time", "ascending"), ("event_id", "ascending")]))
    return kept, count - kept.num_rows


def rows_to_parquet_bytes(rows: Sequence[Row], compression: str = COMPRESSION) -> bytes:
    return table_to_parquet_bytes(rows_to_table(rows), compression)
