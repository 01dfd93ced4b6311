"""``canvas-events archive-keys``: keep every key Canvas has signed with, so old deliveries stay verifiable.

Canvas's live JWKS holds only the previous, current and next keys and rotates monthly; a replay
of raw deliveries older than about two months needs keys that are no longer served. This merges
the live JWKS into an archive JWKS (a local file or a gs:// object), run daily (``make
keys-schedule``), and the archive is given to ``--jwks_url`` next to the live URL.

Rules:

* A key is never dropped: the archive only grows.
* A ``kid`` already archived with different key material (modulus or exponent) is an error
  (:class:`KeyConflict`, naming the kid): the archive is left byte for byte as it was. A kid
  re-used for another key would make one of the two keys' deliveries unverifiable, or worse,
  verifiable with the wrong key; an operator must look.
* The archive is replaced atomically: locally by a temp file renamed over it (an exclusive lock
  serializes concurrent local runs); on Cloud Storage by a write conditioned on the generation
  read (``if_generation_match``, 0 for "does not exist yet"). When another run wrote in between,
  the write fails with 412 and the whole read-merge-write is done again, so two concurrent runs
  never lose each other's keys.
* Only public members of RS256-usable keys are archived (``pipeline.core.jwks.usable_jwks``).
* Nothing is written when no key is new (the object and its generation stay the same).
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from pipeline.contract import parse_sources
from pipeline.core.jwks import JwksUnavailable, describe_source
from pipeline.jwks_fetch import load_source

MAX_ATTEMPTS = 20


class KeyConflict(Exception):
    """A kid is archived with different key material than a source now serves."""

    def __init__(self, kid: str, source: str):
        super().__init__(f"kid {kid!r} is already archived with different key material than {source} serves; "
                         "the archive was left unchanged")
        self.kid = kid


class ArchiveError(Exception):
    """The archive cannot be read, parsed or written."""


class _Raced(Exception):
    """Another run replaced the archive between our read and our write."""


def _b64int(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError("not a base64url string")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def key_material(jwk: dict[str, Any]) -> tuple[str, int, int]:
    """What identifies an RSA public key: (kty, n, e), independent of base64 padding or leading zeros."""
    return str(jwk.get("kty")), _b64int(jwk.get("n")), _b64int(jwk.get("e"))


def parse_archive(document: bytes | None, where: str) -> list[dict[str, Any]]:
    """The keys of an archive document (None: no archive yet). Raises ArchiveError."""
    if document is None:
        return []
    try:
        jwks = json.loads(document)
    except ValueError:
        raise ArchiveError(f"archive {where}: not valid JSON") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ArchiveError(f"archive {where}: not a JWK Set (no 'keys' list)")
    for index, jwk in enumerate(jwks["keys"]):
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            raise ArchiveError(f"archive {where}: key #{index} has no kid")
    return list(jwks["keys"])


def merge_keys(
    archived: Sequence[dict[str, Any]], live: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """(archive keys + the new live ones, kids added). ``live``: (source, jwk) pairs.

    Raises KeyConflict when a kid already known (archived, or from an earlier source) has other
    key material. Keeps the archive's order and appends new keys in the order given.
    """
    merged = list(archived)
    by_kid = {jwk["kid"]: jwk for jwk in merged}
    added = []
    for source, jwk in live:
        known = by_kid.get(jwk["kid"])
        if known is None:
            merged.append(jwk)
            by_kid[jwk["kid"]] = jwk
            added.append(jwk["kid"])
        else:
            try:
                same = key_material(known) == key_material(jwk)
            except ValueError:
                same = False
            if not same:
                raise KeyConflict(jwk["kid"], source)
    return merged, added


def render(keys: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"keys": list(keys)}, indent=2, sort_keys=True).encode() + b"\n"


class LocalArchive:
    """An archive file; writes are temp file + fsync + rename, runs serialized by a lock file."""

    def __init__(self, path: str):
        self.path = Path(path[len("file://"):] if path.startswith("file://") else path)
        self.where = str(self.path)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> tuple[bytes | None, Any]:
        try:
            return self.path.read_bytes(), None
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            raise ArchiveError(f"archive {self.where}: {exc.strerror}") from None

    def replace(self, data: bytes, _token: Any) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class GcsArchive:
    """An archive object; each write is conditioned on the generation that was read."""

    def __init__(self, url: str):
        from pipeline.gcs import split_gs_url

        split_gs_url(url)  # ValueError early for a URL that names no object
        self.url = url
        self.where = url

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        yield

    def read(self) -> tuple[bytes | None, int]:
        from google.api_core import exceptions

        from pipeline.gcs import blob

        try:
            current = blob(self.url)
            current.reload()
        except exceptions.NotFound:
            return None, 0  # if_generation_match=0: create only if it still does not exist
        except exceptions.GoogleAPICallError as exc:
            raise ArchiveError(f"archive {self.where}: {type(exc).__name__}") from None
        generation = int(current.generation)
        try:
            return current.download_as_bytes(if_generation_match=generation), generation
        except (exceptions.PreconditionFailed, exceptions.NotFound):
            raise _Raced() from None

    def replace(self, data: bytes, generation: int) -> None:
        from google.api_core import exceptions

        from pipeline.gcs import blob

        try:
            blob(self.url).upload_from_string(data, content_type="application/json", if_generation_match=generation)
        except exceptions.PreconditionFailed:
            raise _Raced() from None
        except exceptions.GoogleAPICallError as exc:
            raise ArchiveError(f"archive {self.where}: {type(exc).__name__}") from None


def open_archive(location: str) -> LocalArchive | GcsArchive:
    return GcsArchive(location) if location.startswith("gs://") else LocalArchive(location)


@dataclass(frozen=True)
class ArchiveResult:
    added: list[str]
    total: int
    attempts: int


def archive_keys(live_sources: Sequence[str], location: str, *, timeout: float = 10.0) -> ArchiveResult:
    """Merge the keys of ``live_sources`` into the archive at ``location``.

    Raises JwksUnavailable (a live source), KeyConflict, ArchiveError.
    """
    live = [(describe_source(s), jwk) for s in live_sources for jwk in load_source(s, timeout=timeout)]
    archive = open_archive(location)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        with archive.session():
            try:
                document, token = archive.read()
                merged, added = merge_keys(parse_archive(document, archive.where), live)
                if not added:
                    return ArchiveResult([], len(merged), attempt)
                archive.replace(render(merged), token)
                return ArchiveResult(added, len(merged), attempt)
            except _Raced:
                pass
        time.sleep(random.uniform(0.05, 0.2) * min(attempt, 5))  # another run wrote: read again
    raise ArchiveError(f"archive {archive.where}: replaced by other writers {MAX_ATTEMPTS} times in a row; try again")


__all__ = ["ArchiveError", "ArchiveResult", "JwksUnavailable", "KeyConflict", "archive_keys", "merge_keys"]


def add_arguments(parser: Any) -> None:
    parser.add_argument("--jwks_url", action="append", default=[], required=True, metavar="URL_OR_PATH",
                        help="the live JWKS (https:// URL, gs:// object or file); repeat or separate with commas "
                             "for several. Required")
    parser.add_argument("--archive", required=True, metavar="PATH_OR_GS",
                        help="archive JWKS to merge into: a local file or gs://BUCKET/OBJECT (created if missing). "
                             "Required")


def command(args: Any) -> int:
    """Exit 0: merged (or nothing new); 1: kid conflict or the archive cannot be read or written;
    2: a live source cannot be loaded."""
    import sys

    prog = "canvas-events archive-keys"
    sources = parse_sources(args.jwks_url)
    try:
        result = archive_keys(sources, args.archive)
    except JwksUnavailable as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (KeyConflict, ArchiveError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    added = ", ".join(result.added) if result.added else "none"
    print(f"{prog}: {result.total} key(s) in {args.archive}; added: {added}", file=sys.stderr)
    return 0
