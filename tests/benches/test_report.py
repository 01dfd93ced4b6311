"""bench/report.py runs end to end (a smoke run on a tiny lake: it prints figures, it is not timed here)."""
from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_report_bench_prints_its_figures() -> None:
    stdout = run_bench("report.py", "--rows", "800", "--days", "2", "--names", "2", "--repeats", "1", timeout=120)
    # 800 rows over 4 partitions, plus 1 % duplicated in each: 4 x (200 + 2).
    assert "lake: 808 rows in 8 files" in stdout
    assert re.search(r"report / floor: [0-9.]+x the time; report / DuckDB: [0-9.]+x", stdout)
