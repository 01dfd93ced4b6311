"""pipeline/contract.py: what the receiver, the SQS relay and the pipeline agree on, written once.

The attribute test runs the receiver in process against the real Pub/Sub emulator and reads
back what it published: every attribute a delivery can carry is one the contract names.
"""
from __future__ import annotations

import ast
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from devkit.emulators import PubSubEmulator
from devkit.signing import DemoSigner
from pipeline import contract
from pipeline.contract import ATTRIBUTES, DEFAULT_ISSUER, VerifierSettings, parse_bool, parse_sources
from pipeline.core.pii import pii_setting_problem
from pipeline.receiver.config import ReceiverConfig
from pipeline.receiver.main import Receiver
from pipeline.sqsrelay.plan import SqsMessage, relay_attributes

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("values", "expected"), [
    (None, ()),
    ("", ()),
    (" , ", ()),
    ("https://a/jwks.json", ("https://a/jwks.json",)),
    ("a.json, gs://b/c.json,", ("a.json", "gs://b/c.json")),
    (["a.json, b.json", "", " c.json "], ("a.json", "b.json", "c.json")),
])
def test_jwks_sources_repeat_or_split_on_commas(values: object, expected: tuple[str, ...]) -> None:
    assert parse_sources(values) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "expected"), [
    *[(word, True) for word in ("1", "true", "TRUE", " yes ", "On")],
    *[(word, False) for word in ("0", "false", "No", "off ")],
    *[(word, None) for word in ("", "maybe", "2", "truee")],
])
def test_bool_words(text: str, expected: bool | None) -> None:
    assert parse_bool(text) is expected


def test_verifier_settings_default_to_canvas_and_normalize_sources() -> None:
    settings = VerifierSettings("a.json, b.json")  # type: ignore[arg-type]
    assert settings.sources == ("a.json", "b.json")
    assert (settings.issuer, settings.verify_exp) == (DEFAULT_ISSUER, True)
    assert settings.leeway_seconds == contract.DEFAULT_LEEWAY_SECONDS
    with pytest.raises(ValueError, match="leeway"):
        VerifierSettings(leeway_seconds=-1)


def test_receiver_config_builds_the_same_settings_from_the_environment() -> None:
    config = ReceiverConfig.from_env({"PUBSUB_TOPIC": "projects/p/topics/t", "JWKS_URL": "a.json,b.json",
                                      "JWT_LEEWAY_SECONDS": "5"})
    assert config.verifier_settings == VerifierSettings(("a.json", "b.json"), leeway_seconds=5)
    assert ReceiverConfig.from_env({"PUBSUB_TOPIC": "projects/p/topics/t", "JWT_ISSUER": "https://x"}
                                   ).verifier_settings.issuer == "https://x"


@pytest.mark.parametrize(("mode", "salt", "problem"), [
    ("keep", None, None),
    ("drop", None, None),
    ("hash", "s3cret", None),
    ("hash", "", "--pii=hash needs --pii_salt"),
    ("hash", None, "--pii=hash needs --pii_salt"),
    ("encrypt", "s3cret", "--pii must be one of keep, hash, drop, got 'encrypt'"),
])
def test_one_pii_rule(mode: str, salt: str | None, problem: str | None) -> None:
    found = pii_setting_problem(mode, salt, mode_name="--pii", salt_name="--pii_salt")
    assert (found is None) if problem is None else (found or "").startswith(problem)


def test_no_module_spells_the_issuer_or_an_attribute_value_of_its_own() -> None:
    """The default issuer and the attribute values are literals in the contract only."""
    owned = {DEFAULT_ISSUER, contract.EDGE_UNVERIFIED_JWKS}
    offenders = []
    for path in [*REPO.joinpath("pipeline").rglob("*.py"), *REPO.joinpath("devkit").glob("*.py"),
                 *REPO.joinpath("templates").glob("*.py")]:
        if path.name == "contract.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in owned:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_every_attribute_the_receiver_and_relay_publish_is_in_the_contract(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    signer = DemoSigner(kid="contract-key")
    jwks = tmp_path / "jwks.json"
    signer.write_jwks(jwks)
    name = f"contract-{uuid.uuid4().hex[:10]}"
    topic = pubsub_emulator.create_topic(name)
    subscription = pubsub_emulator.create_subscription(topic, f"{name}-sub")
    token = signer.sign({"metadata": {"event_name": "x"}, "body": {}})
    verifying = Receiver(ReceiverConfig(topic=topic, jwks_urls=(str(jwks),), allow_unsigned=True))
    keys_gone = Receiver(ReceiverConfig(topic=topic, jwks_urls=(str(tmp_path / "gone.json"),), allow_unsigned=True))
    replies = [
        verifying.handle("POST", token, "application/jwt"),
        verifying.handle("POST", b'{"metadata": {}, "body": {}}', "application/json"),
        keys_gone.handle("POST", token, "application/jwt"),
    ]
    assert [r.status for r in replies] == [202, 202, 202]
    published = {name for m in pubsub_emulator.pull(subscription, max_messages=3) for name in m.attributes}
    relayed = set(relay_attributes(SqsMessage("id-1", "receipt", token), datetime.now(timezone.utc)))
    assert published == {contract.RECEIVED_AT, contract.CONTENT_TYPE, contract.SIGNED, contract.KID,
                         contract.EDGE_VERIFIED, contract.EDGE_UNVERIFIED_REASON}
    assert relayed == {contract.RECEIVED_AT, contract.SIGNED, contract.KID, contract.SOURCE,
                       contract.SQS_MESSAGE_ID}
    assert published | relayed <= set(ATTRIBUTES)
