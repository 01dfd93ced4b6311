"""VerifyAndDecode: raw deliveries -> decoded (and, when signed, verified) events.

Wraps ``pipeline.core.decode.decode_delivery`` with the verifier that
``pipeline.jwks_fetch.build_verifier`` builds from the ``VerifierSettings``. The JWKS is loaded in ``setup`` on each worker; if it
cannot be loaded the DoFn raises (JwksUnavailable) and the runner retries, because a key
host that is down is transient, not the event's fault. Only EventError is routed aside.
"""
from __future__ import annotations

from typing import Any, Iterator

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from pipeline.contract import VerifierSettings
from pipeline.core.decode import DEFAULT_MAX_BYTES, decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.ingest import VERIFY_STAGE
from pipeline.jwks_fetch import build_verifier
from pipeline.transforms.common import DEAD_LETTER, Delivery, PendingEvent, RejectCounters, counter, dead_letter_for

STAGE = VERIFY_STAGE


class _VerifyAndDecodeFn(beam.DoFn):
    def __init__(self, settings: VerifierSettings, allow_unsigned: bool, max_bytes: int):
        self._settings = settings
        self._allow_unsigned = allow_unsigned
        self._max_bytes = max_bytes

    def setup(self) -> None:
        self._verifier = build_verifier(self._settings)
        self._decoded = counter("events_decoded")
        self._verified = counter("events_verified")
        self._rejected = RejectCounters()

    def process(self, delivery: Delivery) -> Iterator[Any]:
        try:
            events = decode_delivery(
                delivery.raw, verifier=self._verifier, allow_unsigned=self._allow_unsigned,
                max_bytes=self._max_bytes,
            )
        except EventError as error:
            self._rejected.inc(error.error_type)
            yield TaggedOutput(DEAD_LETTER, dead_letter_for(STAGE, error, delivery))
            return
        self._decoded.inc(len(events))
        if events and events[0].signed:
            self._verified.inc(len(events))
        for event in events:
            yield PendingEvent(event, delivery)


class VerifyAndDecode(beam.PTransform):
    """``Delivery`` -> ``PendingEvent`` per event (a Caliper envelope of N items gives N).

    Outputs: main (``events``) and ``dead_letter`` (records for deliveries that do not decode,
    fail verification, or are unsigned when that is not allowed, or envelopes holding no event).
    The items of an envelope travel on independently: a bad item (an entity beside events, a
    Caliper 1.0 event) is refused by NormalizeEvents for itself alone, with its index.
    """

    def __init__(self, settings: VerifierSettings | None, *, allow_unsigned: bool, max_bytes: int = DEFAULT_MAX_BYTES):
        super().__init__()
        self._fn = _VerifyAndDecodeFn(settings or VerifierSettings(), allow_unsigned, max_bytes)

    def expand(self, deliveries: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return deliveries | "Decode" >> beam.ParDo(self._fn).with_outputs(DEAD_LETTER, main="events")
