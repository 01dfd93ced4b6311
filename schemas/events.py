"""The one event schema: every other representation is generated from it.

The Parquet files hold ``FILE_SCHEMA``; the hive partition columns ``event_date`` and
``event_name`` live in the directory path (``event_date=YYYY-MM-DD/event_name=NAME/``),
as BigQuery external tables expect. ``TABLE_SCHEMA`` is what a query sees: the file
columns plus the partition columns. The BigQuery schema JSON and the external-table DDL
are generated from these (``python -m schemas.generate``), and a test proves they agree.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

# (name, arrow type, nullable, description). Order is the column order in the files.
_FILE_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("event_id", pa.string(), False,
     "Stable id of the event: a digest of the decoded event, unchanged by re-signing, key order and retries."),
    ("source_format", pa.string(), False, "Delivery format: canvas or caliper."),
    ("event_time", TIMESTAMP, False, "When Canvas raised the event, UTC."),
    ("received_at", TIMESTAMP, True, "When the receiver (or the replay) took the delivery, UTC."),
    ("request_id", pa.string(), True, "Canvas request id; shared by every event raised in one request."),
    ("session_id", pa.string(), True, "Canvas login session id."),
    ("job_id", pa.string(), True, "Background job id, for system-generated events."),
    ("job_tag", pa.string(), True, "Background job class#method, for system-generated events."),
    ("user_id", pa.string(), True, "Acting user (global id)."),
    ("real_user_id", pa.string(), True, "The real user when masquerading."),
    ("user_login", pa.string(), True, "Acting user's login (PII: see --pii)."),
    ("user_sis_id", pa.string(), True, "Acting user's SIS id (PII: see --pii)."),
    ("user_account_id", pa.string(), True, "Account the acting user belongs to."),
    ("root_account_id", pa.string(), True, "Root account (institution) id, global form."),
    ("root_account_uuid", pa.string(), True, "Root account uuid."),
    ("root_account_lti_guid", pa.string(), True, "Root account LTI tool-consumer guid."),
    ("context_type", pa.string(), True, "Where it happened: Course, Account, Group, User, CourseSection, ..."),
    ("context_id", pa.string(), True, "Id of that context."),
    ("context_role", pa.string(), True, "Acting user's role in the context (Canvas enrollment type names)."),
    ("context_account_id", pa.string(), True, "Account that directly owns the context."),
    ("context_sis_source_id", pa.string(), True, "SIS id of the context."),
    ("hostname", pa.string(), True, "Canvas host that served the request."),
    ("http_method", pa.string(), True, "HTTP method of the triggering request."),
    ("url", pa.string(), True, "Request URL, with access_token values scrubbed."),
    ("referrer", pa.string(), True, "HTTP referer, with access_token values scrubbed."),
    ("client_ip", pa.string(), True, "Client IP (PII: see --pii)."),
    ("user_agent", pa.string(), True, "Client user agent (PII: see --pii)."),
    ("time_zone", pa.string(), True, "Acting user's IANA time zone (Canvas format only)."),
    ("developer_key_id", pa.string(), True, "Developer key behind the access token, for API/LTI calls."),
    ("caliper_event_id", pa.string(), True, "Caliper event id (urn:uuid:...), Caliper format only."),
    ("caliper_type", pa.string(), True, "Caliper event type, e.g. NavigationEvent."),
    ("caliper_action", pa.string(), True, "Caliper action, e.g. NavigatedTo."),
    ("object_type", pa.string(), True, "Type of the object acted on (Caliper object type, or the Canvas asset/entity type)."),
    ("object_id", pa.string(), True, "Bare id of the object acted on."),
    ("body", pa.string(), True, "The event-specific payload as JSON (Canvas body, or the Caliper event)."),
    ("metadata", pa.string(), True, "The whole envelope as JSON, so that nothing of the input is lost."),
    ("signed", pa.bool_(), False, "True when the delivery was a verified JWT."),
    ("kid", pa.string(), True, "Key id that verified the delivery."),
    # Appended (issue 12): nullable, after every earlier column, so files written before them
    # read through the same table (their rows show null here). Never insert above this line.
    ("actor_iri", pa.string(), True,
     "IRI of the acting agent as sent (Caliper actor id, or the actor given as an IRI), for any producer."),
    ("ed_app_id", pa.string(), True, "IRI of the Caliper edApp: the application the event happened in."),
    ("federated_session_id", pa.string(), True,
     "Id of the Caliper federatedSession (e.g. the LMS's LTI launch session); Canvas URNs as bare ids."),
    ("sensor", pa.string(), True, "The Caliper envelope's sensor: which system sent the event."),
    ("subscription_id", pa.string(), True,
     "Webhook subscription id (subscription.id of a delivery that names its subscription)."),
    ("delivery_extra", pa.string(), True,
     "Top-level keys of a Canvas-format delivery beside metadata and body, as JSON; null when none."),
]

# Hive partition columns: in the directory path, not in the files.
_PARTITION_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("event_date", pa.date32(), False, "UTC date of event_time (partition column, from the path)."),
    ("event_name", pa.string(), False,
     "Canvas event name for both formats; caliper_<type>_<action> for other producers' Caliper events "
     "(partition column, from the path)."),
]


def _field(name: str, type_: pa.DataType, nullable: bool, description: str) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={"description": description})


FILE_SCHEMA: pa.Schema = pa.schema([_field(*c) for c in _FILE_COLUMNS])
PARTITION_SCHEMA: pa.Schema = pa.schema([_field(*c) for c in _PARTITION_COLUMNS])
TABLE_SCHEMA: pa.Schema = pa.schema(list(FILE_SCHEMA) + list(PARTITION_SCHEMA))

FILE_COLUMNS: tuple[str, ...] = tuple(FILE_SCHEMA.names)
PARTITION_COLUMNS: tuple[str, ...] = tuple(PARTITION_SCHEMA.names)
# Columns of a normalized row (the dict the core produces): file columns plus event_name.
# event_date is derived from event_time when the row is written.
ROW_COLUMNS: tuple[str, ...] = FILE_COLUMNS + ("event_name",)

def _row_type(field: pa.Field) -> type:
    if field.type == TIMESTAMP:
        python: type = int  # microseconds since the epoch, UTC
    elif pa.types.is_boolean(field.type):
        python = bool
    else:
        python = str
    return Optional[python] if field.nullable else python  # type: ignore[return-value]


# The row type, generated from the schema: one field per ROW_COLUMNS entry, in that order.
# Timestamps are int microseconds since the epoch (UTC): a row crosses two shuffles, where a
# tuple of str/int/bool/None is the cheapest shape to encode, and the writer hands the ints
# straight to the timestamp('us', tz='UTC') columns. pipeline.core.rows converts to and from
# a dict with datetimes (the CLI's and the tests' view of a row).
_RowFields = NamedTuple("_RowFields", [(f.name, _row_type(f)) for f in FILE_SCHEMA] + [("event_name", str)])
_new_tuple = tuple.__new__


class Row(_RowFields):
    """One normalized event: the file columns of FILE_SCHEMA, then its event_name.

    Rows are read by position (``pipeline.core.rows.COLUMN_INDEX``), so a plain tuple of the
    same layout reads the same. Tuples of an older, shorter layout do not: a schema change is
    deployed by draining the streaming job and starting a new one, never by an in-place update
    (README, "Updating an existing BigQuery table after a schema change").
    """

    __slots__ = ()

    def __reduce__(self) -> tuple:
        # Beam encodes a Row with pickle (its coder knows plain tuples only); the default
        # NamedTuple reduction calls Python-level __getnewargs__ and __new__ for every row.
        return (_new_tuple, (Row, tuple(self)))


REQUIRED_COLUMNS: tuple[str, ...] = tuple(f.name for f in TABLE_SCHEMA if not f.nullable)
TIMESTAMP_COLUMNS: tuple[str, ...] = tuple(f.name for f in FILE_SCHEMA if f.type == TIMESTAMP)

_BQ_TYPES = {
    pa.string(): "STRING",
    pa.bool_(): "BOOLEAN",
    TIMESTAMP: "TIMESTAMP",
    pa.date32(): "DATE",
}


def bigquery_type(type_: pa.DataType) -> str:
    try:
        return _BQ_TYPES[type_]
    except KeyError:
        raise ValueError(f"no BigQuery type mapped for Arrow type {type_}") from None


def bigquery_schema(schema: pa.Schema = TABLE_SCHEMA) -> list[dict]:
    """BigQuery JSON schema (as `bq mk --schema` takes it) for the whole table."""
    return [
        {
            "name": f.name,
            "type": bigquery_type(f.type),
            "mode": "NULLABLE" if f.nullable else "REQUIRED",
            "description": f.metadata[b"description"].decode(),
        }
        for f in schema
    ]


def _column_list(schema: pa.Schema) -> str:
    # No NOT NULL here: external tables read whatever the files hold, and a required column
    # in the DDL only adds a way for the table definition to be refused; the files themselves
    # declare the required columns (FILE_SCHEMA nullability) and the JSON schema says REQUIRED.
    lines = []
    for f in schema:
        desc = f.metadata[b"description"].decode().replace('"', "'")
        lines.append(f'  {f.name} {bigquery_type(f.type)} OPTIONS(description="{desc}")')
    return ",\n".join(lines)


def external_table_ddl(
    table: str = "${PROJECT}.${DATASET}.events",
    uri_prefix: str = "gs://${BUCKET}/events",
) -> str:
    """`CREATE EXTERNAL TABLE` over the pipeline's hive-partitioned Parquet.

    `table` and `uri_prefix` default to ${...} placeholders that the Makefile fills in.
    Partition columns are typed explicitly; a query must filter on one of them.
    """
    uri_prefix = uri_prefix.rstrip("/")
    partitions = ",\n".join(
        f"  {f.name} {bigquery_type(f.type)}" for f in PARTITION_SCHEMA
    )
    return (
        f"CREATE OR REPLACE EXTERNAL TABLE `{table}`\n"
        f"(\n{_column_list(FILE_SCHEMA)}\n)\n"
        f"WITH PARTITION COLUMNS (\n{partitions}\n)\n"
        "OPTIONS (\n"
        "  format = 'PARQUET',\n"
        f"  uris = ['{uri_prefix}/*'],\n"
        f"  hive_partition_uri_prefix = '{uri_prefix}',\n"
        "  require_hive_partition_filter = true\n"
        ");\n"
    )
