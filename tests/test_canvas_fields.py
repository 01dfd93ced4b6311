"""schemas/canvas_fields.py against the documented corpus in ../shared (skipped on a plain clone).

Every documented body field of every Canvas event type is listed, with a type that every example
value of it can be read as. Checked here from the corpus files directly, not through the
generator's own rules (except the freshness check, which reruns the generator).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.errors import EventError
from pipeline.core.timestamps import parse_timestamp
from schemas.canvas_fields import BODY_FIELDS, TYPES, Field
from devkit.derive_canvas_fields import main as derive_main

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "canvas-events"
THIRD_PARTY = SHARED / "third-party-events"
needs_corpus = pytest.mark.skipif(not (CORPUS / "fields.json").is_file(), reason=f"no corpus at {CORPUS}")
# The one malformed time in the corpus (CATALOG.md quirk 3): the views read it as NULL.
MALFORMED_TIMES = {"019-11-01T19:11:01.163Z"}


def _documented() -> dict[str, Any]:
    return json.loads((CORPUS / "fields.json").read_text())["canvas"]


def _example_bodies() -> list[tuple[str, dict[str, Any]]]:
    bodies = []
    for line in (CORPUS / "payloads" / "canvas.jsonl").read_text().splitlines():
        entry = json.loads(line)
        name = entry["doc_name"]
        if name == "metadata":
            name = entry["payload"]["metadata"]["event_name"]
        bodies.append((name, entry["payload"]["body"]))
    for path in sorted(THIRD_PARTY.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                delivery = json.loads(line)
            except ValueError:
                continue
            if isinstance(delivery, dict) and isinstance(delivery.get("body"), dict) and "metadata" in delivery:
                bodies.append((delivery["metadata"]["event_name"], delivery["body"]))
    return bodies


def _readable_as(value: Any, type_: str) -> bool:
    if value is None:
        return True
    if type_ == "JSON":
        return True
    if isinstance(value, (dict, list)):
        return False  # only JSON columns hold objects and arrays
    if type_ == "STRING":
        return True
    if type_ == "BOOL":
        return isinstance(value, bool)
    if type_ == "INT64":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "FLOAT64":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_ == "TIMESTAMP":
        if value in MALFORMED_TIMES:
            return True
        try:
            parse_timestamp(value, field="body")
        except EventError:
            return False
        return True
    raise AssertionError(f"unknown type {type_}")


def test_interface() -> None:
    assert Field._fields == ("name", "type")
    assert BODY_FIELDS and all(isinstance(k, str) for k in BODY_FIELDS)
    for event_name, fields in BODY_FIELDS.items():
        assert isinstance(fields, tuple) and all(isinstance(f, Field) for f in fields), event_name
        assert all(f.type in TYPES for f in fields), event_name
        names = [f.name for f in fields]
        assert len(names) == len(set(names)), event_name
        assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names), event_name


@needs_corpus
def test_every_documented_event_type_and_body_field_is_listed() -> None:
    documented = _documented()
    assert set(BODY_FIELDS) == set(documented)
    for event_name, entry in documented.items():
        listed = [f.name for f in BODY_FIELDS[event_name]]
        expected = list(entry["body_fields"]) + [k for k in entry["schema_fields"] if k not in entry["body_fields"]]
        assert listed[:len(expected)] == expected, event_name  # document order, schema-only keys after


@needs_corpus
def test_every_example_body_key_is_listed_with_a_type_its_values_read_as() -> None:
    bodies = _example_bodies()
    assert len(bodies) > 120
    for event_name, body in bodies:
        types = dict(BODY_FIELDS[event_name])
        for key, value in body.items():
            assert key in types, (event_name, key)
            assert _readable_as(value, types[key]), (event_name, key, value, types[key])


@needs_corpus
def test_ids_are_strings_even_where_examples_give_numbers() -> None:
    numeric_ids = {(name, key) for name, body in _example_bodies() for key, value in body.items()
                   if (key == "id" or key.endswith("_id")) and isinstance(value, int)}
    assert ("account_created", "account_id") in numeric_ids  # CATALOG.md quirk 1
    for event_name, fields in BODY_FIELDS.items():
        for f in fields:
            if f.name == "id" or f.name.endswith("_id"):
                assert f.type == "STRING", (event_name, f)


@needs_corpus
def test_typed_fields_are_filled_somewhere() -> None:
    """Types are not all STRING: every non-STRING type is backed by real example values."""
    seen: dict[str, set[str]] = {}
    for event_name, body in _example_bodies():
        for f in BODY_FIELDS[event_name]:
            if body.get(f.name) is not None:
                seen.setdefault(f.type, set()).add(f.name)
    assert {"TIMESTAMP", "BOOL", "INT64", "FLOAT64", "JSON", "STRING"} <= set(seen)
    assert {"updated_at", "state_started_at"} <= seen["TIMESTAMP"]
    assert {"score", "points_possible"} <= seen["FLOAT64"]


@needs_corpus
def test_module_is_fresh() -> None:
    assert derive_main(["--check", f"--corpus={CORPUS}", f"--third_party={THIRD_PARTY}"]) == 0
