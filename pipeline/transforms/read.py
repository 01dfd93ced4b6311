"""Read raw deliveries: Pub/Sub (streaming) or files of one body per line (batch replay).

Both emit ``Delivery`` elements stamped with their ARRIVAL time, because windows are by
arrival (STACK.md trap 4): Pub/Sub elements get ``max(publish_time, now)`` (the DirectRunner
source moves the watermark to wall-clock time after each pull, so a message stamped with
its older publish time can count as late and vanish); file lines all get the run's start
time, so a replay of events days old is one on-time window, never late data.
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io.textio import ReadFromTextWithFilename
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from pipeline.contract import RECEIVED_AT, SOURCE_FILE
from pipeline.core.errors import EventError
from pipeline.core.timestamps import parse_timestamp
from pipeline.transforms.common import Delivery, counter, in_global_window

log = logging.getLogger(__name__)
PROGRESS_EVERY = 50_000


def _received_at(attributes: dict[str, str], fallback: datetime | None) -> datetime | None:
    value = attributes.get(RECEIVED_AT)
    if value:
        try:
            return parse_timestamp(value, field=RECEIVED_AT)
        except EventError:
            pass  # a bad attribute is not a reason to lose the event: fall back
    return fallback


class _PubSubToDeliveryFn(beam.DoFn):
    def __init__(self, restamp: bool = True):
        self._restamp = restamp

    def setup(self) -> None:
        self._read = counter("deliveries_read")

    def process(self, message: Any, ts: Timestamp = beam.DoFn.TimestampParam) -> Iterator[Any]:
        self._read.inc()
        attributes = dict(message.attributes or {})
        published = ts.to_utc_datetime(has_tz=True) if ts > Timestamp(0) else None
        delivery = Delivery(bytes(message.data or b""), attributes, _received_at(attributes, published))
        yield TimestampedValue(delivery, max(ts, Timestamp.now()) if self._restamp else ts)


class ReadPubSubDeliveries(beam.PTransform):
    """Pub/Sub subscription -> ``Delivery`` (attributes kept), stamped ``max(publish_time, now)``.

    ``stamped_on_pull``: the local reader of ``held_acks`` already stamped each message with
    the time it was pulled (and holds its acknowledgement until that window is written); the
    stamp is kept as it is, so the ledger knows the window of every message.
    """

    def __init__(self, subscription: str, *, stamped_on_pull: bool = False):
        super().__init__()
        self.subscription = subscription
        self.stamped_on_pull = stamped_on_pull

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "ReadFromPubSub" >> beam.io.ReadFromPubSub(subscription=self.subscription, with_attributes=True)
            | "ToDelivery" >> beam.ParDo(_PubSubToDeliveryFn(restamp=not self.stamped_on_pull))
        )


def _strip_eol(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


class _LineToDeliveryFn(beam.DoFn):
    def __init__(self, arrival: Timestamp):
        self._arrival = arrival

    def setup(self) -> None:
        self._read = counter("deliveries_read")
        self._received_at = self._arrival.to_utc_datetime(has_tz=True)
        self._seen = 0

    def process(self, file_and_line: tuple[str, bytes]) -> Iterator[Any]:
        self._read.inc()
        self._seen += 1
        if self._seen % PROGRESS_EVERY == 0:  # progress on long replays (per worker thread)
            log.info("read %d deliveries so far", self._seen)
        path, line = file_and_line
        yield in_global_window(Delivery(_strip_eol(line), {SOURCE_FILE: path}, self._received_at), self._arrival)


class ReadDeliveryFiles(beam.PTransform):
    """File glob (local or gs://, gzip detected by extension) -> ``Delivery`` per line.

    Lines are read as bytes (non-UTF-8 garbage is dead-lettered byte for byte). Every
    element is stamped with ``arrival`` (the run's start) and ``received_at`` is that time.
    Splittable, so large files are read in parallel.
    """

    def __init__(self, file_pattern: str, arrival: Timestamp | None = None):
        super().__init__()
        self.file_pattern = file_pattern
        self.arrival = arrival if arrival is not None else Timestamp.now()

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            # validate=False: preflight_io already checked the glob, and building the graph
            # (e.g. a Dataflow launch) should not list gs:// again.
            | "ReadLines" >> ReadFromTextWithFilename(self.file_pattern, coder=BytesCoder(), validate=False)
            | "ToDelivery" >> beam.ParDo(_LineToDeliveryFn(self.arrival))
        )

