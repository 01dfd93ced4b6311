"""Helpers of the lake tests: the days of a small synthetic lake, and what DuckDB and a reader see of it."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from datetime import date
from pathlib import Path

OLD_DAYS = (date(2024, 1, 1), date(2024, 1, 2))


def duckdb_counts(glob: str) -> tuple[int, int]:
    """(rows, distinct event ids) of the Parquet files under ``glob``, hive-partitioned."""
    import duckdb
    return duckdb.sql(f"select count(*), count(distinct event_id) from read_parquet('{glob}', "
                      "hive_partitioning=true)").fetchall()[0]


def visible_files(root: Path) -> list[Path]:
    """The Parquet files a reader sees (not hidden ``.``/``_`` names)."""
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))


def kill_after_progress(proc: subprocess.Popen, rng: random.Random, partitions: int, max_delay: float) -> bool:
    """kill -9 a running compaction at a random moment: after a random number of its
    ``partitions`` are done (each finished partition prints a ``[`` line on stderr), then a
    random delay up to ``max_delay`` into the next one. Returns whether it died of the kill
    (False: it finished first). Closes its stderr."""
    after, seen = rng.randrange(partitions), 0
    while seen <= after:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line.startswith(b"[")
    if proc.poll() is None:
        time.sleep(rng.uniform(0.0, max_delay))  # somewhere inside the next partition: read, write or delete
        os.kill(proc.pid, signal.SIGKILL)
    killed = proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    return killed
