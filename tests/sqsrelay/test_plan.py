"""The relay's pure decisions (pipeline/sqsrelay/plan.py), on the example corpus and edge cases."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pipeline.deadletter import decode_payload
from tests.support.corpus import corpus_payloads as sample_payloads
from devkit.signing import DemoSigner
from pipeline.sqsrelay import plan
from pipeline.sqsrelay.plan import SqsMessage

NOW = datetime(2026, 3, 4, 5, 6, 7, 891000, tzinfo=timezone.utc)
SENT = datetime(2026, 3, 4, 5, 0, 0, 123000, tzinfo=timezone.utc)


def message(body: bytes, message_id: str = "m-1", **kwargs) -> SqsMessage:
    return SqsMessage(message_id=message_id, receipt_handle=f"r-{message_id}", body=body, **kwargs)


def test_from_sqs_keeps_the_body_byte_for_byte_and_reads_the_system_attributes() -> None:
    text = '{"body": "naïve café ☃ 𝄞"}'
    raw = {"MessageId": "abc", "ReceiptHandle": "rh", "Body": text,
           "Attributes": {"SentTimestamp": "1772600400123", "ApproximateReceiveCount": "3"}}
    got = plan.from_sqs(raw)
    assert got.body == text.encode("utf-8")
    assert got.sent_at == datetime(2026, 3, 4, 5, 0, 0, 123000, tzinfo=timezone.utc)
    assert got.receive_count == 3 and got.message_id == "abc" and got.receipt_handle == "rh"
    bare = plan.from_sqs({"MessageId": "x", "ReceiptHandle": "y", "Body": "{}"})
    assert bare.sent_at is None and bare.receive_count == 1


@pytest.mark.parametrize("payload", sample_payloads()[:40], ids=lambda p: "canvas" if "metadata" in p else "caliper")
def test_attributes_of_plain_json_match_the_receiver(payload: dict) -> None:
    attributes = plan.relay_attributes(message(json.dumps(payload).encode(), sent_at=SENT), NOW)
    assert attributes == {"received_at": "2026-03-04T05:00:00.123Z", "signed": "false", "source": "sqs",
                          "sqs_message_id": "m-1"}


def test_attributes_of_a_signed_delivery_carry_its_kid_unverified() -> None:
    token = DemoSigner(kid="key-2026-03").sign({"metadata": {}, "body": {}})
    attributes = plan.relay_attributes(message(token + b"\n"), NOW)
    assert attributes["signed"] == "true" and attributes["kid"] == "key-2026-03"
    assert attributes["received_at"] == "2026-03-04T05:06:07.891Z"  # no SentTimestamp: now
    assert "edge_verified" not in attributes  # the relay verifies nothing


@pytest.mark.parametrize("body", [b"not json at all", b"[1, 2]", b"e30.e30.c2ln", b"abc.def.ghi"])
def test_garbage_is_published_for_the_pipeline_to_dead_letter(body: bytes) -> None:
    outgoing, rejected = plan.plan_batch([message(body)], NOW)
    assert [o.message.body for o in outgoing] == [body] and not rejected
    assert "kid" not in outgoing[0].attributes


def test_plan_batch_sends_what_pubsub_cannot_take_to_the_dead_letters() -> None:
    small, big = message(b"{}", "small"), message(b"x" * 5000, "big")
    outgoing, rejected = plan.plan_batch([small, big], NOW, max_message_bytes=4096)
    assert [o.message.message_id for o in outgoing] == ["small"]
    (r,) = rejected
    assert r.message is big and r.error_type == plan.OVERSIZED and "4096" in r.reason
    record = plan.dead_letter(r, NOW)
    assert decode_payload(record) == big.body and record["error_type"] == "oversized"
    assert record["stage"] == "sqs_relay" and record["attributes"]["sqs_message_id"] == "big"
    assert plan.dead_letter_name(big, NOW, "a1b2") == "sqs-relay/2026-03-04/big-a1b2.jsonl"


def test_the_default_limit_is_pubsubs_and_cannot_be_raised_past_it() -> None:
    near = message(b"x" * (plan.PUBSUB_MAX_REQUEST_BYTES - 2000))
    over = message(b"x" * plan.PUBSUB_MAX_REQUEST_BYTES, "over")
    outgoing, rejected = plan.plan_batch([near, over], NOW, max_message_bytes=10 ** 9)
    assert [o.message for o in outgoing] == [near] and [r.message for r in rejected] == [over]


def test_publish_requests_respect_pubsubs_request_size() -> None:
    mib = 1024 * 1024  # SQS's largest message
    outgoing, _ = plan.plan_batch([message(b"y" * mib, f"m{i}") for i in range(10)], NOW)
    requests = plan.publish_requests(outgoing)
    assert [o.message.message_id for r in requests for o in r] == [f"m{i}" for i in range(10)]  # order kept
    assert len(requests) == 2
    assert all(sum(o.size for o in r) <= plan.PUBSUB_MAX_REQUEST_BYTES for r in requests)
    small, _ = plan.plan_batch([message(b"{}", f"s{i}") for i in range(10)], NOW)
    assert len(plan.publish_requests(small)) == 1
    assert [len(r) for r in plan.publish_requests(small, max_messages=4)] == [4, 4, 2]


def test_settle_deletes_only_what_was_confirmed() -> None:
    batch = [message(b"{}", f"m{i}") for i in range(4)]
    settlement = plan.settle(batch, ["m0", "m2"])
    assert [m.message_id for m in settlement.delete] == ["m0", "m2"]
    assert [m.message_id for m in settlement.release] == ["m1", "m3"]
    assert plan.settle(batch, []).delete == []


def test_retry_visibility_grows_and_is_capped() -> None:
    assert [plan.retry_visibility_seconds(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert plan.retry_visibility_seconds(50) == 300 and plan.retry_visibility_seconds(0) == 5


def test_leases_to_extend_are_those_with_less_than_half_a_timeout_left() -> None:
    leases = {"a": 100.0, "b": 114.0, "c": 116.0}
    assert plan.leases_to_extend(leases, 100.0, visibility_seconds=30) == ["a", "b"]
    assert plan.leases_to_extend({}, 0.0, visibility_seconds=30) == []


def test_receive_wait_seconds_fits_the_idle_limit() -> None:
    assert plan.receive_wait_seconds(0, 5) == 5
    assert plan.receive_wait_seconds(3, 5) == 1 and plan.receive_wait_seconds(60, 5) == 5


@pytest.mark.parametrize("url,region", [
    ("https://sqs.eu-west-1.amazonaws.com/123456789012/canvas", "eu-west-1"),
    ("https://sqs.us-east-1.amazonaws.com.cn/1/q", "us-east-1"),
    ("http://127.0.0.1:4566/000000000000/q", None),
    ("https://vpce-1.sqs.us-east-1.vpce.amazonaws.com/1/q", None),
])
def test_region_from_queue_url(url: str, region: str | None) -> None:
    assert plan.region_from_queue_url(url) == region


def test_progress_line_names_the_counts_and_the_depth() -> None:
    line = plan.progress_line(relayed=1200, relayed_since_last=300, dead_lettered=1, seconds=60.2,
                              queue_depth=42, not_visible=10)
    assert line == "sqs-relay: relayed 1200 (+300 in 60 s), dead-lettered 1, queue depth ~42, ~10 in flight"
    assert "queue depth unknown" in plan.progress_line(relayed=0, relayed_since_last=0, dead_lettered=0,
                                                       seconds=60, queue_depth=None, not_visible=None)


def test_idle_exit_needs_quiet_empty_hands_and_an_empty_queue() -> None:
    quiet = dict(idle_exit_seconds=5, idle_for=6)
    assert plan.should_idle_exit(**quiet, holding=0, visible=0)
    assert not plan.should_idle_exit(**quiet, holding=3, visible=0)
    assert not plan.should_idle_exit(**quiet, holding=0, visible=12)  # receives came back empty: not proof
    assert not plan.should_idle_exit(**quiet, holding=0, visible=None)  # SQS did not answer
    assert not plan.should_idle_exit(idle_exit_seconds=5, idle_for=4, holding=0, visible=0)
    assert not plan.should_idle_exit(idle_exit_seconds=0, idle_for=1e9, holding=0, visible=0)


def test_a_message_pubsub_refuses_becomes_a_record_with_the_reason() -> None:
    (item,), _ = plan.plan_batch([message(b'{"x": 1}', "m-9")], NOW)
    record = plan.dead_letter(plan.refused(item, "InvalidArgument: bad attribute"), NOW)
    assert record["error_type"] == "publish_refused" and "bad attribute" in record["message"]
    assert decode_payload(record) == b'{"x": 1}' and record["attributes"]["source"] == "sqs"
