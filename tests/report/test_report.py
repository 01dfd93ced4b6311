"""`canvas-events report` over real pipeline output, checked against DuckDB and in a real browser.

The lake is written by two runs of the real batch pipeline (tests/report/lake_builder.py:
three re-timed days with one missing hour, a replay that leaves duplicates and second files,
dead letters of two stages). Every figure the report gives is recomputed here independently
with DuckDB over the same files (and os.stat for file sizes); the HTML page is loaded in
headless Chromium without network, must log no console message, and the figures read back
from its rendered DOM must equal DuckDB's. The same lake copied to the GCS emulator must
give the same figures over gs://.
"""
from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from pipeline.cli import main as cli_main
from pipeline.report.figures import DeadLetter, FileInfo, compute_figures, gap_hours, summarize_table
from tests.report import browser
from tests.report.lake_builder import DAYS, GAP, Lake, build

NOW = "2026-12-01T12:00:00+00:00"


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    return build(tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="module")
def report(lake: Lake, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    html, js = out / "report.html", out / "report.json"
    code = cli_main(["report", f"--output={lake.output}", f"--dead_letter_output={lake.dead_letters}",
                     "--days=14", f"--html={html}", f"--json={js}"])
    assert code == 0
    return html, json.loads(js.read_text())


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = browser.chromium_binary()
    if path is None:
        pytest.skip(why)
    return path


def _sql(query: str) -> list[tuple]:
    return duckdb.sql(query).fetchall()


def duckdb_figures(lake: Lake) -> dict[str, float | str]:
    """The report's figures, recomputed from the files with DuckDB (names as the page's data-figure)."""
    events = f"read_parquet('{lake.output}/**/*.parquet', hive_partitioning=true)"
    dead = f"read_json('{lake.dead_letters}/**/*.jsonl', format='newline_delimited')"
    lag = "(epoch_us(received_at) - epoch_us(event_time)) / 1e6"
    key = "(request_id, job_id, event_id)"
    expected: dict[str, float | str] = {}
    ((rows, distinct, p50, p99, newest),) = _sql(
        f"select count(*), count(distinct {key}), quantile_cont({lag}, 0.5), quantile_cont({lag}, 0.99), "
        f"strftime(max(event_time), '%Y-%m-%dT%H:%M:%S.%fZ') from {events}")
    expected.update({"total:rows": rows, "total:distinct_events": distinct, "total:duplicates": rows - distinct,
                     "total:freshness_p50": p50, "total:freshness_p99": p99, "newest_event": newest})
    for day, n, d, q50, q99 in _sql(
            f"select event_date::varchar, count(*), count(distinct {key}), quantile_cont({lag}, 0.5), "
            f"quantile_cont({lag}, 0.99) from {events} group by 1"):
        expected.update({f"day:{day}:rows": n, f"day:{day}:distinct_events": d, f"day:{day}:duplicates": n - d,
                         f"day:{day}:freshness_p50_seconds": q50, f"day:{day}:freshness_p99_seconds": q99})
    for name, n, d in _sql(f"select event_name, count(*), count(distinct {key}) from {events} group by 1"):
        expected[f"event_name:{name}:rows"] = n
        expected[f"event_name:{name}:distinct_events"] = d
    for stage, error_type, n in _sql(f"select stage, error_type, count(*) from {dead} group by 1, 2"):
        expected[f"dead_letters:{stage}:{error_type}"] = n
    expected["total:dead_letters"] = _sql(f"select count(*) from {dead}")[0][0]
    # Files and their sizes: from the file system, not from the report's reader.
    sizes: dict[str, list[int]] = {}
    for path in lake.output.rglob("*.parquet"):
        partition = f"{path.parent.parent.name.split('=')[1]}/{path.parent.name.split('=')[1]}"
        sizes.setdefault(partition, []).append(path.stat().st_size)
    for partition, sz in sizes.items():
        expected[f"partition:{partition}:files"] = len(sz)
        expected[f"partition:{partition}:mean_file_bytes"] = sum(sz) / len(sz)
    all_sizes = [s for sz in sizes.values() for s in sz]
    expected["total:files"] = len(all_sizes)
    expected["total:mean_file_bytes"] = sum(all_sizes) / len(all_sizes)
    for day in DAYS:
        expected[f"day:{day}:files"] = sum(len(sz) for p, sz in sizes.items() if p.startswith(day))
    # Gaps, by the documented definition, in SQL: hours under 25 % of the median of the same
    # hour on the other days (at least 2 of them, median at least 10), up to the newest hour.
    gaps = _sql(f"""
        with days as (select unnest(['{"','".join(DAYS)}']) as day),
        hours as (select day, h from days, range(24) t(h)),
        newest as (select max(event_time) as t from {events}),
        complete as (select day, h from hours, newest
                     where day::date + to_hours(h) <= date_trunc('hour', newest.t)::timestamp),
        volume as (select event_date::varchar as day, hour(event_time) as h, count(distinct {key}) as n
                   from {events} group by 1, 2),
        filled as (select c.day, c.h, coalesce(v.n, 0) as n from complete c left join volume v using (day, h)),
        judged as (select a.day, a.h, a.n, median(b.n) as baseline, count(b.n) as others
                   from filled a join filled b on a.h = b.h and a.day <> b.day group by 1, 2, 3)
        select day, h, n, baseline from judged where others >= 2 and baseline >= 10 and n < 0.25 * baseline
        """)
    for day, hour, n, baseline in gaps:
        expected[f"gap:{day}:{hour:02d}:events"] = n
        expected[f"gap:{day}:{hour:02d}:baseline"] = baseline
    return expected


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return actual == expected
    return actual is not None and math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-6)


