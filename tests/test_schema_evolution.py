"""Schema changes are append-only: Parquet written before and after a change reads as one table.

The lake keeps every file ever written, so a column can only be appended, nullable: a
BigQuery external table (and DuckDB, and pyarrow) over old and new files then sees one
schema, with nulls where an old file has no such column. Files "before" are written here
with the file schema as it was before issue 12 (its first 38 columns, frozen below).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from pipeline.arrow import rows_to_table, table_to_parquet_bytes
from pipeline.core.rows import row_of
from schemas.events import FILE_SCHEMA, PARTITION_SCHEMA, ROW_COLUMNS, TABLE_SCHEMA

# The file columns released before issue 12, in order. Never edit: append below them instead.
COLUMNS_BEFORE_ISSUE_12 = (
    "event_id", "source_format", "event_time", "received_at", "request_id", "session_id", "job_id", "job_tag",
    "user_id", "real_user_id", "user_login", "user_sis_id", "user_account_id", "root_account_id",
    "root_account_uuid", "root_account_lti_guid", "context_type", "context_id", "context_role",
    "context_account_id", "context_sis_source_id", "hostname", "http_method", "url", "referrer", "client_ip",
    "user_agent", "time_zone", "developer_key_id", "caliper_event_id", "caliper_type", "caliper_action",
    "object_type", "object_id", "body", "metadata", "signed", "kid",
)
APPENDED = ("actor_iri", "ed_app_id", "federated_session_id", "sensor", "subscription_id", "delivery_extra")


def _row(event_id: str, **values: str) -> dict:
    row = dict.fromkeys(ROW_COLUMNS)
    row.update(event_id=event_id, source_format="caliper", event_time=datetime(2019, 11, 1, tzinfo=timezone.utc),
               signed=False, event_name="caliper_media_event_paused", **values)
    return row


def test_columns_are_only_appended_and_nullable() -> None:
    names = FILE_SCHEMA.names
    assert tuple(names[:len(COLUMNS_BEFORE_ISSUE_12)]) == COLUMNS_BEFORE_ISSUE_12
    assert tuple(names[len(COLUMNS_BEFORE_ISSUE_12):]) == APPENDED
    assert all(FILE_SCHEMA.field(n).nullable for n in APPENDED)


def test_files_before_and_after_read_as_one_table(tmp_path: Path) -> None:
    partition = tmp_path / "events" / "event_date=2019-11-01" / "event_name=caliper_media_event_paused"
    partition.mkdir(parents=True)
    old_schema = pa.schema([FILE_SCHEMA.field(n) for n in COLUMNS_BEFORE_ISSUE_12])
    old = rows_to_table([row_of(_row("old", actor_iri="dropped by the old writer"))])
    pq.write_table(old.select(list(COLUMNS_BEFORE_ISSUE_12)).cast(old_schema), partition / "part-a-old.parquet")
    new = _row("new", actor_iri="https://example.edu/users/1", sensor="https://example.edu/sensor")
    (partition / "part-b-new.parquet").write_bytes(table_to_parquet_bytes(rows_to_table([row_of(new)])))
    assert pq.read_schema(partition / "part-a-old.parquet").names == list(COLUMNS_BEFORE_ISSUE_12)

    # DuckDB, the local stand-in for the BigQuery external table (union_by_name: the table's
    # declared schema is the union; an old file has null in the appended columns).
    glob = f"{tmp_path}/events/**/*.parquet"
    got = duckdb.sql(
        f"select event_id, actor_iri, sensor, subscription_id, event_name, event_date "
        f"from read_parquet('{glob}', hive_partitioning=true, union_by_name=true) order by event_id").fetchall()
    assert [g[:4] for g in got] == [("new", "https://example.edu/users/1", "https://example.edu/sensor", None),
                                    ("old", None, None, None)]
    assert {g[4] for g in got} == {"caliper_media_event_paused"} and str(got[0][5]) == "2019-11-01"
    columns = duckdb.sql(f"describe select * from read_parquet('{glob}', hive_partitioning=true, "
                         "union_by_name=true)").fetchall()
    assert [c[0] for c in columns][:len(FILE_SCHEMA)] == FILE_SCHEMA.names

    # pyarrow with the declared table schema, as a reader that knows the current schema does.
    dataset = ds.dataset(tmp_path / "events", format="parquet", partitioning=ds.partitioning(
        PARTITION_SCHEMA, flavor="hive"), schema=TABLE_SCHEMA.remove_metadata())
    table = dataset.to_table().sort_by("event_id")
    assert table.schema.names == TABLE_SCHEMA.names
    assert table.column("actor_iri").to_pylist() == ["https://example.edu/users/1", None]
    assert table.column("event_id").to_pylist() == ["new", "old"]
