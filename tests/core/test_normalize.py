"""normalized() over the whole example corpus, the CATALOG.md section 7 quirks, and fuzzing."""
from __future__ import annotations

import copy
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.caliper import derived_name, event_name, parse_urn, snake_case
from pipeline.core.decode import DecodedEvent, split_events
from pipeline.core.errors import ERROR_TYPES, EventError
from pipeline.core.identity import event_id
from pipeline.core.timestamps import UTC
from tests.support.corpus import corpus_entries
from schemas.events import FILE_COLUMNS, FILE_SCHEMA, REQUIRED_COLUMNS, ROW_COLUMNS
from tests.support.rows import normalized

SAMPLES = list(corpus_entries())
STRING_COLUMNS = [f.name for f in FILE_SCHEMA if f.type == pa.string()]
SECRET = re.compile(r"(?i)(?:access_token|verifier)=([^&#\s\"'\\]+)")


def _sample_id(sample: dict[str, Any]) -> str:
    return f"{sample['format']}-{sample['doc_name']}-{sample['example_index']}"


def _decoded(payload: dict[str, Any], *, signed: bool = False, kid: str | None = None) -> DecodedEvent:
    (decoded,) = split_events(copy.deepcopy(payload), signed=signed, kid=kid)
    return decoded


def _sample(fmt: str, doc_name: str, index: int = 0) -> dict[str, Any]:
    for sample in SAMPLES:
        if (sample["format"], sample["doc_name"], sample["example_index"]) == (fmt, doc_name, index):
            return sample
    raise LookupError((fmt, doc_name, index))


def _row(fmt: str, doc_name: str, index: int = 0) -> dict[str, Any]:
    return normalized(_decoded(_sample(fmt, doc_name, index)["payload"]))


def _canvas(metadata: dict[str, Any], body: Any = None) -> DecodedEvent:
    base = {"event_name": "thing_created", "event_time": "2019-11-01T19:11:01.163Z"}
    return DecodedEvent({"metadata": {**base, **metadata}, "body": body if body is not None else {}}, "canvas", False)


def test_corpus_has_the_documented_counts() -> None:
    assert sum(s["format"] == "canvas" for s in SAMPLES) == 130
    assert sum(s["format"] == "caliper" for s in SAMPLES) == 71


# --- every corpus payload ------------------------------------------------------------------


@pytest.mark.parametrize("sample", SAMPLES, ids=_sample_id)
def test_corpus_event_normalizes(sample: dict[str, Any]) -> None:
    received = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    decoded = _decoded(sample["payload"])
    row = normalized(decoded, received_at=received)

    assert tuple(row) == ROW_COLUMNS
    for column in REQUIRED_COLUMNS:
        if column != "event_date":
            assert row[column] is not None, column
    assert isinstance(row["event_time"], datetime) and row["event_time"].tzinfo is UTC
    assert row["received_at"] == received and row["received_at"].tzinfo is UTC
    assert row["source_format"] == sample["format"]
    assert row["signed"] is False and row["kid"] is None
    assert row["event_id"] == event_id(decoded.event)
    for column in STRING_COLUMNS:
        assert row[column] is None or type(row[column]) is str, column
    assert orjson.loads(row["body"]) is not None
    assert isinstance(orjson.loads(row["metadata"]), dict)

    if sample["format"] == "caliper":
        data = sample["payload"]["data"][0]
        assert row["event_name"] == sample["doc_name"]
        assert row["caliper_event_id"] == data["id"]
        assert row["caliper_type"] == data["type"] and row["caliper_action"] == data["action"]
        assert row["object_type"] == data["object"]["type"]
        # eventTime, never the envelope's sendTime
        assert row["event_time"] == datetime.fromisoformat(data["eventTime"])
        assert row["time_zone"] is None and row["user_account_id"] is None
    else:
        metadata = sample["payload"]["metadata"]
        assert row["event_name"] == metadata["event_name"]
        assert row["caliper_event_id"] is None and row["caliper_type"] is None
        for key in ("request_id", "session_id", "user_id", "context_id", "root_account_id", "job_id"):
            assert row[key] == metadata.get(key), key


