"""The SQS relay's make targets (mk/sqs.mk) with DRY_RUN=1, checked like tests/deploy/test_make_targets.py:
complete commands the real gcloud accepts, and a staged source bundle that runs without Beam."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.deploy.gcloud_env import assert_gcloud_accepts
from tests.deploy.dry_run import PROJECT, DryRun, dry_run, find, flags, make

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/canvas-live-events"
TARGETS = ("sqs-relay-secrets", "sqs-relay-iam", "deploy-sqs-relay")
SA = f"serviceAccount:canvas-events-sqs-relay@{PROJECT}.iam.gserviceaccount.com"


def relay_dry_run(target: str, workdir: Path, **settings: str) -> DryRun:
    return dry_run(target, workdir, SQS_QUEUE_URL=QUEUE_URL, SQS_RELAY_DIST=str(workdir / "dist-sqs-relay"),
                   **settings)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DryRun]:
    return {t: relay_dry_run(t, tmp_path_factory.mktemp(t)) for t in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_every_line_is_a_gcloud_command_on_the_project(runs: dict[str, DryRun], target: str) -> None:
    assert runs[target].commands
    for line, cmd in zip(runs[target].lines, runs[target].commands):
        assert cmd[0] == "gcloud" and f"--project={PROJECT}" in cmd, line
        assert "$(" not in line and not any(t.endswith((",", "=")) for t in cmd), line


@pytest.mark.parametrize("setting", ["PROJECT", "SQS_QUEUE_URL"])
def test_a_missing_setting_stops_the_deploy_before_any_command(tmp_path: Path, setting: str) -> None:
    settings = {"PROJECT": PROJECT, "SQS_QUEUE_URL": QUEUE_URL, "SQS_RELAY_DIST": str(tmp_path / "d"), setting: ""}
    proc = make("deploy-sqs-relay", tmp_path, **settings)
    assert proc.returncode != 0 and f"{setting} is not set" in proc.stderr
    assert not [line for line in proc.stdout.splitlines() if line.startswith("gcloud")]
    assert not (tmp_path / "d").exists()


def test_deploy_is_one_always_on_private_instance_with_the_keys_from_secret_manager(
    runs: dict[str, DryRun],
) -> None:
    run = runs["deploy-sqs-relay"]
    (cmd,) = find(run, "gcloud", "run deploy")
    f = flags(cmd)
    assert cmd[3] == "canvas-events-sqs-relay"
    assert f["--min-instances"] == ["1"] and f["--max-instances"] == ["1"] and "--no-cpu-throttling" in f
    assert "--no-allow-unauthenticated" in f and f["--ingress"] == ["internal"]
    assert f["--service-account"] == [SA.split(":", 1)[1]]
    env = dict(pair.split("=", 1) for pair in f["--set-env-vars"][0].split(","))
    assert env == {"SQS_QUEUE_URL": QUEUE_URL, "PUBSUB_TOPIC": f"projects/{PROJECT}/topics/canvas-live-events",
                   "SQS_RECEIVERS": "4", "DEAD_LETTER_OUTPUT": f"gs://{PROJECT}-canvas-events/dead-letter"}
    secrets = dict(pair.split("=", 1) for pair in f["--set-secrets"][0].split(","))
    assert secrets == {"AWS_ACCESS_KEY_ID": "canvas-events-aws-access-key-id:latest",
                       "AWS_SECRET_ACCESS_KEY": "canvas-events-aws-secret-access-key:latest"}
    assert Path(f["--source"][0]) == run.workdir / "dist-sqs-relay"
    # The service account and its roles come first, in the same target.
    assert run.commands.index(cmd) == len(run.commands) - 1 and find(run, "gcloud", "iam service-accounts create")


def test_the_relay_account_gets_exactly_its_roles(runs: dict[str, DryRun]) -> None:
    grants = {(c[1], c[c.index("add-iam-policy-binding") + 1], flags(c)["--role"][0])
              for c in runs["sqs-relay-iam"].commands if "add-iam-policy-binding" in c and flags(c)["--member"] == [SA]}
    assert grants == {
        ("pubsub", "canvas-live-events", "roles/pubsub.publisher"),
        ("storage", f"gs://{PROJECT}-canvas-events", "roles/storage.objectCreator"),
        ("secrets", "canvas-events-aws-access-key-id", "roles/secretmanager.secretAccessor"),
        ("secrets", "canvas-events-aws-secret-access-key", "roles/secretmanager.secretAccessor"),
    }


def test_secrets_are_created_without_a_value_on_the_command_line(runs: dict[str, DryRun]) -> None:
    names = [c[3] for c in find(runs["sqs-relay-secrets"], "gcloud", "secrets create")]
    assert names == ["canvas-events-aws-access-key-id", "canvas-events-aws-secret-access-key"]
    assert not any("--data-file" in t for c in runs["sqs-relay-secrets"].commands for t in c)


def test_region_and_secret_names_can_be_set(tmp_path: Path) -> None:
    run = relay_dry_run("deploy-sqs-relay", tmp_path, SQS_REGION="eu-west-1", AWS_ACCESS_KEY_ID_SECRET="k1",
                        SQS_DEAD_LETTER_OUTPUT="gs://other/dl")
    (cmd,) = find(run, "gcloud", "run deploy")
    env = dict(pair.split("=", 1) for pair in flags(cmd)["--set-env-vars"][0].split(","))
    assert env["SQS_REGION"] == "eu-west-1" and env["DEAD_LETTER_OUTPUT"] == "gs://other/dl"
    assert flags(cmd)["--set-secrets"][0].startswith("AWS_ACCESS_KEY_ID=k1:latest,")


def test_apis_now_include_secret_manager(tmp_path: Path) -> None:
    (cmd,) = find(dry_run("apis", tmp_path), "gcloud", "services enable")
    assert "secretmanager.googleapis.com" in cmd


def test_the_staged_bundle_runs_the_relay_without_beam(runs: dict[str, DryRun]) -> None:
    dist = runs["deploy-sqs-relay"].workdir / "dist-sqs-relay"
    assert (dist / "Procfile").read_text() == "web: python main.py\n"
    assert (dist / ".python-version").read_text().strip() == "3.11"
    pins = dict(line.split("==") for line in (dist / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    assert pins["boto3"] == version("boto3") and pins["google-cloud-pubsub"] == version("google-cloud-pubsub")
    assert not any(name.lower().startswith("apache-beam") for name in pins)
    # main.py as Cloud Run starts it, with Beam made unimportable: a usage error, not an ImportError.
    probe = ("import sys, runpy; sys.modules['apache_beam'] = None; sys.argv = ['main.py']; "
             "runpy.run_path('main.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=dist, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"})
    assert proc.returncode == 2, proc.stderr
    assert "--queue_url (or SQS_QUEUE_URL) is required" in proc.stderr
    assert not any(p.name == "main.py" and p.parent.name == "pipeline" for p in dist.rglob("*.py"))


def test_gcloud_accepts_every_printed_command(runs: dict[str, DryRun], tmp_path: Path) -> None:
    lines = [line for t in TARGETS for line in runs[t].lines]
    assert_gcloud_accepts(lines, tmp_path, control_from=-1)
