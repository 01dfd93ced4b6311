"""Options and preflight: every bad combination ends with one line on stderr and exit status 2."""
from __future__ import annotations

from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.main import run
from pipeline.options import CanvasEventsOptions, option_specs, preflight, preflight_io
from devkit.signing import DemoSigner

GOOD_SUB = "projects/demo-project/subscriptions/live-events"


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    jwks = tmp_path / "jwks.json"
    DemoSigner(kid="k1").write_jwks(jwks)
    inputs = tmp_path / "in.txt"
    inputs.write_text("garbage\n")
    return {"jwks": str(jwks), "in": str(inputs), "out": str(tmp_path / "out"), "dlo": str(tmp_path / "dead"),
            "tmp": str(tmp_path)}


def _args(paths: dict[str, str], *extra: str, drop: tuple[str, ...] = ()) -> list[str]:
    base = {
        "input_files": paths["in"], "output": paths["out"], "dead_letter_output": paths["dlo"],
        "jwks_url": paths["jwks"],
    }
    return [f"--{k}={v}" for k, v in base.items() if k not in drop] + list(extra)


def test_good_options_pass_both_checks(paths: dict[str, str]) -> None:
    options = PipelineOptions(_args(paths, "--pii=hash", "--pii_salt=s3cret", "--window_seconds=5"))
    assert preflight(options) == []
    assert preflight_io(options) == []
    o = options.view_as(CanvasEventsOptions)
    assert (o.window_seconds, o.dedupe_ttl_seconds, o.pii, o.allow_unsigned) == (5, 3600, "hash", False)


def test_subscription_input_and_flag_forms(paths: dict[str, str]) -> None:
    options = PipelineOptions(_args(
        paths, f"--input_subscription={GOOD_SUB}", "--allow_unsigned=true", "--allow_expired_tokens",
        "--jwks_url=https://a.example/jwks,https://b.example/jwks", drop=("input_files",)))
    assert preflight(options) == []
    o = options.view_as(CanvasEventsOptions)
    assert o.allow_unsigned is True and o.allow_expired_tokens is True
    assert o.jwks_url == [paths["jwks"], "https://a.example/jwks", "https://b.example/jwks"]


BAD = [
    ("no_input", [], ("input_files",), "no input"),
    ("both_inputs", [f"--input_subscription={GOOD_SUB}"], (), "only one input"),
    ("sub_without_prefix", ["--input_subscription=live-events"], ("input_files",), "projects/PROJECT/subscriptions"),
    ("topic_not_sub", ["--input_subscription=projects/demo-project/topics/live-events"], ("input_files",),
     "projects/PROJECT/subscriptions"),
    ("sub_name_too_short", ["--input_subscription=projects/demo-project/subscriptions/ab"], ("input_files",),
     "projects/PROJECT/subscriptions"),
    ("project_too_short", ["--input_subscription=projects/p1/subscriptions/live-events"], ("input_files",),
     "projects/PROJECT/subscriptions"),
    ("missing_output", [], ("output",), "missing --output"),
    ("missing_dead_letter_output", [], ("dead_letter_output",), "missing --dead_letter_output"),
    ("dead_letters_inside_output", ["--dead_letter_output={out}/dead"], ("dead_letter_output",), "inside --output"),
    ("no_jwks_no_unsigned", [], ("jwks_url",), "--allow_unsigned"),
    ("expired_without_jwks", ["--allow_unsigned", "--allow_expired_tokens"], ("jwks_url",), "needs --jwks_url"),
    ("bad_flag_value", ["--allow_unsigned=maybe"], (), "--allow_unsigned takes true or false"),
    ("hash_without_salt", ["--pii=hash"], (), "--pii_salt"),
    ("unknown_pii_mode", ["--pii=encrypt"], (), "--pii must be one of"),
    ("zero_window", ["--window_seconds=0"], (), "--window_seconds"),
    ("text_ttl", ["--dedupe_ttl_seconds=an hour"], (), "--dedupe_ttl_seconds"),
    ("dataflow_local_output", ["--runner=DataflowRunner"], (), "Dataflow workers cannot reach"),
    ("unreadable_jwks", ["--jwks_url={tmp}/missing-jwks.json"], ("jwks_url",), "cannot load --jwks_url"),
    ("jwks_not_a_jwks", ["--jwks_url={in}"], ("jwks_url",), "cannot load --jwks_url"),
    ("jwks_url_down", ["--jwks_url=http://127.0.0.1:9/jwks.json"], ("jwks_url",), "cannot load --jwks_url"),
    ("input_matches_nothing", ["--input_files={tmp}/nothing-*.txt"], ("input_files",), "matches no file"),
]


@pytest.mark.parametrize("extra,drop,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_options_exit_2_with_one_line(
    paths: dict[str, str], extra: list[str], drop: tuple[str, ...], message: str, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = _args(paths, *[e.format(**paths) for e in extra], drop=drop)
    assert run(argv) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("canvas-events run: error: ")
    assert message in lines[0]
    assert not Path(paths["out"]).exists()  # nothing ran


def test_preflight_reports_every_problem_at_once() -> None:
    errors = preflight(PipelineOptions(["--pii=hash", "--window_seconds=-5"]))
    assert len(errors) == 6, errors  # input, output, dead letters, jwks, window, salt


def test_job_other_than_pipeline_is_refused_by_run() -> None:
    base = ["--input_files=x", "--output=o", "--dead_letter_output=d", "--allow_unsigned"]
    assert preflight(PipelineOptions(base + ["--job=pipeline"])) == []
    assert preflight(PipelineOptions(base + ["--job=compact"])) == [
        "--job=compact selects the Flex Template's job; locally run `canvas-events compact`"]
    assert "--job must be one of pipeline, compact" in preflight(PipelineOptions(base + ["--job=both"]))[0]


def test_every_option_help_states_its_default() -> None:
    specs = option_specs()
    assert [s.name for s in specs] == [
        "input_subscription", "input_files", "output", "dead_letter_output", "jwks_url", "allow_unsigned",
        "jwt_issuer", "allow_expired_tokens", "window_seconds", "dedupe_ttl_seconds", "pii", "replay_processes", "pii_salt",
        "job", "dates", "older_than_days", "target_file_mb",  # CompactOptions: the template's job=compact
    ]
    for spec in specs:
        assert "Default: " in spec.help, spec.name
        if spec.default not in (None, False):
            assert str(spec.default) in spec.help, spec.name
    assert {s.name for s in specs if s.is_flag} == {"allow_unsigned", "allow_expired_tokens"}
    assert [s.name for s in specs if s.repeatable] == ["jwks_url"]


def test_help_lists_the_pipeline_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: canvas-events run")
    for spec in option_specs():
        assert f"--{spec.name}" in out
