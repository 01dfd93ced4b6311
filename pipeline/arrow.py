"""Rows -> Arrow tables and Parquet bytes, and the dedupe of rows that share a key.

Everything that decides what a file contains lives here, pure and testable without Beam:
a stable row order, sharding of very large partitions, the Arrow encoding of ``Row`` values
(int microseconds go straight into the ``timestamp('us', tz='UTC')`` columns, so timestamps
never become ``datetime`` objects again), the choice of one copy per dedupe key
(``dedupe_table``: compaction's files, the batch replay's partitions all in one pass) and
the Arrow batches the batch replay moves between its steps.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.partition import partition_path
from pipeline.core.rows import COLUMN_INDEX
from schemas.events import FILE_SCHEMA, Row

COMPRESSION = "zstd"  # BigQuery external tables and DuckDB read zstd and snappy Parquet
# Below LARGE_FILE_ROWS rows (a streaming window's or a replay's few rows of one partition),
# zstd's per-column setup was over a third of the encode time for about 10 % fewer bytes
# than snappy; compaction rewrites such files as large zstd ones anyway.
SMALL_FILE_COMPRESSION = "snappy"
# Free-text columns: min/max statistics on them prune nothing and, at these sizes, were
# about a sixth of a small file's bytes. Every other column keeps its statistics.
UNSTATISTICAL_COLUMNS = frozenset({"body", "metadata", "url", "referrer", "user_agent"})
# Below LARGE_FILE_ROWS rows only the time columns keep statistics: the range filters of
# queries hit them; min/max of a few rows' ids or names prune next to nothing, and the
# other columns' statistics were about a quarter of a small file's encode time. Compaction
# rewrites such files as large ones, with statistics on every column but the free text.
SMALL_FILE_STATISTICS = ("event_time", "received_at")
MAX_ROWS_PER_FILE = 100_000
LARGE_FILE_ROWS = 1_000

_FILE_WIDTH = len(FILE_SCHEMA)
# Rows are read by position (see schemas.events.Row).
_EVENT_TIME, _EVENT_ID = (COLUMN_INDEX[c] for c in ("event_time", "event_id"))


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


def table_to_parquet_bytes(table: pa.Table, compression: str | None = None,
                           row_group_size: int | None = None) -> bytes:
    """Parquet bytes of a file table; ``compression`` by default: zstd from LARGE_FILE_ROWS rows, snappy
    below (and, below, dictionaries off and statistics on the time columns only)."""
    large = table.num_rows >= LARGE_FILE_ROWS
    if compression is None:
        compression = COMPRESSION if large else SMALL_FILE_COMPRESSION
    sink = pa.BufferOutputStream()
    statistics = ([name for name in table.schema.names if name not in UNSTATISTICAL_COLUMNS] if large
                  else list(SMALL_FILE_STATISTICS))
    # Dictionaries pay off over many rows; in a streaming window's few rows they cost CPU and bytes.
    pq.write_table(table, sink, compression=compression, write_statistics=statistics,
                   row_group_size=row_group_size, use_dictionary=large)
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


def dedupe_table(table: pa.Table, within: Sequence[str] = ()) -> tuple[pa.Table, int]:
    """One row per dedupe key, the copy received first; returns (rows, duplicates dropped).

    "First" is the smallest ``received_at`` (unknown last); copies received at the same
    moment (one replay stamps every line alike) are told apart by ``kid`` and then by
    their position, so the choice does not depend on the order files were listed in when
    the copies are equal. The rows come back sorted by (event_time, event_id), which
    makes row-group statistics on event_time prune. ``within``: extra columns that group
    the rows first (keys repeat freely across groups); the result is then sorted by those
    columns, then (event_time, event_id).
    """
    count = table.num_rows
    if count == 0:
        return table, 0
    received = pc.fill_null(table["received_at"].cast(pa.int64()), _UNKNOWN_LAST)
    keyed = pa.table({"k": dedupe_keys(table), "r": received, "kid": pc.fill_null(table["kid"], ""),
                      **{f"g{i}": table[name] for i, name in enumerate(within)}})
    order = pc.sort_indices(keyed, sort_keys=[("r", "ascending"), ("kid", "ascending")])
    groups = [f"g{i}" for i in range(len(within))]
    in_order = keyed.select(groups + ["k"]).take(order).append_column("i", pa.array(range(count), pa.int64()))
    firsts = in_order.group_by(groups + ["k"], use_threads=False).aggregate([("i", "min")])["i_min"]
    kept = table.take(order.take(firsts))
    sort_keys = [(name, "ascending") for name in within] + [("event_time", "ascending"), ("event_id", "ascending")]
    kept = kept.take(pc.sort_indices(kept, sort_keys=sort_keys))
    return kept, count - kept.num_rows


def rows_to_parquet_bytes(rows: Sequence[Row], compression: str | None = None) -> bytes:
    return table_to_parquet_bytes(rows_to_table(rows), compression)


# A batch of rows on its way to the writer: the file columns plus where each row goes.
PARTITION_COLUMN, WINDOW_COLUMN = "_partition", "_window_start"
KEYED_SCHEMA = FILE_SCHEMA.append(pa.field(PARTITION_COLUMN, pa.string())).append(pa.field(WINDOW_COLUMN, pa.int64()))


def window_start(stamp_micros: int, window_micros: int) -> int:
    """Start (micros) of the fixed arrival window of this length holding ``stamp_micros``, as
    WindowByArrival would assign it."""
    return stamp_micros - stamp_micros % window_micros


def rows_to_keyed_table(rows: Sequence[Row], window_starts: Sequence[int]) -> pa.Table:
    """``rows_to_table`` plus each row's partition path and arrival window start (micros)."""
    table = rows_to_table(rows)
    partitions = [partition_path(row) for row in rows]
    return pa.Table.from_arrays(
        table.columns + [pa.array(partitions, pa.string()), pa.array(window_starts, pa.int64())],
        schema=KEYED_SCHEMA)


