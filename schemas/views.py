"""BigQuery views over the events table, generated from the schema and the Canvas field lists.

* ``events_deduped`` (created by ``make bq-table`` with the external table): one row per dedupe
  key, the copy received first. The key is the pipeline's (``pipeline.core.identity.dedupe_key``:
  request id, else job id, plus event id). A copy and its original share event_time and
  event_name, hence the hive partition, so the window is also partitioned by ``event_date`` and
  ``event_name``: that changes no answer and lets BigQuery prune partitions through the view.
  (A copy filed under another event name, by a pipeline version that names the event otherwise,
  is a different row to this view.)
* one typed view per Canvas event type (``<dataset>.<event_name>``, dots as ``_``) over
  ``events_deduped``: every table column, then the event's body fields (``schemas.canvas_fields``)
  as typed columns named after the body keys (a key that is already a table column, such as
  ``user_id`` or ``body``, is ``body_<key>``). Values are read with SAFE casts, so one odd value is
  NULL, never a failed query; keys not listed stay reachable in ``body``. Caliper-format rows fill
  the columns from ``object.extensions["com.instructure.canvas"]`` and the Caliper properties
  Canvas fields are renamed to (CATALOG.md section 4).
* ``activity``: one row per user action across both formats (rows without a user are system
  events and left out): who, in which context/course, what (event name, object type and id),
  when (UTC, and the user's local time where Canvas gives a time zone), and the source format.

``python -m schemas.generate`` writes them to ``schemas/bigquery/``; ``make bq-table`` and
``make bq-views`` fill in the ``${PROJECT}``/``${DATASET}`` placeholders and run them.
"""
from __future__ import annotations

import re

from schemas.canvas_fields import BODY_FIELDS, Field
from schemas.events import TABLE_SCHEMA

DATASET = "${PROJECT}.${DATASET}"
EVENTS_TABLE = "events"
DEDUPED_VIEW = "events_deduped"
ACTIVITY_VIEW = "activity"
CALIPER_EXTENSIONS = '$.object.extensions."com.instructure.canvas"'
# Canvas body key -> the Caliper object property it is renamed to (CATALOG.md section 4).
CALIPER_RENAMES = {
    "title": "name", "name": "name", "description": "description", "body": "body",
    "due_at": "dateToSubmit", "unlock_at": "dateToShow", "points_possible": "maxScore",
    "attempt": "count", "content_type": "mediaType", "state_started_at": "startedAtTime",
    "created_at": "dateCreated", "updated_at": "dateModified",
}
# The timestamp shapes pipeline.core.timestamps accepts (ISO-8601 with a zone, Ruby Time#to_s);
# anything else (no zone, malformed year) reads as NULL rather than as a guess.
_TIME_GRAMMAR = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)?"
                 r"(Z| UTC|[+-][0-9]{2}(:?[0-9]{2})?| [+-][0-9]{4})$")


