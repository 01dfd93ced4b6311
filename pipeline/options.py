"""The pipeline's options (one class, the single source of truth) and their preflight checks.

``CanvasEventsOptions`` is what ``canvas-events run`` and ``python -m pipeline.main`` take
and what the Flex Template ``metadata.json`` is generated from / checked against: every
help string states the default. Values are parsed leniently here (a bad integer or boolean
stays a string) so that ``preflight`` can report every problem as one line and exit 2,
instead of argparse printing its usage block.

``preflight(options)`` is pure (no I/O): it only looks at the option values. The checks
that need I/O (loading the JWKS, matching the input files) are in ``preflight_io``.
"""
from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.contract import DEFAULT_ISSUER, VerifierSettings, parse_bool, parse_sources
from pipeline.core.pii import PII_MODES, pii_setting_problem

DEFAULT_WINDOW_SECONDS = 300
DEFAULT_DEDUPE_TTL_SECONDS = 3600
DEFAULT_PII = "keep"

# projects/<project>/subscriptions/<name>. The project part follows Beam's own check
# (apache_beam.io.gcp.pubsub.PROJECT_ID_REGEXP: 6-63 chars, domain-scoped "example.com:x"
# allowed), so preflight refuses exactly what ReadFromPubSub would refuse later, with one
# line instead of a traceback. Subscription names: 3-255 chars, start with a letter;
# letters, digits and - _ . ~ + %; not starting with "goog".
SUBSCRIPTION_RE = re.compile(
    r"projects/(?P<project>[a-z][-a-z0-9:.]{4,61}[a-z0-9])/subscriptions/(?P<name>[A-Za-z][A-Za-z0-9_.~+%-]{2,254})"
)


def _flag(value: str) -> bool | str:
    """``--flag``, ``--flag=true`` and ``--flag=false`` (Flex Templates pass name=value; an empty
    value is false); anything else is kept as the raw string for preflight to report."""
    parsed = parse_bool(value) if value.strip() else False
    return value if parsed is None else parsed


def _int(value: str) -> int | str:
    try:
        return int(value.strip())
    except ValueError:
        return value


class _AppendSources(argparse.Action):
    """Repeatable, and each value may itself hold several comma-separated sources
    (a Flex Template parameter cannot repeat)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        current = list(getattr(namespace, self.dest, None) or [])
        current += parse_sources(str(values))
        setattr(namespace, self.dest, current)


class CanvasEventsOptions(PipelineOptions):
    """Options of the Canvas Live Events pipeline (besides every standard Beam option)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("Canvas Live Events")
        group.add_argument(
            "--input_subscription", default=None,
            help="Pub/Sub subscription to read, projects/PROJECT/subscriptions/NAME (streaming). "
                 "Give exactly one of --input_subscription and --input_files. Default: none.")
        group.add_argument(
            "--input_files", default=None,
            help="Batch replay: a file glob, local or gs://, holding one raw delivery body per line. "
                 "Give exactly one of --input_subscription and --input_files. Default: none.")
        group.add_argument(
            "--output", default=None,
            help="Directory or gs:// prefix for the Parquet files, written under "
                 "event_date=YYYY-MM-DD/event_name=NAME/. Required. Default: none.")
        group.add_argument(
            "--dead_letter_output", default=None,
            help="Directory or gs:// prefix for rejected deliveries (JSON lines with the original payload "
                 "in base64); must not lie inside --output. Required. Default: none.")
        group.add_argument(
            "--jwks_url", action=_AppendSources, default=None,
            help="JWKS holding the keys that sign deliveries: an https:// URL, a gs:// object or a local file; repeat the "
                 "option or separate with commas for several (e.g. the live URL plus an archive of old keys). "
                 "Default: none, which requires --allow_unsigned.")
        group.add_argument(
            "--allow_unsigned", type=_flag, nargs="?", const=True, default=False,
            help="Accept plain-JSON (unsigned) deliveries. Default: false.")
        group.add_argument(
            "--jwt_issuer", default=DEFAULT_ISSUER,
            help="Expected iss claim of signed deliveries, checked when a token carries one. "
                 f"Default: {DEFAULT_ISSUER}.")
        group.add_argument(
            "--allow_expired_tokens", type=_flag, nargs="?", const=True, default=False,
            help="Accept tokens whose exp has passed, for replays of old signed data "
                 "(signatures are still verified). Default: false.")
        group.add_argument(
            "--window_seconds", type=_int, default=DEFAULT_WINDOW_SECONDS,
            help="Length of the fixed windows (by arrival time) after which files are written. "
                 f"Default: {DEFAULT_WINDOW_SECONDS}.")
        group.add_argument(
            "--dedupe_ttl_seconds", type=_int, default=DEFAULT_DEDUPE_TTL_SECONDS,
            help="How long an event's dedupe key is remembered (processing time); a duplicate arriving "
                 f"later is written again. Default: {DEFAULT_DEDUPE_TTL_SECONDS}.")
        group.add_argument(
            "--pii", default=DEFAULT_PII,
            help=f"What to do with personal fields (login, SIS id, IP, user agent): {'|'.join(PII_MODES)}. "
                 f"Default: {DEFAULT_PII}.")
        group.add_argument(
            "--replay_processes", type=_int, default=0,
            help="Batch replays on a local runner (DirectRunner): processes that verify and normalize "
                 "deliveries side by side once a replay passes a few thousand deliveries; 0 = one per CPU "
                 "core, 1 = all in the runner's own process. Ignored on Dataflow, which already runs a "
                 "worker process per core. Default: 0.")
        group.add_argument(
            "--pii_salt", default=None,
            help="Secret salt for --pii=hash (required with it), so hashes cannot be reversed by lookup. "
                 "Default: none.")


