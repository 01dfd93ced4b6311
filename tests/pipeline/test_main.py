"""Dedupe, windows, the TTL and late data, with TestStream driving the whole graph.

The stream feeds ``Delivery`` elements straight into ``build_pipeline`` (the source is
swapped for a TestStream), so every stage after Read runs for real, files included.
The DirectRunner's TestStream clock starts at 0, while the dedupe timer is set from the
wall clock, so the stream first advances processing time to "now".
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_stream
from apache_beam.transforms.window import TimestampedValue

from pipeline.core.decode import decode_delivery
from pipeline.core.normalize import normalize
from pipeline.core.partition import partition_path
from pipeline.main import build_pipeline
from pipeline.transforms.common import Delivery
from tests.pipeline.helpers import corpus_payloads, dead_letters, expected_keys, output_keys, temp_files

WINDOW = 60
TTL = 600


def _delivery(payload: dict) -> Delivery:
    return Delivery(json.dumps(payload).encode(), {"origin": "test"}, None)


def _partition_of(payload: dict) -> str:
    event = decode_delivery(json.dumps(payload).encode(), verifier=None, allow_unsigned=True)[0]
    return partition_path(normalize(event))


def _two_in_one_partition_then_two_more() -> list[dict]:
    """Four distinct events, the first two in the same output partition (same date and name)."""
    by_partition: dict[str, list[dict]] = {}
    for payload in corpus_payloads():
        if "data" in payload and len(payload["data"]) != 1:
            continue
        by_partition.setdefault(_partition_of(payload), []).append(payload)
    pair = next(group[:2] for group in by_partition.values() if len(group) >= 2)
    others = [group[0] for group in by_partition.values() if group[0] is not pair[0]][:2]
    return pair + others


def test_dedupe_within_and_across_windows_ttl_and_late_events(tmp_path: Path) -> None:
    out, dlo = tmp_path / "out", tmp_path / "dead"
    a, d, b, c = _two_in_one_partition_then_two_more()
    key_a, key_b, key_c, key_d = (expected_keys([p])[0] for p in (a, b, c, d))
    assert len({key_a, key_b, key_c, key_d}) == 4
    now = time.time()
    t0 = (int(now) // WINDOW) * WINDOW
    garbage = Delivery(b"\x00not an event", {"origin": "test"}, None)

    stream = (
        test_stream.TestStream()
        .advance_processing_time(int(now))
        .advance_watermark_to(t0)
        .add_elements([
            TimestampedValue(_delivery(a), t0 + 1),
            TimestampedValue(_delivery(a), t0 + 2),  # duplicate in the same window
            TimestampedValue(_delivery(b), t0 + 3),
            TimestampedValue(garbage, t0 + 4),
        ])
        .advance_watermark_to(t0 + WINDOW + 1)  # the first window fires
        .advance_processing_time(10)
        .add_elements([
            TimestampedValue(_delivery(b), t0 + WINDOW + 2),  # duplicate in the next window, within the TTL
            TimestampedValue(_delivery(c), t0 + WINDOW + 3),
        ])
        .advance_processing_time(TTL + 120)  # every key seen so far expires
        .add_elements([TimestampedValue(_delivery(a), t0 + WINDOW + 5)])  # after the TTL: written again
        .advance_watermark_to(t0 + 3 * WINDOW)
        # Late: behind the watermark, in the first window, which has already fired.
        .add_elements([TimestampedValue(_delivery(d), t0 + 5)])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions([
        "--streaming", "--allow_unsigned", f"--output={out}", f"--dead_letter_output={dlo}",
        f"--window_seconds={WINDOW}", f"--dedupe_ttl_seconds={TTL}",
    ])
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, options, deliveries=p | stream)

    assert Counter(output_keys(out)) == Counter({key_a: 2, key_b: 1, key_c: 1, key_d: 1})
    # The late event (same partition as a) went into a later pane of the first window:
    # a file of its own beside the on-time one, nothing overwritten.
    first_window = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t0))
    partition_a = out / _partition_of(a)
    partition_files = sorted(p.name for p in partition_a.glob(f"part-{first_window}-*.parquet"))
    assert [n.split("-")[3] for n in partition_files] == ["p0", "p1"], partition_files
    records = dead_letters(dlo)
    assert [(r["stage"], r["error_type"]) for r in records] == [("VerifyAndDecode", "unknown_format")]
    assert records[0]["attributes"] == {"origin": "test"}
    assert not temp_files(out, dlo)
