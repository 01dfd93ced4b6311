"""Bound the memory a request body can take before the function sees it (WSGI middleware).

functions-framework reads the whole body in an ``after_request`` hook (``read_request``: it
calls ``request.get_data()`` so that an early answer does not break the connection), so a
limit checked only in the handler still buffers whatever the sender sends. This middleware sits
in front of the framework's Flask app and:

- answers 413 from ``Content-Length`` alone when it is over the limit, without reading a byte
  of the body (gunicorn then discards the unread body in small chunks, holding none of it);
- hands the app a stream that ends after ``limit + 1`` bytes when there is no ``Content-Length``
  (a chunked body), so it is read at most one byte past the limit, by the handler and by the
  framework's hook together: the handler sees ``limit + 1`` bytes and answers 413. A body with
  a ``Content-Length`` within the limit is left as it is (the server and werkzeug already stop
  at its declared length), so the common case costs one comparison.

Memory per request is then bounded by the limit, whatever the sender does.

How it gets installed: functions-framework imports the function's source module inside its
Flask app's context (``create_app`` runs ``exec_module`` under ``app.app_context()``), both under
``functions-framework``/gunicorn locally and on Cloud Run functions (gen2), where the buildpack
serves the staged bundle's ``main.py`` the same way. ``install`` wraps ``current_app.wsgi_app``
from there; imported anywhere else (tests, tools) it does nothing.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

import orjson

logger = logging.getLogger("canvas_receiver")

_TOO_LARGE_BODY = orjson.dumps({"status": "rejected", "error": "oversized"})


class CappedStream:
    """A read-only view of a WSGI input stream that ends after ``cap`` bytes."""

    def __init__(self, stream: Any, cap: int):
        self._stream = stream
        self._left = cap

    def read(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(want)
        self._left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.readline(want)
        self._left -= len(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def content_length(environ: dict[str, Any]) -> int | None:
    """The declared body length, or None when absent or unparseable (the server rejects those)."""
    value = environ.get("CONTENT_LENGTH")
    if not value:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


class BodyLimitMiddleware:
    """WSGI middleware: 413 from Content-Length before reading; a body without one capped at limit + 1.

    ``limit`` is called per request (the receiver's configured MAX_BODY_BYTES, read lazily); when
    it returns None the request passes through untouched (e.g. a misconfigured receiver, which
    answers 500 itself).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], limit: Callable[[], int | None]):
        self.app = app
        self._limit = limit

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        limit = self._limit()
        if limit is None:
            return self.app(environ, start_response)
        declared = content_length(environ)
        if declared is None:
            environ["wsgi.input"] = CappedStream(environ["wsgi.input"], limit + 1)
        elif declared > limit:
            logger.warning("rejected: status=413 error_type=oversized body_bytes=%d (from Content-Length)", declared)
            start_response("413 Request Entity Too Large", [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_TOO_LARGE_BODY))),
            ])
            return [_TOO_LARGE_BODY]
        return self.app(environ, start_response)


def install(limit: Callable[[], int | None]) -> bool:
    """Wrap the Flask app that is importing us (functions-framework's) in BodyLimitMiddleware.

    Returns False, changing nothing, outside a Flask app context or when already installed.
    """
    try:
        import flask
    except ImportError:
        return False
    try:
        app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:  # no app context: not being loaded by functions-framework
        return False
    if isinstance(app.wsgi_app, BodyLimitMiddleware):
        return False
    app.wsgi_app = BodyLimitMiddleware(app.wsgi_app, limit)
    return True
