"""The deploy targets in mk/deploy.mk, run with DRY_RUN=1: complete commands that gcloud and bq accept.

Each target prints its remote commands, one shell-quoted line each. The tests parse every line,
check the flags each step needs, and then hand the gcloud lines to the real gcloud argument
parser and the bq lines to the real bq, offline (see gcloud_env.py): a line that gets as far
as "no active account" has passed every argument check the CLI makes before calling Google.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.dry_run import NUMBER, PROJECT, REPO, TAG, DryRun, dry_run, find, flags, make
from tests.deploy.gcloud_env import (
    assert_gcloud_accepts, gcloud_env, gcloud_sdk_python, gcloud_sdk_root, isolated)

TARGETS = ("apis", "bucket", "artifact-repo", "pubsub-setup", "iam", "deploy-receiver", "template-build",
           "template-run", "bq-table", "bq-views")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DryRun]:
    return {t: dry_run(t, tmp_path_factory.mktemp(t)) for t in TARGETS}


# ---- shape of every printed line ------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_lines_are_complete_cloud_commands(runs: dict[str, DryRun], target: str) -> None:
    run = runs[target]
    assert run.commands, f"{target} printed nothing"
    for line, cmd in zip(run.lines, run.commands):
        assert cmd[0] in {"gcloud", "bq", "gsutil"}, line
        assert "$(" not in line and "${" not in line, f"unexpanded variable: {line}"
        on_project = (f"--project={PROJECT}" in cmd or f"--project_id={PROJECT}" in cmd
                      or cmd[1:4] == ["projects", "add-iam-policy-binding", PROJECT])
        assert on_project, line
        for token in cmd:
            if token.startswith("--") and "=" in token:
                assert token.partition("=")[2], f"empty value: {token} in {line}"
            assert "--" not in token[2:].split("=")[0], token
            assert not token.endswith((",", "=")), f"dangling separator: {token}"


@pytest.mark.parametrize("target", TARGETS)
def test_missing_project_stops_before_any_command(tmp_path: Path, target: str) -> None:
    proc = make(target, tmp_path, PROJECT="")
    assert proc.returncode != 0
    assert "PROJECT is not set" in proc.stderr
    assert not [line for line in proc.stdout.splitlines() if line.startswith(("gcloud", "bq"))]


# ---- what each target does ------------------------------------------------------------------

def test_pubsub_setup(runs: dict[str, DryRun]) -> None:
    run = runs["pubsub-setup"]
    topics = [c[4] for c in find(run, "gcloud", "pubsub topics create")]
    assert topics == ["canvas-live-events", "canvas-live-events-dead-letter"]
    subs = {c[4]: flags(c) for c in find(run, "gcloud", "pubsub subscriptions create")}
    main = subs["canvas-live-events-pipeline"]
    assert main["--topic"] == ["canvas-live-events"]
    assert main["--ack-deadline"] == ["60"] and main["--message-retention-duration"] == ["7d"]
    assert main["--dead-letter-topic"] == ["canvas-live-events-dead-letter"]
    assert main["--max-delivery-attempts"] == ["10"]
    # Dead letters are kept somewhere (a topic without a subscription drops them).
    assert subs["canvas-live-events-dead-letter-hold"]["--topic"] == ["canvas-live-events-dead-letter"]
    archive = subs["canvas-live-events-archive"]
    assert archive["--cloud-storage-bucket"] == [f"{PROJECT}-canvas-events"]
    assert archive["--cloud-storage-output-format"] == ["text"]
    # Dead lettering needs the Pub/Sub service agent's roles on both ends.
    agent = f"serviceAccount:service-{NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
    bindings = {(" ".join(c[1:4]), c[4], flags(c)["--role"][0]) for c in run.commands
                if c[0] == "gcloud" and "add-iam-policy-binding" in c and flags(c)["--member"] == [agent]}
    assert ("pubsub topics add-iam-policy-binding", "canvas-live-events-dead-letter", "roles/pubsub.publisher") in bindings
    assert ("pubsub subscriptions add-iam-policy-binding", "canvas-live-events-pipeline",
            "roles/pubsub.subscriber") in bindings


def test_apis_enables_every_service_the_targets_use(runs: dict[str, DryRun]) -> None:
    (cmd,) = find(runs["apis"], "gcloud", "services enable")
    enabled = {t for t in cmd if t.endswith(".googleapis.com")}
    assert {"pubsub.googleapis.com", "cloudfunctions.googleapis.com", "run.googleapis.com",
            "cloudbuild.googleapis.com", "artifactregistry.googleapis.com", "dataflow.googleapis.com",
            "storage.googleapis.com", "bigquery.googleapis.com"} <= enabled


def test_iam_grants_each_service_account_its_roles(runs: dict[str, DryRun]) -> None:
    grants = {(flags(c)["--member"][0], flags(c)["--role"][0]) for c in runs["iam"].commands
              if "add-iam-policy-binding" in c}
    receiver = f"serviceAccount:canvas-events-receiver@{PROJECT}.iam.gserviceaccount.com"
    worker = f"serviceAccount:canvas-events-dataflow@{PROJECT}.iam.gserviceaccount.com"
    assert grants == {
        (receiver, "roles/pubsub.publisher"),
        (worker, "roles/dataflow.worker"), (worker, "roles/pubsub.subscriber"), (worker, "roles/pubsub.viewer"),
        (worker, "roles/storage.objectAdmin"), (worker, "roles/artifactregistry.reader"),
    }


def test_deploy_receiver(runs: dict[str, DryRun]) -> None:
    run = runs["deploy-receiver"]
    (cmd,) = find(run, "gcloud", "functions deploy")
    f = flags(cmd)
    for flag in ("--gen2", "--trigger-http", "--allow-unauthenticated"):
        assert flag in f, flag
    assert f["--runtime"] == ["python311"] and f["--entry-point"] == ["receive"] and f["--region"] == ["us-central1"]
    assert f["--service-account"] == [f"canvas-events-receiver@{PROJECT}.iam.gserviceaccount.com"]
    env = dict(pair.split("=", 1) for pair in f["--set-env-vars"][0].split(","))
    assert env["PUBSUB_TOPIC"] == f"projects/{PROJECT}/topics/canvas-live-events"
    assert env["JWKS_URL"].startswith("https://")
    source = Path(f["--source"][0])
    assert source == run.workdir / "dist-receiver"
    assert (source / "main.py").is_file() and (source / "requirements.txt").is_file(), "stage-receiver did not run"


def test_template_build(runs: dict[str, DryRun]) -> None:
    run = runs["template-build"]
    image = f"us-central1-docker.pkg.dev/{PROJECT}/canvas-events/pipeline:{TAG}"
    (build,) = find(run, "gcloud", "builds submit")
    assert flags(build)["--config"] == ["templates/cloudbuild.yaml"]
    assert flags(build)["--substitutions"] == [f"_IMAGE={image}"] and build[-1] == "."
    (spec,) = find(run, "gcloud", "dataflow flex-template build")
    assert spec[4] == f"gs://{PROJECT}-canvas-events/templates/canvas-events-{TAG}.json"
    f = flags(spec)
    assert f["--image"] == [image] and f["--sdk-language"] == ["PYTHON"]
    assert f["--metadata-file"] == ["templates/metadata.json"] and (REPO / "templates/metadata.json").is_file()
    assert run.commands.index(build) < run.commands.index(spec)


def test_template_run_parameters_satisfy_the_template_metadata(runs: dict[str, DryRun]) -> None:
    (cmd,) = find(runs["template-run"], "gcloud", "dataflow flex-template run")
    f = flags(cmd)
    assert cmd[4] == "canvas-live-events"
    assert f["--template-file-gcs-location"] == [f"gs://{PROJECT}-canvas-events/templates/canvas-events-{TAG}.json"]
    assert "--enable-streaming-engine" in f and f["--region"] == ["us-central1"]
    assert f["--service-account-email"] == [f"canvas-events-dataflow@{PROJECT}.iam.gserviceaccount.com"]
    params = dict(p.split("=", 1) for p in f["--parameters"])
    metadata = {p["name"]: p for p in json.loads((REPO / "templates/metadata.json").read_text())["parameters"]}
    assert params.pop("sdk_container_image") == f"us-central1-docker.pkg.dev/{PROJECT}/canvas-events/pipeline:{TAG}"
    for name, value in params.items():
        assert name in metadata, f"{name} is not a template parameter"
        for regex in metadata[name]["regexes"]:
            assert re.fullmatch(regex, value), (name, value, regex)
    required = {n for n, p in metadata.items() if not p["isOptional"]}
    assert required <= set(params)
    assert params["input_subscription"] == f"projects/{PROJECT}/subscriptions/canvas-live-events-pipeline"


def test_template_run_extra_params_and_update(tmp_path: Path) -> None:
    run = dry_run("template-run", tmp_path, PARAMS="pii=drop window_seconds=600", UPDATE="1")
    (cmd,) = run.commands
    assert "--update" in cmd
    assert {"--parameters=pii=drop", "--parameters=window_seconds=600"} <= set(cmd)


def test_bq_table_renders_the_generated_ddl(runs: dict[str, DryRun]) -> None:
    run = runs["bq-table"]
    (mk,) = [c for c in run.commands if "mk" in c]
    assert "--dataset" in mk and "--force" in mk and mk[-1] == f"{PROJECT}:canvas_live_events"
    table, view = [c for c in run.commands if "query" in c]
    for query in (table, view):
        assert "--use_legacy_sql=false" in query and query[-2] == "<"
    ddl = Path(table[-1]).read_text()
    assert "${" not in ddl
    assert f"CREATE OR REPLACE EXTERNAL TABLE `{PROJECT}.canvas_live_events.events`" in ddl
    assert f"uris = ['gs://{PROJECT}-canvas-events/events/*']" in ddl
    assert f"hive_partition_uri_prefix = 'gs://{PROJECT}-canvas-events/events'" in ddl
    # Then the deduplicating view over it (schemas/views.py), in the same dataset.
    dedupe = Path(view[-1]).read_text()
    assert "${" not in dedupe
    assert dedupe.startswith(f"CREATE OR REPLACE VIEW `{PROJECT}.canvas_live_events.events_deduped`")
    assert f"FROM `{PROJECT}.canvas_live_events.events`" in dedupe and "QUALIFY ROW_NUMBER()" in dedupe


def test_bq_views_renders_every_generated_view(runs: dict[str, DryRun], tmp_path: Path) -> None:
    from schemas.canvas_fields import BODY_FIELDS
    from schemas.views import view_name

    (query,) = runs["bq-views"].commands
    assert query[:3] == ["bq", f"--project_id={PROJECT}", "--location=us-central1"]
    assert "query" in query and "--use_legacy_sql=false" in query and query[-2] == "<"
    script = Path(query[-1]).read_text()
    assert "${" not in script
    for name in [view_name(n) for n in BODY_FIELDS] + ["activity"]:
        assert f"CREATE OR REPLACE VIEW `{PROJECT}.canvas_live_events.{name}`" in script, name
    assert f"FROM `{PROJECT}.canvas_live_events.events_deduped`" in script
    other = dry_run("bq-views", tmp_path, DATASET="lake", BQ_LOCATION="EU")
    (query,) = other.commands
    assert "--location=EU" in query
    assert f"CREATE OR REPLACE VIEW `{PROJECT}.lake.activity`" in Path(query[-1]).read_text()


# ---- the real CLIs accept every line ----------------------------------------------------------

def test_gcloud_accepts_every_printed_gcloud_command(runs: dict[str, DryRun], tmp_path: Path) -> None:
    lines = [line for t in TARGETS for line in runs[t].lines if line.startswith("gcloud ")]
    assert_gcloud_accepts(lines, tmp_path)


def test_bq_accepts_every_printed_bq_command(runs: dict[str, DryRun], tmp_path: Path) -> None:
    bq_py = gcloud_sdk_root() / "platform" / "bq" / "bq.py"
    assert bq_py.is_file()
    cmds = [c for t in ("bq-table", "bq-views") for c in runs[t].commands if c[0] == "bq"]
    cmds.append(cmds[0] + ["--no_such_flag"])
    outcomes = []
    for cmd in cmds:
        args, stdin = (cmd[:-2], Path(cmd[-1]).read_text()) if "<" in cmd else (cmd, "")
        proc = subprocess.run(isolated([str(gcloud_sdk_python()), str(bq_py), *args[1:]]), input=stdin,
                              env=gcloud_env(tmp_path), capture_output=True, text=True, timeout=120)
        outcomes.append(" ".join((proc.stdout + proc.stderr).split()))  # bq wraps its messages
    *checked, control = outcomes
    assert "Flags parsing error" in control
    for cmd, out in zip(cmds, checked):
        assert "Flags parsing error" not in out and "active account" in out, (cmd, out[-1500:])
