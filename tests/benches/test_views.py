"""bench/views.py runs end to end (a smoke run: it prints its figures, it is not timed here)."""
from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_views_bench_prints_its_figures() -> None:
    stdout = run_bench("views.py", "--rows", "400", "--days", "2", "--repeats", "1", timeout=180)
    assert re.search(r"lake: [0-9,]+ rows \([0-9,]+ duplicate copies\) of 400 events", stdout), stdout
    assert len(re.findall(r"ms +[0-9.]+x$", stdout, re.M)) == 3, stdout
    assert "events_deduped rows: 400 (= distinct events)" in stdout
