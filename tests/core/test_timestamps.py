"""parse_timestamp / to_iso: every shape CATALOG.md quirk 3 lists, and the ones we refuse."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.core.errors import EventError
from pipeline.core.timestamps import _ISO, _RUBY, UTC, parse_timestamp, to_iso


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the common Canvas/Caliper shape: milliseconds and Z
        ("2019-11-01T19:11:01.163Z", "2019-11-01T19:11:01.163000Z"),
        # no fraction (enrollment_created.event_time)
        ("2018-10-09T21:07:33Z", "2018-10-09T21:07:33.000000Z"),
        # numeric offset (conversation_forwarded, outcome_*_updated)
        ("2020-03-30T11:18:51-06:00", "2020-03-30T17:18:51.000000Z"),
        ("2020-03-30T11:18:51+0530", "2020-03-30T05:48:51.000000Z"),
        ("2020-03-30T11:18:51+05", "2020-03-30T06:18:51.000000Z"),
        # Ruby Time#to_s (course_updated.metadata.event_time)
        ("2019-11-05 07:38:00 -0800", "2019-11-05T15:38:00.000000Z"),
        ("2019-11-05 07:38:00 UTC", "2019-11-05T07:38:00.000000Z"),
        ("2019-11-05 07:38:00.25 +0100", "2019-11-05T06:38:00.250000Z"),
        # fractions of any length, truncated (not rounded) to microseconds
        ("2019-11-01T19:11:01.1Z", "2019-11-01T19:11:01.100000Z"),
        ("2019-11-01T19:11:01.123456789Z", "2019-11-01T19:11:01.123456Z"),
        ("2019-11-01T19:11:01.9999999Z", "2019-11-01T19:11:01.999999Z"),
        ("2019-11-01T19:11:01,5Z", "2019-11-01T19:11:01.500000Z"),
        # space separator with an offset, and an offset crossing midnight
        ("2019-11-05 23:30:00-01:00", "2019-11-06T00:30:00.000000Z"),
        ("2019-12-31T23:59:59.999+00:00", "2019-12-31T23:59:59.999000Z"),
    ],
)
def test_parses_to_aware_utc(text: str, expected: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed.tzinfo is UTC
    assert to_iso(parsed) == expected


@pytest.mark.parametrize(
    "value",
    [
        "019-11-01T19:11:01.163Z",  # user_updated.body.updated_at in the corpus
        "2019-11-01T19:11:01.163",  # no zone: refusing beats guessing
        "2019-11-01",
        "2019-11-01T19:11Z",  # no seconds
        "2019-W44-5T19:11:01Z",  # week date: fromisoformat would take it
        "20191101T191101Z",  # basic format
        "2019-13-01T00:00:00Z",
        "2019-11-01T24:00:00Z",
        "2019-11-01T19:11:01.163Z ",
        "2019-11-05 07:38:00 PST",
        "0001-01-01T00:30:00+01:00",  # out of range once converted to UTC
        "yesterday",
        "",
        None,
        1572635461163,  # epoch: seconds or milliseconds? refuse
        1572635461.163,
        {"t": "2019-11-01T19:11:01Z"},
        datetime(2019, 11, 1, 19, 11),  # naive datetime
    ],
)
def test_refuses_with_bad_timestamp(value: object) -> None:
    with pytest.raises(EventError) as info:
        parse_timestamp(value, field="metadata.event_time")
    assert info.value.error_type == "bad_timestamp"
    assert "metadata.event_time" in info.value.message


def test_message_truncates_the_offending_value() -> None:
    long_value = "x" * 500
    with pytest.raises(EventError) as info:
        parse_timestamp(long_value)
    assert "x" * 40 in info.value.message
    assert "x" * 41 not in info.value.message
    assert len(info.value.message) < 120


def test_message_for_a_missing_value_names_the_field() -> None:
    with pytest.raises(EventError) as info:
        parse_timestamp(None, field="eventTime")
    assert info.value.message == "eventTime: missing"


def test_aware_datetime_passes_through_as_utc() -> None:
    eastern = timezone(timedelta(hours=-5))
    parsed = parse_timestamp(datetime(2019, 11, 1, 20, 0, tzinfo=eastern))
    assert parsed == datetime(2019, 11, 2, 1, 0, tzinfo=UTC)
    assert parsed.tzinfo is UTC


def test_to_iso_converts_offsets_and_refuses_naive() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert to_iso(datetime(2019, 11, 1, 20, 0, 0, 5, tzinfo=eastern)) == "2019-11-02T01:00:00.000005Z"
    with pytest.raises(ValueError):
        to_iso(datetime(2019, 11, 1))


def test_round_trip_through_to_iso() -> None:
    value = datetime(2021, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
    assert parse_timestamp(to_iso(value)) == value


_TEMPLATES = ("2019-11-05T07:38:00.123Z", "2019-11-05T07:38:00Z")
# Digits, separators fromisoformat knows, and characters that look like digits but are not ASCII.
_SUBSTITUTES = "0123456789+-:.,Z TW x\u0661\u00b2\uff11"


def _check_in_grammar(value: str) -> None:
    """parse_timestamp skips the regex for the canonical shape; what it accepts must still be in
    the documented grammar (ISO-8601 with ASCII digits and a zone), with the same value."""
    try:
        parsed = parse_timestamp(value)
    except EventError as error:
        assert error.error_type == "bad_timestamp"
        return
    assert _ISO.fullmatch(value) or _RUBY.fullmatch(value), value
    if _ISO.fullmatch(value):
        assert parsed == datetime.fromisoformat(value) and parsed.tzinfo is UTC


def test_the_fast_path_accepts_only_the_grammar_every_single_edit() -> None:
    for template in _TEMPLATES:
        for position in range(len(template)):
            for char in _SUBSTITUTES:
                _check_in_grammar(template[:position] + char + template[position + 1:])


@settings(max_examples=1000, deadline=None)
@given(
    template=st.sampled_from(_TEMPLATES),
    edits=st.lists(st.tuples(st.integers(0, 23), st.sampled_from(_SUBSTITUTES)), min_size=2, max_size=4),
)
def test_the_fast_path_accepts_only_the_grammar(template: str, edits: list[tuple[int, str]]) -> None:
    chars = list(template)
    for position, char in edits:
        chars[position % len(chars)] = char
    _check_in_grammar("".join(chars))
