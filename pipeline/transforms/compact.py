"""``canvas-events compact`` as a Beam pipeline (Dataflow for big lakes).

The launcher (or the local process) lists the output and plans once
(``pipeline.core.compaction``); each partition to compact becomes one input of
``RewritePartitions`` (``pipeline.transforms.write``), the transform the batch replay
writes with: group by partition, drop repeated dedupe keys, write. For a compaction plan it
runs ``pipeline.compact.compact_partition``: the same read -> keep the first-received copy
per dedupe key -> write sorted, sized files -> delete exactly the files read, in that order,
as the in-process run. Every attempt names its files with a run id of its own: a retried
bundle must never overwrite an earlier attempt's complete files, because that attempt may
already have deleted some of the old files (the retry then reads fewer rows). A retry can
leave an earlier attempt's files beside its own; those are duplicates, never a gap, and the
next compaction folds them.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from pipeline.compact import COUNTERS, MB, PROG, CompactArgs, plan
from pipeline.transforms.common import METRICS_NAMESPACE
from pipeline.transforms.write import RewritePartitions, fold_element

log = logging.getLogger(__name__)


class CompactPartitions(beam.PTransform):
    """Partition plans -> each partition compacted by ``RewritePartitions``; output: the paths written."""

    def __init__(self, output: str, target_bytes: int):
        super().__init__()
        self.output = output
        self.target_bytes = target_bytes

    def expand(self, plans: beam.PCollection) -> beam.PCollection:
        return (
            plans
            | "FoldPartition" >> beam.Map(fold_element)
            | "RewritePartitions" >> RewritePartitions(self.output, target_file_bytes=self.target_bytes)
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


