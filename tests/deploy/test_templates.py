"""The Flex Template files: metadata generated from the options class, pins that agree, an image recipe.

Nothing here reaches Google Cloud: gcloud validates the metadata offline (--print-only), in a
network namespace of its own and with a throwaway CLOUDSDK_CONFIG, and the fields it does not
check are checked against the API's own message definitions shipped with the SDK.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from apache_beam.options.pipeline_options import PipelineOptions
from pipeline.options import CanvasEventsOptions, CompactOptions, preflight
from tests.deploy.gcloud_env import gcloud_env, gcloud_sdk_python, gcloud_sdk_root, isolated

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_metadata", TEMPLATES / "generate_metadata.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="module")
def metadata() -> dict:
    return json.loads((TEMPLATES / "metadata.json").read_text())


def option_dests() -> list[str]:
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    CanvasEventsOptions._add_argparse_args(parser)
    CompactOptions._add_argparse_args(parser)  # the template's job=compact
    return [a.dest for a in parser._actions]


def setup_py_install_requires() -> list[Requirement]:
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INSTALL_REQUIRES" for t in node.targets):
            return [Requirement(r) for r in ast.literal_eval(node.value)]
    raise AssertionError("no INSTALL_REQUIRES in setup.py")


def pinned_requirements() -> dict[str, Version]:
    pins = {}
    for line in (TEMPLATES / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"not pinned with ==: {line}"
        pins[_canonical(req.name)] = Version(spec.version)
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- metadata.json --------------------------------------------------------------------------

def test_checked_in_metadata_is_what_the_generator_writes(generator: ModuleType) -> None:
    assert (TEMPLATES / "metadata.json").read_text() == generator.render(), (
        "templates/metadata.json is stale: run python templates/generate_metadata.py")


def test_parameters_are_the_options_one_to_one(metadata: dict) -> None:
    names = [p["name"] for p in metadata["parameters"]]
    assert names == option_dests()
    assert len(set(names)) == len(names)


def test_every_parameter_is_complete(metadata: dict) -> None:
    for p in metadata["parameters"]:
        assert p["label"].strip() and p["helpText"].strip() and "default" in p["helpText"].lower(), p["name"]
        assert isinstance(p["isOptional"], bool) and p["regexes"], p["name"]
    required = {p["name"] for p in metadata["parameters"] if not p["isOptional"]}
    assert required == {"output", "dead_letter_output"}


def test_regexes_compile_accept_the_good_example_and_reject_the_bad(generator: ModuleType, metadata: dict) -> None:
    for p in metadata["parameters"]:
        shown = generator.PRESENTATION[p["name"]]
        for pattern in p["regexes"]:
            # Dataflow evaluates them as Java regexes: keep to syntax both engines read alike.
            assert "(?P" not in pattern and "\\Z" not in pattern, (p["name"], pattern)
            assert pattern.startswith("^") and pattern.endswith("$"), (p["name"], pattern)
            assert re.fullmatch(pattern, shown.good), (p["name"], shown.good)
        assert not all(re.fullmatch(rx, shown.bad) for rx in p["regexes"]), (p["name"], shown.bad)


def test_good_examples_pass_the_pipelines_own_preflight(generator: ModuleType) -> None:
    """The regexes must not let through what the pipeline refuses (or refuse what it takes)."""
    shown = generator.PRESENTATION
    argv = [f"--{name}={p.good}" for name, p in shown.items() if name != "input_files"]
    argv.append("--runner=DataflowRunner")
    assert preflight(PipelineOptions(argv)) == []
    batch = [a for a in argv if not a.startswith("--input_subscription")] + [f"--input_files={shown['input_files'].good}"]
    assert preflight(PipelineOptions(batch)) == []


def test_generator_refuses_an_option_it_has_no_presentation_for(generator: ModuleType,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    trimmed = dict(generator.PRESENTATION)
    del trimmed["pii_salt"]
    monkeypatch.setattr(generator, "PRESENTATION", trimmed)
    with pytest.raises(SystemExit, match="pii_salt"):
        generator.build_metadata()


def test_fields_are_those_of_the_dataflow_api(metadata: dict, tmp_path: Path) -> None:
    """gcloud passes unknown metadata keys through silently; the API message definitions do not."""
    script = (
        "import json, sys\n"
        "from googlecloudsdk.generated_clients.apis.dataflow.v1b3 import dataflow_v1b3_messages as m\n"
        "print(json.dumps({'template': [f.name for f in m.TemplateMetadata.all_fields()],\n"
        "  'parameter': [f.name for f in m.ParameterMetadata.all_fields()],\n"
        "  'param_types': [e.name for e in m.ParameterMetadata.ParamTypeValueValuesEnum],\n"
        "  'enum_option': [f.name for f in m.ParameterMetadataEnumOption.all_fields()]}))\n")
    proc = subprocess.run(isolated([str(gcloud_sdk_python()), "-c", script]), env=gcloud_env(tmp_path, sdk_imports=True),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    api = json.loads(proc.stdout)
    assert set(metadata) <= set(api["template"])
    for p in metadata["parameters"]:
        assert set(p) <= set(api["parameter"]), p["name"]
        assert p["paramType"] in api["param_types"], p["name"]
        for option in p.get("enumOptions", []):
            assert set(option) <= set(api["enum_option"])
    pii = next(p for p in metadata["parameters"] if p["name"] == "pii")
    assert [o["value"] for o in pii["enumOptions"]] == ["keep", "hash", "drop"]


def test_gcloud_builds_the_template_spec_offline(tmp_path: Path, metadata: dict) -> None:
    proc = subprocess.run(
        isolated(["gcloud", "dataflow", "flex-template", "build", "gs://b/t.json", "--image=gcr.io/p/i:tag",
                  "--sdk-language=PYTHON", f"--metadata-file={TEMPLATES / 'metadata.json'}", "--print-only"]),
        env=gcloud_env(tmp_path), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = proc.stdout.strip()
    printed = printed[2:] if printed.startswith("|-") else printed
    spec = json.loads(printed)
    assert spec["image"] == "gcr.io/p/i:tag" and spec["sdkInfo"]["language"] == "PYTHON"
    assert [p["name"] for p in spec["metadata"]["parameters"]] == [p["name"] for p in metadata["parameters"]]


# ---- requirements.txt, setup.py, Dockerfile -------------------------------------------------

def test_requirements_satisfy_every_setup_py_range() -> None:
    pins = pinned_requirements()
    for req in setup_py_install_requires():
        name = _canonical(req.name)
        assert name in pins, f"{req.name} from setup.py is not pinned in templates/requirements.txt"
        assert req.specifier.contains(pins[name]), f"{req.name}=={pins[name]} is outside setup.py's {req.specifier}"


def test_requirements_are_runtime_only_and_generated() -> None:
    text = (TEMPLATES / "requirements.txt").read_text()
    assert "make requirements" in text.splitlines()[0]
    pins = pinned_requirements()
    for dev_only in ("pytest", "pytest-timeout", "hypothesis", "duckdb", "sqlglot", "gcp-storage-emulator",
                     "canvas-live-events"):
        assert dev_only not in pins, dev_only
    # The [gcp] extra of apache-beam is there, not just the core.
    assert {"google-cloud-pubsub", "google-cloud-bigquery", "google-apitools"} <= set(pins)


def _dockerfile() -> str:
    return (TEMPLATES / "Dockerfile").read_text()


def test_beam_and_python_versions_agree_across_dockerfile_setup_and_requirements() -> None:
    docker = _dockerfile()
    (sdk_image,) = re.findall(r"COPY --from=apache/beam_python(\d+\.\d+)_sdk:(\S+) /opt/apache/beam /opt/apache/beam",
                              docker)
    python_minor, beam_version = sdk_image
    beam_req = next(r for r in setup_py_install_requires() if _canonical(r.name) == "apache-beam")
    assert "gcp" in beam_req.extras
    assert beam_req.specifier.contains(beam_version)
    assert pinned_requirements()["apache-beam"] == Version(beam_version)
    launcher = re.search(r"^FROM gcr.io/dataflow-templates-base/python(\d)(\d+)-template-launcher-base", docker, re.M)
    assert launcher and f"{launcher.group(1)}.{launcher.group(2)}" == python_minor
    python_requires = re.search(r'python_requires="([^"]+)"', (REPO / "setup.py").read_text())
    assert python_requires and Requirement(f"python{python_requires.group(1)}").specifier.contains(f"{python_minor}.0")


def test_dockerfile_is_launcher_and_sdk_container_in_one() -> None:
    docker = _dockerfile()
    instructions = [line.split(None, 1) for line in docker.splitlines() if line.strip() and not line.startswith("#")]
    assert instructions[-1] == ["ENTRYPOINT", '["/opt/apache/beam/boot"]']
    env = dict(re.findall(r'^ENV (\w+)="?([^"\n]+)"?$', docker, re.M))
    assert env["FLEX_TEMPLATE_PYTHON_PY_FILE"] == "${WORKDIR}/launch.py"
    # Every COPY source exists (the build context is the repository root).
    for kind, rest in instructions:
        if kind == "COPY" and not rest.startswith("--from"):
            source = rest.split()[0]
            assert (REPO / source).exists(), source
    assert "pip install --no-cache-dir -r requirements.txt" in docker
    assert "pip install --no-cache-dir --no-deps ." in docker


def test_launch_file_runs_compaction_when_job_is_compact(tmp_path: Path) -> None:
    """One template, two jobs: job=compact reaches pipeline.compact (here on an empty local lake)."""
    lake = tmp_path / "events"
    lake.mkdir()
    proc = subprocess.run([sys.executable, str(TEMPLATES / "launch.py"), "--job=compact", f"--output={lake}",
                           "--dead_letter_output=gs://b/dead", "--older_than_days=3"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 partition(s) in scope" in proc.stderr and "files_after" in proc.stderr


def test_launch_file_hands_its_arguments_to_the_pipeline(tmp_path: Path) -> None:
    """What the launcher runs: bad options reach pipeline.main and come back as exit 2."""
    proc = subprocess.run([sys.executable, str(TEMPLATES / "launch.py"), "--output=gs://b/o"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "dead_letter_output" in proc.stderr


def test_cloudbuild_builds_the_dockerfile_into_the_image() -> None:
    build = yaml.safe_load((TEMPLATES / "cloudbuild.yaml").read_text())
    (step,) = build["steps"]
    assert "--file=templates/Dockerfile" in step["args"] and "--tag=${_IMAGE}" in step["args"]
    assert step["args"][-1] == "."
    assert build["images"] == ["${_IMAGE}"]


def test_gcloud_is_installed() -> None:
    assert shutil.which("gcloud"), "gcloud (Google Cloud CLI) is needed for the deploy tests"
    assert gcloud_sdk_root().is_dir()
