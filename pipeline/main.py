"""The Canvas Live Events Beam pipeline: a thin ``run(argv)`` over named stages.

    Read -> VerifyAndDecode -> NormalizeEvents -> DedupeEvents -> WindowByArrival
         -> WritePartitionedParquet                                     (streaming)
    Read -> DecodeToPartitions (VerifyAndDecode, NormalizeEvents and a batch per
         partition, fused) -> WriteDedupedPartitions (RewritePartitions: group by
         partition, dedupe, write; the transform compaction runs too)                (batch)
    (each stage's dead_letter output) -> FlattenDeadLetters -> WindowDeadLetters -> WriteDeadLetters

Entry points: ``python -m pipeline.main [options]`` and ``canvas-events run [options]``
(which calls ``run``). Options are ``pipeline.options.CanvasEventsOptions`` plus every
standard Beam option. Bad options end with a one-line error on stderr and exit status 2
before any graph is built. Step labels are part of the Dataflow update contract: never
rename them once released.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.pvalue import PCollection
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.utils.timestamp import Timestamp

from pipeline.options import (
    CanvasEventsOptions,
    CompactOptions,
    is_local_runner,
    is_streaming,
    preflight,
    preflight_io,
    replay_processes,
    verifier_settings,
)
from pipeline.transforms.common import DEAD_LETTER, METRICS_NAMESPACE, REJECTED_PREFIX
from pipeline.transforms.dedupe import DedupeEvents
from pipeline.transforms.held_acks import (
    AckLedger,
    AcknowledgeWritten,
    install_holding_reader,
    run_until_stopped,
)
from pipeline.transforms.normalize import NormalizeEvents
from pipeline.transforms.read import ReadDeliveryFiles, ReadPubSubDeliveries
from pipeline.transforms.verify import VerifyAndDecode
from pipeline.transforms.window import WindowByArrival
from pipeline.transforms.replay import BATCHES, DecodeToPartitions
from pipeline.transforms.write import RewritePartitions, WriteDeadLetters, WritePartitionedParquet
from pipeline.workers import close_shared_pool

__all__ = ["build_pipeline", "run", "preflight", "summarize_metrics"]

PROG = "canvas-events run"
EXIT_BAD_OPTIONS = 2
SUMMARY_ORDER = (
    "deliveries_read", "events_decoded", "events_verified", "rows_normalized",
    "duplicates_dropped", "rows_written", "files_written", "dead_letters_written",
)


def build_pipeline(
    p: beam.Pipeline,
    options: PipelineOptions,
    *,
    deliveries: PCollection | None = None,
    arrival: Timestamp | None = None,
    ack_ledger: "AckLedger | None" = None,
) -> dict[str, PCollection]:
    """Add the whole graph to ``p``; return its PCollections for tests.

    Keys: ``deliveries``, ``events``, ``rows`` (streaming: ``schemas.events.Row`` after dedupe,
    global window, ``pipeline.core.rows.row_dict`` gives a dict; batch: both are the
    ``((partition, start, end), Arrow IPC)`` batches of ``DecodeToPartitions``, which the
    writer merges and dedupes),
    ``dead_letters`` (records, flattened), ``files`` (Parquet paths written) and
    ``dead_letter_files``. ``deliveries`` replaces the source (tests feed a TestStream of
    ``Delivery``, already timestamped); ``arrival`` fixes the stamp of a file replay.
    """
    o = options.view_as(CanvasEventsOptions)
    if deliveries is None:
        if o.input_subscription:
            deliveries = p | "ReadPubSub" >> ReadPubSubDeliveries(
                o.input_subscription, stamped_on_pull=ack_ledger is not None)
        else:
            deliveries = p | "ReadFiles" >> ReadDeliveryFiles(o.input_files, arrival)
    if deliveries.is_bounded:
        processes = replay_processes(options)
        # Batch: verify, decode, normalize and batch per partition in one step, then one
        # shuffle groups by partition, drops repeated dedupe keys and writes.
        decoded = deliveries | "DecodeToPartitions" >> DecodeToPartitions(
            verifier_settings(options), allow_unsigned=o.allow_unsigned is True,
            window_seconds=o.window_seconds, pii=o.pii, pii_salt=o.pii_salt, processes=processes)
        events = rows = decoded[BATCHES]
        files = rows | "WriteDedupedPartitions" >> RewritePartitions(o.output, processes=processes)
        dead_letters = decoded[DEAD_LETTER]
    else:
        decoded = deliveries | "VerifyAndDecode" >> VerifyAndDecode(
            verifier_settings(options), allow_unsigned=o.allow_unsigned is True)
        events = decoded.events
        normalized = events | "NormalizeEvents" >> NormalizeEvents(o.pii, o.pii_salt)
        rows = normalized.rows | "DedupeEvents" >> DedupeEvents(o.dedupe_ttl_seconds)
        files = (
            rows
            | "WindowRows" >> WindowByArrival(o.window_seconds)
            | "WritePartitionedParquet" >> WritePartitionedParquet(o.output)
        )
        dead_letters = (
            (decoded[DEAD_LETTER], normalized[DEAD_LETTER])
            | "FlattenDeadLetters" >> beam.Flatten()
        )
    dead_letter_files = (
        dead_letters
        | "WindowDeadLetters" >> WindowByArrival(o.window_seconds)
        | "WriteDeadLetters" >> WriteDeadLetters(o.dead_letter_output)
    )
    collections = {
        "deliveries": deliveries,
        "events": events,
        "rows": rows,
        "dead_letters": dead_letters,
        "files": files,
        "dead_letter_files": dead_letter_files,
    }
    if ack_ledger is not None:
        collections["acknowledged"] = (
            (files, dead_letter_files, deliveries)
            | "AcknowledgeWritten" >> AcknowledgeWritten(ack_ledger.subscription, o.window_seconds))
    return collections


def summarize_metrics(result: PipelineResult) -> dict[str, int]:
    """This run's counters (namespace ``canvas_events``), committed values where the runner has them."""
    totals: dict[str, int] = {}
    for metric in result.metrics().query()["counters"]:
        if metric.key.metric.namespace != METRICS_NAMESPACE:
            continue
        value = metric.committed if metric.committed is not None else metric.attempted
        name = metric.key.metric.name
        totals[name] = totals.get(name, 0) + int(value or 0)
    return totals


