"""pipeline/deadletter.py: the one dead-letter record shape, holding the original bytes."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pipeline.core.errors import EventError
from pipeline.deadletter import RECORD_FIELDS, dead_letter_record, decode_payload, encode_record, encode_records

UTC = timezone.utc


def test_dead_letter_record_keeps_original_bytes() -> None:
    raw = b"\xff\x00 not utf-8 \n"
    record = dead_letter_record(
        stage="VerifyAndDecode", error=EventError("unknown_format", "nope"), payload=raw,
        attributes={"source_file": "in.txt", "n": 3}, failed_at=datetime(2024, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    assert tuple(sorted(record)) == tuple(sorted(RECORD_FIELDS))
    assert decode_payload(json.loads(encode_record(record))) == raw
    assert record["attributes"] == {"source_file": "in.txt", "n": "3"}
    assert record["failed_at"] == "2024-01-01T00:00:01.000005Z"
    other = {**record, "payload": "AA=="}
    assert encode_records([record, other]) == encode_records([other, record])
    with pytest.raises(ValueError):
        dead_letter_record(stage="s", error=EventError("empty_body", "e"), payload=b"", attributes=None,
                           failed_at=datetime(2024, 1, 1))
