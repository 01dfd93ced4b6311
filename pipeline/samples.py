"""Locate and load the example-payload corpus (Instructure's documented Live Events).

The contract tests read the shared corpus beside the repository (``../shared/canvas-events``)
when it is there, else ``$CANVAS_EVENTS_CORPUS``, else the copy vendored in ``samples/``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
VENDORED = REPO_ROOT / "samples"
FORMATS = ("canvas", "caliper")


def corpus_dir() -> Path:
    """Directory holding ``canvas.jsonl`` and ``caliper.jsonl``."""
    candidates = []
    if os.environ.get("CANVAS_EVENTS_CORPUS"):
        candidates.append(Path(os.environ["CANVAS_EVENTS_CORPUS"]) / "payloads")
    candidates += [REPO_ROOT.parent / "shared" / "canvas-events" / "payloads", VENDORED]
    for path in candidates:
        if all((path / f"{fmt}.jsonl").is_file() for fmt in FORMATS):
            return path
    raise FileNotFoundError(f"no example corpus in any of: {', '.join(map(str, candidates))}")


def shared_corpus_dir() -> Path | None:
    """The shared corpus beside the repository, if present (None on a plain clone)."""
    path = REPO_ROOT.parent / "shared" / "canvas-events" / "payloads"
    return path if (path / "canvas.jsonl").is_file() else None


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
