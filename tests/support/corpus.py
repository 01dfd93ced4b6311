"""The documentation corpus for tests: devkit.samples, or a skip naming the missing folder.

Tests read Instructure's examples where they are (``../shared/canvas-events``); on a clone
without them each test module that needs them is skipped with one line saying which folder is
missing. Module level (``SAMPLES = corpus_entries()``) and inside a test both work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devkit import samples


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
