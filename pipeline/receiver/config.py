"""The receiver's settings, read once from the environment into a dataclass tests can build.

Environment (all strings; see ``ReceiverConfig.from_env``):

- ``PUBSUB_TOPIC`` (required): ``projects/P/topics/T``, where every accepted body is published.
- ``JWKS_URL`` (optional): one URL (or file path) or a comma-separated list (``parse_sources``). When set, signed
  deliveries are verified at the edge and a bad signature gets 401; when unset, bodies are
  published unverified and the pipeline verifies them.
- ``JWT_ISSUER`` (optional): the expected ``iss`` for edge verification (checked when the
  token has one); unset means Canvas's public issuer (``pipeline.contract.DEFAULT_ISSUER``).
- ``JWT_LEEWAY_SECONDS`` (optional): clock skew allowed on ``exp``/``nbf``/``iat``; unset means
  the verifier's default (60 s).
- ``ALLOW_UNSIGNED`` (default: true without ``JWKS_URL``, false with it): whether plain JSON
  bodies are accepted. Turning on edge verification means "only verified events get in", so
  an unsigned body would be a way around it; an operator who wants both says so explicitly.
- ``MAX_BODY_BYTES`` (default 1 MiB, the pipeline's own limit): larger bodies get 413.
- ``PUBLISH_TIMEOUT_SECONDS`` (default 8): how long a request waits for Pub/Sub to confirm
  the publish before answering 503; well inside the 15 s Canvas waits for an answer.
- ``JWKS_RETRY_SECONDS`` (default 30): with edge verification on, after the JWKS failed to
  load, signed deliveries are published unverified (the pipeline verifies them) for this long
  before the receiver tries to load it again.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from pipeline.contract import DEFAULT_LEEWAY_SECONDS, VerifierSettings, parse_bool, parse_sources

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_PUBLISH_TIMEOUT_SECONDS = 8.0
DEFAULT_JWKS_RETRY_SECONDS = 30.0

_TOPIC = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")


class ConfigError(ValueError):
    """A missing or malformed setting; the message names the variable, never a secret."""


def _bool(name: str, value: str) -> bool:
    parsed = parse_bool(value)
    if parsed is None:
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    return parsed


def _positive_number(name: str, value: str, kind: type) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be a positive number, not {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive, not {value!r}")
    return number


@dataclass(frozen=True)
class ReceiverConfig:
    topic: str
    jwks_urls: tuple[str, ...] = ()
    issuer: str | None = None
    leeway_seconds: int | None = None
    allow_unsigned: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    publish_timeout_seconds: float = DEFAULT_PUBLISH_TIMEOUT_SECONDS
    jwks_retry_seconds: float = DEFAULT_JWKS_RETRY_SECONDS

    def __post_init__(self) -> None:
        if not _TOPIC.match(self.topic):
            raise ConfigError(f"PUBSUB_TOPIC must look like projects/P/topics/T, not {self.topic!r}")
        if not self.jwks_urls and not self.allow_unsigned:
            raise ConfigError("ALLOW_UNSIGNED=false needs JWKS_URL: otherwise every delivery would be refused")

    @property
    def verify_at_edge(self) -> bool:
        return bool(self.jwks_urls)

    @property
    def verifier_settings(self) -> VerifierSettings:
        """Edge verification's settings; unset issuer and leeway mean the contract's defaults."""
        return VerifierSettings(
            sources=self.jwks_urls,
            **({} if self.issuer is None else {"issuer": self.issuer}),
            leeway_seconds=DEFAULT_LEEWAY_SECONDS if self.leeway_seconds is None else self.leeway_seconds,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "ReceiverConfig":
        topic = environ.get("PUBSUB_TOPIC", "").strip()
        if not topic:
            raise ConfigError("PUBSUB_TOPIC is required (projects/P/topics/T)")
        jwks_urls = parse_sources(environ.get("JWKS_URL", ""))
        allow_raw = environ.get("ALLOW_UNSIGNED", "").strip()
        allow_unsigned = _bool("ALLOW_UNSIGNED", allow_raw) if allow_raw else not jwks_urls
        kwargs: dict = {}
        if environ.get("MAX_BODY_BYTES", "").strip():
            kwargs["max_body_bytes"] = _positive_number("MAX_BODY_BYTES", environ["MAX_BODY_BYTES"], int)
        if environ.get("PUBLISH_TIMEOUT_SECONDS", "").strip():
            kwargs["publish_timeout_seconds"] = _positive_number(
                "PUBLISH_TIMEOUT_SECONDS", environ["PUBLISH_TIMEOUT_SECONDS"], float
            )
        if environ.get("JWKS_RETRY_SECONDS", "").strip():
            kwargs["jwks_retry_seconds"] = _positive_number("JWKS_RETRY_SECONDS", environ["JWKS_RETRY_SECONDS"], float)
        if environ.get("JWT_LEEWAY_SECONDS", "").strip():
            leeway = environ["JWT_LEEWAY_SECONDS"].strip()
            if not leeway.isdigit():
                raise ConfigError(f"JWT_LEEWAY_SECONDS must be a whole number of seconds, not {leeway!r}")
            kwargs["leeway_seconds"] = int(leeway)
        return cls(
            topic=topic,
            jwks_urls=jwks_urls,
            issuer=environ.get("JWT_ISSUER", "").strip() or None,
            allow_unsigned=allow_unsigned,
            **kwargs,
        )
