"""Partition paths (UTC date, path-safe names), PII modes, and URL scrubbing."""
from __future__ import annotations

import copy
import hashlib
import hmac
from datetime import date, datetime, timedelta, timezone
from pathlib import PurePosixPath
from typing import Any

import orjson
import pytest

from pipeline.core.decode import split_events
from pipeline.core.partition import event_date, partition_path, safe_name
from pipeline.core.pii import PII_COLUMNS, PII_JSON_KEYS, PII_MODES, apply_pii, pii_hash
from pipeline.core.scrub import REDACTED, scrub_text, scrub_url
from tests.support.corpus import corpus_entries
from tests.support.rows import normalized

SAMPLES = list(corpus_entries())
SALT = "operator-secret"


def _row(fmt: str, doc_name: str, index: int = 0) -> dict[str, Any]:
    for sample in SAMPLES:
        if (sample["format"], sample["doc_name"], sample["example_index"]) == (fmt, doc_name, index):
            return normalized(split_events(copy.deepcopy(sample["payload"]), signed=False)[0])
    raise LookupError((fmt, doc_name, index))


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


# --- PII ---------------------------------------------------------------------------------------


def test_constants() -> None:
    assert PII_COLUMNS == ("user_login", "user_sis_id", "client_ip", "user_agent")
    assert PII_MODES == ("keep", "hash", "drop")


def test_keep_returns_an_equal_copy() -> None:
    row = _row("canvas", "user_created")
    kept = apply_pii(row, "keep")
    assert kept == row and kept is not row


def test_hash_is_hmac_sha256_of_the_value() -> None:
    row = _row("canvas", "user_created")
    hashed = apply_pii(row, "hash", SALT)
    for column in PII_COLUMNS:
        expected = hmac.new(SALT.encode(), row[column].encode(), hashlib.sha256).hexdigest()
        assert hashed[column] == expected, column
    # a different salt, a different hash; the same salt, the same hash (joins still work)
    assert apply_pii(row, "hash", "other")["user_login"] != hashed["user_login"]
    assert apply_pii(row, "hash", SALT)["user_login"] == hashed["user_login"]
    for column in set(row) - set(PII_COLUMNS) - {"metadata", "body"}:
        assert hashed[column] == row[column], column


@pytest.mark.parametrize("salt", [None, ""])
def test_hash_needs_a_salt(salt: str | None) -> None:
    with pytest.raises(ValueError):
        apply_pii(_row("canvas", "user_created"), "hash", salt)


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError):
        apply_pii(_row("canvas", "user_created"), "mask", SALT)


def _pii_values(row: dict[str, Any]) -> set[str]:
    values = {row[c] for c in PII_COLUMNS if row[c]}
    for column in ("metadata", "body"):
        stack = [orjson.loads(row[column])]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in PII_JSON_KEYS and isinstance(value, str):
                        values.add(value)
                    else:
                        stack.append(value)
            elif isinstance(node, list):
                stack.extend(node)
    return values


@pytest.mark.parametrize(
    ("fmt", "doc_name"),
    [("canvas", "user_created"), ("canvas", "grade_change"), ("canvas", "enrollment_created"),
     ("canvas", "course_completed"), ("caliper", "enrollment_state_updated"), ("caliper", "grade_change")],
)
@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_pii_leaves_no_value_behind_in_columns_or_json(fmt: str, doc_name: str, mode: str) -> None:
    row = _row(fmt, doc_name)
    secrets = _pii_values(row)
    assert secrets  # each of these examples carries some
    out = apply_pii(row, mode, SALT)
    text = "\n".join(str(v) for v in out.values())
    for value in secrets:
        assert f'"{value}"' not in text and out["user_login"] != value
    for column in PII_COLUMNS:
        if row[column] is not None:
            assert out[column] == (pii_hash(row[column], SALT) if mode == "hash" else None)
    metadata = orjson.loads(out["metadata"])
    if fmt == "canvas":
        for column in PII_COLUMNS:
            if metadata.get(column) is not None:
                assert metadata[column] == out[column]  # column and JSON agree
    else:
        body = orjson.loads(out["body"])
        actor_ext = body["actor"].get("extensions", {}).get("com.instructure.canvas", {})
        if "user_login" in actor_ext:
            assert actor_ext["user_login"] == out["user_login"]


def test_pii_keeps_the_rest_of_the_json() -> None:
    row = _row("canvas", "user_created")
    out = apply_pii(row, "drop")
    before, after = orjson.loads(row["body"]), orjson.loads(out["body"])
    assert after["user_login"] is None and after["user_sis_id"] is None
    assert {k: v for k, v in after.items() if k not in PII_JSON_KEYS} == {
        k: v for k, v in before.items() if k not in PII_JSON_KEYS}
    assert after["name"] == before["name"]  # documented: names under generic keys remain


# --- scrubbing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://x/a?access_token=1~abc&b=2", f"https://x/a?access_token={REDACTED}&b=2"),
        ("https://x/a?b=2&Access_Token=1~abc", f"https://x/a?b=2&Access_Token={REDACTED}"),
        ("https://x/a#access_token=abc.def", f"https://x/a#access_token={REDACTED}"),
        ("https://x/a?access_token=abc#frag", f"https://x/a?access_token={REDACTED}#frag"),
        ("https://x/login?return_to=%2Fa%3Faccess_token%3Dabc%26b%3D1",
         f"https://x/login?return_to=%2Fa%3Faccess_token%3D{REDACTED}%26b%3D1"),
        ("https://x/files/1/download?verifier=wvTPigGj3X&inline=1", f"https://x/files/1/download?verifier={REDACTED}&inline=1"),
        ("https://x/a?api_key=k1&password=p2", f"https://x/a?api_key={REDACTED}&password={REDACTED}"),
        ("https://x/a?code_verifier=v1", f"https://x/a?code_verifier={REDACTED}"),
        ('{"url":"https://x/a?access_token=abc","n":1}', f'{{"url":"https://x/a?access_token={REDACTED}","n":1}}'),
        ("https://x/a?access_token=abc&amp;b=1", f"https://x/a?access_token={REDACTED}&amp;b=1"),
        ("https://x/a?token_type=bearer&b=1", "https://x/a?token_type=bearer&b=1"),
        ("https://x/a?access_token=", "https://x/a?access_token="),
        ("no secrets here", "no secrets here"),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_scrub_walks_many_equals_signs() -> None:
    many = "&".join(f"p{i}=v{i}" for i in range(40)) + "&ACCESS_TOKEN=zzz"
    assert scrub_text(many).endswith(f"ACCESS_TOKEN={REDACTED}")
    few = "a=1&b=2&access_token=zzz"
    assert scrub_text(few) == f"a=1&b=2&access_token={REDACTED}"


def test_scrub_url_none() -> None:
    assert scrub_url(None) is None
    assert scrub_url("https://x/?access_token=1") == f"https://x/?access_token={REDACTED}"
