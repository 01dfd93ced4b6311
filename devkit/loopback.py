"""Small loopback HTTP pieces shared by the demo, the benchmarks and the tests.

``JwksServer`` stands in for Canvas's public JWKS URL (tests can change what it serves and
count how often it was fetched); ``KeepAliveClient`` posts bodies on one keep-alive
connection and reconnects after a connection error, as Canvas's sender would.
"""
from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

CONNECTION_ERROR = -1  # KeepAliveClient.post's status when no HTTP answer came back


class LoopbackHttpServer:
    """An http.server on a free loopback port, served from a daemon thread: ``start()``/``stop()``
    or a ``with`` block. Subclasses call ``_serve(Handler)`` in their ``__init__``."""

    def _serve(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_port}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class JwksServer(LoopbackHttpServer):
    """An http.server on a free loopback port serving a JWKS document at ``url``.

    ``document`` (a dict, or raw bytes), ``status`` and ``redirect_to`` may be changed while it
    runs; ``paths`` records every request, so tests can assert how often a KeyStore fetched.
    """

    def __init__(self, document: Any = None) -> None:
        self.document: Any = {"keys": []} if document is None else document
        self.status = 200
        self.redirect_to: str | None = None
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                with server._lock:
                    server.paths.append(self.path)
                    status, document, redirect_to = server.status, server.document, server.redirect_to
                if redirect_to and self.path == "/jwks.json":
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = document if isinstance(document, bytes) else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep output quiet
                pass

        self._serve(Handler, "jwks-server")
        self.url = f"{self.base_url}/jwks.json"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.paths)


class KeepAliveClient:
    """POSTs to one URL over a keep-alive connection, reconnecting after a connection error."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        self._host, self._port, self._path = parts.hostname, parts.port, parts.path or "/"
        self._timeout = timeout
        self._conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def post(self, body: bytes, content_type: str = "application/json") -> int:
        """The response status, or CONNECTION_ERROR (the connection is then replaced)."""
        try:
            self._conn.request("POST", self._path, body=body, headers={"Content-Type": content_type})
            response = self._conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            self._conn.close()
            self._conn = self._connect()
            return CONNECTION_ERROR

    def close(self) -> None:
        self._conn.close()
