"""Normalize a decoded Canvas-format or Caliper-format event to one row of the event table.

A row is a ``schemas.events.Row``: str/None for strings, bool for booleans and int
microseconds since the epoch (UTC) for timestamps (converted as each is parsed), the shape the dedupe, the partitioning
and the Parquet writer take as it is. The columns are gathered by name and packed once
by ``pipeline.core.rows.pack_row`` (``row_dict`` shows a Row by name with datetimes).
The rules follow CATALOG.md sections 3, 4, 6 and 7:

* **Ids are strings in one form** across both formats. JSON numbers become decimal
  strings (``3`` -> ``"3"``, ``3.0`` -> ``"3"``), and Caliper URNs become the bare id the
  Canvas format carries (``urn:instructure:canvas:user:2107...1`` -> ``"2107...1"``; see
  caliper.parse_urn). Every string column goes through the same coercion: JSON scalars
  become strings (booleans as ``true``/``false``); an object or array where a string
  belongs rejects the event (``invalid_field``) instead of being stringified silently.
* **Canvas format**: metadata keys map one to one to columns; ``caliper_*`` are None.
  ``object_type``/``object_id``: for ``asset_accessed`` the body's ``asset_type``/``asset_id``;
  for names in ``CANVAS_OBJECTS`` the listed entity and body key; otherwise the entity is
  the event name without its last ``_word`` (``wiki_page_updated`` -> ``wiki_page``) and
  the id is ``body["<entity>_id"]`` (else ``body["id"]``); when no id is found both are None.
* **Caliper format**: see caliper.caliper_fields (entities as objects or IRIs, Canvas names
  only for Canvas's events); ``event_time`` is ``eventTime``, never the envelope's
  ``sendTime``; ``sensor`` is the envelope's. An item of an envelope is refused alone: the
  EventError names it (``item``, and ``data[i]:`` in the message). A Caliper 1.0 item is
  ``caliper_v1p0``; an entity (no action) is ``missing_field``.
* **Canvas format** keys beside ``metadata`` and ``body`` (a webhook's ``subscription``) are
  kept whole in ``delivery_extra``; ``subscription_id`` is the subscription's id.
* **Numbers keep their text**: events are parsed by ``jsontext.loads``, so the JSON columns
  hold every number as sent, and an id column never holds a rounded value.
* ``body`` is the JSON of the Canvas ``body`` (None when it is JSON null) or of the whole
  Caliper event; ``metadata`` the JSON of the Canvas ``metadata`` or of the Caliper
  envelope without ``data`` (``{}`` for a bare event). Both, and ``url``/``referrer``,
  go through scrub.scrub_text, so ``access_token=`` values never reach storage.
* ``event_id`` is identity.event_id of the decoded event (before scrubbing, so it is the
  same whatever the scrub list is). The sorted-key JSON made for it is also what the
  ``body``/``metadata`` columns store, so each event is serialized once, not twice.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from pipeline.core import caliper
from pipeline.core.decode import DecodedEvent
from pipeline.core.errors import EventError
from pipeline.core.identity import (
    canonical_json,
    canvas_event_id,
    event_id,
    event_id_of_canonical,
    identity_part,
)
from pipeline.core.jsontext import Fragment, number_text
from pipeline.core.scrub import scrub_text
from pipeline.core.timestamps import UTC, parse_timestamp
from pipeline.core.rows import micros_of, pack_row
from schemas.events import ROW_COLUMNS, Row

# Canvas metadata keys that are also column names, copied (as strings) one to one.
CANVAS_METADATA_COLUMNS: tuple[str, ...] = (
    "request_id", "session_id", "job_id", "job_tag", "user_id", "real_user_id", "user_login",
    "user_sis_id", "user_account_id", "root_account_id", "root_account_uuid",
    "root_account_lti_guid", "context_type", "context_id", "context_role", "context_account_id",
    "context_sis_source_id", "hostname", "http_method", "url", "referrer", "client_ip",
    "user_agent", "time_zone", "developer_key_id",
)
_CANVAS_COLUMN_SET = frozenset(CANVAS_METADATA_COLUMNS)
_SCRUBBED_COLUMNS = ("url", "referrer")
_EXACT_FLOAT_INTS = 2**53

# Canvas events whose object is not "<event name minus verb>" + "<entity>_id" in the body:
# event_name -> (object_type, path of keys to the id inside body).
CANVAS_OBJECTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "grade_change": ("submission", ("submission_id",)),
    "grade_override": ("score", ("score_id",)),
    "final_grade_custom_status": ("score", ("score_id",)),
    "course_grade_change": ("course", ("course_id",)),
    "course_completed": ("course", ("course", "id")),
    "course_progress": ("course", ("course", "id")),
    "conversation_message_created": ("conversation_message", ("message_id",)),
    "enrollment_state_created": ("enrollment_state", ("enrollment_id",)),
    "enrollment_state_updated": ("enrollment_state", ("enrollment_id",)),
    "lti_resource_link_created": ("lti_resource_link", ("resource_link_id",)),
    "lti_resource_link_updated": ("lti_resource_link", ("resource_link_id",)),
    "plagiarism_resubmit": ("submission", ("submission_id",)),
    "submission_custom_grade_status": ("submission", ("submission_id",)),
    "quiz_submitted": ("quiz_submission", ("submission_id",)),
    "rubric_assessed": ("rubric_assessment", ("id",)),
    "syllabus_updated": ("course", ("course_id",)),
    "user_account_association_created": ("account", ("account_id",)),
}


def as_text(value: object, field: str) -> str | None:
    """A JSON scalar as the column string (ids: ints as decimal, integral floats without .0)."""
    kind = type(value)
    if kind is str or value is None:
        return value  # type: ignore[return-value]
    if kind is int:
        return str(value)
    if kind is float:
        # Integral floats within double precision read as ids ("3.0" -> "3"); beyond it the
        # digits int() would print were never sent, so the float's own text is kept.
        if value.is_integer() and -_EXACT_FLOAT_INTS < value < _EXACT_FLOAT_INTS:  # type: ignore[union-attr]
            return str(int(value))
        return orjson.dumps(value).decode()
    if kind is Fragment:  # a number kept as its exact text by jsontext.loads
        return number_text(value)
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, str):  # str subclasses from non-JSON callers
        return str(value)
    raise EventError("invalid_field", f"{field} is a JSON {_json_kind(value)}, expected a string or id")


def _json_kind(value: object) -> str:
    return {dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _scalar_id(value: object) -> str | None:
    """Like as_text for derived ids, but a non-scalar gives None instead of a rejection."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or kind is Fragment or value is None:
        return as_text(value, "object_id")
    return None


