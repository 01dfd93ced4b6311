"""The batch pipeline run as an operator replays archived deliveries, and its output as DuckDB sees it.

The deploy tests' session fixtures (tests/deploy/conftest.py) build these; the tests import the types.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb

from tests.deploy.activity import Fact

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PipelineOutput:
    output: Path
    dead_letter: Path
    facts: list[Fact]
    corpus_size: int


@dataclass(frozen=True)
class DuplicatedOutput:
    """A copy of the pipeline output where every event has been written again (as a replay or a
    late re-delivery leaves it): ``later`` copies of every file (received an hour after the
    original, kid ``later-copy``) and ``earlier`` copies of every third row of every other file
    (received an hour *before* the original, kid ``earlier-copy``: the view must keep those)."""

    output: Path
    earlier_event_ids: frozenset[str]
    extra_rows: int


@dataclass(frozen=True)
class ReplayedOutput:
    """The first run's output plus the files of a second, later run of the pipeline over an
    overlapping part of the same deliveries (every other line), as a replay into the live prefix
    leaves it. The second run's files are renamed with a ``replay-`` prefix on the way in: two
    runs in one window would otherwise write the same file names (STACK.md, trap 12)."""

    output: Path
    replayed_lines: int


def run_batch_pipeline(input_files: Path, output: Path, dead_letter: Path) -> None:
    """``python -m pipeline.main`` in batch mode over unsigned JSON lines, as an operator replays."""
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.main", f"--input_files={input_files}",
         f"--output={output}", f"--dead_letter_output={dead_letter}", "--allow_unsigned",
         "--runner=DirectRunner"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(output.rglob("*.parquet")), "the pipeline wrote no Parquet"


def connect_events(output: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE VIEW events AS SELECT * FROM read_parquet("
        f"'{output}/**/*.parquet', hive_partitioning = true)")
    return con
