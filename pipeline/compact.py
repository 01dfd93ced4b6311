"""`canvas-events compact`: rewrite old partitions as few large, deduplicated files.

Per ``event_date=/event_name=`` partition in scope (``pipeline.core.compaction`` decides
which, from one listing): read every visible part file, keep the first-received copy of
each dedupe key (``pipeline.arrow.dedupe_table``), write the rows back as files of about
``--target_file_mb`` sorted by event_time, then delete exactly the files it read.

Why a reader never sees fewer events than exist: each new file is written under a hidden
temp name and renamed (complete, atomically), and every new file of a partition exists
before the first old one is deleted. Between the two a reader may see duplicates, never a
gap. Files that appear after the listing are not read and not deleted (they wait for the
next run), and a file that changed since the listing (size or update time) is left too.

Crash-safe and idempotent: killed anywhere, the partition holds the old files, or the old
files plus some new ones (duplicates, which the next run folds), or only the new ones
(done). A partition that is already one compaction run's output is not read at all.
Unreadable files are reported and left in place (nothing is deleted that was not read).
Two runs at once over one partition lose nothing either (each writes its own files before
deleting what it read); they may leave a duplicate copy, which the next run folds.

Runs in-process by default (one partition at a time, reads in parallel threads); with
``--runner`` (DirectRunner, DataflowRunner: the Flex Template's ``job=compact``) the same
per-partition work runs as a Beam pipeline, one partition per element.
"""
from __future__ import annotations

import argparse
import io
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.arrow import dedupe_table, table_to_parquet_bytes
from pipeline.core.compaction import (
    DEFAULT_OLDER_THAN_DAYS,
    DEFAULT_TARGET_FILE_MB,
    FileEntry,
    PartitionPlan,
    compact_file_name,
    parse_dates,
    plan_compaction,
    shard_count,
    stale_temp_files,
)
from pipeline.filenames import new_run_id
from schemas.events import FILE_SCHEMA

PROG = "canvas-events compact"
EXIT_BAD_OPTIONS = 2
ROW_GROUP_ROWS = 128 * 1024  # event_time statistics per row group let readers skip most of a day
READ_THREADS = 8  # object stores answer each small read in tens of ms: overlap them
MB = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass
class PartitionResult:
    partition: str
    files_before: int
    files_after: int
    rows_read: int = 0
    rows_written: int = 0
    duplicates: int = 0
    untouched: bool = False
    unreadable: list[str] = field(default_factory=list)
    left_changed: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # the paths of the new files
    seconds: float = 0.0


def _filesystems() -> Any:
    from apache_beam.io.filesystems import FileSystems
    return FileSystems


def list_output(output: str) -> list[FileEntry]:
    """Every object directly inside a partition of ``output`` (hidden ones too)."""
    fs = _filesystems()
    root = output.rstrip("/")
    pattern = fs.join(root, "event_date=*", "event_name=*", "*")
    matched = fs.match([pattern])[0].metadata_list
    return [FileEntry(m.path[len(root) + 1:], m.size_in_bytes, m.last_updated_in_seconds) for m in matched]


def _read_file(path: str) -> pa.Table | Exception:
    fs = _filesystems()
    try:
        with fs.open(path) as handle:
            data = handle.read()
    except Exception as exc:  # noqa: BLE001 - vanished or unreachable: decided by the caller
        return exc
    try:
        table = pq.read_table(io.BytesIO(data))
        return table.select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
    except Exception as exc:  # noqa: BLE001 - not our Parquet: left in place, reported
        return exc


