"""Read Instructure's Caliper 1.1 rendering of Canvas events back into Canvas terms.

Two things need care (CATALOG.md sections 4, 6 and 7):

* **The Canvas event name is not in the event.** It is reconstructed from
  ``type`` + ``action`` + the URN type segment of ``object.id`` (+ ``object.type``), with two
  extra disambiguations the corpus needs: ``enrollment`` vs ``enrollment_state`` events
  share one URN type and differ only in their object extensions, and a ``Created`` Entity
  on an ``account`` URN is ``user_account_association_created``. The table below covers
  all 32 documented Caliper event types. Anything else gets an explicit derived name,
  ``caliper_<type>_<action>_<object type>[_<urn type>]`` in snake_case, rather than a
  guessed Canvas name: a guess would put unrelated events into a real partition.
* **Ids are URNs.** ``urn:instructure:canvas:user:21070000000000001`` carries the same
  id string the Canvas format sends (``"21070000000000001"``). See ``parse_urn`` for
  the URN shapes and how compound ones are read.

Other producers (IMS fixtures, publishers, Open edX, lecture capture) send Caliper too, so:

* **Every entity-valued property may be an object or an IRI string** (Caliper 1.1 allows
  both): ``actor``, ``object``, ``group``, ``membership`` (and its ``organization``),
  ``session``, ``federatedSession``, ``edApp``, ``referrer``. Ids are read either way
  (``entity_iri``); Canvas URNs still become bare ids.
* **Canvas event names only for events Canvas produced** (``is_canvas_event``: the Canvas
  extension on the event, a Canvas URN as actor or object, or an ``*.instructure.com``
  edApp). Any other producer's event is ``caliper_<type>_<action>`` from the last IRI
  segment of each, so a vendor's ``SessionEvent/LoggedIn`` never lands in ``logged_in``.
  Every derived name is at most ``MAX_DERIVED_NAME`` characters.

``caliper_fields`` returns the row fields with raw (JSON) values; normalize.py coerces
them to the column types and scrubs URLs.
"""
from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from typing import Any, NamedTuple

CANVAS_EXTENSION = "com.instructure.canvas"
URN_PREFIX = "urn:instructure:canvas:"

# Canvas ids: decimal, optionally in the "shard~local" form Canvas also prints.
_ID_LIKE = re.compile(r"\d+(?:~\d+)?")


class CanvasUrn(NamedTuple):
    """A parsed ``urn:instructure:canvas:...`` value.

    ``type`` is the type segment as written (``user``, ``wikiPage``, ``quizzes:quiz``,
    ``lti/tool_proxy``) or, for compound URNs, ``course_section`` / ``membership``.
    ``id`` is the bare id (None for memberships, which have no id of their own).
    """

    type: str
    id: str | None
    course_id: str | None = None
    section_id: str | None = None
    role: str | None = None
    user_id: str | None = None


def parse_urn(value: object) -> CanvasUrn | None:
    """Parse a Canvas URN; None when ``value`` is not one.

    Shapes (CATALOG.md section 7, quirk 6):

    * simple ``<type>:<id>``; the type may itself contain ``:`` or ``/`` (``quizzes:quiz:1``,
      ``lti/tool_proxy:1``), so the id is the *last* segment and the type is the rest;
    * section ``course:<c>:section:<s>`` -> type ``course_section``, id ``<s>``;
    * membership ``course:<c>[:section:<s>]:<Role|user>:<u>`` -> type ``membership``,
      id None, with course/section/role/user split out (role None for the literal ``user``).

    A URN is compound when a segment before the last one is a numeric id. Compound URNs
    that are not course-based are read as type = the non-id segments joined with ``:``,
    id = the last segment.
    """
    if type(value) is not str or not value.startswith(URN_PREFIX):
        return None
    return _parse_canvas_urn(value)


@lru_cache(maxsize=4096)
def _parse_canvas_urn(value: str) -> CanvasUrn | None:
    # Cached: the same user/session/course URNs recur in almost every event, and this is
    # called ~5 times per event on the hot path.
    parts = value[len(URN_PREFIX):].split(":")
    if len(parts) < 2 or not all(parts):
        return None
    if not any(_ID_LIKE.fullmatch(p) for p in parts[:-1]):
        return CanvasUrn(":".join(parts[:-1]), parts[-1])
    if parts[0] == "course" and _ID_LIKE.fullmatch(parts[1]):
        course, rest = parts[1], parts[2:]
        section = None
        if len(rest) >= 2 and rest[0] == "section":
            section, rest = rest[1], rest[2:]
            if not rest:
                return CanvasUrn("course_section", section, course_id=course, section_id=section)
        if len(rest) == 2:
            role = None if rest[0] == "user" else rest[0]
            return CanvasUrn("membership", None, course_id=course, section_id=section,
                             role=role, user_id=rest[1])
    kind = ":".join(p for p in parts[:-1] if not _ID_LIKE.fullmatch(p))
    return CanvasUrn(kind or "unknown", parts[-1])


