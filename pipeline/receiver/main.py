"""The receiver Cloud Function: Canvas Live Events over HTTPS -> one Pub/Sub message per delivery.

Deployed on its own (functions-framework target ``receive``), so it must never import
apache_beam: it uses only the pure core (shape checks from pipeline.core.decode, and the JWT
verifier when edge verification is on). Settings come from the environment
(pipeline/receiver/config.py).

Contract with the sender (Canvas retries a delivery that does not get a 2xx within 15 s):

- 202 ``{"status": "accepted", "message_id": ...}`` only once Pub/Sub has confirmed the publish
  (202, not 200: the event is stored, not yet processed). Never a 2xx for an unpublished event.
- 503 when the publish fails or is not confirmed within PUBLISH_TIMEOUT_SECONDS (retries of
  transient errors included), or the JWKS cannot be fetched: the sender retries later. A publish
  stored just as we gave up may yield a duplicate; the pipeline dedupes on the decoded event, so
  a retry never loses or doubles data.
- 400 empty body, or neither a JSON object nor a compact JWS (JSON shape beyond "an object" is
  the pipeline's business: it dead-letters it with the original payload for inspection);
  401 edge verification on and the signature, kid, issuer or expiry is wrong, or an unsigned
  body when unsigned input is refused; 405 not a POST; 413 over MAX_BODY_BYTES.

The body is published byte for byte as the message data, with attributes ``received_at``
(RFC 3339 UTC), ``content_type`` (when the request had one), ``signed`` ("true"/"false"),
``kid`` (for a JWS: from the verified token with edge verification, else read from the header
without trusting it), and ``edge_verified`` ("true" only when the signature was checked here).
Logs carry error types and sizes, never a payload, token or key.
"""
from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import orjson

from pipeline.core.decode import is_compact_jws, parse_json_object
from pipeline.core.errors import EventError
from pipeline.receiver.config import ConfigError, ReceiverConfig

logger = logging.getLogger("canvas_receiver")

_WHITESPACE = b" \t\r\n"
_MAX_ATTRIBUTE_CHARS = 256  # Pub/Sub allows 1024 bytes per value; these are short by nature
_JSON_HEADERS = {"Content-Type": "application/json"}

# The first signed delivery loads the JWKS; it must fail (503) well inside the sender's 15 s.
JWKS_FETCH_TIMEOUT_SECONDS = 5.0

# One Publish RPC carries at most this much; Pub/Sub's own request limit is 10 MB, and a body
# over the batch size still travels alone (MAX_BODY_BYTES defaults to 1 MiB).
_BATCH_MAX_MESSAGES = 100
_BATCH_MAX_BYTES = 4 * 1024 * 1024
# Messages waiting for confirmation per process; beyond this a request gets 503 at once. Far
# above what the server's threads can have in flight, unless Pub/Sub is stalling.
_FLOW_MAX_MESSAGES = 1000
_FLOW_MAX_BYTES = 64 * 1024 * 1024

_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


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
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    return kid if isinstance(kid, str) and 0 < len(kid) <= _MAX_ATTRIBUTE_CHARS else None


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


def make_publisher(config: ReceiverConfig) -> Any:
    """The batching ``pubsub_v1.PublisherClient``: concurrent requests share one Publish RPC.

    Each request still waits for its own message's confirmation (``future.result``), so
    batching changes nothing about the contract; it only lets the requests that arrive within
    PUBLISH_BATCH_LATENCY_MS of each other travel in one PublishRequest, which saves the
    per-RPC gRPC work here and the per-RPC work of Pub/Sub (bench/receiver.py measures it).
    No ordering (no ordering keys, and ordering would make retries unbounded). Flow control
    refuses (-> 503) rather than blocks, because a blocked request would have no deadline.
    Emulator-aware (PUBSUB_EMULATOR_HOST), with a capped gRPC reconnect backoff so a restarted
    Pub/Sub is found again within seconds.
    """
    import grpc
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.pubsub_v1 import PublisherClient, types
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    emulator_host = os.environ.get("PUBSUB_EMULATOR_HOST")

    def channel(host: str, *, options: Any = (), **kwargs: Any) -> Any:
        options = [*options, *_CHANNEL_OPTIONS]
        if emulator_host:
            return grpc.insecure_channel(emulator_host, options=options)
        return PublisherGrpcTransport.create_channel(host, options=options, **kwargs)

    transport = PublisherGrpcTransport(
        channel=channel,
        credentials=AnonymousCredentials() if emulator_host else None,
        always_use_jwt_access=True,
    )
    timeout = config.publish_timeout_seconds
    return PublisherClient(
        batch_settings=types.BatchSettings(
            max_bytes=_BATCH_MAX_BYTES,
            max_latency=config.publish_batch_latency_seconds,
            max_messages=_BATCH_MAX_MESSAGES,
        ),
        publisher_options=types.PublisherOptions(
            enable_message_ordering=False,
            flow_control=types.PublishFlowControl(
                message_limit=_FLOW_MAX_MESSAGES,
                byte_limit=_FLOW_MAX_BYTES,
                limit_exceeded_behavior=types.LimitExceededBehavior.ERROR,
            ),
            retry=publish_retry(timeout),
            timeout=timeout,
        ),
        transport=transport,
    )


