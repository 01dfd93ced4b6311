"""bench/report.py runs end to end (a smoke run on a tiny lake: it prints figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_report_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--rows", "800", "--days", "2", "--names", "2",
         "--repeats", "1"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    # 800 rows over 4 partitions, plus 1 % duplicated in each: 4 x (200 + 2).
    assert "lake: 808 rows in 8 files" in result.stdout
    assert re.search(r"report / floor: [0-9.]+x the time; report / DuckDB: [0-9.]+x", result.stdout)