def _flatten(figures: dict[str, Any]) -> dict[str, Any]:
    """The JSON figures under the names the page uses."""
    flat: dict[str, Any] = {f"total:{k}": v for k, v in figures["totals"].items()}
    flat["total:freshness_p50"] = figures["freshness"]["p50_seconds"]
    flat["total:freshness_p99"] = figures["freshness"]["p99_seconds"]
    flat["newest_event"] = figures["freshness"]["newest_event"]
    for d in figures["per_day"]:
        flat.update({f"day:{d['date']}:{k}": v for k, v in d.items() if k != "date"})
    for e in figures["event_names"]:
        flat[f"event_name:{e['event_name']}:rows"] = e["rows"]
        flat[f"event_name:{e['event_name']}:distinct_events"] = e["distinct_events"]
    for r in figures["dead_letters"]["by_reason"]:
        flat[f"dead_letters:{r['stage']}:{r['error_type']}"] = r["count"]
    for p in figures["partitions"]:
        flat[f"partition:{p['event_date']}/{p['event_name']}:files"] = p["files"]
        flat[f"partition:{p['event_date']}/{p['event_name']}:mean_file_bytes"] = p["mean_file_bytes"]
    for g in figures["gaps"]["hours"]:
        flat[f"gap:{g['date']}:{g['hour']:02d}:events"] = g["events"]
        flat[f"gap:{g['date']}:{g['hour']:02d}:baseline"] = g["baseline"]
    return flat


