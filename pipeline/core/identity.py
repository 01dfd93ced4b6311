"""Stable identity for live events, so that retries and re-deliveries dedupe.

Canvas-format events carry no event id (``request_id`` is per request, ``job_id`` per
job), and Caliper ids are not trustworthy as a sole key: the documented examples reuse
them across different events (CATALOG.md section 7, quirk 4). Canvas also retries
deliveries, and a signed retry may be re-signed (new JWS bytes, new ``iat``/``exp``).
So the id of an event is a digest of its *decoded content*:

* Canvas: ``{"metadata": ..., "body": ...}`` (other top-level keys are not part of the event);
* Caliper: the event ``data[i]``, not the envelope (``sendTime`` changes on every send).

``decode.py`` already drops the JWT registered claims, so a signed and an unsigned
delivery of one event, or two signatures of it, hash the same. The canonical form is
orjson with sorted keys (recursively), so JSON key order does not matter either. Two
genuinely different events that happen to be byte-identical after decoding (same
request, same time, same body) get the same id: they are indistinguishable by content.
"""
from __future__ import annotations

import hashlib
from typing import Any, Mapping

import orjson

from pipeline.core.jsontext import dumps_sorted
from pipeline.core.rows import COLUMN_INDEX
from schemas.events import Row

_EVENT_ID, _REQUEST_ID, _JOB_ID = (COLUMN_INDEX[c] for c in ("event_id", "request_id", "job_id"))

EVENT_ID_HEX_CHARS = 32  # 128 bits of sha256: collision-free at any realistic volume
# Copying an empty hash object skips OpenSSL's digest lookup by name, which hashlib.sha256()
# repeats on every call (measurable on the hot path: once per event).
_SHA256 = hashlib.sha256()


def canonical_json(obj: Any) -> bytes:
    """Key-order-independent JSON bytes of ``obj`` (numbers as jsontext.loads read them: exact)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # an integer beyond 64 bits (written exactly), or not JSON at all
        return dumps_sorted(obj)


def identity_part(event: dict[str, Any]) -> Any:
    """The part of a decoded event that its id covers (Canvas: metadata + body only)."""
    if isinstance(event.get("metadata"), dict) and "body" in event:
        return {"metadata": event["metadata"], "body": event["body"]}
    return event


def event_id(event: dict[str, Any]) -> str:
    """32 hex chars of sha256 over the canonical JSON of the decoded event."""
    return event_id_of_canonical(canonical_json(identity_part(event)))


def event_id_of_canonical(canonical: bytes) -> str:
    """event_id from already-canonical bytes (lets normalize reuse its one serialization)."""
    digest = _SHA256.copy()
    digest.update(canonical)
    return digest.hexdigest()[:EVENT_ID_HEX_CHARS]


def canvas_event_id(metadata_json: bytes, body_json: bytes) -> str:
    """event_id of a Canvas event from canonical_json(metadata) and canonical_json(body).

    orjson's compact output with sorted keys writes {"metadata": m, "body": b} as
    ``{"body":<b>,"metadata":<m>}``, so the digest is fed those pieces in that order: no
    joined copy (normalize serializes each part once, for its column). A test checks this
    equals event_id of the whole event for every corpus event.
    """
    digest = _SHA256.copy()
    digest.update(b'{"body":')
    digest.update(body_json)
    digest.update(b',"metadata":')
    digest.update(metadata_json)
    digest.update(b"}")
    return digest.hexdigest()[:EVENT_ID_HEX_CHARS]


def dedupe_key(row: Row | Mapping[str, Any]) -> str:
    """Key under which duplicate deliveries collapse: ``r:<request_id>|<event_id>``.

    Job events (no request) use ``j:<job_id>|<event_id>``; events with neither use
    ``-|<event_id>``. The event id already covers the request/job id (they are in the
    hashed metadata); the prefix keeps the key readable and groups one request's events.
    ``row`` is a ``schemas.events.Row`` (read by position, see its docstring), or the columns
    of a row by name (a file's rows read back as dicts).
    """
    if isinstance(row, tuple):
        request_id, job_id, event = row[_REQUEST_ID], row[_JOB_ID], row[_EVENT_ID]
    else:
        request_id, job_id, event = row.get("request_id"), row.get("job_id"), row["event_id"]
    if request_id:
        return f"r:{request_id}|{event}"
    if job_id:
        return f"j:{job_id}|{event}"
    return f"-|{event}"
