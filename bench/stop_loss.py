"""How many events a local streaming run loses when it is stopped once and started again.

The measurement of issue 10 part 1b, as a user would make it: the Pub/Sub emulator, a streaming
run on the BundleBasedDirectRunner with 5 s windows, N distinct signed deliveries published
evenly over S seconds; half-way the run is stopped (kill -9, SIGTERM or SIGINT) and a new run
is started on the same subscription; at the end the distinct events in the Parquet output are
counted with DuckDB against what was published.

Two readers, same scenario, same run of this script:
  beam     Beam's own local Pub/Sub read (acknowledges on pull), i.e. ``build_pipeline`` without
           a ledger, waited on with ``wait_until_finish`` (what `canvas-events run` did before);
  held     `canvas-events run` as shipped (pipeline/transforms/held_acks.py).

Usage: python bench/stop_loss.py [--events 2000] [--seconds 20] [--readers beam,held]
                                 [--stops kill,term,int]
Prints one line per (reader, stop): published, distinct written, lost, duplicates, seconds.
Noisy on a shared machine; compare within one run.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOW_SECONDS = 5
QUIET_SECONDS = 60  # no new event for this long after the restart: the run has written all it will

BEAM_READER_CHILD = """
import sys
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from pipeline.main import build_pipeline
options = PipelineOptions(sys.argv[1:])
options.view_as(StandardOptions).streaming = True
p = beam.Pipeline(options=options)
build_pipeline(p, options)
p.run().wait_until_finish()
"""


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _payloads(n: int, tag: str) -> list[dict]:
    from devkit.deliveries import distinct_canvas_events, payloads

    return distinct_canvas_events(payloads(formats=("canvas",)), n, tag)


def _distinct(out: Path) -> Counter:
    import duckdb

    if not any(p for p in out.rglob("*.parquet") if not p.name.startswith(".")):
        return Counter()
    rows = duckdb.sql(f"select request_id, event_id from read_parquet('{out}/**/*.parquet', "
                      "hive_partitioning=true)").fetchall()
    return Counter(rows)


def _start(reader: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    if reader == "held":
        argv = [sys.executable, "-m", "pipeline.cli", "run", *args]
    else:
        argv = [sys.executable, "-c", BEAM_READER_CHILD, *args]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen, how: str) -> None:
    sig = {"kill": signal.SIGKILL, "term": signal.SIGTERM, "int": signal.SIGINT}[how]
    if how == "kill":
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def scenario(emulator, reader: str, how: str, events: int, seconds: float, workdir: Path) -> dict:
    from devkit.signing import DemoSigner
    from tests.pipeline.helpers import sign

    tag = uuid.uuid4().hex[:8]
    topic = emulator.create_topic(f"bench-{tag}")
    subscription = emulator.create_subscription(topic, f"bench-{tag}", ack_deadline_seconds=10)
    signer = DemoSigner(kid="bench-stop")
    base = workdir / f"{reader}-{how}"
    base.mkdir()
    signer.write_jwks(base / "jwks.json")
    out = base / "out"
    args = ["--runner=BundleBasedDirectRunner", "--streaming", f"--input_subscription={subscription}",
            f"--output={out}", f"--dead_letter_output={base / 'dead'}", f"--jwks_url={base / 'jwks.json'}",
            f"--window_seconds={WINDOW_SECONDS}"]
    env = {**os.environ, **emulator.env(), "PYTHONPATH": str(ROOT)}
    bodies = [sign(signer, p) for p in _payloads(events, tag)]

    started = time.monotonic()
    proc = _start(reader, args, env, base / "run1.log")
    time.sleep(8)  # let the runner start pulling before the first publish (Beam's start-up)
    interval = seconds / events
    futures = []
    stopped = False
    t0 = time.monotonic()
    for i, body in enumerate(bodies):
        futures.append(emulator.publisher.publish(topic, body))
        if not stopped and i >= events // 2:
            _stop(proc, how)
            stopped = True
            proc = _start(reader, args, env, base / "run2.log")
        delay = t0 + (i + 1) * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for future in futures:
        future.result(timeout=60)
    last, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < QUIET_SECONDS:
        distinct = len(_distinct(out))
        if distinct != last:
            last, last_change = distinct, time.monotonic()
        if distinct >= events:
            break
        time.sleep(2)
    _stop(proc, "term" if reader == "held" else "kill")
    written = _distinct(out)
    return {"reader": reader, "stop": how, "published": events, "distinct": len(written),
            "lost": events - len(written), "duplicates": sum(written.values()) - len(written),
            "seconds": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--readers", default="beam,held")
    parser.add_argument("--stops", default="kill,term,int")
    args = parser.parse_args()

    from devkit.emulators import PubSubEmulator

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as tmp, PubSubEmulator() as emulator:
        for how in args.stops.split(","):
            for reader in args.readers.split(","):
                _log(f"{reader} reader, stopped with {how} ...")
                results.append(scenario(emulator, reader, how, args.events, args.seconds, Path(tmp)))
                _log(str(results[-1]))
    print(f"{'reader':<6} {'stop':<5} {'published':>9} {'distinct':>8} {'lost':>5} {'duplicates':>10} {'seconds':>7}")
    for r in results:
        print(f"{r['reader']:<6} {r['stop']:<5} {r['published']:>9} {r['distinct']:>8} {r['lost']:>5} "
              f"{r['duplicates']:>10} {r['seconds']:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
