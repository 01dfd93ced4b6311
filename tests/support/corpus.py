"""The documentation corpus for tests: devkit.samples, or a skip naming the missing folder.

Tests read Instructure's examples where they are (``../shared/canvas-events``); on a clone
without them each test module that needs them is skipped with one line saying which folder is
missing. Module level (``SAMPLES = corpus_entries()``) and inside a test both work.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from devkit import samples
from pipeline.core.decode import split_events
from pipeline.core.normalize import normalize
from pipeline.core.rows import row_dict


def corpus_entries(fmt: str | None = None) -> list[dict[str, Any]]:
    """The corpus entries (see devkit.samples.iter_samples), or skip."""
    try:
        return list(samples.iter_samples(fmt))
    except samples.CorpusMissing as exc:
        pytest.skip(str(exc), allow_module_level=True)


def corpus_payloads(fmt: str | None = None) -> list[dict[str, Any]]:
    """Just the payloads, in corpus order, or skip."""
    return [entry["payload"] for entry in corpus_entries(fmt)]


def shared_folder(name: str) -> Path:
    """``../shared/<name>`` (e.g. ``third-party-events``), or skip naming the missing folder."""
    try:
        return samples.shared_folder(name)
    except samples.CorpusMissing as exc:
        pytest.skip(str(exc), allow_module_level=True)


def corpus_row(fmt: str, doc_name: str, index: int = 0) -> dict[str, Any]:
    """The normalized row of one corpus example (its first event), found by format and name."""
    for sample in corpus_entries(fmt):
        if (sample["doc_name"], sample["example_index"]) == (doc_name, index):
            return row_dict(normalize(split_events(copy.deepcopy(sample["payload"]), signed=False)[0]))
    raise LookupError((fmt, doc_name, index))
