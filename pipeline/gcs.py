"""Small Cloud Storage helpers for single objects (a JWKS, the key archive): the I/O edge.

google-cloud-storage finds ``STORAGE_EMULATOR_HOST`` by itself and then uses anonymous
credentials; on GCP it uses application-default credentials (on Dataflow workers and Cloud
Run, the service account).
"""
from __future__ import annotations

import os
import threading
from typing import Any

_clients: dict[str | None, Any] = {}
_lock = threading.Lock()


def split_gs_url(url: str) -> tuple[str, str]:
    """``gs://bucket/path/to/object`` -> (bucket, object name). Raises ValueError otherwise."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url!r}")
    bucket, _, name = url[len("gs://"):].partition("/")
    if not bucket or not name or name.endswith("/"):
        raise ValueError(f"{url!r} does not name an object (gs://BUCKET/OBJECT)")
    return bucket, name


def client() -> Any:
    """One storage client per process and endpoint (it is thread-safe and pools connections)."""
    endpoint = os.environ.get("STORAGE_EMULATOR_HOST")
    with _lock:
        if endpoint not in _clients:
            from google.cloud import storage

            _clients[endpoint] = storage.Client()
        return _clients[endpoint]


def blob(url: str) -> Any:
    bucket, name = split_gs_url(url)
    return client().bucket(bucket).blob(name)


def read_object(url: str, *, max_bytes: int, timeout: float = 60.0) -> bytes:
    """The first ``max_bytes + 1`` bytes at most of one object (so a caller can refuse larger ones)."""
    return blob(url).download_as_bytes(start=0, end=max_bytes, timeout=timeout)
