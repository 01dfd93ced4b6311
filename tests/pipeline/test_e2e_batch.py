"""Batch replay end to end: signed corpus + duplicates + garbage -> Parquet read back by DuckDB.

Runs ``pipeline.main.run`` (the CLI path: options, preflight, graph, summary) on the
DirectRunner over a file of one delivery per line, then checks the output the way a user
would see it: DuckDB over the hive-partitioned files, and the dead-letter JSON lines.
"""
from __future__ import annotations

import copy
import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.core.decode import decode_delivery
from pipeline.core.identity import dedupe_key
from pipeline.core.partition import safe_name
from pipeline.main import run
from devkit.signing import DemoSigner
from tests.pipeline.helpers import (
    corpus_payloads,
    counts_by_event_name,
    dead_letters,
    output_keys,
    payload_of,
    query,
    sign,
    temp_files,
)
from tests.support.rows import normalized


def _events(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [normalized(e) for e in decode_delivery(json.dumps(payload).encode(), verifier=None, allow_unsigned=True)]


def _two_event_envelope(bad_second: bool) -> dict[str, Any]:
    """A Caliper envelope of two events (the corpus has one per envelope); optionally the
    second with an unparseable eventTime, to dead-letter one event of an envelope."""
    envelope = copy.deepcopy(next(p for p in corpus_payloads() if "data" in p))
    second = copy.deepcopy(envelope["data"][0])
    second["id"] = "urn:uuid:00000000-0000-4000-8000-%012d" % (2 if bad_second else 1)
    if bad_second:
        second["eventTime"] = "yesterday"
    envelope["data"].append(second)
    return envelope


def test_batch_replay_of_signed_corpus(tmp_path: Path, signer: DemoSigner, jwks_file: Path,
                                       capfd: pytest.CaptureFixture[str]) -> None:
    jwks = jwks_file
    stranger = DemoSigner(kid=signer.kid)  # same kid, different key: bad signature
    unknown = DemoSigner(kid="nobody")

    payloads = corpus_payloads()
    good = [sign(signer, p) for p in payloads]
    duplicates = [
        *good[:10],  # byte-identical retries
        *[sign(signer, p, iat=int(time.time()) - 100) for p in payloads[10:30]],  # re-signed: new bytes
    ]
    assert all(d not in good for d in duplicates[10:])
    expired_payload = copy.deepcopy(next(p for p in payloads if "metadata" in p))
    expired_payload["metadata"]["request_id"] = "expired-token-request"
    bad_time = copy.deepcopy(next(p for p in payloads if "metadata" in p))
    bad_time["metadata"]["event_time"] = "not a time"
    two_good, half_bad = _two_event_envelope(False), _two_event_envelope(True)

    garbage = {
        b"garbage": ("VerifyAndDecode", "unknown_format"),
        b"{not json": ("VerifyAndDecode", "unsigned_not_allowed"),  # unsigned input is refused first
        json.dumps(payloads[0]).encode(): ("VerifyAndDecode", "unsigned_not_allowed"),
        b"": ("VerifyAndDecode", "empty_body"),
        b"\xff\xfe binary \x00": ("VerifyAndDecode", "unknown_format"),
        b"a.b.c": ("VerifyAndDecode", "malformed_jwt"),
        sign(stranger, payloads[1]): ("VerifyAndDecode", "bad_signature"),
        sign(unknown, payloads[2]): ("VerifyAndDecode", "unknown_kid"),
        signer.sign({**expired_payload, "exp": int(time.time()) - 3600}): ("VerifyAndDecode", "expired"),
        sign(signer, bad_time): ("NormalizeEvents", "bad_timestamp"),
        (half_bad_raw := sign(signer, half_bad)): ("NormalizeEvents", "bad_timestamp"),  # its good event is written
    }
    lines = good + duplicates + list(garbage) + [sign(signer, two_good)]
    source = tmp_path / "deliveries.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out, dlo = tmp_path / "out", tmp_path / "dead"

    code = run([
        f"--input_files={source}", f"--output={out}", f"--dead_letter_output={dlo}",
        f"--jwks_url={jwks}", "--runner=DirectRunner",
    ])
    stderr = capfd.readouterr().err
    assert code == 0, stderr[-3000:]

    # Rows: exactly the distinct events, per event name, as DuckDB reads them.
    expected_rows = [row for p in payloads + [two_good] for row in _events(p)]
    expected_rows.append(_events(_two_event_envelope(False))[0])  # first event of half_bad
    distinct = {dedupe_key(r): r for r in expected_rows}
    keys = output_keys(out)
    assert Counter(keys) == Counter(set(distinct))
    assert counts_by_event_name(out) == dict(Counter(safe_name(r["event_name"]) for r in distinct.values()))
    signed_kids = query(f"select distinct signed, kid from read_parquet('{out}/**/*.parquet', hive_partitioning=true)")
    assert signed_kids == [(True, signer.kid)]

    # Dead letters: the expected error types, each payload decoding back to its input line.
    records = dead_letters(dlo)
    assert Counter((r["stage"], r["error_type"]) for r in records) == Counter(garbage.values())
    assert Counter(payload_of(r) for r in records) == Counter(list(garbage))
    assert {r["attributes"]["source_file"] for r in records} == {str(source)}
    # only the half-bad envelope's second event is refused by itself: its record names data[1]
    assert Counter(r["item"] for r in records) == Counter({None: len(records) - 1, 1: 1})
    assert [payload_of(r) for r in records if r["item"] == 1] == [half_bad_raw]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["failed_at"]) for r in records)

    # Nothing lost: every input event is a row, a dropped duplicate or a dead letter.
    # One envelope of N events counts N; a delivery rejected before decoding counts 1.
    # (half_bad: its good event is counted with the rows, its bad one is a dead letter.)
    good_events = len(expected_rows)  # corpus + two_good + the good half of half_bad
    duplicate_events = sum(len(_events(p)) for p in payloads[:30])
    inputs = good_events + duplicate_events + len(garbage)
    dropped = int(re.search(r"^duplicates_dropped\s+(\d+)$", stderr, re.M).group(1))
    assert dropped == good_events - len(distinct) + duplicate_events
    assert inputs == len(keys) + dropped + len(records)
    assert re.search(rf"^rows_written\s+{len(keys)}$", stderr, re.M)

    assert not temp_files(out, dlo)


def test_allow_expired_tokens_replays_old_signed_data(tmp_path: Path, signer: DemoSigner, jwks_file: Path) -> None:
    """An operator replaying old signed data relaxes exp explicitly; signatures still count."""
    jwks = jwks_file
    payloads = corpus_payloads()[:3]
    old = [signer.sign({**p, "exp": 1_600_000_000}) for p in payloads]
    forged = signer.sign({**payloads[0], "exp": 1_600_000_000})[:-4] + b"AAAA"
    source = tmp_path / "old.txt"
    source.write_bytes(b"\n".join(old + [forged]) + b"\n")
    out, dlo = tmp_path / "out", tmp_path / "dead"
    assert run([f"--input_files={source}", f"--output={out}", f"--dead_letter_output={dlo}",
                f"--jwks_url={jwks}", "--allow_expired_tokens", "--runner=DirectRunner"]) == 0
    assert sorted(output_keys(out)) == sorted(set(k for p in payloads for k in [dedupe_key(r) for r in _events(p)]))
    assert [r["error_type"] for r in dead_letters(dlo)] == ["bad_signature"]
