"""The batch replay's fused step (DecodeToPartitions) and its writer (RewritePartitions),
in this process and in the shared pool of worker processes: the same rows, dead letters and
counters either way, on signed corpus deliveries with byte-identical and re-signed copies,
garbage and an envelope with one bad item. Plus the pool's failure modes: keys that cannot
be loaded in a worker, a worker that dies."""
from __future__ import annotations

import json
import os
import pickle
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import Timestamp

import pipeline.transforms.write as write_module
import pipeline.workers as workers_module
from devkit.emulators import wait_until
from devkit.signing import DemoSigner
from pipeline.contract import VerifierSettings
from pipeline.core.errors import EventError
from pipeline.core.ingest import IngestSettings
from pipeline.core.jwks import JwksUnavailable
from pipeline.main import summarize_metrics
from pipeline.options import replay_processes
from pipeline.transforms.common import DEAD_LETTER
from pipeline.transforms.read import ReadDeliveryFiles
from pipeline.transforms.replay import BATCHES, DecodeToPartitions
from pipeline.transforms.window import WindowByArrival
from pipeline.transforms.write import RewritePartitions, WriteDeadLetters
from pipeline.workers import BrokenProcessPool, close_shared_pool, ingest_chunk_in_worker, shared_pool
from tests.pipeline.helpers import corpus_payloads, dead_letters, expected_keys, sign, temp_files

ARRIVAL = Timestamp.of(1_700_000_000)
DEAD = [("NormalizeEvents", "missing_field", 1),  # the envelope's Person item; its event became a row
        ("VerifyAndDecode", "empty_envelope", None), ("VerifyAndDecode", "unknown_format", None)]


@pytest.fixture(autouse=True)
def _no_pool_left_behind():
    yield
    close_shared_pool()


def _input(tmp_path: Path, signer: DemoSigner) -> tuple[Path, int, int]:
    corpus = corpus_payloads()
    payloads = [p for p in corpus if "metadata" in p][:40] + [p for p in corpus if "data" in p][:20]
    lines = [sign(signer, p) for p in payloads]
    lines += lines[:10]  # byte-identical retries
    lines += [sign(signer, p, iat=1_700_000_100) for p in payloads[10:20]]  # re-signed copies
    lines += [b"garbage", b'{"data": []}']
    bad_item = {"sensor": "x", "sendTime": "2024-01-01T00:00:00Z", "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
                "data": [next(p for p in payloads if "data" in p)["data"][0], {"type": "Person", "id": "urn:x"}]}
    lines.append(json.dumps(bad_item).encode())
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    return source, len(lines), len(set(expected_keys(payloads)))  # the bad envelope's good item is a copy


def _replay(source: Path, out: Path, jwks: Path, processes: int, run_id: str = "replaytest01") -> dict[str, int]:
    options = PipelineOptions(["--runner=DirectRunner"])
    p = beam.Pipeline(options=options)
    deliveries = p | ReadDeliveryFiles(str(source), ARRIVAL)
    decoded = deliveries | DecodeToPartitions(
        VerifierSettings(sources=(str(jwks),), verify_exp=False), allow_unsigned=True, window_seconds=300,
        processes=processes, pool_after=5, chunk=7)
    _ = decoded[BATCHES] | RewritePartitions(str(out / "events"), run_id=run_id, processes=processes)
    _ = (decoded[DEAD_LETTER] | WindowByArrival(300)
         | WriteDeadLetters(str(out / "dead"), run_id=run_id))
    result = p.run()
    result.wait_until_finish()
    return summarize_metrics(result)


def _rows(out: Path) -> list[tuple]:
    files = sorted((out / "events").rglob("*.parquet"))
    return sorted((str(f.relative_to(out)), tuple(sorted(r.items(), key=lambda kv: kv[0])).__repr__())
                  for f in files for r in pq.read_table(f).to_pylist())


def _dead(out: Path) -> list[tuple]:
    return sorted((r["stage"], r["error_type"], r.get("item"), r["payload"]) for r in dead_letters(out / "dead"))