JOBS = ("pipeline", "compact")


class CompactOptions(PipelineOptions):
    """The Flex Template's job switch and the options of ``job=compact`` (``canvas-events compact``)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        from pipeline.core.compaction import DEFAULT_OLDER_THAN_DAYS, DEFAULT_TARGET_FILE_MB

        group = parser.add_argument_group("Compaction (Flex Template job=compact)")
        group.add_argument(
            "--job", default="pipeline",
            help="Flex Template only: which job to launch, pipeline (the event pipeline) or compact "
                 "(canvas-events compact over --output; --dead_letter_output is not touched). Default: pipeline.")
        group.add_argument(
            "--dates", default=None,
            help="job=compact: event dates to compact, YYYY-MM-DD separated by commas. "
                 "Default: none, i.e. every date at least --older_than_days old.")
        group.add_argument(
            "--older_than_days", type=_int, default=DEFAULT_OLDER_THAN_DAYS,
            help="job=compact: compact event dates at least this many days old when --dates is not given. "
                 f"Default: {DEFAULT_OLDER_THAN_DAYS}.")
        group.add_argument(
            "--target_file_mb", type=_int, default=DEFAULT_TARGET_FILE_MB,
            help=f"job=compact: size of the files written, about. Default: {DEFAULT_TARGET_FILE_MB}.")


@dataclass(frozen=True)
class OptionSpec:
    """One pipeline option as the Flex Template metadata needs it."""

    name: str
    help: str
    default: Any
    is_flag: bool
    repeatable: bool


def option_specs() -> list[OptionSpec]:
    """The options declared by CanvasEventsOptions then CompactOptions, in declaration order (for metadata.json)."""
    parser = argparse.ArgumentParser(add_help=False)
    CanvasEventsOptions._add_argparse_args(parser)
    CompactOptions._add_argparse_args(parser)
    specs = []
    for action in parser._actions:
        name = action.option_strings[0].lstrip("-")
        specs.append(OptionSpec(
            name=name,
            help=action.help or "",
            default=action.default,
            is_flag=action.const is True,
            repeatable=isinstance(action, _AppendSources),
        ))
    return specs


def _is_remote(path: str) -> bool:
    return "://" in path


def _inside(child: str, parent: str) -> bool:
    child_n, parent_n = child.rstrip("/") + "/", parent.rstrip("/") + "/"
    return child_n.startswith(parent_n)


def _positive_int(name: str, value: Any, errors: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        errors.append(f"--{name} must be a positive whole number of seconds, got {value!r}")


def preflight(options: PipelineOptions) -> list[str]:
    """Problems with the option values, one line each (empty when the options make sense).

    Pure: no I/O, so tests call it directly. Covers the input choice, the subscription name,
    the outputs, the signature settings, PII and the window/TTL values.
    """
    o = options.view_as(CanvasEventsOptions)
    runner = str(options.view_as(StandardOptions).runner or "")
    errors: list[str] = []

    sub, files = o.input_subscription, o.input_files
    if sub and files:
        errors.append("give only one input: --input_subscription (streaming) or --input_files (batch replay)")
    elif not sub and not files:
        errors.append("no input: give --input_subscription=projects/P/subscriptions/S or --input_files=GLOB")
    elif sub and not SUBSCRIPTION_RE.fullmatch(sub):
        errors.append(f"--input_subscription must look like projects/PROJECT/subscriptions/NAME, got {sub!r}")
    elif sub and SUBSCRIPTION_RE.fullmatch(sub).group("name").startswith("goog"):  # type: ignore[union-attr]
        errors.append("--input_subscription name must not start with 'goog'")

    if not o.output:
        errors.append("missing --output (a directory or gs:// prefix for the Parquet files)")
    if not o.dead_letter_output:
        errors.append("missing --dead_letter_output (a directory or gs:// prefix for rejected deliveries)")
    if o.output and o.dead_letter_output and (
            _inside(o.dead_letter_output, o.output) or _inside(o.output, o.dead_letter_output)):
        errors.append("--dead_letter_output must not be inside --output (or the reverse): "
                      "tables over --output would read the dead letters")
    if "dataflow" in runner.lower():
        for name in ("output", "dead_letter_output", "input_files"):
            value = getattr(o, name)
            if value and not _is_remote(value):
                errors.append(f"--{name} is a local path, which Dataflow workers cannot reach; use gs://")

    for name in ("allow_unsigned", "allow_expired_tokens"):
        if not isinstance(getattr(o, name), bool):
            errors.append(f"--{name} takes true or false, got {getattr(o, name)!r}")
    if not o.jwks_url and o.allow_unsigned is not True:
        errors.append("no --jwks_url: give the JWKS that signs deliveries, or --allow_unsigned to accept unsigned JSON")
    if o.allow_expired_tokens is True and not o.jwks_url:
        errors.append("--allow_expired_tokens needs --jwks_url (it relaxes the check of signed tokens)")

    _positive_int("window_seconds", o.window_seconds, errors)
    _positive_int("dedupe_ttl_seconds", o.dedupe_ttl_seconds, errors)
    if not isinstance(o.replay_processes, int) or o.replay_processes < 0:
        errors.append(f"--replay_processes must be 0 (one per core) or a positive integer, got {o.replay_processes!r}")

    job = options.view_as(CompactOptions).job
    if job not in JOBS:
        errors.append(f"--job must be one of {', '.join(JOBS)}, got {job!r}")
    elif job != "pipeline":
        errors.append(f"--job={job} selects the Flex Template's job; locally run `canvas-events {job}`")

    pii_problem = pii_setting_problem(o.pii, o.pii_salt, mode_name="--pii", salt_name="--pii_salt")
    if pii_problem:
        errors.append(pii_problem)
    return errors


def preflight_io(options: PipelineOptions) -> list[str]:
    """The checks that touch the outside: every JWKS source loads, the input glob matches files.

    Run after ``preflight`` passes. Returns problems as lines, like ``preflight``.
    """
    from apache_beam.io.filesystems import FileSystems

    from pipeline.core.jwks import JwksUnavailable
    from pipeline.jwks_fetch import build_verifier

    o = options.view_as(CanvasEventsOptions)
    errors: list[str] = []
    if o.jwks_url:
        try:
            build_verifier(verifier_settings(options))
        except (JwksUnavailable, ValueError) as exc:
            errors.append(f"cannot load --jwks_url: {exc}")
    if o.input_files:
        try:
            matched = FileSystems.match([o.input_files])[0].metadata_list
        except Exception as exc:  # noqa: BLE001 - any failure to list is a preflight failure
            errors.append(f"cannot list --input_files {o.input_files!r}: {type(exc).__name__}")
        else:
            if not matched:
                errors.append(f"--input_files {o.input_files!r} matches no file")
    return errors


def verifier_settings(options: PipelineOptions) -> VerifierSettings:
    """The verifier's settings from the options (empty issuer = don't check iss)."""
    o = options.view_as(CanvasEventsOptions)
    return VerifierSettings(
        sources=parse_sources(o.jwks_url), issuer=o.jwt_issuer or None, verify_exp=o.allow_expired_tokens is not True)


LOCAL_RUNNERS = frozenset({"", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner"})


def is_local_runner(runner: str) -> bool:
    """Whether ``--runner`` names one of Beam's in-process local runners (none given: DirectRunner)."""
    return runner.rsplit(".", 1)[-1].lower() in LOCAL_RUNNERS


def replay_processes(options: PipelineOptions) -> int:
    """Processes a batch replay verifies and normalizes in: ``--replay_processes`` on a local
    runner (0: one per CPU core, 1 when the local runner already runs several workers),
    always 1 (in the worker's own process) on any other runner."""
    runner = str(options.view_as(StandardOptions).runner or "DirectRunner")
    if not is_local_runner(runner):
        return 1
    wanted = options.view_as(CanvasEventsOptions).replay_processes
    if wanted:
        return wanted
    if (options.get_all_options().get("direct_num_workers") or 1) > 1:
        return 1
    return max(1, os.cpu_count() or 1)


def is_streaming(options: PipelineOptions) -> bool:
    """Reading a subscription means streaming, whether or not --streaming was given."""
    return bool(options.view_as(CanvasEventsOptions).input_subscription) or bool(
        options.view_as(StandardOptions).streaming)
