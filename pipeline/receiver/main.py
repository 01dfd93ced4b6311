"""The receiver Cloud Function: Canvas Live Events over HTTPS -> one Pub/Sub message per delivery.

Deployed on its own (functions-framework target ``receive``), so it must never import
apache_beam: it uses only the pure core (shape checks from pipeline.core.decode, and the JWT
verifier when edge verification is on). Settings come from the environment
(pipeline/receiver/config.py).

Contract with the sender (Canvas retries a delivery that does not get a 2xx within 15 s):

- 202 ``{"status": "accepted", "message_id": ...}`` only once Pub/Sub has confirmed the publish
  (202, not 200: the event is stored, not yet processed). Never a 2xx for an unpublished event.
- 503 when the publish fails or is not confirmed within PUBLISH_TIMEOUT_SECONDS (retries of
  transient errors included): the sender retries later.
  Delivery is at-least-once: a message that was already in a Publish RPC when its request gave
  up may still be stored, and the sender's retry then adds a duplicate. The pipeline dedupes on
  the decoded event, so a retry never loses or doubles data. (A message still queued when its
  request gives up is dropped unsent.)
- 400 empty body, or neither a JSON object nor a compact JWS (JSON shape beyond "an object" is
  the pipeline's business: it dead-letters it with the original payload for inspection);
  401 edge verification on and the signature, kid, issuer or expiry is wrong, or an unsigned
  body when unsigned input is refused; 405 not a POST; 413 over MAX_BODY_BYTES (refused from
  Content-Length before reading, or once a chunked body passes the limit: body_limit.py).

Edge verification with the keys out of reach (the JWKS cannot be fetched, or a token's kid is
unknown and the last refetch failed) is not the sender's fault and must not lose a delivery:
a signed body is then published with ``edge_verified`` "false" and ``edge_unverified_reason``
"jwks_unavailable", answered 202, and the pipeline verifies it against its own JWKS sources
(it verifies every signed delivery, whatever the edge did). The failure is logged at most once
per JWKS_FAILURE_LOG_SECONDS, and the JWKS is not loaded again for JWKS_RETRY_SECONDS (a
setting) after a failed load, so a burst does not wait on the key host request by request. A forged token is
still refused (401) whenever the keys are at hand.

The body is published byte for byte as the message data, with the attributes of the contract
(pipeline/contract.py, which says what each is for): ``received_at``, ``content_type``,
``signed``, ``kid`` (for a JWS: from the verified token with edge verification, else read from
the header without trusting it), ``edge_verified`` and ``edge_unverified_reason``.
Logs carry error types and sizes, never a payload, token or key.

Throughput: concurrent requests share Publish RPCs (pipeline/receiver/publisher.py). Serve it
with THREADS=16 (functions-framework reads it; its default is 4 per core): at 64 concurrent
connections on 2 cores that was the best of 8/16/32 threads. bench/receiver.py measures it
beside an empty handler.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import orjson

from pipeline.contract import (
    CONTENT_TYPE, EDGE_UNVERIFIED_JWKS, EDGE_UNVERIFIED_REASON, EDGE_VERIFIED, FALSE, KID, MAX_ATTRIBUTE_CHARS,
    RECEIVED_AT, SIGNED, TRUE,
)
from pipeline.core.decode import is_compact_jws, parse_json_object
from pipeline.core.errors import EventError
from pipeline.core.timestamps import to_iso
from pipeline.receiver import body_limit
from pipeline.receiver.config import ConfigError, ReceiverConfig
from pipeline.receiver.publisher import make_publisher

logger = logging.getLogger("canvas_receiver")

_WHITESPACE = b" \t\r\n"
_JSON_HEADERS = {"Content-Type": "application/json"}

# The first signed delivery loads the JWKS; a failed load must leave time to publish within
# the sender's 15 s (this + PUBLISH_TIMEOUT_SECONDS, 8 by default).
JWKS_FETCH_TIMEOUT_SECONDS = 5.0  # for the whole load, shared by its sources
# A JWKS failure is logged at most once per this interval (with the count of the others).
JWKS_FAILURE_LOG_SECONDS = 60.0

@dataclass(frozen=True)
class Outcome:
    """What to answer: status code and a short JSON body (never payload content)."""

    status: int
    body: dict[str, str]

    def response(self) -> tuple[bytes, int, dict[str, str]]:
        headers = dict(_JSON_HEADERS)
        if self.status == 405:
            headers["Allow"] = "POST"
        return orjson.dumps(self.body), self.status, headers


def rejected(status: int, error: str) -> Outcome:
    return Outcome(status, {"status": "rejected", "error": error})


def unavailable(error: str) -> Outcome:
    return Outcome(503, {"status": "unavailable", "error": error})


def rfc3339_now() -> str:
    return to_iso(datetime.now(timezone.utc), milliseconds=True)


def unverified_kid(token: bytes) -> str | None:
    """The ``kid`` from a compact JWS header, read without checking the signature.

    Only a hint for the pipeline (an attribute); raises EventError("malformed_jwt") when the
    header is not base64url JSON, since such a token can never verify.
    """
    segment = token.split(b".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise EventError("malformed_jwt", "JWS header is not base64url-encoded JSON") from None
    if not isinstance(header, dict):
        raise EventError("malformed_jwt", "JWS header is not a JSON object")
    kid = header.get("kid")
    return kid if isinstance(kid, str) and 0 < len(kid) <= MAX_ATTRIBUTE_CHARS else None


def classify_body(body: bytes) -> str:
    """``"jws"`` or ``"json"``; raises EventError for what can never become an event."""
    stripped = body.strip(_WHITESPACE)
    if not stripped:
        raise EventError("empty_body", "body is empty")
    if stripped[:1] in (b"{", b"["):
        parse_json_object(stripped)  # invalid_json / unknown_format (not an object)
        return "json"
    if is_compact_jws(stripped):
        return "jws"
    raise EventError("unknown_format", f"body of {len(stripped)} bytes is neither JSON nor a compact JWS")


def publisher_for(config: ReceiverConfig) -> Any:
    """The receiver's publisher: group commit to the configured topic, within its publish timeout."""
    return make_publisher(config.topic, timeout=config.publish_timeout_seconds)