def publish_retry(timeout_seconds: float) -> Any:
    """Retry transient errors, but give up before the request's own deadline.

    The library's default retries a publish for 60 s; with a dead Pub/Sub the batch would
    keep retrying long after the request answered 503. Bounded like this, a batch gives up
    about when its requests do, so a dead Pub/Sub fails fast and nothing lingers for long.
    """
    from google.api_core import exceptions, retry

    return retry.Retry(
        initial=0.05,
        maximum=1.0,
        multiplier=2.0,
        timeout=max(0.5, timeout_seconds * 0.9),
        predicate=retry.if_exception_type(
            exceptions.Aborted,
            exceptions.DeadlineExceeded,
            exceptions.InternalServerError,
            exceptions.ResourceExhausted,
            exceptions.ServiceUnavailable,
            exceptions.Unknown,
            exceptions.Cancelled,
        ),
    )


class Receiver:
    """One instance per process: the config, a publisher and a verifier, created once."""

    def __init__(
        self,
        config: ReceiverConfig,
        publisher_factory: Callable[[ReceiverConfig], Any] = make_publisher,
    ):
        self.config = config
        self._publisher_factory = publisher_factory
        self._publisher: Any = None
        self._verifier: Any = None
        self._lock = threading.Lock()

    def publisher(self) -> Any:
        if self._publisher is None:
            with self._lock:
                if self._publisher is None:
                    self._publisher = self._publisher_factory(self.config)
        return self._publisher

    def verifier(self) -> Any:
        """The edge verifier, built on first use; a failed build is retried on the next request."""
        if self._verifier is None:
            with self._lock:
                if self._verifier is None:
                    from pipeline.core.verify import build_verifier

                    options: dict[str, Any] = {"timeout": JWKS_FETCH_TIMEOUT_SECONDS}
                    if self.config.issuer is not None:
                        options["issuer"] = self.config.issuer
                    if self.config.leeway_seconds is not None:
                        options["leeway_seconds"] = self.config.leeway_seconds
                    self._verifier = build_verifier(list(self.config.jwks_urls), **options)
        return self._verifier

    def handle(self, method: str, body: bytes | None, content_type: str | None) -> Outcome:
        """Decide and publish. ``body`` is None when it was over the size limit."""
        if method != "POST":
            return rejected(405, "method_not_allowed")
        if body is None:
            return self._log_rejection(rejected(413, "oversized"), None)
        try:
            kind = classify_body(body)
            attributes = {"received_at": rfc3339_now(), "signed": "false"}
            if content_type:
                attributes["content_type"] = content_type[:_MAX_ATTRIBUTE_CHARS]
            if kind == "json":
                if not self.config.allow_unsigned:
                    return self._log_rejection(rejected(401, "unsigned_not_allowed"), body)
            else:
                attributes["signed"] = "true"
                kid = self._verified_kid(body) if self.config.verify_at_edge else unverified_kid(body.strip(_WHITESPACE))
                if self.config.verify_at_edge:
                    attributes["edge_verified"] = "true"
                if kid:
                    attributes["kid"] = kid[:_MAX_ATTRIBUTE_CHARS]
        except EventError as exc:
            status = 400 if exc.error_type in _MALFORMED else 401
            return self._log_rejection(rejected(status, exc.error_type), body)
        except EdgeUnavailable as exc:
            logger.error("jwks unavailable: error_type=%s body_bytes=%d", exc, len(body))
            return unavailable("jwks_unavailable")
        return self._publish(body, attributes)

    def _verified_kid(self, body: bytes) -> str | None:
        from pipeline.core.jwks import JwksUnavailable

        try:
            verifier = self.verifier()
            if verifier is None:  # JWKS_URL named no usable source: refuse rather than pass unverified
                raise EventError("no_jwks_configured", "edge verification is on but no JWKS source is configured")
            return verifier.verify(body.strip(_WHITESPACE)).kid
        except JwksUnavailable as exc:
            raise EdgeUnavailable(type(exc).__name__) from None

    def _publish(self, body: bytes, attributes: dict[str, str]) -> Outcome:
        try:
            future = self.publisher().publish(self.config.topic, body, **attributes)
            message_id = future.result(timeout=self.config.publish_timeout_seconds)
        except Exception as exc:  # any publish failure or timeout: the sender must retry, never a 2xx
            # A timed-out future stays with its batch, which may still be stored a moment later
            # (its retries are bounded just under this timeout): at-least-once, see the docstring.
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
    """A transient failure of edge verification (the JWKS cannot be fetched): answer 503."""


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
