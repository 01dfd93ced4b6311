"""The batch replay's work units, run in this process or in a pool of processes.

* ``ingest_chunk``: a chunk of deliveries -> ``pipeline.core.ingest`` on each (verify,
  decode, normalize) and the chunk's rows as one Arrow table keyed by partition and arrival
  window (``pipeline.arrow.rows_to_keyed_table``), serialized, so rows cross a process
  boundary as a few buffers instead of pickled tuples.
* ``write_partition``: one partition's batches -> merged and deduplicated
  (``pipeline.arrow.merge_deduped``), encoded and written atomically as Parquet files.

A local batch replay (DirectRunner) runs in one Python process, so this, the bulk of its
work, would use one core; threads do not help (verifying and normalizing are Python, and
even the Parquet encode, which releases the interpreter, was slowed by its Python half).
``shared_pool`` gives the replay steps one pool of worker processes for the whole run.
Dataflow runs one worker process per core already; there the steps work in-process (and
write gs:// objects from threads). Workers are started with ``spawn`` (no inherited threads
or locks) and import no Beam for local files: only the pure core, Arrow and the key loader.
Each worker loads the JWKS itself, once per key configuration; a key host that cannot be
reached fails the chunk, which fails the bundle, which the runner retries, as a failed
``setup`` would. A worker that dies breaks the pool: the bundle fails and the next one
starts a new pool.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, NamedTuple, Sequence

from pipeline.arrow import (
    ipc_to_table,
    merge_deduped,
    rows_to_keyed_table,
    table_to_ipc,
    table_to_parquet_bytes,
    window_start,
)
from pipeline.contract import VerifierSettings
from pipeline.core.errors import EventError
from pipeline.core.ingest import IngestSettings, ingest
from pipeline.core.verify import JwtVerifier
from pipeline.filenames import part_file_name, temp_name_for

# One delivery: (raw body, received_at, arrival stamp in micros).
Item = tuple[bytes, datetime | None, int]


class ChunkOutcome(NamedTuple):
    rows: bytes  # Arrow IPC of the keyed table (pipeline.arrow.KEYED_SCHEMA); b"" when no row
    row_count: int
    rejections: list[tuple[int, str, EventError]]  # (index in the chunk, stage, error)
    decoded: int
    verified: int


def ingest_chunk(items: Sequence[Item], verifier: JwtVerifier | None, settings: IngestSettings,
                 window_micros: int) -> ChunkOutcome:
    rows, starts, rejections = [], [], []
    decoded = verified = 0
    for index, (raw, received_at, stamp) in enumerate(items):
        outcome = ingest(raw, received_at, verifier, settings)
        decoded += outcome.decoded
        verified += outcome.verified
        rejections.extend((index, stage, error) for stage, error in outcome.rejections)
        rows += outcome.rows
        starts += [window_start(stamp, window_micros)] * len(outcome.rows)
    data = table_to_ipc(rows_to_keyed_table(rows, starts)) if rows else b""
    return ChunkOutcome(data, len(rows), rejections, decoded, verified)


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a dot-prefixed temp file in the same directory + rename
    (local disk: plain file calls; anything else: Beam's FileSystems)."""
    if "://" in path:
        _write_remote_atomically(path, data)
        return
    directory, name = os.path.split(path)
    os.makedirs(directory, exist_ok=True)
    temp = os.path.join(directory, temp_name_for(name, uuid.uuid4().hex[:12]))
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def _write_remote_atomically(path: str, data: bytes) -> None:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    directory, name = FileSystems.split(path)
    temp = FileSystems.join(directory, temp_name_for(name, uuid.uuid4().hex[:12]))
    try:
        with FileSystems.create(temp, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            handle.write(data)
        FileSystems.rename([temp], [path])
    except BaseException:
        try:
            if FileSystems.exists(temp):
                FileSystems.delete([temp])
        except Exception:  # noqa: BLE001 - the original error is the one to raise
            pass
        raise


class FileWritten(NamedTuple):
    path: str
    rows: int
    received: list  # each row's received_at in micros (None when unknown)
    written_micros: int


class PartitionWritten(NamedTuple):
    files: list[FileWritten]
    dropped: int  # copies dropped while merging the partition's batches


def write_partition(output: str, partition: str, start: int, end: int, run_id: str, max_rows: int,
                    encoded: Sequence[bytes]) -> PartitionWritten:
    """One partition's batches (``table_to_ipc`` of deduplicated tables) -> merged, deduplicated
    and written as ``{output}/{partition}/part-<start>-<end>-p0-s<shard>-<run>.parquet``, at
    most ``max_rows`` rows a file. A write error raises (the bundle is retried; the names are
    the same, so a retry overwrites its own files)."""
    table, dropped = merge_deduped([ipc_to_table(data) for data in encoded])
    directory = f"{output.rstrip('/')}/{partition}"
    files = []
    for index, offset in enumerate(range(0, max(table.num_rows, 1), max_rows)):
        chunk = table.slice(offset, max_rows)
        path = f"{directory}/{part_file_name(start, end, 0, index, run_id=run_id)}"
        write_atomically(path, table_to_parquet_bytes(chunk))
        received = chunk.column("received_at").cast("int64").to_pylist()
        files.append(FileWritten(path, chunk.num_rows, received, time.time_ns() // 1000))
    return PartitionWritten(files, dropped)


def write_partitions(output: str, run_id: str, max_rows: int,
                     partitions: Sequence[tuple[str, int, int, Sequence[bytes]]]) -> list[PartitionWritten]:
    """``write_partition`` of each (partition, start, end, batches), in order: a pool's task
    holds several, so the hand-over costs less than a partition's own small file."""
    return [write_partition(output, partition, start, end, run_id, max_rows, encoded)
            for partition, start, end, encoded in partitions]


# --- the pool -------------------------------------------------------------------------

_verifiers: dict[VerifierSettings, Any] = {}  # in a worker: one verifier per key configuration


def _verifier_for(settings: VerifierSettings) -> JwtVerifier | None:
    if settings not in _verifiers:
        from pipeline.jwks_fetch import build_verifier

        _verifiers[settings] = build_verifier(settings)
    return _verifiers[settings]


def ingest_chunk_in_worker(verifier_settings: VerifierSettings, settings: IngestSettings, window_micros: int,
                           items: Sequence[Item]) -> ChunkOutcome:
    return ingest_chunk(items, _verifier_for(verifier_settings), settings, window_micros)


def _ready() -> int:
    return os.getpid()


_pool_lock = threading.Lock()
_pool: tuple[int, ProcessPoolExecutor] | None = None

STOP_GRACE_SECONDS = 10.0  # how long a worker gets to finish its task and exit before it is killed


def _has_dead_worker(executor: ProcessPoolExecutor) -> bool:
    return any(p.exitcode is not None for p in list((executor._processes or {}).values()))


def shared_pool(processes: int) -> ProcessPoolExecutor:
    """This process's pool of ``processes`` spawned workers, started (every worker spawning in
    the background) on first use and kept for the rest of the run. A broken pool, or one with a
    dead worker the executor has not noticed yet, is stopped and replaced."""
    global _pool
    with _pool_lock:
        if _pool is not None and (_pool[0] != processes or getattr(_pool[1], "_broken", False)
                                  or _has_dead_worker(_pool[1])):
            _stop(_pool[1], grace=1.0)
            _pool = None
        if _pool is None:
            executor = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(processes):
                executor.submit(_ready)
            _pool = (processes, executor)
        return _pool[1]


def _stop(executor: ProcessPoolExecutor, grace: float) -> None:
    """Stop a pool without ever hanging: queued tasks are cancelled, each worker gets ``grace``
    seconds to finish its task and exit, and a worker still there then is killed.

    ``ProcessPoolExecutor.shutdown(wait=True)`` alone can wait forever: a worker killed (OOM, kill -9)
    while it held the task queue's lock, at a moment the executor did not notice, leaves the other
    workers blocked on that lock, and the executor joins them without a timeout (so would the
    interpreter at exit). A worker stuck in a task would hold it the same way."""
    workers = list((executor._processes or {}).values())
    manager = executor._executor_manager_thread  # shutdown() forgets it
    executor.shutdown(wait=False, cancel_futures=True)
    waiting = {w.sentinel: w for w in workers}
    deadline = time.monotonic() + grace
    while waiting and (left := deadline - time.monotonic()) > 0:
        for ready in multiprocessing.connection.wait(list(waiting), timeout=left):
            waiting.pop(ready)  # type: ignore[call-overload]
    for worker in waiting.values():
        worker.kill()  # SIGKILL; the executor's own thread reaps it and then ends
    if manager is not None:
        manager.join(grace + 5)


def pool_is_running() -> bool:
    """Whether the shared pool has been started (and not closed) in this process."""
    return _pool is not None


def close_shared_pool(grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop the shared pool, if one was started: never hangs (see ``_stop``)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _stop(_pool[1], grace)
            _pool = None


# At interpreter exit, before concurrent.futures joins its executors without a timeout (its
# hook was registered when it was imported, above; these hooks run last-registered first), so
# a process that never called close_shared_pool cannot hang on its way out either.
threading._register_atexit(close_shared_pool)  # type: ignore[attr-defined]


__all__ = ["BrokenProcessPool", "ChunkOutcome", "FileWritten", "PartitionWritten", "close_shared_pool",
           "ingest_chunk", "ingest_chunk_in_worker", "pool_is_running", "shared_pool", "write_atomically", "write_partition",
           "write_partitions"]
