"""`canvas-events report`: a health report of the lake, as one self-contained HTML page and JSON.

Three parts, kept apart: ``lake`` reads (local or gs://), ``figures`` computes (pure, from
Arrow tables), ``render`` draws the HTML (pure). ``run_report`` wires them for the command line.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import orjson

USAGE_ERROR = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, metavar="DIR_OR_GS",
                        help="the pipeline's --output: directory or gs:// prefix of the Parquet files")
    parser.add_argument("--dead_letter_output", default=None, metavar="DIR_OR_GS",
                        help="the pipeline's --dead_letter_output (default: none, no dead-letter figures)")
    parser.add_argument("--days", type=int, default=14,
                        help="UTC days to cover, ending at the newest day present; 0 = every day (default: 14)")
    parser.add_argument("--html", required=True, metavar="FILE", help="where to write the HTML page")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON (default: no)")


def build_figures(output: str, dead_letter_output: str | None, days: int, now: datetime) -> dict[str, Any]:
    from pipeline.report.figures import compute_figures, summarize_partition, window
    from pipeline.report.lake import list_parquet, read_dead_letters, read_partition_fresh

    listed = list_parquet(output)
    covered = window((f.event_date for f in listed), days)
    by_partition: dict[tuple[str, str], list] = {}
    for f in listed:
        if covered and covered[0] <= f.event_date <= covered[1]:
            by_partition.setdefault((f.event_date, f.event_name), []).append(f)
    # One partition in memory at a time: each is summarized as soon as it is read.
    partitions, files = [], []
    for key, partition_files in sorted(by_partition.items()):
        table, partition_files = read_partition_fresh(output, key, partition_files)
        partitions.append(summarize_partition(*key, table))
        files += partition_files
    dead = read_dead_letters(dead_letter_output) if dead_letter_output else []
    figures = compute_figures(partitions, files, dead, days=days, now=now)
    figures["source"] = {"output": output, "dead_letter_output": dead_letter_output}
    return figures


def write_report(figures: dict[str, Any], html_path: str, json_path: str | None) -> None:
    from pipeline.report.render import render_html

    Path(html_path).parent.mkdir(parents=True, exist_ok=True)
    Path(html_path).write_text(render_html(figures), encoding="utf-8")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2) + b"\n")


def run_report(args: argparse.Namespace, now: datetime | None = None) -> int:
    """Exit 0 when the report was written, 1 when the lake could not be read, 2 on bad options."""
    from pipeline.report.lake import LakeError

    if args.days < 0:
        print("canvas-events report: --days must be 0 (every day) or more", file=sys.stderr)
        return USAGE_ERROR
    try:
        figures = build_figures(args.output, args.dead_letter_output, args.days, now or datetime.now(timezone.utc))
    except LakeError as exc:
        print(f"canvas-events report: {exc}", file=sys.stderr)
        return 1
    try:
        write_report(figures, args.html, args.json)
    except OSError as exc:
        print(f"canvas-events report: cannot write the report: {exc}", file=sys.stderr)
        return USAGE_ERROR
    t = figures["totals"]
    print(f"report: {args.html} ({t['rows']} rows, {t['distinct_events']} distinct events, "
          f"{t['dead_letters']} dead letters, {len(figures['gaps']['hours'])} gap hours)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="canvas-events report", description=__doc__)
    add_arguments(parser)
    return run_report(parser.parse_args(argv))