def urn_id(value: object) -> object:
    """The bare id of a Canvas URN; any other value is returned unchanged."""
    urn = parse_urn(value)
    return value if urn is None else urn.id


def canvas_extension(node: object) -> dict[str, Any]:
    """``node.extensions["com.instructure.canvas"]``, or {} when any level is missing."""
    if type(node) is dict:
        ext = node.get("extensions")
        if type(ext) is dict:
            canvas = ext.get(CANVAS_EXTENSION)
            if type(canvas) is dict:
                return canvas
    return {}


def entity_iri(node: object) -> object:
    """The id of an entity-valued property: ``node["id"]`` of an object, the string itself of an
    IRI; None when absent or empty. Non-string ids (numbers) are returned as they are."""
    if type(node) is dict:
        return node.get("id")
    if type(node) is str:
        return node or None
    return None


_CANVAS_EDAPP = re.compile(r"https?://[^/?#]*\.instructure\.com(?:[/?#:]|$)")


def is_canvas_event(event: dict[str, Any]) -> bool:
    """Whether Canvas produced this Caliper event, from evidence in the event itself.

    Canvas's own rendering always carries ``extensions["com.instructure.canvas"]`` on the
    event and Canvas URNs for its actor and object (every Instructure example does); an
    ``*.instructure.com`` edApp counts too. A Canvas URN elsewhere (an LTI tool's
    ``federatedSession`` names the Canvas launch, a tool's ``group`` may name a Canvas
    course) is not evidence: the tool produced the event.
    """
    if canvas_extension(event):
        return True
    for key in ("actor", "object"):
        iri = entity_iri(event.get(key))
        if type(iri) is str and iri.startswith(URN_PREFIX):
            return True
    ed_app = entity_iri(event.get("edApp"))
    return type(ed_app) is str and _CANVAS_EDAPP.match(ed_app) is not None


# --- event name -------------------------------------------------------------------------

# (type, action) pairs that identify the Canvas event on their own.
_BY_TYPE_ACTION: dict[tuple[str, str], str] = {
    ("NavigationEvent", "NavigatedTo"): "asset_accessed",
    ("SessionEvent", "LoggedIn"): "logged_in",
    ("SessionEvent", "LoggedOut"): "logged_out",
    ("GradeEvent", "Graded"): "grade_change",
    ("AssessmentEvent", "Submitted"): "quiz_submitted",
    ("AssignableEvent", "Submitted"): "submission_created",
    ("MessageEvent", "Posted"): "discussion_entry_created",
    ("ThreadEvent", "Created"): "discussion_topic_created",
}

# Plain "Event": (action, URN type segment of object.id) -> Canvas name. None values need
# the object (see _disambiguate).
_EVENT_BY_ACTION_URN: dict[tuple[str, str], str | None] = {
    ("Created", "assignment"): "assignment_created",
    ("Modified", "assignment"): "assignment_updated",
    ("Created", "assignment_override"): "assignment_override_created",
    ("Modified", "assignment_override"): "assignment_override_updated",
    ("Created", "attachment"): "attachment_created",
    ("Modified", "attachment"): "attachment_updated",
    ("Deleted", "attachment"): "attachment_deleted",
    ("Created", "course"): "course_created",
    ("Modified", "course"): None,  # course_updated (CourseOffering) | syllabus_updated (Document)
    ("Created", "enrollment"): None,  # enrollment_created | enrollment_state_created
    ("Modified", "enrollment"): None,  # enrollment_updated | enrollment_state_updated
    ("Created", "groupCategory"): "group_category_created",
    ("Created", "group"): "group_created",
    ("Created", "groupMembership"): "group_membership_created",
    ("Created", "quiz"): "quiz_created",
    ("Modified", "quiz"): "quiz_updated",
    ("Modified", "submission"): "submission_updated",
    ("Created", "wikiPage"): "wiki_page_created",
    ("Modified", "wikiPage"): "wiki_page_updated",
    ("Deleted", "wikiPage"): "wiki_page_deleted",
    ("Created", "account"): None,  # user_account_association_created, when it looks like one
}

# Object extension keys that only EnrollmentState carries / only Enrollment carries.
_ENROLLMENT_STATE_KEYS = frozenset(
    {"state", "state_is_current", "access_is_current", "restricted_access", "state_valid_until"}
)
_ENROLLMENT_KEYS = frozenset(
    {"course_id", "course_section_id", "type", "user_id", "user_name", "limit_privileges_to_course_section"}
)
_VERB = {"Created": "created", "Modified": "updated"}

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_IRI_LAST_SEGMENT = re.compile(r"[^/#]*[/#]+")
MAX_DERIVED_NAME = 64


