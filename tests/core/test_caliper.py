"""Caliper from producers other than Canvas: names, evidence, IRIs, extra keys, Caliper 1.0 (issue 12)."""
from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pipeline.core import caliper
from pipeline.core.decode import decode_delivery, split_events
from pipeline.core.errors import EventError
from tests.support.rows import normalized


def _row(payload: dict[str, Any] | bytes, **kwargs: Any) -> dict[str, Any]:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    [decoded] = decode_delivery(raw, verifier=None, allow_unsigned=True)
    return normalized(decoded, **kwargs)


# The three payloads of the issue, verbatim.
REFERRER_OBJECT = (b'{"id":"urn:uuid:1","type":"NavigationEvent","actor":{"id":"urn:instructure:canvas:user:1",'
                   b'"type":"Person"},"action":"NavigatedTo","object":{"id":"urn:instructure:canvas:course:2",'
                   b'"type":"CourseOffering"},"eventTime":"2019-11-01T00:09:06.700Z","referrer":{"id":'
                   b'"https://x.example/p","type":"WebPage"}}')
THINNED = (b'{"id":"urn:uuid:1","type":"NavigationEvent","actor":"urn:instructure:canvas:user:1",'
           b'"action":"NavigatedTo","object":"urn:instructure:canvas:course:2","group":'
           b'"urn:instructure:canvas:course:2","session":"urn:instructure:canvas:session:abc",'
           b'"eventTime":"2019-11-01T00:09:06.700Z"}')


def test_referrer_given_as_an_object() -> None:
    row = _row(REFERRER_OBJECT)
    assert (row["event_name"], row["referrer"], row["user_id"], row["object_id"]) == (
        "asset_accessed", "https://x.example/p", "1", "2")


def test_actor_object_group_session_given_as_canvas_urns() -> None:
    row = _row(THINNED)
    assert {k: row[k] for k in ("user_id", "object_id", "context_type", "context_id", "session_id", "actor_iri")} == {
        "user_id": "1", "object_id": "2", "context_type": "Course", "context_id": "2", "session_id": "abc",
        "actor_iri": "urn:instructure:canvas:user:1"}
    assert row["event_name"] == "asset_accessed"  # Canvas URNs are Canvas's evidence


@pytest.mark.parametrize("event,expected", [
    ({"extensions": {"com.instructure.canvas": {"request_id": "r"}}}, True),
    ({"actor": "urn:instructure:canvas:user:1"}, True),
    ({"actor": {"id": "urn:instructure:canvas:user:1"}}, True),
    ({"object": {"id": "urn:instructure:canvas:course:2"}}, True),
    ({"edApp": {"id": "http://oxana.instructure.com/"}}, True),
    ({"edApp": "https://canvas.instructure.com"}, True),
    # a tool's event naming a Canvas launch or course is the tool's, not Canvas's
    ({"federatedSession": {"id": "urn:instructure:canvas:umich:session:Ce"}}, False),
    ({"group": "urn:instructure:canvas:course:2", "actor": "https://tool.example/u/1"}, False),
    ({"edApp": "https://instructure.com.evil.example/"}, False),
    ({"extensions": {"com.example": {}}, "actor": "https://x.example/u"}, False),
    ({}, False),
])
def test_canvas_evidence(event: dict[str, Any], expected: bool) -> None:
    assert caliper.is_canvas_event(event) is expected


def test_other_producers_get_bounded_readable_names() -> None:
    assert caliper.producer_name("SessionEvent", "LoggedIn") == "caliper_session_event_logged_in"
    assert caliper.producer_name("http://purl.imsglobal.org/caliper/v1/AssessmentItemEvent",
                                 "http://purl.imsglobal.org/vocab/caliper/v1/action#Started") == (
        "caliper_assessment_item_event_started")
    long_a = caliper.producer_name("https://vendor.example/ns/" + "VeryLongVendorEventTypeName" * 4, "Did")
    long_b = caliper.producer_name("https://vendor.example/ns/" + "VeryLongVendorEventTypeName" * 4, "Undid")
    assert len(long_a) == len(long_b) == caliper.MAX_DERIVED_NAME and long_a != long_b
    assert caliper.last_segment("urn:uuid:x") == "urn:uuid:x" and caliper.last_segment("a/b/") == "b"


