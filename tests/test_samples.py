"""devkit.samples / tests.support.corpus: shared test data read beside the repository, or a one-line skip."""
from __future__ import annotations

from pathlib import Path

import pytest

from devkit import samples
from tests.support import corpus


def test_missing_shared_data_is_a_skip_naming_the_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert corpus.shared_folder("third-party-events").is_dir()  # present here and on CI
    monkeypatch.setattr(samples, "SHARED", tmp_path / "shared")
    monkeypatch.setenv("CANVAS_EVENTS_CORPUS", str(tmp_path / "shared" / "canvas-events"))
    for load in (lambda: corpus.shared_folder("third-party-events"), corpus.corpus_entries):
        with pytest.raises(pytest.skip.Exception, match=r"shared/(third-party-events|canvas-events) is missing"):
            load()
