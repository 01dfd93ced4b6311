"""Run the real Google Cloud CLI offline and harmlessly: throwaway config, no network at all.

Every gcloud/bq call in these tests gets a fresh ``CLOUDSDK_CONFIG`` (no account, no project
of the developer's leaks in or out), no GCE metadata probing, no usage reporting or update
checks, and runs inside ``unshare -n`` (a network namespace with only a down loopback) when
the machine allows it, so that a command that got past argument parsing can only fail at
"no active account", never reach a Google endpoint.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

NO_ACCOUNT = "You do not currently have an active account selected"


def gcloud_env(config_dir: Path | None = None, *, sdk_imports: bool = False) -> dict[str, str]:
    """Environment for a gcloud/bq process; ``sdk_imports`` puts the SDK's own modules on
    PYTHONPATH, for scripts that import ``googlecloudsdk`` (gcloud itself needs no help)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_", "BOTO_"))}
    env.update(
        CLOUDSDK_CONFIG=str(config_dir or tempfile.mkdtemp(prefix="gcloud-config-")),
        CLOUDSDK_CORE_CHECK_GCE_METADATA="false",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
    )
    if sdk_imports:
        sdk = gcloud_sdk_root()
        env["PYTHONPATH"] = os.pathsep.join([str(sdk / "lib"), str(sdk / "lib" / "third_party")])
    return env


@functools.cache
def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def isolated(cmd: list[str]) -> list[str]:
    """``cmd`` inside a fresh network namespace when possible."""
    return ["unshare", "-n", *cmd] if _can_unshare() else cmd


@functools.cache
def gcloud_sdk_root() -> Path:
    gcloud = shutil.which("gcloud")
    assert gcloud, "gcloud is not installed"
    root = Path(os.path.realpath(gcloud)).parent.parent
    if (root / "lib" / "googlecloudsdk").is_dir():
        return root
    out = subprocess.run(["gcloud", "info", "--format=value(installation.sdk_root)"],
                         capture_output=True, text=True, env={**os.environ, "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false"})
    return Path(out.stdout.strip())


def gcloud_sdk_python() -> Path:
    bundled = gcloud_sdk_root() / "platform" / "bundledpythonunix" / "bin" / "python3"
    if bundled.exists():
        return bundled
    return Path(os.environ.get("CLOUDSDK_PYTHON") or shutil.which("python3") or "python3")


def assert_gcloud_accepts(lines: list[str], config_dir: Path, *, control_from: int = 0) -> None:
    """The real gcloud parses every line (gcloud_parse.py, offline): each gets past argument
    parsing and stops at "no active account". A control line (``lines[control_from]`` with a
    flag that does not exist) must be refused, or the check itself is broken."""
    lines = [*lines, lines[control_from] + " --no-such-flag"]
    proc = subprocess.run(
        isolated([str(gcloud_sdk_python()), str(Path(__file__).with_name("gcloud_parse.py"))]),
        input="\n".join(lines), env=gcloud_env(config_dir, sdk_imports=True), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == len(lines)
    *checked, control = results
    assert control["exit"] == 2 and "unrecognized arguments" in control["stderr"]
    for line, result in zip(lines, checked):
        assert result["exit"] == 1 and NO_ACCOUNT in result["stderr"], (line, result)
