"""NormalizeEvents: the DoFn called directly, and the transform on its own in a TestPipeline
(main output ``rows``, row tuples in schema order, and the ``dead_letter`` output)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import apache_beam as beam
import pytest
from apache_beam.pvalue import TaggedOutput
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.decode import decode_delivery
from pipeline.core.normalize import normalize
from pipeline.deadletter import decode_payload
from pipeline.core.rows import row_dict, validate_row
from tests.support.rows import normalized
from pipeline.transforms.common import Delivery, PendingEvent
from pipeline.transforms.normalize import NormalizeEvents, _NormalizeFn
from tests.pipeline.helpers import corpus_payloads
from tests.support.rows import COLUMN

UTC = timezone.utc


def test_normalize_fn_dead_letters_the_whole_original_delivery() -> None:
    payload = json.loads(json.dumps(next(p for p in corpus_payloads() if "metadata" in p)))
    payload["metadata"]["event_time"] = "soon"
    raw = json.dumps(payload).encode()
    delivery = Delivery(raw, {}, datetime.now(UTC) - timedelta(seconds=1))
    [event] = decode_delivery(raw, verifier=None, allow_unsigned=True)
    fn = _NormalizeFn("hash", "salt")
    fn.setup()
    [out] = list(fn.process(PendingEvent(event, delivery)))
    assert out.tag == "dead_letter" and out.value["stage"] == "NormalizeEvents"
    assert out.value["error_type"] == "bad_timestamp" and decode_payload(out.value) == raw
    event = next(e for p in corpus_payloads()
                 for e in decode_delivery(json.dumps(p).encode(), verifier=None, allow_unsigned=True)
                 if normalized(e)["user_login"])
    [values] = list(fn.process(PendingEvent(event, delivery)))
    row = row_dict(values)
    validate_row(row)
    assert row["received_at"] == delivery.received_at
    assert row["user_login"] and row["user_login"] != normalized(event)["user_login"]  # --pii=hash applied


def test_normalize_fn_dead_letters_one_bad_item_of_an_envelope_with_its_index() -> None:
    # IMS's mixed batch shape: an entity beside events. The events are rows; the entity alone
    # is a dead letter naming data[1], holding the original delivery bytes.
    envelope = json.loads(json.dumps(next(p for p in corpus_payloads() if "data" in p)))
    second = json.loads(json.dumps(envelope["data"][0]))
    second["id"] = "urn:uuid:00000000-0000-4000-8000-000000000002"
    envelope["data"] = [envelope["data"][0], {"id": "https://x.example/users/9", "type": "Person"}, second]
    raw = json.dumps(envelope).encode()
    delivery = Delivery(raw, {"k": "v"}, None)
    fn = _NormalizeFn("keep", None)
    fn.setup()
    outputs = [out for event in decode_delivery(raw, verifier=None, allow_unsigned=True)
               for out in fn.process(PendingEvent(event, delivery))]
    dead = [o.value for o in outputs if isinstance(o, TaggedOutput)]
    rows = [row_dict(o) for o in outputs if not isinstance(o, TaggedOutput)]
    assert [r["caliper_event_id"] for r in rows] == [envelope["data"][0]["id"], second["id"]]
    [record] = dead
    assert (record["error_type"], record["item"]) == ("missing_field", 1)
    assert record["message"].startswith("data[1]: ") and "Person" in record["message"]
    assert decode_payload(record) == raw and record["attributes"] == {"k": "v"}


def _pending(payload: dict, received_at: datetime | None = None) -> list[PendingEvent]:
    raw = json.dumps(payload).encode()
    delivery = Delivery(raw, {"source_file": "in.jsonl"}, received_at)
    return [PendingEvent(e, delivery) for e in decode_delivery(raw, verifier=None, allow_unsigned=True)]


def test_transform_turns_events_into_rows_and_bad_ones_into_dead_letters() -> None:
    received = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    good = [e for p in corpus_payloads()[:6] for e in _pending(p, received)]
    bad_payload = json.loads(json.dumps(next(p for p in corpus_payloads() if "metadata" in p)))
    bad_payload["metadata"]["event_time"] = "soon"
    [bad] = _pending(bad_payload)
    expected_ids = [normalize(e.decoded).event_id for e in good]

    with test_pipeline.TestPipeline() as p:
        outputs = p | beam.Create([*good, bad]) | NormalizeEvents()
        rows = outputs.rows | beam.Map(lambda row: (row[COLUMN["event_id"]], row[COLUMN["received_at"]]))
        received_micros = int(received.timestamp()) * 1_000_000
        assert_that(rows, equal_to([(event_id, received_micros) for event_id in expected_ids]))
        dead = outputs.dead_letter | beam.Map(lambda r: (r["stage"], r["error_type"], decode_payload(r)))
        assert_that(dead, equal_to([("NormalizeEvents", "bad_timestamp", bad.delivery.raw)]), label="DeadLetters")


def test_transform_checks_its_pii_arguments() -> None:
    with pytest.raises(ValueError, match="pii must be one of"):
        NormalizeEvents(pii="drop-everything")
    with pytest.raises(ValueError, match="salt"):
        NormalizeEvents(pii="hash")
