"""devkit.deliveries: every generated delivery normalizes through the real core to what it was made for.

Over every documented event name in both formats, signed (verified by the real JwtVerifier
against the signer's JWKS file) and unsigned; duplicates collapse to one dedupe key each; the
command line writes deliveries that ``canvas-events normalize`` accepts whole.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from devkit import deliveries
from devkit.signing import DemoSigner
from pipeline.core import caliper
from pipeline.core.decode import decode_delivery
from pipeline.core.identity import dedupe_key
from pipeline.jwks_fetch import load_key_store
from pipeline.core.verify import JwtVerifier
from schemas.canvas_fields import BODY_FIELDS
from tests.support.rows import normalized

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
KINDS = deliveries.event_kinds()
PAYLOADS = deliveries.payloads(len(KINDS), now=NOW)  # one of every kind, in KINDS order


@pytest.fixture(scope="module")
def signer_and_verifier(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSigner, JwtVerifier]:
    signer = DemoSigner(kid="generator-test")
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    signer.write_jwks(jwks)
    return signer, JwtVerifier(load_key_store([str(jwks)]), clock=lambda: NOW.timestamp())


def rows_of(body: bytes, verifier: JwtVerifier | None) -> list[dict]:
    return [normalized(event) for event in decode_delivery(body, verifier=verifier, allow_unsigned=verifier is None)]


def test_every_documented_name_in_both_formats() -> None:
    assert {name for fmt, name in KINDS if fmt == "canvas"} == set(BODY_FIELDS)
    # Caliper: every Canvas name the normalizer's tables name, none it would call caliper_*.
    known = set(caliper._BY_TYPE_ACTION.values()) | {n for n in caliper._EVENT_BY_ACTION_URN.values() if n}
    caliper_names = {name for fmt, name in KINDS if fmt == "caliper"}
    assert known <= caliper_names <= set(BODY_FIELDS)
    assert len(KINDS) == len(set(KINDS))


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("kind", KINDS, ids=[f"{fmt}-{name}" for fmt, name in KINDS])
def test_each_kind_normalizes_to_its_name(kind: tuple[str, str], signed: bool, signer_and_verifier) -> None:
    fmt, name = kind
    signer, verifier = signer_and_verifier
    payload = PAYLOADS[KINDS.index(kind)]
    body = deliveries.encode(payload, signer if signed else None, int(NOW.timestamp()))
    [row] = rows_of(body, verifier if signed else None)
    assert (row["event_name"], row["source_format"], row["signed"]) == (name, fmt, signed)
    assert row["kid"] == (signer.kid if signed else None)
    assert NOW.timestamp() - 3600 <= row["event_time"].timestamp() <= NOW.timestamp()
    if fmt == "canvas":
        # The body holds the documented fields, in document order, with values of their types.
        assert list(payload["body"]) == [field.name for field in BODY_FIELDS[name]]
        assert row["request_id"] or row["job_id"]
    else:
        assert row["caliper_event_id"] == payload["data"][0]["id"] and row["user_id"] and row["request_id"]


def test_field_values_have_their_bigquery_types() -> None:
    python_types = {"BOOL": bool, "INT64": int, "FLOAT64": float, "STRING": str, "TIMESTAMP": str, "JSON": dict}
    seen = Counter()
    for payload in deliveries.payloads(formats=("canvas",), now=NOW):
        for field in BODY_FIELDS[payload["metadata"]["event_name"]]:
            value = payload["body"][field.name]
            assert type(value) is python_types[field.type], (field, value)
            seen[field.type] += 1
    assert seen["STRING"] and seen["BOOL"] and seen["INT64"]


def test_duplicates_collapse_and_retries_are_the_same_bytes(signer_and_verifier) -> None:
    signer, verifier = signer_and_verifier
    events = deliveries.payloads(60, now=NOW)
    for use_signer, check in ((signer, verifier), (None, None)):
        items = deliveries.deliveries(events, duplicates=20, signer=use_signer, iat=int(NOW.timestamp()))
        assert Counter(item.kind for item in items) == {"event": 60, "retry": 10, "resent": 10}
        first = {item.index: item.body for item in items if item.kind == "event"}
        keys: dict[int, set[str]] = {}
        for item in items:
            if item.kind == "retry":
                assert item.body == first[item.index]
            if item.kind == "resent":
                assert item.body != first[item.index]
            keys.setdefault(item.index, set()).update(dedupe_key(row) for row in rows_of(item.body, check))
        assert all(len(k) == 1 for k in keys.values())  # every copy of an event has its one key
        assert len(set().union(*keys.values())) == 60  # and distinct events have distinct keys


def test_same_seed_and_time_same_events() -> None:
    assert deliveries.payloads(30, now=NOW, seed=3) == deliveries.payloads(30, now=NOW, seed=3)
    assert deliveries.payloads(30, now=NOW, seed=3) != deliveries.payloads(30, now=NOW, seed=4)


def test_command_line_writes_what_canvas_events_normalize_accepts(tmp_path: Path) -> None:
    jwks, out = tmp_path / "jwks.json", tmp_path / "deliveries.jsonl"
    subprocess.run(
        [sys.executable, "-m", "devkit.deliveries", f"--signed-jwks={jwks}", f"--output={out}", "--duplicates=6"],
        cwd=REPO, check=True, timeout=60,
    )
    lines = out.read_bytes().splitlines()
    assert len(lines) == len(KINDS) + 6
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "normalize", f"--jwks_url={jwks}", str(out)],
        cwd=REPO, capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(lines)
    assert {(row["source_format"], row["event_name"]) for row in rows} == set(KINDS)
    assert all(row["signed"] for row in rows)
    assert orjson.loads(jwks.read_bytes())["keys"][0]["kid"] == "devkit-key"

