"""Run the real Google Cloud CLI offline and harmlessly: throwaway config, no network at all.

Every gcloud/bq call in these tests gets a fresh ``CLOUDSDK_CONFIG`` (no account, no project
of the developer's leaks in or out), no GCE metadata probing, no usage reporting or update
checks, and runs inside ``unshare -n`` (a network namespace with only a down loopback) when
the machine allows it, so that a command that got past argument parsing can only fail at
"no active account", never reach a Google endpoint.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


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
