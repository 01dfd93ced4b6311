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
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.main", f"--input_files={base / 'in' / '*.jsonl'}",
         f"--output={output}", f"--dead_letter_output={dead_letter}", "--allow_unsigned",
         "--runner=DirectRunner"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(output.rglob("*.parquet")), "the pipeline wrote no Parquet"
    return PipelineOutput(output, dead_letter, facts, len(corpus))


def connect_events(output: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE VIEW events AS SELECT * FROM read_parquet("
        f"'{output}/**/*.parquet', hive_partitioning = true)")
    return con


@pytest.fixture(scope="session")
def events_db(pipeline_output: PipelineOutput) -> duckdb.DuckDBPyConnection:
    return connect_events(pipeline_output.output)