@pytest.mark.parametrize("sample", SAMPLES, ids=_sample_id)
def test_no_secret_from_the_input_survives_anywhere_in_the_row(sample: dict[str, Any]) -> None:
    raw = orjson.dumps(sample["payload"]).decode()
    secrets = SECRET.findall(raw)
    row = normalized(_decoded(sample["payload"]))
    text = "\n".join(str(v) for v in row.values())
    for secret in secrets:
        assert secret not in text
    if secrets:
        assert "[REDACTED]" in text


def test_the_corpus_secrets_are_found_where_the_catalog_says() -> None:
    """Guards the scrub test above against vacuity: the corpus does carry tokens."""
    holders = {
        _sample_id(s)
        for s in SAMPLES
        if re.search(r"access_token=", orjson.dumps(s["payload"]).decode(), re.IGNORECASE)
    }
    assert {"canvas-course_section_created-0", "canvas-sis_batch_created-0",
            "caliper-enrollment_state_updated-0"} <= holders
    assert any(h.startswith("canvas-metadata-") for h in holders)


def test_all_rows_fit_the_arrow_file_schema() -> None:
    rows = [normalized(_decoded(s["payload"]), received_at=datetime.now(UTC)) for s in SAMPLES]
    table = pa.Table.from_pylist([{k: r[k] for k in FILE_COLUMNS} for r in rows], schema=FILE_SCHEMA)
    table.validate(full=True)
    assert table.num_rows == 201
    for field in FILE_SCHEMA:
        if not field.nullable:
            assert table.column(field.name).null_count == 0, field.name


def test_every_caliper_event_type_maps_back_to_its_canvas_name() -> None:
    caliper_names = {s["doc_name"] for s in SAMPLES if s["format"] == "caliper"}
    assert len(caliper_names) == 32
    mapped = {_row("caliper", name)["event_name"] for name in caliper_names}
    assert mapped == caliper_names


