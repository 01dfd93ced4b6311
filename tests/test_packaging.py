"""The wheel holds only what production runs: the pipeline package and schemas, no dev kit, no tests.

Built the way a user builds it (``pip wheel --no-deps . -w DIR``, pip's isolated build) from a
copy of the repository's files (tracked and new, ignored ones left out), so the build never
writes into the working tree.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
DEV_ONLY = ("devkit", "tests", "bench")


def repository_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, check=True, capture_output=True, timeout=30,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


def test_wheel_holds_the_production_modules_only(tmp_path: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "wheel"
    files = repository_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", str(source), "-w", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    [wheel] = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = [PurePosixPath(n) for n in archive.namelist()]
        sources = {str(n): archive.read(str(n)).decode() for n in names if n.suffix == ".py"}

    top_levels = {n.parts[0] for n in names if not n.parts[0].endswith(".dist-info")}
    assert top_levels == {"pipeline", "schemas"}
    # Every production module of the repository is in it, and nothing else.
    expected = {n for n in files if n.endswith(".py") and n.split("/")[0] in top_levels}
    assert set(sources) == expected
    assert "schemas/bigquery/events.json" in {str(n) for n in names}
    # No module in it imports development code (which would fail on a worker).
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(m.split(".")[0] in DEV_ONLY for m in modules), (name, modules)
    # And the dev kit is really where its importers look for it.
    assert all((REPO / "devkit" / f"{m}.py").is_file() for m in ("demo", "emulators", "loopback", "signing",
                                                                  "samples", "deliveries", "reference_verify"))
