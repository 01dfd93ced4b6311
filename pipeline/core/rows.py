"""The row codec: a dict of named columns <-> ``schemas.events.Row``, with the row checks.

``Row`` (defined beside the schema) is the one shape a normalized event has from
``pipeline.core.normalize`` to the Parquet writer: values in ``ROW_COLUMNS`` order,
timestamps as int microseconds since the epoch (UTC). Normalize builds its columns by name
and packs them once here, checking that every value fits ``FILE_SCHEMA`` (so a bad row is
dead-lettered at normalization, where its raw payload is still at hand, instead of failing a
whole file at write time). ``row_dict`` is the other direction, for the edges that show a
row by name with datetimes (the CLI, tests).
"""
from __future__ import annotations

import operator
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import pyarrow as pa

from pipeline.core.errors import EventError
from schemas.events import FILE_SCHEMA, ROW_COLUMNS, TIMESTAMP, Row

_ROW_TYPES: dict[str, tuple[type, bool]] = {}
for _field in FILE_SCHEMA:
    if _field.type == TIMESTAMP:
        _py: type = datetime
    elif pa.types.is_boolean(_field.type):
        _py = bool
    else:
        _py = str
    _ROW_TYPES[_field.name] = (_py, _field.nullable)
_ROW_TYPES["event_name"] = (str, False)

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
_EVENT_NAME = COLUMN_INDEX["event_name"]
_new_row = tuple.__new__  # Row(*values) without the keyword-argument machinery


def micros_of(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (TypeError for a naive one)."""
    return (moment - _EPOCH) // _ONE_MICROSECOND


def datetime_of(micros: int) -> datetime:
    """The aware UTC datetime of ``micros`` (exact: no float rounding)."""
    return _EPOCH + timedelta(microseconds=micros)


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


def row_of(columns: Mapping[str, Any]) -> Row:
    """Check ``columns`` as ``validate_row`` does (same EventErrors) and pack them into a Row.

    The common case (columns straight from normalize) is checked with a few C-level passes;
    anything unusual falls back to ``validate_row`` for the precise error.
    """
    try:
        if len(columns) != len(ROW_COLUMNS):
            raise LookupError
        values = list(_ROW_VALUES(columns))
        for i in _TIMESTAMP_INDEXES:
            if values[i] is not None:
                values[i] = micros_of(values[i])
        if (set(map(type, _STRING_VALUES(values))) <= _STRING_OR_NULL
                and all(type(values[i]) is bool for i in _BOOL_INDEXES)
                and None not in _REQUIRED_VALUES(values) and values[_EVENT_NAME]):
            return _new_row(Row, values)
    except (LookupError, TypeError):
        pass
    validate_row(columns)  # raises the precise EventError; passes for e.g. str subclasses
    return _new_row(Row, (micros_of(v) if i in _TIMESTAMP_INDEXES and v is not None else v
                          for i, v in enumerate(_ROW_VALUES(columns))))


def pack_row(columns: Mapping[str, Any]) -> Row:
    """Pack the columns ``pipeline.core.normalize`` built (timestamps already int
    microseconds) into a Row, checking what normalize does not guarantee by construction:
    required columns present and ``event_name`` not empty (``validate_row``'s EventErrors).

    Normalize assigns every string column through ``as_text`` or a ``type(value) is str``
    test, timestamps through ``parse_timestamp`` and ``signed`` through ``bool``, so the
    per-column type scan of ``row_of`` would only repeat those checks, at half the cost of
    normalizing an event. Columns from anywhere else go through ``row_of``.
    """
    row = _new_row(Row, _ROW_VALUES(columns))
    if None in _REQUIRED_VALUES(row) or not row[_EVENT_NAME]:
        for i in _REQUIRED_INDEXES:
            if row[i] is None:
                raise EventError("missing_field", f"{ROW_COLUMNS[i]!r} is required but null")
        raise EventError("missing_field", "'event_name' is empty")
    return row


def row_dict(row: Row) -> dict[str, Any]:
    """The columns of ``row`` by name, timestamps as aware UTC datetimes."""
    columns = dict(zip(ROW_COLUMNS, row))
    for i in _TIMESTAMP_INDEXES:
        if row[i] is not None:
            columns[ROW_COLUMNS[i]] = datetime_of(row[i])
    return columns
