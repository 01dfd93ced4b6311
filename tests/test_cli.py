"""`canvas-events` as a user runs it: the installed console script, in a subprocess."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.corpus import corpus_entries
from devkit.signing import DemoSigner
from schemas.events import ROW_COLUMNS

CLI = shutil.which("canvas-events", path=str(Path(sys.executable).parent)) or "canvas-events"


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], input=stdin, capture_output=True, timeout=120)


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus_lines() -> list[bytes]:
    return [json.dumps(entry["payload"]).encode() for entry in corpus_entries()]


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert b"normalize" in result.stdout and b"run" in result.stdout


def test_unsigned_corpus_normalizes_every_event(corpus_lines):
    result = run_cli("normalize", "--allow_unsigned", stdin=b"\n".join(corpus_lines) + b"\n")
    assert result.returncode == 0, result.stderr.decode()[:2000]
    assert result.stderr == b""
    rows = jsonl(result.stdout)
    assert len(rows) == len(corpus_lines)  # every corpus envelope holds exactly one event
    for row in rows:
        assert set(row) == set(ROW_COLUMNS)
        assert row["signed"] is False and row["kid"] is None
        assert row["event_time"].endswith("Z")
        assert datetime.fromisoformat(row["event_time"]).utcoffset().total_seconds() == 0
    formats = {row["source_format"] for row in rows}
    assert formats == {"canvas", "caliper"}


def test_signed_deliveries_verify_against_a_jwks_file(corpus_lines, signer, jwks_file, tmp_path):
    tokens = [signer.sign(json.loads(line)) for line in corpus_lines[:20]]
    deliveries = tmp_path / "signed.jsonl"
    deliveries.write_bytes(b"\n".join(tokens) + b"\n")
    result = run_cli("normalize", f"--jwks_url={jwks_file}", str(deliveries))
    assert result.returncode == 0, result.stderr.decode()[:2000]
    rows = jsonl(result.stdout)
    assert len(rows) == 20
    assert all(row["signed"] is True and row["kid"] == signer.kid for row in rows)


def test_rejections_go_to_stderr_with_line_numbers_and_exit_1(corpus_lines, signer, jwks_file):
    forger = DemoSigner(kid=signer.kid)  # same kid, different key: a forgery
    good = signer.sign(json.loads(corpus_lines[0]))
    forged = forger.sign(json.loads(corpus_lines[1]))
    lines = [good, b"not json, not a jwt", forged, corpus_lines[2], b"{broken json"]
    result = run_cli("normalize", f"--jwks_url={jwks_file}", stdin=b"\n".join(lines) + b"\n")
    assert result.returncode == 1
    assert len(jsonl(result.stdout)) == 1
    errors = jsonl(result.stderr)
    assert [(e["line"], e["error_type"]) for e in errors] == [
        (2, "unknown_format"),
        (3, "bad_signature"),
        (4, "unsigned_not_allowed"),
        (5, "unsigned_not_allowed"),
    ]
    assert all(e["message"] for e in errors)
    # the forged token must never be echoed back
    assert forged.decode() not in result.stderr.decode()


def test_bad_event_time_is_a_rejection_not_a_crash(corpus_lines):
    event = json.loads(corpus_lines[0])
    event["metadata"]["event_time"] = "019-11-01T19:11:01.163Z"
    result = run_cli("normalize", "--allow_unsigned", stdin=json.dumps(event).encode())
    assert result.returncode == 1
    [error] = jsonl(result.stderr)
    assert error["error_type"] == "bad_timestamp" and error["line"] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("normalize",),                                            # neither --jwks_url nor --allow_unsigned
        ("normalize", "--jwks_url=/nonexistent/jwks.json"),        # unreadable JWKS
        ("normalize", "--allow_unsigned", "/nonexistent/input"),   # unreadable input
        ("normalize", "--no_such_flag"),
        ("frobnicate",),
    ],
)
def test_usage_errors_exit_2_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert result.stdout == b""
    assert result.stderr.strip()


def test_a_bad_envelope_item_is_its_own_rejection(tmp_path: Path):
    # The mixed envelope: an event (with a Canvas user) and an entity. Through the
    # installed command, with a file argument: one row, one rejection naming data[1].
    envelope = {"sensor": "s", "sendTime": "2019-11-01T00:09:07.000Z", "data": [
        {"id": "urn:uuid:1", "type": "SessionEvent", "action": "LoggedIn",
         "actor": {"id": "urn:instructure:canvas:user:1", "type": "Person"},
         "object": {"id": "https://x.example", "type": "SoftwareApplication"}, "eventTime": "2019-11-01T00:09:06.700Z"},
        {"id": "https://x.example/users/9", "type": "Person"}]}
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(envelope) + "\n")
    result = run_cli("normalize", "--allow_unsigned", str(path))
    assert result.returncode == 1
    [row] = jsonl(result.stdout)
    assert (row["event_name"], row["user_id"], row["sensor"]) == ("logged_in", "1", "s")
    [rejection] = jsonl(result.stderr)
    assert rejection == {"error_type": "missing_field", "item": 1, "line": 1, "file": str(path),
                         "message": rejection["message"]}
    assert rejection["message"].startswith("data[1]: ")
