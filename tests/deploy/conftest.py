"""Fixtures for the deploy tests: one real batch-pipeline run, and its output as DuckDB sees it.

``pipeline_output`` runs ``python -m pipeline.main`` in batch mode once per test session over
the sample corpus plus the synthetic activity of ``tests/deploy/activity.py`` (unsigned JSON
lines), the way an operator replays archived deliveries. ``events_db`` exposes the Parquet
output as a DuckDB view ``events`` with hive partitioning, the local stand-in for the
BigQuery external table.
"""
from __future__ import annotations

import json

import duckdb
import pytest

from tests.support.corpus import corpus_payloads
from tests.deploy.activity import generate_activity
from tests.support.batch_lake import (
    DuplicatedOutput, PipelineOutput, ReplayedOutput, run_batch_pipeline)


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


@pytest.fixture(scope="session")
def events_db(pipeline_output: PipelineOutput) -> duckdb.DuckDBPyConnection:
    """The output as written, with the generated BigQuery views (tests/deploy/bigquery_views.py)."""
    from tests.deploy.bigquery_views import connect_views

    return connect_views(pipeline_output.output)


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
