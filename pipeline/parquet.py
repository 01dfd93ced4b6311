"""Normalized rows -> Parquet bytes, and the deterministic names of the files.

The Beam writer (``pipeline.transforms.write``) only moves bytes; everything that decides
what a file contains and what it is called lives here, pure and testable without Beam:
a check that a row fits ``FILE_SCHEMA`` (so a bad row is dead-lettered at normalization,
where its raw payload is still at hand, instead of failing a whole file at write time),
a stable row order, sharding of very large partitions, and file names derived from
(window, pane, shard) and the run, so a retried write overwrites its own file instead of
duplicating it and a second run never replaces the first run's files.

Between the stages a row travels as a *row tuple*: its values in ``ROW_COLUMNS`` order,
timestamps as int microseconds since the epoch (UTC). Every element crossing a shuffle is
encoded and decoded twice by the runner; a tuple of str/int/bool/None is the cheapest
shape for Beam's default coder, while a dict of 39 named columns with ``datetime`` values
(which that coder pickles one by one) cost most of a batch run. The writer builds Arrow
columns straight from the tuples, so timestamps never become ``datetime`` objects again.
"""
from __future__ import annotations

import functools
import operator
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.core.errors import EventError
from pipeline.core.identity import dedupe_key
from pipeline.core.partition import partition_path
from pipeline.core.timestamps import utc_strftime
from schemas.events import FILE_SCHEMA, ROW_COLUMNS

COMPRESSION = "zstd"  # BigQuery external tables and DuckDB read zstd Parquet
# Free-text columns: min/max statistics on them prune nothing and, at these sizes, were
# about a sixth of a small file's bytes. Every other column keeps its statistics.
UNSTATISTICAL_COLUMNS = frozenset({"body", "metadata", "url", "referrer", "user_agent"})
MAX_ROWS_PER_FILE = 100_000
DICTIONARY_MIN_ROWS = 1_000
RUN_ID_HEX_CHARS = 12
TEMP_PREFIX = ".tmp-"  # dot-prefixed: BigQuery, DuckDB and Hive readers skip it

_ROW_TYPES: dict[str, tuple[type, bool]] = {}
for _field in FILE_SCHEMA:
    if pa.types.is_timestamp(_field.type):
        _py: type = datetime
    elif pa.types.is_boolean(_field.type):
        _py = bool
    else:
        _py = str
    _ROW_TYPES[_field.name] = (_py, _field.nullable)
_ROW_TYPES["event_name"] = (str, False)


def validate_row(row: Mapping[str, Any]) -> None:
    """Raise EventError unless ``row`` has exactly ROW_COLUMNS with values of the file types.

    ``missing_field`` for an absent column or a null in a required one, ``invalid_field``
    for a wrong type, a naive timestamp or an unknown column.
    """
    for name, (py_type, nullable) in _ROW_TYPES.items():
        if name not in row:
            raise EventError("missing_field", f"normalized row has no {name!r} column")
        value = row[name]
        if value is None:
            if not nullable:
                raise EventError("missing_field", f"{name!r} is required but null")
            continue
        if type(value) is not py_type and not isinstance(value, py_type):
            raise EventError("invalid_field", f"{name!r} is a {type(value).__name__}, not {py_type.__name__}")
        if py_type is datetime and value.tzinfo is None:
            raise EventError("invalid_field", f"{name!r} is a naive datetime")
        if py_type is str and name == "event_name" and not value:
            raise EventError("missing_field", "'event_name' is empty")
    if len(row) != len(_ROW_TYPES):
        extra = sorted(set(row) - set(ROW_COLUMNS))
        raise EventError("invalid_field", f"normalized row has unknown columns {extra[:5]}")


RowTuple = tuple  # values in ROW_COLUMNS order; timestamps as int microseconds (UTC)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MICROSECOND = timedelta(microseconds=1)
COLUMN_INDEX: dict[str, int] = {name: i for i, name in enumerate(ROW_COLUMNS)}
_TIMESTAMP_INDEXES = tuple(COLUMN_INDEX[n] for n, (t, _) in _ROW_TYPES.items() if t is datetime)
_BOOL_INDEXES = tuple(COLUMN_INDEX[n] for n, (t, _) in _ROW_TYPES.items() if t is bool)
_STRING_INDEXES = tuple(COLUMN_INDEX[n] for n, (t, _) in _ROW_TYPES.items() if t is str)
_REQUIRED_INDEXES = tuple(COLUMN_INDEX[n] for n, (_, nullable) in _ROW_TYPES.items() if not nullable)
_ROW_VALUES = operator.itemgetter(*ROW_COLUMNS)
_STRING_VALUES = operator.itemgetter(*_STRING_INDEXES)
_REQUIRED_VALUES = operator.itemgetter(*_REQUIRED_INDEXES)
_STRING_OR_NULL = frozenset((str, type(None)))
_EVENT_TIME = COLUMN_INDEX["event_time"]
_EVENT_ID = COLUMN_INDEX["event_id"]
_EVENT_NAME = COLUMN_INDEX["event_name"]
_REQUEST_ID = COLUMN_INDEX["request_id"]
_JOB_ID = COLUMN_INDEX["job_id"]
_FILE_WIDTH = len(FILE_SCHEMA)


