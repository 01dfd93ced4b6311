"""The generated BigQuery views (schemas/views.py) on real pipeline output, transpiled to DuckDB.

* ``events_deduped``: on a lake where every event was written again (some copies received
  earlier than the original, some later), exactly one row per dedupe key remains, the copy
  received first; on the lake as written it drops nothing.
* the typed views: every documented body field of every event type is a column of its view with
  its type, and every example event of the corpus (both formats) reads back with the values
  computed here from the input JSON, independently of the SQL.
* ``activity``: one row per user action, local time as zoneinfo computes it.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from pipeline.core.errors import EventError
from pipeline.core.identity import dedupe_key, event_id
from pipeline.core.scrub import scrub_text
from pipeline.core.timestamps import parse_timestamp
from tests.support.corpus import corpus_entries
from schemas.canvas_fields import BODY_FIELDS
from schemas.events import TABLE_SCHEMA
from schemas.generate import BIGQUERY_DIR
from schemas.views import ACTIVITY_COLUMNS, ACTIVITY_VIEW, DEDUPED_VIEW, column_name, view_name
from tests.deploy.bigquery_views import connect_views, rows
from tests.support.batch_lake import DuplicatedOutput, PipelineOutput

DUCKDB_TYPES = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN",
                "TIMESTAMP": "TIMESTAMP WITH TIME ZONE", "JSON": "JSON"}


def raw_rows(output) -> list[dict[str, Any]]:
    """Every row of every file, read with pyarrow (not through DuckDB), event_name from the path."""
    found = []
    for path in sorted(output.rglob("*.parquet")):
        event_name = path.parent.name.removeprefix("event_name=")
        found += [{**row, "event_name": event_name} for row in pq.read_table(path).to_pylist()]
    return found


# ---- the SQL itself ---------------------------------------------------------------------------

def test_one_view_per_event_type_with_distinct_valid_names() -> None:
    script = (BIGQUERY_DIR / "views.sql").read_text()
    created = [t.this.name for t in sqlglot.parse(script, read="bigquery") if t is not None]
    expected = [view_name(n) for n in BODY_FIELDS] + [ACTIVITY_VIEW]
    assert created == expected
    assert len(set(created)) == len(created)
    assert not {"events", DEDUPED_VIEW} & set(created)
    assert "outcomes_retry_outcome_alignment_clone" in created  # the dotted event name


@pytest.mark.parametrize("name", ["events_deduped_view.sql", "views.sql"])
def test_views_are_bigquery_that_reads_only_the_dataset(name: str) -> None:
    for tree in sqlglot.parse((BIGQUERY_DIR / name).read_text(), read="bigquery"):
        assert isinstance(tree, exp.Create) and tree.kind == "VIEW"
        sources = {t.sql("bigquery") for t in tree.expression.find_all(exp.Table)}
        assert sources <= {"`${PROJECT}.${DATASET}.events`", "`${PROJECT}.${DATASET}.events_deduped`"}, sources
        again = sqlglot.parse_one(tree.sql("bigquery"), read="bigquery")
        assert again.sql("bigquery", comments=False) == tree.sql("bigquery", comments=False)


def test_views_carry_every_table_column_so_new_schema_columns_flow_through(events_db) -> None:
    for view in [DEDUPED_VIEW] + [view_name(n) for n in BODY_FIELDS]:
        columns = [r[0] for r in events_db.execute(f"DESCRIBE {view}").fetchall()]
        assert columns[:len(TABLE_SCHEMA.names)] == TABLE_SCHEMA.names, view
    activity = [r[0] for r in events_db.execute(f"DESCRIBE {ACTIVITY_VIEW}").fetchall()]
    assert activity == list(ACTIVITY_COLUMNS)


# ---- events_deduped ---------------------------------------------------------------------------

def test_deduped_view_drops_nothing_from_the_output_as_written(events_db, pipeline_output: PipelineOutput) -> None:
    written = raw_rows(pipeline_output.output)
    assert len({dedupe_key(r) for r in written}) == len(written)
    (count,) = events_db.execute(f"SELECT COUNT(*) FROM {DEDUPED_VIEW}").fetchone()
    assert count == len(written)


@pytest.fixture(scope="module")
def duplicated_db(duplicated_output: DuplicatedOutput) -> duckdb.DuckDBPyConnection:
    from tests.deploy.bigquery_views import connect_views

    return connect_views(duplicated_output.output)


def test_deduped_view_keeps_one_row_per_key_the_copy_received_first(
        duplicated_db, duplicated_output: DuplicatedOutput, pipeline_output: PipelineOutput) -> None:
    everything = raw_rows(duplicated_output.output)
    originals = raw_rows(pipeline_output.output)
    assert len(everything) == len(originals) + duplicated_output.extra_rows > 2 * len(originals)
    first: dict[str, dict[str, Any]] = {}
    for row in everything:
        key = dedupe_key(row)
        if key not in first or row["received_at"] < first[key]["received_at"]:
            first[key] = row
    got = rows(duplicated_db, f"SELECT event_id, request_id, job_id, received_at, kid, event_name FROM {DEDUPED_VIEW}")
    assert len(got) == len(first) == len(originals)
    assert Counter(dedupe_key(r) for r in got) == Counter({k: 1 for k in first})
    for row in got:
        expected = first[dedupe_key(row)]
        assert (row["received_at"], row["kid"]) == (expected["received_at"], expected["kid"])
    kept = Counter(r["kid"] for r in got)
    assert kept["earlier-copy"] == len(duplicated_output.earlier_event_ids) > 0
    assert kept["later-copy"] == 0
    # Both kinds of key are exercised: request events and job (system) events.
    assert any(r["request_id"] for r in got) and any(r["job_id"] and not r["request_id"] for r in got)


def test_deduped_view_after_a_second_run_over_overlapping_deliveries(replayed_output, pipeline_output) -> None:
    """Two real runs of the pipeline: the second (later) run's copies never reach the view."""
    first = raw_rows(pipeline_output.output)
    everything = raw_rows(replayed_output.output)
    second = len(everything) - len(first)
    assert replayed_output.replayed_lines // 2 < second <= replayed_output.replayed_lines
    first_received = {dedupe_key(r): r["received_at"] for r in first}
    assert {dedupe_key(r) for r in everything} == set(first_received)  # the replay is a subset
    con = connect_views(replayed_output.output)
    got = rows(con, f"SELECT event_id, request_id, job_id, received_at FROM {DEDUPED_VIEW}")
    assert len(got) == len(first)
    assert {dedupe_key(r): r["received_at"] for r in got} == first_received
    assert len({r["received_at"] for r in everything}) == 2  # two runs, each stamping its own time


