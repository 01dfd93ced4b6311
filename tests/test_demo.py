"""`python -m pipeline.demo` end to end: emulator, receiver, streaming pipeline, replay, summary, cleanup.

Expensive (about a minute): one test.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent


def test_demo_end_to_end(tmp_path: Path) -> None:
    output, workdir = tmp_path / "demo-output", tmp_path / ".demo"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.demo", f"--output={output}", f"--workdir={workdir}", "--deadline=200"],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout.replace("\r", "\n")

    # The summary: every distinct event once, duplicates dropped, forged events dead-lettered.
    assert "201 rows, 201 distinct events" in text
    assert re.search(r"duplicates dropped: 30 \(231 validly signed events posted, 201 rows written\)", text)
    assert re.search(r"VerifyAndDecode\s+bad_signature\s+2", text) and re.search(r"unknown_kid\s+2", text)
    assert "235 x HTTP 202, 1 x HTTP 400" in text
    assert "[##############################] 236/236" in text  # the progress bar finished

    # The files are really there, readable the way BigQuery external tables read them.
    rows = duckdb.sql(
        f"select count(*), count(distinct event_id) from read_parquet('{output}/events/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()[0]
    assert rows == (201, 201)
    assert (workdir / "pipeline.log").is_file()

    # It ends with the health report of its own output, whose figures agree with DuckDB's.
    report = re.search(r"health report: (\S+)", text).group(1)
    assert Path(report) == output / "report.html" and Path(report).read_text().startswith("<!DOCTYPE html>")
    figures = json.loads((output / "report.json").read_text())
    assert (figures["totals"]["rows"], figures["totals"]["distinct_events"]) == rows
    assert figures["totals"]["dead_letters"] == len(duckdb.sql(
        f"select * from read_json('{output}/dead-letters/**/*.jsonl', format='newline_delimited')").fetchall())

    # Everything the demo started is gone.
    pids = [int(p) for p in re.search(r"stopped everything the demo started \(pids ([\d ]+)\)", text).group(1).split()]
    assert len(pids) == 3
    assert [pid for pid in pids if os.path.exists(f"/proc/{pid}")] == []


def test_demo_interrupted_stops_everything(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) once everything is up: exit 130 and no process of the demo left."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.demo", f"--output={tmp_path / 'out'}", f"--workdir={tmp_path / 'work'}"],
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
