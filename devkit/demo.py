"""The whole system on one machine, on generated deliveries: ``python -m devkit.demo`` (``make demo``).

What it runs, all locally and all real (no cloud account needed):

1. the Pub/Sub emulator, a topic and the pipeline's subscription;
2. a loopback HTTP server publishing the JWKS of a freshly generated demo signing key
   (the stand-in for Canvas's public JWKS URL);
3. the receiver Cloud Function under functions-framework, publishing to the topic (edge
   verification off, the default deployment: the pipeline verifies, so forged events end up
   in the dead letters where they can be inspected);
4. the Beam pipeline, streaming, on the BundleBasedDirectRunner (``python -m pipeline.main``).

It then posts generated events (devkit.deliveries: every documented event name, both formats) to
the receiver over HTTP, each signed like Canvas signs it, with exact retries, re-signed
duplicates, forged tokens and one non-event mixed in; waits
(with a deadline) until the Parquet output holds every distinct event; prints a summary
queried with DuckDB; and stops everything it started, also on Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from pipeline.core.decode import decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.identity import dedupe_key
from pipeline.core.normalize import normalize
from devkit import deliveries
from devkit.deliveries import Delivery
from devkit.emulators import FunctionServer, PubSubEmulator, ServerProcess, wait_until
from devkit.loopback import JwksServer, KeepAliveClient
from devkit.signing import DemoSigner

REPO_ROOT = Path(__file__).resolve().parent.parent
TOPIC = "canvas-live-events"
SUBSCRIPTION = "canvas-pipeline"
TOP_EVENT_NAMES = 12


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that the cleanup in ``finally`` runs."""


@dataclass
class Plan:
    deliveries: list[Delivery]
    expected_keys: set[str]  # dedupe keys the output must hold, each once
    valid_events_posted: int  # events in validly signed deliveries, duplicates included
    normalize_rejections: int  # events the normalizer will dead-letter
    forged: int


@dataclass
class Replay:
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0


def plan_deliveries(payloads: list[dict[str, Any]], *, duplicates: int, forged: int, seed: int,
                    signer: DemoSigner) -> Plan:
    """The bodies to post, shuffled, and what the output must then contain (via the pure core).

    The events, retries (same bytes) and re-signed copies come from devkit.deliveries; forged
    tokens (another key under the same kid, or an unknown kid) and one non-event are added here.
    """
    rng = random.Random(seed)
    now = int(time.time())
    genuine = deliveries.deliveries(payloads, duplicates=duplicates, signer=signer, seed=seed, iat=now)
    impostor = DemoSigner(kid=signer.kid)  # same kid, another key: bad_signature
    stranger = DemoSigner(kid="not-a-canvas-key")  # unknown_kid
    fakes = [
        Delivery(deliveries.encode(payloads[index], impostor if i % 2 == 0 else stranger, now), "forged", index)
        for i, index in enumerate(rng.randrange(len(payloads)) for _ in range(forged))
    ]
    garbage = [Delivery(b"<html>not a live event</html>", "garbage", -1)]  # refused by the receiver (400)
    posted = genuine + fakes + garbage
    rng.shuffle(posted)

    keys: set[str] = set()
    valid_events = rejections = 0
    copies = Counter(delivery.index for delivery in genuine)
    for index, payload in enumerate(payloads):
        for event in decode_delivery(json.dumps(payload).encode(), verifier=None, allow_unsigned=True):
            valid_events += copies[index]
            try:
                keys.add(dedupe_key(normalize(event)))
            except EventError:
                rejections += copies[index]
    return Plan(posted, keys, valid_events, rejections, forged)


class PipelineProcess(ServerProcess):
    """``python -m pipeline.main`` streaming from the emulator, in its own process group."""

    def __init__(self) -> None:
        super().__init__("pipeline")

    def start_pipeline(self, *, subscription: str, output: Path, dead_letters: Path, jwks_url: str,
                       window_seconds: int, env: dict[str, str]) -> None:
        argv = [
            sys.executable, "-m", "pipeline.main",
            "--runner=BundleBasedDirectRunner", "--streaming",
            f"--input_subscription={subscription}",
            f"--output={output}", f"--dead_letter_output={dead_letters}",
            f"--jwks_url={jwks_url}", f"--window_seconds={window_seconds}",
        ]
        pythonpath = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        self.start(argv, {**env, "PYTHONPATH": pythonpath})


def post_all(url: str, deliveries: list[Delivery], *, concurrency: int,
             progress: Callable[[int, int], None]) -> Replay:
    """POST every body on ``concurrency`` keep-alive connections; count the status codes."""
    work: queue.Queue[Delivery | None] = queue.Queue()
    for delivery in deliveries:
        work.put(delivery)
    replay = Replay()
    lock = threading.Lock()
    done = [0]

    def worker() -> None:
        client = KeepAliveClient(url)
        try:
            while True:
                try:
                    delivery = work.get_nowait()
                except queue.Empty:
                    return
                for _attempt in range(5):  # like Canvas: retry what did not get a 2xx/4xx
                    status = client.post(delivery.body, "application/jwt")
                    if 0 < status < 500:
                        break
                with lock:
                    replay.statuses[status] += 1
                    done[0] += 1
                    progress(done[0], len(deliveries))
        finally:
            client.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replay.seconds = time.monotonic() - started
    return replay


def bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


class Progress:
    """One progress line: redrawn in place on a terminal; elsewhere (a log, CI) written once, when
    its stage is done, so that a log holds one line per stage instead of every frame."""

    def __init__(self, stream: TextIO, *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.text = ""

    def update(self, text: str) -> None:
        self.text = text
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()

    def done(self) -> None:
        """End the stage: a newline after the last frame, or the last state as one line."""
        self.stream.write("\n" if self.tty else self.text.rstrip() + "\n")
        self.stream.flush()


def parquet_glob(output: Path) -> str:
    return f"{output}/**/*.parquet"


def visible_files(directory: Path, suffix: str) -> list[Path]:
    """Finished files only: writers use dot-prefixed temp names, renamed when complete."""
    if not directory.exists():
        return []
    return [p for p in directory.rglob(f"*{suffix}") if not any(part.startswith(".") for part in p.relative_to(directory).parts)]


def output_state(output: Path, dead_letters: Path) -> tuple[int, int, int]:
    """(rows, distinct event keys, dead-letter records) in the output so far."""
    import duckdb

    files = visible_files(output, ".parquet")
    rows = distinct = 0
    if files:
        listing = ", ".join(f"'{p}'" for p in files)
        rows, distinct = duckdb.sql(
            f"select count(*), count(distinct (request_id, job_id, event_id)) "
            f"from read_parquet([{listing}], hive_partitioning=true)"
        ).fetchall()[0]
    records = sum(len(p.read_bytes().splitlines()) for p in visible_files(dead_letters, ".jsonl"))
    return int(rows), int(distinct), records


def summary(output: Path, dead_letters: Path, plan: Plan, replay: Replay, seconds: float) -> str:
    import duckdb

    files = visible_files(output, ".parquet")
    listing = ", ".join(f"'{p}'" for p in files)
    by_name = duckdb.sql(
        f"select event_name, count(*) as n from read_parquet([{listing}], hive_partitioning=true) "
        "group by 1 order by n desc, event_name"
    ).fetchall()
    rows, distinct, _ = output_state(output, dead_letters)
    dl_files = visible_files(dead_letters, ".jsonl")
    by_reason: list[tuple[str, str, int]] = []
    if dl_files:
        dl_listing = ", ".join(f"'{p}'" for p in dl_files)
        by_reason = duckdb.sql(
            f"select stage, error_type, count(*) as n from read_json([{dl_listing}], format='newline_delimited') "
            "group by 1, 2 order by n desc, error_type"
        ).fetchall()
    kinds = Counter(d.kind for d in plan.deliveries)
    lines = [
        "",
        f"posted {len(plan.deliveries)} deliveries in {replay.seconds:.1f} s: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())),
        "receiver answered: " + ", ".join(f"{n} x HTTP {s}" for s, n in sorted(replay.statuses.items())),
        "",
        f"rows per event_name ({rows} rows, {distinct} distinct events, {len(by_name)} event names):",
        *(f"  {name:<40} {n:>5}" for name, n in by_name[:TOP_EVENT_NAMES]),
        *([f"  ... and {len(by_name) - TOP_EVENT_NAMES} more event names "
           f"({sum(n for _, n in by_name[TOP_EVENT_NAMES:])} rows)"] if len(by_name) > TOP_EVENT_NAMES else []),
        "",
        f"duplicates dropped: {plan.valid_events_posted - plan.normalize_rejections - rows} "
        f"({plan.valid_events_posted} validly signed events posted, {rows} rows written)",
        "dead letters by reason:",
        *(f"  {stage:<12} {error_type:<24} {n:>5}" for stage, error_type, n in by_reason),
        "",
        f"Parquet (hive-partitioned): {output}/",
        f"dead letters (JSON lines):  {dead_letters}/",
        f"query it: duckdb -c \"select event_name, count(*) from read_parquet('{parquet_glob(output)}', "
        "hive_partitioning=true) group by 1\"",
        f"done in {seconds:.0f} s",
    ]
    return "\n".join(lines)


def write_demo_report(output_root: Path, output: Path, dead_letters: Path) -> Path:
    """``canvas-events report`` of the demo output, every day it holds."""
    from datetime import datetime, timezone

    from pipeline.report import build_figures, write_report

    html = output_root / "report.html"
    figures = build_figures(str(output), str(dead_letters), 0, datetime.now(timezone.utc))
    write_report(figures, str(html), str(output_root / "report.json"))
    return html


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def run_demo(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    started = time.monotonic()
    output_root = Path(args.output).resolve()
    workdir = Path(args.workdir).resolve()
    for directory in (output_root, workdir):
        shutil.rmtree(directory, ignore_errors=True)  # the demo's own directories, from an earlier run
    workdir.mkdir(parents=True)
    output, dead_letters = output_root / "events", output_root / "dead-letters"

    signer = DemoSigner(kid="demo-key-1")
    payloads = deliveries.payloads(args.events, seed=args.seed)
    plan = plan_deliveries(payloads, duplicates=args.duplicates, forged=args.forged, seed=args.seed, signer=signer)
    out(f"generated {len(payloads)} events (every documented event name, Canvas and Caliper formats) "
        f"-> {len(plan.expected_keys)} distinct events expected")

    stack: list[tuple[str, Callable[[], None]]] = []  # what to stop, in reverse order
    pids: list[int] = []
    try:
        jwks = JwksServer(signer.jwks()).start()
        stack.append(("JWKS server", jwks.stop))
        out(f"JWKS served at {jwks.url}")

        emulator = PubSubEmulator(project="demo-project")
        stack.append(("Pub/Sub emulator", emulator.stop))
        emulator.start()
        pids.append(emulator.pid or -1)
        topic = emulator.create_topic(TOPIC)
        subscription = emulator.create_subscription(topic, SUBSCRIPTION)
        out(f"Pub/Sub emulator on {emulator.host} (pid {emulator.pid}): {topic}")

        pipeline = PipelineProcess()

        def stop_pipeline() -> None:
            if pipeline.log_path is not None and pipeline.log_path.exists():
                shutil.copyfile(pipeline.log_path, workdir / "pipeline.log")  # outlives the process's temp dir
            pipeline.stop()

        stack.append(("pipeline", stop_pipeline))
        pipeline.start_pipeline(
            subscription=subscription, output=output, dead_letters=dead_letters, jwks_url=jwks.url,
            window_seconds=args.window_seconds, env={**os.environ, **emulator.env()},
        )
        pids.append(pipeline.proc.pid if pipeline.proc else -1)
        out(f"pipeline started (pid {pids[-1]}), {args.window_seconds} s windows; log: {workdir / 'pipeline.log'}")

        receiver = FunctionServer({**emulator.env(), "PUBSUB_TOPIC": topic})
        stack.append(("receiver", receiver.stop))
        receiver.start()
        pids.append(receiver.pid or -1)
        out(f"receiver on {receiver.url} (pid {receiver.pid})")

        line = Progress(sys.stdout)
        replay = post_all(receiver.url, plan.deliveries, concurrency=8,
                          progress=lambda done, total: line.update(f"posting   {bar(done, total)}"))
        line.done()
        failed = sum(n for s, n in replay.statuses.items() if s >= 500 or s < 0)
        if failed:
            out(f"error: {failed} deliveries were not accepted by the receiver")
            return 1

        expected = len(plan.expected_keys)
        wait_started = time.monotonic()
        state = [(0, 0, 0)]
        line = Progress(sys.stdout)

        def complete() -> bool:
            if pipeline.exit_reason():
                raise RuntimeError(f"the pipeline stopped: {pipeline.exit_reason()}")
            state[0] = output_state(output, dead_letters)
            rows, distinct, dead = state[0]
            line.update(
                f"waiting   {bar(min(distinct, expected), expected)} events in Parquet, "
                f"{dead} dead letters, {time.monotonic() - wait_started:.0f} s "
            )
            return distinct >= expected and dead >= plan.forged

        try:
            wait_until(complete, timeout=args.deadline, what="the Parquet output", interval=1.0)
        except TimeoutError:
            line.done()
            out(f"pipeline log tail:\n{pipeline.log_tail()}")
            raise
        line.done()
        out(summary(output, dead_letters, plan, replay, time.monotonic() - started))
        out(f"health report: {write_demo_report(output_root, output, dead_letters)}")
        return 0
    finally:
        # A second Ctrl-C must not cut the cleanup short: each stop below has its own deadline.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, stop in reversed(stack):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                out(f"warning: stopping the {name} failed: {exc}")
        out(f"stopped everything the demo started (pids {' '.join(map(str, pids))})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo-output", help="output directory, replaced (default demo-output)")
    parser.add_argument("--workdir", default=".demo", help="scratch directory, replaced (default .demo)")
    parser.add_argument("--window-seconds", type=int, default=5, help="pipeline window length (default 5)")
    parser.add_argument("--events", type=int, default=200, help="distinct events generated (default 200)")
    parser.add_argument("--duplicates", type=int, default=30, help="duplicate deliveries mixed in (default 30)")
    parser.add_argument("--forged", type=int, default=4, help="forged deliveries mixed in (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="shuffle seed (default 7)")
    parser.add_argument("--deadline", type=float, default=150.0, help="seconds to wait for the output (default 150)")
    args = parser.parse_args(argv)

    # Explicit handlers: a process started in the background by a shell inherits SIGINT ignored.
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return run_demo(args, lambda line: print(line, flush=True))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted; everything the demo started has been stopped", file=sys.stderr)
        return 130
    except (TimeoutError, RuntimeError) as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
