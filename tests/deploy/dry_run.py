"""Run a make target with DRY_RUN=1 and read what it prints: one shell-quoted remote command a line.

Shared by the deploy-target tests (tests/deploy/test_*_targets.py) and the monitoring test.
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKEFILES = ["-f", "Makefile"]
PROJECT, NUMBER, TAG = "my-proj-123", "123456789012", "abc123def456"


@dataclass(frozen=True)
class DryRun:
    lines: list[str]
    commands: list[list[str]]
    workdir: Path


def make(target: str, workdir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    variables = {"DRY_RUN": "1", "RECEIVER_DIST": str(workdir / "dist-receiver"),
                 "DEPLOY_BUILD": str(workdir / "build"), **settings}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *MAKEFILES, target, *(f"{k}={v}" for k, v in variables.items())],
        cwd=REPO, capture_output=True, text=True, timeout=120)


def dry_run(target: str, workdir: Path, **settings: str) -> DryRun:
    proc = make(target, workdir, PROJECT=PROJECT, PROJECT_NUMBER=NUMBER, TAG=TAG, **settings)
    assert proc.returncode == 0, proc.stderr
    # stage-receiver (a local step that runs for real) says where it staged; nothing else is chatter.
    lines = [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("staged ")]
    return DryRun(lines, [shlex.split(line) for line in lines], workdir)


def flags(cmd: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for token in cmd:
        if token.startswith("--"):
            name, _, value = token.partition("=")
            out.setdefault(name, []).append(value)
    return out


def find(run: DryRun, program: str, sub: str) -> list[list[str]]:
    """Commands of ``program`` whose (sub)command words are ``sub``, e.g. "pubsub topics create"."""
    words = sub.split()
    return [c for c in run.commands if c[0] == program and c[1:1 + len(words)] == words]