def test_a_vendor_logged_in_is_not_canvas_logged_in() -> None:
    event = {"id": "urn:uuid:2", "type": "SessionEvent", "action": "LoggedIn", "actor": "https://x.example/u/9",
             "object": "https://x.example", "eventTime": "2019-11-01T00:09:06.700Z", "edApp": "https://x.example"}
    row = _row(event)
    assert row["event_name"] == "caliper_session_event_logged_in"
    assert (row["user_id"], row["actor_iri"], row["ed_app_id"]) == (None, "https://x.example/u/9", "https://x.example")


def test_caliper_1_0_bare_event_and_envelope_item() -> None:
    v1p0 = {"@context": "http://purl.imsglobal.org/ctx/caliper/v1/Context",
            "@type": "http://purl.imsglobal.org/caliper/v1/SessionEvent", "actor": {"@id": "https://x/u"},
            "action": "http://purl.imsglobal.org/vocab/caliper/v1/action#LoggedIn", "eventTime": "2016-01-01T00:00:00Z"}
    with pytest.raises(EventError) as info:
        decode_delivery(orjson.dumps(v1p0), verifier=None, allow_unsigned=True)
    assert (info.value.error_type, info.value.item) == ("caliper_v1p0", None)
    [decoded] = decode_delivery(orjson.dumps({"sensor": "s", "data": [v1p0]}), verifier=None, allow_unsigned=True)
    with pytest.raises(EventError) as info:
        normalized(decoded)
    assert (info.value.error_type, info.value.item) == ("caliper_v1p0", 0)
    assert info.value.as_dict()["item"] == 0


def test_extra_top_level_keys_of_a_signed_canvas_delivery_are_kept_and_claims_are_not() -> None:
    claims = {"metadata": {"event_name": "submission_updated", "event_time": "2017-05-23T09:58:31Z"},
              "body": {"submission_id": "5"}, "subscription": {"id": "sub-1", "owner_id": "o"},
              "iss": "https://live-events.canvas.instructure.com", "iat": 1, "exp": 2}
    [decoded] = split_events(claims, signed=True, kid="k1")
    row = normalized(decoded)
    assert row["subscription_id"] == "sub-1"
    assert json.loads(row["delivery_extra"]) == {"subscription": {"id": "sub-1", "owner_id": "o"}}
    plain = dict(claims)
    for claim in ("iss", "iat", "exp"):
        del plain[claim]
    [unsigned] = split_events(plain, signed=False)
    assert normalized(unsigned)["event_id"] == row["event_id"]  # identity is metadata + body, as before
    [bare] = split_events({"metadata": claims["metadata"], "body": claims["body"], "iat": 1}, signed=True)
    assert normalized(bare)["delivery_extra"] is None and normalized(bare)["event_id"] == row["event_id"]


def test_envelope_sensor_given_as_an_object() -> None:
    envelope = json.loads(REFERRER_OBJECT)
    row = _row({"sensor": {"id": "https://x.example/sensor", "type": "SoftwareApplication"}, "data": [envelope]})
    assert row["sensor"] == "https://x.example/sensor"


def test_a_float_id_beyond_double_precision_is_not_printed_as_invented_digits() -> None:
    row = _row(b'{"metadata":{"event_name":"x_created","event_time":"2019-11-01T00:00:00Z"},"body":{"x_id":1e25}}')
    assert row["object_id"] == "1e25"  # not "10000000000000000905969664"


def test_canvas_derived_names_keep_the_urn_type_whole() -> None:
    assert caliper.derived_name("Event", "Used", "Entity", "lti/tool_proxy") == "caliper_event_used_entity_lti_tool_proxy"
    assert caliper.derived_name("http://x.example/ns#Event", "Used", None, None) == "caliper_event_used_none"
