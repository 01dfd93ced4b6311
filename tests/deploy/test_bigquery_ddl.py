"""The external-table DDL that `make bq-table` runs: BigQuery syntax, every schema column, hive options.

sqlglot 30.30 does not model ``CREATE EXTERNAL TABLE ... WITH PARTITION COLUMNS``: it falls back
to an opaque ``Command`` for the whole statement. So the statement is checked in its three
parts, each of which sqlglot parses as BigQuery: the column list, the partition column list
and the OPTIONS clause (each wrapped in a plain ``CREATE TABLE``), plus the text that joins them.
"""
from __future__ import annotations

import re

import sqlglot
from sqlglot import exp

from schemas.events import FILE_SCHEMA, PARTITION_SCHEMA, bigquery_type, external_table_ddl

DDL = external_table_ddl("my-proj.canvas_live_events.events", "gs://my-bucket/events")
SHAPE = re.compile(
    r"CREATE OR REPLACE EXTERNAL TABLE `(?P<table>[^`]+)`\n"
    r"\((?P<columns>.*)\)\n"
    r"WITH PARTITION COLUMNS \((?P<partitions>.*)\)\n"
    r"OPTIONS \((?P<options>.*)\);\n\Z",
    re.S,
)


def same_type(parsed: exp.DataType, bigquery_name: str) -> bool:
    """sqlglot prints BOOLEAN back as BOOL (both are BigQuery); compare as sqlglot types."""
    return parsed == exp.DataType.build(bigquery_name, dialect="bigquery")


def column_defs(body: str) -> list[exp.ColumnDef]:
    create = sqlglot.parse_one(f"CREATE TABLE t ({body})", read="bigquery")
    assert isinstance(create, exp.Create)
    return list(create.find_all(exp.ColumnDef))


def test_whole_statement_is_beyond_sqlglot_so_its_parts_are_checked() -> None:
    parsed = sqlglot.parse_one(DDL, read="bigquery")
    if not isinstance(parsed, exp.Command):  # a newer sqlglot understands it: check it whole
        assert {c.name for c in parsed.find_all(exp.ColumnDef)} >= set(FILE_SCHEMA.names)
    assert SHAPE.match(DDL), DDL[:300]


def test_columns_are_the_file_schema_with_types_and_descriptions() -> None:
    defs = column_defs(SHAPE.match(DDL)["columns"])
    assert [d.name for d in defs] == FILE_SCHEMA.names
    for d, field in zip(defs, FILE_SCHEMA):
        assert same_type(d.args["kind"], bigquery_type(field.type)), field.name
        # external tables take nullability from the files; the DDL declares none (schemas/events.py)
        assert not any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in d.constraints), field.name
        described = [c for c in d.constraints if isinstance(c.kind, exp.Properties)]
        assert described, f"{field.name} has no description"


def test_partition_columns_are_typed_hive_partitions() -> None:
    defs = column_defs(SHAPE.match(DDL)["partitions"])
    assert [(d.name, d.args["kind"].sql("bigquery")) for d in defs] == [
        (f.name, bigquery_type(f.type)) for f in PARTITION_SCHEMA]
    assert [(d.name, d.args["kind"].sql("bigquery")) for d in defs] == [("event_date", "DATE"), ("event_name", "STRING")]


def test_options_point_at_the_output_and_require_a_partition_filter() -> None:
    create = sqlglot.parse_one(f"CREATE TABLE t (x INT64) OPTIONS ({SHAPE.match(DDL)['options']})", read="bigquery")
    properties = create.args["properties"].expressions
    formats = [p.this.this for p in properties if isinstance(p, exp.FileFormatProperty)]
    assert formats == ["PARQUET"]
    options = {p.name: p.args["value"] for p in properties if type(p) is exp.Property}
    assert [u.this for u in options["uris"].expressions] == ["gs://my-bucket/events/*"]
    assert options["hive_partition_uri_prefix"].this == "gs://my-bucket/events"
    assert options["require_hive_partition_filter"].sql("bigquery").upper() == "TRUE"
    assert SHAPE.match(DDL)["table"] == "my-proj.canvas_live_events.events"
