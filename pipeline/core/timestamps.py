"""Parse the timestamp shapes Canvas actually sends, to aware UTC datetimes.

Canvas documents ``event_time`` as UTC ISO-8601 with milliseconds, but the documented
examples also carry values without a fraction, numeric offsets (``-06:00``) and Ruby's
``Time#to_s`` form (``2019-11-05 07:38:00 -0800``); see CATALOG.md section 7, quirk 3.
All of those name their zone, so they convert to UTC exactly. Values that do not name a
zone (``2019-11-05T07:38:00``), bare dates, epoch numbers (seconds or milliseconds?) and
malformed strings (``019-11-01T...``) are rejected with ``bad_timestamp``: a wrong
partition date is worse than a dead-lettered event, so the parser never guesses.

This is on the hot path (once per event), so the common shape goes straight to
``datetime.fromisoformat`` after one anchored regex that pins the accepted grammar
(``fromisoformat`` alone would also take week dates, basic format and naive values).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from pipeline.core.errors import EventError

UTC = timezone.utc

# Extended ISO-8601 date-time with seconds, any fraction (. or ,), and a zone (Z or offset).
# fromisoformat (3.11) truncates fractions beyond microseconds, which is what we want.
# ASCII digits only ([0-9], not \d, which also matches other scripts' digits and is slower).
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)"
)
# Ruby Time#to_s: "2019-11-05 07:38:00 -0800" (or " UTC" for UTC times).
_RUBY = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?) ([+-][0-9]{4}|UTC)")

_MAX_SHOWN = 40


def _reject(field: str, value: object, why: str) -> EventError:
    shown = value if isinstance(value, str) else type(value).__name__
    if isinstance(shown, str) and len(shown) > _MAX_SHOWN:
        shown = shown[:_MAX_SHOWN] + "..."
    return EventError("bad_timestamp", f"{field}: {why}: {shown!r}")


def parse_timestamp(value: object, *, field: str = "event_time") -> datetime:
    """Parse a Canvas/Caliper timestamp to an aware UTC datetime (microsecond precision).

    Raises EventError("bad_timestamp") naming ``field`` and (a truncated) ``value``.
    An aware ``datetime`` passes through, converted to UTC.
    """
    if type(value) is str:
        length = len(value)
        # value[4:17:3]: the separators at 4, 7, 10, 13 and 16, in one slice.
        if (length == 24 and value[19] == "." or length == 20) and value[-1] == "Z" and value[4:17:3] == "--T::":
            # The documented shape, 2019-11-05T07:38:00.123Z (or without the fraction), without
            # the regex: with these separators in place, whatever fromisoformat accepts has
            # ASCII digits everywhere else (a test fuzzes this against _ISO), and "Z" gives
            # the UTC singleton. What it refuses takes the general path, which says why.
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        if _ISO.fullmatch(value):
            text = value
        else:
            ruby = _RUBY.fullmatch(value)
            if ruby is None:
                if not value:
                    raise _reject(field, value, "empty timestamp")
                raise _reject(field, value, "not an ISO-8601 time with a zone")
            date, clock, zone = ruby.groups()
            text = f"{date}T{clock}{'Z' if zone == 'UTC' else zone}"
        try:
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            # Shape was right but a field is out of range (month 13, hour 24, year 1 at -01:00).
            raise _reject(field, value, "out-of-range date or time") from None
    if value is None:
        raise EventError("bad_timestamp", f"{field}: missing")
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _reject(field, value.isoformat(), "naive datetime (no zone)")
        return value.astimezone(UTC)
    raise _reject(field, value, "not a string")


def to_iso(dt: datetime, *, milliseconds: bool = False) -> str:
    """``2019-11-05T15:38:00.000000Z``: ISO-8601 UTC with microseconds (or milliseconds, as Canvas
    writes ``event_time``), sortable as text. Naive values are refused. One of the project's two
    UTC formatters (with :func:`utc_strftime`)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("to_iso needs an aware datetime")
    u = dt.astimezone(UTC)
    fraction = f"{u.microsecond // 1000:03d}" if milliseconds else f"{u.microsecond:06d}"
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T"
        f"{u.hour:02d}:{u.minute:02d}:{u.second:02d}.{fraction}Z"
    )


def utc_strftime(micros: int, pattern: str) -> str:
    """An epoch time in microseconds, in UTC, formatted with ``strftime`` ``pattern`` (file and directory names)."""
    return datetime.fromtimestamp(micros / 1e6, tz=UTC).strftime(pattern)