def snake_case(text: str) -> str:
    """``NavigationEvent`` -> ``navigation_event``; ``lti/tool_proxy`` -> ``lti_tool_proxy``."""
    return _NOT_WORD.sub("_", _CAMEL_BOUNDARY.sub("_", text).lower()).strip("_")


def last_segment(term: str) -> str:
    """The last segment of a term given as an IRI (``http://purl.imsglobal.org/caliper/Event``
    -> ``Event``, ``...action#Started`` -> ``Started``); a plain term is returned unchanged."""
    if "/" not in term and "#" not in term:
        return term
    return _IRI_LAST_SEGMENT.sub("", term.rstrip("/#")) or term


def _bounded(name: str) -> str:
    """``name`` cut to MAX_DERIVED_NAME characters; a cut name ends with 8 hex of its digest
    so that two long names stay apart."""
    if len(name) <= MAX_DERIVED_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_DERIVED_NAME - 9].rstrip('_')}_{digest}"


def producer_name(type_: str, action: str) -> str:
    """Name of an event another producer sent: ``caliper_<type>_<action>`` (last IRI segments)."""
    return _bounded("_".join(snake_case(p) or "x" for p in ("caliper", last_segment(type_), last_segment(action))))


def _disambiguate(action: str, urn_type: str, obj: dict[str, Any]) -> str | None:
    obj_type = obj.get("type")
    if urn_type == "course":  # Modified only
        if type(obj_type) is not str:
            return None
        return {"CourseOffering": "course_updated", "Document": "syllabus_updated"}.get(obj_type)
    ext = canvas_extension(obj)
    if urn_type == "enrollment":
        if not _ENROLLMENT_STATE_KEYS.isdisjoint(ext) or "startedAtTime" in obj:
            return f"enrollment_state_{_VERB[action]}"
        if not _ENROLLMENT_KEYS.isdisjoint(ext):
            return f"enrollment_{_VERB[action]}"
        return None
    if urn_type == "account" and "is_admin" in ext:
        return "user_account_association_created"
    return None


def derived_name(type_: str, action: str, obj_type: str | None, urn_type: str | None) -> str:
    """Name for a Canvas Caliper combination with no known Canvas name (``caliper_``-prefixed)."""
    parts = [last_segment(p) for p in ("caliper", type_, action, obj_type or "none")]
    if urn_type:
        parts.append(urn_type)  # a URN type segment is no IRI: lti/tool_proxy stays whole
    return _bounded("_".join(snake_case(p) or "x" for p in parts))


def event_name(type_: str, action: str, obj: dict[str, Any], obj_id: object = None) -> str:
    """The Canvas event name of a Caliper event Canvas produced (see module docstring).

    ``obj_id`` is the object's id when the object was given as an IRI string (``obj`` is then {}).
    """
    name = _BY_TYPE_ACTION.get((type_, action))
    if name is not None:
        return name
    urn = parse_urn(obj.get("id") if obj_id is None else obj_id)
    urn_type = urn.type if urn is not None else None
    if type_ == "Event" and urn_type is not None:
        key = (action, urn_type)
        if key in _EVENT_BY_ACTION_URN:
            name = _EVENT_BY_ACTION_URN[key] or _disambiguate(action, urn_type, obj)
            if name is not None:
                return name
    obj_type = obj.get("type")
    return derived_name(type_, action, obj_type if type(obj_type) is str else None, urn_type)


# --- fields -------------------------------------------------------------------------------

# Caliper membership roles -> Canvas enrollment types (the docs map only these two).
ROLE_TO_CANVAS = {"Instructor": "TeacherEnrollment", "Learner": "StudentEnrollment"}
# Caliper group types -> Canvas context types, when the group has no context_type extension.
GROUP_TO_CONTEXT = {"CourseOffering": "Course", "CourseSection": "CourseSection", "Group": "Group"}
# Canvas URN types -> Canvas context types, for a group given as a URN string.
URN_TO_CONTEXT = {"course": "Course", "course_section": "CourseSection", "group": "Group",
                  "account": "Account", "user": "User"}


def _context(node: object) -> tuple[object, object]:
    """(context_type, context_id) of a Caliper group/organization node.

    The node's Canvas extensions win (``context_type`` + ``entity_id``) because they hold
    what the Canvas format sends: a CourseSection group says ``context_type: "Course"``
    with the course id, as the paired Canvas event does. Without them, the Caliper type is
    mapped (CourseOffering -> Course, CourseSection -> CourseSection, Group -> Group,
    others verbatim) and the id comes from the URN (a section URN gives the section id).
    """
    if type(node) is str:  # an IRI: the id, and the type a Canvas URN names
        urn = parse_urn(node)
        if urn is None:
            return None, node or None
        return URN_TO_CONTEXT.get(urn.type), urn.id
    if type(node) is not dict:
        return None, None
    ext = canvas_extension(node)
    ctx_type = ext.get("context_type")
    ctx_id = ext.get("entity_id")
    if ctx_type is None:
        group_type = node.get("type")
        ctx_type = GROUP_TO_CONTEXT.get(group_type, group_type) if type(group_type) is str else None
    if ctx_id is None:
        ctx_id = urn_id(node.get("id"))
    return ctx_type, ctx_id


