"""bench/core.py runs end to end on a fresh clone (a smoke run: it prints figures, it is not timed here)."""
from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_core_bench_prints_its_figures() -> None:
    stdout = run_bench("core.py", "--bodies", "60", "--repeats", "2", "--chunk", "20", timeout=120)
    assert "60 rows from 60 bodies" in stdout
    ratio = re.search(r"ratio core/floor \(per body\): ([0-9.]+)%", stdout)
    assert ratio and 0 < float(ratio.group(1)) < 200, stdout
    assert "median of 6 chunk ratios" in stdout
