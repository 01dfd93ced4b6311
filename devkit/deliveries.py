"""Generate realistic Canvas Live Events deliveries: both formats, signed or not, retries included.

The demo, the benchmarks and the tests need deliveries that look like what Canvas Data Services
posts, for every documented event name, without copying Instructure's examples into the
repository. This module writes them from what the project keeps itself:

* **Canvas format** ``{metadata, body}``: one per name of ``schemas.canvas_fields.BODY_FIELDS``
  (the documented event names, each with its body fields in document order and their BigQuery
  types), the body filled with values of those types. The metadata is that of a user-generated
  event (request, session, user, context fields) or, for every fourth event, of a system
  event raised by a background job (``job_id``/``job_tag``, no request or user fields), as
  CATALOG.md section 3 describes.
* **Caliper 1.1 format** ``{sensor, sendTime, dataVersion, data: [event]}`` for every event name
  the normalizer reads back from a Caliper ``type``/``action``/object (:mod:`pipeline.core.caliper`):
  the shape of each name is found by asking the normalizer's own ``event_name`` (see
  :func:`caliper_shapes`), so a generated Caliper event always normalizes to the name it was
  made for, and a name the normalizer stops knowing stops being generated.
* **Deliveries**: each distinct event once, signed like Canvas signs it (RS256 compact JWS with
  ``kid``, ``iss``, ``iat``) when a signer is given, else plain JSON; plus duplicates, half of
  them byte-identical retries (Canvas retrying after a timeout) and half the same event sent
  again as new bytes (re-signed with a later ``iat``, or the JSON re-serialized with its keys in
  another order), which dedupe must collapse.

Everything is deterministic for a given seed and ``now``. ``python -m devkit.deliveries --help``
writes deliveries (one body per line) and the JWKS that verifies them.
"""
from __future__ import annotations

import argparse
import copy
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import orjson

from devkit.signing import DemoSigner
from pipeline.contract import DEFAULT_ISSUER
from pipeline.core import caliper
from pipeline.core.timestamps import to_iso
from schemas.canvas_fields import BODY_FIELDS

FORMATS = ("canvas", "caliper")
CALIPER_CONTEXT = "http://purl.imsglobal.org/ctx/caliper/v1p1"
HOSTNAME = "canvas.example.edu"
ROOT_ACCOUNT_ID = "21070000000000001"
ROOT_ACCOUNT_UUID = "Xk3uN0vF1bYwq8TzR5mLpA9sGhJ2cVdE4oWiKyQa"
LTI_GUID = f"4f1c2e8a9b0d7f6e5a4c3b2d1e0f9a8b7c6d5e4f.{HOSTNAME}"
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "CanvasStudent/7.7.0 (iPhone; iOS 17.1.1; Scale/3.00)",
)
TIME_ZONES = ("America/Chicago", "America/New_York", "Europe/London", "Australia/Sydney", None)
ROLES = ("StudentEnrollment", "TeacherEnrollment", "TaEnrollment", "AccountAdmin")
CALIPER_ROLES = {"StudentEnrollment": "Learner", "TeacherEnrollment": "Instructor"}
WORDS = ("week", "essay", "lab", "reading", "quiz", "project", "final", "draft", "notes", "intro", "review")
# Caliper object types by URN type segment, as Instructure renders them (others are Entity).
OBJECT_TYPES = {
    "assignment": "AssignableDigitalResource", "attachment": "Document", "course": "CourseOffering",
    "discussion": "Thread", "discussionEntry": "Message", "group": "Group",
    "groupMembership": "Membership", "quiz": "Assessment", "quizzes:quiz_submission": "Attempt",
    "submission": "Attempt", "wikiPage": "Page",
}
# URN type segments of the objects of events named by their (type, action) alone.
OBJECT_URNS = {
    "asset_accessed": "wikiPage", "grade_change": "submission", "logged_in": "pseudonym",
    "logged_out": "pseudonym", "quiz_submitted": "quizzes:quiz_submission", "discussion_topic_created": "discussion",
}


class CaliperShape(NamedTuple):
    """What a Caliper event of one Canvas name is made of."""

    type: str
    action: str
    object_type: str
    urn_type: str


def _camel(text: str) -> str:
    head, *rest = text.split("_")
    return head + "".join(part.title() for part in rest)


def _trial_object(name: str, shape: CaliperShape) -> dict[str, Any]:
    extension = {field.name: True for field in BODY_FIELDS.get(name, ())}
    return {"id": f"{caliper.URN_PREFIX}{shape.urn_type}:1", "type": shape.object_type,
            "extensions": {caliper.CANVAS_EXTENSION: extension}}


