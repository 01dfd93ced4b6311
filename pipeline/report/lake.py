"""Read what the report needs from the lake: local directories or gs:// prefixes alike.

Goes through Beam's ``FileSystems`` (the same layer the pipeline writes with), so whatever
the pipeline can write to, the report can read, including the GCS emulator in tests. Only
finished files count: writers use dot-prefixed temp names (``pipeline.filenames.TEMP_PREFIX``),
renamed when complete, and every reader of the lake (BigQuery, DuckDB) skips those too.
Of each Parquet file only the handful of columns the figures use is read, never ``body`` or
``metadata``, and only files of the partitions the report covers; of each dead-letter record only stage, error type and time, never the payload.
"""
from __future__ import annotations

import re
from typing import Iterator

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from pipeline.report.figures import EVENT_COLUMNS, DeadLetter, FileInfo
from schemas.events import FILE_SCHEMA

_PARTITION = re.compile(r"(?:^|/)event_date=(\d{4}-\d\d-\d\d)/event_name=([^/]+)/([^/]+)$")


class LakeError(RuntimeError):
    """The lake could not be read (a missing prefix is not an error: it reads as empty)."""


class VanishedFile(LakeError):
    """A listed file was gone when read: something (compaction, a replay swap) replaced it."""


def _relative(prefix: str, path: str) -> str:
    base = prefix.rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def _finished(relative: str) -> bool:
    return not any(part.startswith(".") for part in relative.split("/"))


def _match(prefix: str, suffix: str, under: str | None = None) -> Iterator[tuple[str, int]]:
    """(path, size) of every finished file under ``prefix`` (or its subdirectory ``under``)
    ending in ``suffix``."""
    root = prefix.rstrip("/") if under is None else FileSystems.join(prefix.rstrip("/"), under)
    pattern = FileSystems.join(root, "**")
    try:
        results = FileSystems.match([pattern])
    except Exception as exc:  # noqa: BLE001 - Beam wraps every backend's error in its own
        if "No files found" in str(exc):  # an empty prefix; a missing bucket or no access is an error
            return
        raise LakeError(f"cannot list {prefix}: {exc}") from exc
    for result in results:
        for meta in result.metadata_list:
            if meta.path.endswith(suffix) and _finished(_relative(prefix, meta.path)):
                yield meta.path, int(meta.size_in_bytes)


def list_parquet(output: str, partition: tuple[str, str] | None = None) -> list[FileInfo]:
    """Every finished Parquet file under ``output`` in a ``event_date=/event_name=`` directory
    (only that partition's, given ``partition`` = (event_date, event_name))."""
    files = []
    under = None if partition is None else f"event_date={partition[0]}/event_name={partition[1]}"
    for path, size in _match(output, ".parquet", under):
        found = _PARTITION.search(_relative(output, path))
        if found:
            files.append(FileInfo(found.group(1), found.group(2), path, size))
    return sorted(files, key=lambda f: f.path)


def _read_bytes(path: str) -> bytes:
    with FileSystems.open(path) as handle:
        return handle.read()


_READ_SCHEMA = pa.schema([FILE_SCHEMA.field(c) for c in EVENT_COLUMNS])


def read_partition(files: list[FileInfo]) -> pa.Table:
    """The report's columns (EVENT_COLUMNS) of the rows in ``files``."""
    tables = []
    for info in files:
        try:
            data = _read_bytes(info.path)
        except Exception as exc:  # noqa: BLE001 - each backend raises its own kind
            if not FileSystems.exists(info.path):
                raise VanishedFile(f"{info.path} was listed but is gone") from exc
            raise LakeError(f"cannot read {info.path}: {exc}") from exc
        try:
            tables.append(pq.read_table(pa.BufferReader(data), columns=list(EVENT_COLUMNS)).cast(_READ_SCHEMA))
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise LakeError(f"cannot read {info.path}: {exc}") from exc
    if not tables:
        return _READ_SCHEMA.empty_table()
    return pa.concat_tables(tables)


def read_partition_fresh(output: str, partition: tuple[str, str], files: list[FileInfo],
                         attempts: int = 3) -> tuple[pa.Table, list[FileInfo]]:
    """Read one partition's files; when a listed file has vanished since the listing (compaction
    replaced it, or a replay was swapped in), list the partition again and read it anew.
    Returns the rows and the files they came from."""
    for attempt in range(1, attempts + 1):
        try:
            return read_partition(files), files
        except VanishedFile:
            if attempt == attempts:
                raise
            files = list_parquet(output, partition)
    raise AssertionError("unreachable")


def read_dead_letters(dead_letter_output: str) -> list[DeadLetter]:
    """Stage, error type and time of every record in the finished JSON-lines files."""
    records = []
    for path, _ in _match(dead_letter_output, ".jsonl"):
        for number, line in enumerate(_read_bytes(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = orjson.loads(line)
                records.append(DeadLetter(str(record["stage"]), str(record["error_type"]), str(record["failed_at"])))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise LakeError(f"{path} line {number} is not a dead-letter record: {exc}") from exc
    return records
