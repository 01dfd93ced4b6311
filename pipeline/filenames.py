"""The names of the files the writers produce: deterministic within a run, unique to it.

Names come from (window, pane, shard) and a run id fixed when the graph is built, so a
retried write overwrites its own file instead of duplicating it and a second run never
replaces the first run's files (STACK.md trap 12). Temp names are dot-prefixed, so
readers skip a file until its rename.
"""
from __future__ import annotations

import uuid

from pipeline.core.timestamps import utc_strftime

RUN_ID_HEX_CHARS = 12
TEMP_PREFIX = ".tmp-"  # dot-prefixed: BigQuery, DuckDB and Hive readers skip it


def _stamp(micros: int) -> str:
    return utc_strftime(micros, "%Y%m%dT%H%M%SZ")


def new_run_id() -> str:
    """A short id unique to one run (one job), put in every file name it writes."""
    return uuid.uuid4().hex[:RUN_ID_HEX_CHARS]


def part_file_name(window_start_micros: int, window_end_micros: int, pane_index: int, shard_index: int,
                   extension: str = ".parquet", run_id: str = "") -> str:
    """``part-<start>-<end>-p<pane>-s<shard>-<run><ext>``, times as UTC ``YYYYMMDDTHHMMSSZ``.

    Within one run the name depends only on the window, the pane and the shard, so a
    retried bundle writes the same name and overwrites its earlier attempt instead of
    adding a duplicate file. ``run_id`` (fixed when the graph is built) keeps two runs that
    write the same window (two replays, a restarted stream) from replacing each other's files.
    """
    run = f"-{run_id}" if run_id else ""
    return (f"part-{_stamp(window_start_micros)}-{_stamp(window_end_micros)}"
            f"-p{pane_index}-s{shard_index:03d}{run}{extension}")


def temp_name_for(final_name: str, attempt: str) -> str:
    """Dot-prefixed temp name in the same directory; ``attempt`` keeps concurrent attempts apart."""
    return f"{TEMP_PREFIX}{final_name}.{attempt}"


def window_date(window_start_micros: int) -> str:
    """UTC date (YYYY-MM-DD) of a window start: the dead-letter directory of that window."""
    return utc_strftime(window_start_micros, "%Y-%m-%d")
