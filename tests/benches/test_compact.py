"""bench/compact.py runs end to end at a tiny scale (a smoke run: it prints figures, it is not timed here)."""
from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_compact_bench_prints_its_figures() -> None:
    stdout = run_bench("compact.py", "--scale", "0.002", "--names", "5", "--pipeline_events", "0",
                       "--repeats", "1", timeout=180)
    assert re.search(r"^files: \d+ before .*, 5 after", stdout, re.M), stdout
    assert re.search(r"compaction: [0-9.]+ s, [0-9,]+ rows/s, 100 duplicates removed", stdout), stdout
    assert "x faster (goal >= 10x)" in stdout
    assert "check: same answer before and after, one file per partition" in stdout
