"""Benchmark: the batch pipeline against a trivial Beam pipeline over the same lines.

Generates N signed deliveries (default 100,000) of which a fraction (default 20%) are
duplicates (half byte-identical retries, half re-signed copies), from the example corpus
with ids varied so every original is a distinct event. Then, each in its own child
process on the DirectRunner:

* floor: ReadFromText -> key -> GroupByKey -> WriteToText (what any keyed batch job pays);
* pipeline: the real graph (verify RS256, normalize, dedupe, write Parquet + dead letters).

With --naive, also what a new user writes with Beam on the same input (PyJWT per line, GroupByKey
on content, one unpartitioned WriteToParquet; goal: ours >= 2x faster); --days spreads event
times over a period (e.g. --events 25886 --duplicates 0.22715 --days 40: ~3,200 partitions).

Prints deliveries/s of each, the ratio (goal: >= 50% of the floor) and each child's peak
RSS (getrusage maxrss of the process and its children; goal: < 2 GB), and checks that the
pipeline wrote exactly the distinct events. Usage: python bench/pipeline.py [--events N]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from datetime import datetime, timedelta, timezone
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


SPREAD_START = datetime(2024, 10, 1, tzinfo=timezone.utc)


def _vary(payload: dict[str, Any], i: int, days: int = 0) -> dict[str, Any]:
    """A distinct event from a corpus payload: new request id (and Caliper event id); with
    ``days``, its event time moved to day ``i % days`` of a period starting SPREAD_START, so
    the output holds about days x event names partitions, as a replay of a period does."""
    event = copy.deepcopy(payload)
    when = None
    if days:
        moment = SPREAD_START + timedelta(days=i % days, seconds=(i * 7919) % 86_400)
        when = moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if "metadata" in event:
        event["metadata"]["request_id"] = f"bench-{i:09d}"
        if when:
            event["metadata"]["event_time"] = when
    else:
        for n, item in enumerate(event.get("data", [])):
            item["id"] = f"urn:uuid:00000000-0000-4000-8000-{i:08d}{n:04d}"
            ext = item.setdefault("extensions", {}).setdefault("com.instructure.canvas", {})
            ext["request_id"] = f"bench-{i:09d}"
            if when:
                item["eventTime"] = when
    return event


def generate(workdir: Path, events: int, dup_fraction: float, seed: int = 7, days: int = 0) -> dict[str, Any]:
    from pipeline.samples import sample_payloads
    from pipeline.signing import DemoSigner

    rng = random.Random(seed)
    signer = DemoSigner(kid="bench-key")
    signer.write_jwks(workdir / "jwks.json")
    corpus = [p for p in sample_payloads() if "metadata" in p or len(p.get("data", [])) == 1]
    duplicates = int(events * dup_fraction)
    originals = events - duplicates
    _log(f"signing {events:,} deliveries (RS256, 2048-bit): about 750/s here, so ~2-3 min for 100k")
    started = time.monotonic()
    lines: list[bytes] = []
    payloads: list[dict[str, Any]] = []
    for i in range(originals):
        payload = _vary(corpus[i % len(corpus)], i, days)
        payloads.append(payload)
        lines.append(signer.sign({**payload, "iat": 1_700_000_000}))
        if (i + 1) % 20_000 == 0:
            _log(f"  signed {i + 1:,} ({(i + 1) / (time.monotonic() - started):,.0f}/s)")
    for d in range(duplicates):
        k = rng.randrange(originals)
        if d % 2:
            lines.append(lines[k])  # byte-identical retry
        else:
            lines.append(signer.sign({**payloads[k], "iat": 1_700_000_001 + d}))  # re-signed retry
    rng.shuffle(lines)
    source = workdir / "deliveries.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    _log(f"generated {source} ({source.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s")
    data = {"source": str(source), "jwks": str(workdir / "jwks.json"), "lines": len(lines),
            "distinct": originals, "duplicates": duplicates, "dup_fraction": dup_fraction, "days": days}
    (workdir / "input.json").write_text(json.dumps(data))
    return data


def reusable_input(workdir: Path, events: int, dup_fraction: float, days: int = 0) -> dict[str, Any] | None:
    """The input a previous run left in ``workdir``, if it has the same shape."""
    try:
        data = json.loads((workdir / "input.json").read_text())
    except (OSError, ValueError):
        return None
    if (data.get("lines") == events and data.get("dup_fraction") == dup_fraction and data.get("days", 0) == days
            and Path(data["source"]).is_file()):
        _log(f"reusing {data['source']}")
        return data
    return None


def _peak_rss_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(self_kb, children_kb) / 1024  # Linux reports KiB


def _cpu_seconds() -> float:
    """User + system CPU of this process and its children: steadier than wall time on a shared machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def child_floor(source: str, out: str, runner_args: list[str]) -> dict[str, Any]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    started, cpu = time.monotonic(), _cpu_seconds()
    with beam.Pipeline(options=PipelineOptions(runner_args)) as p:
        (
            p
            | "Read" >> beam.io.ReadFromText(source)
            | "Key" >> beam.Map(lambda line: (line[-24:], line))
            | "Group" >> beam.GroupByKey()
            | "First" >> beam.Map(lambda kv: next(iter(kv[1]))[:40])
            | "Write" >> beam.io.WriteToText(os.path.join(out, "floor"))
        )
    return {"seconds": time.monotonic() - started, "cpu_seconds": _cpu_seconds() - cpu, "peak_rss_mb": _peak_rss_mb()}


