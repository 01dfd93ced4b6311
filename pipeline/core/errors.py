"""Typed rejections of the pure core.

Every way an input can be refused has a stable ``error_type`` string: dead-letter records,
CLI output and metrics are keyed by it, so values are never renamed once released.
A rejection is data (routed aside and counted); it is never raised for transient I/O,
which raises ordinary exceptions so the runner retries.
"""
from __future__ import annotations

from typing import Any

ERROR_TYPES: dict[str, str] = {
    # input shape
    "empty_body": "the delivery body is empty",
    "oversized": "the delivery body is larger than the configured limit",
    "invalid_json": "the body looks like JSON but does not parse",
    "unknown_format": "neither a Canvas event, a Caliper envelope/event, nor a compact JWS",
    "caliper_v1p0": "a Caliper 1.0 event (@type, @id, IRI actions): only Caliper 1.1 and later are read",
    "empty_envelope": "a Caliper envelope whose data holds no events",
    # signature
    "malformed_jwt": "a compact JWS that does not decode (segments, base64url, JSON header or claims)",
    "alg_not_allowed": "the JWS alg is not RS256 (none, HS256, ES256, ...)",
    "missing_kid": "the JWS header has no kid",
    "unknown_kid": "no key with this kid in the configured JWKS, even after a refetch",
    "bad_signature": "the RS256 signature does not verify with the key for this kid",
    "expired": "the token's exp is in the past (beyond the leeway)",
    "not_yet_valid": "the token's nbf or iat is in the future (beyond the leeway)",
    "bad_issuer": "the token's iss is not the configured issuer",
    "unsigned_not_allowed": "plain JSON arrived and unsigned input is not allowed",
    "no_jwks_configured": "a signed delivery arrived but no JWKS source is configured",
    # content
    "bad_timestamp": "the event time is missing or cannot be parsed",
    "missing_field": "a field the schema requires is missing",
    "invalid_field": "a field has the wrong JSON type (e.g. an object where a string or id belongs)",
    # relay (canvas-events sqs-relay)
    "publish_refused": "Pub/Sub refused the message for good (e.g. INVALID_ARGUMENT), so it was not relayed",
}


class EventError(Exception):
    """A permanent rejection of one input, with a stable ``error_type`` and a message.

    Messages name what was wrong; they never contain the payload, a token or a key.
    ``item`` is the index in a Caliper envelope's ``data`` of the one item refused (the
    envelope's other items are not affected), None when the whole delivery is refused.
    """

    def __init__(self, error_type: str, message: str, item: int | None = None):
        if error_type not in ERROR_TYPES:
            raise ValueError(f"unregistered error_type {error_type!r}")
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.item = item

    def __reduce__(self) -> tuple:
        # Picklable with its fields (Exception's default would call EventError(message)).
        return (EventError, (self.error_type, self.message, self.item))

    def __repr__(self) -> str:
        item = "" if self.item is None else f", item={self.item}"
        return f"EventError({self.error_type!r}, {self.message!r}{item})"

    def at_item(self, index: int) -> EventError:
        """This rejection as the rejection of item ``index`` of an envelope (message says which)."""
        return EventError(self.error_type, f"data[{index}]: {self.message}", index)

    def as_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"error_type": self.error_type, "message": self.message}
        if self.item is not None:
            record["item"] = self.item
        return record
