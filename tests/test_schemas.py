"""The Arrow schema is the one source of truth: the BigQuery artefacts must agree with it."""
import json
import re

import pyarrow as pa
import pytest

from schemas import events as schema
from schemas.generate import BIGQUERY_DIR, main as generate_main

ISSUE_COLUMNS = {
    "event_id": pa.string(), "event_name": pa.string(), "source_format": pa.string(),
    "event_time": schema.TIMESTAMP, "received_at": schema.TIMESTAMP,
    "request_id": pa.string(), "session_id": pa.string(), "job_id": pa.string(), "job_tag": pa.string(),
    "user_id": pa.string(), "real_user_id": pa.string(), "user_login": pa.string(), "user_sis_id": pa.string(),
    "root_account_id": pa.string(), "root_account_uuid": pa.string(), "context_type": pa.string(),
    "context_id": pa.string(), "context_role": pa.string(), "hostname": pa.string(), "client_ip": pa.string(),
    "user_agent": pa.string(), "url": pa.string(), "caliper_type": pa.string(), "caliper_action": pa.string(),
    "object_type": pa.string(), "object_id": pa.string(), "body": pa.string(), "metadata": pa.string(),
    "signed": pa.bool_(), "kid": pa.string(), "event_date": pa.date32(),
}


def test_checked_in_files_are_generated_from_the_schema():
    assert generate_main(["--check"]) == 0


@pytest.mark.parametrize("name,type_", sorted(ISSUE_COLUMNS.items(), key=lambda kv: kv[0]))
def test_issue_columns_present_with_type(name, type_):
    assert schema.TABLE_SCHEMA.field(name).type == type_


def test_required_columns_not_null():
    for name in ("event_id", "event_name", "event_time", "event_date"):
        assert not schema.TABLE_SCHEMA.field(name).nullable
    assert schema.TIMESTAMP == pa.timestamp("us", tz="UTC")


def test_partition_columns_are_not_in_the_files():
    assert set(schema.PARTITION_COLUMNS) == {"event_date", "event_name"}
    assert not set(schema.PARTITION_COLUMNS) & set(schema.FILE_COLUMNS)
    assert schema.ROW_COLUMNS == schema.FILE_COLUMNS + ("event_name",)


def test_bigquery_json_matches_arrow():
    bq = json.loads((BIGQUERY_DIR / "events.json").read_text())
    assert [c["name"] for c in bq] == schema.TABLE_SCHEMA.names
    for column, field in zip(bq, schema.TABLE_SCHEMA):
        assert column["type"] == schema.bigquery_type(field.type)
        assert column["mode"] == ("NULLABLE" if field.nullable else "REQUIRED")
        assert column["description"]


def test_ddl_lists_file_columns_and_hive_partitions():
    ddl = (BIGQUERY_DIR / "events_external_table.sql").read_text()
    body, partitions = ddl.split("WITH PARTITION COLUMNS")
    for field in schema.FILE_SCHEMA:
        assert re.search(rf"^\s+{field.name} {schema.bigquery_type(field.type)}\b", body, re.M), field.name
    assert re.search(r"event_date DATE", partitions) and re.search(r"event_name STRING", partitions)
    assert "require_hive_partition_filter = true" in ddl
    assert "format = 'PARQUET'" in ddl


def test_unmapped_arrow_type_is_a_clear_error():
    with pytest.raises(ValueError, match="no BigQuery type"):
        schema.bigquery_type(pa.int8())


def test_row_type_is_the_schema_columns_in_order():
    import typing

    hints = typing.get_type_hints(schema.Row)
    assert schema.Row._fields == schema.ROW_COLUMNS == tuple(schema.FILE_SCHEMA.names) + ("event_name",)
    for field in schema.FILE_SCHEMA:
        python = int if field.type == schema.TIMESTAMP else bool if field.type == pa.bool_() else str
        assert hints[field.name] == (typing.Optional[python] if field.nullable else python), field.name
    assert hints["event_name"] is str