def _role(membership: object) -> object:
    """First role of ``membership.roles`` in Canvas terms (unknown roles verbatim), else None."""
    if type(membership) is not dict:
        return None
    roles = membership.get("roles")
    if type(roles) is list and roles:
        role = roles[0]
        return ROLE_TO_CANVAS.get(role, role) if type(role) is str else None
    return None


def _user_id(actor: object, actor_ext: dict[str, Any]) -> object:
    """The acting user's id; None for non-person actors (SoftwareApplication on public hits)."""
    entity_id = actor_ext.get("entity_id")
    if entity_id is not None:
        return entity_id
    urn = parse_urn(entity_iri(actor))
    if urn is not None and urn.type == "user":
        return urn.id
    return None


def caliper_fields(event: dict[str, Any]) -> dict[str, Any]:
    """Row fields of one Caliper event, raw JSON values (ids may still be numbers).

    ``event_name``, ``event_time`` (the raw ``eventTime``), and every column Caliper can
    fill; columns Caliper does not carry (time_zone, user_account_id,
    context_sis_source_id) are absent, and so is ``sensor`` (the envelope's). Every key but
    ``event_name``/``event_time`` is a string column of the row, by its column name
    (normalize copies them as they are). ``type``/``action`` must be strings (the caller
    checks). Entity-valued properties may be objects or IRI strings.
    """
    type_ = event["type"]
    action = event["action"]
    obj = event.get("object")
    obj_iri = None
    if type(obj) is not dict:
        obj_iri = obj if type(obj) is str and obj else None
        obj = {}
    actor = event.get("actor")
    actor_ext = canvas_extension(actor)
    data_ext = canvas_extension(event)
    obj_ext = canvas_extension(obj)

    group = event.get("group")
    membership = event.get("membership")
    if type(group) is dict or (type(group) is str and group):
        context_type, context_id = _context(group)
    elif type(membership) is dict:
        # No group (e.g. syllabus_updated): the membership's organization is the context.
        context_type, context_id = _context(membership.get("organization"))
    else:
        context_type = context_id = None

    # http_method / context_account_id / developer_key_id: documented on the event
    # extensions, but in the examples only asset_accessed carries them, on the object.
    nav_ext = obj_ext if type_ == "NavigationEvent" else {}

    object_id = obj_ext.get("entity_id")
    if object_id is None:
        object_id = urn_id(obj.get("id") if obj_iri is None else obj_iri)

    if data_ext or is_canvas_event(event):  # data_ext: the Canvas extension, already looked up
        name = event_name(type_, action, obj, obj_iri)
    else:
        name = producer_name(type_, action)

    return {
        "event_name": name,
        "event_time": event.get("eventTime"),
        "request_id": data_ext.get("request_id"),
        "session_id": urn_id(entity_iri(event.get("session"))),
        "job_id": data_ext.get("job_id"),
        "job_tag": data_ext.get("job_tag"),
        "user_id": _user_id(actor, actor_ext),
        "real_user_id": urn_id(actor_ext.get("real_user_id")),
        "user_login": actor_ext.get("user_login"),
        "user_sis_id": actor_ext.get("user_sis_id"),
        "root_account_id": actor_ext.get("root_account_id"),
        "root_account_uuid": actor_ext.get("root_account_uuid"),
        "root_account_lti_guid": actor_ext.get("root_account_lti_guid"),
        "context_type": context_type,
        "context_id": context_id,
        "context_role": _role(membership),
        "context_account_id": data_ext.get("context_account_id", nav_ext.get("context_account_id")),
        "hostname": data_ext.get("hostname"),
        "http_method": data_ext.get("http_method", nav_ext.get("http_method")),
        "url": data_ext.get("request_url"),
        "referrer": entity_iri(event.get("referrer")),
        "client_ip": data_ext.get("client_ip"),
        "user_agent": data_ext.get("user_agent"),
        "developer_key_id": data_ext.get("developer_key_id", nav_ext.get("developer_key_id")),
        "caliper_event_id": event.get("id"),
        "caliper_type": type_,
        "caliper_action": action,
        "object_type": obj.get("type"),
        "object_id": object_id,
        "actor_iri": entity_iri(actor),
        "ed_app_id": entity_iri(event.get("edApp")),
        "federated_session_id": urn_id(entity_iri(event.get("federatedSession"))),
    }
