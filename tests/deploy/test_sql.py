"""The example queries in sql/: valid BigQuery, and right answers on real pipeline output.

Each query is parsed with sqlglot's BigQuery dialect, checked for the partition filter the
external table requires, transpiled to DuckDB and run against the Parquet that the batch
pipeline wrote (``events_db``). Expected answers come from the generated facts
(``tests/deploy/activity.py``), computed here in plain Python, never from SQL.
"""
from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlglot
from sqlglot import exp

from schemas.events import FILE_SCHEMA
from tests.deploy.activity import ASSIGNMENTS, COURSES, DAYS, Fact, generate_activity
from tests.support.batch_lake import PipelineOutput, connect_events

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
PLACEHOLDER = "${PROJECT}.${DATASET}."
PLACEHOLDER_TABLE = PLACEHOLDER + "events"
# What each query reads: the deduplicated view, except the query that looks for duplicates.
READS = {name: PLACEHOLDER + "events_deduped" for name in (
    "daily_active_users", "events_per_course_per_day", "assignment_activity", "logins_per_local_hour")}
READS["duplicate_events"] = PLACEHOLDER_TABLE
READS |= {"course_activity_by_user": PLACEHOLDER + "activity", "actions_per_local_hour": PLACEHOLDER + "activity",
          "grades_per_assignment": PLACEHOLDER + "grade_change",
          "submissions_per_type": PLACEHOLDER + "submission_created"}
QUERIES = ("daily_active_users", "events_per_course_per_day", "assignment_activity",
           "logins_per_local_hour", "duplicate_events", "course_activity_by_user", "actions_per_local_hour",
           "grades_per_assignment", "submissions_per_type")
RANGE = {"start_date": DAYS[0], "end_date": DAYS[-1]}


def parse(name: str) -> exp.Expression:
    return sqlglot.parse_one((SQL_DIR / f"{name}.sql").read_text(), read="bigquery")


def to_duckdb(name: str) -> str:
    """The query in DuckDB SQL, reading the local ``events`` table and views of the same names."""
    tree = parse(name)
    for table in list(tree.find_all(exp.Table)):
        quoted = table.sql("bigquery")
        if quoted.startswith(f"`{PLACEHOLDER}"):
            table.replace(exp.to_table(quoted.strip("`")[len(PLACEHOLDER):]))
    return tree.sql("duckdb")


