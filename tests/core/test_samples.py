"""The vendored samples/ copy equals the shared corpus it was taken from (when that is present)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.samples import FORMATS, VENDORED, shared_corpus_dir

SHARED = shared_corpus_dir()


def _entries(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@pytest.mark.skipif(SHARED is None, reason="no shared corpus beside the repository")
@pytest.mark.parametrize("fmt", FORMATS)
def test_vendored_samples_equal_the_shared_corpus(fmt: str) -> None:
    assert SHARED is not None
    vendored = _entries(VENDORED / f"{fmt}.jsonl")
    shared = _entries(SHARED / f"{fmt}.jsonl")
    assert len(vendored) == len(shared) == {"canvas": 130, "caliper": 71}[fmt]
    key = lambda e: (e["doc_name"], e["example_index"])  # noqa: E731
    assert [key(e) for e in vendored] == [key(e) for e in shared]
    for ours, theirs in zip(vendored, shared):
        assert ours["payload"] == theirs["payload"], key(ours)
        assert ours["source_file"] == theirs["source_file"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_vendored_samples_are_there(fmt: str) -> None:
    """A plain clone (no shared corpus) still has the samples the demo and tests need."""
    entries = _entries(VENDORED / f"{fmt}.jsonl")
    assert entries and all({"doc_name", "example_index", "payload"} <= set(e) for e in entries)
