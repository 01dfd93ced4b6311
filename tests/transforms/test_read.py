"""ReadDeliveryFiles on its own: files of one delivery per line -> ``Delivery`` per line, bytes
as they were (CRLF and non-UTF-8 included, gzip by extension), the source file as an attribute,
every element stamped with the run's arrival time."""
from __future__ import annotations

import gzip
from datetime import datetime, timezone
from pathlib import Path

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from pipeline.contract import SOURCE_FILE as SOURCE_FILE_ATTRIBUTE
from pipeline.transforms.read import ReadDeliveryFiles

ARRIVAL = Timestamp(seconds=1_700_000_000)


def test_every_line_of_every_file_becomes_one_delivery(tmp_path: Path) -> None:
    plain, zipped = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    plain.write_bytes(b'{"metadata": {}}\r\n\xff not utf-8\neyJ.token.sig\n')
    zipped.write_bytes(gzip.compress(b'{"data": []}\n'))
    received = datetime.fromtimestamp(1_700_000_000, timezone.utc)

    with test_pipeline.TestPipeline() as p:
        deliveries = p | ReadDeliveryFiles(str(tmp_path / "*.jsonl*"), arrival=ARRIVAL)
        seen = deliveries | beam.Map(
            lambda d, ts=beam.DoFn.TimestampParam: (d.raw, Path(d.attributes[SOURCE_FILE_ATTRIBUTE]).name,
                                                    d.received_at, ts))
        assert_that(seen, equal_to([
            (b'{"metadata": {}}', "a.jsonl", received, ARRIVAL),
            (b"\xff not utf-8", "a.jsonl", received, ARRIVAL),
            (b"eyJ.token.sig", "a.jsonl", received, ARRIVAL),
            (b'{"data": []}', "b.jsonl.gz", received, ARRIVAL),
        ]))