def _read_local_at_once(paths: list[str]) -> list[pa.Table] | None:
    """Local files: one multi-threaded Arrow dataset read (per-file reads cost more than the
    rows in them). None when any file fails; the caller then reads file by file, which tells
    an unreadable file from a vanished one."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(paths, format="parquet", schema=FILE_SCHEMA)
        if any(f.physical_schema.names != FILE_SCHEMA.names for f in dataset.get_fragments()):
            return None  # not exactly our columns: let the file-by-file read judge each file
        whole = dataset.to_table()
    except Exception:  # noqa: BLE001 - decided file by file instead
        return None
    # One table for all: attribute it to the first file, empty tables to the others.
    empty = whole.slice(0, 0)
    return [whole] + [empty] * (len(paths) - 1)


def _write_atomically(path: str, data: bytes) -> None:
    from pipeline.workers import write_atomically
    write_atomically(path, data)


def encode_shards(table: pa.Table, target_bytes: int) -> list[bytes]:
    """Parquet bytes of ``table`` as about ``target_bytes`` files (rows stay in order)."""
    whole = table_to_parquet_bytes(table, row_group_size=ROW_GROUP_ROWS)
    shards = shard_count(len(whole), target_bytes)
    if shards == 1:
        return [whole]
    per = -(-table.num_rows // shards)
    return [table_to_parquet_bytes(table.slice(i, per), row_group_size=ROW_GROUP_ROWS)
            for i in range(0, table.num_rows, per)]


def compact_partition(output: str, plan: PartitionPlan, run_id: str, target_bytes: int,
                      read_threads: int = READ_THREADS, new_rows: Sequence[pa.Table] = ()) -> PartitionResult:
    """Compact one partition (see the module docstring for the order of the steps).

    ``new_rows``: tables of rows not yet in the lake (``FILE_SCHEMA``; a replay's batches) to
    fold in with the rows read: they are deduplicated together and written in the same new
    files. ``run_id`` must be new for every attempt (see ``pipeline.transforms.write``)."""
    started = time.monotonic()
    result = PartitionResult(plan.partition, len(plan.files), len(plan.files))
    new_rows = [t for t in new_rows if t.num_rows]
    if plan.compact and not new_rows:
        result.untouched = True
        return result
    fs = _filesystems()
    root = output.rstrip("/")
    paths = [fs.join(root, f.relative) for f in plan.files]
    tables = _read_local_at_once(paths) if "://" not in root else None
    if tables is None:
        with ThreadPoolExecutor(max_workers=max(1, read_threads)) as pool:
            tables = list(pool.map(_read_file, paths))
    read: list[FileEntry] = []
    good: list[pa.Table] = []
    vanished = 0
    for entry, path, table in zip(plan.files, paths, tables):
        if isinstance(table, pa.Table):
            read.append(entry)
            good.append(table)
        elif _exists(path):
            result.unreadable.append(f"{path}: {type(table).__name__}: {table}")
            log.warning("%s: cannot read %s (%s); left in place", PROG, path, table)
        else:  # deleted since the listing (e.g. by a retried attempt that got further): not ours
            vanished += 1
    result.files_after = len(plan.files) - vanished
    if not read and not new_rows:
        result.seconds = time.monotonic() - started
        return result
    result.rows_read = sum(t.num_rows for t in good)
    # Rows read first: between two copies received at the same moment under the same key id,
    # the one already in the lake is kept.
    kept, result.duplicates = dedupe_table(pa.concat_tables(good + [t.select(FILE_SCHEMA.names) for t in new_rows]))
    directory = fs.join(root, plan.partition)
    shards = encode_shards(kept, target_bytes)
    for index, data in enumerate(shards):
        path = fs.join(directory, compact_file_name(run_id, index))
        _write_atomically(path, data)
        result.written.append(path)
    result.rows_written = kept.num_rows
    # Every new file exists: now delete exactly the files read, if unchanged since the listing.
    now = {m.path: m for m in fs.match([fs.join(directory, "*")])[0].metadata_list}
    doomed = []
    for entry in read:
        path = fs.join(root, entry.relative)
        current = now.get(path)
        if current is None:
            continue
        if current.size_in_bytes == entry.size and current.last_updated_in_seconds == entry.updated:
            doomed.append(path)
        else:
            result.left_changed.append(path)
    if doomed:
        fs.delete(doomed)
    result.files_after = len(plan.files) - vanished - len(doomed) + len(shards)
    result.seconds = time.monotonic() - started
    return result


def _exists(path: str) -> bool:
    try:
        return bool(_filesystems().exists(path))
    except Exception:  # noqa: BLE001 - unknown: say it exists, so it is reported, not forgotten
        return True


def remove_stale_temps(output: str, listing: Sequence[FileEntry]) -> int:
    fs = _filesystems()
    stale = [fs.join(output.rstrip("/"), e.relative) for e in stale_temp_files(listing, now=time.time())]
    if stale:
        try:
            fs.delete(stale)
        except Exception as exc:  # noqa: BLE001 - housekeeping only; never fail a run for it
            log.warning("%s: could not remove stale temp files: %s", PROG, exc)
            return 0
    return len(stale)


# ---- summary ----------------------------------------------------------------------------------

def progress_line(r: PartitionResult) -> str:
    if r.untouched:
        return f"{r.partition}: already compact ({r.files_before} file(s)), untouched"
    line = (f"{r.partition}: {r.files_before} -> {r.files_after} files, {r.rows_read} rows read, "
            f"{r.duplicates} duplicates removed, {r.rows_written} rows written ({r.seconds:.1f} s)")
    if r.unreadable:
        line += f"; {len(r.unreadable)} unreadable file(s) left in place"
    if r.left_changed:
        line += f"; {len(r.left_changed)} file(s) changed since listing, left for the next run"
    return line


# What a compaction counts per partition: the run's summary and the Beam job's counters.
COUNTERS = ("partitions_compacted", "files_before", "files_after", "rows_read", "rows_written",
            "duplicates_removed", "unreadable_files")


def counts(r: PartitionResult) -> dict[str, int]:
    """One partition's share of ``COUNTERS``."""
    return {"partitions_compacted": 1 if not r.untouched and r.rows_written else 0,
            "files_before": r.files_before, "files_after": r.files_after, "rows_read": r.rows_read,
            "rows_written": r.rows_written, "duplicates_removed": r.duplicates,
            "unreadable_files": len(r.unreadable)}


def summarize(results: Sequence[PartitionResult], seconds: float) -> dict[str, float]:
    each = [counts(r) for r in results]
    totals = {name: sum(c[name] for c in each) for name in COUNTERS}
    return {
        "partitions": len(results),
        "partitions_compacted": totals["partitions_compacted"],
        "partitions_untouched": sum(1 for r in results if r.untouched),
        **{name: totals[name] for name in COUNTERS[1:]},
        "seconds": round(seconds, 1),
    }


def format_summary(summary: dict[str, float]) -> str:
    width = max(len(k) for k in summary)
    return "\n".join(f"{name:<{width}}  {value:>10}" for name, value in summary.items())


# ---- command line -----------------------------------------------------------------------------

def add_compact_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, metavar="DIR_OR_GS",
                        help="the pipeline's --output (directory or gs:// prefix)")
    parser.add_argument("--dates", default=None, metavar="YYYY-MM-DD,...",
                        help="compact these event dates only (default: every date at least "
                             "--older_than_days old)")
    parser.add_argument("--older_than_days", type=int, default=DEFAULT_OLDER_THAN_DAYS,
                        help=f"default scope: event dates at least this many days old (default: "
                             f"{DEFAULT_OLDER_THAN_DAYS})")
    parser.add_argument("--target_file_mb", type=int, default=DEFAULT_TARGET_FILE_MB,
                        help=f"size of the files written, about (default: {DEFAULT_TARGET_FILE_MB})")


