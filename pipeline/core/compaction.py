"""What compaction does, decided without touching storage: which partitions, which files.

``canvas-events compact`` lists the output once and hands the listing here. Pure: the
listing, today's date and the options go in; a plan per partition comes out. The I/O
(reading, writing, deleting) is in ``pipeline.compact``; the dedupe of the rows read is
``pipeline.arrow.dedupe_table``.

Rules (issue 10, part 2):

* Only ``event_date=YYYY-MM-DD/event_name=NAME/FILE`` is part of the table; names starting
  with ``.`` or ``_`` are not (temp files, markers), as BigQuery, DuckDB and Hive read it.
* Scope: the dates given, else every date at least ``older_than_days`` old (default 2:
  late and replayed data keeps arriving in recent dates; compaction is safe with that,
  the default only avoids rewriting busy partitions every day).
* A partition whose visible files are all the output of ONE compaction run is already
  compact (deduplicated, sorted, sized) and is left untouched: no read, no rewrite. A run
  deletes the files it read only after all of its own files exist, so a partial set of one
  run's files never stands alone; any other mix (a crash between writing and deleting,
  new part files beside compacted ones) is compacted again, which converges.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Iterable, Sequence

DEFAULT_OLDER_THAN_DAYS = 2
DEFAULT_TARGET_FILE_MB = 256
COMPACT_PREFIX = "compact-"
STALE_TEMP_SECONDS = 24 * 3600  # a temp file this old belongs to a writer that died

_PARTITION = re.compile(r"event_date=(\d{4}-\d\d-\d\d)/event_name=([^/]+)")
_COMPACT_NAME = re.compile(r"compact-([0-9a-f]+)-s\d{3,}\.parquet")


@dataclass(frozen=True)
class FileEntry:
    """One object of the listing: its path relative to the output root, size, last update (epoch s)."""

    relative: str
    size: int
    updated: float


@dataclass(frozen=True)
class PartitionPlan:
    partition: str  # event_date=D/event_name=N
    event_date: date
    files: tuple[FileEntry, ...]  # the visible part files, sorted by path
    compact: bool  # True: already the output of one compaction run (left untouched)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)


def is_visible(name: str) -> bool:
    """Whether a file name is part of the table (not ``.``/``_``-prefixed)."""
    return bool(name) and name[0] not in "._"


def split_relative(relative: str) -> tuple[str, date, str] | None:
    """``(partition, event_date, file name)`` of a path under the output root, or None
    when it is not a file directly inside an ``event_date=/event_name=`` partition."""
    head, _, name = relative.strip("/").rpartition("/")
    match = _PARTITION.fullmatch(head)
    if not match or not name:
        return None
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        return None
    return head, day, name


def compact_run_of(name: str) -> str | None:
    """The run id of a file written by compaction (``compact-<run>-s<shard>.parquet``), else None."""
    match = _COMPACT_NAME.fullmatch(name)
    return match.group(1) if match else None


def compact_file_name(run_id: str, shard_index: int) -> str:
    return f"{COMPACT_PREFIX}{run_id}-s{shard_index:03d}.parquet"


def is_already_compact(names: Sequence[str]) -> bool:
    runs = {compact_run_of(n) for n in names}
    return len(runs) == 1 and None not in runs


def in_scope(day: date, today: date, dates: frozenset[date] | None, older_than_days: int) -> bool:
    if dates is not None:
        return day in dates
    return day <= today - timedelta(days=older_than_days)


def plan_compaction(
    listing: Iterable[FileEntry],
    *,
    today: date,
    dates: Iterable[date] | None = None,
    older_than_days: int = DEFAULT_OLDER_THAN_DAYS,
) -> list[PartitionPlan]:
    """One plan per partition in scope that holds visible files, sorted by partition.

    ``dates`` (when given) replaces the age rule. Files not inside a partition and hidden
    files are never planned (so never read nor deleted).
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must be >= 0")
    wanted = frozenset(dates) if dates is not None else None
    by_partition: dict[str, tuple[date, list[FileEntry]]] = {}
    for entry in listing:
        parts = split_relative(entry.relative)
        if parts is None:
            continue
        partition, day, name = parts
        if not is_visible(name) or not in_scope(day, today, wanted, older_than_days):
            continue
        by_partition.setdefault(partition, (day, []))[1].append(entry)
    plans = []
    for partition in sorted(by_partition):
        day, files = by_partition[partition]
        files.sort(key=lambda f: f.relative)
        names = [f.relative.rpartition("/")[2] for f in files]
        plans.append(PartitionPlan(partition, day, tuple(files), is_already_compact(names)))
    return plans


def stale_temp_files(listing: Iterable[FileEntry], *, now: float,
                     max_age_seconds: float = STALE_TEMP_SECONDS) -> list[FileEntry]:
    """Hidden temp files (``.tmp-``) inside partitions older than ``max_age_seconds``: left by
    a writer killed between writing and renaming. Young ones may belong to a live writer."""
    stale = []
    for entry in listing:
        parts = split_relative(entry.relative)
        if parts and parts[2].startswith(".tmp-") and now - entry.updated > max_age_seconds:
            stale.append(entry)
    return stale


def shard_count(encoded_bytes: int, target_bytes: int) -> int:
    """How many files of about ``target_bytes`` hold ``encoded_bytes`` (at least one)."""
    if target_bytes <= 0:
        raise ValueError("target_bytes must be positive")
    return max(1, -(-encoded_bytes // target_bytes))


def parse_dates(text: str) -> list[date]:
    """``2024-11-01,2024-11-02`` -> dates (ValueError naming the bad one)."""
    days = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            days.append(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"not a date (YYYY-MM-DD): {part!r}") from None
    if not days:
        raise ValueError("no dates given")
    return days