class Receiver:
    """One instance per process: the config, a publisher and a verifier, created once."""

    def __init__(
        self,
        config: ReceiverConfig,
        publisher_factory: Callable[[ReceiverConfig], Any] = publisher_for,
    ):
        self.config = config
        self._publisher_factory = publisher_factory
        self._publisher: Any = None
        self._verifier: Any = None
        self._lock = threading.Lock()
        self._jwks_retry_at = -float("inf")
        self._jwks_last_error = ""
        self._jwks_failures = RateLimitedLog(JWKS_FAILURE_LOG_SECONDS)
        self.clock: Callable[[], float] = time.monotonic

    def publisher(self) -> Any:
        if self._publisher is None:
            with self._lock:
                if self._publisher is None:
                    self._publisher = self._publisher_factory(self.config)
        return self._publisher

    def verifier(self) -> Any:
        """The edge verifier, built on first use.

        Raises JwksUnavailable when the JWKS cannot be loaded; after a failure the load is not
        tried again for the config's jwks_retry_seconds (the requests in between raise at once).
        """
        if self._verifier is None:
            from pipeline.core.jwks import JwksUnavailable

            with self._lock:
                if self._verifier is None:
                    if self.clock() < self._jwks_retry_at:
                        raise JwksUnavailable(f"{self._jwks_last_error} (not retried for "
                                              f"{self.config.jwks_retry_seconds:g} s after a failure)")
                    from pipeline.jwks_fetch import build_verifier

                    try:
                        # The budget is for the whole load: sources are read one after another.
                        sources = max(1, len(self.config.verifier_settings.sources))
                        self._verifier = build_verifier(self.config.verifier_settings,
                                                        timeout=JWKS_FETCH_TIMEOUT_SECONDS / sources)
                    except JwksUnavailable as exc:
                        self._jwks_retry_at = self.clock() + self.config.jwks_retry_seconds
                        self._jwks_last_error = str(exc)
                        raise
        return self._verifier

    def handle(self, method: str, body: bytes | None, content_type: str | None) -> Outcome:
        """Decide and publish. ``body`` is None when it was over the size limit."""
        if method != "POST":
            return rejected(405, "method_not_allowed")
        if body is None:
            return self._log_rejection(rejected(413, "oversized"), None)
        try:
            kind = classify_body(body)
            attributes = {RECEIVED_AT: rfc3339_now(), SIGNED: FALSE}
            if content_type:
                attributes[CONTENT_TYPE] = content_type[:MAX_ATTRIBUTE_CHARS]
            if kind == "json":
                if not self.config.allow_unsigned:
                    return self._log_rejection(rejected(401, "unsigned_not_allowed"), body)
            else:
                attributes[SIGNED] = TRUE
                if self.config.verify_at_edge:
                    kid = self._edge_verify(body, attributes)
                else:
                    kid = unverified_kid(body.strip(_WHITESPACE))
                if kid:
                    attributes[KID] = kid[:MAX_ATTRIBUTE_CHARS]
        except EventError as exc:
            status = 400 if exc.error_type in _MALFORMED else 401
            return self._log_rejection(rejected(status, exc.error_type), body)
        return self._publish(body, attributes)

    def _edge_verify(self, body: bytes, attributes: dict[str, str]) -> str | None:
        """Verify here and return the kid; with the keys out of reach, mark the message unverified.

        Raises EventError for a token that is wrong with the keys at hand (-> 401), or that
        could never verify (malformed -> 400).
        """
        try:
            kid = self._verified_kid(body)
        except EdgeUnavailable as exc:
            self._jwks_failures.record(exc.reason, self.clock())
            attributes[EDGE_VERIFIED] = FALSE
            attributes[EDGE_UNVERIFIED_REASON] = EDGE_UNVERIFIED_JWKS
            return unverified_kid(body.strip(_WHITESPACE))
        attributes[EDGE_VERIFIED] = TRUE
        return kid

    def _verified_kid(self, body: bytes) -> str | None:
        from pipeline.core.jwks import JwksUnavailable

        try:
            verifier = self.verifier()
        except JwksUnavailable as exc:
            raise EdgeUnavailable(str(exc)) from None
        if verifier is None:  # JWKS_URL named no usable source: refuse rather than pass unverified
            raise EventError("no_jwks_configured", "edge verification is on but no JWKS source is configured")
        try:
            return verifier.verify(body.strip(_WHITESPACE)).kid
        except EventError as exc:
            # An unknown kid is only proof of forgery when the key set is current: after a
            # failed refetch it may be a rotated key we could not load.
            if exc.error_type == "unknown_kid" and not getattr(verifier.keys, "last_refresh_ok", True):
                raise EdgeUnavailable("unknown kid and the last JWKS refetch failed") from None
            raise

    def _publish(self, body: bytes, attributes: dict[str, str]) -> Outcome:
        future = None
        try:
            future = self.publisher().publish(body, attributes)
            message_id = future.result(timeout=self.config.publish_timeout_seconds)
        except Exception as exc:  # any publish failure or timeout: the sender must retry, never a 2xx
            if future is not None:
                future.cancel()  # still queued: never sent; already in an RPC: may land (at-least-once)
            logger.error("publish failed: error_type=%s body_bytes=%d", type(exc).__name__, len(body))
            return unavailable("publish_failed")
        return Outcome(202, {"status": "accepted", "message_id": str(message_id)})

    @staticmethod
    def _log_rejection(outcome: Outcome, body: bytes | None) -> Outcome:
        size = -1 if body is None else len(body)
        logger.warning("rejected: status=%d error_type=%s body_bytes=%d", outcome.status, outcome.body["error"], size)
        return outcome