@dataclass(frozen=True)
class CompactArgs:
    output: str
    dates: list[date] | None
    older_than_days: int
    target_file_mb: int


def check_args(output: str | None, dates: str | None, older_than_days: Any,
               target_file_mb: Any) -> tuple[CompactArgs | None, list[str]]:
    errors = []
    if not output:
        errors.append("missing --output (the pipeline's output directory or gs:// prefix)")
    parsed = None
    if dates:
        try:
            parsed = parse_dates(dates)
        except ValueError as exc:
            errors.append(f"--dates: {exc}")
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int) or older_than_days < 0:
        errors.append(f"--older_than_days must be a whole number >= 0, got {older_than_days!r}")
    if isinstance(target_file_mb, bool) or not isinstance(target_file_mb, int) or target_file_mb <= 0:
        errors.append(f"--target_file_mb must be a positive whole number, got {target_file_mb!r}")
    if errors:
        return None, errors
    return CompactArgs(str(output), parsed, older_than_days, target_file_mb), []


def plan(args: CompactArgs, today: date | None = None) -> tuple[list[PartitionPlan], list[FileEntry]]:
    listing = list_output(args.output)
    today = today or datetime.now(timezone.utc).date()
    return plan_compaction(listing, today=today, dates=args.dates,
                           older_than_days=args.older_than_days), listing


def compact_local(args: CompactArgs, *, run_id: str | None = None, out: Any = None) -> dict[str, float]:
    """The whole job in this process; progress lines and the summary go to ``out`` (stderr)."""
    out = out or sys.stderr
    started = time.monotonic()
    run_id = run_id or new_run_id()
    plans, listing = plan(args)
    print(f"{PROG}: {len(plans)} partition(s) in scope under {args.output} (run {run_id})", file=out, flush=True)
    results = []
    for n, p in enumerate(plans, 1):
        r = compact_partition(args.output, p, run_id, args.target_file_mb * MB)
        results.append(r)
        print(f"[{n}/{len(plans)}] {progress_line(r)}", file=out, flush=True)
    removed = remove_stale_temps(args.output, listing)
    if removed:
        print(f"{PROG}: removed {removed} stale temp file(s)", file=out)
    summary = summarize(results, time.monotonic() - started)
    print(format_summary(summary), file=out, flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``canvas-events compact``. Exit 0 done, 1 some files could not be read (left in place), 2 usage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog=PROG, description="Rewrite old partitions of the Parquet output as few large files "
                               "without duplicates. With --runner (e.g. DataflowRunner) it runs as a "
                               "Beam pipeline; every standard Beam option is then accepted.")
    add_compact_args(parser)
    args, beam_args = parser.parse_known_args(argv)
    checked, errors = check_args(args.output, args.dates, args.older_than_days, args.target_file_mb)
    if errors:
        print(f"{PROG}: error: {'; '.join(errors)}", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    assert checked is not None
    if any(a.startswith("--runner") for a in beam_args):
        from pipeline.transforms.compact import run_beam
        return run_beam(checked, beam_args)
    if beam_args:
        print(f"{PROG}: error: unknown arguments {beam_args} (Beam options need --runner)", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    summary = compact_local(checked)
    return 1 if summary["unreadable_files"] else 0


if __name__ == "__main__":
    sys.exit(main())
