"""The health report's figures, computed from tables: pure, no I/O, no Beam, no HTML.

Input: the lake as read by ``pipeline.report.lake``: the list of Parquet files with their
sizes, one Arrow table per partition (``event_date``/``event_name``) holding the few columns
the figures need, and the dead-letter records' stage, error type and time. Each partition is
boiled down to a ``PartitionSummary`` as soon as it is read (a duplicate always lands in its
original's partition: same event time, same name), so memory holds one partition's columns
plus one float per row for the freshness percentiles, whatever the size of the lake.
Output: one plain dict of JSON-ready values, the same for ``--json`` and for the HTML page.

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


def window(present: Iterable[str], days: int) -> tuple[str, str] | None:
    """(first, last) date of the report window over the dates ``present``; None when there are none."""
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


def _quantiles(values: Sequence[pa.Array]) -> tuple[float | None, float | None]:
    chunks = [v for v in values if len(v)]
    if not chunks:
        return None, None
    p50, p99 = pc.quantile(pa.chunked_array(chunks, pa.float64()), q=[0.5, 0.99], interpolation="linear").to_pylist()
    return float(p50), float(p99)


@dataclass(frozen=True)
class PartitionSummary:
    """What the figures need of one partition's rows."""

    event_date: str
    event_name: str
    rows: int
    distinct_events: int
    hourly_distinct: dict[int, int]  # UTC hour of event_time -> distinct events
    lags: pa.Array  # received_at - event_time in seconds, rows that have a received_at
    newest_event: datetime | None
    newest_received: datetime | None


def summarize_partition(event_date: str, event_name: str, table: pa.Table) -> PartitionSummary:
    """Boil one partition's rows (EVENT_COLUMNS) down to its summary."""
    missing = [c for c in EVENT_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"partition table lacks columns {missing}")
    keys = ["request_id", "job_id", "event_id"]
    with_hour = table.select(keys).append_column("hour", pc.hour(table.column("event_time")))
    distinct = with_hour.group_by(keys + ["hour"], use_threads=False).aggregate([])
    hourly = distinct.group_by(["hour"], use_threads=False).aggregate([([], "count_all")])
    lag = pc.divide(pc.cast(pc.subtract(pc.cast(table.column("received_at"), pa.int64()),
                                        pc.cast(table.column("event_time"), pa.int64())), pa.float64()),
                    1_000_000.0)
    return PartitionSummary(
        event_date=event_date,
        event_name=event_name,
        rows=table.num_rows,
        distinct_events=table.select(keys).group_by(keys, use_threads=False).aggregate([]).num_rows,
        hourly_distinct=dict(zip(hourly.column("hour").to_pylist(), hourly.column("count_all").to_pylist())),
        lags=pc.drop_null(lag).combine_chunks() if table.num_rows else pa.array([], pa.float64()),
        newest_event=pc.max(table.column("event_time")).as_py() if table.num_rows else None,
        newest_received=pc.max(table.column("received_at")).as_py() if table.num_rows else None,
    )


def summarize_table(events: pa.Table) -> list[PartitionSummary]:
    """Split a table holding ``event_date`` and ``event_name`` columns into partition summaries."""
    table = events
    if not pa.types.is_string(table.column("event_date").type):
        table = table.set_column(table.schema.get_field_index("event_date"), "event_date",
                                 pc.cast(table.column("event_date"), pa.string()))
    pairs = table.select(list(PARTITION_COLUMNS)).group_by(list(PARTITION_COLUMNS), use_threads=False).aggregate([])
    summaries = []
    for d, n in zip(pairs.column("event_date").to_pylist(), pairs.column("event_name").to_pylist()):
        mask = pc.and_(pc.equal(table.column("event_date"), d), pc.equal(table.column("event_name"), n))
        summaries.append(summarize_partition(d, n, table.filter(mask)))
    return summaries


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
    partitions: Sequence[PartitionSummary],
    files: Sequence[FileInfo],
    dead_letters: Sequence[DeadLetter],
    *,
    days: int,
    now: datetime,
) -> dict[str, Any]:
    """Every figure of the report, as JSON-ready values (see the module docstring)."""
    event_window = window([p.event_date for p in partitions] + [f.event_date for f in files], days)
    dl_window = window((r.failed_at[:10] for r in dead_letters), days)
    if event_window is not None:
        first, last = event_window
        partitions = [p for p in partitions if first <= p.event_date <= last]
        files = [f for f in files if first <= f.event_date <= last]
    if dl_window is not None:
        dead_letters = [r for r in dead_letters if dl_window[0] <= r.failed_at[:10] <= dl_window[1]]

    by_day: dict[str, list[PartitionSummary]] = defaultdict(list)
    for part in partitions:
        by_day[part.event_date].append(part)
    files_by_day: dict[str, list[FileInfo]] = defaultdict(list)
    for f in files:
        files_by_day[f.event_date].append(f)

    def newest(values: Iterable[datetime | None]) -> datetime | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    day_list = _date_range(*event_window) if event_window else []
    per_day = []
    for day in day_list:
        parts, day_files = by_day.get(day, []), files_by_day.get(day, [])
        p50, p99 = _quantiles([p.lags for p in parts])
        rows, unique = sum(p.rows for p in parts), sum(p.distinct_events for p in parts)
        size = sum(f.size_bytes for f in day_files)
        per_day.append({
            "date": day,
            "rows": rows,
            "distinct_events": unique,
            "duplicates": rows - unique,
            "files": len(day_files),
            "partitions": len({f.event_name for f in day_files}),
            "bytes": size,
            "mean_file_bytes": size / len(day_files) if day_files else None,
            "freshness_p50_seconds": p50,
            "freshness_p99_seconds": p99,
            "newest_event": _iso(newest(p.newest_event for p in parts)),
        })

    p50, p99 = _quantiles([p.lags for p in partitions])
    newest_event = newest(p.newest_event for p in partitions)
    newest_received = newest(p.newest_received for p in partitions)

    names: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for part in partitions:
        names[part.event_name][0] += part.rows
        names[part.event_name][1] += part.distinct_events
    event_names = sorted(({"event_name": n, "rows": r, "distinct_events": d} for n, (r, d) in names.items()),
                         key=lambda e: (-e["rows"], e["event_name"]))

    rows_by_partition = {(p.event_date, p.event_name): p.rows for p in partitions}
    partition_files: dict[tuple[str, str], list[FileInfo]] = defaultdict(list)
    for f in files:
        partition_files[(f.event_date, f.event_name)].append(f)
    partition_rows = [
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

    hourly: Counter[tuple[str, int]] = Counter()
    for part in partitions:
        for hour, n in part.hourly_distinct.items():
            hourly[(part.event_date, hour)] += n
    last_hour = (newest_event.date().isoformat(), newest_event.hour) if newest_event else None
    gaps = gap_hours(hourly, day_list, lambda d, h: last_hour is None or (d, h) <= last_hour)

    total_rows = sum(p.rows for p in partitions)
    total_distinct = sum(p.distinct_events for p in partitions)
    total_bytes = sum(f.size_bytes for f in files)
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
            "bytes": total_bytes,
            "mean_file_bytes": total_bytes / len(files) if files else None,
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
        "partitions": partition_rows,
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
