"""event_id / dedupe_key: one event delivered twice shares a key; two events never do."""
from __future__ import annotations

import collections
import copy
import json
import time
from typing import Any

import jwt
import orjson
import pytest

from pipeline.core.decode import VerifiedToken, decode_delivery, split_events
from pipeline.core.errors import EventError
from pipeline.core.identity import (
    EVENT_ID_HEX_CHARS,
    canonical_json,
    canvas_event_id,
    dedupe_key,
    event_id,
)
from tests.support.corpus import corpus_entries
from devkit.deliveries import reversed_keys
from devkit.signing import DemoSigner
from tests.support.rows import normalized

SAMPLES = list(corpus_entries())


class _RS256Verifier:
    """A real RS256 check (PyJWT) against one public key: enough to produce signed DecodedEvents."""

    def __init__(self, signer: DemoSigner):
        self._key = signer.public_key
        self._kid = signer.kid

    def verify(self, token: bytes) -> VerifiedToken:
        try:
            claims = jwt.decode(token, self._key, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError as exc:
            raise EventError("bad_signature", type(exc).__name__) from None
        return VerifiedToken(claims, self._kid)


def _sample(fmt: str, doc_name: str, index: int = 0) -> dict[str, Any]:
    for sample in SAMPLES:
        if (sample["format"], sample["doc_name"], sample["example_index"]) == (fmt, doc_name, index):
            return copy.deepcopy(sample["payload"])
    raise LookupError((fmt, doc_name, index))


def _rows(raw: bytes, verifier: Any = None) -> list[dict[str, Any]]:
    return [normalized(d) for d in decode_delivery(raw, verifier=verifier, allow_unsigned=True)]


def test_event_id_shape() -> None:
    value = event_id(_sample("canvas", "logged_out"))
    assert len(value) == EVENT_ID_HEX_CHARS and int(value, 16) >= 0


def test_key_order_does_not_change_the_id() -> None:
    payload = _sample("canvas", "assignment_created")
    reordered = reversed_keys(payload)
    assert json.dumps(reordered) != json.dumps(payload)
    assert event_id(reordered) == event_id(payload)


def test_whitespace_and_key_order_of_the_delivery_do_not_change_the_key() -> None:
    payload = _sample("canvas", "assignment_created")
    compact = orjson.dumps(payload)
    pretty = json.dumps(reversed_keys(payload), indent=3).encode()
    (a,), (b,) = _rows(compact), _rows(pretty)
    assert a["event_id"] == b["event_id"]
    assert dedupe_key(a) == dedupe_key(b)


def test_signed_resigned_and_unsigned_deliveries_of_one_event_share_the_key(signer: DemoSigner) -> None:
    payload = _sample("canvas", "grade_change")
    verifier = _RS256Verifier(signer)
    now = int(time.time())
    first = signer.sign({**payload, "iat": now - 60, "exp": now + 240, "iss": "https://live-events.canvas.instructure.com"})
    retry = signer.sign({**reversed_keys(payload), "iat": now, "exp": now + 300, "jti": "retry-1"})
    assert first != retry
    rows = _rows(first, verifier) + _rows(retry, verifier) + _rows(orjson.dumps(payload))
    assert [r["signed"] for r in rows] == [True, True, False]
    assert rows[0]["kid"] == signer.kid
    assert len({r["event_id"] for r in rows}) == 1
    assert len({dedupe_key(r) for r in rows}) == 1


def test_caliper_id_ignores_the_envelope() -> None:
    envelope = _sample("caliper", "logged_in")
    resent = copy.deepcopy(envelope)
    resent["sendTime"] = "2030-01-01T00:00:00.000Z"
    (a,), (b,) = _rows(orjson.dumps(envelope)), _rows(orjson.dumps(resent))
    bare = normalized(split_events(envelope["data"][0], signed=False)[0])
    assert a["event_id"] == b["event_id"] == bare["event_id"]
    assert a["metadata"] != b["metadata"]


def test_two_events_of_one_request_have_different_keys() -> None:
    created = _sample("canvas", "assignment_created")
    second = copy.deepcopy(created)
    second["body"]["assignment_id"] = "21070000000000372"
    assert created["metadata"]["request_id"] == second["metadata"]["request_id"]
    a, b = normalized(split_events(created, signed=False)[0]), normalized(split_events(second, signed=False)[0])
    assert a["request_id"] == b["request_id"]
    assert dedupe_key(a) != dedupe_key(b)
    assert dedupe_key(a).startswith(f"r:{a['request_id']}|")


def test_envelope_with_several_events_gives_one_key_each() -> None:
    envelope = _sample("caliper", "logged_in")
    other = copy.deepcopy(envelope["data"][0])
    other["id"] = "urn:uuid:00000000-0000-4000-8000-000000000001"
    envelope["data"].append(other)
    rows = _rows(orjson.dumps(envelope))
    assert rows[0]["request_id"] == rows[1]["request_id"]
    assert dedupe_key(rows[0]) != dedupe_key(rows[1])


def test_dedupe_key_prefixes() -> None:
    job = normalized(split_events(_sample("canvas", "course_updated"), signed=False)[0])
    assert job["request_id"] is None and dedupe_key(job) == f"j:{job['job_id']}|{job['event_id']}"
    assert dedupe_key({"event_id": "abc", "request_id": None, "job_id": None}) == "-|abc"


def test_corpus_events_all_have_distinct_ids() -> None:
    """The corpus reuses request_id placeholders and Caliper ids (quirk 4), yet no two of its
    201 payloads are identical, so all 201 event_ids differ."""
    by_id: dict[str, list[str]] = collections.defaultdict(list)
    for sample in SAMPLES:
        for decoded in split_events(copy.deepcopy(sample["payload"]), signed=False):
            by_id[event_id(decoded.event)].append(f"{sample['format']}-{sample['doc_name']}-{sample['example_index']}")
    assert len(by_id) == len(SAMPLES) == 201, {k: v for k, v in by_id.items() if len(v) > 1}


@pytest.mark.parametrize("sample", [s for s in SAMPLES if s["format"] == "canvas"],
                         ids=lambda s: f"{s['doc_name']}-{s['example_index']}")
def test_canvas_event_id_from_the_parts_equals_the_event_id(sample: dict[str, Any]) -> None:
    """normalize hashes the Canvas event from its two column serializations."""
    metadata, body = sample["payload"]["metadata"], sample["payload"]["body"]
    assert canvas_event_id(canonical_json(metadata), canonical_json(body)) == event_id(
        {"metadata": metadata, "body": body})


def test_extra_top_level_keys_are_not_part_of_a_canvas_event() -> None:
    payload = _sample("canvas", "logged_in")
    assert event_id({**payload, "transport": "x"}) == event_id(payload)
