"""Two batch replays into one output, in one arrival window, keep every event of both.

Before part file names carried a component unique to the run, the second run wrote the
same (partition, window, pane, shard) names as the first and replaced its files: events
only the first run had were silently lost (issue 10, part 1). The arrival stamp is fixed
so both runs fall into the same window, as two replays started minutes apart do.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import Timestamp

from pipeline.main import build_pipeline
from devkit.signing import DemoSigner
from tests.pipeline.helpers import corpus_payloads, dead_letters, payload_of, query, sign, temp_files


def vary_payload(payload: dict, i: int) -> dict:
    """A distinct Canvas event from a corpus payload: a new request id."""
    event = copy.deepcopy(payload)
    event["metadata"]["request_id"] = f"two-runs-{i:06d}"
    return event


def _replay(lines: list[bytes], source: Path, out: Path, dlo: Path, jwks: Path, arrival: Timestamp) -> None:
    source.write_bytes(b"\n".join(lines) + b"\n")
    options = PipelineOptions([f"--input_files={source}", f"--output={out}", f"--dead_letter_output={dlo}",
                               f"--jwks_url={jwks}", "--runner=DirectRunner"])
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, options, arrival=arrival)


def test_two_replays_into_one_output_keep_every_event(tmp_path: Path, signer: DemoSigner, jwks_file: Path) -> None:
    jwks = jwks_file
    corpus = [p for p in corpus_payloads() if "metadata" in p]
    payloads = [vary_payload(corpus[i % len(corpus)], i) for i in range(120)]
    deliveries = [sign(signer, p) for p in payloads]
    out, dlo = tmp_path / "out", tmp_path / "dead"
    arrival = Timestamp.of(1_700_000_000)  # one window for both runs

    first = deliveries[:80] + [b"garbage from run one"]
    second = deliveries[50:] + [b"garbage from run two"]
    _replay(first, tmp_path / "one.txt", out, dlo, jwks, arrival)
    _replay(second, tmp_path / "two.txt", out, dlo, jwks, arrival)

    request_ids = {p["metadata"]["request_id"] for p in payloads}
    seen = query(f"select count(distinct request_id) from read_parquet('{out}/**/*.parquet', hive_partitioning=true)")
    assert seen == [(len(request_ids),)]
    assert {payload_of(r) for r in dead_letters(dlo)} == {b"garbage from run one", b"garbage from run two"}
    assert not temp_files(out, dlo)


def test_a_restarted_stream_in_the_same_window_keeps_the_first_jobs_files(tmp_path: Path) -> None:
    """Streaming: a job stopped and a new one started within one window (two graphs, two run
    ids) each write that window's file for the same partition; both stay."""
    from apache_beam.testing import test_stream
    from apache_beam.transforms.window import TimestampedValue

    from pipeline.transforms.common import Delivery
    from tests.pipeline.helpers import output_keys

    corpus = [p for p in corpus_payloads() if "metadata" in p]
    first, second = vary_payload(corpus[0], 1), vary_payload(corpus[0], 2)  # one partition
    out, dlo = tmp_path / "out", tmp_path / "dead"
    t0 = 1_700_000_100  # both jobs' events arrive in the window [t0, t0 + 60)
    for payload in (first, second):
        stream = (test_stream.TestStream()
                  .advance_watermark_to(t0)
                  .add_elements([TimestampedValue(Delivery(json.dumps(payload).encode(), {}, None), t0 + 5)])
                  .advance_watermark_to_infinity())
        options = PipelineOptions(["--streaming", "--allow_unsigned", f"--output={out}",
                                   f"--dead_letter_output={dlo}", "--window_seconds=60"])
        with beam.Pipeline(options=options) as p:
            build_pipeline(p, options, deliveries=p | stream)
    files = sorted(out.rglob("*.parquet"))
    assert len(files) == 2 and files[0].parent == files[1].parent
    assert len(set(output_keys(out))) == 2
