"""`make compact` and `make compact-schedule` (mk/compact.mk) with DRY_RUN=1, checked like the
other deploy targets: complete commands, template parameters its metadata accepts, and every
gcloud line accepted by the real gcloud argument parser offline."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.deploy.gcloud_env import assert_gcloud_accepts
from tests.deploy.dry_run import PROJECT, REPO, TAG, DryRun, dry_run, find, flags, make

TARGETS = ("compact", "compact-schedule")
METADATA = {p["name"]: p for p in json.loads((REPO / "templates/metadata.json").read_text())["parameters"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, DryRun]:
    return {t: dry_run(t, tmp_path_factory.mktemp(t)) for t in TARGETS}


def _check_parameters(params: dict[str, str]) -> None:
    assert params.pop("sdk_container_image") == f"us-central1-docker.pkg.dev/{PROJECT}/canvas-events/pipeline:{TAG}"
    for name, value in params.items():
        assert name in METADATA, f"{name} is not a template parameter"
        for regex in METADATA[name]["regexes"]:
            assert re.fullmatch(regex, value), (name, value, regex)
    assert {n for n, p in METADATA.items() if not p["isOptional"]} <= set(params)
    assert params["job"] == "compact" and params["output"] == f"gs://{PROJECT}-canvas-events/events"


@pytest.mark.parametrize("target", TARGETS)
def test_missing_project_stops_before_any_command(tmp_path: Path, target: str) -> None:
    proc = make(target, tmp_path)
    assert proc.returncode != 0 and "PROJECT is not set" in proc.stderr
    assert "gcloud" not in proc.stdout


def test_compact_launches_the_template_as_a_batch_job(runs: dict[str, DryRun]) -> None:
    (cmd,) = find(runs["compact"], "gcloud", "dataflow flex-template run")
    f = flags(cmd)
    assert cmd[4] == "canvas-events-compact" and "--enable-streaming-engine" not in f
    assert f["--template-file-gcs-location"] == [f"gs://{PROJECT}-canvas-events/templates/canvas-events-{TAG}.json"]
    _check_parameters(dict(p.split("=", 1) for p in f["--parameters"]))


def test_compact_dates_and_sizes_reach_the_parameters(tmp_path: Path) -> None:
    run = dry_run("compact", tmp_path, COMPACT_DATES="2024-11-01,2024-11-02", COMPACT_TARGET_FILE_MB="128")
    params = dict(p.split("=", 1) for p in flags(run.commands[0])["--parameters"])
    assert params["dates"] == "2024-11-01,2024-11-02" and params["target_file_mb"] == "128"
    _check_parameters(params)


def test_compact_schedule_posts_a_launch_request_daily(runs: dict[str, DryRun]) -> None:
    run = runs["compact-schedule"]
    (job,) = find(run, "gcloud", "scheduler jobs create http")
    f = flags(job)
    assert f["--schedule"] == ["30 3 * * *"] and f["--http-method"] == ["POST"]
    assert f["--uri"] == [f"https://dataflow.googleapis.com/v1b3/projects/{PROJECT}/locations/us-central1/flexTemplates:launch"]
    scheduler_sa = f"canvas-events-scheduler@{PROJECT}.iam.gserviceaccount.com"
    assert f["--oauth-service-account-email"] == [scheduler_sa]
    body = json.loads(Path(f["--message-body-from-file"][0]).read_text())["launchParameter"]
    assert body["containerSpecGcsPath"] == f"gs://{PROJECT}-canvas-events/templates/canvas-events-{TAG}.json"
    assert body["environment"]["serviceAccountEmail"] == f"canvas-events-dataflow@{PROJECT}.iam.gserviceaccount.com"
    _check_parameters(dict(body["parameters"]))
    roles = {flags(c)["--role"][0] for c in run.commands if "add-iam-policy-binding" in c}
    assert roles == {"roles/dataflow.developer", "roles/iam.serviceAccountUser"}
    assert any(c[:4] == ["gcloud", "services", "enable", "cloudscheduler.googleapis.com"] for c in run.commands)


def test_gcloud_accepts_every_printed_line(runs: dict[str, DryRun], tmp_path: Path) -> None:
    lines = [line for t in TARGETS for line in runs[t].lines if line.startswith("gcloud ")]
    assert_gcloud_accepts(lines, tmp_path)


def test_every_compact_setting_is_in_the_readme_table() -> None:
    settings = re.findall(r"^([A-Z_]+) \?=", (REPO / "mk" / "compact.mk").read_text(), re.M)
    assert "COMPACT_SCHEDULE" in settings
    readme = (REPO / "README.md").read_text()
    documented = {name for row in re.findall(r"^\| (`[A-Z_]+`(?: / `[A-Z_]+`)*) \|", readme, re.M)
                  for name in re.findall(r"`([A-Z_]+)`", row)}
    assert set(settings) <= documented, sorted(set(settings) - documented)
