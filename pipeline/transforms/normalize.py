"""NormalizeEvents: decoded events -> rows of the event table (PII policy applied).

Wraps ``pipeline.core.normalize.normalize`` (which checks the row fits the file schema as it
packs it into a ``schemas.events.Row``: a row that would fail the Parquet write is rejected
here, while the original delivery is still at hand to be dead-lettered, instead of failing a
whole file later) and ``pipeline.core.pii.apply_pii``. Rows leave as ``Row``s, tuples of
primitives, because they cross two shuffles, where that is far cheaper to encode than a dict
with datetimes.
"""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipeline.core.errors import EventError
from pipeline.core.ingest import NORMALIZE_STAGE
from pipeline.core.normalize import normalize
from pipeline.core.pii import apply_pii, pii_setting_problem
from pipeline.transforms.common import DEAD_LETTER, PendingEvent, RejectCounters, counter, dead_letter_for

STAGE = NORMALIZE_STAGE


class _NormalizeFn(beam.DoFn):
    def __init__(self, pii: str, pii_salt: str | None):
        self._pii = pii
        self._pii_salt = pii_salt

    def setup(self) -> None:
        self._normalized = counter("rows_normalized")
        self._rejected = RejectCounters()

    def process(self, pending: PendingEvent) -> Iterator[Any]:
        decoded, delivery = pending
        try:
            row = normalize(decoded, received_at=delivery.received_at)
            if self._pii != "keep":
                row = apply_pii(row, self._pii, self._pii_salt)
        except EventError as error:
            self._rejected.inc(error.error_type)
            yield TaggedOutput(DEAD_LETTER, dead_letter_for(STAGE, error, delivery))
            return
        self._normalized.inc()
        yield row


class NormalizeEvents(beam.PTransform):
    """``PendingEvent`` -> ``schemas.events.Row`` (timestamps as int microseconds;
    ``pipeline.core.rows.row_dict`` gives the columns by name).

    Outputs: main (``rows``) and ``dead_letter`` (events that cannot be normalized, e.g.
    ``bad_timestamp``, ``missing_field``, ``invalid_field``, ``caliper_v1p0``). The record
    holds the whole original delivery; for one bad item of a Caliper envelope its ``item``
    is that item's index in ``data`` (and the message says ``data[i]``), while the
    envelope's other events still become rows.
    """

    def __init__(self, pii: str = "keep", pii_salt: str | None = None):
        super().__init__()
        problem = pii_setting_problem(pii, pii_salt)
        if problem:
            raise ValueError(problem)
        self._fn = _NormalizeFn(pii, pii_salt)

    def expand(self, events: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return events | "Normalize" >> beam.ParDo(self._fn).with_outputs(DEAD_LETTER, main="rows")
