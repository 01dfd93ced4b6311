"""The health report's figures, computed from tables: pure, no I/O, no Beam, no HTML.

Input: the lake as read by ``pipeline.report.lake`` (one Arrow table of the few event columns
the report needs, with the hive partition columns from the paths; the list of Parquet files
with their sizes; the dead-letter records' stage, error type and time). Output: one plain dict
of JSON-ready values, the same for ``--json`` and for the HTML page.

Definitions (also in the README, "Operating it"):

- **Days** are UTC dates. Events count on their ``event_date`` partition (the date of
  ``event_time``), dead letters on the date of their ``failed_at``. The report covers the
  ``days`` dates ending at the newest date present, starting no earlier than the oldest date
  present (events and dead letters each anchored on their own dates, so an archive replayed
  long after the fact still reports); the
  header gives the newest event and how old it is when the report is made, which is what
  shows a stalled pipeline. ``days=0`` covers every date present.
- **Distinct events** are distinct ``(request_id, job_id, event_id)``, the pipeline's dedupe
  key; **duplicates still in the files** are rows minus distinct events (a second replay into
  the same prefix, a dedupe TTL that expired, ...).
- **Freshness** is ``received_at - event_time`` per row, in seconds: its 50th and 99th
  percentiles (linear interpolation between ranks, as DuckDB's ``quantile_cont``) over the
  rows that have a ``received_at``.
- **Gaps**: the distinct events of each UTC hour of each day in the window are compared with
  the same hour on the *other* days of the window. An hour is a gap when at least
  ``GAP_MIN_OTHER_DAYS`` other days have that hour, their median (the baseline) is at least
  ``GAP_MIN_BASELINE`` events, and the hour holds fewer than ``GAP_RATIO`` times the
  baseline. Days without any event count as zero; hours after the newest event's hour are
  not complete yet and are neither judged nor part of a baseline.
"""
from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

# Columns of the event table the figures read (file columns plus the two partition columns).
EVENT_COLUMNS: tuple[str, ...] = ("event_id", "request_id", "job_id", "event_time", "received_at")
PARTITION_COLUMNS: tuple[str, ...] = ("event_date", "event_name")

GAP_RATIO = 0.25
GAP_MIN_BASELINE = 10
GAP_MIN_OTHER_DAYS = 2


@dataclass(frozen=True)
class FileInfo:
    """One finished Parquet file of the lake."""

    event_date: str  # YYYY-MM-DD, from the path
    event_name: str  # from the path
    path: str
    size_bytes: int


@dataclass(frozen=True)
class DeadLetter:
    """The parts of a dead-letter record the report counts (never the payload)."""

    stage: str
    error_type: str
    failed_at: str  # ISO 8601 UTC, as pipeline.deadletter writes it


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _window(present: Iterable[str], days: int) -> tuple[str, str] | None:
    """(first, last) date of the report window over the dates ``present``; None when empty."""
    dates = sorted(set(present))
    if not dates:
        return None
    last = dates[-1]
    if days <= 0:
        return dates[0], last
    first = (date.fromisoformat(last) - timedelta(days=days - 1)).isoformat()
    return max(first, dates[0]), last


