"""`canvas-events archive-keys` (issue 10, part 5): an archive of every signing key, local and gs://.

Real parts: a loopback JWKS server standing in for Canvas's live URL (rotated like Canvas:
previous, current, next), the GCS emulator of tests/conftest.py, fake-gcs-server where
generation preconditions must be enforced (tests/support/fake_gcs.py says why), and the command line
run as a user runs it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.cli import main as cli_main
from devkit.loopback import JwksServer
from pipeline.keyarchive import GcsArchive, _Raced, archive_keys, render
from devkit.signing import DemoSigner
from tests.support.fake_gcs import FakeGcsServer
from tests.pipeline.helpers import corpus_payloads, sign

REPO_ROOT = Path(__file__).resolve().parents[1]


def _kids(data: bytes) -> list[str]:
    import json

    return [key["kid"] for key in json.loads(data)["keys"]]


class _Place:
    """Where the archive lives: a local path or a gs:// object, read back the same way."""

    def __init__(self, location: str, read: Any, extra_env: dict[str, str]):
        self.location, self._read, self.env = location, read, extra_env

    def read(self) -> bytes | None:
        return self._read()


@pytest.fixture(params=["local", "gcs"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> _Place:
    if request.param == "local":
        path = tmp_path / "keys" / "jwks-archive.json"
        return _Place(str(path), lambda: path.read_bytes() if path.exists() else None, {})
    emulator = request.getfixturevalue("gcs_emulator")
    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    emulator.create_bucket(bucket)
    blob = emulator.client.bucket(bucket).blob("keys/jwks-archive.json")

    def read() -> bytes | None:
        return blob.download_as_bytes() if blob.exists() else None

    return _Place(f"gs://{bucket}/keys/jwks-archive.json", read, emulator.env())


def _archive(live: str, place: _Place, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = cli_main(["archive-keys", f"--jwks_url={live}", f"--archive={place.location}"])
    return status, capsys.readouterr().err


def _normalize(token: bytes, jwks: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "normalize", f"--jwks_url={jwks}"],
        input=token + b"\n", capture_output=True, cwd=REPO_ROOT, env={**os.environ, **env}, timeout=60,
    )


def test_archive_follows_three_rotations_and_verifies_a_retired_key(
    place: _Place, capsys: pytest.CaptureFixture[str]
) -> None:
    signers = [DemoSigner(kid=f"canvas-{month}") for month in range(6)]
    with JwksServer() as live:
        for rotation in range(4):  # the initial state, then three monthly rotations
            served = signers[rotation:rotation + 3]  # previous, current, next
            live.document = served[0].jwks(*served[1:])
            status, err = _archive(live.url, place, capsys)
            assert status == 0, err
            assert _kids(place.read()) == [s.kid for s in signers[:rotation + 3]]  # never drops, keeps order
        again, err = _archive(live.url, place, capsys)  # nothing new: nothing written
        assert again == 0 and "added: none" in err

        retired = signers[0]
        token = sign(retired, next(p for p in corpus_payloads() if "metadata" in p))
        assert retired.kid not in _kids(render(live.document["keys"]))
        without = _normalize(token, live.url, place.env)
        assert without.returncode == 1 and b"unknown_kid" in without.stderr
        local_copy = place.location
        with_archive = _normalize(token, f"{live.url},{local_copy}", place.env)
    assert with_archive.returncode == 0, with_archive.stderr
    assert with_archive.stdout.count(b"\n") == 1 and b'"event_name"' in with_archive.stdout


def test_a_kid_archived_with_other_key_material_is_an_error_and_the_archive_is_unchanged(
    place: _Place, capsys: pytest.CaptureFixture[str]
) -> None:
    original, impostor = DemoSigner(kid="canvas-2024-11"), DemoSigner(kid="canvas-2024-11")
    other = DemoSigner(kid="canvas-2024-12")
    with JwksServer(original.jwks()) as live:
        assert _archive(live.url, place, capsys)[0] == 0
        before = place.read()
        live.document = impostor.jwks(other)
        status, err = _archive(live.url, place, capsys)
    assert status == 1
    assert "'canvas-2024-11'" in err and "unchanged" in err
    assert place.read() == before  # byte for byte; the new kid of the same document is not added either


def test_unreachable_live_jwks_is_a_usage_error_and_writes_nothing(
    place: _Place, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status = cli_main(["archive-keys", f"--jwks_url={tmp_path / 'missing.json'}", f"--archive={place.location}"])
    assert status == 2 and "missing.json" in capsys.readouterr().err
    assert place.read() is None


@pytest.fixture(scope="module")
def fake_gcs() -> Iterator[FakeGcsServer]:
    with FakeGcsServer() as server:
        yield server


@pytest.fixture
def precondition_bucket(fake_gcs: FakeGcsServer, monkeypatch: pytest.MonkeyPatch) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.endpoint)
    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    storage.Client(project="demo-project", credentials=AnonymousCredentials()).create_bucket(bucket)
    return bucket


def test_a_write_based_on_a_stale_read_is_refused_on_gcs(precondition_bucket: str, tmp_path: Path) -> None:
    location = f"gs://{precondition_bucket}/jwks-archive.json"
    first, second = DemoSigner(kid="k-first"), DemoSigner(kid="k-second")
    (tmp_path / "first.json").write_text(json.dumps(first.jwks()))
    (tmp_path / "second.json").write_text(json.dumps(second.jwks()))
    assert archive_keys([str(tmp_path / "first.json")], location).added == ["k-first"]

    slow = GcsArchive(location)
    _, generation = slow.read()  # a run reads ...
    assert archive_keys([str(tmp_path / "second.json")], location).added == ["k-second"]  # ... another writes
    with pytest.raises(_Raced):
        slow.replace(render(first.jwks()["keys"]), generation)  # ... the first one's write must fail
    assert _kids(GcsArchive(location).read()[0]) == ["k-first", "k-second"]


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_concurrent_runs_lose_no_key(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    import json

    if where == "gcs":
        location = f"gs://{request.getfixturevalue('precondition_bucket')}/jwks-archive.json"
    else:
        location = str(tmp_path / "jwks-archive.json")
    runs = 6
    signers = [DemoSigner(kid=f"run-{i}") for i in range(runs)]
    sources = []
    for signer in signers:
        path = tmp_path / f"{signer.kid}.json"
        path.write_text(json.dumps(signer.jwks()))
        sources.append(str(path))
    barrier = threading.Barrier(runs)
    results: list[Any] = [None] * runs

    def one(i: int) -> None:
        barrier.wait()
        results[i] = archive_keys([sources[i]], location)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(r is not None and r.added == [signers[i].kid] for i, r in enumerate(results))
    data = GcsArchive(location).read()[0] if where == "gcs" else Path(location).read_bytes()
    assert sorted(_kids(data)) == sorted(s.kid for s in signers)


def test_a_gs_source_that_cannot_be_read_is_unavailable_and_named(gcs_emulator: Any) -> None:
    from pipeline.core.jwks import JwksUnavailable
    from pipeline.jwks_fetch import load_key_store

    bucket = f"keys-{uuid.uuid4().hex[:10]}"
    gcs_emulator.create_bucket(bucket)
    with pytest.raises(JwksUnavailable, match=rf"gs://{bucket}/missing.json: NotFound"):
        load_key_store([f"gs://{bucket}/missing.json"])
    gcs_emulator.client.bucket(bucket).blob("big.json").upload_from_string(b" " * (1024 * 1024 + 1))
    with pytest.raises(JwksUnavailable, match="larger than"):
        load_key_store([f"gs://{bucket}/big.json"])
