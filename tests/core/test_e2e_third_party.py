"""Other producers' deliveries (../shared/third-party-events/), as a new user runs them.

Every file goes through ``canvas-events normalize --allow_unsigned`` (in process:
``normalize_lines``, the command's own loop). The expected rows and rejections were written
down by reading the payloads (the file's README says what each exercises), not by running
the code:

* ims-caliper-v1p1: lines 1-2 are envelopes of entities only (refused whole, missing_field);
  line 7 is IMS's mixed batch, 4 entities (items 0-3, each refused) then 3 events; lines 3-8
  otherwise hold 3+1+1+1+1 events; lines 9-55 are 47 bare events, every one valid 1.1.
* ims-caliper-v1p1-entities: 70 bare entities, none an event (unknown_format each).
* hmh-caliper-v1p1: line 11's eventTime is a serialized Java object (bad_timestamp); line 13
  is not JSON (comments in its source); the other 14 are events (line 2 with placeholder ids).
* openedx-caliper-v1p1 / v1p2: 19 and 32 bare events, all valid (referrer as an object in 1.1).
* umich-caliper-v1p1: 6 envelopes of one event (actor "" or an IRI string).
* umich-caliper-v1p0: 10 envelopes of one Caliper 1.0 event each (caliper_v1p0, item 0).
* canvas-plagiarism-webhook: one Canvas-format event with a subscription beside it.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import normalize_lines
from pipeline.core.caliper import MAX_DERIVED_NAME
from tests.support.corpus import corpus_payloads as sample_payloads, shared_folder

THIRD_PARTY = shared_folder("third-party-events")

# Every Canvas event name of Instructure's examples.
CANVAS_NAMES = {p["metadata"]["event_name"] for p in sample_payloads("canvas")}

# file -> (rows, rejections by error_type, line count)
EXPECTED: dict[str, tuple[int, dict[str, int], int]] = {
    "ims-caliper-v1p1.jsonl": (3 + 1 + 1 + 1 + 3 + 1 + 47, {"missing_field": 2 + 4}, 55),
    "ims-caliper-v1p1-entities.jsonl": (0, {"unknown_format": 70}, 70),
    "hmh-caliper-v1p1.jsonl": (14, {"bad_timestamp": 1, "invalid_json": 1}, 16),
    "openedx-caliper-v1p1.jsonl": (19, {}, 19),
    "openedx-caliper-v1p2.jsonl": (32, {}, 32),
    "umich-caliper-v1p1.jsonl": (6, {}, 6),
    "umich-caliper-v1p0.jsonl": (0, {"caliper_v1p0": 10}, 10),
    "canvas-plagiarism-webhook.jsonl": (1, {}, 1),
}


class Result:
    """What the command wrote for one file: rows by input line, and the rejection records."""

    def __init__(self, rows_by_line: dict[int, list[dict[str, Any]]], records: list[dict[str, Any]]):
        self.rows_by_line = rows_by_line
        self.records = records
        self.rows = [row for rows in rows_by_line.values() for row in rows]


def _run(name: str) -> Result:
    path = THIRD_PARTY / name
    rows_by_line: dict[int, list[dict[str, Any]]] = {}
    records: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        out, err = io.BytesIO(), io.BytesIO()
        rows, rejected = normalize_lines([(str(path), number, line)], verifier=None, allow_unsigned=True,
                                         max_bytes=1024 * 1024, out=out, err=err)
        rows_by_line[number] = [json.loads(row) for row in out.getvalue().splitlines()]
        refused = [json.loads(record) for record in err.getvalue().splitlines()]
        assert (len(rows_by_line[number]), len(refused)) == (rows, rejected)
        records += refused
    return Result(rows_by_line, records)


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {name: _run(name) for name in EXPECTED}


def test_the_files_are_the_ones_described() -> None:
    assert sorted(p.name for p in THIRD_PARTY.glob("*.jsonl")) == sorted(EXPECTED)
    for name, (_, _, lines) in EXPECTED.items():
        assert len((THIRD_PARTY / name).read_bytes().splitlines()) == lines, name


@pytest.mark.parametrize("name", list(EXPECTED))
def test_rows_and_rejections_per_file(name: str, results) -> None:
    rows, records = results[name].rows, results[name].records
    expected_rows, expected_rejections, _ = EXPECTED[name]
    assert len(rows) == expected_rows
    assert Counter(r["error_type"] for r in records) == Counter(expected_rejections)
    for record in records:  # every rejection says why and where
        assert record["message"] and record["line"] >= 1 and record["file"].endswith(name)


def test_ims_mixed_batch_keeps_its_events_and_names_each_entity(results) -> None:
    result = results["ims-caliper-v1p1.jsonl"]
    records = result.records
    line7 = [r for r in records if r["line"] == 7]
    assert [(r["error_type"], r["item"]) for r in line7] == [("missing_field", i) for i in range(4)]
    assert all(r["message"].startswith(f"data[{r['item']}]: ") for r in line7)
    assert "Person" in line7[0]["message"]
    whole = [r for r in records if r["line"] in (1, 2)]
    assert [("item" in r) for r in whole] == [False, False]  # entities only: refused whole, as before
    assert [r["caliper_event_id"] for r in result.rows_by_line[7]] == [
        "urn:uuid:c51570e4-f8ed-4c18-bb3a-dfe51b2cc594", "urn:uuid:dad88464-0c20-4a19-a1ba-ddf2f9c3ff33",
        "urn:uuid:a50ca17f-5971-47bb-8fca-4e6e6879001d"]


def test_thinned_event_reads_every_iri(results) -> None:
    # line 31: actor, object, group, session, referrer and edApp all given as IRI strings
    [row] = results["ims-caliper-v1p1.jsonl"].rows_by_line[31]
    assert row["caliper_event_id"] == "urn:uuid:71657137-8e6e-44f8-8499-e1c3df6810d2"
    assert row["actor_iri"] == "https://example.edu/users/554433"
    assert row["object_id"] == "https://example.edu/terms/201601/courses/7/sections/1/pages/2"
    assert row["context_id"] == "https://example.edu/terms/201601/courses/7/sections/1"
    assert row["session_id"] == "https://example.edu/sessions/1f6442a482de72ea6ad134943812bff564a76259"
    assert row["referrer"] == "https://example.edu/terms/201601/courses/7/sections/1/pages/1"
    assert row["ed_app_id"] == "https://example.edu"
    assert row["user_id"] is None  # not a Canvas user: the IRI is in actor_iri


def test_other_producers_never_get_canvas_names(results) -> None:
    for name, result in results.items():
        for row in result.rows:
            if row["source_format"] == "caliper":
                assert row["event_name"].startswith("caliper_"), (name, row["event_name"])
                assert row["event_name"] not in CANVAS_NAMES
                assert len(row["event_name"]) <= MAX_DERIVED_NAME
    [login] = results["ims-caliper-v1p1.jsonl"].rows_by_line[40]  # a SessionEvent/LoggedIn, not Canvas's
    assert login["event_name"] == "caliper_session_event_logged_in"


def test_openedx_referrer_objects_and_actor(results) -> None:
    rows = results["openedx-caliper-v1p1.jsonl"].rows
    assert all(r["referrer"] and r["referrer"].startswith("http://localhost:18000/") for r in rows)
    assert {r["actor_iri"] for r in rows} == {"32e08e30-f8ae-4ce2-94a8-c2bfe38a70cb"}
    assert all(r["user_id"] is None and r["sensor"] is None for r in rows)


def test_umich_lecture_capture(results) -> None:
    rows = results["umich-caliper-v1p1.jsonl"].rows
    first = rows[0]
    assert first["event_name"] == "caliper_media_event_ended"
    assert first["actor_iri"] is None and first["user_id"] is None  # actor sent as ""
    assert first["sensor"] == "https://example.edu/sensors/1"
    assert first["ed_app_id"] == "https://leccap.engin.umich.edu/leccap/"
    assert first["federated_session_id"] == "CeMXNmX3CKwEYiIJOxc5aBlZMc8pnYddSxkmLA"
    assert first["context_type"] == "Course"
    login = rows[4]
    assert login["event_name"] == "caliper_session_event_logged_in"
    assert login["actor_iri"] == "https://mcommunity.umich.edu/#profile:culmccor"
    assert login["object_id"] == "https://leccap.engin.umich.edu/leccap/"


def test_caliper_1_0_is_refused_as_such(results) -> None:
    records = results["umich-caliper-v1p0.jsonl"].records
    assert [(r["error_type"], r["item"], r["line"]) for r in records] == [("caliper_v1p0", 0, n) for n in range(1, 11)]


def test_webhook_subscription_is_kept(results) -> None:
    [row] = results["canvas-plagiarism-webhook.jsonl"].rows
    assert row["event_name"] == "submission_updated" and row["user_id"] == "10000000000000001"
    assert row["subscription_id"] == "ce95af25-a1c9-456a-a4b4-bae1233be2d8"
    assert json.loads(row["delivery_extra"]) == {"subscription": {
        "id": "ce95af25-a1c9-456a-a4b4-bae1233be2d8",
        "owner_id": "ltiToolProxy:e43eed0a-e7e5-48d6-a578-378c575a3ac3"}}
    assert "subscription" not in json.loads(row["metadata"])  # metadata stays Canvas's metadata
