"""Row tuples for the transform tests: real normalized rows (the project's own generated
deliveries), copied with a few columns changed, the way retries and replays differ."""
from __future__ import annotations

from typing import Any

from bench.lake_data import template_rows
from pipeline.core.identity import dedupe_key
from schemas.events import ROW_COLUMNS

COLUMN = {name: i for i, name in enumerate(ROW_COLUMNS)}


def distinct_rows(count: int) -> list[tuple[Any, ...]]:
    """``count`` row tuples with pairwise different dedupe keys."""
    by_key: dict[str, tuple[Any, ...]] = {}
    for row in template_rows():
        by_key.setdefault(row_key(row), row)
        if len(by_key) == count:
            return list(by_key.values())
    raise AssertionError(f"only {len(by_key)} distinct rows, {count} asked for")


def row_key(row: tuple[Any, ...]) -> str:
    """The row's dedupe key, from the pure core."""
    return dedupe_key({name: row[COLUMN[name]] for name in ("request_id", "job_id", "event_id")})


def with_values(row: tuple[Any, ...], **values: Any) -> tuple[Any, ...]:
    """A copy of ``row`` with the named columns changed (a retry's kid, another arrival time)."""
    changed = list(row)
    for name, value in values.items():
        changed[COLUMN[name]] = value
    return tuple(changed)


def normalized(decoded: Any, **kwargs: Any) -> dict[str, Any]:
    """``row_dict(normalize(decoded, **kwargs))``: the columns of the one row of ``decoded``, by
    name (datetimes, not micros), for tests that read a row's columns."""
    from pipeline.core.normalize import normalize
    from pipeline.core.rows import row_dict

    return row_dict(normalize(decoded, **kwargs))
