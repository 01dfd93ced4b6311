"""Helpers of the lake tests: the days of a small synthetic lake, and what DuckDB and a reader see of it."""
from __future__ import annotations

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
