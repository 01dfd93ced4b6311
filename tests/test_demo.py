"""`python -m devkit.demo` end to end: emulator, receiver, streaming pipeline, replay, summary, cleanup.

Expensive (about a minute): one test.
"""
from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from devkit.deliveries import event_kinds
from devkit.demo import Progress, bar

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


EVENTS, DUPLICATES, FORGED = 120, 30, 4  # 120 > the 114 (format, name) kinds: every kind appears


def test_demo_end_to_end(tmp_path: Path) -> None:
    output, workdir = tmp_path / "demo-output", tmp_path / ".demo"
    result = subprocess.run(
        [sys.executable, "-m", "devkit.demo", f"--output={output}", f"--workdir={workdir}", "--deadline=200",
         f"--events={EVENTS}", f"--duplicates={DUPLICATES}", f"--forged={FORGED}"],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    posted = EVENTS + DUPLICATES + FORGED + 1  # + one non-event

    # The summary: every distinct event once, duplicates dropped, forged events dead-lettered.
    assert f"{EVENTS} rows, {EVENTS} distinct events" in text
    assert (f"duplicates dropped: {DUPLICATES} ({EVENTS + DUPLICATES} validly signed events posted, "
            f"{EVENTS} rows written)") in text
    assert re.search(rf"VerifyAndDecode\s+bad_signature\s+{FORGED // 2}\b", text)
    assert re.search(rf"unknown_kid\s+{FORGED - FORGED // 2}\b", text)
    assert f"{posted - 1} x HTTP 202, 1 x HTTP 400" in text
    # Not a terminal: one line per stage, the progress bar's last state, no redrawn frames.
    assert "\r" not in text
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("posting")] == [f"posting   [{'#' * 30}] {posted}/{posted}"]
    waiting = [line for line in lines if line.startswith("waiting")]
    assert len(waiting) == 1 and f"[{'#' * 30}] {EVENTS}/{EVENTS} events in Parquet" in waiting[0]

    # The files are really there, readable the way BigQuery external tables read them, with
    # every documented event name in each format the generator knows.
    rows = duckdb.sql(
        f"select count(*), count(distinct event_id), count(distinct (source_format, event_name)) "
        f"from read_parquet('{output}/events/**/*.parquet', hive_partitioning=true)"
    ).fetchall()[0]
    assert rows == (EVENTS, EVENTS, len(event_kinds()))
    assert (workdir / "pipeline.log").is_file()

    # It ends with the health report of its own output, whose figures agree with DuckDB's.
    report = re.search(r"health report: (\S+)", text).group(1)
    assert Path(report) == output / "report.html" and Path(report).read_text().startswith("<!DOCTYPE html>")
    figures = json.loads((output / "report.json").read_text())
    assert (figures["totals"]["rows"], figures["totals"]["distinct_events"]) == rows[:2]
    assert figures["totals"]["dead_letters"] == len(duckdb.sql(
        f"select * from read_json('{output}/dead-letters/**/*.jsonl', format='newline_delimited')").fetchall())

    # Everything the demo started is gone.
    pids = [int(p) for p in re.search(r"stopped everything the demo started \(pids ([\d ]+)\)", text).group(1).split()]
    assert len(pids) == 3
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []


def test_progress_redraws_on_a_terminal_and_writes_one_line_per_stage_elsewhere() -> None:
    for tty in (True, False):
        stream = io.StringIO()
        line = Progress(stream, tty=tty)
        for done in range(1, 101):
            line.update(f"posting   {bar(done, 100)}")
        line.done()
        line = Progress(stream, tty=tty)
        line.update("waiting   1/2 ")
        line.update("waiting   2/2 ")
        line.done()
        written = stream.getvalue()
        if tty:
            assert written.count("\r") == 102 and written.endswith("waiting   2/2 \n")
        else:
            assert written == f"posting   [{'#' * 30}] 100/100\nwaiting   2/2\n"


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) once everything is up: exit 130 and no process of the demo left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devkit.demo", f"--output={tmp_path / 'out'}", f"--workdir={tmp_path / 'work'}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # blocks on the demo's own output, no polling
            lines.append(line)
            if line.startswith("receiver on"):
                break
        started = [int(m) for m in re.findall(r"\(pid (\d+)", "".join(lines))]
        assert len(started) == 3, lines
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted" in rest
    assert [pid for pid in started if os.path.exists(f"/proc/{pid}")] == []
