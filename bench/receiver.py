"""Benchmark the receiver: requests/s and p50/p99 latency with confirmed publishes to the emulator.

Beside it, in the same run and with the same load, an empty functions-framework handler: the
ceiling this machine's HTTP stack allows, so the figure that matters is the ratio (goal: the
receiver reaches >= 60% of the empty handler's requests/s, with p99 < 250 ms at 64 connections).

Both are served by gunicorn through functions-framework, as in production. The load generator
runs in separate processes (threads with keep-alive http.client connections, a fixed number in
flight: a closed loop, so it never queues more than the concurrency), posting a ~2 KB generated
event. Figures on a shared 2-core machine are noisy: compare within one run.

    python bench/receiver.py [--duration 5] [--concurrency 8 64] [--workers 1] [--threads 16]
        [--repeat 3] [--variant NAME:VAR=VALUE,...]   # e.g. gc-t8:THREADS=8, or SOURCE=old/main.py

Defaults: 1 gunicorn worker, 16 threads, for both servers. Of 8/16/32 threads, 16 gave the
receiver the most requests/s at 64 connections; 2 workers raise both servers' requests/s but
leave the 2 cores saturated by server + emulator + load generator, so the ratio fell.
Every server gets a few unmeasured seconds of load first: the emulator's JVM is cold at start
(several times its warm CPU per publish), which made earlier runs blame the receiver.
Columns: CPU ms per request of the server, of the emulator and of the load generator, and the
machine's busy cores during the run (other users included: the machine is shared).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devkit.emulators import FunctionServer, PubSubEmulator, process_group_members  # noqa: E402
from devkit.loopback import KeepAliveClient  # noqa: E402
from devkit.deliveries import payloads  # noqa: E402

# The serving configuration measured by default (2 cores): see the module docstring.
DEFAULT_WORKERS = 1
DEFAULT_THREADS = 16

EMPTY_HANDLER = '''
def receive(request):
    request.get_data()
    return ("{}", 202, {"Content-Type": "application/json"})
'''


def pick_body(target_bytes: int = 2048) -> bytes:
    """The generated event (one of every documented kind) whose JSON size is closest to ``target_bytes``."""
    bodies = [orjson.dumps(p) for p in payloads()]
    return min(bodies, key=lambda b: abs(len(b) - target_bytes))


def _client_thread(url: str, body: bytes, stop_at: float, warmup_until: float, out: list[float], errors: list[int]) -> None:
    client = KeepAliveClient(url)
    while True:
        started = time.perf_counter()
        if started >= stop_at:
            break
        status = client.post(body)
        finished = time.perf_counter()
        if started >= warmup_until:
            if status == 202:
                out.append(finished - started)
            else:
                errors.append(status)
    client.close()


def _client_process(url: str, body: bytes, threads: int, start_at: float, warmup: float, duration: float, queue) -> None:
    cpu_before = time.process_time()
    latencies: list[float] = []
    errors: list[int] = []
    # Wall-clock start shared by all processes, so their measured windows coincide.
    time.sleep(max(0.0, start_at - time.time()))  # a start barrier across processes, not a condition wait
    now = time.perf_counter()
    warmup_until, stop_at = now + warmup, now + warmup + duration
    workers = [
        threading.Thread(target=_client_thread, args=(url, body, stop_at, warmup_until, latencies, errors))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put((latencies, errors, time.process_time() - cpu_before))


def cpu_seconds(pgids: list[int]) -> float:
    """User+system CPU time of every live process in these process groups (server, emulator)."""
    ticks = 0
    for pgid in pgids:
        for pid in process_group_members(pgid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def run_load(url: str, body: bytes, concurrency: int, duration: float, warmup: float, processes: int) -> dict[str, float]:
    processes = max(1, min(processes, concurrency))
    per_process = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 1.0  # leave time for the spawned interpreters to start
    procs = [
        ctx.Process(target=_client_process, args=(url, body, n, start_at, warmup, duration, queue)) for n in per_process
    ]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    errors: list[int] = []
    client_cpu = 0.0
    for _ in procs:
        lat, err, cpu = queue.get(timeout=duration + warmup + 120)
        latencies += lat
        errors += err
        client_cpu += cpu
    for proc in procs:
        proc.join(timeout=30)
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": len(errors), "client_cpu_s": client_cpu}
    return {
        "client_cpu_s": client_cpu,
        "rps": len(latencies) / duration,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors),
    }


def machine_busy_seconds() -> float:
    """CPU seconds spent by every process on the machine (all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME`` or ``NAME:VAR=VALUE,VAR=VALUE``: a receiver served with extra environment.

    WORKERS and THREADS set gunicorn's; SOURCE serves another main.py (e.g. an older receiver;
    ``SOURCE=empty``: the empty handler, e.g. with other THREADS).
    """
    name, _, assignments = spec.partition(":")
    env = {}
    for assignment in filter(None, assignments.split(",")):
        key, sep, value = assignment.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected VAR=VALUE in {spec!r}")
        env[key.strip()] = value.strip()
    return name.strip(), env


def measure(server, emulator, body: bytes, concurrency: int, args: argparse.Namespace) -> dict[str, float]:
    # CPU per request is steadier than req/s on a shared machine: it counts the server's (and
    # for the receiver, the emulator's) work, not the waiting.
    server_before, emulator_before = cpu_seconds([server.pid]), cpu_seconds([emulator.pid])
    machine_before, wall_before = machine_busy_seconds(), time.monotonic()
    r = run_load(server.url, body, concurrency, args.duration, args.warmup, args.client_processes)
    wall = time.monotonic() - wall_before
    requests = r["rps"] * args.duration * (1 + args.warmup / args.duration)  # warmup ran too
    per_request = 1000 / requests if requests else float("nan")
    r["cpu_ms"] = (cpu_seconds([server.pid]) - server_before) * per_request
    r["emulator_cpu_ms"] = (cpu_seconds([emulator.pid]) - emulator_before) * per_request
    r["client_cpu_ms"] = r.pop("client_cpu_s") * per_request
    # Cores kept busy over the run by everything on the machine (other users included).
    r["machine_cores"] = (machine_busy_seconds() - machine_before) / wall
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64], help="connections (default 8 64)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"gunicorn workers (default {DEFAULT_WORKERS})")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"gunicorn threads per worker (default {DEFAULT_THREADS})")
    parser.add_argument("--prime", type=float, default=3.0,
                        help="unmeasured seconds of load on each server first, to warm up the JVM (default 3)")
    parser.add_argument("--client-processes", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--variant", type=parse_variant, action="append", default=None, metavar="NAME[:VAR=VAL,...]",
                        help="a receiver to measure, with extra environment (repeatable; default: one 'receiver' "
                             "with its defaults), e.g. 'batch10:PUBLISH_BATCH_LATENCY_MS=10,THREADS=16'")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over every server and concurrency, interleaved; medians reported (default 1)")
    args = parser.parse_args(argv)
    variants = args.variant or [("receiver", {})]

    body = pick_body()
    print(f"body {len(body)} bytes; gunicorn workers={args.workers} threads={args.threads} unless a variant says "
          f"otherwise; {args.client_processes} client processes; {args.duration:.0f} s per run, {args.repeat} round(s)")
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, PubSubEmulator() as emulator:
        empty_source = Path(tmp) / "main.py"
        empty_source.write_text(EMPTY_HANDLER)
        topic = emulator.create_topic("bench-events")
        servers = {"empty handler": FunctionServer({}, source=empty_source, workers=args.workers, threads=args.threads)}
        for name, extra in variants:
            env = {**emulator.env(), "PUBSUB_TOPIC": topic, **extra}
            options = {"workers": int(env.pop("WORKERS", args.workers)), "threads": int(env.pop("THREADS", args.threads))}
            if "SOURCE" in env:
                source = env.pop("SOURCE")
                options["source"] = empty_source if source == "empty" else Path(source)
            servers[name] = FunctionServer(env, **options)
        try:
            for server in servers.values():
                server.start()
            # Unmeasured: the emulator's JVM is cold at first (its CPU per publish falls after some
            # thousands of messages), which would penalize whoever runs first.
            for server in servers.values():
                run_load(server.url, body, max(args.concurrency), args.prime, 0.0, args.client_processes)
            for _ in range(args.repeat):
                for concurrency in args.concurrency:
                    for name, server in servers.items():
                        runs.setdefault((name, concurrency), []).append(measure(server, emulator, body, concurrency, args))
        finally:
            for server in servers.values():
                server.stop()

    results = {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for key, rs in runs.items()}
    print(f"{'server':<16} {'conns':>5} {'req/s':>7} {'%empty':>6} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
          f"{'server':>7} {'emulator':>8} {'client':>7} {'machine':>7}")
    print(f"{'':<16} {'':>5} {'':>7} {'':>6} {'':>7} {'':>7} {'':>6} {'CPU ms per request':>24} {'cores':>7}")
    for (name, concurrency), r in results.items():
        empty = results[("empty handler", concurrency)]["rps"]
        share = r["rps"] / empty if empty else float("nan")
        print(f"{name:<16} {concurrency:>5} {r['rps']:>7.0f} {share:>6.0%} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{r['errors']:>6.0f} {r['cpu_ms']:>7.2f} {r['emulator_cpu_ms']:>8.2f} {r['client_cpu_ms']:>7.2f} "
              f"{r['machine_cores']:>7.2f}")
    if args.repeat > 1:
        print("req/s per round:")
        for (name, concurrency), rs in runs.items():
            print(f"  {name:<16} {concurrency:>5} " + " ".join(f"{r['rps']:.0f}" for r in rs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