def format_summary(totals: dict[str, int], seconds: float) -> str:
    names = [n for n in SUMMARY_ORDER] + sorted(n for n in totals if n.startswith(REJECTED_PREFIX))
    width = max(len(n) for n in names)
    lines = [f"{'counter':<{width}}  {'value':>10}"]
    lines += [f"{name:<{width}}  {totals.get(name, 0):>10}" for name in names]
    read = totals.get("deliveries_read", 0)
    lines.append(f"{'seconds':<{width}}  {seconds:>10.1f}")
    if seconds > 0:
        lines.append(f"{'deliveries/s':<{width}}  {read / seconds:>10.0f}")
    return "\n".join(lines)


def help_text() -> str:
    """Usage of ``canvas-events run``: this pipeline's options (standard Beam options also apply)."""
    parser = argparse.ArgumentParser(
        prog=PROG, add_help=False,
        description="Canvas Live Events -> verified, normalized, deduplicated, hive-partitioned Parquet.",
        epilog="Every standard Apache Beam option is accepted too (--runner, --project, --region, "
               "--temp_location, --streaming, ...).")
    CanvasEventsOptions._add_argparse_args(parser)
    CompactOptions._add_argparse_args(parser)
    return parser.format_help()


def _fail(errors: Sequence[str]) -> int:
    print(f"{PROG}: error: {'; '.join(errors)}", file=sys.stderr)
    return EXIT_BAD_OPTIONS


def run(argv: Sequence[str] | None = None) -> int:
    """Check the options, build and run the pipeline. Returns the process exit status.

    2: bad options (one line on stderr). Batch runs wait and print a counter summary to
    stderr (0 when the run succeeded, 1 otherwise). Streaming runs on the local runners
    block until SIGINT/SIGTERM, then write every open window and return 0
    (``held_acks.run_until_stopped``); on Dataflow this returns once the job is submitted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--help" in argv or "-h" in argv:
        print(help_text())
        return 0
    options = PipelineOptions(argv)
    errors = preflight(options) or preflight_io(options)
    if errors:
        return _fail(errors)
    streaming = is_streaming(options)
    if streaming:
        options.view_as(StandardOptions).streaming = True
    runner = str(options.view_as(StandardOptions).runner or "")

    if not streaming:
        logging.getLogger("pipeline").setLevel(logging.INFO)  # progress lines of long replays
    started = time.monotonic()
    pipeline = beam.Pipeline(options=options)
    ledger = None
    subscription = options.view_as(CanvasEventsOptions).input_subscription
    if streaming and subscription and is_local_runner(runner):
        # The local runner acknowledges on pull; read through a ledger that acknowledges after the write.
        install_holding_reader()
        ledger = AckLedger(subscription)
    try:
        build_pipeline(pipeline, options, ack_ledger=ledger)
        result = pipeline.run()
    except BaseException:
        if ledger is not None:
            ledger.close()
        raise
    if ledger is not None:
        return run_until_stopped(result, ledger)
    if result is None or "dataflow" in runner.lower():
        # Dataflow (incl. --dry_run): the job runs remotely; the launcher must not wait.
        job_id = getattr(result, "job_id", lambda: None)() if result is not None else None
        if job_id:
            print(f"{PROG}: submitted Dataflow job {job_id}", file=sys.stderr)
        return 0
    try:
        state = result.wait_until_finish()
    finally:
        close_shared_pool()  # the batch replay's worker processes, if it started them
    if not streaming:
        try:
            print(format_summary(summarize_metrics(result), time.monotonic() - started), file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a runner without metrics must not fail a good run
            logging.getLogger(__name__).warning("no metrics summary: %s", exc)
    return 0 if state == PipelineState.DONE else 1


if __name__ == "__main__":
    sys.exit(run())
