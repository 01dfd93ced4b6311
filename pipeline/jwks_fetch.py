"""Fetching JWKS documents at the edge of the core: https:// URLs, gs:// objects and local files.

The pure :class:`pipeline.core.jwks.KeyStore` parses keys, looks them up and decides when to
refetch; this module hands it the raw documents (:func:`fetcher`) and builds stores and
verifiers from :class:`pipeline.contract.VerifierSettings` (:func:`load_key_store`,
:func:`build_verifier`). The receiver's bundle carries it (mk/receiver.mk).

Rules of the fetch (why each one):

* https:// URLs, or http:// to a loopback host only (tests, local proxies): keys fetched in
  clear text from elsewhere could be replaced on the way. Redirects are followed only to URLs
  that satisfy the same rule. No proxy from the environment intercepts a loopback fetch.
* gs:// objects (e.g. the key archive that ``canvas-events archive-keys`` keeps in the bucket,
  so a Dataflow replay reads it), read with the caller's Google credentials through
  ``pipeline.gcs``, imported only for a gs:// source (the receiver's bundle has no Cloud
  Storage client: there a gs:// source is "unavailable", not a crash).
* A local path or file:// URL.
* Nothing larger than ``MAX_JWKS_BYTES`` is buffered. Every failure is :class:`JwksUnavailable`
  naming the source without credentials or query, never the document's content.
"""
from __future__ import annotations

import functools
import ipaddress
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.contract import VerifierSettings
from pipeline.core.jwks import MAX_JWKS_BYTES, Fetch, JwksUnavailable, KeyStore, describe_source, usable_jwks
from pipeline.core.verify import JwtVerifier

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MIN_REFETCH_SECONDS = 60.0


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname))


class _NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to URLs that would be accepted as sources themselves."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if not _allowed_url(urllib.parse.urljoin(req.full_url, newurl)):
            raise JwksUnavailable(
                f"JWKS source {describe_source(req.full_url)}: redirect to a non-https URL refused"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _read_url(source: str, timeout: float) -> bytes:
    parts = urllib.parse.urlsplit(source)
    if parts.scheme == "http":
        if not _is_loopback(parts.hostname):
            raise JwksUnavailable(
                f"JWKS source {describe_source(source)}: http:// is allowed only for loopback hosts; use https://"
            )
        # A proxy from the environment must not intercept a loopback fetch.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoDowngradeRedirects)
    elif parts.scheme == "https":
        opener = urllib.request.build_opener(_NoDowngradeRedirects)
    else:
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: unsupported URL scheme {parts.scheme!r}")
    request = urllib.request.Request(source, headers={"Accept": "application/json"})
    try:
        with opener.open(request, timeout=timeout) as response:
            data = response.read(MAX_JWKS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: {type(exc).__name__}: {reason}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: larger than {MAX_JWKS_BYTES} bytes")
    return data


def _read_file(source: str) -> bytes:
    path = Path(urllib.parse.urlsplit(source).path if source.startswith("file://") else source)
    try:
        if path.stat().st_size > MAX_JWKS_BYTES:
            raise JwksUnavailable(f"JWKS source {source}: larger than {MAX_JWKS_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise JwksUnavailable(f"JWKS source {source}: {type(exc).__name__}: {exc.strerror}") from None


def _read_gcs(source: str, timeout: float) -> bytes:
    # The Cloud Storage client lives at the edge (pipeline.gcs), imported only for gs:// sources
    # (the receiver's bundle has neither: there a gs:// source is "unavailable", not a crash).
    try:
        from pipeline.gcs import read_object

        data = read_object(source, max_bytes=MAX_JWKS_BYTES, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - NotFound, Forbidden, no credentials, bad URL...: all "unavailable"
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: {type(exc).__name__}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise JwksUnavailable(f"JWKS source {describe_source(source)}: larger than {MAX_JWKS_BYTES} bytes")
    return data


def read_source(source: str, *, timeout: float) -> bytes:
    """The raw JWKS document of one source (URL, gs:// object or file path). Raises JwksUnavailable."""
    if source.startswith("gs://"):
        return _read_gcs(source, timeout)
    if "://" in source and not source.startswith("file://"):
        return _read_url(source, timeout)
    return _read_file(source)


def fetcher(timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Fetch:
    """The ``fetch`` function of a KeyStore: ``read_source`` with this timeout (picklable)."""
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    return functools.partial(read_source, timeout=float(timeout))


def load_source(source: str, *, timeout: float) -> list[dict[str, Any]]:
    """Read and filter one source: the public members of its RS256-usable keys. Raises JwksUnavailable."""
    return usable_jwks(read_source(source, timeout=timeout), source)


def load_key_store(
    sources: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    min_refetch_interval: float = DEFAULT_MIN_REFETCH_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> KeyStore:
    """A KeyStore over these sources, loaded now. Raises JwksUnavailable (or ValueError: no source)."""
    return KeyStore(sources, fetch=fetcher(timeout), min_refetch_interval=min_refetch_interval, clock=clock)


def build_verifier(
    settings: VerifierSettings,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    min_refetch_interval: float = DEFAULT_MIN_REFETCH_SECONDS,
    clock: Callable[[], float] = time.time,
) -> JwtVerifier | None:
    """A JwtVerifier for these settings over a freshly loaded KeyStore, or None when the
    settings name no source. ``clock`` (Unix seconds) is the verifier's; the store's refetch
    interval runs on the monotonic clock. Raises JwksUnavailable when a source cannot be loaded."""
    if not settings.sources:
        return None
    store = load_key_store(settings.sources, timeout=timeout, min_refetch_interval=min_refetch_interval)
    return JwtVerifier(
        store, issuer=settings.issuer, leeway_seconds=settings.leeway_seconds, verify_exp=settings.verify_exp,
        clock=clock,
    )
