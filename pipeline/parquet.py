"""Normalized rows -> Parquet bytes, and the deterministic names of the files.

The Beam writer (``pipeline.transforms.write``) only moves bytes; everything that decides
what a file contains and what it is called lives here, pure and testable without Beam:
a check that a row fits ``FILE_SCHEMA`` (so a bad row is dead-lettered at normalization,
where its raw payload is still at hand, instead of failing a whole file at write time),
a stable row order, sharding of very large partitions, and file names derived only from
(window, pane, shard) so a retried write overwrites instead of duplicating.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.errors import EventError
from schemas.events import FILE_SCHEMA, ROW_COLUMNS

COMPRESSION = "zstd"  # BigQuery external tables and DuckDB read zstd Parquet
MAX_ROWS_PER_FILE = 100_000
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


def sort_key(row: Mapping[str, Any]) -> tuple[datetime, str]:
    return (row["event_time"], row["event_id"])


def sorted_rows(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Rows in (event_time, event_id) order: the same bytes on every retry, tighter row groups."""
    return sorted(rows, key=sort_key)


def shard(items: Sequence[Any], max_items: int = MAX_ROWS_PER_FILE) -> list[Sequence[Any]]:
    """Split into consecutive chunks of at most ``max_items`` (at least one chunk)."""
    if max_items < 1:
        raise ValueError("max_items must be positive")
    return [items[i:i + max_items] for i in range(0, len(items), max_items)] or [items]


def rows_to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Arrow table of the file columns (event_name lives in the path, not in the file)."""
    return pa.Table.from_pylist(list(rows), schema=FILE_SCHEMA)


def table_to_parquet_bytes(table: pa.Table, compression: str = COMPRESSION) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression)
    return sink.getvalue().to_pybytes()


def rows_to_parquet_bytes(rows: Sequence[Mapping[str, Any]], compression: str = COMPRESSION) -> bytes:
    return table_to_parquet_bytes(rows_to_table(rows), compression)


def _stamp(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1e6, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def part_file_name(window_start_micros: int, window_end_micros: int, pane_index: int, shard_index: int,
                   extension: str = ".parquet") -> str:
    """``part-<start>-<end>-p<pane>-s<shard><ext>``, times as UTC ``YYYYMMDDTHHMMSSZ``.

    Derived only from the window, the pane and the shard, so a retried bundle writes the
    same name and overwrites its earlier attempt instead of adding a duplicate file.
    """
    return (f"part-{_stamp(window_start_micros)}-{_stamp(window_end_micros)}"
            f"-p{pane_index}-s{shard_index:03d}{extension}")


def temp_name_for(final_name: str, attempt: str) -> str:
    """Dot-prefixed temp name in the same directory; ``attempt`` keeps concurrent attempts apart."""
    return f"{TEMP_PREFIX}{final_name}.{attempt}"


def window_date(window_start_micros: int) -> str:
    """UTC date (YYYY-MM-DD) of a window start: the dead-letter directory of that window."""
    return datetime.fromtimestamp(window_start_micros / 1e6, tz=timezone.utc).strftime("%Y-%m-%d")
