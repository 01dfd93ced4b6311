"""`canvas-events`: the command line.

Subcommands:
  normalize  raw delivery bodies (one per line) -> normalized rows as JSON lines on stdout,
             rejections as JSON lines on stderr. Exit 0 when all normalized, 1 when any was
             rejected, 2 on a usage error (including a JWKS that cannot be loaded).
  run        the Beam pipeline (streaming from Pub/Sub or batch replay from files); every
             option of `python -m pipeline.main`.
  report     a health report of the lake (local or gs://): one self-contained HTML page, and JSON.
  lti-subscriptions  create|list|show|update|delete Canvas webhook subscriptions
             (pipeline/lti_subscriptions.py).
  archive-keys  merge the live JWKS into an archive JWKS (file or gs://) that never drops a key
             (pipeline/keyarchive.py).
  compact    rewrite old partitions of the output as few large files without duplicates
             (`pipeline.compact`).
  sqs-relay  relay Canvas's SQS deliveries to the receiver's Pub/Sub topic (pipeline/sqsrelay).
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import BinaryIO, Iterable, Iterator, Sequence

import orjson

from pipeline.core.decode import DEFAULT_MAX_BYTES, decode_delivery
from pipeline.core.errors import EventError
from pipeline.core.normalize import normalize
from pipeline.core.rows import row_dict

USAGE_ERROR = 2


def _add_normalize_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="files of raw delivery bodies, one per line (default: stdin); blank lines are skipped")
    parser.add_argument("--jwks_url", action="append", default=[], metavar="URL_OR_PATH",
                        help="JWKS to verify signed deliveries with: https:// URL, gs:// object or file; repeat to combine "
                             "(e.g. the live JWKS plus an archive of past keys). Default: none")
    parser.add_argument("--allow_unsigned", action="store_true",
                        help="accept plain JSON deliveries (default: rejected as unsigned_not_allowed)")
    parser.add_argument("--jwt_issuer", default=None,
                        help="expected iss claim, checked when present (default: the Canvas Live Events issuer)")
    parser.add_argument("--allow_expired_tokens", action="store_true",
                        help="do not reject tokens whose exp has passed: for replays of old signed data "
                             "(default: expired tokens are rejected)")
    parser.add_argument("--max_bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"largest accepted body in bytes (default: {DEFAULT_MAX_BYTES})")


def _iter_lines(files: Sequence[str], stdin: BinaryIO) -> Iterator[tuple[str, int, bytes]]:
    if not files:
        for number, line in enumerate(stdin, 1):
            yield "-", number, line
        return
    for name in files:
        with open(name, "rb") as fh:
            for number, line in enumerate(fh, 1):
                yield name, number, line


def normalize_lines(
    lines: Iterable[tuple[str, int, bytes]],
    *,
    verifier,
    allow_unsigned: bool,
    max_bytes: int,
    out: BinaryIO,
    err: BinaryIO,
) -> tuple[int, int]:
    """Normalize each line, writing rows to `out` and rejections to `err`. Returns (rows, rejected).

    The events of a Caliper envelope are independent: each good one is a row, each bad item
    one rejection whose ``item`` is its index in ``data``; ``rejected`` counts rejections.
    """
    rows = rejected = 0
    for name, number, line in lines:
        if not line.strip():
            continue
        received_at = datetime.now(timezone.utc)
        try:
            events = decode_delivery(line, verifier=verifier, allow_unsigned=allow_unsigned, max_bytes=max_bytes)
        except EventError as exc:
            events, failures = [], [exc]
        else:
            failures = []
        for event in events:
            try:
                row = normalize(event, received_at=received_at)
            except EventError as exc:
                failures.append(exc)
                continue
            out.write(orjson.dumps(row_dict(row), option=orjson.OPT_UTC_Z) + b"\n")
            rows += 1
        for exc in failures:
            rejected += 1
            record = {**exc.as_dict(), "line": number}
            if name != "-":
                record["file"] = name
            err.write(orjson.dumps(record) + b"\n")
    return rows, rejected


def cmd_normalize(args: argparse.Namespace) -> int:
    from pipeline.contract import DEFAULT_ISSUER, VerifierSettings
    from pipeline.core.jwks import JwksUnavailable
    from pipeline.jwks_fetch import build_verifier

    if not args.jwks_url and not args.allow_unsigned:
        print("canvas-events normalize: give --jwks_url to verify signed deliveries, "
              "or --allow_unsigned to accept plain JSON (or both)", file=sys.stderr)
        return USAGE_ERROR
    try:
        verifier = build_verifier(VerifierSettings(
            sources=args.jwks_url,
            issuer=args.jwt_issuer or DEFAULT_ISSUER,
            verify_exp=not args.allow_expired_tokens,
        ))
    except JwksUnavailable as exc:
        print(f"canvas-events normalize: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        lines = _iter_lines(args.files, sys.stdin.buffer)
        _, rejected = normalize_lines(
            lines,
            verifier=verifier,
            allow_unsigned=args.allow_unsigned,
            max_bytes=args.max_bytes,
            out=sys.stdout.buffer,
            err=sys.stderr.buffer,
        )
    except OSError as exc:
        print(f"canvas-events normalize: {exc}", file=sys.stderr)
        return USAGE_ERROR
    finally:
        sys.stdout.flush()
    return 1 if rejected else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="canvas-events",
        description="Canvas LMS Live Events: verify, normalize and land events as Parquet.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{normalize,run,compact,report,archive-keys,lti-subscriptions,sqs-relay}")
    normalize_parser = sub.add_parser(
        "normalize", help="normalize raw delivery bodies (one per line) to JSON rows",
        description="Read raw delivery bodies, one per line; write one JSON row per event to stdout and "
                    "one JSON rejection per bad input to stderr. Exit 0: all normalized; 1: some rejected; 2: usage.",
    )
    _add_normalize_args(normalize_parser)
    sub.add_parser("run", help="run the Beam pipeline (see `canvas-events run --help`)", add_help=False)
    from pipeline.report import add_arguments as add_report_args
    add_report_args(sub.add_parser("report", help="write a health report of the lake (HTML, optionally JSON)",
                                   description="Rows, duplicates, dead letters, freshness, event-name mix, gaps "
                                               "and files per partition, per day."))
    from pipeline import lti_subscriptions
    lti_subscriptions.add_parser(sub)
    from pipeline import keyarchive
    keyarchive.add_arguments(sub.add_parser(
        "archive-keys", help="merge the live JWKS into an archive of every key ever served",
        description="Merge the live JWKS into an archive JWKS that never drops a key. Exit 0: merged; "
                    "1: a kid already archived with other key material (archive unchanged) or archive I/O; "
                    "2: usage or a live JWKS that cannot be loaded."))
    sub.add_parser("compact", help="compact old partitions: few large files, no duplicates "
                                   "(see `canvas-events compact --help`)", add_help=False)
    sub.add_parser("sqs-relay", help="relay an SQS queue to the Pub/Sub topic (see `canvas-events sqs-relay --help`)",
                   add_help=False)

    if argv[:1] == ["run"]:
        # The pipeline owns its options (one PipelineOptions class); pass everything through.
        from pipeline.main import run
        return run(argv[1:])
    if argv[:1] == ["compact"]:
        from pipeline.compact import main as compact_main
        return compact_main(argv[1:])
    if argv[:1] == ["sqs-relay"]:
        from pipeline.sqsrelay.main import main as sqs_relay
        return sqs_relay(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "normalize":
        return cmd_normalize(args)
    if args.command == "report":
        from pipeline.report import run_report
        return run_report(args)
    if args.command == "lti-subscriptions":
        return lti_subscriptions.main(args)
    if args.command == "archive-keys":
        return keyarchive.command(args)
    parser.print_help(sys.stderr)
    return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