def _paired() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Canvas/Caliper examples of one doc name and index that are the same instance (same time)."""
    canvas = {(s["doc_name"], s["example_index"]): s for s in SAMPLES if s["format"] == "canvas"}
    pairs = []
    for s in SAMPLES:
        other = canvas.get((s["doc_name"], s["example_index"]))
        if s["format"] == "caliper" and other is not None:
            if other["payload"]["metadata"]["event_time"] == s["payload"]["data"][0]["eventTime"]:
                pairs.append((other, s))
    return pairs


PAIRS = _paired()


def test_there_are_enough_aligned_pairs() -> None:
    assert len(PAIRS) >= 20


@pytest.mark.parametrize(("canvas", "caliper"), PAIRS, ids=lambda s: _sample_id(s))
def test_caliper_fields_equal_the_paired_canvas_fields(canvas: dict[str, Any], caliper: dict[str, Any]) -> None:
    """The URN -> id rule gives the very string the Canvas format carries."""
    a = normalized(_decoded(canvas["payload"]))
    b = normalized(_decoded(caliper["payload"]))
    assert a["event_name"] == b["event_name"]
    assert a["event_time"] == b["event_time"]
    for column in ("user_id", "session_id", "request_id", "hostname", "client_ip", "user_agent"):
        if a[column] is not None:
            assert b[column] == a[column], column
    # actor extensions are missing from some Caliper examples (grade_change): compare when present
    for column in ("user_login", "user_sis_id", "root_account_id", "root_account_uuid"):
        if a[column] is not None and b[column] is not None:
            assert b[column] == a[column], column
    if a["context_role"] in ("TeacherEnrollment", "StudentEnrollment"):
        assert b["context_role"] == a["context_role"]
    if a["context_type"] == "Course" and b["context_type"] is not None:
        assert b["context_type"] == "Course"
        assert _same_canvas_id(a["context_id"], b["context_id"])


def _same_canvas_id(global_id: str, other: str) -> bool:
    """Equal, or ``other`` is the local part of ``global_id`` (some example URNs hold local ids: quirk 6)."""
    return other == global_id or int(global_id) % 10**13 == int(other)


def test_at_least_some_pairs_compare_user_ids() -> None:
    with_user = [p for p in PAIRS if p[0]["payload"]["metadata"].get("user_id")]
    assert len(with_user) >= 15


# --- CATALOG.md section 7 quirks ---------------------------------------------------------------


def test_quirk1_numeric_ids_become_decimal_strings() -> None:
    row = _row("canvas", "assignment_override_created")
    body = _sample("canvas", "assignment_override_created")["payload"]["body"]
    assert isinstance(body["assignment_override_id"], int)
    assert row["object_type"] == "assignment_override"
    assert row["object_id"] == str(body["assignment_override_id"])
    account = _row("canvas", "account_created")
    assert (account["object_type"], account["object_id"]) == ("account", "3")


def test_quirk1_numeric_metadata_ids_are_stringified_without_float_noise() -> None:
    row = normalized(_canvas({"user_id": 21070000000000001, "context_id": 565.0, "session_id": 1.5,
                             "developer_key_id": True}))
    assert row["user_id"] == "21070000000000001"
    assert row["context_id"] == "565"
    assert row["session_id"] == "1.5"
    assert row["developer_key_id"] == "true"


def test_quirk2_ids_are_opaque_strings_of_any_length() -> None:
    row = normalized(_canvas({"context_id": "210700000000101907", "user_id": "10000000000001",
                             "root_account_id": "0000123"}))
    assert (row["context_id"], row["user_id"], row["root_account_id"]) == (
        "210700000000101907", "10000000000001", "0000123")


def test_quirk3_ruby_timestamp_in_event_time() -> None:
    row = _row("canvas", "course_updated")
    assert _sample("canvas", "course_updated")["payload"]["metadata"]["event_time"] == "2019-11-05 07:38:00 -0800"
    assert row["event_time"] == datetime(2019, 11, 5, 15, 38, tzinfo=UTC)


def test_quirk3_offset_timestamp_in_event_time() -> None:
    sample = _sample("canvas", "conversation_forwarded")
    offset_time = sample["payload"]["metadata"]["event_time"]
    row = normalized(_decoded(sample["payload"]))
    assert row["event_time"] == datetime.fromisoformat(offset_time).astimezone(UTC)


def test_quirk3_timestamp_without_milliseconds() -> None:
    row = _row("canvas", "enrollment_created")
    assert row["event_time"] == datetime(2018, 10, 9, 21, 7, 33, tzinfo=UTC)


def test_quirk3_malformed_value_as_event_time_is_bad_timestamp() -> None:
    payload = copy.deepcopy(_sample("canvas", "user_updated")["payload"])
    malformed = payload["body"]["updated_at"]
    assert malformed == "019-11-01T19:11:01.163Z"
    # in the body it is just data: the event normalizes
    assert normalized(_decoded(payload))["event_name"] == "user_updated"
    payload["metadata"]["event_time"] = malformed
    with pytest.raises(EventError) as info:
        normalized(_decoded(payload))
    assert info.value.error_type == "bad_timestamp"
    assert "019-11-01T19:11:01.163Z" in info.value.message


@pytest.mark.parametrize("event_time", [None, "", "not a time", 1572635461])
def test_quirk3_missing_or_bad_caliper_event_time(event_time: object) -> None:
    payload = copy.deepcopy(_sample("caliper", "logged_in")["payload"])
    if event_time is None:
        del payload["data"][0]["eventTime"]
    else:
        payload["data"][0]["eventTime"] = event_time
    with pytest.raises(EventError) as info:
        normalized(_decoded(payload))
    assert info.value.error_type == "bad_timestamp"
    assert "eventTime" in info.value.message


def test_quirk4_reused_caliper_ids_still_give_distinct_event_ids() -> None:
    rows = [_row("caliper", n) for n in ("assignment_created", "assignment_override_created", "quiz_created")]
    assert len({r["caliper_event_id"] for r in rows}) == 1
    assert len({r["event_id"] for r in rows}) == 3


@pytest.mark.parametrize(
    ("urn", "expected"),
    [
        ("urn:instructure:canvas:user:21070000000000001", ("user", "21070000000000001")),
        ("urn:instructure:canvas:wikiPage:21070000000000144", ("wikiPage", "21070000000000144")),
        ("urn:instructure:canvas:quizzes:quiz:21070000000000144", ("quizzes:quiz", "21070000000000144")),
        ("urn:instructure:canvas:lti/tool_proxy:21070000000000144", ("lti/tool_proxy", "21070000000000144")),
        ("urn:instructure:canvas:session:ef686f8ed684abf78cbfa1f6a58112b5",
         ("session", "ef686f8ed684abf78cbfa1f6a58112b5")),
        ("urn:instructure:canvas:course:412~17342", ("course", "412~17342")),
        ("urn:instructure:canvas:course:565:section:4811", ("course_section", "4811")),
        ("urn:instructure:canvas:course:565:Learner:1", ("membership", None)),
        ("urn:instructure:canvas:course:565:section:4811:user:1", ("membership", None)),
        ("urn:instructure:canvas:group:5:membership:7", ("group:membership", "7")),
    ],
)
def test_quirk6_urn_shapes(urn: str, expected: tuple[str, str | None]) -> None:
    parsed = parse_urn(urn)
    assert parsed is not None
    assert (parsed.type, parsed.id) == expected


def test_quirk6_membership_urn_parts() -> None:
    learner = parse_urn("urn:instructure:canvas:course:565:section:4811:Learner:21070000000000001")
    assert learner is not None
    assert (learner.course_id, learner.section_id, learner.role, learner.user_id) == (
        "565", "4811", "Learner", "21070000000000001")
    no_role = parse_urn("urn:instructure:canvas:course:565:user:9")
    assert no_role is not None and no_role.role is None and no_role.user_id == "9"


@pytest.mark.parametrize("value", ["http://oxana.instructure.com/", "urn:uuid:1234", "urn:instructure:canvas:",
                                   "urn:instructure:canvas:user", "urn:instructure:canvas:user:", 42, None])
def test_quirk6_non_urns_are_not_parsed(value: object) -> None:
    assert parse_urn(value) is None


@pytest.mark.parametrize(("index", "expected"), [(34, "21070000000000144"), (35, "21070000000000144")])
def test_quirk6_namespaced_urn_objects(index: int, expected: str) -> None:
    row = _row("caliper", "asset_accessed", index)
    assert row["object_id"] == expected


def test_quirk7_system_event_has_job_and_no_request() -> None:
    row = _row("canvas", "course_updated")
    assert row["job_id"] == "1020020528469291"
    assert row["request_id"] is None and row["user_id"] is None and row["url"] is None


def test_quirk7_unauthenticated_caliper_hit_has_no_user() -> None:
    sample = _sample("caliper", "asset_accessed", 2)
    assert sample["payload"]["data"][0]["actor"]["type"] == "SoftwareApplication"
    row = normalized(_decoded(sample["payload"]))
    assert row["user_id"] is None and row["user_login"] is None
    assert row["object_id"] == "21070000000000144"


def test_quirk7_missing_group_and_session() -> None:
    row = _row("caliper", "user_account_association_created")
    assert row["session_id"] is None and row["context_type"] is None and row["context_id"] is None
    assert row["object_id"] == "21070000000000001"  # the account URN, no entity_id extension


def test_quirk7_explicit_nulls_stay_none() -> None:
    row = _row("canvas", "enrollment_created")
    assert _sample("canvas", "enrollment_created")["payload"]["metadata"]["referrer"] is None
    assert row["referrer"] is None


def test_quirk8_grade_override_example_keeps_its_metadata_name() -> None:
    assert _row("canvas", "grade_override")["event_name"] == "grade_change"


def test_quirk8_dotted_event_name_is_kept() -> None:
    row = _row("canvas", "outcomes.retry_outcome_alignment_clone")
    assert row["event_name"] == "outcomes.retry_outcome_alignment_clone"


def test_quirk9_empty_body() -> None:
    row = _row("canvas", "logged_out")
    assert row["body"] == "{}"
    assert row["object_type"] is None and row["object_id"] is None


def test_quirk9_nested_body_object() -> None:
    row = _row("canvas", "course_completed")
    assert (row["object_type"], row["object_id"]) == ("course", "565")


def test_quirk10_caliper_send_time_is_not_event_time() -> None:
    payload = _sample("caliper", "enrollment_created")["payload"]
    row = normalized(_decoded(payload))
    assert row["event_time"] == datetime(2018, 10, 9, 21, 7, 33, tzinfo=UTC)
    assert orjson.loads(row["metadata"])["sendTime"] == payload["sendTime"]


# --- Caliper specifics --------------------------------------------------------------------------


def test_caliper_section_group_uses_the_canvas_context_from_its_extensions() -> None:
    row = _row("caliper", "enrollment_created")
    assert (row["context_type"], row["context_id"]) == ("Course", "21070000000000565")


def test_caliper_section_group_without_extensions_is_a_course_section() -> None:
    payload = copy.deepcopy(_sample("caliper", "enrollment_created")["payload"])
    del payload["data"][0]["group"]["extensions"]
    row = normalized(_decoded(payload))
    assert (row["context_type"], row["context_id"]) == ("CourseSection", "21070000000004811")


def test_caliper_context_falls_back_to_the_membership_organization() -> None:
    row = _row("caliper", "syllabus_updated")
    assert (row["context_type"], row["context_id"]) == ("Course", "21070000000000565")


@pytest.mark.parametrize(("roles", "expected"), [(["Instructor"], "TeacherEnrollment"),
                                                 (["Learner"], "StudentEnrollment"),
                                                 (["Mentor"], "Mentor"), ([], None), (None, None)])
def test_caliper_roles(roles: Any, expected: str | None) -> None:
    payload = copy.deepcopy(_sample("caliper", "grade_change")["payload"])
    if roles is None:
        del payload["data"][0]["membership"]["roles"]
    else:
        payload["data"][0]["membership"]["roles"] = roles
    assert normalized(_decoded(payload))["context_role"] == expected


def test_caliper_asset_accessed_reads_request_fields_from_the_object() -> None:
    row = _row("caliper", "asset_accessed", 0)
    assert (row["http_method"], row["context_account_id"]) == ("GET", "210700000000000001")


def test_caliper_bare_event_has_empty_metadata() -> None:
    event = copy.deepcopy(_sample("caliper", "logged_in")["payload"]["data"][0])
    (decoded,) = split_events(event, signed=True, kid="k1")
    row = normalized(decoded)
    assert row["metadata"] == "{}"
    assert (row["signed"], row["kid"]) == (True, "k1")
    assert row["event_name"] == "logged_in"


@pytest.mark.parametrize(
    ("type_", "action", "obj", "expected"),
    [
        ("Event", "Modified", {"id": "urn:instructure:canvas:groupCategory:1", "type": "Entity"},
         "caliper_event_modified_entity_group_category"),
        ("Event", "Created", {"id": "urn:instructure:canvas:enrollment:1", "type": "Entity"},
         "caliper_event_created_entity_enrollment"),  # no extensions: enrollment or state? not guessed
        ("Event", "Created", {"id": "urn:instructure:canvas:account:1", "type": "Entity"},
         "caliper_event_created_entity_account"),
        ("Event", "Modified", {"id": "urn:instructure:canvas:course:1", "type": "Thing"},
         "caliper_event_modified_thing_course"),
        ("ToolUseEvent", "Used", {"id": "https://tool.example/", "type": "SoftwareApplication"},
         "caliper_tool_use_event_used_software_application"),
        ("Event", "Created", {}, "caliper_event_created_none"),
    ],
)
def test_unknown_caliper_combinations_get_derived_names(type_: str, action: str, obj: dict, expected: str) -> None:
    assert event_name(type_, action, obj) == expected


def test_snake_case_and_derived_name() -> None:
    assert snake_case("NavigationEvent") == "navigation_event"
    assert snake_case("lti/tool_proxy") == "lti_tool_proxy"
    assert snake_case("quizzes:quiz") == "quizzes_quiz"
    assert derived_name("A", "B", None, None) == "caliper_a_b_none"


# --- rejections -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "fmt", "error_type"),
    [
        ({"metadata": [], "body": {}}, "canvas", "invalid_field"),
        ({"metadata": {"event_time": "2019-11-01T00:00:00Z"}, "body": {}}, "canvas", "missing_field"),
        ({"metadata": {"event_name": "", "event_time": "2019-11-01T00:00:00Z"}, "body": {}}, "canvas", "missing_field"),
        ({"metadata": {"event_name": "x_created", "event_time": "2019-11-01T00:00:00Z"}, "body": [1]},
         "canvas", "invalid_field"),
        ({"metadata": {"event_name": "x_created", "event_time": "2019-11-01T00:00:00Z",
                       "user_id": {"id": 1}}, "body": {}}, "canvas", "invalid_field"),
        ({"metadata": {"event_name": "x_created"}, "body": {}}, "canvas", "bad_timestamp"),
        ({"type": "Event", "actor": {}, "eventTime": "2019-11-01T00:00:00Z"}, "caliper", "missing_field"),
        ({"type": ["Event"], "action": "Created", "eventTime": "2019-11-01T00:00:00Z"}, "caliper", "invalid_field"),
        ({"metadata": {}, "body": {}}, "json", "unknown_format"),
    ],
)
def test_rejections_are_typed(event: dict[str, Any], fmt: str, error_type: str) -> None:
    with pytest.raises(EventError) as info:
        normalized(DecodedEvent(event, fmt, False))
    assert info.value.error_type == error_type


def test_null_body_is_stored_as_null() -> None:
    row = normalized(DecodedEvent({"metadata": {"event_name": "x_created", "event_time": "2019-11-01T00:00:00Z"},
                                  "body": None}, "canvas", False))
    assert row["body"] is None and row["object_id"] is None


def test_naive_received_at_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        normalized(_canvas({}), received_at=datetime(2020, 1, 1))


def test_url_and_referrer_are_scrubbed() -> None:
    row = normalized(_canvas({"url": "https://x/api?ACCESS_TOKEN=abc123&y=1",
                             "referrer": "https://x/#access_token=def456"}))
    assert row["url"] == "https://x/api?ACCESS_TOKEN=[REDACTED]&y=1"
    assert row["referrer"] == "https://x/#access_token=[REDACTED]"
    assert "abc123" not in row["metadata"] and "def456" not in row["metadata"]


# --- fuzzing: only EventError escapes ------------------------------------------------------------
# Weighted so that most examples normalize (scalars where ids go, a valid time, a name)
# and a fair share hit each rejection; test_fuzz_strategies_reach_both_outcomes checks that.

_json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
_json = st.recursive(_json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
_mostly_scalar = st.integers(0, 15).flatmap(lambda i: _json if i == 0 else _json_scalars)
_valid_times = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1),
                            timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z"))
_timestamps = st.integers(0, 5).flatmap(lambda i: st.one_of(st.text(max_size=30), _json_scalars) if i == 0 else _valid_times)
_metadata_keys = ["request_id", "user_id", "context_id", "url", "referrer", "job_id",
                  "user_login", "context_type", "session_id"]
_metadata = st.fixed_dictionaries(
    {"event_time": _timestamps,
     "event_name": st.integers(0, 9).flatmap(lambda i: _json if i == 0 else st.text(min_size=1, max_size=20))},
    optional={k: _mostly_scalar for k in _metadata_keys},
)
_urn_or_json = st.one_of(
    _json, st.sampled_from(["urn:instructure:canvas:user:1", "urn:instructure:canvas:course:5:section:6",
                            "urn:instructure:canvas:course:5:Learner:1", "urn:instructure:canvas:quizzes:quiz:9",
                            "urn:instructure:canvas:enrollment:3", "urn:instructure:canvas:course:5"]))
_canvas_ext = st.fixed_dictionaries({}, optional={
    k: _mostly_scalar for k in ("entity_id", "context_type", "request_id", "request_url", "user_login",
                                "state", "type", "is_admin", "real_user_id", "http_method")})
_node = st.integers(0, 5).flatmap(lambda i: _json if i == 0 else _node_dict)
_node_dict = st.fixed_dictionaries({}, optional={
    "id": _urn_or_json, "type": st.one_of(st.sampled_from(["Entity", "CourseOffering", "Document"]), _json),
    "roles": st.one_of(st.lists(st.sampled_from(["Instructor", "Learner", "Mentor"]), max_size=2), _json),
    "organization": _json,
    "extensions": st.one_of(_json, st.fixed_dictionaries({"com.instructure.canvas": _canvas_ext}))})
_body = st.dictionaries(st.text(max_size=12), _json, max_size=5)
_caliper_event = st.fixed_dictionaries(
    {"eventTime": _timestamps,
     "type": st.one_of(st.sampled_from(["Event", "NavigationEvent", "SessionEvent", "ThreadEvent"]), _json),
     "action": st.one_of(st.sampled_from(["Created", "Modified", "NavigatedTo", "Deleted"]), _json)},
    optional={"object": _node, "actor": _node, "group": _node, "membership": _node, "session": _node,
              "extensions": _node, "referrer": _mostly_scalar, "id": _mostly_scalar},
)


def _only_event_errors(decoded: DecodedEvent) -> None:
    try:
        row = normalized(decoded)
    except EventError as exc:
        assert exc.error_type in ERROR_TYPES
        return
    assert tuple(row) == ROW_COLUMNS
    assert row["event_time"].tzinfo is UTC and row["event_name"]
    for column in STRING_COLUMNS:
        assert row[column] is None or type(row[column]) is str, column


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(metadata=st.one_of(_metadata, _json), body=st.one_of(_body, _json))
def test_fuzz_canvas_raises_only_event_error(metadata: Any, body: Any) -> None:
    _only_event_errors(DecodedEvent({"metadata": metadata, "body": body}, "canvas", False))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=_caliper_event, envelope=st.one_of(st.none(), st.dictionaries(st.text(max_size=8), _json, max_size=3)))
def test_fuzz_caliper_raises_only_event_error(event: dict[str, Any], envelope: Any) -> None:
    _only_event_errors(DecodedEvent(event, "caliper", False, None, envelope))


def test_fuzz_strategies_reach_both_outcomes() -> None:
    """Guards the fuzz tests against vacuity: some examples normalize, some are rejected."""
    outcomes: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(event=_caliper_event, metadata=_metadata, body=_body)
    def run(event: dict[str, Any], metadata: dict[str, Any], body: Any) -> None:
        for decoded in (DecodedEvent(event, "caliper", False),
                        DecodedEvent({"metadata": metadata, "body": body}, "canvas", False)):
            try:
                normalized(decoded)
                outcomes.add(decoded.source_format + ":ok")
            except EventError:
                outcomes.add(decoded.source_format + ":rejected")

    run()
    assert outcomes == {"caliper:ok", "caliper:rejected", "canvas:ok", "canvas:rejected"}