def _mismatches(actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [f"{k}: report {actual.get(k)!r}, DuckDB {v!r}" for k, v in expected.items() if not _equal(actual.get(k), v)]


# ---- the lake is what the test means it to be ---------------------------------------------

def test_the_lake_exercises_every_figure(lake: Lake) -> None:
    expected = duckdb_figures(lake)
    assert expected["total:duplicates"] > 0
    assert any(k.startswith("partition:") and k.endswith(":files") and v > 1 for k, v in expected.items())
    assert {k for k in expected if k.startswith("dead_letters:")} >= {
        "dead_letters:VerifyAndDecode:unknown_format", "dead_letters:NormalizeEvents:bad_timestamp"}
    assert [k for k in expected if k.startswith("gap:") and k.endswith(":events")] == [
        f"gap:{GAP[0]}:{GAP[1]:02d}:events"]


# ---- the JSON figures -------------------------------------------------------------------------

def test_json_figures_equal_duckdb(lake: Lake, report: tuple[Path, dict[str, Any]]) -> None:
    _, figures = report
    expected = duckdb_figures(lake)
    flat = _flatten(figures)
    assert not _mismatches(flat, expected)
    # Nothing the report lists is missing from DuckDB's answer either (no invented rows).
    assert {k for k in flat if k.startswith(("event_name:", "dead_letters:", "partition:", "gap:"))} == {
        k for k in expected if k.startswith(("event_name:", "dead_letters:", "partition:", "gap:"))}
    assert [d["date"] for d in figures["per_day"]] == list(DAYS)
    assert sum(d["rows"] for d in figures["per_day"]) == figures["totals"]["rows"]


# ---- the HTML page in a real browser ------------------------------------------------------------

def test_page_in_headless_chromium_shows_duckdb_figures(chromium: str, lake: Lake,
                                                         report: tuple[Path, dict[str, Any]]) -> None:
    html, _ = report
    page = browser.load(chromium, html)
    assert page.console == [], page.console
    shown = browser.dom_figures(page.dom)
    expected = duckdb_figures(lake)
    assert not _mismatches(shown, expected)
    assert browser.dom_references(page.dom) == []  # nothing to fetch: opens without network
    assert page.dom.count("<svg") >= 4  # the charts are there, inline


def test_console_errors_are_detected(chromium: str, tmp_path: Path) -> None:
    """The check above can fail: a page that logs an error or throws is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p data-figure="x" data-value="1">1</p>'
                   '<script>console.error("marker-1"); missingFunction();</script></body></html>')
    page = browser.load(chromium, bad)
    assert len(page.console) == 2 and "marker-1" in page.console[0] and "missingFunction" in page.console[1]
    assert browser.dom_figures(page.dom) == {"x": "1"}


def test_page_is_self_contained(report: tuple[Path, dict[str, Any]]) -> None:
    text = report[0].read_text()
    assert not re.search(r"(?i)(https?:|//[a-z0-9]|@import|url\()", text)
    assert "<script" not in text.lower()


# ---- gs:// ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_report_over_gcs_equals_local(gcs_emulator: Any, anonymous_gcs: None, lake: Lake,
                                      report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    bucket_name = f"lake-{uuid.uuid4().hex[:8]}"
    gcs_emulator.create_bucket(bucket_name)
    bucket = gcs_emulator.client.bucket(bucket_name)
    for root, prefix in ((lake.output, "events"), (lake.dead_letters, "dead-letters")):
        for path in root.rglob("*"):
            if path.is_file():
                bucket.blob(f"{prefix}/{path.relative_to(root).as_posix()}").upload_from_filename(str(path))
    bucket.blob("events/event_date=2026-11-29/event_name=x/.tmp-part.parquet.abc").upload_from_string(b"partial")
    js = tmp_path / "gcs.json"
    code = cli_main(["report", f"--output=gs://{bucket_name}/events",
                     f"--dead_letter_output=gs://{bucket_name}/dead-letters", f"--html={tmp_path / 'gcs.html'}",
                     f"--json={js}"])
    assert code == 0
    over_gcs = json.loads(js.read_text())
    local = report[1]
    for figures in (over_gcs, local):
        figures.pop("generated_at")
        figures.pop("source")
        figures["freshness"].pop("newest_event_age_seconds")  # relative to when each report ran
        for p in figures["partitions"]:
            p.pop("bytes"), p.pop("mean_file_bytes")  # same bytes, but compare the paths' content below
    assert over_gcs["totals"]["rows"] > 0
    assert over_gcs == local


# ---- the pure parts -----------------------------------------------------------------------------

def test_gap_definition_edges() -> None:
    days = ["2026-01-01", "2026-01-02", "2026-01-03"]
    volume = {(d, 5): 20 for d in days} | {("2026-01-02", 5): 4, ("2026-01-01", 6): 9, ("2026-01-02", 6): 9}
    everything = lambda d, h: True  # noqa: E731
    # 4 < 0.25 * 20 -> gap; hour 6 has a median of 9 < 10 -> never judged (the 0 on day 3 included).
    assert gap_hours(volume, days, everything) == [{"date": "2026-01-02", "hour": 5, "events": 4, "baseline": 20.0}]
    # 5 is not below a quarter of 20.
    assert gap_hours(volume | {("2026-01-02", 5): 5}, days, everything) == []
    # Only one other complete day: no baseline.
    assert gap_hours(volume, days, lambda d, h: d != "2026-01-03") == []


def _table(rows: list[tuple[str, str, str, int, int | None]]) -> pa.Table:
    micros = pa.timestamp("us", tz="UTC")
    return pa.table({
        "event_id": pa.array([r[1] for r in rows]), "request_id": pa.array([r[2] for r in rows]),
        "job_id": pa.array([None] * len(rows), pa.string()),
        "event_time": pa.array([r[3] for r in rows], micros), "received_at": pa.array([r[4] for r in rows], micros),
        "event_date": pa.array([r[0] for r in rows]), "event_name": pa.array(["logged_in"] * len(rows)),
    })


def test_window_starts_at_the_oldest_day_present_and_days_limit_it() -> None:
    day = 86_400_000_000
    base = 1_767_225_600_000_000  # 2026-01-01T00:00Z
    rows = [("2026-01-01", "a", "r", base, base + 2_000_000), ("2026-01-01", "a", "r", base, base + 4_000_000),
            ("2026-01-05", "b", "r", base + 4 * day, None)]
    now = datetime.fromisoformat(NOW)
    figures = compute_figures(summarize_table(_table(rows)), [], [], days=14, now=now)
    assert [d["date"] for d in figures["per_day"]] == [f"2026-01-0{i}" for i in range(1, 6)]
    assert figures["totals"] == {**figures["totals"], "rows": 3, "distinct_events": 2, "duplicates": 1}
    assert figures["freshness"]["p50_seconds"] == 3.0  # rows without received_at are left out
    short = compute_figures(summarize_table(_table(rows)), [], [DeadLetter("VerifyAndDecode", "bad_signature", "2026-02-01T00:00:00Z")],
                            days=2, now=now)
    assert [d["date"] for d in short["per_day"]] == ["2026-01-04", "2026-01-05"]
    assert short["totals"]["rows"] == 1
    assert short["dead_letters"]["per_day"] == [{"date": "2026-02-01", "count": 1}]


def test_files_per_partition_and_mean_size() -> None:
    files = [FileInfo("2026-01-01", "logged_in", "a", 100), FileInfo("2026-01-01", "logged_in", "b", 300),
             FileInfo("2026-01-01", "x", "c", 50)]
    base = 1_767_225_600_000_000
    figures = compute_figures(summarize_table(_table([("2026-01-01", "a", "r", base, base)])), files, [], days=0,
                              now=datetime.now(timezone.utc))
    assert [(p["event_name"], p["files"], p["mean_file_bytes"]) for p in figures["partitions"]] == [
        ("logged_in", 2, 200.0), ("x", 1, 50.0)]
    assert figures["per_day"][0]["files"] == 3 and figures["per_day"][0]["partitions"] == 2


def test_unreadable_lake_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "events" / "event_date=2026-01-01" / "event_name=x"
    broken.mkdir(parents=True)
    (broken / "part-1.parquet").write_bytes(b"not parquet")
    code = cli_main(["report", f"--output={tmp_path / 'events'}", f"--html={tmp_path / 'r.html'}"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "event_name=x/part-1.parquet" in err
    assert not (tmp_path / "r.html").exists()


def test_empty_or_missing_lake_gives_an_empty_report(tmp_path: Path) -> None:
    js = tmp_path / "r.json"
    code = cli_main(["report", f"--output={tmp_path / 'nothing-here'}", f"--dead_letter_output={tmp_path / 'nor-here'}",
                     f"--html={tmp_path / 'r.html'}", f"--json={js}"])
    assert code == 0
    figures = json.loads(js.read_text())
    assert figures["totals"]["rows"] == figures["totals"]["files"] == figures["totals"]["dead_letters"] == 0
    assert figures["per_day"] == [] and figures["freshness"]["newest_event"] is None
    assert "No data in the window." in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("argv", [["report", "--output=x"], ["report", "--output=x", "--html=r.html", "--days=-1"]])
def test_bad_options_exit_2(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    try:
        code = cli_main(argv)
    except SystemExit as exc:  # argparse: a required option is missing
        code = exc.code
    assert code == 2
    assert not (tmp_path / "r.html").exists()


def test_a_file_replaced_while_the_report_reads_is_read_anew(tmp_path: Path) -> None:
    """Compaction (or a replay swapped in) replaces files between the listing and the read."""
    from pipeline.arrow import rows_to_parquet_bytes
    from pipeline.core.rows import COLUMN_INDEX
    from pipeline.report.lake import VanishedFile, list_parquet, read_partition, read_partition_fresh
    from schemas.events import ROW_COLUMNS

    def rows(n: int, offset: int) -> list[tuple]:
        out = []
        for i in range(n):
            row = [None] * len(ROW_COLUMNS)
            row[COLUMN_INDEX["event_id"]] = f"e{offset + i}"
            row[COLUMN_INDEX["source_format"]] = "canvas"
            row[COLUMN_INDEX["event_time"]] = 1_767_225_600_000_000 + i
            row[COLUMN_INDEX["signed"]] = False
            row[COLUMN_INDEX["event_name"]] = "logged_in"
            out.append(tuple(row))
        return out

    directory = tmp_path / "events" / "event_date=2026-01-01" / "event_name=logged_in"
    directory.mkdir(parents=True)
    (directory / "part-a.parquet").write_bytes(rows_to_parquet_bytes(rows(3, 0)))
    (directory / "part-b.parquet").write_bytes(rows_to_parquet_bytes(rows(4, 3)))
    stale = list_parquet(str(tmp_path / "events"))
    assert [f.path.rsplit("/", 1)[1] for f in stale] == ["part-a.parquet", "part-b.parquet"]
    # Compaction: one file with all 7 rows, then the two originals deleted.
    (directory / "part-compacted.parquet").write_bytes(rows_to_parquet_bytes(rows(3, 0) + rows(4, 3)))
    (directory / "part-a.parquet").unlink()
    (directory / "part-b.parquet").unlink()

    with pytest.raises(VanishedFile):
        read_partition(stale)
    table, files = read_partition_fresh(str(tmp_path / "events"), ("2026-01-01", "logged_in"), stale)
    assert table.num_rows == 7 and sorted(table.column("event_id").to_pylist()) == [f"e{i}" for i in range(7)]
    assert [f.path.rsplit("/", 1)[1] for f in files] == ["part-compacted.parquet"]


@pytest.mark.slow
def test_a_missing_bucket_is_an_error_not_an_empty_lake(gcs_emulator: Any, anonymous_gcs: None, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # A typo in the bucket (or no access to it) must not read as "no events": the operator
    # would take a healthy-looking empty report for a quiet day.
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    code = cli_main(["report", f"--output=gs://{missing}/events", f"--html={tmp_path / 'r.html'}"])
    assert code == 1
    assert missing in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
