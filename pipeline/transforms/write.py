"""Write hive-partitioned Parquet and JSON-lines dead letters (windowed by ``pipeline.transforms.window``).

Files are written with a GroupByKey on the partition followed by a DoFn that writes one
file per (partition, window, pane) with ``pipeline.workers.write_atomically`` (plain file
calls on a local disk, Beam's ``FileSystems`` for gs://), not ``fileio.WriteToFiles``, which
loses data in nested ``key=value/`` directories (STACK.md trap 5). Each file is written to a dot-prefixed temp name in its final directory and then
renamed, so readers only ever see complete files; names come from (window, pane, shard)
and a run id fixed when the graph is built (``pipeline.filenames.part_file_name``), so a
retried bundle overwrites its own earlier attempt while a second job writing the same
window (another replay, a restarted stream) adds files beside the first job's instead of
replacing them. A write error raises: the runner retries the bundle.

Streaming: ``WritePartitionedParquet`` (rows -> files per partition and window). Batch and
compaction: ``RewritePartitions`` takes per-partition Arrow batches (``DecodeToPartitions``,
or ``_BatchPerPartitionFn`` inside ``WriteDedupedPartitions`` for a PCollection of rows)
and/or compaction plans (files to fold), merges and deduplicates each partition and writes
it (``pipeline.workers.write_partition``, ``pipeline.compact.compact_partition``).

The window's bounds travel in the grouping key, so the writers name files from the key.
In batch that lets the grouping run in the global window (``_GroupPerWindow``): the
runner then groups plain values, where a GroupByKey over fixed windows would run its
general trigger machinery for every element, for the same single on-time pane per window.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

from pipeline.arrow import (
    MAX_ROWS_PER_FILE,
    ipc_to_table,
    rows_to_keyed_table,
    rows_to_parquet_bytes,
    shard,
    sorted_rows,
    split_deduped,
    table_to_ipc,
    window_start,
)
from pipeline.compact import COUNTERS as COMPACTION_COUNTERS
from pipeline.compact import MB, PROG, compact_partition, counts, progress_line
from pipeline.core.compaction import DEFAULT_TARGET_FILE_MB, PartitionPlan
from pipeline.core.partition import partition_path
from pipeline.core.rows import COLUMN_INDEX
from pipeline.deadletter import encode_records
from pipeline.filenames import new_run_id, part_file_name, window_date
from pipeline.transforms.common import METRICS_NAMESPACE, counter, in_global_window
from pipeline.workers import pool_is_running, shared_pool, write_atomically, write_partitions
from schemas.events import Row

FLUSH_ROWS = 50_000  # rows buffered in one bundle before they are handed on to the shuffle
POOL_AFTER_PARTITIONS = 200  # partitions a bundle writes from threads before it uses the process pool
POOL_TASK_PARTITIONS = 16  # partitions handed to a worker process at a time
REMOTE_WRITE_THREADS = 16  # object writes to gs:// take tens of ms each: overlap many


def write_threads(output: str) -> int:
    """Threads that encode and write partition files: enough to overlap object-store round
    trips for gs://; one per core for a local disk, where the encode is the cost and more
    threads only fight over the interpreter."""
    return REMOTE_WRITE_THREADS if "://" in output else max(1, os.cpu_count() or 1)

DEAD_LETTER_DIR_PREFIX = "arrival_date="
# Beam distribution: received_at -> its file written, per row, in milliseconds (Cloud
# Monitoring dashboard in monitoring/; Dataflow exports it as a user counter).
LATENCY_METRIC = "received_to_written_ms"
_RECEIVED_AT = COLUMN_INDEX["received_at"]  # by position: see schemas.events.Row


WindowKey = Tuple[str, int, int]  # (what is grouped, window start micros, window end micros)


class _GroupPerWindow(beam.PTransform):
    """``((key, start, end), value)`` in fixed windows -> ``((key, start, end), values)``, one
    group per key, window and pane.

    Streaming: a GroupByKey over the windows (panes as the trigger fires). Batch: the
    window is already in the key, so the elements move to the global window first and the
    runner's plain batch grouping gives the one on-time pane (index 0) per key and window.
    """

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        if keyed.is_bounded:
            keyed = keyed | "ToGlobalWindow" >> beam.WindowInto(window.GlobalWindows())
        return keyed | "Group" >> beam.GroupByKey()


def record_latency(latency: Any, received: Iterable[int | None], written_micros: int) -> None:
    """Update the ``LATENCY_METRIC`` distribution with each row's received_at -> written time
    (``received``: the rows' received_at in microseconds, None when unknown)."""
    for micros in received:
        if micros is not None:
            latency.update((written_micros - micros) // 1000)


class _WriteParquetFn(beam.DoFn):
    def __init__(self, output: str, max_rows_per_file: int, run_id: str):
        self._output = output
        self._max_rows = max_rows_per_file
        self._run_id = run_id

    def setup(self) -> None:
        self._rows_written = counter("rows_written")
        self._files_written = counter("files_written")
        self._latency = Metrics.distribution(METRICS_NAMESPACE, LATENCY_METRIC)

    def process(self, keyed: tuple[WindowKey, Iterable[Row]],
                pane: Any = beam.DoFn.PaneInfoParam) -> Iterator[str]:
        (partition, start, end), rows = keyed
        directory = FileSystems.join(self._output, partition)
        for index, chunk in enumerate(shard(sorted_rows(rows), self._max_rows)):
            path = FileSystems.join(directory, part_file_name(start, end, pane.index, index, run_id=self._run_id))
            write_atomically(path, rows_to_parquet_bytes(chunk))
            self._rows_written.inc(len(chunk))
            self._files_written.inc()
            record_latency(self._latency, (row[_RECEIVED_AT] for row in chunk), time.time_ns() // 1000)
            yield path


def _partition_keyed(row: Row, win: Any = beam.DoFn.WindowParam) -> tuple[WindowKey, Row]:
    return (partition_path(row), win.start.micros, win.end.micros), row


class WritePartitionedParquet(beam.PTransform):
    """Windowed Rows -> Parquet files ``{output}/event_date=D/event_name=N/part-...parquet``.

    One file per partition per window per pane (more shards only past ``max_rows_per_file``).
    Output: the paths written.
    """

    def __init__(self, output: str, max_rows_per_file: int = MAX_ROWS_PER_FILE, run_id: str | None = None):
        super().__init__()
        self.output = output
        self.max_rows_per_file = max_rows_per_file
        self.run_id = run_id or new_run_id()  # fixed here, when the graph is built

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "KeyByPartition" >> beam.Map(_partition_keyed).with_output_types(Tuple[WindowKey, Any])
            | "GroupByPartition" >> _GroupPerWindow()
            | "WriteFiles" >> beam.ParDo(_WriteParquetFn(self.output, self.max_rows_per_file, self.run_id))
        )


class _WriteDeadLettersFn(beam.DoFn):
    def __init__(self, output: str, max_records_per_file: int, run_id: str):
        self._output = output
        self._max = max_records_per_file
        self._run_id = run_id

    def setup(self) -> None:
        self._written = counter("dead_letters_written")

    def process(self, keyed: tuple[WindowKey, Iterable[dict[str, Any]]],
                pane: Any = beam.DoFn.PaneInfoParam) -> Iterator[str]:
        (_, start, end), records = keyed
        records = sorted(records, key=lambda r: (r["failed_at"], r["payload"]))
        directory = FileSystems.join(self._output, DEAD_LETTER_DIR_PREFIX + window_date(start))
        for index, chunk in enumerate(shard(records, self._max)):
            path = FileSystems.join(directory, part_file_name(start, end, pane.index, index, ".jsonl", self._run_id))
            write_atomically(path, encode_records(list(chunk)))
            self._written.inc(len(chunk))
            yield path


def _window_keyed(record: dict[str, Any], win: Any = beam.DoFn.WindowParam) -> tuple[WindowKey, dict[str, Any]]:
    return ("dead_letters", win.start.micros, win.end.micros), record


class WriteDeadLetters(beam.PTransform):
    """Windowed dead-letter records -> JSON-lines files
    ``{output}/arrival_date=D/part-<start>-<end>-p<pane>-s<shard>-<run>.jsonl`` (D: window start date).

    One file per window per pane. Output: the paths written.
    """

    def __init__(self, output: str, max_records_per_file: int = MAX_ROWS_PER_FILE, run_id: str | None = None):
        super().__init__()
        self.output = output
        self.max_records_per_file = max_records_per_file
        self.run_id = run_id or new_run_id()  # fixed here, when the graph is built

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "KeyByWindow" >> beam.Map(_window_keyed).with_output_types(Tuple[WindowKey, Any])
            | "GroupByWindow" >> _GroupPerWindow()
            | "WriteFiles" >> beam.ParDo(_WriteDeadLettersFn(self.output, self.max_records_per_file, self.run_id))
        )


def emit_partitions(tables: list[Any], window_micros: int, dropped_counter: Any) -> Iterator[Any]:
    """Keyed tables (``pipeline.arrow.rows_to_keyed_table``) -> ``((partition, start, end),
    Arrow IPC)`` per partition and window, each deduplicated (``pipeline.arrow.split_deduped``),
    in the global window; the copies dropped are counted."""
    parts, dropped = split_deduped(tables)
    dropped_counter.inc(dropped)
    for (partition, start), table in parts:
        yield in_global_window(((partition, start, start + window_micros), table_to_ipc(table)))


class _BatchPerPartitionFn(beam.DoFn):
    """Rows (global window, stamped on arrival) -> ``((partition, start, end), Arrow IPC bytes)``:
    per bundle (or per FLUSH_ROWS rows) one deduplicated, sorted table per key (``emit_partitions``),
    so the shuffle moves one small binary element per partition instead of a pickled row each,
    and the rows are converted to Arrow once, all partitions together. (start, end) is the
    fixed arrival window of ``window_seconds`` the stamp falls in."""

    def __init__(self, window_seconds: int):
        self._window_micros = window_seconds * 1_000_000

    def setup(self) -> None:
        self._dropped = counter("duplicates_dropped")

    def start_bundle(self) -> None:
        self._rows: list[Row] = []
        self._starts: list[int] = []

    def process(self, row: Row, ts: Any = beam.DoFn.TimestampParam) -> Iterator[Any]:
        self._rows.append(row)
        self._starts.append(window_start(ts.micros, self._window_micros))
        if len(self._rows) >= FLUSH_ROWS:
            yield from self.finish_bundle()

    def finish_bundle(self) -> Iterator[Any]:
        if self._rows:
            table = rows_to_keyed_table(self._rows, self._starts)
            self.start_bundle()
            yield from emit_partitions([table], self._window_micros, self._dropped)


FOLD_WINDOW = (0, 0)  # a fold (compaction) has no arrival window: its key is (partition, 0, 0)


def fold_element(plan: PartitionPlan) -> tuple[WindowKey, PartitionPlan]:
    """A compaction plan as an input of ``RewritePartitions``: fold this partition's files."""
    return (plan.partition, *FOLD_WINDOW), plan


class _RewritePartitionFn(beam.DoFn):
    """One partition's inputs -> its rows, deduplicated, written; see ``RewritePartitions``.

    New rows only (a replay): merged (copies that came in different bundles are dropped
    there) and written by ``pipeline.workers.write_partition``. Several partitions are in
    flight at once: in threads for gs:// (each object write takes tens of ms), in the shared
    pool of processes on a local runner writing to a local disk once a bundle holds more than
    POOL_AFTER_PARTITIONS partitions, or from the first one when the pool is running already
    (the encode is the cost there, and threads fought over the interpreter), else in one
    thread per core.

    With files to fold (a compaction plan): ``pipeline.compact.compact_partition`` reads them,
    dedupes them together with any new rows, writes the result and then deletes exactly the
    files it read, here, one partition at a time."""

    def __init__(self, output: str, max_rows_per_file: int, run_id: str, processes: int = 1,
                 threads: int | None = None, target_file_bytes: int = DEFAULT_TARGET_FILE_MB * MB):
        self._output = output
        self._max_rows = max_rows_per_file
        self._run_id = run_id
        self._processes = processes if "://" not in output else 1
        self._threads = threads or write_threads(output)
        self._target_bytes = target_file_bytes

    def setup(self) -> None:
        self._rows_written = counter("rows_written")
        self._files_written = counter("files_written")
        self._dropped = counter("duplicates_dropped")
        self._folds = {name: counter(name) for name in COMPACTION_COUNTERS if name != "rows_written"}
        self._latency = Metrics.distribution(METRICS_NAMESPACE, LATENCY_METRIC)
        self._threads_pool = ThreadPoolExecutor(max_workers=self._threads)

    def teardown(self) -> None:
        self._threads_pool.shutdown(wait=True)

    def start_bundle(self) -> None:
        self._pending: deque = deque()
        self._seen = 0
        self._executor: Any = self._threads_pool
        self._in_flight = 2 * self._threads
        self._task: list[tuple[str, int, int, list[bytes]]] = []
        self._task_size = 1

    def _collect(self, keep: int) -> Iterator[Any]:
        # Metrics are updated here, on the bundle's thread (a metrics container is per thread).
        while len(self._pending) > keep:
            for written in self._pending.popleft().result():  # a write error raises: the bundle is retried
                self._dropped.inc(written.dropped)
                for file in written.files:
                    self._rows_written.inc(file.rows)
                    self._files_written.inc()
                    record_latency(self._latency, file.received, file.written_micros)
                    yield in_global_window(file.path)

    def _submit(self) -> None:
        task, self._task = self._task, []
        self._pending.append(self._executor.submit(write_partitions, self._output, self._run_id, self._max_rows, task))

    def _fold(self, partition: str, plans: list[PartitionPlan], batches: list[bytes]) -> Iterator[Any]:
        files = tuple(sorted({f for plan in plans for f in plan.files}, key=lambda f: f.relative))
        plan = PartitionPlan(partition, plans[0].event_date, files, all(p.compact for p in plans))
        # A run id of its own for every attempt: a retried bundle must never overwrite an
        # earlier attempt's complete files, which may already have deleted some old files
        # (the retry then reads fewer rows). An earlier attempt's files left beside the
        # retry's are duplicates, never a gap; the next compaction folds them.
        r = compact_partition(self._output, plan, new_run_id(), self._target_bytes,
                              new_rows=[ipc_to_table(data) for data in batches])
        print(f"{PROG}: {progress_line(r)}", file=sys.stderr, flush=True)  # worker logs on Dataflow
        for name, value in counts(r).items():
            (self._rows_written if name == "rows_written" else self._folds[name]).inc(value)
        self._files_written.inc(len(r.written))
        for path in r.written:
            yield in_global_window(path)

    def process(self, keyed: tuple[WindowKey, Iterable[bytes | PartitionPlan]]) -> Iterator[Any]:
        (partition, start, end), inputs = keyed
        batches: list[bytes] = []
        plans: list[PartitionPlan] = []
        for value in inputs:
            (plans if isinstance(value, PartitionPlan) else batches).append(value)
        if plans:
            yield from self._fold(partition, plans, batches)
            return
        self._seen += 1
        if self._processes > 1 and self._executor is self._threads_pool and (
                self._seen > POOL_AFTER_PARTITIONS or (self._seen == 1 and pool_is_running())):
            # The pool, once the bundle is big enough to pay for starting it, or at once when
            # it is running already (the replay's decode step started it).
            self._executor, self._in_flight = shared_pool(self._processes), 2 * self._processes
            self._task_size = POOL_TASK_PARTITIONS
        self._task.append((partition, start, end, batches))
        if len(self._task) >= self._task_size:
            self._submit()
            yield from self._collect(keep=self._in_flight)

    def finish_bundle(self) -> Iterator[Any]:
        if self._task:
            self._submit()
        yield from self._collect(keep=0)


class RewritePartitions(beam.PTransform):
    """Group by partition, drop repeated dedupe keys, write: the one transform of the batch
    replay and of compaction.

    Input: ``((partition, start, end), value)`` where a value is either Arrow IPC of new,
    deduplicated rows (``DecodeToPartitions``, ``_BatchPerPartitionFn``; (start, end) is their
    arrival window) or a compaction plan (``fold_element``: the partition's files to fold).
    One GroupByKey brings each partition's inputs together; its rows are deduplicated by one
    rule (``pipeline.arrow.dedupe_table``: the first-received copy kept), the copies dropped
    are counted, and the rows are written:

    * new rows only (a replay): ``{output}/event_date=D/event_name=N/part-<start>-<end>-p0-s<shard>-<run>.parquet``,
      at most ``max_rows_per_file`` rows a file, the run id fixed when the graph is built
      (a retried bundle overwrites its own files; another run adds files beside them);
    * with files to fold (compaction): ``compact-<run>-s<shard>.parquet`` of about
      ``target_file_bytes``, sorted by event_time; the files read are deleted after every new
      file exists (``pipeline.compact.compact_partition``), with a new run id per attempt.

    Output: the paths written.
    """

    def __init__(self, output: str, max_rows_per_file: int = MAX_ROWS_PER_FILE, run_id: str | None = None,
                 processes: int = 1, target_file_bytes: int = DEFAULT_TARGET_FILE_MB * MB):
        super().__init__()
        self.output = output
        self.max_rows_per_file = max_rows_per_file
        self.run_id = run_id or new_run_id()  # fixed here, when the graph is built
        self.processes = processes
        self.target_file_bytes = target_file_bytes

    def expand(self, inputs: beam.PCollection) -> beam.PCollection:
        return (
            inputs
            | "GroupByPartition" >> beam.GroupByKey()
            | "DedupeAndWrite" >> beam.ParDo(_RewritePartitionFn(
                self.output, self.max_rows_per_file, self.run_id, self.processes,
                target_file_bytes=self.target_file_bytes))
        )


class WriteDedupedPartitions(beam.PTransform):
    """Batch: Rows stamped on arrival -> one row per dedupe key, written as Parquet files
    ``{output}/event_date=D/event_name=N/part-<start>-<end>-p0-s<shard>-<run>.parquet``.

    "Group by partition, drop repeated dedupe keys, write": the rule is compaction's
    (``pipeline.arrow.dedupe_table``, within a bundle by ``split_deduped`` and across bundles
    by ``merge_deduped``: the first-received copy kept). In batch every copy of an event lands in the same partition
    (it comes from the event) and the same window (a replay stamps every line with one
    arrival time), so this one shuffle replaces a dedupe shuffle per event plus a write
    shuffle per row. Streaming keeps ``DedupeEvents`` (state across windows) and
    ``WritePartitionedParquet``. The batch pipeline runs the batching step fused into
    ``DecodeToPartitions`` and then ``RewritePartitions``. Output: the paths written.
    """

    def __init__(self, output: str, window_seconds: int, max_rows_per_file: int = MAX_ROWS_PER_FILE,
                 run_id: str | None = None):
        super().__init__()
        if not isinstance(window_seconds, int) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a positive int, got {window_seconds!r}")
        self.window_seconds = window_seconds
        self.write = RewritePartitions(output, max_rows_per_file, run_id)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        if not rows.is_bounded:
            raise ValueError("WriteDedupedPartitions is for bounded input; streaming uses DedupeEvents")
        return (
            rows
            | "BatchPerPartition" >> beam.ParDo(_BatchPerPartitionFn(self.window_seconds))
            .with_output_types(Tuple[WindowKey, bytes])
            | "Write" >> self.write
        )