def _canonical(value: object, field: str) -> bytes:
    """Sorted-key JSON: one serialization serves both the stored column and the event id."""
    try:
        return canonical_json(value)
    except TypeError as exc:  # orjson: ints beyond 64 bits, non-str keys (non-JSON callers)
        raise EventError("invalid_field", f"{field} cannot be stored as JSON: {exc}") from None


def _scrub_url_columns(row: dict[str, Any]) -> None:
    """Scrub url/referrer, but only when a JSON column needed scrubbing.

    Both columns are copied from values that also sit, unescaped where it matters (a secret's
    name and its "=" are never JSON-escaped), in the body or metadata JSON; when neither JSON
    string held a secret, they cannot either, and the scan is skipped (hot path).
    """
    for column in _SCRUBBED_COLUMNS:
        if row[column] is not None:
            row[column] = scrub_text(row[column])


def canvas_object(name: str, body: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(object_type, object_id) of a Canvas-format event (rule in the module docstring)."""
    if not body:
        return None, None
    if name == "asset_accessed":
        asset_type = body.get("asset_type")
        return (asset_type if type(asset_type) is str else None), _scalar_id(body.get("asset_id"))
    known = CANVAS_OBJECTS.get(name)
    if known is not None:
        entity, path = known
        value: object = body
        for key in path:
            value = value.get(key) if type(value) is dict else None
        return entity, _scalar_id(value)
    entity = name.rpartition("_")[0]
    if entity:
        for key in (f"{entity}_id", "id"):
            value = body.get(key)
            if value is not None:
                found = _scalar_id(value)
                if found is not None:
                    return entity, found
    return None, None


# Rows start as a copy of this (much cheaper than dict.fromkeys(ROW_COLUMNS) per row).
_EMPTY_ROW: dict[str, Any] = dict.fromkeys(ROW_COLUMNS)


def _canvas_extras(event: dict[str, Any], row: dict[str, Any]) -> None:
    """Keys of a Canvas delivery beside metadata and body (a webhook's ``subscription``): kept
    whole in ``delivery_extra``, and the subscription's id in ``subscription_id``."""
    extras = {k: v for k, v in event.items() if k != "metadata" and k != "body"}
    if not extras:
        return
    row["delivery_extra"] = scrub_text(_canonical(extras, "delivery").decode())
    subscription = extras.get("subscription")
    subscription_id = caliper.entity_iri(subscription) if type(subscription) is dict else subscription
    if subscription_id is not None:
        row["subscription_id"] = _scalar_id(subscription_id)


def _canvas_row(event: dict[str, Any]) -> dict[str, Any]:
    metadata = event.get("metadata")
    if type(metadata) is not dict:
        raise EventError("invalid_field", f"metadata is a JSON {_json_kind(metadata)}, not an object")
    body = event.get("body")
    if body is not None and type(body) is not dict:
        raise EventError("invalid_field", f"body is a JSON {_json_kind(body)}, not an object")
    name = metadata.get("event_name")
    if type(name) is not str:
        name = as_text(name, "metadata.event_name")
    if not name:
        raise EventError("missing_field", "metadata.event_name is missing or empty")
    row = _EMPTY_ROW.copy()
    row["event_name"] = name
    row["event_time"] = micros_of(parse_timestamp(metadata.get("event_time"), field="metadata.event_time"))
    columns = _CANVAS_COLUMN_SET
    for column, value in metadata.items():
        if column in columns and value is not None:
            row[column] = value if type(value) is str else as_text(value, "metadata." + column)
    row["object_type"], row["object_id"] = canvas_object(name, body)
    if len(event) > 2:
        _canvas_extras(event, row)
    metadata_json = _canonical(metadata, "metadata")
    body_json = _canonical(body, "body")
    metadata_text = metadata_json.decode()
    scrubbed = row["metadata"] = scrub_text(metadata_text)
    if body is not None:
        body_text = body_json.decode()
        row["body"] = scrub_text(body_text)
        if row["body"] is not body_text:
            scrubbed = None
    if scrubbed is not metadata_text:
        _scrub_url_columns(row)
    if "body" in event:
        row["event_id"] = canvas_event_id(metadata_json, body_json)
    else:  # hand-built event without a body key: identity hashes it whole
        row["event_id"] = event_id(event)
    return row


def _refuse_non_event(event: dict[str, Any]) -> None:
    """Raise the precise rejection of a Caliper item that is not a Caliper 1.1 event, if it is one."""
    if "type" not in event and ("@type" in event or "@id" in event):
        raise EventError("caliper_v1p0", "Caliper 1.0 event (@type/@id); send Caliper 1.1 or later")
    if "action" not in event and "actor" not in event and type(event.get("type")) is str:
        raise EventError("missing_field",
                         f"a Caliper {caliper.last_segment(event['type'])[:40]} entity, not an event: it has no action")


def _caliper_row(event: dict[str, Any], envelope: dict[str, Any] | None) -> dict[str, Any]:
    for key in ("type", "action"):
        value = event.get(key)
        if value is None or value == "":
            _refuse_non_event(event)
            raise EventError("missing_field", f"Caliper event has no {key}")
        if type(value) is not str:
            raise EventError("invalid_field", f"Caliper {key} is a JSON {_json_kind(value)}, not a string")
    fields = caliper.caliper_fields(event)
    row = _EMPTY_ROW.copy()
    row["event_name"] = fields.pop("event_name")
    row["event_time"] = micros_of(parse_timestamp(fields.pop("event_time"), field="eventTime"))
    for column, value in fields.items():  # the string columns
        if value is not None:
            row[column] = value if type(value) is str else as_text(value, column)
    event_json = _canonical(event, "event")
    body_text = event_json.decode()
    row["body"] = scrub_text(body_text)
    if envelope:
        row["metadata"] = scrub_text(_canonical(envelope, "envelope").decode())
        sensor = envelope.get("sensor")
        if type(sensor) is str:
            row["sensor"] = sensor or None
        elif sensor is not None:  # a sensor given as an object, or a number
            sensor = caliper.entity_iri(sensor) if type(sensor) is dict else sensor
            row["sensor"] = sensor if type(sensor) is str or sensor is None else as_text(sensor, "sensor")
    else:
        row["metadata"] = "{}"
    if row["body"] is not body_text:  # url and referrer come from the event, never the envelope
        _scrub_url_columns(row)
    if identity_part(event) is event:
        row["event_id"] = event_id_of_canonical(event_json)
    else:  # a Caliper event that also looks like a Canvas one: identity decides
        row["event_id"] = event_id(event)
    return row


def normalize(decoded: DecodedEvent, *, received_at: datetime | None = None) -> Row:
    """One row for one decoded event. Raises EventError for bad input.

    ``received_at`` must be None or an aware datetime (a naive one is a caller bug: ValueError).
    """
    event, source_format, signed, kid, envelope, index = decoded
    try:
        if type(event) is not dict:
            raise EventError("unknown_format", f"event is a JSON {_json_kind(event)}, not an object")
        if source_format == "canvas":
            row = _canvas_row(event)
        elif source_format == "caliper":
            row = _caliper_row(event, envelope)
        else:
            raise EventError("unknown_format", f"unknown source format {source_format!r}")
        if received_at is not None:
            if received_at.tzinfo is not UTC:
                if received_at.tzinfo is None or received_at.utcoffset() is None:
                    raise ValueError("received_at must be timezone-aware")
                received_at = received_at.astimezone(UTC)
            row["received_at"] = micros_of(received_at)
        row["source_format"] = source_format
        row["signed"] = signed if type(signed) is bool else bool(signed)
        row["kid"] = kid
        return pack_row(row)  # its EventErrors name the item too
    except EventError as error:
        if index is None:
            raise
        raise error.at_item(index) from None