def test_the_pool_writes_what_one_process_writes(tmp_path: Path, signer: DemoSigner, jwks_file: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(write_module, "POOL_AFTER_PARTITIONS", 3)  # the writer also moves to the pool
    source, lines, distinct = _input(tmp_path, signer)
    alone = _replay(source, tmp_path / "one", jwks_file, processes=1)
    assert workers_module._pool is None  # one process: no pool was started
    pooled = _replay(source, tmp_path / "pool", jwks_file, processes=2)
    assert workers_module._pool is not None  # the pooled run did hand its work to worker processes

    assert _rows(tmp_path / "one") == _rows(tmp_path / "pool")
    assert _dead(tmp_path / "one") == _dead(tmp_path / "pool")
    assert {k: v for k, v in alone.items()} == {k: v for k, v in pooled.items()}
    assert pooled["rows_written"] == len(_rows(tmp_path / "pool")) == distinct
    assert pooled["duplicates_dropped"] == pooled["rows_normalized"] - distinct >= 20
    assert [(stage, error, item) for stage, error, item, _ in _dead(tmp_path / "pool")] == DEAD
    assert pooled["deliveries_read"] == lines


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_worker_killed_mid_replay_fails_the_run_and_a_rerun_loses_nothing(
        tmp_path: Path, signer: DemoSigner, jwks_file: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """kill -9 of a pool worker at a random moment of a replay: the run fails loudly (or had
    already finished whole); the rerun the operator then starts, into the same output, leaves
    every event there (copies of the failed run's files are duplicates at rest, never a gap)
    and no half-written file visible."""
    monkeypatch.setattr(write_module, "POOL_AFTER_PARTITIONS", 3)
    corpus = [p for p in corpus_payloads() if "metadata" in p]
    payloads = [{**p, "metadata": {**p["metadata"], "request_id": f"kill-{seed}-{i:05d}"}} for i, p in
                enumerate(corpus[i % len(corpus)] for i in range(400))]
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n".join(sign(signer, p) for p in payloads) + b"\n")
    out = tmp_path / "out"
    rng = random.Random(seed)
    killed: list[int] = []

    def kill_a_worker_at_random() -> None:
        # The pool does not exist until the replay passes pool_after.
        wait_until(workers_module.pool_is_running, timeout=60, what="the replay's pool", interval=0.01)
        time.sleep(rng.uniform(0, 1.5))  # the random moment
        pool = workers_module._pool
        victims = [w.pid for w in (pool[1]._processes or {}).values()] if pool else []
        if victims:
            os.kill(victims[0], signal.SIGKILL)
            killed.append(victims[0])

    killer = threading.Thread(target=kill_a_worker_at_random)
    killer.start()
    try:
        _replay(source, out, jwks_file, processes=2, run_id="killedrun001")
        first_failed = False
    except Exception as error:  # noqa: BLE001 - the pipeline surfaces the dead worker
        first_failed = True
        assert "BrokenProcessPool" in repr(error) or "terminated abruptly" in str(error), error
    killer.join()
    assert killed, "no worker was there to kill"
    close_shared_pool()
    if first_failed:
        _replay(source, out, jwks_file, processes=2, run_id="rerunafter01")

    seen = Counter(r["request_id"] for f in (out / "events").rglob("*.parquet") for r in pq.read_table(f).to_pylist())
    assert set(seen) == {p["metadata"]["request_id"] for p in payloads}
    assert not first_failed or max(seen.values()) <= 2  # at most the failed run's copy beside the rerun's
    assert first_failed or set(seen.values()) == {1}
    assert not temp_files(out)


def test_event_errors_cross_a_process_boundary_whole() -> None:
    error = EventError("invalid_field", "data[1]: not an event", 1)
    back = pickle.loads(pickle.dumps(error))
    assert (back.error_type, back.message, back.item, str(back)) == ("invalid_field", "data[1]: not an event", 1,
                                                                      "data[1]: not an event")


def test_keys_that_cannot_load_in_a_worker_fail_the_chunk() -> None:
    pool = shared_pool(2)
    future = pool.submit(ingest_chunk_in_worker, VerifierSettings(sources=("http://127.0.0.1:9/jwks.json",)),
                         IngestSettings(False, 1 << 20), 300_000_000, [(b"x", None, 0)])
    with pytest.raises(JwksUnavailable):
        future.result(timeout=60)


def test_a_dead_worker_breaks_the_pool_and_the_next_use_gets_a_new_one() -> None:
    pool = shared_pool(2)
    with pytest.raises(BrokenProcessPool):
        pool.submit(os._exit, 3).result(timeout=60)
    again = shared_pool(2)
    assert again is not pool
    assert again.submit(os.getpid).result(timeout=60) != os.getpid()
    workers = list(again._processes.values())
    close_shared_pool()
    assert workers and all(not w.is_alive() for w in workers)


def test_closing_the_pool_never_hangs_on_a_stuck_worker() -> None:
    """A worker that does not exit (stuck in a task, or blocked on the task queue's lock that a
    worker killed unnoticed still held: how CI once hung at exit) is killed after the grace
    period instead of being waited for forever."""
    pool = shared_pool(2)
    stuck = pool.submit(time.sleep, 600)
    workers = list(pool._processes.values())
    wait_until(stuck.running, timeout=60, what="the stuck task handed to a worker", interval=0.01)
    started = time.monotonic()
    close_shared_pool(grace=1.0)
    assert time.monotonic() - started < 30
    assert workers and all(not w.is_alive() for w in workers)
    assert workers_module._pool is None


def test_a_pool_with_a_dead_worker_is_replaced_before_use() -> None:
    pool = shared_pool(2)
    pool.submit(os.getpid).result(timeout=60)
    victim = next(iter(pool._processes.values()))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(30)
    again = shared_pool(2)
    assert again is not pool
    assert again.submit(os.getpid).result(timeout=60) != os.getpid()


@pytest.mark.parametrize("argv,expected", [
    (["--runner=DirectRunner"], os.cpu_count() or 1),
    ([], os.cpu_count() or 1),
    (["--runner=DirectRunner", "--replay_processes=3"], 3),
    (["--runner=DirectRunner", "--replay_processes=1"], 1),
    (["--runner=DirectRunner", "--direct_num_workers=2"], 1),
    (["--runner=DataflowRunner", "--replay_processes=4"], 1),
])
def test_replay_processes(argv: list[str], expected: int) -> None:
    assert replay_processes(PipelineOptions(argv)) == expected