@lru_cache(maxsize=1)
def caliper_shapes() -> dict[str, CaliperShape]:
    """Canvas event name -> Caliper shape, for every name the normalizer derives from Caliper.

    The candidates are the normalizer's own tables (caliper.py): (type, action) pairs that name
    an event alone, and plain ``Event`` actions on a URN type. Each candidate is tried with the
    name's body fields as object extensions and a few object types; a shape is kept only when
    ``caliper.event_name`` gives back that very name.
    """
    candidates: list[tuple[str, str, str | None]] = [
        (type_, action, None) for type_, action in caliper._BY_TYPE_ACTION
    ] + [("Event", action, urn_type) for action, urn_type in caliper._EVENT_BY_ACTION_URN]
    shapes: dict[str, CaliperShape] = {}
    for name in BODY_FIELDS:
        for type_, action, urn_type in candidates:
            urn = urn_type or OBJECT_URNS.get(name) or _camel(name.rpartition("_")[0])
            for object_type in dict.fromkeys((OBJECT_TYPES.get(urn, "Entity"), "CourseOffering", "Document")):
                shape = CaliperShape(type_, action, object_type, urn)
                if caliper.event_name(type_, action, _trial_object(name, shape)) == name:
                    shapes.setdefault(name, shape)
    return shapes


def _iso(moment: datetime) -> str:
    """Canvas's timestamp form: UTC, milliseconds, ``Z``."""
    return to_iso(moment, milliseconds=True)


class _Maker:
    """Values for one event, all drawn from one seeded random generator."""

    def __init__(self, rng: random.Random, now: datetime):
        self.rng = rng
        # Live events arrive seconds after they happen: event times lie in the hour before now.
        self.event_time = now - timedelta(seconds=rng.randrange(0, 3600), milliseconds=rng.randrange(1000))
        self.user_id = self.canvas_id()
        self.course_id = self.canvas_id()

    def canvas_id(self) -> str:
        return f"2107{self.rng.randrange(10**12, 10**13):013d}"

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def text(self, words: int = 3) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(words)).capitalize()

    def value(self, field_name: str, bigquery_type: str) -> Any:
        rng = self.rng
        if bigquery_type == "BOOL":
            return rng.random() < 0.5
        if bigquery_type == "INT64":
            return rng.randrange(0, 100)
        if bigquery_type == "FLOAT64":
            return round(rng.uniform(0, 100), 1)
        if bigquery_type == "TIMESTAMP":
            return _iso(self.event_time - timedelta(minutes=rng.randrange(0, 10_000)))
        if bigquery_type == "JSON":
            return {"id": self.canvas_id(), "name": self.text(2)}
        if field_name == "id" or field_name.endswith("_id"):
            return self.canvas_id()
        if field_name.endswith("_type"):
            return rng.choice(("Course", "Account", "Group"))
        if field_name == "workflow_state":
            return rng.choice(("active", "published", "unpublished", "deleted"))
        if field_name.endswith("url"):
            return f"https://{HOSTNAME}/courses/{self.course_id}/{rng.choice(WORDS)}"
        if field_name.endswith("uuid"):
            return self.uuid().replace("-", "")[:40]
        return self.text()

    def body(self, name: str) -> dict[str, Any]:
        return {field.name: self.value(field.name, field.type) for field in BODY_FIELDS[name]}

    def request(self) -> dict[str, Any]:
        """The request and user fields of a user-generated event (CATALOG.md section 3)."""
        rng = self.rng
        role = rng.choice(ROLES)
        token = f"?access_token={self.uuid()}" if rng.random() < 0.05 else ""  # scrubbed before storage
        return {
            "request_id": self.uuid(),
            "session_id": self.uuid().replace("-", ""),
            "hostname": HOSTNAME,
            "http_method": rng.choice(("GET", "POST", "PUT")),
            "url": f"https://{HOSTNAME}/api/v1/courses/{self.course_id}{token}",
            "referrer": rng.choice((None, f"https://{HOSTNAME}/courses/{self.course_id}")),
            "user_agent": rng.choice(USER_AGENTS),
            "client_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "user_id": self.user_id,
            "user_login": f"user{self.user_id[-5:]}@example.edu",
            "user_sis_id": rng.choice((None, f"SIS{self.user_id[-6:]}")),
            "user_account_id": self.canvas_id(),
            "time_zone": rng.choice(TIME_ZONES),
            "context_type": "Course",
            "context_id": self.course_id,
            "context_sis_source_id": rng.choice((None, f"COURSE-{self.course_id[-4:]}")),
            "context_account_id": self.canvas_id(),
            "context_role": role,
        }


