"""Verify Canvas-signed deliveries: RS256 compact JWS, key by ``kid`` from a :class:`KeyStore`.

The hot path splits the token, base64url-decodes with ``binascii``, parses the header with
``orjson`` and the claims with ``pipeline.core.jsontext`` (numbers keep their exact text), and
verifies PKCS#1 v1.5 / SHA-256 with ``cryptography`` directly: PyJWT's ``decode`` validates
base64 character by character in Python and is several times slower (see shared/STACK.md).
The same checks done by PyJWT are the reference, kept in the dev kit
(``devkit/reference_verify.py``); a test runs every attack case, fuzzed forgeries and valid
tokens through both and asserts the same outcome, so this path cannot drift from a widely
reviewed implementation.

The checks, in order (the first failure decides the ``error_type``):

1. structure: three segments of the base64url alphabet, no padding, canonical encoding,
   non-empty header and payload; header is a JSON object; ``kid``, when present, is a string;
   no ``crit`` header (we implement no JWS extension, and RFC 7515 requires rejecting a
   critical one we do not understand; PyJWT would accept ``crit: ["b64"]``, a detached
   payload we never expect), ``b64`` absent or true                    -> ``malformed_jwt``
2. ``alg`` is exactly RS256 (none, HS256 with the public key as secret, RS384, PS256,
   ES256... are all refused before any key is touched)                  -> ``alg_not_allowed``
3. ``kid`` present and non-empty                                        -> ``missing_kid``
4. key for the kid in the store (after at most one refetch per interval) -> ``unknown_kid``
5. RS256 signature over ``header.payload``                              -> ``bad_signature``
6. payload is a JSON object                                             -> ``malformed_jwt``
7. ``iat`` / ``nbf`` / ``exp`` (when checked) are JSON numbers          -> ``malformed_jwt``
8. ``iat`` or ``nbf`` later than now + leeway                           -> ``not_yet_valid``
9. ``exp`` at or before now - leeway, unless ``verify_exp=False``       -> ``expired``
10. ``iss`` present and not the expected issuer (``issuer=None`` skips)  -> ``bad_issuer``

Time claims are truncated to whole seconds as PyJWT does. ``jku``, ``x5u``, ``jwk`` and
``x5c`` headers are ignored: keys come from the configured JWKS only. JSON is strict RFC 8259
(``jsontext``: msgspec; integers of any size read exactly).
"""
from __future__ import annotations

import binascii
import math
import time
from typing import Any, Callable

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from pipeline.contract import DEFAULT_ISSUER, DEFAULT_LEEWAY_SECONDS
from pipeline.core import jsontext
from pipeline.core.decode import VerifiedToken
from pipeline.core.errors import EventError
from pipeline.core.jwks import KeyStore

ALLOWED_ALG = "RS256"
TIME_CLAIMS = ("iat", "nbf", "exp")

# base64url -> standard base64 in one pass, with the characters that are standard base64 but
# not base64url ("+", "/", "=") mapped to "!", so that binascii's strict mode rejects them
# along with every other character outside the alphabet (spaces, non-ASCII, ...).
_TO_STANDARD_B64 = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING = (b"", b"", b"==", b"=")
# The last character of an unpadded segment carries unused low bits that must be zero
# (length % 4 == 2: 4 unused bits; == 3: 2 unused bits); otherwise several strings decode
# to the same bytes. PyJWT rejects those too.
_CANONICAL_LAST = (
    frozenset(),
    frozenset(),
    frozenset(b"AQgw"),
    frozenset(b"AEIMQUYcgkosw048"),
)
_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _malformed(message: str) -> EventError:
    return EventError("malformed_jwt", message)


