"""Fixtures of the lake tests: small synthetic lakes, and Beam's gcsio made anonymous."""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Iterator

import pytest
from apache_beam.internal.gcp import auth as beam_auth


@pytest.fixture
def anonymous_gcs() -> Iterator[None]:
    """Beam's gcsio would look for Google credentials for ~17 s first (STACK.md trap 8)."""
    cache = beam_auth._Credentials
    saved = (cache._credentials_init, cache._credentials)
    cache._credentials_init, cache._credentials = True, None
    try:
        yield
    finally:
        cache._credentials_init, cache._credentials = saved


OLD_DAYS = (date(2024, 1, 1), date(2024, 1, 2))


def duckdb_counts(glob: str) -> tuple[int, int]:
    import duckdb
    return duckdb.sql(f"select count(*), count(distinct event_id) from read_parquet('{glob}', "
                      "hive_partitioning=true)").fetchall()[0]


def visible_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith((".", "_")))