def split_deduped(tables: Sequence[pa.Table]) -> tuple[list[tuple[tuple[str, int], pa.Table]], int]:
    """Keyed tables -> one table of file columns per (partition, window start), each with one
    row per dedupe key (``dedupe_table`` within the key) sorted by (event_time, event_id),
    and the copies dropped. One Arrow pass for every partition together; each partition is a
    zero-copy slice (converting or deduplicating thousands of small groups one by one costs
    a fixed price per column per group, several times the rows' own)."""
    whole = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
    kept, dropped = dedupe_table(whole, within=(PARTITION_COLUMN, WINDOW_COLUMN))
    partitions = kept[PARTITION_COLUMN].to_pylist()
    windows = kept[WINDOW_COLUMN].to_pylist()
    files = kept.select(FILE_SCHEMA.names).combine_chunks()  # slices of one chunk each: one batch each
    out: list[tuple[tuple[str, int], pa.Table]] = []
    first = 0
    for i in range(1, len(partitions) + 1):
        if i == len(partitions) or partitions[i] != partitions[first] or windows[i] != windows[first]:
            out.append(((partitions[first], windows[first]), files.slice(first, i - first)))
            first = i
    return out, dropped


def merge_deduped(tables: Sequence[pa.Table]) -> tuple[pa.Table, int]:
    """Tables that are each already deduplicated and sorted (``split_deduped``) -> one table
    with one row per dedupe key (``dedupe_table``) and the copies dropped. A single table is
    returned as it is: nothing to merge."""
    if len(tables) == 1:
        return tables[0], 0
    return dedupe_table(pa.concat_tables(tables))


def table_to_ipc(table: pa.Table) -> bytes:
    """A table as one Arrow IPC record batch without its schema (``FILE_SCHEMA`` or
    ``KEYED_SCHEMA``, known to both sides): how rows cross a shuffle or a process boundary,
    with no per-row pickling."""
    batches = table.to_batches()
    if len(batches) > 1:
        batches = table.combine_chunks().to_batches()
    return batches[0].serialize().to_pybytes() if batches else b""


def ipc_to_table(data: bytes, schema: pa.Schema = FILE_SCHEMA) -> pa.Table:
    """``table_to_ipc`` reversed."""
    if not data:
        return schema.empty_table()
    return pa.Table.from_batches([pa.ipc.read_record_batch(pa.py_buffer(data), schema)])
