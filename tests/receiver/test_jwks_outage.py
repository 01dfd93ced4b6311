"""The JWKS goes down during a burst of genuine deliveries: nothing is lost, nothing forged gets in.

With edge verification on and the key host unreachable, the receiver publishes every signed
delivery marked ``edge_verified=false`` and answers 202 (before: 503, which loses the event once
Canvas's retries run out). The real pipeline then verifies what was published against its own
JWKS source into rows, and dead-letters the forgery that slipped in unverified. Once the keys
are back, the receiver refuses a forged token with 401 again.

The key host is a small HTTP server on a fixed loopback port, so it can go away and come back
at the same URL; the receiver runs under functions-framework/gunicorn against the real Pub/Sub
emulator.
"""
from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devkit.emulators import FunctionServer, PubSubEmulator, free_port, wait_until
from pipeline.main import run
from devkit.samples import sample_payloads
from devkit.signing import DemoSigner
from tests.pipeline.helpers import dead_letters, expected_keys, output_keys, sign
from tests.receiver.client import post
from tests.support.names import unique

pytestmark = pytest.mark.slow

BURST = 24


class JwksHost:
    """Serves one JWKS document at a fixed loopback URL; can stop and start again on that port."""

    def __init__(self, document: dict[str, Any]):
        self.body = json.dumps(document).encode()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/jwks.json"
        self.requests = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "JwksHost":
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                host.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(host.body)))
                self.end_headers()
                self.wfile.write(host.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=10)  # type: ignore[union-attr]
            self._httpd = None


def test_jwks_down_during_a_burst_every_delivery_published_then_verified_by_the_pipeline(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    signer = DemoSigner(kid="outage-key")
    jwks = JwksHost(signer.jwks())  # not started: the key host is down when deliveries arrive
    topic = pubsub_emulator.create_topic(unique("jwks-outage"))
    subscription = pubsub_emulator.create_subscription(topic, unique("jwks-outage-sub"))
    env = {**pubsub_emulator.env(), "PUBSUB_TOPIC": topic, "JWKS_URL": jwks.url, "JWKS_RETRY_SECONDS": "0.5"}
    payloads = sample_payloads()[:BURST]
    genuine = [sign(signer, p) for p in payloads]
    forged = DemoSigner(kid=signer.kid).sign(payloads[0])  # same kid, another key
    try:
        with FunctionServer(env, threads=16) as server:
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(lambda body: post(server.url, body, content_type="application/jwt"),
                                        genuine + [forged]))
            assert [r.status for r in replies] == [202] * (BURST + 1), [r.body for r in replies if r.status != 202]

            messages = pubsub_emulator.pull(subscription, max_messages=BURST + 1, timeout=20)
            assert sorted(m.data for m in messages) == sorted(genuine + [forged])
            for message in messages:
                assert dict(message.attributes) == {
                    "received_at": message.attributes["received_at"], "content_type": "application/jwt",
                    "signed": "true", "kid": signer.kid,
                    "edge_verified": "false", "edge_unverified_reason": "jwks_unavailable",
                }
            logs = server.log_text()
            assert logs.count("jwks unavailable") == 1  # once per interval, not once per delivery
            assert all(token.decode() not in logs for token in genuine + [forged])
            assert all(token.split(b".")[2].decode() not in logs for token in genuine)

            # The keys come back: a forged token is refused again, a genuine one verified here.
            jwks.start()
            wait_until(lambda: post(server.url, genuine[0], content_type="application/jwt").status == 202
                       and jwks.requests > 0, timeout=30, what="the receiver loads the JWKS again")
            refused = post(server.url, forged, content_type="application/jwt")
            assert (refused.status, refused.json) == (401, {"status": "rejected", "error": "bad_signature"})
            last = pubsub_emulator.pull(subscription, max_messages=50, timeout=2)
            assert forged not in [m.data for m in last]
            assert {m.data for m in last} == {genuine[0]}
            assert any(m.attributes["edge_verified"] == "true" for m in last)

        # The pipeline verifies what the edge could not, against its own JWKS source (the same
        # URL, back up): every genuine delivery becomes a row, the forgery a dead letter.
        source = tmp_path / "published.txt"
        source.write_bytes(b"\n".join(m.data for m in messages) + b"\n")
        out, dead = tmp_path / "out", tmp_path / "dead"
        code = run([f"--input_files={source}", f"--output={out}", f"--dead_letter_output={dead}",
                    f"--jwks_url={jwks.url}", "--runner=DirectRunner"])
        assert code == 0
        assert sorted(output_keys(out)) == sorted(expected_keys(payloads))
        assert [(r["stage"], r["error_type"]) for r in dead_letters(dead)] == [("VerifyAndDecode", "bad_signature")]
    finally:
        jwks.stop()


