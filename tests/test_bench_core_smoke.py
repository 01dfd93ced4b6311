"""bench/core.py runs end to end on a fresh clone (a smoke run: it prints figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "core.py"), "--bodies", "60", "--repeats", "2", "--chunk", "20"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "60 rows from 60 bodies" in result.stdout
    ratio = re.search(r"ratio core/floor \(per body\): ([0-9.]+)%", result.stdout)
    assert ratio and 0 < float(ratio.group(1)) < 200, result.stdout
    assert "median of 6 chunk ratios" in result.stdout
