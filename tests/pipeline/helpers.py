"""Shared by the pipeline tests: signed corpus lines, expected event keys, reading outputs back."""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import duckdb

from devkit.emulators import wait_until
from devkit.signing import DemoSigner
from pipeline.core.decode import decode_delivery
from pipeline.core.identity import dedupe_key
from pipeline.core.normalize import normalize
from tests.support.corpus import corpus_payloads  # noqa: F401 - the pipeline tests import it from here


def expected_keys(payloads: Iterable[dict[str, Any]]) -> list[str]:
    """Dedupe keys of every event in ``payloads`` (N per envelope), through the pure core."""
    keys = []
    for payload in payloads:
        for event in decode_delivery(json.dumps(payload).encode(), verifier=None, allow_unsigned=True):
            keys.append(dedupe_key(normalize(event)))
    return keys


def sign(signer: DemoSigner, payload: dict[str, Any], *, iat: int | None = None) -> bytes:
    """A signed delivery; a different ``iat`` gives different token bytes for the same event."""
    claims = dict(payload)
    claims["iss"] = "https://live-events.canvas.instructure.com"
    claims["iat"] = int(time.time()) if iat is None else iat
    return signer.sign(claims)


def query(sql: str) -> list[tuple[Any, ...]]:
    return duckdb.sql(sql).fetchall()


def parquet_glob(out: Path | str) -> str:
    return f"{out}/**/*.parquet"


def counts_by_event_name(out: Path | str) -> dict[str, int]:
    rows = query(f"select event_name, count(*) from read_parquet('{parquet_glob(out)}', hive_partitioning=true) "
                 "group by 1")
    return {name: count for name, count in rows}


def output_keys(out: Path | str) -> list[str]:
    """dedupe_key of every row in the Parquet output (duplicates kept, so a test can see them)."""
    rows = query(f"select request_id, job_id, event_id from read_parquet('{parquet_glob(out)}', "
                 "hive_partitioning=true)")
    return [dedupe_key({"request_id": r, "job_id": j, "event_id": e}) for r, j, e in rows]


def dead_letters(directory: Path | str) -> list[dict[str, Any]]:
    records = []
    for path in sorted(Path(directory).rglob("*.jsonl")):
        if not path.name.startswith("."):
            records += [json.loads(line) for line in path.read_bytes().splitlines() if line]
    return records


def payload_of(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["payload"], validate=True)


def all_files(*directories: Path | str) -> list[Path]:
    return [p for d in directories if Path(d).exists() for p in Path(d).rglob("*") if p.is_file()]


def temp_files(*directories: Path | str) -> list[Path]:
    return [p for p in all_files(*directories) if p.name.startswith(".")]


def wait_for(condition: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll ``condition`` until truthy (returned) or fail the test after ``timeout`` seconds."""
    try:
        return wait_until(condition, timeout=timeout, what=what, interval=interval)
    except TimeoutError as exc:
        raise AssertionError(str(exc)) from None


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
