"""Fixtures for the deploy tests: one real batch-pipeline run, and its output as DuckDB sees it.

``pipeline_output`` runs ``python -m pipeline.main`` in batch mode once per test session over
the sample corpus plus the synthetic activity of ``tests/deploy/activity.py`` (unsigned JSON
lines), the way an operator replays archived deliveries. ``events_db`` exposes the Parquet
output as a DuckDB view ``events`` with hive partitioning, the local stand-in for the
BigQuery external table.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.support.corpus import corpus_payloads
from tests.deploy.activity import Fact, generate_activity

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PipelineOutput:
    output: Path
    dead_letter: Path
    facts: list[Fact]
    corpus_size: int


@pytest.fixture(scope="session")
def pipeline_output(tmp_path_factory: pytest.TempPathFactory) -> PipelineOutput:
    base = tmp_path_factory.mktemp("deploy-pipeline")
    payloads, facts = generate_activity()
    corpus = corpus_payloads()
    lines = [json.dumps(p, separators=(",", ":")) for p in corpus + payloads]
    (base / "in").mkdir()
    (base / "in" / "deliveries.jsonl").write_text("\n".join(lines) + "\n")
    output, dead_letter = base / "out", base / "dead"
    run_batch_pipeline(base / "in" / "*.jsonl", output, dead_letter)
    return PipelineOutput(output, dead_letter, facts, len(corpus))


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


@pytest.fixture(scope="session")
def events_db(pipeline_output: PipelineOutput) -> duckdb.DuckDBPyConnection:
    """The output as written, with the generated BigQuery views (tests/deploy/bigquery_views.py)."""
    from tests.deploy.bigquery_views import connect_views

    return connect_views(pipeline_output.output)


@dataclass(frozen=True)
class DuplicatedOutput:
    """A copy of the pipeline output where every event has been written again (as a replay or a
    late re-delivery leaves it): ``later`` copies of every file (received an hour after the
    original, kid ``later-copy``) and ``earlier`` copies of every third row of every other file
    (received an hour *before* the original, kid ``earlier-copy``: the view must keep those)."""

    output: Path
    earlier_event_ids: frozenset[str]
    extra_rows: int


@pytest.fixture(scope="session")
def duplicated_output(pipeline_output: PipelineOutput, tmp_path_factory: pytest.TempPathFactory) -> DuplicatedOutput:
    import datetime as dt
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = tmp_path_factory.mktemp("duplicated") / "out"
    shutil.copytree(pipeline_output.output, copy)
    earlier: set[str] = set()
    extra = 0
    for index, path in enumerate(sorted(copy.rglob("*.parquet"))):
        table = pq.read_table(path)
        copies = [("later", table, dt.timedelta(hours=1))]
        if index % 2 == 0:
            copies.append(("earlier", table.take(list(range(0, table.num_rows, 3))), -dt.timedelta(hours=1)))
        for label, rows, shift in copies:
            received = pa.array([None if r is None else r + shift for r in rows.column("received_at").to_pylist()],
                                type=table.schema.field("received_at").type)
            rows = rows.set_column(rows.schema.get_field_index("received_at"), table.schema.field("received_at"), received)
            rows = rows.set_column(rows.schema.get_field_index("kid"), table.schema.field("kid"),
                                   pa.array([f"{label}-copy"] * rows.num_rows, pa.string()))
            pq.write_table(rows, path.with_name(f"{label}-copy-{path.name}"))
            extra += rows.num_rows
            if label == "earlier":
                earlier.update(rows.column("event_id").to_pylist())
    return DuplicatedOutput(copy, frozenset(earlier), extra)


@dataclass(frozen=True)
class ReplayedOutput:
    """The first run's output plus the files of a second, later run of the pipeline over an
    overlapping part of the same deliveries (every other line), as a replay into the live prefix
    leaves it. The second run's files are renamed with a ``replay-`` prefix on the way in: two
    runs in one window would otherwise write the same file names (STACK.md, trap 12)."""

    output: Path
    replayed_lines: int


@pytest.fixture(scope="session")
def replayed_output(pipeline_output: PipelineOutput, tmp_path_factory: pytest.TempPathFactory) -> ReplayedOutput:
    import shutil

    base = tmp_path_factory.mktemp("replayed")
    lines = (pipeline_output.output.parent / "in" / "deliveries.jsonl").read_text().splitlines()[::2]
    (base / "in").mkdir()
    (base / "in" / "replay.jsonl").write_text("\n".join(lines) + "\n")
    run_batch_pipeline(base / "in" / "*.jsonl", base / "second", base / "dead")
    combined = base / "out"
    shutil.copytree(pipeline_output.output, combined)
    for path in (base / "second").rglob("*.parquet"):
        target = combined / path.relative_to(base / "second")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target.with_name("replay-" + path.name))
    return ReplayedOutput(combined, len(lines))