def test_duplicate_events_query_still_sees_the_copies_in_the_table(duplicated_db) -> None:
    (copies,) = duplicated_db.execute(
        "SELECT COUNT(*) FROM (SELECT event_id FROM events GROUP BY ALL HAVING COUNT(*) > 1)").fetchone()
    (distinct,) = duplicated_db.execute(f"SELECT COUNT(DISTINCT event_id) FROM {DEDUPED_VIEW}").fetchone()
    assert copies == distinct


# ---- typed views ------------------------------------------------------------------------------

def test_every_documented_body_field_is_a_typed_column_of_its_view(events_db) -> None:
    for event_name, fields in BODY_FIELDS.items():
        described = {r[0]: r[1] for r in events_db.execute(f"DESCRIBE {view_name(event_name)}").fetchall()}
        for field in fields:
            column = column_name(field.name)
            assert column in described, (event_name, field.name)
            assert described[column] == DUCKDB_TYPES[field.type], (event_name, field, described[column])
    # And straight from the documentation's field map, where the shared corpus is present.
    fields_json = Path(__file__).resolve().parents[2].parent / "shared" / "canvas-events" / "fields.json"
    if fields_json.is_file():
        for event_name, entry in json.loads(fields_json.read_text())["canvas"].items():
            described = {r[0] for r in events_db.execute(f"DESCRIBE {view_name(event_name)}").fetchall()}
            documented = {column_name(k) for k in entry["body_fields"] + entry["schema_fields"]}
            assert documented <= described, (event_name, documented - described)


def _scrubbed(value: Any) -> Any:
    """What the pipeline stores of a body value: access_token values scrubbed (normalize.py)."""
    return json.loads(scrub_text(json.dumps(value)))


