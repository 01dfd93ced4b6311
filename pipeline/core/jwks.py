"""RS256 public keys by ``kid``, merged from one or more JWKS sources: parse, look up, refetch.

Pure of I/O: a :class:`KeyStore` is handed a ``fetch`` function (source -> the raw JWKS
document) and decides what to keep, where a kid is found and when to fetch again. Reading
https://, file and gs:// sources is at the edge of the core, in ``pipeline/jwks_fetch.py``
(which also builds stores and verifiers from :class:`pipeline.contract.VerifierSettings`).

Canvas rotates its signing key monthly and its public JWKS keeps only the previous, current
and next keys, so a replay of older signed data needs the keys of past months too: an
operator combines the live URL with an archive of old keys, and a ``kid`` found in any source
is accepted.

Loading rules (why each one):

* Only ``kty`` RSA keys with ``use`` "sig" (or no ``use``), ``alg`` RS256 (or no ``alg``), a
  non-empty ``kid`` and at least 2048 bits are kept; the verifier accepts RS256 only, so any
  other key could only ever be misused. Private members (``d``...) are dropped.
* A source that cannot be loaded when the store is built raises :class:`JwksUnavailable`,
  so preflight checks fail fast. Later, an unknown ``kid`` triggers one refetch of every
  source, at most once per ``min_refetch_interval`` per store (an attacker sending random
  kids cannot make us hammer the JWKS host); a source that fails then keeps its previous
  keys and a warning is logged.
* When two sources hold the same ``kid`` with different keys, the first source listed wins
  (list the live URL first) and a warning is logged.

Keys from a token header (``jku``, ``x5u``, ``jwk``, ``x5c``) are never used: the configured
sources are the only place keys come from.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.parse
from typing import Any, Callable, Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from pipeline.core.errors import EventError

Fetch = Callable[[str], bytes]  # source -> raw JWKS document; raises JwksUnavailable

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024  # a JWKS is a few KB; refuse to buffer anything huge
MIN_RSA_BITS = 2048
_PUBLIC_RSA_MEMBERS = ("kty", "kid", "use", "alg", "n", "e")


class JwksUnavailable(Exception):
    """A JWKS source could not be loaded (unreachable, not a JWK Set, no usable key, insecure URL).

    The message names the source (without credentials or query string) and the reason, never
    the document's content.
    """


def describe_source(source: str) -> str:
    """The source as it may appear in logs: a URL without userinfo, query or fragment."""
    if "://" not in source:
        return source
    parts = urllib.parse.urlsplit(source)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def usable_jwks(document: bytes, source: str) -> list[dict[str, Any]]:
    """The public members of the keys of a JWK Set that RS256 verification may use.

    Raises JwksUnavailable when the document is not a JWK Set or holds no usable key.
    """
    name = describe_source(source)
    try:
        jwks = json.loads(document)
    except (ValueError, RecursionError):
        raise JwksUnavailable(f"JWKS source {name}: not valid JSON") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise JwksUnavailable(f"JWKS source {name}: not a JWK Set (no 'keys' list)")
    usable = []
    for index, jwk in enumerate(jwks["keys"]):
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("alg", "RS256") != "RS256":
            continue
        if not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            log.warning("JWKS source %s: RSA key #%d has no kid; skipped", name, index)
            continue
        usable.append({k: jwk[k] for k in _PUBLIC_RSA_MEMBERS if k in jwk})
    keys = [(jwk, key) for jwk in usable if (key := _public_key(jwk, name)) is not None]
    if not keys:
        raise JwksUnavailable(f"JWKS source {name}: no usable RS256 key (RSA, use sig, >= {MIN_RSA_BITS} bits, with kid)")
    return [jwk for jwk, _ in keys]


def _public_key(jwk: Mapping[str, Any], source_name: str) -> RSAPublicKey | None:
    try:
        key = RSAAlgorithm.from_jwk(dict(jwk))
    except Exception as exc:  # pyjwt raises InvalidKeyError, but bad members surface as other errors
        log.warning("JWKS source %s: key %.64r does not parse (%s); skipped", source_name, jwk.get("kid"), type(exc).__name__)
        return None
    if isinstance(key, RSAPrivateKey):
        key = key.public_key()
    if key.key_size < MIN_RSA_BITS:
        log.warning("JWKS source %s: key %.64r has %d bits (< %d); skipped", source_name, jwk.get("kid"), key.key_size, MIN_RSA_BITS)
        return None
    return key


def _same_key(a: RSAPublicKey, b: RSAPublicKey) -> bool:
    return a.public_numbers() == b.public_numbers()


class KeyStore:
    """RS256 verification keys by kid, merged from several JWKS sources, with rate-limited refetch.

    ``get`` is lock-free for known kids (the hot path); the refetch after an unknown kid holds
    a lock so concurrent threads trigger one fetch, not many.
    Picklable (for Beam DoFns): the public JWKs travel, not the connections or the lock; the
    unpickled copy may refetch on its first unknown kid.
    """

    def __init__(
        self,
        sources: Sequence[str],
        *,
        fetch: Fetch,
        min_refetch_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if isinstance(sources, str):
            sources = [sources]
        self._sources = tuple(s.strip() for s in sources if s and s.strip())
        if not self._sources:
            raise ValueError("KeyStore needs at least one JWKS source")
        if min_refetch_interval < 0:
            raise ValueError("min_refetch_interval must be >= 0")
        self._min_refetch_interval = float(min_refetch_interval)
        self._clock = clock
        self._fetch = fetch  # pickled with the store (Beam): a module-level function or a partial of one
        self._lock = threading.Lock()
        self._last_fetch = self._clock()
        self._jwks_by_source = [self._load(source) for source in self._sources]
        self._keys: dict[str, RSAPublicKey] = self._merge(self._jwks_by_source)
        self.fetch_count = 1  # full loads, for tests and metrics
        # False after a refetch in which a source failed: an unknown kid may then be a key we
        # could not load rather than a forgery (the receiver publishes such tokens unverified).
        self.last_refresh_ok = True

    def _load(self, source: str) -> list[dict[str, Any]]:
        """Fetch and filter one source. Raises JwksUnavailable."""
        return usable_jwks(self._fetch(source), source)

    @property
    def sources(self) -> tuple[str, ...]:
        return self._sources

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def get(self, kid: str) -> RSAPublicKey:
        """The key for ``kid``; raises EventError("unknown_kid") after at most one refetch per interval."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        key = self._refetch_for(kid)
        if key is None:
            raise EventError("unknown_kid", f"no key with kid {kid[:64]!r} in the configured JWKS sources")
        return key

    def _refetch_for(self, kid: str) -> RSAPublicKey | None:
        with self._lock:
            key = self._keys.get(kid)  # another thread may have refetched while we waited
            if key is not None:
                return key
            now = self._clock()
            if now - self._last_fetch < self._min_refetch_interval:
                return None
            self._last_fetch = now
            self.refresh()
            return self._keys.get(kid)

    def refresh(self) -> None:
        """Reload every source now; a failing source keeps its previous keys (logged, not raised)."""
        fresh = []
        all_ok = True
        for source, previous in zip(self._sources, self._jwks_by_source):
            try:
                fresh.append(self._load(source))
            except JwksUnavailable as exc:
                log.warning("JWKS refetch failed, keeping %d previous key(s): %s", len(previous), exc)
                fresh.append(previous)
                all_ok = False
        self.last_refresh_ok = all_ok
        self._jwks_by_source = fresh
        self._keys = self._merge(fresh)
        self.fetch_count += 1

    def _merge(self, jwks_by_source: list[list[dict[str, Any]]]) -> dict[str, RSAPublicKey]:
        keys: dict[str, RSAPublicKey] = {}
        for source, jwks in zip(self._sources, jwks_by_source):
            for jwk in jwks:
                key = _public_key(jwk, describe_source(source))
                if key is None:
                    continue
                kid = jwk["kid"]
                if kid in keys:
                    if not _same_key(keys[kid], key):
                        log.warning("kid %.64r has different keys in several JWKS sources; the first listed wins", kid)
                    continue
                keys[kid] = key
        return keys

    def __getstate__(self) -> dict[str, Any]:
        return {
            "sources": self._sources,
            "min_refetch_interval": self._min_refetch_interval,
            "clock": self._clock,
            "fetch": self._fetch,
            "jwks_by_source": self._jwks_by_source,
            "fetch_count": self.fetch_count,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._sources = state["sources"]
        self._min_refetch_interval = state["min_refetch_interval"]
        self._clock = state["clock"]
        self._fetch = state["fetch"]
        self._jwks_by_source = state["jwks_by_source"]
        self.fetch_count = state["fetch_count"]
        self.last_refresh_ok = True
        self._lock = threading.Lock()
        # Another process's monotonic clock means nothing here: allow one refetch right away.
        self._last_fetch = -math.inf
        self._keys = self._merge(self._jwks_by_source)

    def __repr__(self) -> str:
        sources = ", ".join(describe_source(s) for s in self._sources)
        return f"KeyStore([{sources}], kids={sorted(self._keys)})"
