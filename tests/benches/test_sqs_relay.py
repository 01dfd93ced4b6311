"""bench/sqs_relay.py runs end to end (a smoke run on a few messages: it prints figures, it is not timed here)."""
from __future__ import annotations

import re

from tests.support.bench import run_bench


def test_sqs_relay_bench_prints_its_figures() -> None:
    stdout = run_bench("sqs_relay.py", "--messages", "20", "--repeat", "1", timeout=300)
    assert "20 messages of" in stdout
    for label in ("floor (receive + delete)", "relay (+ publish, confirm)"):
        assert re.search(rf"{re.escape(label)}:\s+\d+\s+msgs/s, median \d+", stdout), stdout
    assert re.search(r"relay / floor, per round:\s+\d+%\s+median \d+%", stdout), stdout