def child_naive(source: str, jwks: str, out: str, runner_args: list[str]) -> dict[str, Any]:
    """What a new user writes with Beam: PyJWT decode per line, flatten, GroupByKey on the
    content, one unpartitioned WriteToParquet (no dead letters: a bad line fails the job)."""
    import apache_beam as beam
    import jwt
    import pyarrow as pa
    from apache_beam.options.pipeline_options import PipelineOptions

    schema = pa.schema([("event_name", pa.string()), ("event_time", pa.string()), ("request_id", pa.string()),
                        ("user_id", pa.string()), ("context_id", pa.string()), ("body", pa.string()),
                        ("metadata", pa.string())])

    class Decode(beam.DoFn):
        def setup(self) -> None:
            self.keys = {k.key_id: k.key for k in jwt.PyJWKSet.from_json(Path(jwks).read_text()).keys}

        def process(self, line: str):
            kid = jwt.get_unverified_header(line)["kid"]
            claims = jwt.decode(line, self.keys[kid], algorithms=["RS256"], options={"verify_aud": False})
            if "data" in claims:  # Caliper envelope
                for item in claims["data"]:
                    ext = item.get("extensions", {}).get("com.instructure.canvas", {})
                    yield {"event_name": ext.get("event_name") or item.get("action"),
                           "event_time": item.get("eventTime"), "request_id": ext.get("request_id"),
                           "user_id": str((item.get("actor") or {}).get("id")), "context_id": None,
                           "body": json.dumps(item), "metadata": None}
            else:
                m = claims.get("metadata", {})
                yield {"event_name": m.get("event_name"), "event_time": m.get("event_time"),
                       "request_id": m.get("request_id"), "user_id": m.get("user_id"),
                       "context_id": m.get("context_id"), "body": json.dumps(claims.get("body")),
                       "metadata": json.dumps(m)}

    started, cpu = time.monotonic(), _cpu_seconds()
    with beam.Pipeline(options=PipelineOptions(runner_args)) as p:
        (
            p
            | "Read" >> beam.io.ReadFromText(source)
            | "Decode" >> beam.ParDo(Decode())
            | "KeyByContent" >> beam.Map(lambda r: (json.dumps(r, sort_keys=True), r))
            | "Group" >> beam.GroupByKey()
            | "First" >> beam.Map(lambda kv: next(iter(kv[1])))
            | "Write" >> beam.io.WriteToParquet(os.path.join(out, "events"), schema)
        )
    return {"seconds": time.monotonic() - started, "cpu_seconds": _cpu_seconds() - cpu, "peak_rss_mb": _peak_rss_mb()}


def child_pipeline(source: str, jwks: str, out: str, runner_args: list[str]) -> dict[str, Any]:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.main import build_pipeline, summarize_metrics

    options = PipelineOptions([
        *runner_args, f"--input_files={source}", f"--jwks_url={jwks}",
        f"--output={out}/events", f"--dead_letter_output={out}/dead",
    ])
    started, cpu = time.monotonic(), _cpu_seconds()
    p = beam.Pipeline(options=options)
    build_pipeline(p, options)
    result = p.run()
    result.wait_until_finish()
    return {"seconds": time.monotonic() - started, "cpu_seconds": _cpu_seconds() - cpu,
            "peak_rss_mb": _peak_rss_mb(), "counters": summarize_metrics(result)}


