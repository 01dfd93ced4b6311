"""Dead-letter records: the one shape every rejected input is written in.

Every stage routes its ``EventError`` rejections aside; the pipeline flattens them once and
writes them as JSON lines. A record carries the ORIGINAL raw delivery body (base64, so
binary garbage and whitespace survive byte for byte) and its Pub/Sub attributes, so an
operator can fix the cause and replay the payload as it was received. Pure: no Beam import.
"""
from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Mapping

import orjson

from pipeline.core.errors import EventError
from pipeline.core.timestamps import to_iso

RECORD_FIELDS: tuple[str, ...] = ("stage", "error_type", "message", "item", "payload", "attributes", "failed_at")


def dead_letter_record(
    *,
    stage: str,
    error: EventError,
    payload: bytes,
    attributes: Mapping[str, Any] | None,
    failed_at: datetime,
) -> dict[str, Any]:
    """Build the record for one rejected input.

    ``payload`` is the original delivery body, before any decoding; ``attributes`` are the
    Pub/Sub message attributes (for file replays, the source file), values as strings.
    ``item`` is the index in the Caliper envelope's ``data`` of the one item refused (the
    envelope's other events became rows), null when the whole delivery was refused.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return {
        "stage": stage,
        "error_type": error.error_type,
        "message": error.message,
        "item": error.item,
        "payload": base64.b64encode(payload).decode("ascii"),
        "attributes": {str(k): str(v) for k, v in (attributes or {}).items()},
        "failed_at": to_iso(failed_at),
    }


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One JSON line (with the trailing newline); keys sorted so equal records are equal bytes."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode_payload(record: Mapping[str, Any]) -> bytes:
    """The original delivery body of a record, for replays and tests."""
    return base64.b64decode(record["payload"], validate=True)


def encode_records(records: list[Mapping[str, Any]]) -> bytes:
    """A JSON-lines file body, lines sorted so a retried write produces the same bytes."""
    return b"".join(sorted(encode_record(r) for r in records))
