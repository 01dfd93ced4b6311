"""Fixtures for the SQS relay: a real SQS API server (moto in server mode) beside the real Pub/Sub emulator.

``moto_sqs`` starts once per session and is stopped by PID group at the end, like the Pub/Sub
emulator fixture in tests/conftest.py. Each test makes its own queue, topic and subscription.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from devkit.emulators import PubSubEmulator
from tests.support.moto_sqs import MotoSqsServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def moto_sqs() -> Iterator[MotoSqsServer]:
    server = MotoSqsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RelayProcess:
    """``canvas-events sqs-relay`` as a subprocess (its own process group), output in a file."""

    def __init__(self, moto: MotoSqsServer, pubsub: PubSubEmulator, queue_url: str, topic: str,
                 workdir: Path, *extra: str):
        self.log_path = workdir / f"relay-{uuid.uuid4().hex[:6]}.log"
        argv = [sys.executable, "-m", "pipeline.cli", "sqs-relay", f"--queue_url={queue_url}",
                f"--topic={topic}", f"--endpoint_url={moto.endpoint}", *extra]
        env = {**os.environ, **moto.env(), **pubsub.env()}
        env.pop("PORT", None)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def signal(self, sig: signal.Signals) -> None:
        os.killpg(self.proc.pid, sig)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def start_relay(moto_sqs: MotoSqsServer, pubsub_emulator: PubSubEmulator, tmp_path: Path) -> Iterator[Any]:
    """start_relay(queue_url, topic, *options) -> RelayProcess; every one is killed at the end."""
    started: list[RelayProcess] = []

    def start(queue_url: str, topic: str, *extra: str) -> RelayProcess:
        relay = RelayProcess(moto_sqs, pubsub_emulator, queue_url, topic, tmp_path, *extra)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.close()
