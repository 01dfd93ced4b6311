"""bench/sqs_relay.py runs end to end (a smoke run on a few messages: it prints figures, it is not timed here)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sqs_relay_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sqs_relay.py"), "--messages", "20", "--repeat", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 messages of" in result.stdout
    for label in ("floor (receive + delete)", "relay (+ publish, confirm)"):
        assert re.search(rf"{re.escape(label)}:\s+\d+\s+msgs/s, median \d+", result.stdout), result.stdout
    assert re.search(r"relay / floor, per round:\s+\d+%\s+median \d+%", result.stdout), result.stdout