def test_unknown_kid_after_a_failed_refetch_is_published_unverified_a_known_kid_still_checked(
    pubsub_emulator: PubSubEmulator, tmp_path: Path
) -> None:
    """A kid missing from the keys is a forgery only if the key set is current: after Canvas
    rotates to a key we failed to fetch, its deliveries go through unverified (the pipeline
    decides); a bad signature under a kid we hold is refused whatever the key host does."""
    from pipeline.receiver.config import ReceiverConfig
    from pipeline.receiver.main import Receiver

    current, rotated = DemoSigner(kid="current"), DemoSigner(kid="rotated")
    jwks_file = tmp_path / "jwks.json"
    current.write_jwks(jwks_file)
    topic = pubsub_emulator.create_topic(unique("rotation"))
    subscription = pubsub_emulator.create_subscription(topic, unique("rotation-sub"))
    receiver = Receiver(ReceiverConfig(topic=topic, jwks_urls=(str(jwks_file),), allow_unsigned=False))
    payload = sample_payloads()[0]
    assert receiver.handle("POST", current.sign(payload), "application/jwt").status == 202
    receiver.verifier().keys._min_refetch_interval = 0.0  # every unknown kid refetches (test only)

    jwks_file.unlink()  # the key host is gone when the rotated key shows up
    unverified = receiver.handle("POST", rotated.sign(payload), "application/jwt")
    forged = receiver.handle("POST", DemoSigner(kid="current").sign(payload), "application/jwt")
    assert unverified.status == 202
    assert (forged.status, forged.body["error"]) == (401, "bad_signature")

    current.write_jwks(jwks_file, rotated)  # back, with the new key
    assert receiver.handle("POST", rotated.sign(payload), "application/jwt").status == 202
    unknown = receiver.handle("POST", DemoSigner(kid="never-published").sign(payload), "application/jwt")
    assert (unknown.status, unknown.body["error"]) == (401, "unknown_kid")

    messages = pubsub_emulator.pull(subscription, max_messages=3, timeout=10)
    assert sorted((m.attributes["kid"], m.attributes["edge_verified"]) for m in messages) == [
        ("current", "true"), ("rotated", "false"), ("rotated", "true")]


def test_the_jwks_failure_is_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.receiver.main import RateLimitedLog

    log = RateLimitedLog(interval=60.0)
    with caplog.at_level("ERROR", logger="canvas_receiver"):
        logged = [log.record("JWKS source x: HTTP 503", now) for now in (0.0, 1.0, 59.0, 60.0, 61.0)]
    assert logged == [True, False, False, True, False]
    assert [r.getMessage().endswith(f"{n} more since the last report") for r, n in zip(caplog.records, (0, 2))] == [
        True, True]


@pytest.mark.parametrize("sources", [1, 2], ids=["live", "live+archive"])
def test_a_hung_jwks_host_delays_a_burst_once_and_well_inside_canvas_15_s(
    pubsub_emulator: PubSubEmulator, sources: int,
) -> None:
    """A key host that accepts the connection and never answers (the way a dead upstream often
    fails): one load waits for the fetch timeout, the requests behind it are published unverified
    as soon as it gives up, and none comes near the 15 s Canvas waits; with two sources on that
    host (live URL + archive) the load still keeps to one fetch budget in all."""
    from pipeline.receiver.main import JWKS_FETCH_TIMEOUT_SECONDS

    signer = DemoSigner(kid="hung-key")
    topic = pubsub_emulator.create_topic(unique("jwks-hung"))
    subscription = pubsub_emulator.create_subscription(topic, unique("jwks-hung-sub"))
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)  # connections complete in the backlog; nothing ever reads or answers
        env = {**pubsub_emulator.env(), "PUBSUB_TOPIC": topic,
               "JWKS_URL": ",".join(f"http://127.0.0.1:{hung.getsockname()[1]}/jwks{n}.json"
                                    for n in range(sources))}
        bodies = [sign(signer, p) for p in sample_payloads()[:8]]
        with FunctionServer(env, threads=16) as server:
            with ThreadPoolExecutor(8) as pool:
                replies = list(pool.map(lambda body: post(server.url, body, content_type="application/jwt"), bodies))
            assert [r.status for r in replies] == [202] * len(bodies)
            assert max(r.elapsed for r in replies) < JWKS_FETCH_TIMEOUT_SECONDS + 3.0 < 15.0
            again = post(server.url, bodies[0], content_type="application/jwt")  # inside the retry interval
            assert again.status == 202 and again.elapsed < 1.0
    messages = pubsub_emulator.pull(subscription, max_messages=len(bodies) + 1, timeout=20)
    assert sorted(m.data for m in messages) == sorted(bodies + [bodies[0]])
    assert {m.attributes["edge_verified"] for m in messages} == {"false"}
