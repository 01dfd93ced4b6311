"""Generate the Flex Template ``metadata.json`` from the pipeline's one options class.

Names, help texts and the set of parameters come from ``CanvasEventsOptions`` (through
``pipeline.options.option_specs``), so an option added there cannot be missing here: the
generator refuses to run until the option has an entry in ``PRESENTATION`` below, and the
tests compare the checked-in file with the generated one. ``PRESENTATION`` only adds what
argparse does not know: the console label, the input picker type, whether Dataflow may
start the job without it, the validation regexes (Java syntax on Dataflow; kept to the
subset Python's ``re`` reads the same), and one good and one bad example per option that
the tests run the regexes against.

    python templates/generate_metadata.py          # rewrite templates/metadata.json
    python templates/generate_metadata.py --check  # exit 1 if the file is stale
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.contract import DEFAULT_ISSUER
from pipeline.core.pii import PII_MODES
from pipeline.options import JOBS, SUBSCRIPTION_RE, option_specs

METADATA_PATH = Path(__file__).resolve().parent / "metadata.json"

TEMPLATE_NAME = "Canvas Live Events to Parquet"
TEMPLATE_DESCRIPTION = (
    "Reads Canvas LMS Live Events (signed JWT or plain JSON, Canvas or Caliper format) from a "
    "Pub/Sub subscription, or replays archived delivery bodies from Cloud Storage; verifies, "
    "normalizes and dedupes them and writes hive-partitioned Parquet "
    "(event_date=YYYY-MM-DD/event_name=NAME/) for BigQuery external tables. Rejected deliveries "
    "go to the dead-letter prefix. With job=compact it compacts old partitions of the output instead "
    "(few large files, one row per event)."
)

GCS_PATH = r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/[^\n\r]*)?$"
# https:// URLs and gs:// objects (the key archive kept by `canvas-events archive-keys`).
JWKS_SOURCES = r"^(https|gs)://[^\s,]+(,(https|gs)://[^\s,]+)*$"
BOOLEAN = r"^(true|false)$"
POSITIVE_INT = r"^[1-9][0-9]{0,8}$"


def _portable(pattern: str) -> str:
    """Python's named groups ``(?P<name>`` are not Java syntax; Dataflow only needs the match."""
    return re.sub(r"\(\?P<\w+>", "(?:", pattern)


@dataclass(frozen=True)
class Presentation:
    label: str
    param_type: str  # a ParameterMetadata.paramType enum value
    optional: bool
    regexes: tuple[str, ...]
    good: str  # a value every regex accepts
    bad: str  # a value some regex rejects


PRESENTATION: dict[str, Presentation] = {
    "input_subscription": Presentation(
        "Input Pub/Sub subscription", "PUBSUB_SUBSCRIPTION", True,
        ("^" + _portable(SUBSCRIPTION_RE.pattern) + "$",),
        "projects/my-project/subscriptions/canvas-live-events-pipeline",
        "canvas-live-events-pipeline"),
    "input_files": Presentation(
        "Archived delivery bodies to replay (batch)", "GCS_READ_FILE", True,
        (GCS_PATH,), "gs://my-bucket/raw/2024-11-*/*.jsonl", "/home/me/raw.jsonl"),
    "output": Presentation(
        "Parquet output prefix", "GCS_WRITE_FOLDER", False,
        (GCS_PATH,), "gs://my-bucket/events", "my-bucket/events"),
    "dead_letter_output": Presentation(
        "Dead-letter output prefix", "GCS_WRITE_FOLDER", False,
        (GCS_PATH,), "gs://my-bucket/dead-letter", "gs://"),
    "jwks_url": Presentation(
        "JWKS URL(s) of the signing keys", "TEXT", True,
        (JWKS_SOURCES,),
        "https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks,gs://my-bucket/keys/jwks-archive.json",
        "http://example.com/jwks"),
    "allow_unsigned": Presentation(
        "Accept unsigned (plain JSON) deliveries", "BOOLEAN", True,
        (BOOLEAN,), "false", "maybe"),
    "jwt_issuer": Presentation(
        "Expected JWT issuer (iss)", "TEXT", True,
        (r"^(https://[^\s]+)?$",), DEFAULT_ISSUER, "live events"),
    "allow_expired_tokens": Presentation(
        "Accept expired tokens (replays only)", "BOOLEAN", True,
        (BOOLEAN,), "true", "yes please"),
    "window_seconds": Presentation(
        "Window length in seconds", "NUMBER", True,
        (POSITIVE_INT,), "300", "0"),
    "dedupe_ttl_seconds": Presentation(
        "Dedupe memory in seconds", "NUMBER", True,
        (POSITIVE_INT,), "3600", "-5"),
    "pii": Presentation(
        "Personal fields: keep, hash or drop", "ENUM", True,
        ("^(" + "|".join(PII_MODES) + ")$",), "hash", "encrypt"),
    "replay_processes": Presentation(
        "Local batch replays: worker processes (0 = one per core)", "NUMBER", True,
        (r"^[0-9]+$",), "0", "-1"),
    "pii_salt": Presentation(
        "Salt for pii=hash (secret)", "TEXT", True,
        (r"^\S{16,}$",), "s3cret-salt-0123456789", "short"),
    "job": Presentation(
        "Job: pipeline or compact", "ENUM", True,
        ("^(" + "|".join(JOBS) + ")$",), "pipeline", "both"),
    "dates": Presentation(
        "Event dates to compact (job=compact)", "TEXT", True,
        (r"^([0-9]{4}-[0-9]{2}-[0-9]{2}(,[0-9]{4}-[0-9]{2}-[0-9]{2})*)?$",), "2024-11-01,2024-11-02", "yesterday"),
    "older_than_days": Presentation(
        "Compact dates at least this many days old (job=compact)", "NUMBER", True,
        (r"^[0-9]{1,5}$",), "2", "-1"),
    "target_file_mb": Presentation(
        "Size of compacted files in MB (job=compact)", "NUMBER", True,
        (POSITIVE_INT,), "256", "0"),
}


def _enum_options(name: str) -> list[dict[str, str]]:
    if name == "pii":
        return [{"value": mode, "label": mode} for mode in PII_MODES]
    if name == "job":
        return [{"value": job, "label": job} for job in JOBS]
    return []


def build_metadata() -> dict:
    """The metadata document, parameters in the options' declaration order."""
    specs = option_specs()
    missing = [s.name for s in specs if s.name not in PRESENTATION]
    stale = sorted(set(PRESENTATION) - {s.name for s in specs})
    if missing or stale:
        raise SystemExit(
            "templates/generate_metadata.py is out of step with CanvasEventsOptions: "
            f"add PRESENTATION entries for {missing or 'none'}; remove {stale or 'none'}")
    parameters = []
    for spec in specs:
        shown = PRESENTATION[spec.name]
        parameter: dict = {
            "name": spec.name,
            "label": shown.label,
            "helpText": spec.help,
            "isOptional": shown.optional,
            "paramType": shown.param_type,
            "regexes": list(shown.regexes),
        }
        if enum := _enum_options(spec.name):
            parameter["enumOptions"] = enum
        parameters.append(parameter)
    return {"name": TEMPLATE_NAME, "description": TEMPLATE_DESCRIPTION, "parameters": parameters}


def render() -> str:
    return json.dumps(build_metadata(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not METADATA_PATH.exists() or METADATA_PATH.read_text() != text:
            print("templates/metadata.json is stale: run python templates/generate_metadata.py",
                  file=sys.stderr)
            return 1
        return 0
    METADATA_PATH.write_text(text)
    print(f"wrote {METADATA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
