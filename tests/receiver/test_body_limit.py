"""Oversized bodies never cost more memory than the limit: refused from Content-Length before
reading, a chunked body read no further than one byte past the limit.

The middleware is tested directly (WSGI calls, no server), then the receiver served over HTTP
by functions-framework/gunicorn takes concurrent oversized posts while its peak RSS is read from
/proc (VmHWM, the kernel's high-water mark: no sampling to miss a peak).
"""
from __future__ import annotations

import io
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator, wait_until
from pipeline.receiver.body_limit import BodyLimitMiddleware, CappedStream, install
from tests.receiver.client import post
from tests.support.names import unique


class _Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def _call(middleware: BodyLimitMiddleware, environ: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(middleware(environ, lambda s, headers: status.append(s)))
    return status[0], body


def _reading_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    data = environ["wsgi.input"].read()
    start_response("200 OK", [])
    return [str(len(data)).encode()]


def test_content_length_over_the_limit_is_refused_without_reading() -> None:
    middleware = BodyLimitMiddleware(_reading_app, lambda: 10)
    status, body = _call(middleware, {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "11", "wsgi.input": _Unreadable()})
    assert status.startswith("413") and body == b'{"status":"rejected","error":"oversized"}'


def test_a_body_without_content_length_reaches_the_app_capped_one_past_the_limit() -> None:
    environ = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"x" * 1000)}
    assert _call(BodyLimitMiddleware(_reading_app, lambda: 10), environ) == ("200 OK", b"11")


@pytest.mark.parametrize("length", ["5", "10"])
def test_a_declared_length_within_the_limit_is_left_alone(length: str) -> None:
    stream = io.BytesIO(b"x" * int(length))
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": length, "wsgi.input": stream}
    assert _call(BodyLimitMiddleware(_reading_app, lambda: 10), environ) == ("200 OK", length.encode())
    assert environ["wsgi.input"] is stream


def test_no_limit_passes_through_untouched() -> None:
    stream = io.BytesIO(b"x" * 50)
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "50", "wsgi.input": stream}
    assert _call(BodyLimitMiddleware(_reading_app, lambda: None), environ) == ("200 OK", b"50")
    assert environ["wsgi.input"] is stream


def test_capped_stream_reads_lines_and_chunks_up_to_the_cap() -> None:
    capped = CappedStream(io.BytesIO(b"ab\ncd\nef\n"), 7)
    assert capped.readline() == b"ab\n"
    assert capped.read(2) == b"cd"
    assert list(capped) == [b"\n", b"e"]
    assert capped.read() == b""


def test_install_does_nothing_outside_functions_framework() -> None:
    assert install(lambda: 10) is False


# --- over HTTP, concurrently, with the server's peak memory measured -------------------------

LIMIT = 64 * 1024
POST_BYTES = 24 * 1024 * 1024  # per post; 8 at once would be 192 MiB if bodies were buffered
CONCURRENT = 8
# What the server may grow by: the limit per request plus the interpreter's own churn. Buffered
# bodies would add about CONCURRENT * POST_BYTES.
ALLOWED_GROWTH = 24 * 1024 * 1024


def peak_rss(pids: list[int]) -> int:
    """The sum of each process's VmHWM (peak resident set, bytes) over ``pids``: the server's
    gunicorn master and worker (only the worker's changes, so growth of the sum is the worker's)."""
    peaks = []
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) * 1024)
        except OSError:
            continue
    assert peaks, f"no /proc status for {pids}"
    return sum(peaks)


CLOSED = "closed"  # the server answered and closed while the body was still being sent


def send_oversized(url: str, total: int, *, chunked: bool) -> int | str:
    """POST ``total`` bytes over a raw socket; the status, or CLOSED when the server hung up mid-body.

    gunicorn answers 413 and closes the connection rather than read the rest of the body, so a
    sender still writing sees the connection close (as any HTTP client would); the server's
    log then tells what it answered.
    """
    parts = urlsplit(url)
    head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.hostname}:{parts.port}",
            "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    block = b"x" * (1024 * 1024)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            while sent < total:
                piece = block[: min(len(block), total - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
            status_line = sock.makefile("rb").readline()
        except (BrokenPipeError, ConnectionResetError):
            return CLOSED
    return int(status_line.split()[1]) if status_line else CLOSED


@pytest.fixture(scope="module")
def small_limit_receiver(pubsub_emulator: PubSubEmulator) -> Iterator[FunctionServer]:
    topic = pubsub_emulator.create_topic(unique("limit"))
    env = {**pubsub_emulator.env(), "PUBSUB_TOPIC": topic, "MAX_BODY_BYTES": str(LIMIT)}
    with FunctionServer(env, threads=16) as server:
        yield server


@pytest.mark.slow
def test_concurrent_oversized_posts_keep_the_server_peak_bounded(small_limit_receiver: FunctionServer) -> None:
    url = small_limit_receiver.url
    assert post(url, b'{"warm": "up"}').status == 202  # the publisher and its threads exist now
    before = peak_rss(small_limit_receiver.group_pids())

    def send(i: int) -> int | str:
        return send_oversized(url, POST_BYTES, chunked=bool(i % 2))  # half chunked, half Content-Length

    with ThreadPoolExecutor(CONCURRENT) as pool:
        outcomes = list(pool.map(send, range(CONCURRENT)))
    assert set(outcomes) <= {413, CLOSED}, outcomes
    wait_until(lambda: small_limit_receiver.log_text().count("rejected: status=413") >= CONCURRENT,
               timeout=30, what="a 413 logged for every oversized post")
    assert small_limit_receiver.log_text().count("rejected: status=413") == CONCURRENT
    growth = peak_rss(small_limit_receiver.group_pids()) - before
    assert growth < ALLOWED_GROWTH, f"server peak grew by {growth / 2**20:.1f} MiB"
    # Still serving genuine deliveries afterwards, at the limit exactly.
    at_limit = b'{"p": "' + b"x" * (LIMIT - 9) + b'"}'
    assert len(at_limit) == LIMIT and post(url, at_limit).status == 202
