"""The deploy bundle from `make -f mk/receiver.mk stage-receiver` stands on its own.

It is imported in a fresh interpreter whose sys.path holds the bundle and site-packages but
not the repository, then serves one request through functions-framework's own app factory
to the session's Pub/Sub emulator.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import distribution, version
from pathlib import Path

import pytest

from devkit.emulators import PubSubEmulator

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
    # The deployed app refuses an oversized body from Content-Length (MAX_BODY_BYTES=64 here).
    oversized = client.post("/", data=b"x" * 65, content_type="application/json")
    files = sorted(
        os.path.relpath(m.__file__, bundle) if os.path.abspath(m.__file__).startswith(bundle) else m.__file__
        for n, m in list(sys.modules.items())
        if (n == "pipeline" or n.startswith("pipeline.")) and getattr(m, "__file__", None)
    )
    print(json.dumps({
        "get": get.status_code, "post": post.status_code, "post_body": post.get_json(),
        "oversized": oversized.status_code, "wsgi_app": type(app.wsgi_app).__name__,
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
    assert set(pins) == {"functions-framework", "google-cloud-pubsub", "google-cloud-storage", "PyJWT", "cryptography",
                         "orjson", "msgspec"}
    for name, pinned in pins.items():
        assert pinned == version(name) and re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", pinned)

    topic = pubsub_emulator.create_topic("staged-bundle")
    sub = pubsub_emulator.create_subscription(topic, "staged-bundle-sub")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(pubsub_emulator.env(), PUBSUB_TOPIC=topic, MAX_BODY_BYTES="64")
    out = subprocess.run(
        [sys.executable, "-c", CHECK, str(REPO)],
        cwd=dist, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["get"] == 405
    assert result["post"] == 202 and result["post_body"]["status"] == "accepted"
    assert result["beam"] == []
    # The body limit sits in front of functions-framework's app in the deployed shape too.
    assert result["wsgi_app"] == "BodyLimitMiddleware" and result["oversized"] == 413
    # Every pipeline module came from the bundle (relative paths), none from the repository.
    assert "pipeline/receiver/main.py" in result["pipeline_files"]
    assert all(not f.startswith("/") for f in result["pipeline_files"]), result["pipeline_files"]
    assert [m.data for m in pubsub_emulator.pull(sub, max_messages=1)] == [b'{"metadata": {}, "body": {}}']


# --- every module of the bundle imports with only the bundle and its requirements -------------
#
# How the isolation is made, without the minutes a fresh virtualenv would take: a directory of
# symlinks to the installed files of exactly the distributions requirements.txt names and what
# they depend on (their Requires-Dist, extras and markers evaluated), nothing else. Each module
# is then imported in its own interpreter started with -I -S: no site-packages, no PYTHONPATH, no
# current directory, no editable-install finder; sys.path is the standard library, the bundle and
# that directory. Lazy imports inside functions are imported too (every absolute import the
# module's source names), so a dependency used only on the first signed delivery cannot hide.

IMPORT_ONE = textwrap.dedent(
    """
    import importlib, site, sys
    bundle, site_dir, module, *names = sys.argv[1:]
    sys.path.insert(0, bundle)
    site.addsitedir(site_dir)  # its .pth files (namespace packages), and only its own
    importlib.import_module(module)
    for name in names:
        parent, _, attribute = name.partition(":")
        imported = importlib.import_module(parent)
        if attribute and not hasattr(imported, attribute):
            importlib.import_module(parent + "." + attribute)
    leaked = sorted({m.__file__ for m in list(sys.modules.values())
                     if getattr(m, "__file__", None) and "site-packages" in m.__file__})
    print("LEAKED", leaked)
    """
)


def _imports(source: Path) -> list[str]:
    """Every absolute import in ``source`` (function-level ones included): ``mod`` or ``mod:name``."""
    names = []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            names += [f"{node.module}:{alias.name}" for alias in node.names]
    return names


def _requirement_closure(requirements: list[str]) -> set[str]:
    """Distribution names of ``requirements`` and of everything they require, transitively."""
    from packaging.requirements import Requirement

    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    queue = [(Requirement(line), frozenset[str]()) for line in requirements]
    while queue:
        requirement, _ = queue.pop()
        key = (requirement.name.lower(), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(requirement.name.lower())
        for line in distribution(requirement.name).requires or []:
            child = Requirement(line)
            extras = requirement.extras or {""}
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in extras):
                queue.append((child, frozenset()))
    return names


def _site_of(names: set[str], into: Path) -> None:
    """Symlink every installed file of the distributions ``names`` into ``into``."""
    for name in names:
        dist = distribution(name)
        for file in dist.files or []:
            if ".." in file.parts:
                continue  # console scripts outside site-packages
            target = into / file
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(Path(dist.locate_file(file)).resolve())


def test_every_bundled_module_imports_with_only_the_bundle_and_its_requirements(tmp_path: Path) -> None:
    dist = tmp_path / "dist-receiver"
    subprocess.run(
        ["make", "-s", "-f", str(REPO / "mk" / "receiver.mk"), "stage-receiver", f"RECEIVER_DIST={dist}"],
        cwd=tmp_path, check=True, capture_output=True, timeout=120,
    )
    bundled = sorted(p.relative_to(dist) for p in dist.rglob("*.py"))

    # The bundle holds the receiver's import closure within pipeline/, lazy imports included, and nothing more.
    closure: set[Path] = {Path("main.py"), Path("pipeline/__init__.py"), Path("pipeline/core/__init__.py")}
    todo = [Path(p).relative_to(REPO) for p in sorted((REPO / "pipeline" / "receiver").glob("*.py"))]
    while todo:
        module = todo.pop()
        if module in closure and module.name != "main.py":
            continue
        closure.add(module)
        for name in _imports(REPO / module):
            module_name, _, attribute = name.partition(":")
            parts = module_name.split(".")
            if parts[0] == "pipeline":
                path = Path(*parts).with_suffix(".py")
                todo += [path] if (REPO / path).is_file() else [Path(*parts, "__init__.py")]
                submodule = Path(*parts, attribute).with_suffix(".py")  # from package import module
                if attribute and (REPO / submodule).is_file():
                    todo.append(submodule)
    assert bundled == sorted(closure)
    assert Path("pipeline/core/normalize.py") not in bundled  # imports schemas and pyarrow

    requirements = [line for line in (dist / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    site_dir = tmp_path / "site"
    allowed = _requirement_closure(requirements)
    assert "pyarrow" not in allowed and "apache-beam" not in allowed
    _site_of(allowed, site_dir)

    for module in bundled:
        dotted = ".".join(module.with_suffix("").parts).removesuffix(".__init__")
        result = subprocess.run(
            [sys.executable, "-I", "-S", "-c", IMPORT_ONE, str(dist), str(site_dir), dotted, *_imports(dist / module)],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, f"{module} does not import in isolation:\n{result.stderr[-2000:]}"
        assert "LEAKED []" in result.stdout, result.stdout  # nothing came from a real site-packages