def _date_range(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def _quantiles(values: pa.Array) -> tuple[float | None, float | None]:
    values = pc.drop_null(values)
    if len(values) == 0:
        return None, None
    p50, p99 = pc.quantile(values, q=[0.5, 0.99], interpolation="linear").to_pylist()
    return float(p50), float(p99)


def _distinct_keys(table: pa.Table) -> pa.Table:
    """One row per distinct (event_date, event_name, request_id, job_id, event_id)."""
    keys = ["event_date", "event_name", "request_id", "job_id", "event_id"]
    return table.select(keys).group_by(keys, use_threads=False).aggregate([])


def _by(table: pa.Table, keys: list[str]) -> dict[tuple, int]:
    if table.num_rows == 0:
        return {}
    grouped = table.group_by(keys, use_threads=False).aggregate([([], "count_all")])
    columns = [grouped.column(k).to_pylist() for k in keys]
    counts = grouped.column("count_all").to_pylist()
    return {tuple(c[i] for c in columns): int(counts[i]) for i in range(grouped.num_rows)}


def _normalize_events(events: pa.Table) -> pa.Table:
    """The columns the figures use, ``event_date`` as a YYYY-MM-DD string."""
    missing = [c for c in EVENT_COLUMNS + PARTITION_COLUMNS if c not in events.column_names]
    if missing:
        raise ValueError(f"event table lacks columns {missing}")
    table = events.select(list(EVENT_COLUMNS + PARTITION_COLUMNS))
    event_date = table.column("event_date")
    if not pa.types.is_string(event_date.type):
        table = table.set_column(table.schema.get_field_index("event_date"), "event_date",
                                 pc.cast(event_date, pa.string()))
    return table


def gap_hours(volume: Mapping[tuple[str, int], int], days: Sequence[str], complete: Any,
              *, ratio: float = GAP_RATIO, min_baseline: int = GAP_MIN_BASELINE,
              min_other_days: int = GAP_MIN_OTHER_DAYS) -> list[dict[str, Any]]:
    """Hours far below the same hour on the other days (definition in the module docstring).

    ``volume`` maps (date, hour) to distinct events; ``complete(date, hour)`` tells whether
    that hour is over (not after the newest event's hour).
    """
    gaps = []
    for hour in range(24):
        hours = [(d, volume.get((d, hour), 0)) for d in days if complete(d, hour)]
        for day, events in hours:
            others = [n for d, n in hours if d != day]
            if len(others) < min_other_days:
                continue
            baseline = statistics.median(others)
            if baseline >= min_baseline and events < ratio * baseline:
                gaps.append({"date": day, "hour": hour, "events": events, "baseline": float(baseline)})
    return sorted(gaps, key=lambda g: (g["date"], g["hour"]))


def compute_figures(
    events: pa.Table,
    files: Sequence[FileInfo],
    dead_letters: Sequence[DeadLetter],
    *,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """Every figure of the report, as JSON-ready values (see the module docstring)."""
    table = _normalize_events(events)
    event_window = _window(table.column("event_date").to_pylist() + [f.event_date for f in files], days)
    dl_window = _window((r.failed_at[:10] for r in dead_letters), days)

    if event_window is not None:
        first, last = event_window
        dates = table.column("event_date")
        table = table.filter(pc.and_(pc.greater_equal(dates, first), pc.less_equal(dates, last)))
        files = [f for f in files if first <= f.event_date <= last]
    if dl_window is not None:
        dead_letters = [r for r in dead_letters if dl_window[0] <= r.failed_at[:10] <= dl_window[1]]

    distinct = _distinct_keys(table)
    lag = pc.divide(pc.cast(pc.subtract(pc.cast(table.column("received_at"), pa.int64()),
                                        pc.cast(table.column("event_time"), pa.int64())), pa.float64()),
                    1_000_000.0)
    table = table.append_column("lag_seconds", lag)

    rows_by_day = _by(table, ["event_date"])
    distinct_by_day = _by(distinct, ["event_date"])
    files_by_day: dict[str, list[FileInfo]] = defaultdict(list)
    for f in files:
        files_by_day[f.event_date].append(f)

    day_list = _date_range(*event_window) if event_window else []
    per_day = []
    for day in day_list:
        day_rows = table.filter(pc.equal(table.column("event_date"), day))
        p50, p99 = _quantiles(day_rows.column("lag_seconds"))
        newest = pc.max(day_rows.column("event_time")).as_py() if day_rows.num_rows else None
        day_files = files_by_day.get(day, [])
        rows = rows_by_day.get((day,), 0)
        unique = distinct_by_day.get((day,), 0)
        per_day.append({
            "date": day,
            "rows": rows,
            "distinct_events": unique,
            "duplicates": rows - unique,
            "files": len(day_files),
            "partitions": len({f.event_name for f in day_files}),
            "bytes": sum(f.size_bytes for f in day_files),
            "mean_file_bytes": (sum(f.size_bytes for f in day_files) / len(day_files)) if day_files else None,
            "freshness_p50_seconds": p50,
            "freshness_p99_seconds": p99,
            "newest_event": _iso(newest),
        })

    p50, p99 = _quantiles(table.column("lag_seconds"))
    newest_event = pc.max(table.column("event_time")).as_py() if table.num_rows else None
    newest_received = pc.max(table.column("received_at")).as_py() if table.num_rows else None

    rows_by_name = _by(table, ["event_name"])
    distinct_by_name = _by(distinct, ["event_name"])
    event_names = sorted(
        ({"event_name": name, "rows": n, "distinct_events": distinct_by_name.get((name,), 0)}
         for (name,), n in rows_by_name.items()),
        key=lambda e: (-e["rows"], e["event_name"]),
    )

    rows_by_partition = _by(table, ["event_date", "event_name"])
    partition_files: dict[tuple[str, str], list[FileInfo]] = defaultdict(list)
    for f in files:
        partition_files[(f.event_date, f.event_name)].append(f)
    partitions = [
        {
            "event_date": d, "event_name": n, "files": len(fs), "bytes": sum(f.size_bytes for f in fs),
            "mean_file_bytes": sum(f.size_bytes for f in fs) / len(fs), "rows": rows_by_partition.get((d, n), 0),
        }
        for (d, n), fs in sorted(partition_files.items())
    ]

    dl_days = _date_range(*dl_window) if dl_window else []
    dl_by_day = Counter(r.failed_at[:10] for r in dead_letters)
    dl_by_reason = Counter((r.stage, r.error_type) for r in dead_letters)
    dl_by_day_reason = Counter((r.failed_at[:10], r.stage, r.error_type) for r in dead_letters)

    hours = table.select(["event_date", "event_name", "request_id", "job_id", "event_id"]).append_column(
        "hour", pc.hour(table.column("event_time")))
    hourly = _by(hours.group_by(["event_date", "hour", "event_name", "request_id", "job_id", "event_id"],
                                use_threads=False).aggregate([]), ["event_date", "hour"])
    last_hour = (newest_event.date().isoformat(), newest_event.hour) if newest_event else None
    gaps = gap_hours(hourly, day_list, lambda d, h: last_hour is None or (d, h) <= last_hour)

    total_rows = table.num_rows
    total_distinct = distinct.num_rows
    return {
        "generated_at": _iso(now),
        "days": days,
        "window": {"first_day": event_window[0] if event_window else None,
                   "last_day": event_window[1] if event_window else None},
        "dead_letter_window": {"first_day": dl_window[0] if dl_window else None,
                               "last_day": dl_window[1] if dl_window else None},
        "totals": {
            "rows": total_rows,
            "distinct_events": total_distinct,
            "duplicates": total_rows - total_distinct,
            "dead_letters": len(dead_letters),
            "files": len(files),
            "partitions": len(partition_files),
            "bytes": sum(f.size_bytes for f in files),
            "mean_file_bytes": (sum(f.size_bytes for f in files) / len(files)) if files else None,
            "event_names": len(event_names),
        },
        "freshness": {
            "p50_seconds": p50,
            "p99_seconds": p99,
            "newest_event": _iso(newest_event),
            "newest_received_at": _iso(newest_received),
            "newest_event_age_seconds": (now - newest_event).total_seconds() if newest_event else None,
        },
        "per_day": per_day,
        "event_names": event_names,
        "partitions": partitions,
        "dead_letters": {
            "per_day": [{"date": d, "count": dl_by_day.get(d, 0)} for d in dl_days],
            "by_reason": [{"stage": s, "error_type": e, "count": n}
                          for (s, e), n in sorted(dl_by_reason.items(), key=lambda i: (-i[1], i[0]))],
            "by_day_and_reason": [{"date": d, "stage": s, "error_type": e, "count": n}
                                  for (d, s, e), n in sorted(dl_by_day_reason.items())],
        },
        "gaps": {
            "definition": {"ratio": GAP_RATIO, "min_baseline": GAP_MIN_BASELINE,
                           "min_other_days": GAP_MIN_OTHER_DAYS},
            "hours": gaps,
        },
    }
