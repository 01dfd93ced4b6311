"""pipeline/core/partition.py: partition paths (UTC date, path-safe names)."""
from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from pathlib import PurePosixPath

import pytest

from pipeline.core.decode import split_events
from pipeline.core.partition import event_date, partition_path, safe_name
from tests.support.rows import normalized
from tests.support.corpus import corpus_entries, corpus_row as _row

SAMPLES = list(corpus_entries())


# --- partitions ------------------------------------------------------------------------------


def test_partition_path_of_a_corpus_row() -> None:
    row = _row("canvas", "assignment_created")
    assert partition_path(row) == f"event_date={row['event_time'].date().isoformat()}/event_name=assignment_created"


def test_event_date_is_the_utc_date() -> None:
    # course_updated happened 2019-11-05 07:38 -0800 = 15:38 UTC; and a late-evening offset time:
    assert event_date(_row("canvas", "course_updated")) == date(2019, 11, 5)
    pacific = timezone(timedelta(hours=-8))
    assert event_date({"event_time": datetime(2019, 11, 5, 20, 0, tzinfo=pacific)}) == date(2019, 11, 6)
    assert event_date({"event_time": "2019-11-05 20:00:00 -0800"}) == date(2019, 11, 6)


def test_event_date_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        event_date({"event_time": datetime(2019, 11, 5, 20, 0)})


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("asset_accessed", "asset_accessed"),
        ("outcomes.retry_outcome_alignment_clone", "outcomes.retry_outcome_alignment_clone"),
        ("../x/y", ".._x_y"),
        ("..", ".."),
        ("a b\tc", "a_b_c"),
        ("name=evil/event_date=1999-01-01", "name_evil_event_date_1999-01-01"),
        ("C:\\windows", "C__windows"),
        ("ünï", "_n_"),
        ("", "_"),
    ],
)
def test_hostile_event_names_stay_in_one_path_segment(name: str, safe: str) -> None:
    assert safe_name(name) == safe
    path = partition_path({"event_time": datetime(2020, 1, 2, tzinfo=timezone.utc), "event_name": name})
    parts = PurePosixPath(path).parts
    assert len(parts) == 2
    assert parts[0] == "event_date=2020-01-02"
    assert parts[1] == f"event_name={safe}"


def test_very_long_names_are_capped() -> None:
    assert len(safe_name("x" * 10_000)) == 200


def test_every_corpus_row_has_a_two_level_partition() -> None:
    for sample in SAMPLES:
        row = normalized(split_events(copy.deepcopy(sample["payload"]), signed=False)[0])
        date_part, name_part = partition_path(row).split("/")
        assert date_part == f"event_date={row['event_time'].date().isoformat()}"
        assert name_part == f"event_name={row['event_name']}"  # corpus names are all path-safe
