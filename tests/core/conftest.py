"""Fixtures for the verification tests: generated RSA keys, JWKS files, and a real JWKS server on loopback."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.signing import DemoSigner


class ManualClock:
    """A clock the test moves by hand (for refetch intervals and token times)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class JwksServer:
    """An http.server on a free loopback port serving a JWKS document the test can change.

    Counts the requests it answered, so tests can assert how often a KeyStore fetched.
    """

    def __init__(self) -> None:
        self.document: Any = {"keys": []}
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

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/jwks.json"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="jwks-server", daemon=True
        )

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.paths)

    def start(self) -> "JwksServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def closed_port_url() -> str:
    """A loopback URL on a port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


@pytest.fixture(scope="session")
def signer() -> DemoSigner:
    """The key the configured JWKS holds (kid k1)."""
    return DemoSigner("k1")


@pytest.fixture(scope="session")
def other_signer() -> DemoSigner:
    """A legitimate key of another JWKS, not configured here (kid k2)."""
    return DemoSigner("k2")


@pytest.fixture(scope="session")
def attacker_key() -> DemoSigner:
    """An attacker's RSA key (kid attacker-1)."""
    return DemoSigner("attacker-1")


@pytest.fixture(scope="session")
def jwks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jwks")


@pytest.fixture(scope="session")
def jwks_file(jwks_dir: Path, signer: DemoSigner) -> Path:
    """A JWKS file holding only the k1 public key."""
    path = jwks_dir / "k1.json"
    signer.write_jwks(path)
    return path


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock(1000.0)
