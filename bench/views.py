"""Benchmark: what the generated BigQuery views cost a query, with DuckDB as the stand-in engine.

Builds a synthetic lake: the corpus's Canvas-format events, normalized by the pipeline's core
with varied ids and times, spread over D days (default 30) and written as hive-partitioned
Parquet (one file per event_date/event_name), then a second copy of a fraction of the events
(default 5%, received an hour later, as a late re-delivery or a replay leaves them). Creates the
views of schemas/bigquery/ in DuckDB (transpiled as the tests do) and times, each the median of
R runs (default 5), three questions asked two ways:

* events per event_name per day: over the raw table (counts duplicates) vs over events_deduped;
* mean score per assignment: JSON_VALUE + cast over the raw table vs the grade_change typed view;
* actions per user per day: over the raw table vs the activity view.

Prints the times and each view/raw ratio (DuckDB on one machine, not BigQuery: the ratio says
what the dedupe window and the typed extraction add to a scan, not what BigQuery bills).
Usage: python bench/views.py [--rows N] [--days D] [--duplicates F] [--repeats R]
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipeline.core.decode import decode_delivery  # noqa: E402
from pipeline.core.normalize import normalize  # noqa: E402
from pipeline.arrow import rows_to_table  # noqa: E402
from pipeline.core.partition import partition_path  # noqa: E402
from devkit.deliveries import payloads  # noqa: E402
from tests.deploy.bigquery_views import connect_views  # noqa: E402

QUESTIONS = {
    "events per event_name per day": (
        "SELECT event_date, event_name, COUNT(*) AS n FROM {table} WHERE event_date >= DATE '2030-01-01' "
        "GROUP BY ALL ORDER BY ALL",
        ("events", "events_deduped")),
    "mean score per assignment": (
        None,  # two different texts, below
        ("events", "grade_change")),
    "actions per user per day": (
        "SELECT event_date, user_id, COUNT(*) AS n FROM {table} WHERE event_date >= DATE '2030-01-01' "
        "AND user_id IS NOT NULL GROUP BY ALL ORDER BY ALL",
        ("events", "activity")),
}
SCORE_RAW = ("SELECT JSON_VALUE(body, '$.assignment_id') AS assignment_id, "
             "AVG(TRY_CAST(JSON_VALUE(body, '$.score') AS DOUBLE)) AS s FROM events "
             "WHERE event_name = 'grade_change' GROUP BY ALL ORDER BY ALL")
SCORE_VIEW = "SELECT assignment_id, AVG(score) AS s FROM grade_change GROUP BY ALL ORDER BY ALL"


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def build_lake(out: Path, rows: int, days: int, duplicates: float, seed: int = 7) -> tuple[int, int]:
    """Write the synthetic lake; returns (distinct events, rows written)."""
    rng = random.Random(seed)
    templates = [p for p in payloads(formats=("canvas",)) if isinstance(p.get("body"), dict)]
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    first_run = start + timedelta(days=days + 1)
    partitions: dict[str, list[tuple]] = defaultdict(list)
    written = 0
    for i in range(rows):
        event = orjson.loads(orjson.dumps(templates[i % len(templates)]))
        meta = event["metadata"]
        moment = start + timedelta(seconds=rng.randrange(days * 86400), milliseconds=rng.randrange(1000))
        meta["event_time"] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        if "request_id" in meta:
            meta["request_id"] = f"{rng.getrandbits(64):016x}"
        meta["user_id"] = str(21070000000000000 + rng.randrange(2000))
        if meta.get("event_name") == "grade_change":
            event["body"]["score"] = rng.choice((1, 2.5, 4, 5))
            event["body"]["assignment_id"] = str(rng.randrange(100))
        line = orjson.dumps(event)
        for decoded in decode_delivery(line, verifier=None, allow_unsigned=True, max_bytes=1 << 20):
            copies = [first_run] + ([first_run + timedelta(hours=1)] if rng.random() < duplicates else [])
            for received in copies:
                row = normalize(decoded, received_at=received)
                partitions[partition_path(row)].append(row)
                written += 1
    for path, part in partitions.items():
        target = out / path / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows_to_table(part), target)
    return rows, written


def timed(con, sql: str, repeats: int) -> tuple[float, int]:
    times, answer = [], 0
    for _ in range(repeats):
        began = time.perf_counter()
        answer = len(con.execute(sql).fetchall())
        times.append(time.perf_counter() - began)
    return statistics.median(times), answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="distinct events (default 100,000)")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--duplicates", type=float, default=0.05, help="fraction written twice (default 0.05)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-views-"))
    try:
        began = time.perf_counter()
        distinct, written = build_lake(work / "out", args.rows, args.days, args.duplicates)
        files = sum(1 for _ in (work / "out").rglob("*.parquet"))
        _log(f"lake built in {time.perf_counter() - began:.1f} s")
        con = connect_views(work / "out")
        con.execute("SET threads = 1")  # one core, comparable runs on a shared machine
        (deduped,) = con.execute("SELECT COUNT(*) FROM events_deduped").fetchone()
        if deduped != distinct:
            print(f"FAIL: events_deduped has {deduped} rows for {distinct} distinct events", file=sys.stderr)
            return 1
        print(f"lake: {written:,} rows ({written - distinct:,} duplicate copies) of {distinct:,} events, "
              f"{files:,} files over {args.days} days; DuckDB, 1 thread, median of {args.repeats}")
        print(f"{'question':32} {'raw table':>10} {'view':>10} {'view/raw':>9}")
        for question, (text, (raw, view)) in QUESTIONS.items():
            raw_sql, view_sql = (SCORE_RAW, SCORE_VIEW) if text is None else (
                text.format(table=raw), text.format(table=view))
            raw_s, _ = timed(con, raw_sql, args.repeats)
            view_s, _ = timed(con, view_sql, args.repeats)
            print(f"{question:32} {raw_s * 1000:8.1f}ms {view_s * 1000:8.1f}ms {view_s / raw_s:8.2f}x")
        print(f"events_deduped rows: {deduped:,} (= distinct events)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
