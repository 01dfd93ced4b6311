"""bench/views.py runs end to end (a smoke run: it prints its figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_views_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "views.py"), "--rows", "400", "--days", "2", "--repeats", "1"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"lake: [0-9,]+ rows \([0-9,]+ duplicate copies\) of 400 events", result.stdout), result.stdout
    assert len(re.findall(r"ms +[0-9.]+x$", result.stdout, re.M)) == 3, result.stdout
    assert "events_deduped rows: 400 (= distinct events)" in result.stdout
