"""Helpers of the key tests: a clock moved by hand and a URL nobody answers."""
from __future__ import annotations

import socket


class ManualClock:
    """A clock the test moves by hand (for refetch intervals and token times)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port_url() -> str:
    """A loopback URL on a port nobody listens on (bound then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"