def canvas_event(name: str, rng: random.Random, serial: int, now: datetime) -> dict[str, Any]:
    """One Canvas-format event of ``name``; every fourth one raised by a background job."""
    make = _Maker(rng, now)
    metadata: dict[str, Any] = {
        "producer": "canvas",
        "root_account_id": ROOT_ACCOUNT_ID,
        "root_account_uuid": ROOT_ACCOUNT_UUID,
        "root_account_lti_guid": LTI_GUID,
        "event_name": name,
        "event_time": _iso(make.event_time),
    }
    if serial % 4 == 3:
        job_class = "".join(part.title() for part in name.split("_")[:-1]) or "Canvas"
        metadata = {"job_id": make.canvas_id(), "job_tag": f"{job_class}#perform", **metadata}
    else:
        metadata.update(make.request())
    return {"metadata": metadata, "body": make.body(name)}


def caliper_envelope(name: str, rng: random.Random, serial: int, now: datetime) -> dict[str, Any]:
    """A Caliper 1.1 envelope holding one event that normalizes to ``name`` (see caliper_shapes)."""
    shape = caliper_shapes()[name]
    make = _Maker(rng, now)
    request = make.request()
    object_id = make.canvas_id()
    extension = {**make.body(name), "entity_id": object_id}
    course_urn = f"{caliper.URN_PREFIX}course:{make.course_id}"
    membership: dict[str, Any] = {
        "id": f"{course_urn}:{CALIPER_ROLES.get(request['context_role'], 'user')}:{make.user_id}",
        "type": "Membership",
        "member": {"id": f"{caliper.URN_PREFIX}user:{make.user_id}", "type": "Person"},
        "organization": {"id": course_urn, "type": "CourseOffering"},
    }
    if request["context_role"] in CALIPER_ROLES:
        membership["roles"] = [CALIPER_ROLES[request["context_role"]]]
    event: dict[str, Any] = {
        "@context": CALIPER_CONTEXT,
        "id": f"urn:uuid:{make.uuid()}",
        "type": shape.type,
        "actor": {
            "id": f"{caliper.URN_PREFIX}user:{make.user_id}",
            "type": "Person",
            "extensions": {caliper.CANVAS_EXTENSION: {
                "user_login": request["user_login"], "user_sis_id": request["user_sis_id"],
                "root_account_id": ROOT_ACCOUNT_ID, "root_account_lti_guid": LTI_GUID,
                "root_account_uuid": ROOT_ACCOUNT_UUID, "entity_id": make.user_id,
            }},
        },
        "action": shape.action,
        "object": {
            "id": f"{caliper.URN_PREFIX}{shape.urn_type}:{object_id}",
            "type": shape.object_type,
            "name": make.text(),
            "extensions": {caliper.CANVAS_EXTENSION: extension},
        },
        "eventTime": _iso(make.event_time),
        "edApp": {"id": f"http://{HOSTNAME}/", "type": "SoftwareApplication"},
        "group": {"id": course_urn, "type": "CourseOffering",
                  "extensions": {caliper.CANVAS_EXTENSION: {"context_type": "Course", "entity_id": make.course_id}}},
        "membership": membership,
        "session": {"id": f"{caliper.URN_PREFIX}session:{request['session_id']}", "type": "Session"},
        "extensions": {caliper.CANVAS_EXTENSION: {
            "hostname": HOSTNAME, "request_id": request["request_id"], "user_agent": request["user_agent"],
            "client_ip": request["client_ip"], "request_url": request["url"], "version": "1.0.0",
        }},
    }
    if request["referrer"] is not None:
        event["referrer"] = request["referrer"]
    send_time = make.event_time + timedelta(seconds=rng.randrange(1, 30))
    return {"sensor": f"http://{HOSTNAME}/", "sendTime": _iso(send_time), "dataVersion": CALIPER_CONTEXT,
            "data": [event]}


def event_kinds(formats: tuple[str, ...] = FORMATS) -> list[tuple[str, str]]:
    """(format, event name) for every documented name in each format, in a fixed order."""
    kinds = []
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}: give some of {', '.join(FORMATS)}")
        names = BODY_FIELDS if fmt == "canvas" else caliper_shapes()
        kinds += [(fmt, name) for name in sorted(names)]
    return kinds


