"""One delivery -> its rows and its rejections: what VerifyAndDecode and then NormalizeEvents
do to it, as one pure function (the batch replay runs it in one step, in this process or in
a pool of processes: ``pipeline.workers``).

A rejection names the stage that refused it (the dead-letter record's ``stage``), the same
names the streaming graph's steps use.
"""
from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from pipeline.core.decode import decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.normalize import normalize
from pipeline.core.pii import apply_pii
from pipeline.core.verify import JwtVerifier
from schemas.events import Row

VERIFY_STAGE = "VerifyAndDecode"
NORMALIZE_STAGE = "NormalizeEvents"


class Outcome(NamedTuple):
    rows: list[Row]
    rejections: list[tuple[str, EventError]]  # (stage, error): the whole delivery, or one item of an envelope
    decoded: int  # events decoded from the delivery
    verified: int  # of which carried a verified signature


class IngestSettings(NamedTuple):
    allow_unsigned: bool
    max_bytes: int
    pii: str = "keep"
    pii_salt: str | None = None


def ingest(raw: bytes, received_at: datetime | None, verifier: JwtVerifier | None,
           settings: IngestSettings) -> Outcome:
    """Decode (and verify) ``raw``, then normalize each event (PII policy applied)."""
    try:
        events = decode_delivery(raw, verifier=verifier, allow_unsigned=settings.allow_unsigned,
                                 max_bytes=settings.max_bytes)
    except EventError as error:
        return Outcome([], [(VERIFY_STAGE, error)], 0, 0)
    rows: list[Row] = []
    rejections: list[tuple[str, EventError]] = []
    for event in events:
        try:
            row = normalize(event, received_at=received_at)
            if settings.pii != "keep":
                row = apply_pii(row, settings.pii, settings.pii_salt)
        except EventError as error:
            rejections.append((NORMALIZE_STAGE, error))
            continue
        rows.append(row)
    verified = len(events) if events and events[0].signed else 0
    return Outcome(rows, rejections, len(events), verified)
