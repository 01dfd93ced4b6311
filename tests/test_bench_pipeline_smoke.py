"""bench/pipeline.py with --naive and --days runs end to end at a tiny scale (a smoke run: it
prints figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pipeline_bench_with_the_naive_pipeline_prints_its_figures(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pipeline.py"), "--events", "60", "--duplicates", "0.2",
         "--days", "3", "--naive", "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^naive\s+[0-9.]+\s+[0-9,]+", result.stdout, re.M), result.stdout
    assert re.search(r"pipeline/naive throughput: [0-9.]+x", result.stdout), result.stdout
    partitions = int(re.search(r"pipeline output: ([0-9,]+) partitions", result.stdout).group(1))
    assert partitions > 3  # spread over 3 days x several event names
    assert "output check: rows_written == distinct events" in result.stdout
    assert list((tmp_path / "naive").glob("events*")), "the naive pipeline wrote its Parquet"
