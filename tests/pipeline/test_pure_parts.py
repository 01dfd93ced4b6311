"""The pure parts of the pipeline shell: Rows, Parquet bytes and names, dead-letter
records, and the stage DoFns called directly (no pipeline)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from apache_beam.pvalue import TaggedOutput

from pipeline.core.decode import decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.identity import dedupe_key
from pipeline.core.partition import partition_path
from pipeline.deadletter import RECORD_FIELDS, dead_letter_record, decode_payload, encode_record, encode_records
from pipeline.arrow import UNSTATISTICAL_COLUMNS, rows_to_parquet_bytes, shard, sorted_rows
from pipeline.core.rows import datetime_of, micros_of, row_dict, row_of, validate_row
from pipeline.filenames import TEMP_PREFIX, part_file_name, temp_name_for, window_date
from devkit.signing import DemoSigner
from pipeline.transforms.common import Delivery, PendingEvent
from pipeline.transforms.normalize import _NormalizeFn
from pipeline.transforms.verify import _VerifyAndDecodeFn
from schemas.events import FILE_SCHEMA, ROW_COLUMNS, TIMESTAMP_COLUMNS, Row
from tests.pipeline.helpers import corpus_payloads, sign
from tests.support.rows import normalized

UTC = timezone.utc


def _rows(n: int | None = None) -> list[dict]:
    rows = []
    for payload in corpus_payloads()[:n]:
        for event in decode_delivery(json.dumps(payload).encode(), verifier=None, allow_unsigned=True):
            rows.append(normalized(event, received_at=datetime(2024, 1, 1, tzinfo=UTC)))
    return rows


def test_corpus_rows_round_trip_through_row_tuples() -> None:
    rows = _rows()
    for row in rows:
        values = row_of(row)
        assert len(values) == len(ROW_COLUMNS)
        assert all(type(values[ROW_COLUMNS.index(c)]) is int for c in TIMESTAMP_COLUMNS if row[c] is not None)
        assert row_dict(values) == row  # timestamps exact to the microsecond
        assert dedupe_key(values) == dedupe_key(row)
        assert partition_path(values) == partition_path(row)


def test_rows_cross_beams_coder_as_rows_and_plain_tuples_read_alike() -> None:
    from apache_beam.coders import FastPrimitivesCoder

    coder = FastPrimitivesCoder()
    for row in map(row_of, _rows(5)):
        assert type(row) is Row
        back = coder.decode(coder.encode(row))
        assert type(back) is Row and back == row
        plain = tuple(row)  # as a streaming job updated in place may hold it
        assert (dedupe_key(plain), partition_path(plain)) == (dedupe_key(row), partition_path(row))
        assert sorted_rows([plain]) == [row]


@pytest.mark.parametrize("moment", [
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # negative micros: still the right day
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=5))),  # 2024-02-29 19:00 UTC
])
def test_timestamps_and_partition_days_are_exact(moment: datetime) -> None:
    assert datetime_of(micros_of(moment)) == moment
    row = {**_rows(1)[0], "event_time": moment.astimezone(UTC)}
    assert partition_path(row_of(row)) == partition_path(row)


def test_corpus_rows_round_trip_through_parquet() -> None:
    rows = _rows()
    data = rows_to_parquet_bytes([row_of(r) for r in rows])
    table = pq.read_table(io.BytesIO(data))
    assert table.schema == FILE_SCHEMA  # types, nullability and descriptions; event_name is not in the file
    assert table.to_pylist() == [{k: v for k, v in r.items() if k != "event_name"} for r in rows]
    metadata = pq.ParquetFile(io.BytesIO(data)).metadata
    columns = {metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
               for i in range(metadata.num_columns)}
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    assert columns["event_time"].statistics.min == min(r["event_time"] for r in rows)
    assert all(not columns[name].is_stats_set for name in UNSTATISTICAL_COLUMNS)
    assert pq.read_table(io.BytesIO(rows_to_parquet_bytes([]))).num_rows == 0


@pytest.mark.parametrize("change,error_type", [
    (lambda r: r.pop("user_id"), "missing_field"),
    (lambda r: r.update(event_id=None), "missing_field"),
    (lambda r: r.update(event_time=None), "missing_field"),
    (lambda r: r.update(event_name=""), "missing_field"),
    (lambda r: r.update(user_id=5), "invalid_field"),
    (lambda r: r.update(user_id=True), "invalid_field"),
    (lambda r: r.update(signed="yes"), "invalid_field"),
    (lambda r: r.update(event_time=datetime(2024, 1, 1)), "invalid_field"),
    (lambda r: r.update(received_at="2024-01-01T00:00:00Z"), "invalid_field"),
    (lambda r: r.update(extra_column="x"), "invalid_field"),
    (lambda r: (r.pop("user_id"), r.update(extra_column="x")), "missing_field"),
])
def test_row_checks_reject_what_parquet_would_not_take(change, error_type: str) -> None:
    row = _rows(1)[0]
    change(row)
    for check in (validate_row, row_of):
        with pytest.raises(EventError) as caught:
            check(row)
        assert caught.value.error_type == error_type, check


def test_row_of_takes_what_validate_row_takes() -> None:
    class Name(str):
        pass

    row = {**_rows(1)[0], "user_id": Name("42")}
    validate_row(row)
    assert row_dict(row_of(row)) == row


def test_file_names_are_deterministic_and_temp_names_hidden() -> None:
    start = int(datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1e6)
    end = start + 300 * 10**6
    name = part_file_name(start, end, 2, 1, run_id="0123abcd4567")
    assert name == "part-20240301T120000Z-20240301T120500Z-p2-s001-0123abcd4567.parquet"
    assert part_file_name(start, end, 2, 1, run_id="0123abcd4567") == name
    assert part_file_name(start, end, 2, 1, run_id="another0run1") != name  # another run: another file
    assert temp_name_for(name, "abc").startswith(TEMP_PREFIX) and temp_name_for(name, "abc") != name
    assert window_date(start) == "2024-03-01"


def test_sorting_and_sharding() -> None:
    rows = [row_of(r) for r in _rows(20)]
    ordered = sorted_rows(reversed(rows))
    assert ordered == sorted_rows(rows)
    assert [row_dict(r)["event_time"] for r in ordered] == sorted(row_dict(r)["event_time"] for r in rows)
    assert [len(s) for s in shard(list(range(25)), 10)] == [10, 10, 5]
    assert shard([], 10) == [[]]


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


def test_verify_fn_routes_rejections_with_the_raw_delivery(tmp_path) -> None:
    signer = DemoSigner(kid="k1")
    signer.write_jwks(tmp_path / "jwks.json")
    fn = _VerifyAndDecodeFn([str(tmp_path / "jwks.json")], False, {}, 1024 * 1024)
    fn.setup()
    payload = corpus_payloads()[0]
    good = Delivery(sign(signer, payload), {"a": "1"}, None)
    [pending] = list(fn.process(good))
    assert isinstance(pending, PendingEvent) and pending.delivery is good and pending.decoded.kid == "k1"
    bad = Delivery(sign(DemoSigner(kid="k1"), payload), {"a": "2"}, None)
    [out] = list(fn.process(bad))
    assert isinstance(out, TaggedOutput) and out.tag == "dead_letter"
    assert out.value["error_type"] == "bad_signature" and decode_payload(out.value) == bad.raw
    assert out.value["attributes"] == {"a": "2"}


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