def run(db: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    cursor = db.execute(to_duckdb(name), params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def in_range(facts: list[Fact]) -> list[Fact]:
    return [f for f in facts if DAYS[0] <= f.event_time.date() <= DAYS[-1]]


def test_every_sql_file_is_covered() -> None:
    assert sorted(p.stem for p in SQL_DIR.glob("*.sql")) == sorted(QUERIES)
    assert set(READS) == set(QUERIES)


@pytest.fixture(scope="module", params=["as written", "with duplicates"])
def lake_db(request: pytest.FixtureRequest, events_db: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """The example queries give the same answers on the output as written and on a copy where
    every event was written again (tests/deploy/conftest.py, duplicated_output)."""
    if request.param == "as written":
        return events_db
    from tests.deploy.bigquery_views import connect_views

    return connect_views(request.getfixturevalue("duplicated_output").output)


@pytest.mark.parametrize("name", QUERIES)
def test_query_is_bigquery_sql_over_the_events_table_with_a_partition_filter(name: str) -> None:
    tree = parse(name)
    assert isinstance(tree, (exp.Select, exp.Query)), type(tree)
    tables = {t.sql("bigquery") for t in tree.find_all(exp.Table)} - {"assignment_events"}
    assert tables == {f"`{READS[name]}`"}
    # require_hive_partition_filter: the WHERE that reads the table must bound event_date.
    filtered = [w for w in tree.find_all(exp.Where)
                if any(c.name == "event_date" for c in w.find_all(exp.Column))
                and any(isinstance(p, exp.Parameter) or isinstance(p, exp.Placeholder) for p in w.walk())]
    assert filtered, f"{name}.sql does not filter on event_date"
    # Round trip: what sqlglot understood prints back as BigQuery that parses again.
    again = sqlglot.parse_one(tree.sql("bigquery"), read="bigquery")
    assert again.sql("bigquery", comments=False) == tree.sql("bigquery", comments=False)


def test_output_files_carry_the_schema_the_external_table_declares(pipeline_output: PipelineOutput) -> None:
    files = list(pipeline_output.output.rglob("*.parquet"))
    for path in files[:20]:
        schema = pq.read_schema(path)
        assert [(f.name, f.type, f.nullable) for f in schema] == [
            (f.name, f.type, f.nullable) for f in FILE_SCHEMA], path
        assert path.parent.name.startswith("event_name=") and path.parent.parent.name.startswith("event_date=")


def test_daily_active_users(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput) -> None:
    facts = in_range(pipeline_output.facts)
    users: dict[date, set[str]] = defaultdict(set)
    counts: Counter[date] = Counter()
    for f in facts:
        users[f.event_time.date()].add(f.user_id)
        counts[f.event_time.date()] += 1
    expected = [{"event_date": d, "active_users": len(users[d]), "events": counts[d]} for d in sorted(users)]
    assert run(lake_db, "daily_active_users", **RANGE) == expected
    assert len(expected) == len(DAYS)


def test_events_per_course_per_day(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput) -> None:
    events: Counter[tuple[date, str]] = Counter()
    users: dict[tuple[date, str], set[str]] = defaultdict(set)
    for f in in_range(pipeline_output.facts):
        if f.course_id:
            key = (f.event_time.date(), f.course_id)
            events[key] += 1
            users[key].add(f.user_id)
    expected = sorted(
        ({"event_date": d, "course_id": c, "events": n, "active_users": len(users[(d, c)])}
         for (d, c), n in events.items()),
        key=lambda r: (r["event_date"], -r["events"], r["course_id"]))
    assert run(lake_db, "events_per_course_per_day", **RANGE) == expected
    assert len(expected) >= 6


def test_assignment_activity(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput) -> None:
    facts = [f for f in in_range(pipeline_output.facts) if f.assignment_id]
    assert {f.source_format for f in facts if f.event_name == "submission_created"} == {"canvas", "caliper"}
    assert {f.source_format for f in facts if f.event_name == "grade_change"} == {"canvas", "caliper"}
    expected = []
    for assignment in sorted({f.assignment_id for f in facts}):
        mine = [f for f in facts if f.assignment_id == assignment]
        submissions = [f for f in mine if f.event_name == "submission_created"]
        expected.append({
            "assignment_id": assignment,
            "submissions": len(submissions),
            "submitters": len({f.user_id for f in submissions}),
            "submission_updates": 0,
            "grade_changes": sum(f.event_name == "grade_change" for f in mine),
        })
    assert run(lake_db, "assignment_activity", **RANGE) == expected


@pytest.mark.parametrize("default_time_zone", ["UTC", "America/New_York"])
def test_logins_per_local_hour(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput,
                               default_time_zone: str) -> None:
    logins: Counter[int] = Counter()
    users: dict[int, set[str]] = defaultdict(set)
    for f in in_range(pipeline_output.facts):
        if f.event_name == "logged_in":
            hour = f.event_time.astimezone(ZoneInfo(f.time_zone or default_time_zone)).hour
            logins[hour] += 1
            users[hour].add(f.user_id)
    expected = [{"local_hour": h, "logins": logins[h], "users": len(users[h])} for h in sorted(logins)]
    got = run(lake_db, "logins_per_local_hour", **RANGE, default_time_zone=default_time_zone)
    assert got == expected
    # Both the user's own zone and the fallback are exercised.
    login_facts = [f for f in in_range(pipeline_output.facts) if f.event_name == "logged_in"]
    assert any(f.time_zone for f in login_facts) and any(not f.time_zone for f in login_facts)


def test_duplicate_events_none_after_the_pipeline_deduped(events_db: duckdb.DuckDBPyConnection) -> None:
    assert run(events_db, "duplicate_events", start_date=date(2000, 1, 1), end_date=date(2100, 1, 1)) == []


def test_duplicate_events_finds_rows_written_twice(pipeline_output: PipelineOutput, tmp_path: Path) -> None:
    """A second copy of one output file (as a replay over written data would leave) is reported."""
    copy = tmp_path / "out"
    shutil.copytree(pipeline_output.output, copy)
    logins = sorted(copy.glob("event_date=2031-03-02/event_name=logged_in/*.parquet"))
    assert logins
    duplicated = logins[0]
    shutil.copy(duplicated, duplicated.with_name("copy-" + duplicated.name))
    table = pq.read_table(duplicated)
    expected = sorted(
        ({"event_id": row["event_id"], "event_date": date(2031, 3, 2), "event_name": "logged_in", "copies": 2,
          "first_received_at": row["received_at"], "last_received_at": row["received_at"]}
         for row in table.to_pylist()),
        key=lambda r: r["event_id"])
    got = run(connect_events(copy), "duplicate_events", **RANGE)
    assert got == expected
    assert got


# ---- queries over the typed views and the activity view (schemas/views.py) -------------------

def _activity_payloads() -> list[tuple[Fact, dict[str, Any]]]:
    payloads, facts = generate_activity()
    return [(f, p) for f, p in zip(facts, payloads) if DAYS[0] <= f.event_time.date() <= DAYS[-1]]


def test_course_activity_by_user(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput) -> None:
    course = COURSES[0]
    groups: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for f in in_range(pipeline_output.facts):
        if f.course_id == course:
            groups[(f.user_id, f.event_name)].append(f.event_time)
    expected = [{"user_id": u, "event_name": n, "actions": len(t), "first_at": min(t), "last_at": max(t)}
                for (u, n), t in sorted(groups.items())]
    assert len({u for u, _ in groups}) >= 3 and len({n for _, n in groups}) >= 2
    assert run(lake_db, "course_activity_by_user", **RANGE, course_id=course) == expected


def test_actions_per_local_hour(lake_db: duckdb.DuckDBPyConnection, pipeline_output: PipelineOutput) -> None:
    actions: Counter[int] = Counter()
    users: dict[int, set[str]] = defaultdict(set)
    for f in in_range(pipeline_output.facts):
        if f.time_zone:
            hour = f.event_time.astimezone(ZoneInfo(f.time_zone)).hour
            actions[hour] += 1
            users[hour].add(f.user_id)
    expected = [{"local_hour": h, "actions": actions[h], "users": len(users[h])} for h in sorted(actions)]
    assert len(expected) >= 12
    assert run(lake_db, "actions_per_local_hour", **RANGE) == expected


def test_grades_per_assignment(lake_db: duckdb.DuckDBPyConnection) -> None:
    grades: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for f, payload in _activity_payloads():
        if f.event_name == "grade_change" and f.source_format == "canvas":
            body = payload["body"]
            grades[body["assignment_id"]].append((body["user_id"], float(body["score"])))
    expected = [{"assignment_id": a, "grade_changes": len(g), "students": len({u for u, _ in g}),
                 "mean_score": pytest.approx(sum(s for _, s in g) / len(g))} for a, g in sorted(grades.items())]
    assert len(expected) == len(ASSIGNMENTS) and any(e["students"] > 1 for e in expected)
    assert run(lake_db, "grades_per_assignment", **RANGE) == expected


def test_submissions_per_type(lake_db: duckdb.DuckDBPyConnection) -> None:
    groups: dict[tuple[date, str, str], set[str]] = defaultdict(set)
    counts: Counter[tuple[date, str, str]] = Counter()
    for f, payload in _activity_payloads():
        if f.event_name != "submission_created":
            continue
        if f.source_format == "canvas":
            kind = payload["body"]["submission_type"]
        else:
            kind = payload["data"][0]["object"]["extensions"]["com.instructure.canvas"]["submission_type"]
        key = (f.event_time.date(), kind, f.source_format)
        counts[key] += 1
        groups[key].add(f.user_id)
    expected = [{"event_date": d, "submission_type": k, "source_format": s, "submissions": counts[(d, k, s)],
                 "students": len(groups[(d, k, s)])} for d, k, s in sorted(counts)]
    assert len({k for _, k, _ in counts}) == 3 and {s for _, _, s in counts} == {"canvas", "caliper"}
    assert run(lake_db, "submissions_per_type", **RANGE) == expected
