"""pipeline/core/pii.py: the PII modes (keep, hash, drop) over columns and the JSON they hide in."""
from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson
import pytest

from pipeline.core.pii import PII_COLUMNS, PII_JSON_KEYS, PII_MODES, apply_pii, pii_hash
from tests.support.corpus import corpus_entries, corpus_row as _row

SAMPLES = list(corpus_entries())
SALT = "operator-secret"


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
