"""What travels between the pipeline stages, and the one dead-letter convention.

A ``Delivery`` is one raw body as it arrived (Pub/Sub message or file line) with its
attributes. It travels with each decoded event (``PendingEvent``) until normalization, so
a rejection at any stage before a row exists can dead-letter the ORIGINAL bytes.
Every stage emits rejections on the ``dead_letter`` tagged output, as records built by
``pipeline.deadletter``; counters share one namespace so a run's summary reads them back.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.core.decode import DecodedEvent
from pipeline.core.errors import EventError
from pipeline.deadletter import dead_letter_record

DEAD_LETTER = "dead_letter"
METRICS_NAMESPACE = "canvas_events"
REJECTED_PREFIX = "rejected_"


class Delivery(NamedTuple):
    """One raw delivery body and its Pub/Sub attributes (file replays: the source file)."""

    raw: bytes
    attributes: dict[str, str]
    received_at: datetime | None = None


class PendingEvent(NamedTuple):
    """One decoded event, still carrying the delivery it came in."""

    decoded: DecodedEvent
    delivery: Delivery


_GLOBAL_WINDOWS = (GlobalWindow(),)  # built once: GlobalWindow() parses a proto every time


def in_global_window(value: Any, timestamp: Timestamp = MIN_TIMESTAMP) -> WindowedValue:
    """``value`` as an element of the global window, stamped ``timestamp``: what a DoFn
    yields from finish_bundle, or instead of a TimestampedValue, which the runner would
    window anew for every element."""
    return WindowedValue(value, timestamp, _GLOBAL_WINDOWS)


def counter(name: str) -> Any:
    return Metrics.counter(METRICS_NAMESPACE, name)


class RejectCounters:
    """One counter per (stage, error_type), created on first use (DoFns are pickled: no globals)."""

    def __init__(self) -> None:
        self._counters: dict[str, Any] = {}

    def inc(self, error_type: str) -> None:
        c = self._counters.get(error_type)
        if c is None:
            c = self._counters[error_type] = counter(REJECTED_PREFIX + error_type)
        c.inc()


def dead_letter_for(stage: str, error: EventError, delivery: Delivery) -> dict[str, Any]:
    """The dead-letter record of ``delivery`` rejected by ``stage`` now."""
    return dead_letter_record(
        stage=stage,
        error=error,
        payload=delivery.raw,
        attributes=delivery.attributes,
        failed_at=datetime.now(timezone.utc),
    )
