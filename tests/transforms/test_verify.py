"""VerifyAndDecode: the DoFn called directly, and the transform on its own in a TestPipeline
(main output ``events`` and the ``dead_letter`` output, each record holding the raw delivery)."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from devkit.signing import DemoSigner
from pipeline.contract import VerifierSettings
from pipeline.deadletter import decode_payload
from pipeline.transforms.common import Delivery, PendingEvent
from pipeline.transforms.verify import VerifyAndDecode, _VerifyAndDecodeFn
from tests.pipeline.helpers import corpus_payloads, sign


def test_verify_fn_routes_rejections_with_the_raw_delivery(signer: DemoSigner, jwks_file: Path) -> None:
    fn = _VerifyAndDecodeFn(VerifierSettings((str(jwks_file),)), False, 1024 * 1024)
    fn.setup()
    payload = corpus_payloads()[0]
    good = Delivery(sign(signer, payload), {"a": "1"}, None)
    [pending] = list(fn.process(good))
    assert isinstance(pending, PendingEvent) and pending.delivery is good and pending.decoded.kid == "k1"
    bad = Delivery(sign(DemoSigner(kid=signer.kid), payload), {"a": "2"}, None)
    [out] = list(fn.process(bad))
    assert isinstance(out, TaggedOutput) and out.tag == "dead_letter"
    assert out.value["error_type"] == "bad_signature" and decode_payload(out.value) == bad.raw
    assert out.value["attributes"] == {"a": "2"}


def _event_of(pending: PendingEvent) -> tuple[bytes, bool, str | None, str]:
    return pending.delivery.raw, pending.decoded.signed, pending.decoded.kid, pending.decoded.source_format


def _rejection_of(record: dict) -> tuple[str, str, bytes, dict]:
    return record["stage"], record["error_type"], decode_payload(record), record["attributes"]


def test_transform_splits_verified_events_from_dead_letters(signer: DemoSigner, jwks_file: Path) -> None:
    canvas = next(p for p in corpus_payloads() if "metadata" in p)
    caliper = next(p for p in corpus_payloads() if "data" in p)
    good = [sign(signer, canvas), sign(signer, caliper)]
    forged = sign(DemoSigner(kid=signer.kid), canvas)  # same kid, another key
    unknown = sign(DemoSigner(kid="not-in-jwks"), canvas)
    unsigned = b'{"metadata": {}, "body": {}}'
    garbage = b"\xff not a delivery"
    raws = [*good, forged, unknown, unsigned, garbage]
    deliveries = [Delivery(raw, {"n": str(i)}, None) for i, raw in enumerate(raws)]

    with test_pipeline.TestPipeline() as p:
        outputs = p | beam.Create(deliveries) | VerifyAndDecode(VerifierSettings((str(jwks_file),)), allow_unsigned=False)
        assert_that(outputs.events | beam.Map(_event_of), equal_to([
            (good[0], True, "k1", "canvas"),
            (good[1], True, "k1", "caliper"),
        ]))
        assert_that(outputs.dead_letter | beam.Map(_rejection_of), equal_to([
            ("VerifyAndDecode", "bad_signature", forged, {"n": "2"}),
            ("VerifyAndDecode", "unknown_kid", unknown, {"n": "3"}),
            ("VerifyAndDecode", "unsigned_not_allowed", unsigned, {"n": "4"}),
            ("VerifyAndDecode", "unknown_format", garbage, {"n": "5"}),
        ]), label="DeadLetters")
