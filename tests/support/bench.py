"""Run a bench/ script as a user does (a subprocess from the repository root) for the smoke tests."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 180) -> str:
    """``python bench/<script> ARGS``; fail the test with its stderr unless it exits 0; return its stdout."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                            capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
