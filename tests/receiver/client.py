"""A minimal HTTP client for the receiver tests and benchmarks: real sockets, no mocks."""
from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

# Small enough that the 413 tests send little, large enough for every corpus payload (< 16 KiB).
TEST_MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    elapsed: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def post(
    url: str,
    body: bytes | Iterable[bytes] = b"",
    *,
    method: str = "POST",
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    timeout: float = 30.0,
) -> Reply:
    """Send one request on a fresh connection; ``chunked`` sends the body without Content-Length."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    started = time.monotonic()
    try:
        if chunked:
            chunks = [body] if isinstance(body, bytes) else list(body)
            conn.request(method, parts.path or "/", body=iter(chunks), headers=all_headers, encode_chunked=True)
        else:
            conn.request(method, parts.path or "/", body=body if method != "GET" else None, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, data, {k.lower(): v for k, v in response.getheaders()}, time.monotonic() - started)
    finally:
        conn.close()
