"""CompactPartitions: ``canvas-events compact`` as a Beam pipeline (Dataflow for big lakes).

The launcher (or the local process) lists the output and plans once
(``pipeline.core.compaction``); each partition to compact is one element, spread over the
workers by a Reshuffle, and compacted by ``pipeline.compact.compact_partition``: the same
read -> keep the first-received copy per dedupe key -> write sorted, sized files -> delete
exactly the files read, in that order, as the in-process run. Every attempt names its files
with a run id of its own: a retried bundle must never overwrite an earlier attempt's complete
files, because that attempt may already have deleted some of the old files (the retry then
reads fewer rows). A retry can leave an earlier attempt's files beside its own; those are
duplicates, never a gap, and the next compaction folds them.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterator, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from pipeline.compact import MB, PROG, CompactArgs, compact_partition, plan, progress_line
from pipeline.core.compaction import PartitionPlan
from pipeline.filenames import new_run_id
from pipeline.transforms.common import METRICS_NAMESPACE, counter

log = logging.getLogger(__name__)
COUNTERS = ("partitions_compacted", "files_before", "files_after", "rows_read", "rows_written",
            "duplicates_removed", "unreadable_files")


class _CompactPartitionFn(beam.DoFn):
    def __init__(self, output: str, target_bytes: int):
        self._output = output
        self._target = target_bytes

    def setup(self) -> None:
        self._counters = {name: counter(name) for name in COUNTERS}

    def process(self, partition_plan: PartitionPlan) -> Iterator[str]:
        r = compact_partition(self._output, partition_plan, new_run_id(), self._target)  # one id per attempt
        print(f"{PROG}: {progress_line(r)}", file=sys.stderr, flush=True)  # worker logs on Dataflow
        for name, value in (("partitions_compacted", 1 if r.rows_written else 0),
                            ("files_before", r.files_before), ("files_after", r.files_after),
                            ("rows_read", r.rows_read), ("rows_written", r.rows_written),
                            ("duplicates_removed", r.duplicates), ("unreadable_files", len(r.unreadable))):
            self._counters[name].inc(value)
        yield progress_line(r)


class CompactPartitions(beam.PTransform):
    """Partition plans -> each partition compacted; output: one progress line per partition."""

    def __init__(self, output: str, target_bytes: int):
        super().__init__()
        self.output = output
        self.target_bytes = target_bytes

    def expand(self, plans: beam.PCollection) -> beam.PCollection:
        return (
            plans
            | "SpreadPartitions" >> beam.Reshuffle()
            | "CompactPartition" >> beam.ParDo(_CompactPartitionFn(self.output, self.target_bytes))
        )


def run_beam(args: CompactArgs, beam_args: Sequence[str]) -> int:
    """Plan here, compact on the runner. Dataflow: returns once the job is submitted."""
    started = time.monotonic()
    plans, _ = plan(args)
    todo = [p for p in plans if not p.compact]
    print(f"{PROG}: {len(plans)} partition(s) in scope, {len(todo)} to compact", file=sys.stderr, flush=True)
    options = PipelineOptions(list(beam_args))
    runner = str(options.view_as(StandardOptions).runner or "")
    pipeline = beam.Pipeline(options=options)
    _ = (pipeline
         | "Plans" >> beam.Create(todo)
         | "CompactPartitions" >> CompactPartitions(args.output, args.target_file_mb * MB))
    result = pipeline.run()
    if "dataflow" in runner.lower():
        job_id = getattr(result, "job_id", lambda: None)() if result is not None else None
        if job_id:
            print(f"{PROG}: submitted Dataflow job {job_id}", file=sys.stderr)
        return 0
    state = result.wait_until_finish()
    totals = {name: 0 for name in COUNTERS}
    try:
        for metric in result.metrics().query()["counters"]:
            if metric.key.metric.namespace == METRICS_NAMESPACE and metric.key.metric.name in totals:
                value = metric.committed if metric.committed is not None else metric.attempted
                totals[metric.key.metric.name] += int(value or 0)
    except Exception as exc:  # noqa: BLE001 - a runner without metrics must not fail a good run
        log.warning("no metrics summary: %s", exc)
    totals_line = {"partitions": len(plans), **totals, "seconds": round(time.monotonic() - started, 1)}
    width = max(len(k) for k in totals_line)
    print("\n".join(f"{k:<{width}}  {v:>10}" for k, v in totals_line.items()), file=sys.stderr)
    if state != PipelineState.DONE:
        return 1
    return 1 if totals["unreadable_files"] else 0


