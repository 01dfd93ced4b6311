"""The Row codec and checks (pipeline/core/rows.py), Parquet bytes, sorting and sharding
(pipeline/arrow.py) and file names (pipeline/filenames.py).

(Dead-letter records: test_deadletter.py; the stage DoFns: tests/transforms/.)"""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from pipeline.arrow import LARGE_FILE_ROWS, SMALL_FILE_STATISTICS, UNSTATISTICAL_COLUMNS, rows_to_parquet_bytes, shard, sorted_rows
from pipeline.core.decode import decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.identity import dedupe_key
from pipeline.core.partition import partition_path
from pipeline.core.rows import datetime_of, micros_of, row_dict, row_of, validate_row
from pipeline.filenames import TEMP_PREFIX, part_file_name, temp_name_for, window_date
from schemas.events import FILE_SCHEMA, ROW_COLUMNS, TIMESTAMP_COLUMNS, Row
from tests.pipeline.helpers import corpus_payloads
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
    assert {c.compression for c in columns.values()} == {"SNAPPY"}  # a small file
    assert columns["event_time"].statistics.min == min(r["event_time"] for r in rows)
    assert columns["received_at"].statistics.max == max(r["received_at"] for r in rows)
    assert {name for name, c in columns.items() if c.is_stats_set} == set(SMALL_FILE_STATISTICS)
    assert pq.read_table(io.BytesIO(rows_to_parquet_bytes([]))).num_rows == 0


def test_large_files_are_zstd_with_dictionaries() -> None:
    rows = [row_of(r) for r in _rows()]
    many = (rows * (LARGE_FILE_ROWS // len(rows) + 1))[:LARGE_FILE_ROWS]
    metadata = pq.ParquetFile(io.BytesIO(rows_to_parquet_bytes(many))).metadata
    column = metadata.row_group(0).column(FILE_SCHEMA.names.index("event_id"))
    assert (metadata.num_rows, column.compression) == (LARGE_FILE_ROWS, "ZSTD")
    assert "RLE_DICTIONARY" in column.encodings
    stats = {metadata.row_group(0).column(i).path_in_schema for i in range(metadata.num_columns)
             if metadata.row_group(0).column(i).is_stats_set}
    assert stats == set(FILE_SCHEMA.names) - UNSTATISTICAL_COLUMNS  # large files: every column but free text
    small = pq.ParquetFile(io.BytesIO(rows_to_parquet_bytes(many[:-1]))).metadata.row_group(0).column(0)
    assert small.compression == "SNAPPY" and "RLE_DICTIONARY" not in small.encodings


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