def _expected(value: Any, type_: str) -> Any:
    """The column value of one body value, computed from the JSON (not from SQL)."""
    if value is None:
        return None
    if type_ == "JSON":
        return value
    if isinstance(value, (dict, list)):
        return None
    if type_ == "STRING":
        return value if isinstance(value, str) else json.dumps(value)
    if type_ == "BOOL":
        return value if isinstance(value, bool) else {"true": True, "false": False}.get(str(value).lower())
    if type_ == "INT64":
        return int(value) if isinstance(value, int) or str(value).lstrip("-").isdigit() else None
    if type_ == "FLOAT64":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if type_ == "TIMESTAMP":
        try:
            return parse_timestamp(value, field="body")
        except EventError:
            return None
    raise AssertionError(type_)


# CATALOG.md section 4, "Where the Canvas fields went": Canvas body key -> Caliper object property.
CATALOG_RENAMES = {
    "title": "name", "name": "name", "description": "description", "body": "body", "due_at": "dateToSubmit",
    "unlock_at": "dateToShow", "points_possible": "maxScore", "attempt": "count", "content_type": "mediaType",
    "state_started_at": "startedAtTime", "created_at": "dateCreated", "updated_at": "dateModified",
}


def _caliper_body(event: dict[str, Any], event_name: str) -> dict[str, Any]:
    """The Canvas body fields a Caliper event carries (CATALOG.md section 4)."""
    obj = event.get("object") or {}
    found = dict((obj.get("extensions") or {}).get("com.instructure.canvas") or {})
    if (event_name.endswith("_created") and "created_at" not in dict(BODY_FIELDS[event_name])
            and obj.get("dateCreated") is not None):
        found["updated_at"] = obj["dateCreated"]  # "in assignment_created/attachment_created"
    for key, prop in CATALOG_RENAMES.items():
        if obj.get(prop) is not None:
            found[key] = obj[prop]
    return found


