"""The receiver over real HTTP (functions-framework/gunicorn) with the real Pub/Sub emulator behind it.

Every accepted body must come out of Pub/Sub byte for byte with the documented attributes;
every rejected one must not be published at all.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from devkit.emulators import FunctionServer, PubSubEmulator
from tests.support.corpus import corpus_payloads
from devkit.signing import DemoSigner
from tests.receiver.client import post
from tests.receiver.client import TEST_MAX_BODY_BYTES

pytestmark = pytest.mark.slow

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def corpus_bodies() -> list[bytes]:
    """Every corpus payload, in three encodings: compact, pretty-printed, and with trailing newline."""
    bodies = []
    for i, payload in enumerate(corpus_payloads()):
        if i % 3 == 0:
            bodies.append(orjson.dumps(payload))
        elif i % 3 == 1:
            bodies.append(json.dumps(payload, indent=2, ensure_ascii=False).encode())
        else:
            bodies.append(json.dumps(payload).encode() + b"\n")
    return bodies


def test_every_corpus_payload_is_published_byte_for_byte(
    receiver: FunctionServer, pubsub_emulator: PubSubEmulator, subscription: str
) -> None:
    bodies = corpus_bodies()
    assert len(bodies) == 201
    before = datetime.now(timezone.utc) - timedelta(seconds=1)
    message_ids = set()
    for body in bodies:
        reply = post(receiver.url, body)
        assert reply.status == 202, reply.body
        assert reply.json["status"] == "accepted"
        message_ids.add(reply.json["message_id"])
    after = datetime.now(timezone.utc) + timedelta(seconds=1)
    assert len(message_ids) == len(bodies)

    messages = pubsub_emulator.pull(subscription, max_messages=len(bodies), timeout=20)
    assert sorted(m.data for m in messages) == sorted(bodies)
    assert pubsub_emulator.pull(subscription, max_messages=1, timeout=1) == []  # and nothing else
    assert {m.message_id for m in messages} == message_ids
    for message in messages:
        attributes = dict(message.attributes)
        assert set(attributes) == {"received_at", "content_type", "signed"}
        assert attributes["signed"] == "false"
        assert attributes["content_type"] == "application/json"
        assert RFC3339_UTC.match(attributes["received_at"])
        received = datetime.fromisoformat(attributes["received_at"].replace("Z", "+00:00"))
        assert before <= received <= after


def test_signed_body_without_edge_verification_carries_the_header_kid(
    receiver: FunctionServer, pubsub_emulator: PubSubEmulator, subscription: str
) -> None:
    signer = DemoSigner(kid="canvas-2026-11")
    token = signer.sign(corpus_payloads("canvas")[0])
    forged = token.rsplit(b".", 1)[0] + b"." + DemoSigner(kid="other").sign({}).rsplit(b".", 1)[1]
    for body in (token, forged):  # not checked here: the pipeline verifies (and dead-letters the forgery)
        assert post(receiver.url, body, content_type="application/jwt").status == 202
    no_type = post(receiver.url, token + b"\n", content_type=None)
    assert no_type.status == 202

    messages = {m.data: dict(m.attributes) for m in pubsub_emulator.pull(subscription, max_messages=3)}
    assert set(messages) == {token, forged, token + b"\n"}
    for body in (token, forged):
        attributes = messages[body]
        assert attributes["signed"] == "true" and attributes["kid"] == "canvas-2026-11"
        assert attributes["content_type"] == "application/jwt"
        assert "edge_verified" not in attributes
    assert "content_type" not in messages[token + b"\n"]


BAD_BODIES = [
    (b"", "empty_body"),
    (b"  \r\n", "empty_body"),
    (b"not an event", "unknown_format"),
    (b'{"metadata": {"event_name": ', "invalid_json"),
    (b'["a", "list"]', "unknown_format"),
    (b"bm90IGpzb24.eyJhIjoxfQ.c2ln", "malformed_jwt"),
]


def test_bad_bodies_get_400_and_are_not_published(
    receiver: FunctionServer, pubsub_emulator: PubSubEmulator, subscription: str
) -> None:
    for body, error in BAD_BODIES:
        reply = post(receiver.url, body)
        assert (reply.status, reply.json) == (400, {"status": "rejected", "error": error}), body
        assert reply.headers["content-type"] == "application/json"
    # A marker confirmed after the rejections is the only message: nothing leaked through.
    assert post(receiver.url, b'{"marker": 1}').status == 202
    assert [m.data for m in pubsub_emulator.pull(subscription, max_messages=2, timeout=1.5)] == [b'{"marker": 1}']


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_other_methods_get_405(receiver: FunctionServer, method: str) -> None:
    reply = post(receiver.url, b'{"metadata": {}, "body": {}}', method=method)
    assert reply.status == 405
    assert reply.json == {"status": "rejected", "error": "method_not_allowed"}
    assert reply.headers["allow"] == "POST"


def test_size_limit_413_exactly_at_the_boundary(
    receiver: FunctionServer, pubsub_emulator: PubSubEmulator, subscription: str
) -> None:
    prefix = b'{"padding": "'
    at_limit = prefix + b"x" * (TEST_MAX_BODY_BYTES - len(prefix) - 2) + b'"}'
    assert len(at_limit) == TEST_MAX_BODY_BYTES
    over = at_limit[:-2] + b'x"}'
    assert post(receiver.url, at_limit).status == 202
    reply = post(receiver.url, over)
    assert reply.status == 413 and reply.json == {"status": "rejected", "error": "oversized"}
    # Without Content-Length (chunked), the limit holds while reading.
    chunked = post(receiver.url, [over[:1000], over[1000:]], chunked=True)
    assert chunked.status == 413
    assert post(receiver.url, [at_limit[:10], at_limit[10:]], chunked=True).status == 202
    assert [m.data for m in pubsub_emulator.pull(subscription, max_messages=3, timeout=1.5)] == [at_limit, at_limit]


def test_logs_name_the_error_never_the_payload(receiver: FunctionServer) -> None:
    secret = "SECRET-MARKER-8d1f2a"
    token = DemoSigner(kid=secret).sign({"note": secret})
    post(receiver.url, f'{{"user": "{secret}"'.encode())  # invalid JSON
    post(receiver.url, f"<p>{secret}</p>".encode())
    post(receiver.url, b"bm90IGpzb24." + token.split(b".", 1)[1])
    reply = post(receiver.url, b"x" * (TEST_MAX_BODY_BYTES + 1) + secret.encode())
    assert reply.status == 413
    logs = receiver.log_text()
    assert "error_type=invalid_json" in logs and "error_type=oversized" in logs
    assert secret not in logs
    assert secret.encode() not in reply.body
