"""Turn one raw delivery body into the live events it carries.

A body is either a compact JWS (Canvas "Sign Payload" on: RS256, claims = the event), or
plain JSON: a Canvas event ``{metadata, body}``, a Caliper envelope ``{sensor, sendTime,
dataVersion, data: [...]}`` (N events give N results) or a bare Caliper event. Detection
is by shape, never by a content-type header, because replays from files have none.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple, Protocol

from pipeline.core import jsontext
from pipeline.core.errors import EventError

DEFAULT_MAX_BYTES = 1024 * 1024

# JWT registered claims: not part of the live event. Dropping them keeps the event (and so
# its event_id) the same whether a delivery was signed, re-signed later, or sent unsigned.
REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_SIGNED_CANVAS_KEYS = REGISTERED_CLAIMS | {"metadata", "body"}

_JWS_SHAPE = re.compile(rb"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_WHITESPACE = b" \t\r\n"


class VerifiedToken(NamedTuple):
    """What a successful signature check yields: the JWS claims and the key id used."""

    claims: dict[str, Any]
    kid: str


class TokenVerifier(Protocol):
    def verify(self, token: bytes) -> VerifiedToken:
        """Return the verified claims, or raise EventError with the rejection reason."""


class DecodedEvent(NamedTuple):
    """One live event out of a delivery, before normalization.

    ``event`` is the Canvas ``{metadata, body}`` (plus any other top-level key of the
    delivery) or one Caliper item (``data[i]``, whatever JSON it is: normalize refuses an item
    that is not an event, for that item alone); ``envelope`` is the Caliper envelope without
    ``data`` (None for Canvas and bare events); ``index`` is ``i`` (None outside an envelope).
    """

    event: dict[str, Any]
    source_format: str  # "canvas" | "caliper"
    signed: bool
    kid: str | None = None
    envelope: dict[str, Any] | None = None
    index: int | None = None


def _has_two_dots(body: bytes) -> bool:
    first = body.find(b".")
    if first < 0:
        return False
    second = body.find(b".", first + 1)
    return second >= 0 and body.find(b".", second + 1) < 0


def is_compact_jws(raw: bytes) -> bool:
    return _JWS_SHAPE.match(raw) is not None


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = jsontext.loads(raw)
    except jsontext.InvalidJson as exc:
        raise EventError("invalid_json", f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EventError("unknown_format", f"JSON body is a {type(value).__name__}, not an object")
    return value


def split_events(
    obj: dict[str, Any], *, signed: bool, kid: str | None = None
) -> list[DecodedEvent]:
    """Classify a decoded JSON object and split a Caliper envelope into its events.

    When ``signed``, ``obj`` is the JWT claims, and the registered claims beside the event
    (``iss``, ``iat``, ``exp``, ...) are not part of it: they are left out of a Canvas event,
    a Caliper envelope or a bare event. Every other key is kept (a webhook's ``subscription``).

    The items of an envelope are independent: each gives its own DecodedEvent (with its
    index), and normalize refuses a bad item (an entity, a Caliper 1.0 event, not an object)
    alone. An envelope holding no event at all (entities only) is refused whole.
    """
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "body" in obj:
        if signed:
            if _SIGNED_CANVAS_KEYS.issuperset(obj):  # the usual claims: the event is metadata + body
                obj = {"metadata": metadata, "body": obj["body"]}
            else:
                obj = {k: v for k, v in obj.items() if k not in REGISTERED_CLAIMS}
        return [DecodedEvent(obj, "canvas", signed, kid)]
    data = obj.get("data")
    if isinstance(data, list):
        if not data:
            raise EventError("empty_envelope", "Caliper envelope has an empty data list")
        envelope = obj.copy()
        del envelope["data"]
        if signed:
            for claim in REGISTERED_CLAIMS.intersection(envelope):
                del envelope[claim]
        if len(data) == 1:  # Canvas sends one event per envelope
            item = data[0]
            if type(item) is not dict or "action" not in item:
                _refuse_envelope_without_events(data)
            return [DecodedEvent(item, "caliper", signed, kid, envelope, 0)]
        if not any(type(item) is dict and "action" in item for item in data):
            _refuse_envelope_without_events(data)
        return [DecodedEvent(item, "caliper", signed, kid, envelope, i) for i, item in enumerate(data)]
    if "actor" in obj and "action" in obj and "type" in obj:
        if signed and not REGISTERED_CLAIMS.isdisjoint(obj):
            obj = {k: v for k, v in obj.items() if k not in REGISTERED_CLAIMS}
        return [DecodedEvent(obj, "caliper", signed, kid)]
    if "action" in obj and "@type" in obj:
        raise EventError("caliper_v1p0", "Caliper 1.0 event (@type/@id); send Caliper 1.1 or later")
    keys = ", ".join(sorted(str(k) for k in obj if not (signed and k in REGISTERED_CLAIMS))[:8])
    raise EventError(
        "unknown_format",
        f"object is neither a Canvas event (metadata+body) nor a Caliper envelope or event; keys: {keys}",
    )


def _refuse_envelope_without_events(data: list[Any]) -> None:
    """An envelope none of whose items is an event: one rejection for the whole delivery."""
    if not any(type(item) is dict for item in data):
        raise EventError("unknown_format", f"Caliper envelope data holds {len(data)} items and no object")
    raise EventError(
        "missing_field",
        f"Caliper envelope holds {len(data)} entities and no event (no item has an action)",
    )


def decode_delivery(
    raw: bytes,
    *,
    verifier: TokenVerifier | None,
    allow_unsigned: bool,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[DecodedEvent]:
    """Decode (and verify) one delivery body into its events. Raises EventError."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if len(raw) > max_bytes:
        raise EventError("oversized", f"body is {len(raw)} bytes, over the {max_bytes}-byte limit")
    body = raw.strip(_WHITESPACE)
    if not body:
        raise EventError("empty_body", "body is empty")
    if body[:1] in (b"{", b"["):
        if not allow_unsigned:
            raise EventError("unsigned_not_allowed", "unsigned JSON delivery and unsigned input is not allowed")
        return split_events(parse_json_object(body), signed=False)
    # A body that begins like a JWS header ("eyJ" is base64url for '{"', how Canvas's headers
    # start) or has two dots goes to the verifier, which checks the structure strictly (three
    # finds were cheaper here than a regex or bytes.count on the hot path: bench/core.py).
    if verifier is not None and (body.startswith(b"eyJ") or _has_two_dots(body)):
        claims, kid = verifier.verify(body)
        return split_events(claims, signed=True, kid=kid)
    if is_compact_jws(body):
        raise EventError("no_jwks_configured", "signed delivery but no JWKS source is configured")
    raise EventError("unknown_format", f"body of {len(body)} bytes is neither JSON nor a compact JWS")
