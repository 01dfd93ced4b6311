"""DedupeEvents: drop repeated deliveries of one event, remembering keys for a TTL.

Canvas retries deliveries and may re-sign them, so the key is the decoded event's
``dedupe_key`` (request/job id + content digest), never the token bytes. State is per key
AND window, so this runs in the GLOBAL window, before windowing (STACK.md trap 6); the
key's state is cleared by a processing-time (REAL_TIME) timer ``ttl_seconds`` after first
sight, so memory stays bounded in streaming and a copy arriving after the TTL is written
again (at-least-once beyond the TTL, by design; ``canvas-events compact`` folds such copies
at rest). The pipeline uses it for streaming only: a batch replay dedupes in its one
group-by-partition write (``WriteDedupedPartitions``). Given bounded input it still keeps
the first copy of every key (a GroupByKey). Element timestamps (arrival times) are passed
through unchanged.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable, Iterator

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline.core.identity import dedupe_key
from pipeline.transforms.common import counter
from schemas.events import Row

_SEEN = userstate.ReadModifyWriteStateSpec("seen", BooleanCoder())
_EXPIRY = userstate.TimerSpec("expiry", TimeDomain.REAL_TIME)


class _DedupeFn(beam.DoFn):
    def __init__(self, ttl_seconds: int):
        self._ttl = Duration(seconds=ttl_seconds)

    def setup(self) -> None:
        self._dropped = counter("duplicates_dropped")

    def process(
        self,
        keyed: tuple[str, Row],
        seen: Any = beam.DoFn.StateParam(_SEEN),
        expiry: Any = beam.DoFn.TimerParam(_EXPIRY),
    ) -> Iterator[Row]:
        if seen.read():
            self._dropped.inc()
            return
        seen.write(True)
        expiry.set(Timestamp.now() + self._ttl)
        yield keyed[1]

    @userstate.on_timer(_EXPIRY)
    def _expire(self, seen: Any = beam.DoFn.StateParam(_SEEN)) -> None:
        seen.clear()


def _keyed(row: Row) -> tuple[str, Row]:
    return dedupe_key(row), row


def _first_of_group(keyed: tuple[str, Iterable[tuple[int, Row]]]) -> Iterator[Any]:
    """Batch: the earliest-arriving copy of each key, re-stamped with its arrival time.

    After a GroupByKey in batch, elements carry the end-of-global-window timestamp, which
    cannot be windowed again (STACK.md trap 7), so each row's arrival stamp travels with it.
    """
    copies = iter(keyed[1])
    first = next(copies)
    dropped = 0
    for candidate in copies:
        dropped += 1
        if candidate[0] < first[0]:
            first = candidate
    if dropped:
        _batch_dropped.inc(dropped)
    yield TimestampedValue(first[1], _timestamp(first[0]))


@functools.lru_cache(maxsize=1024)
def _timestamp(micros: int) -> Timestamp:
    """A replay stamps every line with one arrival time: build that Timestamp once, not per row."""
    return Timestamp(micros=micros)


_batch_dropped = counter("duplicates_dropped")


def _keyed_with_arrival(row: Row, ts: Timestamp = beam.DoFn.TimestampParam) -> tuple[str, Any]:
    return dedupe_key(row), (ts.micros, row)


class DedupeEvents(beam.PTransform):
    """Rows (global window) -> the first of each ``dedupe_key`` seen within ``ttl_seconds``.

    No dead-letter output: nothing here can reject. Dropped copies are counted
    (``duplicates_dropped``).
    """

    def __init__(self, ttl_seconds: int):
        super().__init__()
        if not isinstance(ttl_seconds, int) or isinstance(ttl_seconds, bool) or ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be a positive int, got {ttl_seconds!r}")
        self.ttl_seconds = ttl_seconds

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        if rows.is_bounded:
            # Batch: a run is one pass shorter than any sensible TTL, so "first copy per key"
            # is the same result; a GroupByKey gets it without per-key state and timers,
            # which cost several times more per element on the FnApiRunner.
            return (
                rows
                | "KeyByDedupeKey" >> beam.Map(_keyed_with_arrival).with_output_types(tuple[str, Any])
                | "GroupByDedupeKey" >> beam.GroupByKey()
                | "FirstOfEachKey" >> beam.FlatMap(_first_of_group)
            )
        return (
            rows
            | "KeyByDedupeKey" >> beam.Map(_keyed).with_output_types(tuple[str, Any])
            | "DropDuplicates" >> beam.ParDo(_DedupeFn(self.ttl_seconds)).with_input_types(tuple[str, Any])
        )
