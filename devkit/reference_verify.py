"""The PyJWT reference for :mod:`pipeline.core.verify`: the same checks, done by a widely reviewed library.

:func:`verify_with_pyjwt` lets PyJWT do the base64url and JSON decoding, the signature and the
claim comparisons. The header policy (steps 1-3 of :mod:`pipeline.core.verify`, a few lines) is
the production code's, since PyJWT needs the kid's key before it can run at all. A test runs every
attack case, fuzzed forgeries and valid tokens through both and asserts the same outcome, so the
fast path cannot drift from PyJWT. It is slower, and no production code calls it, so it lives in
the dev kit, not in the package.

The fast path's JSON is orjson's strict RFC 8259; the reference holds Python's lenient ``json``
(which PyJWT uses) to the same rules with :func:`strict_json_loads`, so both read the same header
and claims (integers beyond 64 bits read as floats in both, as orjson reads them).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import jwt
import jwt.utils

from pipeline.contract import DEFAULT_ISSUER, DEFAULT_LEEWAY_SECONDS
from pipeline.core.decode import VerifiedToken
from pipeline.core.errors import EventError
from pipeline.core.jwks import KeyStore
from pipeline.core.verify import (
    ALLOWED_ALG,
    JwtVerifier,
    _check_header,
    _malformed,
    check_time_claim_types,
)

_COMPACT_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")
    return value


def strict_json_loads(data: bytes | str) -> Any:
    """Python's json held to what jsontext.loads accepts (RFC 8259: UTF-8, no BOM, NaN, Infinity or lone surrogates)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, parse_int=int)
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on lone surrogates
    return value


class _StrictPyJWT(jwt.PyJWT):
    """PyJWT with the payload parsed by strict_json_loads (its documented override point)."""

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = strict_json_loads(decoded["payload"])
        except (ValueError, RecursionError) as exc:
            raise jwt.DecodeError(f"Invalid payload string: {type(exc).__name__}") from None
        if not isinstance(payload, dict):
            raise jwt.DecodeError("Invalid payload string: must be a json object")
        return payload


# PyJWT's claim validators take "now" as an argument; jwt.decode itself reads the wall
# clock, so decode runs with time checks off and the validators run at the injected time.
_PYJWT = _StrictPyJWT()
_PYJWT_SIGNATURE_ONLY: dict[str, Any] = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_iss": False,
    "verify_aud": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


def verify_with_pyjwt(
    token: bytes | str,
    keys: KeyStore,
    *,
    issuer: str | None = DEFAULT_ISSUER,
    leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
    verify_exp: bool = True,
    now: float,
) -> VerifiedToken:
    """The same checks as :meth:`JwtVerifier.verify`, done by PyJWT (slower; the reference)."""
    raw = token.encode("utf-8") if isinstance(token, str) else bytes(token)
    # PyJWT accepts '=' padding and would split four segments as header.payload-with-dot;
    # the compact form we receive never has either.
    if not _COMPACT_JWS.fullmatch(raw):
        raise _malformed("JWS is not three base64url segments separated by dots")
    try:
        header = jwt.get_unverified_header(raw)
    except jwt.InvalidTokenError as exc:
        raise _malformed(f"JWS header does not decode ({type(exc).__name__})") from None
    try:
        strict_json_loads(jwt.utils.base64url_decode(raw.split(b".", 1)[0]))
    except (ValueError, RecursionError):
        raise _malformed("JWS header is not RFC 8259 JSON") from None
    kid = _check_header(header)
    key = keys.get(kid)
    try:
        claims = _PYJWT.decode(raw, key, algorithms=[ALLOWED_ALG], options=_PYJWT_SIGNATURE_ONLY)
    except jwt.InvalidSignatureError:
        raise EventError("bad_signature", f"RS256 signature does not verify with key {kid[:64]!r}") from None
    except jwt.InvalidAlgorithmError:
        raise EventError("alg_not_allowed", "JWS alg is not allowed") from None
    except jwt.InvalidTokenError as exc:
        raise _malformed(f"JWS does not decode ({type(exc).__name__})") from None
    if not isinstance(claims, dict):
        raise _malformed("JWS payload is not a JSON object")
    check_time_claim_types(claims, verify_exp=verify_exp)
    try:
        if "iat" in claims:
            _PYJWT._validate_iat(claims, now, leeway_seconds)
        if "nbf" in claims:
            _PYJWT._validate_nbf(claims, now, leeway_seconds)
        if verify_exp and "exp" in claims:
            _PYJWT._validate_exp(claims, now, leeway_seconds)
        if issuer is not None and "iss" in claims:
            _PYJWT._validate_iss(claims, issuer)
    except jwt.ImmatureSignatureError:
        raise EventError("not_yet_valid", "JWT iat or nbf is in the future") from None
    except jwt.ExpiredSignatureError:
        raise EventError("expired", "JWT has expired") from None
    except jwt.InvalidIssuerError:
        raise EventError("bad_issuer", "JWT iss is not the configured issuer") from None
    except jwt.InvalidTokenError as exc:
        raise _malformed(f"JWT claims are invalid ({type(exc).__name__})") from None
    return VerifiedToken(claims, kid)


class PyJwtVerifier(JwtVerifier):
    """A TokenVerifier on the reference path: for agreement tests and benchmarks, not production."""

    def verify(self, token: bytes | str) -> VerifiedToken:
        return verify_with_pyjwt(
            token,
            self.keys,
            issuer=self.issuer,
            leeway_seconds=self.leeway_seconds,
            verify_exp=self.verify_exp,
            now=self.clock(),
        )
