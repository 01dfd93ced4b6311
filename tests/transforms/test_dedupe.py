"""DedupeEvents on its own: TestPipeline + assert_that, bounded (Create) and unbounded (TestStream)."""
from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_pipeline, test_stream
from apache_beam.testing.util import assert_that, equal_to, equal_to_per_window
from apache_beam.transforms import window
from apache_beam.transforms.window import TimestampedValue

from pipeline.transforms.dedupe import DedupeEvents
from tests.support.rows import COLUMN, distinct_rows, row_key, with_values

KID = COLUMN["kid"]


def _key_and_kid(row: tuple) -> tuple[str, str]:
    return row_key(row), row[KID]


def test_bounded_keeps_the_earliest_arrival_of_each_key() -> None:
    rows = distinct_rows(5)
    # Every event three times; the copy stamped at 10 s arrived first, whatever the order here.
    copies = [TimestampedValue(with_values(r, kid=f"arrived-{t}"), t) for t in (30, 10, 20) for r in rows]
    with test_pipeline.TestPipeline() as p:
        kept = p | beam.Create(copies) | DedupeEvents(ttl_seconds=600)
        assert_that(kept | beam.Map(_key_and_kid), equal_to([(row_key(r), "arrived-10") for r in rows]))
        # The arrival time travels with the kept row (the batch GroupByKey would lose it).
        stamps = kept | beam.Map(lambda row, ts=beam.DoFn.TimestampParam: ts.micros // 1_000_000)
        assert_that(stamps, equal_to([10] * len(rows)), label="KeptArrivalTimes")


def test_unbounded_drops_copies_within_the_ttl_in_any_later_window() -> None:
    rows = distinct_rows(4)
    fresh = distinct_rows(5)[4]
    stream = (
        test_stream.TestStream()
        .advance_watermark_to(0)
        .add_elements([TimestampedValue(with_values(r, kid="first"), 10) for r in rows])
        .add_elements([TimestampedValue(with_values(r, kid="retry"), 20) for r in rows[:2]])  # same window
        .advance_watermark_to(70)
        .add_elements([TimestampedValue(with_values(r, kid="re-signed"), 75) for r in rows])  # next window
        .add_elements([TimestampedValue(with_values(fresh, kid="first"), 80)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with test_pipeline.TestPipeline(options=options) as p:
        kept = (
            p
            | stream
            | DedupeEvents(ttl_seconds=3600)
            | beam.WindowInto(window.FixedWindows(60))
            | beam.Map(_key_and_kid)
        )
        assert_that(kept, equal_to_per_window({
            window.IntervalWindow(0, 60): [(row_key(r), "first") for r in rows],
            window.IntervalWindow(60, 120): [(row_key(fresh), "first")],
        }), reify_windows=True)


def test_unbounded_forgets_a_key_once_its_ttl_has_passed() -> None:
    [row] = distinct_rows(1)
    ttl = 60
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(with_values(row, kid="first"), 10)])
        .advance_processing_time(ttl // 2)
        .add_elements([TimestampedValue(with_values(row, kid="within-ttl"), 15)])  # dropped
        # The DoFn sets its REAL_TIME timer from the wall clock (Timestamp.now(), as on Dataflow)
        # while TestStream's processing time starts near zero: move it past now + TTL.
        .advance_processing_time(int(time.time()) + 2 * ttl)
        .add_elements([TimestampedValue(with_values(row, kid="after-ttl"), 20)])  # written again
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with test_pipeline.TestPipeline(options=options) as p:
        kept = p | stream | DedupeEvents(ttl_seconds=ttl) | beam.Map(_key_and_kid)
        assert_that(kept, equal_to([(row_key(row), "first"), (row_key(row), "after-ttl")]))


@pytest.mark.parametrize("ttl", [0, -1, 1.5, True, "600"])
def test_ttl_must_be_a_positive_int(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        DedupeEvents(ttl_seconds=ttl)  # type: ignore[arg-type]
