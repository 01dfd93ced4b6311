"""Write hive-partitioned Parquet and JSON-lines dead letters (windowed by ``pipeline.transforms.window``).

Files are written with a GroupByKey on the partition followed by a DoFn that writes one
file per (partition, window, pane) through ``FileSystems`` (local and gs:// alike), not
``fileio.WriteToFiles``, which loses data in nested ``key=value/`` directories (STACK.md
trap 5). Each file is written to a dot-prefixed temp name in its final directory and then
renamed, so readers only ever see complete files; names come from (window, pane, shard)
and a run id fixed when the graph is built (``pipeline.filenames.part_file_name``), so a
retried bundle overwrites its own earlier attempt while a second job writing the same
window (another replay, a restarted stream) adds files beside the first job's instead of
replacing them. A write error raises: the runner retries the bundle.

The window's bounds travel in the grouping key, so the writers name files from the key.
In batch that lets the grouping run in the global window (``_GroupPerWindow``): the
runner then groups plain values, where a GroupByKey over fixed windows would run its
general trigger machinery for every element, for the same single on-time pane per window.
"""
from __future__ import annotations

import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

from pipeline.deadletter import encode_records
from pipeline.arrow import MAX_ROWS_PER_FILE, dedupe_rows, rows_to_parquet_bytes, shard, sorted_rows
from pipeline.core.partition import partition_path
from pipeline.core.rows import COLUMN_INDEX
from pipeline.filenames import new_run_id, part_file_name, temp_name_for, window_date
from pipeline.transforms.common import METRICS_NAMESPACE, counter
from schemas.events import Row

BATCH_ROWS = 20_000  # rows per partition buffered in one bundle before they are handed on
WRITE_THREADS = 4

