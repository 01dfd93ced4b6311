"""The deploy bundle from `make -f mk/receiver.mk stage-receiver` stands on its own.

It is imported in a fresh interpreter whose sys.path holds the bundle and site-packages but
not the repository, then serves one request through functions-framework's own app factory
to the session's Pub/Sub emulator.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from pipeline.devtools.emulators import PubSubEmulator

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import json, os, sys
    bundle = os.getcwd()
    repo = sys.argv[1]
    # No repository on the path: drop it, and the editable-install finder that maps to it.
    sys.path[:] = [bundle] + [p for p in sys.path if p and os.path.abspath(p) != repo]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    import functions_framework
    app = functions_framework.create_app(target="receive", source=os.path.join(bundle, "main.py"))
    client = app.test_client()
    get = client.get("/")
    post = client.post("/", data=b'{"metadata": {}, "body": {}}', content_type="application/json")
    files = sorted(
        os.path.relpath(m.__file__, bundle) if os.path.abspath(m.__file__).startswith(bundle) else m.__file__
        for n, m in list(sys.modules.items())
        if (n == "pipeline" or n.startswith("pipeline.")) and getattr(m, "__file__", None)
    )
    print(json.dumps({
        "get": get.status_code, "post": post.status_code, "post_body": post.get_json(),
        "pipeline_files": files,
        "beam": sorted(n for n in sys.modules if n.split(".")[0] == "apache_beam"),
    }))
    """
)


def test_staged_bundle_imports_and_serves_without_the_repo(
    tmp_path: Path, pubsub_emulator: PubSubEmulator
) -> None:
    dist = tmp_path / "dist-receiver"
    subprocess.run(
        ["make", "-s", "-f", str(REPO / "mk" / "receiver.mk"), "stage-receiver", f"RECEIVER_DIST={dist}"],
        cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )
    assert (dist / "main.py").is_file()
    requirements = (dist / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in requirements if line and not line.startswith("#"))
    assert set(pins) == {"functions-framework", "google-cloud-pubsub", "PyJWT", "cryptography", "orjson", "msgspec"}
    for name, pinned in pins.items():
        assert pinned == version(name) and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", pinned)

    topic = pubsub_emulator.create_topic("staged-bundle")
    sub = pubsub_emulator.create_subscription(topic, "staged-bundle-sub")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(pubsub_emulator.env(), PUBSUB_TOPIC=topic)
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(REPO)],
        cwd=dist, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["get"] == 405
    assert result["post"] == 202 and result["post_body"]["status"] == "accepted"
    assert result["beam"] == []
    # Every pipeline module came from the bundle (relative paths), none from the repository.
    assert "pipeline/receiver/main.py" in result["pipeline_files"]
    assert all(not f.startswith("/") for f in result["pipeline_files"]), result["pipeline_files"]
    assert [m.data for m in pubsub_emulator.pull(sub, max_messages=1)] == [b'{"metadata": {}, "body": {}}']
