"""bench/compact.py runs end to end at a tiny scale (a smoke run: it prints figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_compact_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compact.py"), "--scale", "0.002", "--names", "5", "--pipeline_events", "0",
         "--repeats", "1"],
        capture_output=True, text=True, timeout=180, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^files: \d+ before .*, 5 after", result.stdout, re.M), result.stdout
    assert re.search(r"compaction: [0-9.]+ s, [0-9,]+ rows/s, 100 duplicates removed", result.stdout), result.stdout
    assert "x faster (goal >= 10x)" in result.stdout
    assert "check: same answer before and after, one file per partition" in result.stdout
