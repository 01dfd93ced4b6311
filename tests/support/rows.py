"""Row tuples for the transform tests: real normalized rows (the project's own generated
deliveries), copied with a few columns changed, the way retries and replays differ."""
from __future__ import annotations

from typing import Any, Iterable

from bench.lake_data import template_rows
from pipeline.arrow import sorted_rows
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


_UNKNOWN_LAST = 2**63 - 1


def _receipt(row: tuple[Any, ...]) -> tuple[int, str]:
    received = row[COLUMN["received_at"]]
    return (_UNKNOWN_LAST if received is None else received, row[COLUMN["kid"]] or "")


def dedupe_rows(rows: Iterable[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
    """The dedupe rule in plain Python, the oracle the Arrow implementation
    (``pipeline.arrow.dedupe_table``) is tested against: per dedupe key the copy received
    first (unknown last), then the smallest kid, equal copies by position; rows sorted by
    (event_time, event_id)."""
    best: dict[str, tuple[Any, ...]] = {}
    count = 0
    for row in rows:
        count += 1
        key = dedupe_key(row)
        current = best.get(key)
        if current is None or _receipt(row) < _receipt(current):
            best[key] = row
    return sorted_rows(best.values()), count - len(best)