# Shape errors are the client's fault (400); the rest of EventError at the edge is about trust (401).
_MALFORMED = frozenset({"empty_body", "invalid_json", "unknown_format", "malformed_jwt"})


class EdgeUnavailable(Exception):
    """Edge verification cannot decide (the keys are out of reach): publish marked unverified."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RateLimitedLog:
    """Logs a recurring failure at most once per ``interval`` seconds, counting the ones in between.

    The reason logged is the exception text of the JWKS loader (source URL without credentials
    or query, and the error type); never a token or a payload.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._next_at = -float("inf")
        self._suppressed = 0
        self._lock = threading.Lock()

    def record(self, reason: str, now: float) -> bool:
        """Count one occurrence; log it if the interval has passed. Returns whether it logged."""
        with self._lock:
            if now < self._next_at:
                self._suppressed += 1
                return False
            suppressed, self._suppressed = self._suppressed, 0
            self._next_at = now + self.interval
        logger.error(
            "jwks unavailable, publishing signed deliveries unverified at the edge "
            "(edge_verified=false; the pipeline verifies them): %s; %d more since the last report",
            reason, suppressed,
        )
        return True


def read_body(request: Any, max_bytes: int) -> bytes | None:
    """The request body, or None when it exceeds ``max_bytes`` (read at most max_bytes + 1)."""
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    data = request.stream.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


_receiver: Receiver | None = None
_receiver_lock = threading.Lock()


def get_receiver(environ: Mapping[str, str] | None = None) -> Receiver:
    """The process-wide Receiver, configured from the environment on first use."""
    global _receiver
    if _receiver is None:
        with _receiver_lock:
            if _receiver is None:
                _receiver = Receiver(ReceiverConfig.from_env(os.environ if environ is None else environ))
    return _receiver


def _body_limit() -> int | None:
    try:
        return get_receiver().config.max_body_bytes
    except ConfigError:
        return None  # the handler answers 500 misconfigured


# Loaded by functions-framework (locally and on Cloud Run functions): bound request bodies
# before the framework buffers them (see body_limit.py). Elsewhere this does nothing.
body_limit.install(_body_limit)


def receive(request: Any) -> tuple[bytes, int, dict[str, str]]:
    """functions-framework HTTP target."""
    try:
        receiver = get_receiver()
    except ConfigError as exc:
        logger.error("receiver misconfigured: %s", exc)
        return Outcome(500, {"status": "error", "error": "misconfigured"}).response()
    if request.method != "POST":
        return receiver.handle(request.method, b"", None).response()
    body = read_body(request, receiver.config.max_body_bytes)
    return receiver.handle("POST", body, request.headers.get("Content-Type")).response()
