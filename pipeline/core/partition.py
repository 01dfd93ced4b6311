"""Hive partition of a row: ``event_date=YYYY-MM-DD/event_name=NAME``.

Files are partitioned by the event's own UTC date (not the processing window: late
events must land in their day, see STACK.md trap 4) and by event name, which is what
BigQuery external tables and DuckDB read back as the ``event_date``/``event_name``
columns. Event names come from the input (or are derived from Caliper fields), so the
name is made path-safe: only ``[A-Za-z0-9_.-]`` survive, anything else becomes ``_``.
Because the segment always starts with ``event_name=``, even a name of ``..`` cannot
climb out of its directory. Real Canvas names (``asset_accessed``,
``outcomes.retry_outcome_alignment_clone``) pass through unchanged.
"""
from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta
from typing import Any, Mapping

from pipeline.core.rows import COLUMN_INDEX
from pipeline.core.timestamps import UTC, parse_timestamp
from schemas.events import Row

MAX_NAME_CHARS = 200  # keeps the path segment well under the 255-byte file-name limit
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_DAY_MICROS = 86_400 * 1_000_000
_EPOCH_DATE = date(1970, 1, 1)
_EVENT_TIME, _EVENT_NAME = COLUMN_INDEX["event_time"], COLUMN_INDEX["event_name"]


def event_date(row: Mapping[str, Any]) -> date:
    """UTC date of ``row["event_time"]`` (an aware datetime, or an ISO string)."""
    value = row["event_time"]
    moment = value if isinstance(value, datetime) else parse_timestamp(value)
    if moment.tzinfo is None:
        raise ValueError("event_time must be timezone-aware")
    return moment.astimezone(UTC).date()


def safe_name(name: str) -> str:
    """Path-safe form of an event name (never empty)."""
    safe = _UNSAFE.sub("_", name[:MAX_NAME_CHARS])
    return safe or "_"


def partition_path(row: Row | Mapping[str, Any]) -> str:
    """``event_date=2019-11-01/event_name=asset_accessed`` for one row.

    ``row`` is a ``schemas.events.Row`` (``event_time`` in int microseconds; read by position,
    see its docstring), or the columns of a row by name (``event_time`` an aware datetime or
    an ISO string).
    """
    if isinstance(row, tuple):
        return _partition_of_day(row[_EVENT_TIME] // _DAY_MICROS, row[_EVENT_NAME])
    return f"event_date={event_date(row).isoformat()}/event_name={safe_name(row['event_name'])}"


@functools.lru_cache(maxsize=4096)
def _partition_of_day(day: int, event_name: str) -> str:
    # Only the UTC day of event_time matters, so the path is computed once per (day, name)
    # and remembered: a batch has few distinct partitions and many rows.
    return f"event_date={(_EPOCH_DATE + timedelta(days=day)).isoformat()}/event_name={safe_name(event_name)}"