def view_name(event_name: str) -> str:
    """BigQuery table name of an event type's view (``outcomes.retry_...`` -> ``outcomes_retry_...``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", event_name)


def _ref(name: str) -> str:
    return f"`{DATASET}.{name}`"


def dedupe_key_sql() -> str:
    """``pipeline.core.identity.dedupe_key`` in SQL."""
    return ("CASE\n"
            "      WHEN request_id IS NOT NULL AND request_id != '' THEN CONCAT('r:', request_id, '|', event_id)\n"
            "      WHEN job_id IS NOT NULL AND job_id != '' THEN CONCAT('j:', job_id, '|', event_id)\n"
            "      ELSE CONCAT('-|', event_id)\n"
            "    END")


def deduped_view_sql() -> str:
    columns = ",\n  ".join(TABLE_SCHEMA.names)
    return (
        f"CREATE OR REPLACE VIEW {_ref(DEDUPED_VIEW)}\n"
        "OPTIONS (description=\"The events table with one row per dedupe key (request or job id + event_id): "
        "the copy received first. Generated from schemas/ (python -m schemas.generate).\")\n"
        "AS\n"
        f"SELECT\n  {columns}\n"
        f"FROM {_ref(EVENTS_TABLE)}\n"
        "WHERE TRUE\n"
        "QUALIFY ROW_NUMBER() OVER (\n"
        f"  PARTITION BY event_date, event_name, {dedupe_key_sql()}\n"
        "  ORDER BY received_at ASC NULLS LAST, signed DESC, kid\n"
        ") = 1;\n"
    )


def timestamp_sql(text: str) -> str:
    """A Canvas time string to TIMESTAMP, NULL unless it names its zone in a known shape."""
    canonical = text
    # ',' fraction -> '.', at most microseconds, ' UTC'/'Z' -> +00:00, ' -0800' -> -08:00, 'T' -> ' '.
    canonical = f"REGEXP_REPLACE({canonical}, r'^(.{{19}}),', r'\\1.')"
    canonical = f"REGEXP_REPLACE({canonical}, r'^(.{{19}}\\.[0-9]{{1,6}})[0-9]*', r'\\1')"
    canonical = f"REGEXP_REPLACE({canonical}, r'( UTC|Z)$', '+00:00')"
    canonical = f"REGEXP_REPLACE({canonical}, r' ?([+-][0-9]{{2}}):?([0-9]{{2}})$', r'\\1:\\2')"
    canonical = f"REGEXP_REPLACE({canonical}, r'([+-][0-9]{{2}})$', r'\\1:00')"
    canonical = f"REGEXP_REPLACE({canonical}, r'^(.{{10}})T', r'\\1 ')"
    return f"IF(REGEXP_CONTAINS({text}, r'{_TIME_GRAMMAR}'), SAFE_CAST({canonical} AS TIMESTAMP), NULL)"


def _json_path(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"body key {key!r} needs quoting in a JSON path")
    return f"$.{key}"


def _caliper_paths(key: str, has_created_at: bool = True) -> list[str]:
    paths = [f"{CALIPER_EXTENSIONS}.{key}"]
    if key == "updated_at" and not has_created_at:
        # A *_created event without created_at (assignment_created, attachment_created) sends
        # its updated_at as dateCreated (CATALOG.md section 4).
        paths.insert(0, "$.object.dateCreated")
    if key in CALIPER_RENAMES:
        paths.insert(0, f"$.object.{CALIPER_RENAMES[key]}")
    return paths


def _read(path: str, type_: str) -> str:
    if type_ == "JSON":
        return f"JSON_QUERY(body, '{path}')"
    return f"JSON_VALUE(body, '{path}')"


def field_sql(field: Field, has_created_at: bool = True) -> str:
    """The typed value of one body field, for both source formats."""
    canvas = _read(_json_path(field.name), field.type)
    caliper = [_read(p, field.type) for p in _caliper_paths(field.name, has_created_at)]
    from_caliper = caliper[0] if len(caliper) == 1 else f"COALESCE({', '.join(caliper)})"
    text = f"IF(source_format = 'caliper', {from_caliper}, {canvas})"
    if field.type == "STRING":
        return text
    if field.type == "JSON":
        # round: a number beyond FLOAT64 precision inside an object must not fail the query
        return f"SAFE.PARSE_JSON({text}, wide_number_mode => 'round')"
    if field.type == "TIMESTAMP":
        return timestamp_sql(text)
    return f"SAFE_CAST({text} AS {field.type})"


def column_name(key: str) -> str:
    """A body key's column in a typed view: the key, or ``body_<key>`` if a table column has that name."""
    return f"body_{key}" if key in TABLE_SCHEMA.names else key


def typed_view_sql(event_name: str) -> str:
    fields = BODY_FIELDS[event_name]
    lines = list(TABLE_SCHEMA.names)
    # A *_created event without created_at sends its updated_at as dateCreated in Caliper.
    has_created_at = not event_name.endswith("_created") or any(f.name == "created_at" for f in fields)
    lines += [f"{field_sql(f, has_created_at)} AS {column_name(f.name)}" for f in fields]
    columns = ",\n  ".join(lines)
    return (
        f"CREATE OR REPLACE VIEW {_ref(view_name(event_name))}\n"
        f"OPTIONS (description=\"{event_name} events (deduplicated) with their body fields as typed columns. "
        "Generated from schemas/ (python -m schemas.generate).\")\n"
        "AS\n"
        f"SELECT\n  {columns}\n"
        f"FROM {_ref(DEDUPED_VIEW)}\n"
        f"WHERE event_name = '{event_name}';\n"
    )


ACTIVITY_COLUMNS = (
    "event_id", "event_date", "event_time", "local_time", "time_zone", "user_id", "real_user_id",
    "context_type", "context_id", "context_role", "course_id", "event_name", "object_type",
    "object_id", "source_format", "session_id", "request_id",
)


def activity_view_sql() -> str:
    expressions = {
        "local_time": "SAFE.DATETIME(event_time, time_zone)",
        "course_id": "IF(context_type = 'Course', context_id, NULL)",
    }
    lines = [f"{expressions[c]} AS {c}" if c in expressions else c for c in ACTIVITY_COLUMNS]
    columns = ",\n  ".join(lines)
    return (
        f"CREATE OR REPLACE VIEW {_ref(ACTIVITY_VIEW)}\n"
        "OPTIONS (description=\"One row per user action, both formats (deduplicated): who, where, what, when "
        "(UTC; local_time in the user's Canvas time zone where the event gives one). "
        "Generated from schemas/ (python -m schemas.generate).\")\n"
        "AS\n"
        f"SELECT\n  {columns}\n"
        f"FROM {_ref(DEDUPED_VIEW)}\n"
        "WHERE user_id IS NOT NULL;\n"
    )


def views_sql() -> str:
    """Every view of ``make bq-views``, as one BigQuery script: the typed views, then ``activity``."""
    parts = ["-- Generated by python -m schemas.generate from schemas/events.py and schemas/canvas_fields.py.\n"
             "-- make bq-views fills in the placeholders and runs it (after make bq-table).\n"]
    parts += [typed_view_sql(name) for name in BODY_FIELDS]
    parts.append(activity_view_sql())
    return "\n".join(parts)