def micros_of(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (TypeError for a naive one)."""
    return (moment - _EPOCH) // _ONE_MICROSECOND


def datetime_of(micros: int) -> datetime:
    """The aware UTC datetime of ``micros`` (exact: no float rounding)."""
    return _EPOCH + timedelta(microseconds=micros)


def row_to_tuple(row: Mapping[str, Any]) -> RowTuple:
    """Check ``row`` as ``validate_row`` does (same EventErrors) and return its row tuple.

    The common case (a row straight from normalize) is checked with a few C-level passes;
    anything unusual falls back to ``validate_row`` for the precise error.
    """
    try:
        if len(row) != len(ROW_COLUMNS):
            raise LookupError
        values = list(_ROW_VALUES(row))
        for i in _TIMESTAMP_INDEXES:
            if values[i] is not None:
                values[i] = micros_of(values[i])
        if (set(map(type, _STRING_VALUES(values))) <= _STRING_OR_NULL
                and all(type(values[i]) is bool for i in _BOOL_INDEXES)
                and None not in _REQUIRED_VALUES(values) and values[_EVENT_NAME]):
            return tuple(values)
    except (LookupError, TypeError):
        pass
    validate_row(row)  # raises the precise EventError; passes for e.g. str subclasses
    return tuple(micros_of(v) if i in _TIMESTAMP_INDEXES and v is not None else v
                 for i, v in enumerate(_ROW_VALUES(row)))


def tuple_to_row(values: RowTuple) -> dict[str, Any]:
    """The row dict of a row tuple (timestamps back to aware UTC datetimes)."""
    row = dict(zip(ROW_COLUMNS, values))
    for i in _TIMESTAMP_INDEXES:
        if values[i] is not None:
            row[ROW_COLUMNS[i]] = datetime_of(values[i])
    return row


def tuple_dedupe_key(values: RowTuple) -> str:
    """``pipeline.core.identity.dedupe_key`` of a row tuple."""
    return dedupe_key({"request_id": values[_REQUEST_ID], "job_id": values[_JOB_ID],
                       "event_id": values[_EVENT_ID]})


_DAY_MICROS = 86_400 * 1_000_000


@functools.lru_cache(maxsize=4096)
def _partition_of_day(day: int, event_name: str) -> str:
    return partition_path({"event_time": datetime_of(day * _DAY_MICROS), "event_name": event_name})


def tuple_partition_path(values: RowTuple) -> str:
    """``pipeline.core.partition.partition_path`` of a row tuple.

    Only the UTC day of ``event_time`` matters, so the path is computed once per (day,
    name) and remembered: a batch has few distinct partitions and many rows.
    """
    return _partition_of_day(values[_EVENT_TIME] // _DAY_MICROS, values[_EVENT_NAME])


def sort_key(values: RowTuple) -> tuple[int, str]:
    return (values[_EVENT_TIME], values[_EVENT_ID])


def sorted_rows(rows: Iterable[RowTuple]) -> list[RowTuple]:
    """Row tuples in (event_time, event_id) order: the same bytes on every retry, tighter row groups."""
    return sorted(rows, key=sort_key)


def shard(items: Sequence[Any], max_items: int = MAX_ROWS_PER_FILE) -> list[Sequence[Any]]:
    """Split into consecutive chunks of at most ``max_items`` (at least one chunk)."""
    if max_items < 1:
        raise ValueError("max_items must be positive")
    return [items[i:i + max_items] for i in range(0, len(items), max_items)] or [items]


def rows_to_table(rows: Sequence[RowTuple]) -> pa.Table:
    """Arrow table of the file columns, built column by column from row tuples.

    ``event_name`` (last in a row tuple) lives in the path, not in the file. Int
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
_RECEIVED_AT = COLUMN_INDEX["received_at"]
_KID = COLUMN_INDEX["kid"]


def _receipt(values: RowTuple) -> tuple[int, str]:
    received = values[_RECEIVED_AT]
    return (_UNKNOWN_LAST if received is None else received, values[_KID] or "")


def dedupe_rows(rows: Iterable[RowTuple]) -> tuple[list[RowTuple], int]:
    """``dedupe_table`` for row tuples, in plain Python: the same copy kept (first received,
    then smallest kid; equal copies by position), rows sorted by (event_time, event_id).
    Cheaper than Arrow's group-by for the few rows of one partition of one window."""
    best: dict[str, RowTuple] = {}
    count = 0
    for row in rows:
        count += 1
        key = tuple_dedupe_key(row)
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


def rows_to_parquet_bytes(rows: Sequence[RowTuple], compression: str = COMPRESSION) -> bytes:
    return table_to_parquet_bytes(rows_to_table(rows), compression)


def _stamp(micros: int) -> str:
    return utc_strftime(micros, "%Y%m%dT%H%M%SZ")


def new_run_id() -> str:
    """A short id unique to one run (one job), put in every file name it writes."""
    return uuid.uuid4().hex[:RUN_ID_HEX_CHARS]


def part_file_name(window_start_micros: int, window_end_micros: int, pane_index: int, shard_index: int,
                   extension: str = ".parquet", run_id: str = "") -> str:
    """``part-<start>-<end>-p<pane>-s<shard>-<run><ext>``, times as UTC ``YYYYMMDDTHHMMSSZ``.

    Within one run the name depends only on the window, the pane and the shard, so a
    retried bundle writes the same name and overwrites its earlier attempt instead of
    adding a duplicate file. ``run_id`` (fixed when the graph is built) keeps two runs that
    write the same window (two replays, a restarted stream) from replacing each other's files.
    """
    run = f"-{run_id}" if run_id else ""
    return (f"part-{_stamp(window_start_micros)}-{_stamp(window_end_micros)}"
            f"-p{pane_index}-s{shard_index:03d}{run}{extension}")


def temp_name_for(final_name: str, attempt: str) -> str:
    """Dot-prefixed temp name in the same directory; ``attempt`` keeps concurrent attempts apart."""
    return f"{TEMP_PREFIX}{final_name}.{attempt}"


def window_date(window_start_micros: int) -> str:
    """UTC date (YYYY-MM-DD) of a window start: the dead-letter directory of that window."""
    return utc_strftime(window_start_micros, "%Y-%m-%d")
