"""Fixed windows over the arrival stamps: the windows the writers name their files after.

Elements are stamped on arrival (``pipeline.transforms.read``), never with their own event
time, so none should be late (STACK.md trap 4); if a runner still sees some (e.g. held
watermarks), they are written in a later pane (p1, p2...) instead of dropped.
"""
from __future__ import annotations

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration

ALLOWED_LATENESS = Duration(seconds=7 * 24 * 3600)


class WindowByArrival(beam.PTransform):
    """Fixed windows of ``window_seconds`` over the arrival timestamps.

    Fires when the watermark passes the window end, then once per late element (pane > 0)
    within ALLOWED_LATENESS: late data is written, never dropped.
    """

    def __init__(self, window_seconds: int):
        super().__init__()
        if not isinstance(window_seconds, int) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a positive int, got {window_seconds!r}")
        self.window_seconds = window_seconds

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        if pcoll.is_bounded:
            # Batch: nothing is late (one pass, all stamped on arrival) and the default
            # trigger lets the runner use its fast batch GroupByKey.
            return pcoll | "FixedWindows" >> beam.WindowInto(window.FixedWindows(self.window_seconds))
        return pcoll | "FixedWindows" >> beam.WindowInto(
            window.FixedWindows(self.window_seconds),
            trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=ALLOWED_LATENESS,
        )
