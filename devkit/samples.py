"""Load Instructure's documented example payloads, read where they are: ``../shared/canvas-events``.

The repository holds no copy of them. The contract tests read them beside the repository (CI and
every development machine have ``../shared``), or from ``$CANVAS_EVENTS_CORPUS`` when set; on a
clone without them, :class:`CorpusMissing` names the folder that is missing (the tests turn it
into a skip). The demo and the benchmarks use generated deliveries (``devkit.deliveries``) instead.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
FORMATS = ("canvas", "caliper")


class CorpusMissing(FileNotFoundError):
    """The documentation corpus is not beside the repository (a plain clone)."""


def shared_folder(name: str) -> Path:
    """``../shared/<name>`` beside the repository (e.g. ``third-party-events``); CorpusMissing when absent."""
    path = SHARED / name
    if not path.is_dir():
        raise CorpusMissing(f"{path} is missing (shared test data beside the repository)")
    return path


def corpus_dir() -> Path:
    """Directory holding ``canvas.jsonl`` and ``caliper.jsonl``; CorpusMissing when there is none."""
    base = Path(os.environ["CANVAS_EVENTS_CORPUS"]) if os.environ.get("CANVAS_EVENTS_CORPUS") else SHARED / "canvas-events"
    path = base / "payloads"
    if not all((path / f"{fmt}.jsonl").is_file() for fmt in FORMATS):
        raise CorpusMissing(f"{base} is missing (Instructure's documented examples; see devkit/samples.py)")
    return path


def iter_samples(fmt: str | None = None) -> Iterator[dict[str, Any]]:
    """Yield corpus entries ``{doc_name, source_file, example_index, description, payload, format}``."""
    base = corpus_dir()
    for name in FORMATS if fmt is None else (fmt,):
        with open(base / f"{name}.jsonl", encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    entry = json.loads(line)
                    entry["format"] = name
                    yield entry


def sample_payloads(fmt: str | None = None) -> list[dict[str, Any]]:
    """Just the payloads (Canvas events or Caliper envelopes), in corpus order."""
    return [entry["payload"] for entry in iter_samples(fmt)]
