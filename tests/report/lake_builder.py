"""A small lake made by the real batch pipeline, shaped to exercise every figure of the report.

Canvas-format corpus events re-timed over three UTC days, one hour missing on the middle day
(a gap), the last day ending early (incomplete hours are not judged); two batch runs into the
same output, the second replaying some deliveries again (duplicates still in the files, and a
second file in those partitions); garbage and unparseable times (dead letters of two stages).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from devkit.emulators import wait_until
from pipeline.main import run
from tests.pipeline.helpers import corpus_payloads

DAYS = ("2026-11-27", "2026-11-28", "2026-11-29")
EVENTS_PER_HOUR = 12
GAP = ("2026-11-28", 13)  # no events at all in this hour
LAST_HOUR = 20  # the last day ends at 20:xx UTC
REPLAYED = 25  # deliveries of run 1 sent again in run 2
GARBAGE = (b"garbage", b"<html>not an event</html>", b"{\"metadata\": 1")


@dataclass(frozen=True)
class Lake:
    output: Path
    dead_letters: Path
    deliveries: int
    expected_gap: tuple[str, int]


def _canvas_payloads() -> list[dict]:
    return [p for p in corpus_payloads() if "metadata" in p and "event_time" in p.get("metadata", {})]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def deliveries() -> list[bytes]:
    templates = _canvas_payloads()
    lines: list[bytes] = []
    index = 0
    for day in DAYS:
        start = datetime.fromisoformat(day).replace(tzinfo=timezone.utc)
        for hour in range(24):
            if (day, hour) == GAP or (day == DAYS[-1] and hour > LAST_HOUR):
                continue
            for k in range(EVENTS_PER_HOUR):
                payload = copy.deepcopy(templates[index % len(templates)])
                index += 1
                moment = start + timedelta(hours=hour, seconds=k * 250 + 7, milliseconds=index % 1000)
                payload["metadata"]["event_time"] = _stamp(moment)
                lines.append(json.dumps(payload).encode())
    return lines


def build(root: Path) -> Lake:
    output, dead = root / "events", root / "dead-letters"
    good = deliveries()
    bad_time = copy.deepcopy(_canvas_payloads()[0])
    bad_time["metadata"]["event_time"] = "not a time"
    first = good + list(GARBAGE)
    second = good[:REPLAYED] + [json.dumps(bad_time).encode()]
    for number, lines in enumerate((first, second), 1):
        source = root / f"deliveries-{number}.jsonl"
        source.write_bytes(b"\n".join(lines) + b"\n")
        # One-second windows: the second run's files get other names than the first's.
        code = run([f"--input_files={source}", f"--output={output}", f"--dead_letter_output={dead}",
                    "--allow_unsigned", "--window_seconds=1", "--runner=DirectRunner"])
        assert code == 0, f"batch run {number} failed"
        # A batch run stamps every delivery with its start time: the next run must start in a
        # later one-second window, or its files would take (and overwrite) the same names.
        finished = time.time()
        wait_until(lambda: int(time.time()) > int(finished), timeout=5, what="the next second", interval=0.05)
    return Lake(output, dead, len(first) + len(second), GAP)