def _b64url_decode(segment: bytes, name: str) -> bytes:
    """Decode one unpadded base64url segment; anything else is malformed_jwt.

    Strict: only the base64url alphabet, no padding, and the unused low bits of the last
    character zero (so each byte string has exactly one encoding).
    """
    remainder = len(segment) & 3
    if remainder and (remainder == 1 or segment[-1] not in _CANONICAL_LAST[remainder]):
        raise _malformed(f"JWS {name} is not canonical base64url")
    try:
        return binascii.a2b_base64(segment.translate(_TO_STANDARD_B64) + _PADDING[remainder], strict_mode=True)
    except binascii.Error:
        raise _malformed(f"JWS {name} has characters outside base64url") from None


def _check_header(header: dict[str, Any]) -> str:
    """Steps 1 (header part) to 3: return the kid."""
    kid = header.get("kid")
    if "kid" in header and not isinstance(kid, str):
        raise _malformed("JWS kid header is not a string")
    if "crit" in header:
        raise _malformed("JWS has a crit header; no JWS extension is supported")
    if header.get("b64", True) is not True:
        raise _malformed("JWS b64 header is not true; detached or unencoded payloads are not supported")
    alg = header.get("alg")
    if alg != ALLOWED_ALG:
        shown = alg[:16] if isinstance(alg, str) else type(alg).__name__
        raise EventError("alg_not_allowed", f"JWS alg {shown!r} is not allowed; only {ALLOWED_ALG} is")
    if not kid:
        raise EventError("missing_kid", "JWS header has no kid")
    return kid


def _numeric_date(value: Any, name: str) -> int:
    """A NumericDate claim as PyJWT compares it (whole seconds), or malformed_jwt.

    JSON numbers only (RFC 7519 §2): PyJWT would also take ``"123"`` or ``true``.
    """
    kind = type(value)
    if kind is int:
        return value
    if kind is jsontext.Fragment:  # a float literal kept as its exact text (e.g. 1.5e9)
        value, kind = float(jsontext.number_text(value)), float
    if kind is float and math.isfinite(value):
        return int(value)
    raise _malformed(f"JWT {name} claim is not a finite number")


def check_time_claim_types(claims: dict[str, Any], *, verify_exp: bool) -> None:
    """Step 7: the NumericDate claims that will be compared are JSON numbers (both paths use this rule)."""
    for name in TIME_CLAIMS:
        if name in claims and (name != "exp" or verify_exp):
            _numeric_date(claims[name], name)


_ABSENT: Any = object()
_MAX_CHECKED_HEADERS = 64


