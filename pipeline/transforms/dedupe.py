"""DedupeEvents: drop repeated deliveries of one event, remembering keys for a TTL.

Canvas retries deliveries and may re-sign them, so the key is the decoded event's
``dedupe_key`` (request/job id + content digest), never the token bytes. State is per key
AND window, so this runs in the GLOBAL window, before windowing (STACK.md trap 6); the
key's state is cleared by a processing-time (REAL_TIME) timer ``ttl_seconds`` after first
sight, so memory stays bounded in streaming and a copy arriving after the TTL is written
again (at-least-once beyond the TTL, by design). The same transform serves batch, where a
run is shorter than the TTL and every copy after the first is dropped. Element timestamps
(arrival times) are passed through unchanged.
"""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline.core.identity import dedupe_key
from pipeline.transforms.common import counter

_SEEN = userstate.ReadModifyWriteStateSpec("seen", BooleanCoder())
_EXPIRY = userstate.TimerSpec("expiry", TimeDomain.REAL_TIME)


class _DedupeFn(beam.DoFn):
    def __init__(self, ttl_seconds: int):
        self._ttl = Duration(seconds=ttl_seconds)

    def setup(self) -> None:
        self._dropped = counter("duplicates_dropped")

    def process(
        self,
        keyed: tuple[str, dict[str, Any]],
        seen: Any = beam.DoFn.StateParam(_SEEN),
        expiry: Any = beam.DoFn.TimerParam(_EXPIRY),
    ) -> Iterator[dict[str, Any]]:
        if seen.read():
            self._dropped.inc()
            return
        seen.write(True)
        expiry.set(Timestamp.now() + self._ttl)
        yield keyed[1]

    @userstate.on_timer(_EXPIRY)
    def _expire(self, seen: Any = beam.DoFn.StateParam(_SEEN)) -> None:
        seen.clear()


def _keyed(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return dedupe_key(row), row


class DedupeEvents(beam.PTransform):
    """Rows (global window) -> the first row of each ``dedupe_key`` seen within ``ttl_seconds``.

    No dead-letter output: nothing here can reject. Dropped copies are counted
    (``duplicates_dropped``).
    """

    def __init__(self, ttl_seconds: int):
        super().__init__()
        if not isinstance(ttl_seconds, int) or isinstance(ttl_seconds, bool) or ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be a positive int, got {ttl_seconds!r}")
        self.ttl_seconds = ttl_seconds

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "KeyByDedupeKey" >> beam.Map(_keyed).with_output_types(tuple[str, Any])
            | "DropDuplicates" >> beam.ParDo(_DedupeFn(self.ttl_seconds)).with_input_types(tuple[str, Any])
        )
