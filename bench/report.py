"""Speed of `canvas-events report` over a local lake, against the floor of reading its columns.

Why: the report reads every Parquet file of the window. This times the whole report (list,
read the five columns it needs, summarize each partition, compute, render the HTML) next to
the cost nothing can beat (pyarrow reading the same five columns of the same files) and
DuckDB answering a subset of the same questions (rows, distinct events, freshness
percentiles per day) over the same files, all in one run, so the ratios hold on a noisy,
shared machine where absolute figures do not.

    .venv/bin/python bench/report.py [--rows 300000] [--days 14] [--names 20] [--repeats 5]

The lake is synthetic (written with the pipeline's own Parquet writer, ``pipeline.arrow``):
``rows`` events spread evenly over ``days`` x ``names`` partitions, 2 files each, 1 % of the
rows duplicated, bodies of a few hundred bytes. Writing it is setup and is not timed.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.arrow import rows_to_parquet_bytes  # noqa: E402
from pipeline.core.rows import COLUMN_INDEX  # noqa: E402
from pipeline.report import build_figures  # noqa: E402
from pipeline.report.figures import EVENT_COLUMNS  # noqa: E402
from pipeline.report.render import render_html  # noqa: E402
from schemas.events import ROW_COLUMNS  # noqa: E402

DAY_MICROS = 86_400_000_000


def write_lake(root: Path, rows: int, days: int, names: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    start = int(datetime(2026, 11, 1, tzinfo=timezone.utc).timestamp() * 1_000_000)
    per_partition = rows // (days * names)
    files = 0
    for d in range(days):
        for n in range(names):
            name = f"event_{n:02d}"
            directory = root / f"event_date=2026-11-{d + 1:02d}" / f"event_name={name}"
            directory.mkdir(parents=True)
            batch = []
            for i in range(per_partition):
                event_time = start + d * DAY_MICROS + rng.randrange(DAY_MICROS)
                row = [None] * len(ROW_COLUMNS)
                row[COLUMN_INDEX["event_id"]] = f"{d}-{n}-{i:08d}"
                row[COLUMN_INDEX["source_format"]] = "canvas"
                row[COLUMN_INDEX["event_time"]] = event_time
                row[COLUMN_INDEX["received_at"]] = event_time + rng.randrange(1_000_000, 60_000_000)
                row[COLUMN_INDEX["request_id"]] = f"req-{d}-{n}-{i // 3}"
                row[COLUMN_INDEX["user_id"]] = str(rng.randrange(10_000))
                row[COLUMN_INDEX["body"]] = '{"asset_id": "%d", "note": "%s"}' % (i, "x" * rng.randrange(100, 400))
                row[COLUMN_INDEX["metadata"]] = '{"event_name": "%s", "request_id": "req"}' % name
                row[COLUMN_INDEX["signed"]] = True
                row[COLUMN_INDEX["event_name"]] = name
                batch.append(tuple(row))
            batch += batch[: max(1, per_partition // 100)]  # duplicates still in the files
            half = len(batch) // 2
            for part, chunk in enumerate((batch[:half], batch[half:])):
                (directory / f"part-{part}.parquet").write_bytes(rows_to_parquet_bytes(chunk))
                files += 1
    return files


def measure(repeats: int, fns: dict[str, Callable[[], object]]) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of each function, the functions taking turns in every round so
    that a burst of load from a neighbour on the machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--names", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        lake = Path(tmp) / "events"
        files = write_lake(lake, args.rows, args.days, args.names)
        paths = sorted(str(p) for p in lake.rglob("*.parquet"))
        total = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
        size = sum(Path(p).stat().st_size for p in paths)
        now = datetime.now(timezone.utc)

        def report() -> None:
            render_html(build_figures(str(lake), None, args.days, now))

        def floor() -> None:
            for p in paths:
                pq.read_table(p, columns=list(EVENT_COLUMNS))

        def with_duckdb() -> None:
            duckdb.sql(
                f"select event_date, count(*), count(distinct (request_id, job_id, event_id)), "
                "quantile_cont(epoch_us(received_at) - epoch_us(event_time), [0.5, 0.99]) "
                f"from read_parquet('{lake}/**/*.parquet', hive_partitioning=true) group by 1").fetchall()

        report()  # warm-up: imports, page cache
        measured = measure(args.repeats, {"report (list, read, summarize, render)": report,
                                          "floor: pyarrow reads the 5 columns": floor,
                                          "DuckDB: rows, distinct, percentiles per day": with_duckdb})

    print(f"lake: {total:,} rows in {files} files ({size / 1e6:.1f} MB), {args.days} days x {args.names} names")
    print(f"{'what':<46} {'best s':>8} {'median s':>9} {'rows/s':>12}")
    for name, (best, median) in measured.items():
        print(f"{name:<46} {best:>8.3f} {median:>9.3f} {total / best:>12,.0f}")
    report_best = measured["report (list, read, summarize, render)"][0]
    print(f"report / floor: {report_best / measured['floor: pyarrow reads the 5 columns'][0]:.2f}x the time; "
          f"report / DuckDB: {report_best / measured['DuckDB: rows, distinct, percentiles per day'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
