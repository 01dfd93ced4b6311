"""The generated BigQuery views, transpiled to DuckDB over a local copy of the lake.

``connect_views(output)`` gives a DuckDB connection where ``events`` reads the Parquet output
with hive partitioning (the stand-in for the external table) and every view of
``schemas/bigquery/events_deduped_view.sql`` and ``views.sql`` exists under its BigQuery name.
The statements are the checked-in files, parsed as BigQuery by sqlglot and written as DuckDB,
with rewrites where sqlglot has no DuckDB translation: ``${PROJECT}.${DATASET}.X`` becomes ``X``,
``SAFE.DATETIME(ts, tz)`` becomes DuckDB's ``timezone(tz, ts)``, and
``SAFE.PARSE_JSON(text, wide_number_mode => ...)`` becomes ``json(text)``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

from schemas.generate import BIGQUERY_DIR
from tests.support.batch_lake import connect_events

PLACEHOLDER = "${PROJECT}.${DATASET}."
VIEW_FILES = ("events_deduped_view.sql", "views.sql")


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Table):
        name = node.sql("bigquery").strip("`")
        if name.startswith(PLACEHOLDER):
            return exp.to_table(name[len(PLACEHOLDER):])
    if isinstance(node, exp.SafeFunc) and isinstance(node.this, exp.Datetime):
        return exp.Anonymous(this="timezone", expressions=[node.this.expression, node.this.this])
    if isinstance(node, exp.SafeFunc) and isinstance(node.this, exp.ParseJSON):
        # JSON_QUERY's output is always valid JSON, and DuckDB keeps wide numbers exactly
        return exp.ParseJSON(this=node.this.this)
    return node


def bigquery_to_duckdb(sql: str) -> list[str]:
    """Each statement of a BigQuery script, as DuckDB SQL (view OPTIONS dropped)."""
    statements = []
    for tree in sqlglot.parse(sql, read="bigquery"):
        if tree is None:
            continue
        tree = tree.transform(_rewrite)
        properties = tree.args.get("properties")
        if properties is not None:
            properties.pop()
        statements.append(tree.sql("duckdb"))
    return statements


def view_statements() -> list[str]:
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    return [s for name in VIEW_FILES for s in bigquery_to_duckdb((BIGQUERY_DIR / name).read_text())]


def connect_views(output: Path, statements: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    con = connect_events(output)
    for statement in statements if statements is not None else view_statements():
        con.execute(statement)
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[dict]:
    cursor = con.execute(sql, params or {})
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]
