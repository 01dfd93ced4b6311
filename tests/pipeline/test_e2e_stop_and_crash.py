"""Stopping or killing a local streaming run loses nothing (issue 10, part 1b).

Real parts only: the Pub/Sub emulator, ``python -m pipeline.cli run`` as a subprocess on the
BundleBasedDirectRunner with 5 s windows, real signals, DuckDB counting the Parquet output.

* SIGINT or SIGTERM while events keep arriving (so some sit in an open window): the run stops
  pulling, writes them, exits 0, and what it did not pull is still on the subscription:
  output + what is left == everything published, and nothing is in both.
* kill -9 while events keep arriving, then a new run on the same subscription, stopped with
  SIGTERM: every published event is in the output (copies written twice are allowed; compaction
  and the deduplicating view remove them) and the subscription is empty.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devkit.deliveries import distinct_canvas_events
from devkit.signing import DemoSigner
from tests.pipeline.helpers import corpus_payloads, expected_keys, output_keys, sign, wait_for

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WINDOW_SECONDS = 5
OUTPUT_DEADLINE = 120  # seconds; includes a redelivery after the ack deadline on a loaded machine


def _distinct_payloads(n: int, tag: str) -> list[dict[str, Any]]:
    return distinct_canvas_events([p for p in corpus_payloads() if "metadata" in p], n, tag)


class _Run:
    """``canvas-events run`` streaming from ``subscription``, in its own process group."""

    def __init__(self, env: dict[str, str], subscription: str, out: Path, dead: Path, jwks: Path, log: Path):
        self.log = log
        self._log_file = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "run", "--runner=BundleBasedDirectRunner", "--streaming",
             f"--input_subscription={subscription}", f"--output={out}", f"--dead_letter_output={dead}",
             f"--jwks_url={jwks}", f"--window_seconds={WINDOW_SECONDS}"],
            cwd=REPO_ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log_file.close()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill_group()
        self._log_file.close()


def _keys(out: Path) -> list[str]:
    return output_keys(out) if any(out.rglob("*.parquet")) else []


@pytest.fixture
def stream(pubsub_emulator: Any, tmp_path: Path, signer: DemoSigner, jwks_file: Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic = pubsub_emulator.create_topic(f"stop-{tag}")
    subscription = pubsub_emulator.create_subscription(topic, f"stop-{tag}", ack_deadline_seconds=10)
    jwks = jwks_file
    env = {**os.environ, **pubsub_emulator.env()}
    return {"tag": tag, "topic": topic, "subscription": subscription,
            "signer": signer, "jwks": jwks, "env": env, "out": tmp_path / "out", "dead": tmp_path / "dead"}


class _SteadyPublisher(threading.Thread):
    """Publishes distinct signed events, ``per_second``, until stopped: there is always an open window."""

    def __init__(self, emulator: Any, stream: dict[str, Any], per_second: int = 40, limit: int = 3000):
        super().__init__(daemon=True)
        self._emulator, self._stream = emulator, stream
        self._payloads = _distinct_payloads(limit, stream["tag"])
        self._interval = 1 / per_second
        self._halt = threading.Event()
        self.published: dict[bytes, dict[str, Any]] = {}

    def run(self) -> None:
        start = time.monotonic()
        for i, payload in enumerate(self._payloads):
            if self._halt.is_set():
                break
            body = sign(self._stream["signer"], payload)
            self._emulator.publisher.publish(self._stream["topic"], body, origin="stop-test").result(timeout=30)
            self.published[body] = payload
            time.sleep(max(0.0, start + (i + 1) * self._interval - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_writes_open_windows_and_leaves_the_rest_on_the_subscription(
    pubsub_emulator: Any, stream: dict[str, Any], tmp_path: Path, sig: int
) -> None:
    run = _Run(stream["env"], stream["subscription"], stream["out"], stream["dead"], stream["jwks"],
               tmp_path / "run.log")
    publisher = _SteadyPublisher(pubsub_emulator, stream)
    publisher.start()
    try:
        wait_for(lambda: _keys(stream["out"]), OUTPUT_DEADLINE, what="first files")
        run.signal(sig)  # while events keep arriving: some sit in an open window
        status = run.wait(OUTPUT_DEADLINE)
    finally:
        publisher.stop()
        run.close()
    log = run.text()
    assert status == 0, log[-3000:]
    held_at_stop = int(re.search(r"writing open windows \((\d+) message", log).group(1))
    everything = set(expected_keys(publisher.published.values()))
    written = set(_keys(stream["out"]))
    # Whatever was pulled and not written would come back only after its ack deadline: a quick
    # drain now sees only what the run never pulled (or pulled after it stopped: none).
    left = pubsub_emulator.pull(stream["subscription"], max_messages=len(publisher.published), timeout=3)
    left_keys = set(expected_keys([publisher.published[m.data] for m in left]))
    assert written | left_keys == everything, (len(everything - written - left_keys), log[-3000:])
    assert not written & left_keys  # what was written was acknowledged
    assert held_at_stop > 0  # the stop came while messages sat in an open window, and they were written


def test_kill_9_then_restart_loses_nothing(pubsub_emulator: Any, stream: dict[str, Any], tmp_path: Path) -> None:
    publisher = _SteadyPublisher(pubsub_emulator, stream)
    publisher.start()
    first = _Run(stream["env"], stream["subscription"], stream["out"], stream["dead"], stream["jwks"],
                 tmp_path / "first.log")
    try:
        wait_for(lambda: _keys(stream["out"]), OUTPUT_DEADLINE, what="first files")
        first.kill_group()  # while events keep arriving: some were pulled into an open window
        published_at_crash = set(expected_keys(list(publisher.published.values())))
        at_crash = set(_keys(stream["out"]))
        second = _Run(stream["env"], stream["subscription"], stream["out"], stream["dead"], stream["jwks"],
                      tmp_path / "second.log")
    finally:
        first.close()
    try:
        wait_for(lambda: len(publisher.published) >= len(published_at_crash) + 100, 30, what="more traffic")
        publisher.stop()
        everything = set(expected_keys(publisher.published.values()))
        wait_for(lambda: set(_keys(stream["out"])) >= everything, OUTPUT_DEADLINE, what="every event after restart")
        second.signal(signal.SIGTERM)
        status = second.wait(OUTPUT_DEADLINE)
    finally:
        publisher.stop()
        second.close()
    assert first.proc.returncode == -signal.SIGKILL
    assert at_crash < published_at_crash  # the crash did interrupt the stream
    assert status == 0, second.text()[-3000:]
    assert set(_keys(stream["out"])) == everything
    assert pubsub_emulator.pull(stream["subscription"], max_messages=10, timeout=3) == []
