"""Edge verification on (JWKS_URL set): only tokens signed with a configured key get in."""
from __future__ import annotations

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator
from tests.support.corpus import corpus_payloads
from devkit.signing import DemoSigner
from tests.receiver.client import post
from tests.support.names import unique

pytestmark = pytest.mark.slow


def test_good_tokens_pass_forged_ones_get_401_and_are_not_published(
    verifying_receiver: FunctionServer,
    pubsub_emulator: PubSubEmulator,
    verifying_topic: str,
    signer: DemoSigner,
) -> None:
    subscription = pubsub_emulator.create_subscription(verifying_topic, unique("verified-sub"))
    canvas, caliper = corpus_payloads("canvas")[0], corpus_payloads("caliper")[0]
    good = [signer.sign(canvas), signer.sign(caliper)]
    impostor = DemoSigner(kid=signer.kid)  # same kid, different key
    cases = [
        (impostor.sign(canvas), "bad_signature"),
        (good[0].rsplit(b".", 1)[0] + b"." + impostor.sign(canvas).rsplit(b".", 1)[1], "bad_signature"),
        (DemoSigner(kid="not-in-jwks").sign(canvas), "unknown_kid"),
        (signer.sign(canvas, headers={"kid": None}), "missing_kid"),
        (signer.sign(canvas, alg="PS256"), "alg_not_allowed"),
        (signer.sign({**canvas, "iss": "https://evil.example"}), "bad_issuer"),
        (signer.sign({**canvas, "exp": 1_000_000_000}), "expired"),
    ]
    for token in good:
        reply = post(verifying_receiver.url, token, content_type="application/jwt")
        assert reply.status == 202, reply.body
    for token, error in cases:
        reply = post(verifying_receiver.url, token, content_type="application/jwt")
        assert (reply.status, reply.json) == (401, {"status": "rejected", "error": error})
    unsigned = post(verifying_receiver.url, b'{"metadata": {}, "body": {}}')
    assert (unsigned.status, unsigned.json["error"]) == (401, "unsigned_not_allowed")
    malformed = post(verifying_receiver.url, b"bm90IGpzb24.eyJhIjoxfQ.c2ln")
    assert (malformed.status, malformed.json["error"]) == (400, "malformed_jwt")

    messages = pubsub_emulator.pull(subscription, max_messages=len(good) + 1, timeout=1.5)
    assert sorted(m.data for m in messages) == sorted(good)
    for message in messages:
        assert dict(message.attributes)["kid"] == signer.kid
        assert message.attributes["signed"] == "true" and message.attributes["edge_verified"] == "true"

