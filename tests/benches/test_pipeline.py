"""bench/pipeline.py with --naive and --days runs end to end at a tiny scale (a smoke run: it
prints figures, it is not timed here)."""
from __future__ import annotations

import re
from pathlib import Path

from tests.support.bench import run_bench


def test_pipeline_bench_with_the_naive_pipeline_prints_its_figures(tmp_path: Path) -> None:
    stdout = run_bench("pipeline.py", "--events", "60", "--duplicates", "0.2", "--days", "3", "--naive",
                       "--workdir", str(tmp_path), timeout=300)
    assert re.search(r"^naive\s+[0-9.]+\s+[0-9,]+", stdout, re.M), stdout
    assert re.search(r"pipeline/naive throughput: [0-9.]+x", stdout), stdout
    partitions = int(re.search(r"pipeline output: ([0-9,]+) partitions", stdout).group(1))
    assert partitions > 3  # spread over 3 days x several event names
    assert "output check: rows_written == distinct events" in stdout
    assert list((tmp_path / "naive").glob("events*")), "the naive pipeline wrote its Parquet"