DEAD_LETTER_DIR_PREFIX = "arrival_date="
# Beam distribution: received_at -> its file written, per row, in milliseconds (Cloud
# Monitoring dashboard in monitoring/; Dataflow exports it as a user counter).
LATENCY_METRIC = "received_to_written_ms"
_RECEIVED_AT = COLUMN_INDEX["received_at"]  # by position: see schemas.events.Row


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a dot-prefixed temp file in the same directory + rename."""
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


def record_latency(latency: Any, rows: Iterable[Row], written_micros: int) -> None:
    """Update the ``LATENCY_METRIC`` distribution with each row's received_at -> written time."""
    for row in rows:
        if row[_RECEIVED_AT] is not None:
            latency.update((written_micros - row[_RECEIVED_AT]) // 1000)


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
            record_latency(self._latency, chunk, time.time_ns() // 1000)
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


class _BatchPerPartitionFn(beam.DoFn):
    """Rows (global window, stamped on arrival) -> ``((partition, start, end), [Rows])``, one list per key per bundle (or per BATCH_ROWS rows): the shuffle then moves a
    few large elements instead of one element per row. (start, end) is the fixed arrival
    window of ``window_seconds`` the stamp falls in, as WindowByArrival would assign it."""

    def __init__(self, window_seconds: int):
        self._window_micros = window_seconds * 1_000_000

    def start_bundle(self) -> None:
        self._batches: dict[WindowKey, list[Row]] = {}

    def process(self, row: Row, ts: Any = beam.DoFn.TimestampParam) -> Iterator[Any]:
        start = ts.micros - ts.micros % self._window_micros
        key = (partition_path(row), start, start + self._window_micros)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = []
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            del self._batches[key]
            yield window.GlobalWindows.windowed_value((key, batch))

    def finish_bundle(self) -> Iterator[Any]:
        for key, batch in self._batches.items():
            yield window.GlobalWindows.windowed_value((key, batch))
        self._batches = {}


class _WriteDedupedFn(beam.DoFn):
    """Dedupe, encode and write each partition's rows; the encode (Arrow releases the GIL)
    and the object writes (tens of ms each on GCS) of several partitions overlap in a few
    threads, so thousands of small partition files are not written one after another."""

    def __init__(self, output: str, max_rows_per_file: int, run_id: str, threads: int = WRITE_THREADS):
        self._output = output
        self._max_rows = max_rows_per_file
        self._run_id = run_id
        self._threads = threads

    def setup(self) -> None:
        self._rows_written = counter("rows_written")
        self._files_written = counter("files_written")
        self._dropped = counter("duplicates_dropped")
        self._latency = Metrics.distribution(METRICS_NAMESPACE, LATENCY_METRIC)
        self._pool = ThreadPoolExecutor(max_workers=self._threads)

    def teardown(self) -> None:
        self._pool.shutdown(wait=True)

    def start_bundle(self) -> None:
        self._pending: list[Future] = []

    def _write(self, partition: str, start: int, end: int,
               rows: list[Row]) -> list[tuple[str, list[Row], int]]:
        directory = FileSystems.join(self._output, partition)
        written = []
        for index, chunk in enumerate(shard(rows, self._max_rows)):
            path = FileSystems.join(directory, part_file_name(start, end, 0, index, run_id=self._run_id))
            write_atomically(path, rows_to_parquet_bytes(chunk))
            written.append((path, chunk, time.time_ns() // 1000))
        return written

    def _collect(self, keep: int) -> Iterator[Any]:
        # Metrics are updated here, on the bundle's thread (a metrics container is per thread).
        while len(self._pending) > keep:
            for path, chunk, written_micros in self._pending.pop(0).result():  # a write error raises: retried
                self._rows_written.inc(len(chunk))
                self._files_written.inc()
                record_latency(self._latency, chunk, written_micros)
                yield window.GlobalWindows.windowed_value(path)

    def process(self, keyed: tuple[WindowKey, Iterable[list[Row]]]) -> Iterator[Any]:
        (partition, start, end), batches = keyed
        rows, dropped = dedupe_rows(row for batch in batches for row in batch)
        self._dropped.inc(dropped)
        self._pending.append(self._pool.submit(self._write, partition, start, end, rows))
        yield from self._collect(keep=2 * self._threads)

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._collect(keep=0)


class WriteDedupedPartitions(beam.PTransform):
    """Batch: Rows stamped on arrival -> one row per dedupe key, written as Parquet files
    ``{output}/event_date=D/event_name=N/part-<start>-<end>-p0-s<shard>-<run>.parquet``.

    "Group by partition, drop repeated dedupe keys, write": the rule is compaction's
    (``pipeline.arrow.dedupe_rows`` = ``dedupe_table`` on Rows: first-received copy kept).
    In batch every copy of an event lands in the same partition (it comes from the event)
    and the same window (a replay stamps every line with one arrival time), so this one
    shuffle replaces a dedupe shuffle per event plus a write shuffle per row. Streaming keeps
    ``DedupeEvents`` (state across windows) and ``WritePartitionedParquet``. Dropped copies
    are counted (``duplicates_dropped``). Output: the paths written.
    """

    def __init__(self, output: str, window_seconds: int, max_rows_per_file: int = MAX_ROWS_PER_FILE,
                 run_id: str | None = None):
        super().__init__()
        if not isinstance(window_seconds, int) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a positive int, got {window_seconds!r}")
        self.output = output
        self.window_seconds = window_seconds
        self.max_rows_per_file = max_rows_per_file
        self.run_id = run_id or new_run_id()  # fixed here, when the graph is built

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        if not rows.is_bounded:
            raise ValueError("WriteDedupedPartitions is for bounded input; streaming uses DedupeEvents")
        return (
            rows
            | "BatchPerPartition" >> beam.ParDo(_BatchPerPartitionFn(self.window_seconds))
            .with_output_types(Tuple[WindowKey, Any])
            | "GroupByPartition" >> beam.GroupByKey()
            | "DedupeAndWrite" >> beam.ParDo(_WriteDedupedFn(self.output, self.max_rows_per_file, self.run_id))
        )
