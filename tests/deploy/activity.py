"""Synthetic Canvas activity for the example-query tests, with its own ground truth.

``generate_activity`` writes plausible deliveries (built from the corpus's documented
examples, in both formats) for several users, courses and assignments across a few days, and
returns the plain facts behind each one (``Fact``). The query tests compute their expected
answers from these facts in Python, independently of the pipeline and of SQL, and compare.
The days are in 2031 so that the sample corpus (2018-2024) in the same output never falls
inside the queried date range.
"""
from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from tests.support.corpus import corpus_entries

DAYS = (date(2031, 3, 1), date(2031, 3, 2), date(2031, 3, 3))
USERS = {  # user_id -> time zone in their Canvas profile (None: not set)
    "21070000000000101": "America/Denver",
    "21070000000000102": "Asia/Tokyo",
    "21070000000000103": "Europe/Berlin",
    "21070000000000104": None,
    "21070000000000105": "Australia/Adelaide",  # a half-hour offset
    "21070000000000106": "America/Denver",
}
TEACHER = "21070000000000900"
COURSES = ("21070000000000565", "21070000000000566", "21070000000000567")
ASSIGNMENTS = ("21070000000000355", "21070000000000356", "21070000000000357")


@dataclass(frozen=True)
class Fact:
    """What one generated event is, in plain terms."""

    event_name: str
    source_format: str  # canvas | caliper
    user_id: str
    event_time: datetime  # UTC
    time_zone: str | None  # only Canvas-format events carry it
    course_id: str | None = None
    assignment_id: str | None = None


def _templates() -> dict[tuple[str, str], dict[str, Any]]:
    wanted = {"logged_in", "asset_accessed", "submission_created", "grade_change"}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in corpus_entries():
        key = (entry["format"], entry["doc_name"])
        if entry["doc_name"] in wanted and key not in found:
            found[key] = entry["payload"]
    return found


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _canvas(template: dict[str, Any], fact: Fact, rng: random.Random) -> dict[str, Any]:
    event = copy.deepcopy(template)
    meta = event["metadata"]
    meta.update(
        event_time=_iso(fact.event_time),
        request_id=str(uuid.UUID(int=rng.getrandbits(128))),
        user_id=fact.user_id,
        time_zone=fact.time_zone,
    )
    for key in ("context_type", "context_id", "context_role", "context_sis_source_id", "context_account_id"):
        meta.pop(key, None)
    if fact.course_id:
        meta.update(context_type="Course", context_id=fact.course_id, context_role="StudentEnrollment")
    if fact.event_name == "asset_accessed":
        event["body"]["asset_id"] = str(rng.randrange(1, 10**6))
    if fact.assignment_id:
        event["body"]["assignment_id"] = fact.assignment_id
        event["body"]["submission_id"] = str(rng.randrange(10**15, 10**16))
    _vary_body(event["body"], fact)
    return event


def _vary_body(fields: dict[str, Any], fact: Fact) -> None:
    """Body values the typed-view queries group by, varied per event (a generator of its own, so
    that the facts above stay what the main generator makes them)."""
    local = random.Random(fact.event_time.timestamp())
    if fact.event_name == "grade_change":
        fields["score"] = local.choice((3, 7.5, 10))
        fields["user_id"] = local.choice(sorted(USERS))
    if fact.event_name == "submission_created":
        fields["submission_type"] = local.choice(("online_text_entry", "online_upload", "online_url"))


def _caliper(template: dict[str, Any], fact: Fact, rng: random.Random) -> dict[str, Any]:
    envelope = copy.deepcopy(template)
    event = envelope["data"][0]
    event["id"] = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
    event["eventTime"] = _iso(fact.event_time)
    envelope["sendTime"] = _iso(fact.event_time + timedelta(seconds=2))
    event["actor"]["id"] = f"urn:instructure:canvas:user:{fact.user_id}"
    ext = event["actor"].setdefault("extensions", {}).setdefault("com.instructure.canvas", {})
    ext["entity_id"] = fact.user_id
    event.setdefault("extensions", {}).setdefault("com.instructure.canvas", {})["request_id"] = str(
        uuid.UUID(int=rng.getrandbits(128)))
    # No course context in the generated Caliper events: the facts would otherwise depend on
    # how group/membership nodes map to a context, which is the normalizer's business.
    event.pop("group", None)
    event.pop("membership", None)
    if fact.assignment_id:
        event["object"]["assignable"]["id"] = f"urn:instructure:canvas:assignment:{fact.assignment_id}"
        event["object"]["id"] = f"urn:instructure:canvas:submission:{rng.randrange(10**15, 10**16)}"
    if fact.event_name == "submission_created":  # its Canvas fields sit in the object's extensions
        _vary_body(event["object"].setdefault("extensions", {}).setdefault("com.instructure.canvas", {}), fact)
    return envelope


def generate_activity(seed: int = 20310301) -> tuple[list[dict[str, Any]], list[Fact]]:
    """Deliveries (payload dicts, one event each) and the facts behind them."""
    rng = random.Random(seed)
    templates = _templates()
    payloads: list[dict[str, Any]] = []
    facts: list[Fact] = []

    def add(fmt: str, name: str, user: str, moment: datetime, course: str | None = None,
            assignment: str | None = None) -> None:
        tz = USERS.get(user) if fmt == "canvas" else None
        fact = Fact(name, fmt, user, moment, tz, course, assignment)
        build = _canvas if fmt == "canvas" else _caliper
        payloads.append(build(templates[(fmt, name)], fact, rng))
        facts.append(fact)

    for day in DAYS:
        midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        for user in USERS:
            if rng.random() < 0.2:
                continue  # not everyone comes every day
            for _ in range(rng.randint(1, 3)):
                moment = midnight + timedelta(seconds=rng.randrange(86400), milliseconds=rng.randrange(1000))
                add(rng.choice(("canvas", "canvas", "caliper")), "logged_in", user, moment)
            for _ in range(rng.randint(0, 4)):
                moment = midnight + timedelta(seconds=rng.randrange(86400))
                add("canvas", "asset_accessed", user, moment, course=rng.choice(COURSES))
            if rng.random() < 0.6:
                moment = midnight + timedelta(seconds=rng.randrange(86400))
                add(rng.choice(("canvas", "caliper")), "submission_created", user, moment,
                    assignment=rng.choice(ASSIGNMENTS))
        for _ in range(rng.randint(2, 5)):
            moment = midnight + timedelta(seconds=rng.randrange(86400))
            add(rng.choice(("canvas", "caliper")), "grade_change", TEACHER, moment,
                course=None, assignment=rng.choice(ASSIGNMENTS))
    # Two logins two seconds either side of midnight UTC: the UTC date and the local hour
    # must each come out right.
    add("canvas", "logged_in", "21070000000000102", datetime(2031, 3, 1, 23, 59, 58, tzinfo=timezone.utc))
    add("canvas", "logged_in", "21070000000000101", datetime(2031, 3, 2, 0, 0, 2, tzinfo=timezone.utc))
    # Canvas grade_change events carry the course of the gradebook they were made in.
    add("canvas", "grade_change", TEACHER, datetime(2031, 3, 2, 15, 0, 0, tzinfo=timezone.utc),
        course=COURSES[0], assignment=ASSIGNMENTS[0])
    return payloads, facts