def _json_object(data: bytes, name: str, loads: Callable[[bytes], Any] = orjson.loads) -> dict[str, Any]:
    """The header (orjson: it holds no number of interest) or, with ``jsontext.loads``, the
    claims, whose numbers must keep their exact text."""
    try:
        value = loads(data)
    except (orjson.JSONDecodeError, jsontext.InvalidJson):
        raise _malformed(f"JWS {name} is not valid JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"JWS {name} is not a JSON object")
    return value


class JwtVerifier:
    """The hot-path verifier (satisfies ``pipeline.core.decode.TokenVerifier``).

    ``verify_exp=False`` is for an operator replaying old signed data whose ``exp`` has
    passed; it is never switched off implicitly. ``clock`` returns Unix seconds.
    """

    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str | None = DEFAULT_ISSUER,
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
        verify_exp: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        if leeway_seconds < 0:
            raise ValueError("leeway_seconds must be >= 0")
        self.keys = keys
        self.issuer = issuer
        self.leeway_seconds = float(leeway_seconds)
        self.verify_exp = bool(verify_exp)
        self.clock = clock
        # Header segment -> kid, for headers that passed steps 1-3. Canvas signs every event
        # with one header per key ({"alg":"RS256","kid":...}), so this skips decoding and
        # checking the same few bytes on every delivery. Bounded: a flood of distinct
        # headers only empties it.
        self._checked_headers: dict[bytes, str] = {}

    def verify(self, token: bytes | str) -> VerifiedToken:
        """Return the verified claims and kid, or raise EventError (see the module docstring)."""
        if type(token) is bytes:
            pass
        elif isinstance(token, str):
            if not token.isascii():
                raise _malformed("JWS has characters outside base64url")
            token = token.encode("ascii")
        elif not isinstance(token, bytes):
            token = bytes(token)
        # Step 1: three strict base64url segments (the alphabet is checked as they decode).
        segments = token.split(b".", 3)
        if len(segments) != 3:
            raise _malformed("JWS is not three base64url segments separated by dots")
        header_segment, payload_segment, signature_segment = segments
        if not header_segment or not payload_segment:
            raise _malformed("JWS header or payload segment is empty")
        kid = self._checked_headers.get(header_segment)
        if kid is None:
            header = _json_object(_b64url_decode(header_segment, "header"), "header")
        payload_json = _b64url_decode(payload_segment, "payload")
        signature = _b64url_decode(signature_segment, "signature")
        if kid is None:
            kid = _check_header(header)
            if len(self._checked_headers) >= _MAX_CHECKED_HEADERS:
                self._checked_headers.clear()
            self._checked_headers[header_segment] = kid
        key = self.keys.get(kid)
        try:
            # The signing input as a view: no copy of the ~2 KB header.payload.
            key.verify(signature, memoryview(token)[: len(header_segment) + 1 + len(payload_segment)],
                       _PKCS1V15, _SHA256)
        except InvalidSignature:
            raise EventError("bad_signature", f"RS256 signature does not verify with key {kid[:64]!r}") from None
        claims = _json_object(payload_json, "payload", jsontext.loads)
        self._check_claims(claims)
        return VerifiedToken(claims, kid)

    def _check_claims(self, claims: dict[str, Any]) -> None:
        # What Canvas sends (integer iat and exp, no nbf, the expected iss) passes here in a
        # few steps; anything else, valid or not, is decided by the full checks below.
        iat, exp = claims.get("iat"), claims.get("exp")
        if type(iat) is int and type(exp) is int and self.verify_exp and "nbf" not in claims:
            now, leeway, issuer = self.clock(), self.leeway_seconds, self.issuer
            if iat <= now + leeway and exp > now - leeway and (issuer is None or claims.get("iss", issuer) == issuer):
                return
        self._check_claims_in_full(claims)

    def _check_claims_in_full(self, claims: dict[str, Any]) -> None:
        # Steps 7-10; every type check comes before any comparison, as in the reference path.
        # An int is a valid NumericDate as it is: no call for it.
        get = claims.get
        iat, nbf = get("iat", _ABSENT), get("nbf", _ABSENT)
        exp = get("exp", _ABSENT) if self.verify_exp else _ABSENT
        if type(iat) is not int and iat is not _ABSENT:
            iat = _numeric_date(iat, "iat")
        if type(nbf) is not int and nbf is not _ABSENT:
            nbf = _numeric_date(nbf, "nbf")
        if type(exp) is not int and exp is not _ABSENT:
            exp = _numeric_date(exp, "exp")
        if iat is not _ABSENT or nbf is not _ABSENT or exp is not _ABSENT:
            now = self.clock()
            latest_start = now + self.leeway_seconds
            if iat is not _ABSENT and iat > latest_start:
                raise EventError("not_yet_valid", f"JWT iat is {iat - now:.0f} s in the future")
            if nbf is not _ABSENT and nbf > latest_start:
                raise EventError("not_yet_valid", f"JWT nbf is {nbf - now:.0f} s in the future")
            if exp is not _ABSENT and exp <= now - self.leeway_seconds:
                raise EventError("expired", f"JWT expired {now - exp:.0f} s ago")
        issuer = self.issuer
        if issuer is not None and "iss" in claims and claims["iss"] != issuer:
            raise EventError("bad_issuer", "JWT iss is not the configured issuer")

    def __repr__(self) -> str:
        return (
            f"JwtVerifier({self.keys!r}, issuer={self.issuer!r}, leeway_seconds={self.leeway_seconds}, "
            f"verify_exp={self.verify_exp})"
        )
