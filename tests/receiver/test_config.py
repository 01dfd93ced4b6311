"""The receiver's pure parts: settings from the environment, body classification, the unverified kid."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.core.errors import EventError
from pipeline.receiver.config import ConfigError, ReceiverConfig
from pipeline.receiver.main import classify_body, unverified_kid
from devkit.signing import DemoSigner

TOPIC = "projects/p/topics/canvas-events"


def test_defaults_without_jwks_accept_unsigned() -> None:
    config = ReceiverConfig.from_env({"PUBSUB_TOPIC": TOPIC})
    assert config == ReceiverConfig(topic=TOPIC)
    assert config.allow_unsigned and not config.verify_at_edge
    assert config.max_body_bytes == 1024 * 1024
    assert config.publish_timeout_seconds == 8.0


def test_jwks_list_turns_on_edge_verification_and_refuses_unsigned_by_default() -> None:
    config = ReceiverConfig.from_env(
        {"PUBSUB_TOPIC": TOPIC, "JWKS_URL": " https://a.example/jwks , /etc/old-keys.json ,", "JWT_ISSUER": "iss"}
    )
    assert config.jwks_urls == ("https://a.example/jwks", "/etc/old-keys.json")
    assert config.verify_at_edge and not config.allow_unsigned
    assert config.issuer == "iss"


def test_explicit_settings() -> None:
    config = ReceiverConfig.from_env(
        {
            "PUBSUB_TOPIC": TOPIC,
            "JWKS_URL": "https://a.example/jwks",
            "ALLOW_UNSIGNED": "yes",
            "MAX_BODY_BYTES": "2048",
            "PUBLISH_TIMEOUT_SECONDS": "2.5",
            "JWT_LEEWAY_SECONDS": "5",
        }
    )
    assert (config.allow_unsigned, config.max_body_bytes, config.publish_timeout_seconds, config.leeway_seconds) == (
        True, 2048, 2.5, 5,
    )


@pytest.mark.parametrize(
    "environ, names",
    [
        ({}, "PUBSUB_TOPIC"),
        ({"PUBSUB_TOPIC": "canvas-events"}, "PUBSUB_TOPIC"),
        ({"PUBSUB_TOPIC": TOPIC, "ALLOW_UNSIGNED": "maybe"}, "ALLOW_UNSIGNED"),
        ({"PUBSUB_TOPIC": TOPIC, "ALLOW_UNSIGNED": "false"}, "ALLOW_UNSIGNED"),
        ({"PUBSUB_TOPIC": TOPIC, "MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES"),
        ({"PUBSUB_TOPIC": TOPIC, "MAX_BODY_BYTES": "1MB"}, "MAX_BODY_BYTES"),
        ({"PUBSUB_TOPIC": TOPIC, "PUBLISH_TIMEOUT_SECONDS": "-1"}, "PUBLISH_TIMEOUT_SECONDS"),
        ({"PUBSUB_TOPIC": TOPIC, "JWT_LEEWAY_SECONDS": "1.5"}, "JWT_LEEWAY_SECONDS"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        ReceiverConfig.from_env(environ)


@pytest.mark.parametrize(
    "body, kind",
    [
        (b'{"metadata": {}, "body": {}}', "json"),
        (b'\n  {"anything": "an object"}\n', "json"),  # shape beyond "object" is the pipeline's call
        (b"eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2ln", "jws"),
        (b"eyJhbGciOiJSUzI1NiJ9.eyJhIjoxfQ.c2ln\r\n", "jws"),
    ],
)
def test_classify_accepts(body: bytes, kind: str) -> None:
    assert classify_body(body) == kind


@pytest.mark.parametrize(
    "body, error_type",
    [
        (b"", "empty_body"),
        (b" \r\n\t", "empty_body"),
        (b'{"metadata": ', "invalid_json"),
        (b"[1, 2]", "unknown_format"),
        (b"hello world", "unknown_format"),
        (b"<xml/>", "unknown_format"),
        (b"a.b", "unknown_format"),
    ],
)
def test_classify_rejects(body: bytes, error_type: str) -> None:
    with pytest.raises(EventError) as info:
        classify_body(body)
    assert info.value.error_type == error_type


def test_unverified_kid_reads_the_header_only() -> None:
    token = DemoSigner(kid="key-2026-11", key_size=2048).sign({"metadata": {}, "body": {}})
    assert unverified_kid(token) == "key-2026-11"
    forged = token.rsplit(b".", 1)[0] + b".AAAA"
    assert unverified_kid(forged) == "key-2026-11"  # a hint only: edge verification off
    no_kid = DemoSigner(kid="x").sign({}, headers={"kid": None})
    assert unverified_kid(no_kid) is None


@pytest.mark.parametrize("header", [b"a", b"bm90IGpzb24", b"WzFd"])  # bad base64, "not json", "[1]"
def test_unverified_kid_rejects_a_malformed_header(header: bytes) -> None:
    with pytest.raises(EventError) as info:
        unverified_kid(header + b".eyJhIjoxfQ.c2ln")
    assert info.value.error_type == "malformed_jwt"


def test_importing_the_receiver_does_not_import_beam() -> None:
    # A fresh interpreter: this test session may have imported Beam already.
    code = (
        "import sys, pipeline.receiver.main as m, pipeline.core.verify, pipeline.core.jwks;"
        "assert callable(m.receive);"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'apache_beam'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
