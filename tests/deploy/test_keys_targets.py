"""mk/keys.mk with DRY_RUN=1: the daily key-archive job (Cloud Run job + Cloud Scheduler), offline.

Same method as test_make_targets.py: parse each printed line, check what each step needs, then
hand every gcloud line to the real gcloud argument parser (it must stop at "no active account").
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.gcloud_env import assert_gcloud_accepts
from tests.deploy.dry_run import PROJECT, TAG, DryRun, dry_run, find, flags, make

KEYS_SA = f"canvas-events-keys@{PROJECT}.iam.gserviceaccount.com"
IMAGE = f"us-central1-docker.pkg.dev/{PROJECT}/canvas-events/pipeline:{TAG}"
ARCHIVE = f"gs://{PROJECT}-canvas-events/keys/jwks-archive.json"


@pytest.fixture(scope="module")
def schedule(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    return dry_run("keys-schedule", tmp_path_factory.mktemp("keys"))


def test_the_job_runs_archive_keys_from_the_template_image(schedule: DryRun) -> None:
    (deploy,) = find(schedule, "gcloud", "run jobs deploy")
    f = flags(deploy)
    assert deploy[4] == "canvas-events-archive-keys"
    assert f["--image"] == [IMAGE] and f["--command"] == ["canvas-events"]
    args = f["--args"][0].split(",")
    assert args[0] == "archive-keys"
    assert "--jwks_url=https://8axpcl50e4.execute-api.us-east-1.amazonaws.com/main/jwks" in args
    assert f"--archive={ARCHIVE}" in args
    assert f["--service-account"] == [KEYS_SA]


def test_the_service_account_may_only_use_bucket_objects_and_run_the_job(schedule: DryRun) -> None:
    grants = {(c[1], flags(c)["--role"][0]) for c in schedule.commands if "add-iam-policy-binding" in c}
    assert grants == {("storage", "roles/storage.objectUser"), ("run", "roles/run.invoker")}
    assert all(flags(c)["--member"] == [f"serviceAccount:{KEYS_SA}"]
               for c in schedule.commands if "add-iam-policy-binding" in c)


def test_scheduler_calls_the_jobs_run_api_daily(schedule: DryRun) -> None:
    (create,) = find(schedule, "gcloud", "scheduler jobs create http")
    f = flags(create)
    assert f["--uri"] == [f"https://run.googleapis.com/v2/projects/{PROJECT}/locations/us-central1/jobs/"
                          "canvas-events-archive-keys:run"]
    assert f["--http-method"] == ["POST"] and f["--oauth-service-account-email"] == [KEYS_SA]
    minute, hour, *rest = f["--schedule"][0].split()
    assert rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()  # once a day
    assert schedule.commands.index(create) > schedule.commands.index(find(schedule, "gcloud", "run jobs deploy")[0])


def test_settings_change_the_commands(tmp_path: Path) -> None:
    run = dry_run("keys-schedule", tmp_path, KEYS_ARCHIVE="gs://other-bucket/k.json", KEYS_SCHEDULE="5 1 * * *")
    (deploy,) = find(run, "gcloud", "run jobs deploy")
    assert "--archive=gs://other-bucket/k.json" in flags(deploy)["--args"][0].split(",")
    (create,) = find(run, "gcloud", "scheduler jobs create http")
    assert flags(create)["--schedule"] == ["5 1 * * *"]


@pytest.mark.parametrize("target", ["keys-job", "keys-schedule", "keys-run"])
def test_missing_project_stops_before_any_command(tmp_path: Path, target: str) -> None:
    proc = make(target, tmp_path, PROJECT="")
    assert proc.returncode != 0 and "PROJECT is not set" in proc.stderr
    assert not [line for line in proc.stdout.splitlines() if line.startswith("gcloud")]


def test_gcloud_accepts_every_printed_command(schedule: DryRun, tmp_path: Path) -> None:
    lines = schedule.lines + dry_run("keys-run", tmp_path / "run").lines
    assert all(line.startswith("gcloud ") and f"--project={PROJECT}" in line for line in lines)
    assert_gcloud_accepts(lines, tmp_path)
