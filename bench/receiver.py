"""Benchmark the receiver: requests/s and p50/p99 latency with confirmed publishes to the emulator.

Beside it, in the same run and with the same load, an empty functions-framework handler: the
ceiling this machine's HTTP stack allows, so the figure that matters is the ratio (goal: the
receiver reaches >= 60% of the empty handler's requests/s, with p99 < 250 ms at 64 connections).

Both are served by gunicorn through functions-framework, as in production. The load generator
runs in separate processes (threads with keep-alive http.client connections, a fixed number in
flight: a closed loop, so it never queues more than the concurrency), posting a ~2 KB corpus
event. Figures on a shared 2-core machine are noisy: compare within one run.

    python bench/receiver.py [--duration 5] [--concurrency 8 64] [--workers 1] [--threads 8]
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline.devtools.emulators import FunctionServer, PubSubEmulator, process_group_members  # noqa: E402
from pipeline.samples import sample_payloads  # noqa: E402

EMPTY_HANDLER = '''
def receive(request):
    request.get_data()
    return ("{}", 202, {"Content-Type": "application/json"})
'''


def pick_body(target_bytes: int = 2048) -> bytes:
    """The corpus payload whose JSON size is closest to ``target_bytes``."""
    bodies = [orjson.dumps(p) for p in sample_payloads()]
    return min(bodies, key=lambda b: abs(len(b) - target_bytes))


def _client_thread(url: str, body: bytes, stop_at: float, warmup_until: float, out: list[float], errors: list[int]) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": "application/json"}
    while True:
        started = time.perf_counter()
        if started >= stop_at:
            break
        try:
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            status = -1
        finished = time.perf_counter()
        if started >= warmup_until:
            if status == 202:
                out.append(finished - started)
            else:
                errors.append(status)
    conn.close()


def _client_process(url: str, body: bytes, threads: int, start_at: float, warmup: float, duration: float, queue) -> None:
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
    queue.put((latencies, errors))


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
    for _ in procs:
        lat, err = queue.get(timeout=duration + warmup + 120)
        latencies += lat
        errors += err
    for proc in procs:
        proc.join(timeout=30)
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": len(errors)}
    return {
        "rps": len(latencies) / duration,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64], help="connections (default 8 64)")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers (default 1)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument("--client-processes", type=int, default=2, help="load generator processes (default 2)")
    args = parser.parse_args(argv)

    body = pick_body()
    print(f"body {len(body)} bytes; gunicorn workers={args.workers} threads={args.threads}; "
          f"{args.client_processes} client processes; {args.duration:.0f} s per run")
    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, PubSubEmulator() as emulator:
        empty_source = Path(tmp) / "main.py"
        empty_source.write_text(EMPTY_HANDLER)
        topic = emulator.create_topic("bench-events")
        receiver_env = {**emulator.env(), "PUBSUB_TOPIC": topic}
        servers = {
            "empty handler": FunctionServer({}, source=empty_source, workers=args.workers, threads=args.threads),
            "receiver": FunctionServer(receiver_env, workers=args.workers, threads=args.threads),
        }
        try:
            for server in servers.values():
                server.start()
            for concurrency in args.concurrency:
                for name, server in servers.items():
                    # CPU per request is steadier than req/s on a shared machine: it counts the
                    # server's (and for the receiver, the emulator's) work, not the waiting.
                    server_before, emulator_before = cpu_seconds([server.pid]), cpu_seconds([emulator.pid])
                    r = run_load(server.url, body, concurrency, args.duration, args.warmup, args.client_processes)
                    requests = r["rps"] * args.duration * (1 + args.warmup / args.duration)  # warmup ran too
                    per_request = 1000 / requests if requests else float("nan")
                    r["cpu_ms"] = (cpu_seconds([server.pid]) - server_before) * per_request
                    r["emulator_cpu_ms"] = (cpu_seconds([emulator.pid]) - emulator_before) * per_request
                    results[(name, concurrency)] = r
        finally:
            for server in servers.values():
                server.stop()

    print(f"{'server':<14} {'conns':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'cpu ms/req':>10} {'emulator':>8}")
    for (name, concurrency), r in results.items():
        print(f"{name:<14} {concurrency:>5} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['errors']:>6.0f} {r['cpu_ms']:>10.2f} {r['emulator_cpu_ms']:>8.2f}")
    for concurrency in args.concurrency:
        empty, receiver = results[("empty handler", concurrency)], results[("receiver", concurrency)]
        ratio = receiver["rps"] / empty["rps"] if empty["rps"] else float("nan")
        print(f"at {concurrency} connections: receiver = {ratio:.0%} of the empty handler's req/s, "
              f"p99 {receiver['p99_ms']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
