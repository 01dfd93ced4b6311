"""Benchmark: compaction of a day of streaming output, and what it does for queries.

Generates a synthetic day as the streaming pipeline leaves it (bench/lake_data.py: 5-minute
windows x 80 event names, about 23 k part files, 1 M rows of which 5 % duplicates, built from
the example corpus by the project's own core), then prints:

* files before and after, the largest file after (goals: one file per partition, < 256 MB);
* compaction rows/s (in-process ``canvas-events compact``), beside the batch pipeline's own
  rows/s measured in the same run on unsigned deliveries (cheaper than signed ones, so the
  comparison favours the pipeline; goal: compaction at least as fast);
* the same DuckDB query (distinct events per event_name for the day), the local stand-in for
  BigQuery, before and after (median of --repeats; goal: >= 10x faster after), and that both
  answers are equal.

Usage: python bench/compact.py [--scale 1.0] [--pipeline_events 20000] [--repeats 3]
``--scale`` multiplies rows and windows (0.01: a quick run of ~10 k rows in 3 windows).
The machine is shared: read the ratios, not the absolute figures.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY = date(2024, 11, 1)
QUERY = ("select event_name, count(distinct event_id) from read_parquet('{glob}', hive_partitioning=true) "
         "where event_date = DATE '{day}' group by 1 order by 1")


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def timed_query(root: Path, repeats: int) -> tuple[float, list]:
    import duckdb

    sql = QUERY.format(glob=f"{root}/**/*.parquet", day=DAY.isoformat())
    times, answer = [], None
    for _ in range(repeats):
        con = duckdb.connect()  # a fresh connection: no metadata cache carried over
        started = time.perf_counter()
        answer = con.sql(sql).fetchall()
        times.append(time.perf_counter() - started)
        con.close()
    return statistics.median(times), answer


def pipeline_rows_per_second(workdir: Path, events: int) -> tuple[float, int]:
    """The batch pipeline (DirectRunner) on ``events`` unsigned deliveries: rows written per second."""
    from devkit.deliveries import payloads

    corpus = payloads(formats=("canvas",))
    lines = []
    for i in range(events):
        payload = copy.deepcopy(corpus[i % len(corpus)])
        payload["metadata"]["request_id"] = f"bench-compact-{i:09d}"
        lines.append(json.dumps(payload))
    source = workdir / "deliveries.jsonl"
    source.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", f"--input_files={source}", "--allow_unsigned",
         f"--output={workdir / 'pipeline-out'}", f"--dead_letter_output={workdir / 'pipeline-dead'}",
         "--runner=DirectRunner"], cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit("batch pipeline failed")
    written = int(next(line.split()[-1] for line in proc.stderr.splitlines() if line.startswith("rows_written")))
    return written / seconds, written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="rows and windows x this (default 1.0)")
    parser.add_argument("--names", type=int, default=80, help="event names (default 80)")
    parser.add_argument("--pipeline_events", type=int, default=20_000,
                        help="deliveries for the batch pipeline's rows/s (default 20000; 0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each query (median; default 3)")
    args = parser.parse_args()

    from bench.lake_data import write_day
    from pipeline.compact import CompactArgs, compact_local

    rows = max(100, int(1_000_000 * args.scale))
    windows = max(2, round(288 * min(1.0, args.scale)))
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as tmp:
        root = Path(tmp) / "events"
        _log(f"writing a synthetic day: {rows:,} rows, {args.names} names x {windows} windows ...")
        started = time.monotonic()
        made = write_day(root, DAY, names=args.names, windows=windows, rows=rows)
        _log(f"  {made.files:,} files in {time.monotonic() - started:.0f} s")
        before_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        query_before, answer_before = timed_query(root, args.repeats)

        _log("compacting ...")
        with open("/dev/null", "w") as quiet:
            summary = compact_local(CompactArgs(str(root), [DAY], 2, 256), out=quiet)
        files_after = sorted(root.rglob("*.parquet"))
        largest = max(p.stat().st_size for p in files_after)
        after_bytes = sum(p.stat().st_size for p in files_after)
        query_after, answer_after = timed_query(root, args.repeats)

        pipeline_rate = written = None
        if args.pipeline_events:
            _log(f"batch pipeline on {args.pipeline_events:,} unsigned deliveries ...")
            pipeline_rate, written = pipeline_rows_per_second(Path(tmp), args.pipeline_events)

    compact_rate = summary["rows_read"] / summary["seconds"] if summary["seconds"] else float("inf")
    print(f"synthetic day: {rows:,} rows ({made.distinct:,} distinct, {rows - made.distinct:,} duplicates), "
          f"{args.names} event names x {windows} five-minute windows")
    print(f"files: {made.files:,} before ({before_bytes / 1e6:,.1f} MB), {len(files_after)} after "
          f"({after_bytes / 1e6:,.1f} MB; largest {largest / 1e6:,.1f} MB; goal: one per partition, < 256 MB)")
    print(f"compaction: {summary['seconds']:.1f} s, {compact_rate:,.0f} rows/s, "
          f"{summary['duplicates_removed']:,} duplicates removed")
    if pipeline_rate is not None:
        print(f"batch pipeline (same run, {written:,} rows, unsigned): {pipeline_rate:,.0f} rows/s; "
              f"compaction/pipeline: {compact_rate / pipeline_rate:.1f}x (goal >= 1x)")
    speedup = query_before / query_after if query_after else float("inf")
    print(f"DuckDB events per event_name for the day: {query_before * 1000:,.0f} ms before, "
          f"{query_after * 1000:,.0f} ms after: {speedup:.1f}x faster (goal >= 10x)")
    same = answer_before == answer_after and sum(n for _, n in answer_after) == made.distinct
    one_per_partition = len(files_after) == len(answer_after) and largest < 256 * 1024 * 1024
    print("check: " + ("same answer before and after, one file per partition"
                       if same and one_per_partition else "MISMATCH (answers or files)"))
    return 0 if same and one_per_partition else 1


if __name__ == "__main__":
    sys.exit(main())