def _run_child(kind: str, runner_options: str, *args: str) -> dict[str, Any]:
    _log(f"running the {kind} ({runner_options}) ...")
    proc = subprocess.run(
        [sys.executable, __file__, f"--runner_options={runner_options}", "--child", kind, *args],
        cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{kind} child failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="deliveries in the input (default 100000)")
    parser.add_argument("--duplicates", type=float, default=0.2, help="fraction that are duplicates (default 0.2)")
    parser.add_argument("--days", type=int, default=0,
                        help="spread event times over this many days (default 0: the corpus's own times); "
                             "e.g. --events 25886 --duplicates 0.2271 --days 40 is a replay of ~3,200 partitions")
    parser.add_argument("--naive", action="store_true",
                        help="also run the naive Beam pipeline a new user would write (PyJWT per line, "
                             "GroupByKey on content, one unpartitioned WriteToParquet) on the same input")
    parser.add_argument("--workdir", default=None,
                        help="keep inputs/outputs here, and reuse an input of the same shape found there "
                             "(default: a temp dir, removed)")
    parser.add_argument("--runner_options", default="--runner=DirectRunner",
                        help="Beam runner options given to BOTH the floor and the pipeline, so they compare "
                             "like for like (default '--runner=DirectRunner': one in-process worker; e.g. add "
                             "'--direct_num_workers=2 --direct_running_mode=multi_processing')")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        runner_args = shlex.split(args.runner_options)
        child = {"floor": child_floor, "naive": child_naive, "pipeline": child_pipeline}[kind]
        report = child(*rest, runner_args)
        print(json.dumps(report))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        data = (reusable_input(workdir, args.events, args.duplicates, args.days)
                or generate(workdir, args.events, args.duplicates, days=args.days))
        for stale in ("floor", "naive", "pipeline"):
            shutil.rmtree(workdir / stale, ignore_errors=True)
        floor = _run_child("floor", args.runner_options, data["source"], str(workdir / "floor"))
        naive = None
        if args.naive:
            naive = _run_child("naive", args.runner_options, data["source"], data["jwks"], str(workdir / "naive"))
        ours = _run_child("pipeline", args.runner_options, data["source"], data["jwks"], str(workdir / "pipeline"))
        partitions = len({p.parent for p in (workdir / "pipeline" / "events").rglob("*.parquet")})

    n = data["lines"]
    floor_rate, our_rate = n / floor["seconds"], n / ours["seconds"]
    counters = ours["counters"]
    print(f"deliveries: {n:,} ({data['distinct']:,} distinct, {data['duplicates']:,} duplicates); "
          f"runner options (both): {args.runner_options}")
    print(f"{'':10} {'seconds':>9} {'deliveries/s':>13} {'CPU s':>7} {'peak RSS MB':>12}")
    rows = [("floor", floor, floor_rate), ("pipeline", ours, our_rate)]
    if naive:
        rows.insert(1, ("naive", naive, n / naive["seconds"]))
    for name, report, rate in rows:
        print(f"{name:10} {report['seconds']:>9.1f} {rate:>13,.0f} {report['cpu_seconds']:>7.1f} "
              f"{report['peak_rss_mb']:>12,.0f}")
    ratio = our_rate / floor_rate
    print(f"pipeline/floor throughput: {ratio:.0%} (goal >= 50%); pipeline peak RSS "
          f"{ours['peak_rss_mb']:,.0f} MB (goal < 2048 MB)")
    print(f"pipeline output: {partitions:,} partitions")
    if naive:
        print(f"pipeline/naive throughput: {our_rate / (n / naive['seconds']):.2f}x (goal >= 2x; the naive "
              "pipeline writes one unpartitioned prefix and has no dead letters)")
    print("pipeline counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    ok = counters.get("rows_written") == data["distinct"] and counters.get("duplicates_dropped") == data["duplicates"]
    print("output check: " + ("rows_written == distinct events, duplicates_dropped == duplicates" if ok
                              else "MISMATCH between rows written / duplicates dropped and the input"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