def _corpus_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(event_id, event_name, body fields) of every corpus event, from the input JSON."""
    cases = []
    for entry in corpus_entries():
        payload = entry["payload"]
        if entry["format"] == "canvas":
            cases.append((event_id(payload), payload["metadata"]["event_name"], payload.get("body") or {}))
        else:
            for event in payload["data"]:
                cases.append((event_id(event), entry["doc_name"], _caliper_body(event, entry["doc_name"])))
    return cases


def _value_in_view(got: Any, type_: str) -> Any:
    if type_ == "JSON" and got is not None:
        return json.loads(got)
    return got


def test_typed_views_read_every_corpus_event_as_its_input_json_says(events_db) -> None:
    checked: Counter[str] = Counter()
    for eid, event_name, body in _corpus_cases():
        fields = BODY_FIELDS[event_name]
        view = view_name(event_name)
        found = rows(events_db, f"SELECT * FROM {view} WHERE event_id = $id", {"id": eid})
        if not found:  # a Caliper event whose name the normalizer derives otherwise: in another view
            (other,) = events_db.execute(f"SELECT event_name FROM {DEDUPED_VIEW} WHERE event_id = $id",
                                         {"id": eid}).fetchone()
            assert other != event_name
            continue
        (row,) = found
        for field in fields:
            expected = _expected(_scrubbed(body.get(field.name)), field.type)
            got = _value_in_view(row[column_name(field.name)], field.type)
            assert got == expected, (event_name, field, body.get(field.name), got)
            checked[field.type] += expected is not None
    # Every type was read back from real values, in quantity.
    assert all(checked[t] >= 10 for t in DUCKDB_TYPES), checked
    assert sum(checked.values()) > 1000, checked


def test_odd_values_read_as_null_never_fail_the_query(events_db) -> None:
    # user_updated's example has updated_at = "019-11-01T19:11:01.163Z" (CATALOG.md quirk 3).
    got = rows(events_db, "SELECT updated_at, body FROM user_updated WHERE source_format = 'canvas'")
    assert got and any(json.loads(r["body"]).get("updated_at", "").startswith("019-") for r in got)
    assert all(r["updated_at"] is None for r in got if json.loads(r["body"]).get("updated_at", "").startswith("019-"))
    # Ruby Time#to_s and numeric offsets convert to UTC.
    (ruby,) = rows(events_db, "SELECT state_started_at FROM enrollment_state_created WHERE source_format = 'canvas'")
    assert ruby["state_started_at"] is not None and ruby["state_started_at"].utcoffset().total_seconds() == 0


# ---- activity ---------------------------------------------------------------------------------

def test_activity_is_one_row_per_user_action_with_local_time(events_db, pipeline_output: PipelineOutput) -> None:
    users = [r for r in raw_rows(pipeline_output.output) if r["user_id"] is not None]
    got = {r["event_id"]: r for r in rows(events_db, f"SELECT * FROM {ACTIVITY_VIEW}")}
    assert set(got) == {r["event_id"] for r in users}
    zoned = 0
    for raw in users:
        row = got[raw["event_id"]]
        assert (row["user_id"], row["event_name"], row["event_time"], row["source_format"]) == (
            raw["user_id"], raw["event_name"], raw["event_time"], raw["source_format"])
        assert row["course_id"] == (raw["context_id"] if raw["context_type"] == "Course" else None)
        if raw["time_zone"]:
            local = raw["event_time"].astimezone(ZoneInfo(raw["time_zone"])).replace(tzinfo=None)
            assert row["local_time"] == local, raw["event_id"]
            zoned += 1
        else:
            assert row["local_time"] is None
    assert zoned > 20
    assert {r["source_format"] for r in got.values()} == {"canvas", "caliper"}


def test_activity_matches_the_generated_facts(events_db, pipeline_output: PipelineOutput) -> None:
    facts = Counter((f.user_id, f.event_name, f.source_format, f.event_time) for f in pipeline_output.facts)
    got = Counter(
        (r["user_id"], r["event_name"], r["source_format"], r["event_time"])
        for r in rows(events_db, f"SELECT * FROM {ACTIVITY_VIEW} WHERE event_date >= DATE '2031-01-01'"))
    assert got == facts
    assert datetime(2031, 3, 1, 23, 59, 58, tzinfo=timezone.utc) in {k[3] for k in got}


# ---- the README shows the view queries as they are tested -------------------------------------

@pytest.mark.parametrize("name", ["course_activity_by_user", "actions_per_local_hour", "grades_per_assignment",
                                  "submissions_per_type"])
def test_readme_shows_each_view_query_as_tested(name: str) -> None:
    readme = (BIGQUERY_DIR.parents[1] / "README.md").read_text()
    text = (BIGQUERY_DIR.parents[1] / "sql" / f"{name}.sql").read_text()
    statement = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    assert f"```sql\n{statement}\n```" in readme
    assert "make bq-views" in readme


# ---- the view's time parsing agrees with the pipeline's parser --------------------------------

TIME_SHAPES = [
    "2019-11-05T07:38:00.218Z", "2018-10-09T21:07:33Z", "2020-03-30T11:18:51-06:00", "2020-03-30T11:18:51+0530",
    "2020-03-30T11:18:51+05", "2019-11-05 07:38:00 -0800", "2019-11-05 07:38:00 UTC", "2019-11-05T07:38:00,5Z",
    "2019-11-05T07:38:00.123456789Z", "2019-11-05 07:38:00.25+01:00", "2019-11-05T07:38:00", "019-11-01T19:11:01.163Z",
    "2019-11-05", "", "yesterday", "2019-13-05T07:38:00Z", "2019-11-05T24:38:00Z", "1574000000",
]


def test_view_time_parsing_agrees_with_pipeline_core_timestamps() -> None:
    from schemas.views import timestamp_sql
    from tests.deploy.bigquery_views import bigquery_to_duckdb

    (query,) = bigquery_to_duckdb(f"SELECT v, {timestamp_sql('v')} AS t FROM UNNEST(@shapes) AS v")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    got = dict(con.execute(query, {"shapes": TIME_SHAPES}).fetchall())
    parsed = 0
    for shape in TIME_SHAPES:
        try:
            expected = parse_timestamp(shape, field="t")
        except EventError:
            expected = None
        assert got[shape] == expected, (shape, got[shape], expected)
        parsed += expected is not None
    assert parsed >= 9