def payloads(count: int | None = None, *, formats: tuple[str, ...] = FORMATS, seed: int = 7,
             now: datetime | None = None) -> list[dict[str, Any]]:
    """``count`` distinct events (default: one of every kind), cycling over :func:`event_kinds`.

    Event times fall within the hour before ``now`` (default: the current time).
    """
    kinds = event_kinds(formats)
    total = len(kinds) if count is None else count
    rng = random.Random(seed)
    moment = now or datetime.now(timezone.utc)
    makers = {"canvas": canvas_event, "caliper": caliper_envelope}
    events = []
    for serial in range(total):
        fmt, name = kinds[serial % len(kinds)]
        events.append(makers[fmt](name, rng, serial, moment))
    return events


def distinct_canvas_events(canvas_payloads: list[dict[str, Any]], n: int, tag: str) -> list[dict[str, Any]]:
    """``n`` Canvas payloads cycled from ``canvas_payloads``, each one event of its own: a copy
    with request id ``<tag>-<000000 + i>`` (a new dedupe key), for counting what a run lost."""
    out = []
    for i in range(n):
        payload = copy.deepcopy(canvas_payloads[i % len(canvas_payloads)])
        payload["metadata"]["request_id"] = f"{tag}-{i:06d}"
        out.append(payload)
    return out


@dataclass(frozen=True)
class Delivery:
    """One POST body. ``kind``: ``event`` (first delivery), ``retry`` (same bytes again) or
    ``resent`` (the same event as new bytes: re-signed, or its JSON keys in another order)."""

    body: bytes
    kind: str
    index: int  # which of the distinct payloads it carries


def reversed_keys(value: Any) -> Any:
    """``value`` with the keys of every JSON object in reverse order: the same event as other bytes."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def encode(payload: dict[str, Any], signer: DemoSigner | None, iat: int) -> bytes:
    """A delivery body: the payload signed like Canvas signs it, or plain JSON without a signer."""
    if signer is None:
        return orjson.dumps(payload)
    return signer.sign({**payload, "iss": DEFAULT_ISSUER, "iat": iat})


def deliveries(events: list[dict[str, Any]], *, duplicates: int, signer: DemoSigner | None = None,
               seed: int = 7, iat: int | None = None) -> list[Delivery]:
    """Every event once, plus ``duplicates`` extra deliveries of distinct events, shuffled.

    Half the duplicates are byte-identical retries, half the same event as new bytes.
    """
    if duplicates < 0 or (events == [] and duplicates):
        raise ValueError("duplicates must be >= 0, and events non-empty when there are any")
    rng = random.Random(seed)
    issued = int(time.time()) if iat is None else iat
    out = [Delivery(encode(event, signer, issued), "event", i) for i, event in enumerate(events)]
    for n in range(duplicates):
        index = rng.randrange(len(events)) if n >= len(events) else n * len(events) // max(duplicates, 1)
        if n % 2 == 0:
            out.append(Delivery(out[index].body, "retry", index))
        elif signer is not None:
            out.append(Delivery(encode(events[index], signer, issued + 1 + n), "resent", index))
        else:
            out.append(Delivery(orjson.dumps(reversed_keys(events[index])), "resent", index))
    rng.shuffle(out)
    return out


def iter_lines(items: list[Delivery]) -> Iterator[bytes]:
    for item in items:
        yield item.body + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.deliveries", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None,
                        help="distinct events (default: one of every documented name in each format)")
    parser.add_argument("--duplicates", type=int, default=0, help="extra duplicate deliveries (default 0)")
    parser.add_argument("--format", choices=FORMATS, action="append", help="a format (repeatable; default both)")
    parser.add_argument("--signed-jwks", metavar="PATH",
                        help="sign every delivery with a fresh key and write its JWKS here (default: unsigned JSON)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--output", default="-", help="file for the bodies, one per line (default stdout)")
    args = parser.parse_args(argv)
    signer = None
    if args.signed_jwks:
        signer = DemoSigner(kid="devkit-key")
        signer.write_jwks(args.signed_jwks)
    events = payloads(args.events, formats=tuple(args.format or FORMATS), seed=args.seed)
    items = deliveries(events, duplicates=args.duplicates, signer=signer, seed=args.seed)
    if args.output == "-":
        sys.stdout.buffer.writelines(iter_lines(items))
    else:
        with open(Path(args.output), "wb") as fh:
            fh.writelines(iter_lines(items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
