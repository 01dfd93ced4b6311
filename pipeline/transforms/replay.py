"""DecodeToPartitions: a batch replay's deliveries -> partition batches, in one step.

Batch only. Each delivery is verified, decoded and normalized by ``pipeline.core.ingest``
(what the streaming graph's ``VerifyAndDecode`` and ``NormalizeEvents`` do, with the same
counters and the same dead-letter records, whose ``stage`` still names the step that refused
the delivery), and its rows go straight into the batching step of ``WriteDedupedPartitions``
(one deduplicated Arrow table per partition and arrival window per bundle). One Beam step
instead of three saves the runner's per-element cost of two hops for every delivery and
event.

On a local runner the step can use every core: once a bundle has seen ``POOL_AFTER``
deliveries, it hands chunks of them to a pool of processes (``pipeline.workers.shared_pool``) and
takes the outcomes back in order, so the output does not depend on the pool. Small
replays (tests, a day of one course) never start it.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from typing import Any, Iterator, Tuple

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput
from apache_beam.utils.timestamp import Timestamp

from pipeline.arrow import KEYED_SCHEMA, ipc_to_table
from pipeline.contract import VerifierSettings
from pipeline.core.decode import DEFAULT_MAX_BYTES
from pipeline.core.ingest import IngestSettings
from pipeline.core.pii import pii_setting_problem
from pipeline.jwks_fetch import build_verifier
from pipeline.transforms.common import (
    DEAD_LETTER,
    Delivery,
    RejectCounters,
    counter,
    dead_letter_for,
    in_global_window,
)
from pipeline.transforms.write import FLUSH_ROWS, WindowKey, emit_partitions
from pipeline.workers import ingest_chunk, ingest_chunk_in_worker, shared_pool

BATCHES = "batches"
POOL_AFTER = 2_000  # deliveries a bundle handles in-process before it starts the pool
CHUNK = 500  # deliveries per task handed to the pool


class _DecodeToPartitionsFn(beam.DoFn):
    def __init__(self, verifier_settings: VerifierSettings, settings: IngestSettings, window_seconds: int,
                 processes: int, pool_after: int = POOL_AFTER, chunk: int = CHUNK):
        self._verifier_settings = verifier_settings
        self._settings = settings
        self._window_micros = window_seconds * 1_000_000
        self._processes = processes
        self._pool_after = pool_after
        self._chunk_size = chunk

    def setup(self) -> None:
        self._verifier = build_verifier(self._verifier_settings)
        self._decoded = counter("events_decoded")
        self._verified = counter("events_verified")
        self._normalized = counter("rows_normalized")
        self._dropped = counter("duplicates_dropped")
        self._rejected = RejectCounters()

    def start_bundle(self) -> None:
        self._pool = None
        self._seen = 0
        self._chunk: list[tuple[Delivery, Timestamp]] = []
        self._pending: deque = deque()
        self._tables: list[Any] = []
        self._buffered = 0

    def process(self, delivery: Delivery, ts: Timestamp = beam.DoFn.TimestampParam) -> Iterator[Any]:
        self._seen += 1
        if self._seen == self._pool_after // 4 + 1 and self._processes > 1 and self._pool is None:
            self._start_pool()  # its workers start up while this process goes on alone
        self._chunk.append((delivery, ts))
        if len(self._chunk) >= self._chunk_size:
            self._dispatch()
            yield from self._drain(keep=2 * self._processes if self._pool is not None else 0)

    def _dispatch(self) -> None:
        chunk, self._chunk = self._chunk, []
        items = [(d.raw, d.received_at, ts.micros) for d, ts in chunk]
        if self._processes > 1 and self._seen > self._pool_after:
            if self._pool is None:
                self._start_pool()
            future = self._pool.submit(ingest_chunk_in_worker, self._verifier_settings, self._settings,
                                       self._window_micros, items)
        else:
            future = Future()
            future.set_result(ingest_chunk(items, self._verifier, self._settings, self._window_micros))
        self._pending.append((chunk, future))

    def _start_pool(self) -> None:
        self._pool = shared_pool(self._processes)

    def _drain(self, keep: int) -> Iterator[Any]:
        # Outcomes in the order the chunks came; counters and outputs on the bundle's thread.
        while len(self._pending) > keep:
            chunk, future = self._pending.popleft()
            outcome = future.result()  # a failed chunk raises: the bundle is retried
            self._decoded.inc(outcome.decoded)
            self._verified.inc(outcome.verified)
            for index, stage, error in outcome.rejections:
                delivery, ts = chunk[index]
                self._rejected.inc(error.error_type)
                record = dead_letter_for(stage, error, delivery)
                yield TaggedOutput(DEAD_LETTER, in_global_window(record, ts))
            if outcome.row_count:
                self._normalized.inc(outcome.row_count)
                self._tables.append(ipc_to_table(outcome.rows, KEYED_SCHEMA))
                self._buffered += outcome.row_count
                if self._buffered >= FLUSH_ROWS:
                    yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        tables, self._tables, self._buffered = self._tables, [], 0
        if tables:
            yield from emit_partitions(tables, self._window_micros, self._dropped)

    def finish_bundle(self) -> Iterator[Any]:
        if self._chunk:
            self._dispatch()
        yield from self._drain(keep=0)
        yield from self._flush()


class DecodeToPartitions(beam.PTransform):
    """Bounded ``Delivery`` (stamped on arrival, global window) ->
    ``((partition, start, end), Arrow IPC)`` for ``RewritePartitions``.

    Outputs: ``batches`` (main) and ``dead_letter`` (the records VerifyAndDecode and
    NormalizeEvents would emit, stamped with the delivery's arrival). ``processes`` > 1:
    past ``POOL_AFTER`` deliveries a bundle verifies and normalizes in that many processes
    (local runners; see the module docstring).
    """

    def __init__(self, settings: VerifierSettings | None, *, allow_unsigned: bool, window_seconds: int,
                 pii: str = "keep", pii_salt: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 processes: int = 1, pool_after: int = POOL_AFTER, chunk: int = CHUNK):
        super().__init__()
        problem = pii_setting_problem(pii, pii_salt)
        if problem:
            raise ValueError(problem)
        if not isinstance(window_seconds, int) or window_seconds <= 0:
            raise ValueError(f"window_seconds must be a positive int, got {window_seconds!r}")
        if not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes must be a positive int, got {processes!r}")
        self._fn = _DecodeToPartitionsFn(
            settings or VerifierSettings(), IngestSettings(allow_unsigned, max_bytes, pii, pii_salt),
            window_seconds, processes, pool_after, chunk)

    def expand(self, deliveries: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        if not deliveries.is_bounded:
            raise ValueError("DecodeToPartitions is for bounded input; streaming uses VerifyAndDecode -> NormalizeEvents")
        return deliveries | "Decode" >> (
            beam.ParDo(self._fn).with_output_types(Tuple[WindowKey, bytes]).with_outputs(DEAD_LETTER, main=BATCHES))


__all__ = ["BATCHES", "CHUNK", "POOL_AFTER", "DecodeToPartitions"]
